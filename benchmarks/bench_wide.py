"""Layers as wide as Llama-3-8B's on the CPU: memory and time per phase (issue: big models).

A random 2-layer Llama-family model with Llama-3-8B's widths (hidden 4,096, MLP 14,336,
32 heads of which 8 key/value heads; SmolLM2's tokenizer and vocabulary of 49,152 instead of
Llama 3's 128,256, so the embeddings fit beside the rest), edited at layer 0 (the band
rule on 2 layers), with statistics from the Wikipedia sample (`--stats-tokens`, default
58,000: the rule max(20,000, 4·d_in) when this was measured; the current default, 25·d_in =
359,000, takes 6.2× the statistics time with the same memory: the sums are per layer,
d_in² whatever the token count) and λ = d_in: statistics, a 100-request commit, a second commit with the
default history method (preserve: the running matrix of the first commit's keys), a revert
of the first commit (the second replayed from its cached z-vectors) and an export. Prints
the time and the peak resident memory after each phase; the whole run must stay under
12 GB. The requests' z-vectors use the bare template only and 5 steps (a random model
never converges): the phases' memory does not depend on these, their time is scaled in
the README's projection.

    python benchmarks/bench_wide.py [--n 100] [--z-steps 5]
Writes benchmarks/results/wide.json and wide.md."""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch
import transformers
from common import DATA, command, write_results

from memstore.eval.data import read_counterfact
from memstore.models.loading import local_dir
from memstore.store import porcelain
from memstore.store.states import forget_loaded

GB = 1e9


def peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # Linux: KiB


def make_model(path: Path) -> None:
    """The random model, saved as a Hugging Face directory (safetensors, float32)."""
    tok = transformers.AutoTokenizer.from_pretrained(local_dir("smollm2-135m"))
    cfg = transformers.LlamaConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=2,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=len(tok),
        max_position_embeddings=2048, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    del model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--z-steps", type=int, default=5)
    ap.add_argument("--stats-tokens", type=int, default=58_000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.environ["MEMSTORE_STATS_CACHE"] = "off"
    records = read_counterfact(DATA / "counterfact-dev.json")
    first, second = records[: args.n], records[args.n: 2 * args.n]
    phases: list[dict] = []

    def phase(name: str, t0: float, **extra) -> None:
        phases.append({"phase": name, "seconds": time.perf_counter() - t0,
                       "peak_rss_gb": peak_rss(), **extra})
        print(phases[-1], flush=True)

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        t = time.perf_counter()
        make_model(work / "model")
        phase("make the random model", t)
        t = time.perf_counter()
        repo = porcelain.init(work / "repo", str(work / "model"))
        phase("init (load, hash)", t)
        porcelain.config(repo, "n_templates", "0")
        porcelain.config(repo, "z_steps", str(args.z_steps))
        porcelain.config(repo, "stats_tokens", str(args.stats_tokens))
        settings = porcelain.current_settings(repo)
        t = time.perf_counter()
        porcelain.stats(repo)
        phase("statistics", t, tokens=settings.stats_tokens, layers=list(settings.layers))
        t = time.perf_counter()
        c1 = porcelain.commit(repo, first, "first", inform=print)
        phase("commit 1", t, facts=len(first))
        t = time.perf_counter()
        c2 = porcelain.commit(repo, second, "second (history preserve)", inform=print)
        phase("commit 2 (preserve)", t, facts=len(second))
        t = time.perf_counter()
        porcelain.revert(repo, c1.commit.id)
        phase("revert commit 1 (commit 2 replayed)", t)
        t = time.perf_counter()
        porcelain.export(repo, None, work / "export")
        size = sum(f.stat().st_size for f in (work / "export").iterdir())
        phase("export", t, bytes=size)
        repo.close()
        forget_loaded()
        del c2
    cfg = {"hidden": 4096, "mlp": 14336, "layers": 2, "vocab": 49152, "edited": [0],
           "d_in": 14336, "stats_tokens": settings.stats_tokens, "n": args.n,
           "z_steps": args.z_steps, "n_templates": 0, "threads": torch.get_num_threads()}
    lines = [("Llama-3-8B widths (hidden 4,096, MLP 14,336), 2 random layers, CPU float32, "
             f"{torch.get_num_threads()} threads; {args.n} requests per commit."), "",
             "| phase | time | peak RSS so far |", "| --- | --- | --- |"]
    for p in phases:
        lines.append(f"| {p['phase']} | {p['seconds']:.1f} s | {p['peak_rss_gb']:.2f} GB |")
    lines += ["", (f"Peak RSS of the whole run: {max(p['peak_rss_gb'] for p in phases):.2f} GB "
              "(limit 12 GB)."), "", f"Command: `{command()}`"]
    write_results("wide", {"config": cfg, "phases": phases, "command": command()}, lines)


if __name__ == "__main__":
    main()
