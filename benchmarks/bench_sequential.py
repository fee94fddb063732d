"""Sequential commits on SmolLM2-135M: plain vs history-aware ("preserve") vs null-space
(issue: commits that do not forget). Same data, same run, one method after the other.

Each method starts from the base model and writes `--commits` batches of `--size`
CounterFact dev records, one solve per batch on top of the last (as `memstore commit`
does, with the running matrix of earlier keys). After every commit: ES of each commit's
facts (retention); after the last: ES over all facts, ES of the first commit's facts,
PS, NS (and GE with --generation), beside the unedited model.

    python benchmarks/bench_sequential.py --commits 10 --size 50
Writes benchmarks/results/sequential-<commits>x<size>.{json,md,png}."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "counterfact-dev.json"

from memstore.editing import default_settings, execute_memit
from memstore.editing.memit import running_matrix, templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_counterfact
from memstore.eval.metrics import counterfact_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

METHODS = ("plain", "preserve", "nullspace")
KEYS = ("efficacy", "paraphrase", "neighborhood", "score")


def efficacy(model, tok, requests) -> float:
    bare = [dataclasses.replace(r, paraphrases=(), neighborhood=()) for r in requests]
    return counterfact_metrics(model, tok, bare)["efficacy"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=10)
    ap.add_argument("--size", type=int, default=50)
    ap.add_argument("--generation", action="store_true", help="also GE (slow on CPU)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    base = {k: v.clone() for k, v in model.state_dict().items()}
    records = read_counterfact(DATA)[: args.commits * args.size]
    batches = [records[i * args.size:(i + 1) * args.size] for i in range(args.commits)]
    s0 = default_settings(model)
    stats = cached_statistics(model, tok, ad, s0.layers, model_hash(model), cache_dir() / "stats",
                              s0.stats_source, s0.stats_tokens, s0.seed)
    templates = templates_for(model, tok, s0)
    gen = {"generation": True} if args.generation else {}
    unedited = counterfact_metrics(model, tok, records, **gen)
    out: dict = {"settings": s0.to_dict(), "unedited": unedited, "methods": {}}
    for method in METHODS:
        model.load_state_dict(base)
        s = s0.with_changes(history=method)
        keys, retention, t0 = [], [], time.perf_counter()
        for i, batch in enumerate(batches):
            preserved = running_matrix(keys) if keys else None
            res = execute_memit(model, tok, batch, s, stats, templates=templates,
                                preserved=preserved, show_progress=False)
            keys.append({l: u.keys for l, u in res.updates.items()})
            retention.append([efficacy(model, tok, b) for b in batches[: i + 1]])
            print(method, i + 1, [round(x, 2) for x in retention[-1]], flush=True)
        final = counterfact_metrics(model, tok, records, **gen)
        out["methods"][method] = {"final": final, "first_commit_es": retention[-1][0],
                                  "retention": retention, "seconds": time.perf_counter() - t0}
    model.load_state_dict(base)
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    stem = res_dir / f"sequential-{args.commits}x{args.size}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2, default=float))
    ge = " GE |" if args.generation else ""
    lines = [f"# Sequential commits, SmolLM2-135M: {args.commits} × {args.size} CounterFact dev records", "",
             f"| after the last commit | ES (all) | ES (first commit) | PS | NS | S |{ge}",
             "| --- | --- | --- | --- | --- | --- |" + (" --- |" if ge else "")]
    u = unedited
    lines.append(f"| unedited | {u['efficacy']:.3f} | – | {u['paraphrase']:.3f} | {u['neighborhood']:.3f} "
                 f"| {u['score']:.3f} |" + (f" {u['generation_entropy']:.3f} |" if ge else ""))
    for method, m in out["methods"].items():
        f = m["final"]
        lines.append(f"| {method} | {f['efficacy']:.3f} | {m['first_commit_es']:.3f} | {f['paraphrase']:.3f} "
                     f"| {f['neighborhood']:.3f} | {f['score']:.3f} |"
                     + (f" {f['generation_entropy']:.3f} |" if ge else ""))
    lines += ["", f"Command: `python benchmarks/bench_sequential.py --commits {args.commits} --size {args.size}"
              + (" --generation" if ge else "") + "`"]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for method, m in out["methods"].items():
            ax.plot(range(1, args.commits + 1), [r[0] for r in m["retention"]], marker="o", label=method)
        ax.set_xlabel("commits written")
        ax.set_ylabel("ES of the first commit's facts")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"Retention, SmolLM2-135M, {args.size} facts per commit")
        ax.legend()
        fig.tight_layout()
        fig.savefig(stem.with_suffix(".png"), dpi=120)
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)


if __name__ == "__main__":
    main()
