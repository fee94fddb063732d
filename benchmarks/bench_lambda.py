"""λ against the statistics' size (how the default λ = d_in / 4 was chosen).

One model, the first N counterfact-dev records: their z-vectors computed once with the
default settings, then solved again (no z optimisation) for λ = d_in, d_in/2, d_in/4, with
E[kkᵀ] from the default number of statistics tokens and from 20,000; ES / PS / NS of each.

    python benchmarks/bench_lambda.py --model qwen2.5-0.5b [--n 100] [--tokens 20000]
Writes benchmarks/results/lambda-<model>.{json,md}."""
from __future__ import annotations

import argparse

import torch
from common import DATA, command, write_results

from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.defaults import mlp_width
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

KEYS = ("efficacy", "paraphrase", "neighborhood")
FRACTIONS = (1.0, 0.5, 0.25)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--tokens", default="20000", help="statistics sizes beside the default")
    args = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model(args.model)
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_counterfact_records(DATA / "counterfact-dev.json")[: args.n]
    requests = [r.request for r in records]
    s0 = default_settings(model)
    d_in = mlp_width(model, ad, s0.layers)
    sizes = [s0.stats_tokens] + [int(t) for t in args.tokens.split(",") if t]
    stats = {t: cached_statistics(model, tok, ad, s0.layers, model_hash(model),
                                  cache_dir() / "stats", s0.stats_source, t, s0.seed) for t in sizes}
    templates = templates_for(model, tok, s0)
    unedited = counterfact_metrics(model, tok, records)
    first = execute_memit(model, tok, requests, s0, stats[s0.stats_tokens], templates=templates,
                          show_progress=False)
    unapply_updates(model, ad, first.updates)
    rows = []
    for tokens in sizes:
        for fraction in FRACTIONS:
            s = s0.with_changes(mom2_weight=d_in * fraction)
            res = execute_memit(model, tok, requests, s, stats[tokens], templates=templates,
                                zs=first.zs, show_progress=False)
            m = counterfact_metrics(model, tok, records)
            unapply_updates(model, ad, res.updates)
            rows.append({"tokens": tokens, "fraction": fraction} | {k: m[k] for k in KEYS})
            print(rows[-1], flush=True)
    out = {"command": command(), "model": args.model, "d_in": d_in, "n": len(records),
           "unedited": {k: unedited[k] for k in KEYS}, "rows": rows}
    lines = [(f"# λ against the statistics' size, {args.model} (d_in {d_in}), {len(records)} "
             "counterfact-dev records, the same z-vectors"), "",
             "| statistics tokens | λ | ES | PS | NS |", "| --- | --- | --- | --- | --- |",
             "| unedited | | " + " | ".join(f"{unedited[k]:.3f}" for k in KEYS) + " |"]
    for r in rows:
        lines.append(f"| {r['tokens']} | d_in × {r['fraction']:g} | "
                     + " | ".join(f"{r[k]:.3f}" for k in KEYS) + " |")
    lines += ["", f"Command: `{out['command']}`"]
    write_results(f"lambda-{args.model}", out, lines)


if __name__ == "__main__":
    main()
