"""Speed of a commit on SmolLM2-135M (issue: the MEMIT engine, acceptance 3).

Measures, in one run on this machine:
  1. statistics: tokens/s of the one-pass collection of E[kkᵀ] for all edited layers
     (stops after the last edited layer), against a plain full forward of the same tokens;
  2. the z-vector phase for the same requests and settings both ways: one request at a
     time with full forward passes (the paper's procedure, `zs_reference`) on a subset,
     and the batched, cached path on all of them -> ratio per request;
  3. a whole `memstore commit` of N CounterFact records (statistics already cached), as a
     user runs it, in a fresh repository.

    python benchmarks/bench_commit.py [--n 100] [--reference 5]
Writes benchmarks/results/commit.json and commit.md."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import DATA as DATA_DIR
from common import ROOT, memstore

DATA = DATA_DIR / "counterfact-dev.json"

from memstore.editing import default_settings
from memstore.editing.memit import templates_for
from memstore.editing.statistics import collect, self_sampled_chunks
from memstore.editing.zs import compute_zs
from memstore.editing.zs_reference import compute_z_reference
from memstore.eval.data import read_counterfact
from memstore.models.loading import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--reference", type=int, default=5, help="requests run the paper's way")
    ap.add_argument("--stats-tokens", type=int, default=8000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    s = default_settings(model)
    requests = read_counterfact(DATA)[: args.n]
    results: dict = {"n": args.n, "settings": s.to_dict(), "threads": torch.get_num_threads()}

    # 1. statistics throughput
    chunks = self_sampled_chunks(model, tok, args.stats_tokens, seed=0, seq_len=128)
    t = time.perf_counter()
    _, count = collect(model, ad, chunks, s.layers, tok.pad_token_id)
    t_stats = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(chunks), 32):
            batch = chunks[i:i + 32]
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), tok.pad_token_id)
            mask = torch.zeros_like(ids)
            for r, c in enumerate(batch):
                ids[r, :len(c)], mask[r, :len(c)] = torch.tensor(c), 1
            model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    t_full = time.perf_counter() - t
    results["stats"] = {"tokens": count, "seconds": t_stats, "tokens_per_s": count / t_stats,
                        "full_forward_tokens_per_s": count / t_full, "ratio": t_full / t_stats}

    # 2. z-vectors both ways
    templates = templates_for(model, tok, s)
    t = time.perf_counter()
    _, info = compute_zs(model, tok, ad, requests, templates, s, show_progress=False)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    for r in requests[: args.reference]:
        compute_z_reference(model, tok, ad, r, templates, s)
    t_ref = time.perf_counter() - t
    per_b, per_r = t_batched / len(requests), t_ref / args.reference
    results["zs"] = {"batched_s_per_request": per_b, "reference_s_per_request": per_r,
                     "ratio": per_r / per_b, "mean_steps": sum(info["z_steps"]) / len(requests)}
    del model, lm

    # 3. a whole commit through the CLI, statistics cached
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        facts = Path(tmp) / "facts.json"
        facts.write_text(json.dumps(json.loads(DATA.read_text())[: args.n]))
        memstore("init", str(repo), "--base", "smollm2-135m", cwd=Path(tmp))
        t = time.perf_counter()
        memstore("stats", cwd=repo)
        t_stats_cli = time.perf_counter() - t
        before = json.loads(memstore("eval", str(facts), "--json", cwd=repo))
        t = time.perf_counter()
        memstore("commit", str(facts), "-m", f"{args.n} CounterFact records", cwd=repo)
        t_commit = time.perf_counter() - t
        show = json.loads(memstore("show", "HEAD", "--json", cwd=repo))
        after = json.loads(memstore("eval", str(facts), "--json", cwd=repo))
    keys = ("efficacy", "paraphrase", "neighborhood", "score")
    results["commit"] = {"seconds": t_commit, "stats_seconds": t_stats_cli,
                         "efficacy": show.get("metrics", {}).get("efficacy"),
                         "bytes": show.get("bytes"),
                         "before": {k: before[k] for k in keys}, "after": {k: after[k] for k in keys}}

    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "commit.json").write_text(json.dumps(results, indent=2))
    st, zs, c = results["stats"], results["zs"], results["commit"]
    table = "\n".join([
        f"# Commit speed, SmolLM2-135M, {args.n} CounterFact records, {results['threads']} threads",
        "",
        "| what | measured |",
        "| --- | --- |",
        (f"| statistics, one pass to layer {max(s.layers)} | {st['tokens_per_s']:.0f} tokens/s "
        f"({st['ratio']:.1f}x a full forward: {st['full_forward_tokens_per_s']:.0f} tokens/s) |"),
        f"| z-vectors, paper's procedure (one at a time, full passes) | {zs['reference_s_per_request']:.2f} s/request |",
        (f"| z-vectors, batched + cached | {zs['batched_s_per_request']:.2f} s/request "
        f"(mean {zs['mean_steps']:.1f} steps) |"),
        f"| z-vector speed-up | **{zs['ratio']:.1f}x** per request |",
        (f"| `memstore commit` of {args.n} requests (statistics cached) | **{c['seconds']:.0f} s** "
        f"(efficacy {c['efficacy']}) |"),
        f"| commit size | {c['bytes']} bytes |",
        "",
        f"| CounterFact, first {args.n} dev records | ES | PS | NS | S |",
        "| --- | --- | --- | --- | --- |",
        "| unedited | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(*tuple(c["before"][k] for k in keys)),
        "| after the commit | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(*tuple(c["after"][k] for k in keys)),
        "",
        f"Command: `python benchmarks/bench_commit.py --n {args.n} --reference {args.reference}`",
    ])
    (out / "commit.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
