"""Default settings on two real models nobody tuned them for (issue: every model people edit).

For SmolLM2-135M and Qwen2.5-Coder-0.5B-Instruct, side by side in one run, each in a fresh
repository with the settings `memstore init` derives from the model (no per-model setting):
the statistics (time), CounterFact ES / PS / NS / S of the first N counterfact-dev records
unedited, one `commit` of them (wall time), and the same metrics after it.

With `--sweep`, the same commit's cached z-vectors are solved again with λ at 1/4, 1/2, 2
and 4 times the default (d_in), and with the statistics of self-sampled text instead of the
Wikipedia sample, each from the base weights (no z optimisation), to show where the rule
sits; and the self-sampled statistics are timed beside the Wikipedia ones.

    python benchmarks/bench_models.py [--n 100] [--models smollm2-135m,qwen2.5-0.5b] [--sweep]
Writes benchmarks/results/models.json and models.md."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from common import DATA, command, write_results

from memstore.editing import execute_memit
from memstore.editing.statistics import compute_statistics
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.store import porcelain
from memstore.store.states import forget_loaded, set_runtime_flags, state_of, statistics

NAMES = {"smollm2-135m": "SmolLM2-135M", "qwen2.5-0.5b": "Qwen2.5-Coder-0.5B"}
KEYS = ("efficacy", "paraphrase", "neighborhood", "score")


def metrics_of(model, tok, records) -> dict:
    m = counterfact_metrics(model, tok, records)
    return {k: m[k] for k in KEYS}


def run_model(spec: str, records, sweep: bool, work: Path, device: str, dtype: str) -> dict:
    out: dict = {"model": NAMES.get(spec, spec), "device": device, "dtype": dtype}
    set_runtime_flags(device=device, dtype=dtype)
    t = time.perf_counter()
    repo = porcelain.init(work / f"{spec}-{dtype}", spec)
    out["init_s"] = time.perf_counter() - t
    settings = porcelain.current_settings(repo)
    out["settings"] = settings.to_dict()
    base = porcelain.open_base(repo)
    out["d_in"] = base.adapter.proj_dims(base.model, settings.layers[0])[1]
    out["vocab"] = base.model.config.get_text_config().vocab_size
    t = time.perf_counter()
    stats = statistics(repo, base, settings)
    out["stats_s"] = time.perf_counter() - t
    state_of(repo, None)
    t = time.perf_counter()
    out["unedited"] = metrics_of(base.model, base.tokenizer, records)
    out["eval_s"] = time.perf_counter() - t
    report = porcelain.commit(repo, [r.request for r in records], "benchmark")
    out["commit_s"] = report.seconds
    out["z_steps_mean"] = sum(report.notes["info"]["z_steps"]) / len(records)
    out["time_zs"] = report.notes["info"]["time_zs"]
    out["time_solve"] = report.notes["info"]["time_solve"]
    base = state_of(repo, report.commit.id)
    out["edited"] = metrics_of(base.model, base.tokenizer, records)
    print(out, flush=True)
    if sweep:
        out["sweep"] = sweep_solves(repo, base, records, stats, report.commit.id)
    repo.close()
    return out


def sweep_solves(repo, base, records, stats, commit) -> list[dict]:
    """The commit's z-vectors solved again with other λ and statistics, from the base."""
    s = repo.get_commit(commit).update_sets[0]
    settings, zs = s.edit_settings, repo.zs_of_set(commit)
    requests = [r.request for r in records]
    t = time.perf_counter()
    state_of(repo, None)
    self_stats = compute_statistics(base.model, base.tokenizer, base.adapter, settings.layers,
                                    "self", settings.stats_tokens, settings.seed)
    t_self = time.perf_counter() - t
    rows = []
    variants = [(f"λ = {f:g}·d_in", settings.with_changes(mom2_weight=settings.mom2_weight * f),
                 stats) for f in (0.25, 0.5, 2.0, 4.0)]
    variants.append(("self-sampled statistics", settings, self_stats))
    for label, s2, st in variants:
        state_of(repo, None)
        base.editing(s2.layers)
        execute_memit(base.model, base.tokenizer, requests, s2, st, adapter=base.adapter,
                      zs=zs, templates=list(s.templates), show_progress=False)
        rows.append({"variant": label, **metrics_of(base.model, base.tokenizer, records)})
        print(rows[-1], flush=True)
    base.reset()
    rows.append({"variant": "self-sampled statistics: time", "seconds": t_self})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-0.5b")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--dtypes", default="float32", help="e.g. float32,bfloat16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--name", default="models")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.environ["MEMSTORE_STATS_CACHE"] = "off"  # time the statistics, every run
    records = read_counterfact_records(DATA / "counterfact-dev.json")[: args.n]
    results = {"n": args.n, "command": command(), "models": []}
    with tempfile.TemporaryDirectory() as work:
        for spec in args.models.split(","):
            for dtype in args.dtypes.split(","):
                results["models"].append(run_model(spec, records, args.sweep, Path(work),
                                                   args.device, dtype))
                forget_loaded()
    where = f"{args.device}, {torch.get_num_threads()} threads" if args.device == "cpu" \
        else args.device
    lines = [(f"Default settings on real models, {args.n} counterfact-dev records in one "
              f"commit ({where})."), "",
             ("| model | weights | d_in | λ | layers | | ES | PS | NS | S | statistics | commit "
             "| z-vectors | solve |"),
             ("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
             "| --- |")]
    for m in results["models"]:
        s = m["settings"]
        layers = f"{s['layers'][0]}-{s['layers'][-1]}"
        for which in ("unedited", "edited"):
            x = m[which]
            timing = (f"{m['stats_s']:.0f} s", f"{m['commit_s']:.0f} s",
                      f"{m['time_zs']:.0f} s", f"{m['time_solve']:.0f} s") \
                if which == "edited" else ("", "", "", "")
            lines.append(f"| {m['model']} | {m['dtype']} | {m['d_in']} | {s['mom2_weight']:g} | "
                         f"{layers} | {which} | {x['efficacy']:.3f} | {x['paraphrase']:.3f} | "
                         f"{x['neighborhood']:.3f} | {x['score']:.3f} | " + " | ".join(timing)
                         + " |")
    if args.sweep:
        lines += ["", "The same commits' z-vectors solved again (no z optimisation):", "",
                  "| model | variant | ES | PS | NS | S |", "| --- | --- | --- | --- | --- | --- |"]
        for m in results["models"]:
            for r in m.get("sweep", []):
                if "seconds" in r:
                    lines.append(f"| {m['model']} | {r['variant']} {r['seconds']:.0f} s "
                                 f"(Wikipedia: {m['stats_s']:.0f} s) | | | | |")
                else:
                    lines.append(f"| {m['model']} | {r['variant']} | {r['efficacy']:.3f} | "
                                 f"{r['paraphrase']:.3f} | {r['neighborhood']:.3f} | "
                                 f"{r['score']:.3f} |")
    lines += ["", f"Command: `{results['command']}`"]
    write_results(args.name, results, lines)


if __name__ == "__main__":
    main()
