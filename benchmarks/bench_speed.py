"""Where the time of a commit goes on SmolLM2-135M, each part against its baseline in the
same run (ratios; absolute times on shared machines are noise):

  1. statistics: tokens/s of the one-pass E[kkᵀ] collection for all edited layers, against
     a plain forward through the same layers (and a full forward) of the same tokens;
  2. z-vectors for the same requests: batched and cached, against one request at a time
     through the same code, and against the paper's procedure (full passes) on a subset;
  3. the solve (keys + ΔW for every edited layer) from the cached z-vectors;
  4. `memstore export` against loading the base and saving it (what any checkpoint costs);
  5. bytes of one commit against the checkpoint it rebuilds.

    python benchmarks/bench_speed.py --n 20 --reference 5
Writes benchmarks/results/speed.{json,md}."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import DATA, RESULTS, ROOT, command, memstore, write_results

from memstore.editing import default_settings, execute_memit
from memstore.editing.layers import run_until
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics, collect, self_sampled_chunks
from memstore.editing.tokens import pad_right
from memstore.editing.zs import compute_zs
from memstore.editing.zs_reference import compute_z_reference
from memstore.eval.data import read_counterfact
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def forward_tokens_per_s(model, ad, chunks, pad_id, stop: int | None) -> float:
    """A plain forward of the chunks (stopping after layer `stop`, or through all layers)."""
    def run():
        with torch.no_grad():
            for i in range(0, len(chunks), 32):
                ids, mask = pad_right(pad_id, chunks[i:i + 32])
                if stop is None:
                    model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
                else:
                    run_until(model, ad, stop, input_ids=ids, attention_mask=mask)
    _, seconds = timed(run)
    return sum(map(len, chunks)) / seconds


PARTS = ("stats", "zs", "export", "processes")


def measure_processes(n: int) -> dict:
    """Statistics and z-vectors spread over 1 and 2 torchrun processes of one thread each
    (dist_worker.py): wall times, and whether the results are the same bits."""
    out = {}
    for procs in (1, 2):
        run = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={procs}",
             "--master-port=29533", str(ROOT / "benchmarks" / "dist_worker.py"), "--requests", str(n)],
            check=True, capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}",
                 "OMP_NUM_THREADS": "1", "MEMSTORE_DIST_BACKEND": "gloo"})
        out[procs] = json.loads(run.stdout.strip().splitlines()[-1])
    same = out[1]["stats"] == out[2]["stats"] and out[1]["zs"] == out[2]["zs"]
    return {"n": n, "one": out[1], "two": out[2], "same_bits": same}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20, help="requests for the z-vector comparison")
    ap.add_argument("--reference", type=int, default=5, help="of those, run the paper's way")
    ap.add_argument("--stats-tokens", type=int, default=8000)
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="measure only these (the others are kept from the last results file)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    parts = args.parts.split(",")
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    s = default_settings(model)
    requests = read_counterfact(DATA / "counterfact-dev.json")[: args.n]
    last = RESULTS / "speed.json"
    out: dict = json.loads(last.read_text()) if set(parts) != set(PARTS) and last.is_file() else {}
    out.update({"settings": s.to_dict(), "threads": torch.get_num_threads(), "n": args.n,
                "reference": args.reference})
    out.setdefault("commands", {}).update({p: command() for p in parts})
    if "stats" in parts:
        out["stats"] = measure_stats(model, tok, ad, s, args.stats_tokens)
    if "zs" in parts:
        out["zs"], out["solve"] = measure_zs(model, tok, ad, s, requests, args.reference)
    if "export" in parts:
        del model, lm
        out["export"] = measure_export(args.n)
    if "processes" in parts:
        out["processes"] = measure_processes(args.n)
    report(out)


def measure_stats(model, tok, ad, s, n_tokens: int) -> dict:
    chunks = self_sampled_chunks(model, tok, n_tokens, seed=0, seq_len=128)
    (_, count), t_stats = timed(lambda: collect(model, ad, chunks, s.layers, tok.pad_token_id))
    same = forward_tokens_per_s(model, ad, chunks, tok.pad_token_id, max(s.layers))
    full = forward_tokens_per_s(model, ad, chunks, tok.pad_token_id, None)
    return {"tokens": count, "tokens_per_s": count / t_stats, "layers": list(s.layers),
            "same_layers_forward_tokens_per_s": same, "full_forward_tokens_per_s": full}


def measure_zs(model, tok, ad, s, requests, reference: int) -> tuple[dict, dict]:
    """z-vectors three ways on the same requests; then the solve from the batched ones."""
    templates = templates_for(model, tok, s)
    (zs, info), t_batched = timed(lambda: compute_zs(model, tok, ad, requests, templates, s,
                                                      show_progress=False))
    _, t_single = timed(lambda: [compute_zs(model, tok, ad, [r], templates, s, show_progress=False)
                                 for r in requests])
    _, t_ref = timed(lambda: [compute_z_reference(model, tok, ad, r, templates, s)
                              for r in requests[:reference]])
    n = len(requests)
    z = {"n": n, "batched_s_per_request": t_batched / n, "single_s_per_request": t_single / n,
         "reference_s_per_request": t_ref / reference, "mean_steps": sum(info["z_steps"]) / n}
    stats = cached_statistics(model, tok, ad, s.layers, model_hash(model), cache_dir() / "stats",
                              s.stats_source, s.stats_tokens, s.seed)
    res = execute_memit(model, tok, requests, s, stats, zs=zs, templates=templates, show_progress=False)
    return z, {"seconds": res.info["time_solve"], "layers": list(s.layers), "n": n}


SAVE_BASE = ("from memstore.models.loading import load_model; import sys; "
             "load_model('smollm2-135m').model.save_pretrained(sys.argv[1])")


def measure_export(n: int) -> dict:
    """A commit of n facts through the CLI, then its export, in process and as a command,
    each against loading the base and saving it the same way."""
    from memstore.store.checkpoint import export
    from memstore.store.repository import Repository

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        facts = tmp / "facts.json"
        facts.write_text(json.dumps(json.loads((DATA / "counterfact-dev.json").read_text())[:n]))
        memstore("init", str(tmp / "repo"), "--base", "smollm2-135m", cwd=tmp)
        memstore("commit", str(facts), "-m", f"{n} facts", cwd=tmp / "repo")
        _, t_save = timed(lambda: load_model("smollm2-135m").model.save_pretrained(tmp / "plain"))
        with Repository.open(tmp / "repo") as repo:
            _, t_export = timed(lambda: export(repo, None, tmp / "out-lib"))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        _, t_save_cmd = timed(lambda: subprocess.run([sys.executable, "-c", SAVE_BASE, str(tmp / "p2")],
                                                     check=True, env=env, capture_output=True))
        _, t_export_cmd = timed(lambda: memstore("export", str(tmp / "out"), cwd=tmp / "repo"))
        commit_bytes = json.loads(memstore("show", "HEAD", "--json", cwd=tmp / "repo"))["bytes"]
        checkpoint = sum(p.stat().st_size for p in (tmp / "out").rglob("*") if p.is_file())
    return {"n": n, "export_seconds": t_export, "load_save_seconds": t_save,
            "export_command_seconds": t_export_cmd, "load_save_command_seconds": t_save_cmd,
            "commit_bytes": commit_bytes, "checkpoint_bytes": checkpoint}


def _process_rows(p: dict | None) -> list[str]:
    if not p:
        return []
    one, two = p["one"], p["two"]
    same = "same bits" if p["same_bits"] else "DIFFERENT bits"
    return [(f"| statistics, 2 torchrun processes × 1 thread | {two['stats_s']:.1f} s | 1 process × "
             f"1 thread {one['stats_s']:.1f} s | {one['stats_s'] / two['stats_s']:.2f}× ({same}) |"),
            (f"| z-vectors ({p['n']} requests), 2 processes × 1 thread | {two['zs_s']:.1f} s | "
             f"1 process × 1 thread {one['zs_s']:.1f} s | {one['zs_s'] / two['zs_s']:.2f}× |")]


def report(out: dict) -> None:
    st, zs, so, ex = out["stats"], out["zs"], out["solve"], out["export"]
    lines = [f"# Speed, SmolLM2-135M, {out['threads']} CPU threads (ratios measured side by side)", "",
             "| what | measured | against | ratio |", "| --- | --- | --- | --- |",
             (f"| statistics (E[kkᵀ], layers {min(st['layers'])}–{max(st['layers'])}, one pass) | "
              f"{st['tokens_per_s']:.0f} tokens/s | plain forward through the same layers "
              f"{st['same_layers_forward_tokens_per_s']:.0f} tokens/s | "
              f"{st['tokens_per_s'] / st['same_layers_forward_tokens_per_s']:.2f}× |"),
             (f"| | | full forward {st['full_forward_tokens_per_s']:.0f} tokens/s | "
              f"{st['tokens_per_s'] / st['full_forward_tokens_per_s']:.2f}× |"),
             (f"| z-vectors, batched + cached ({zs['n']} requests, mean {zs['mean_steps']:.1f} steps) | "
              f"{zs['batched_s_per_request']:.2f} s/request | one at a time, same code "
              f"{zs['single_s_per_request']:.2f} s/request | "
              f"{zs['single_s_per_request'] / zs['batched_s_per_request']:.1f}× |"),
             (f"| | | paper's procedure (full passes, first {out['reference']}) "
              f"{zs['reference_s_per_request']:.2f} s/request | "
              f"{zs['reference_s_per_request'] / zs['batched_s_per_request']:.1f}× |"),
             f"| solve: keys + ΔW for {len(so['layers'])} layers, {so['n']} requests | {so['seconds']:.2f} s | | |",
             (f"| export (base + ΔWs → safetensors checkpoint + manifest), in process | "
              f"{ex['export_seconds']:.1f} s | load the base + save_pretrained {ex['load_save_seconds']:.1f} s | "
              f"{ex['export_seconds'] / ex['load_save_seconds']:.1f}× |"),
             (f"| `memstore export` as a command | {ex['export_command_seconds']:.1f} s | the same load + save "
              f"as a `python -c` command {ex['load_save_command_seconds']:.1f} s | "
              f"{ex['export_command_seconds'] / ex['load_save_command_seconds']:.1f}× |"),
             (f"| one commit of {ex['n']} facts | {ex['commit_bytes'] / 1e6:.2f} MB | the checkpoint "
              f"{ex['checkpoint_bytes'] / 1e6:.0f} MB | 1/{ex['checkpoint_bytes'] / ex['commit_bytes']:.0f} |"),
             *_process_rows(out.get("processes")),
             "", "Commands: " + "; ".join(f"`{c}`" for c in dict.fromkeys(out["commands"].values()))]
    write_results("speed", out, lines)


if __name__ == "__main__":
    main()
