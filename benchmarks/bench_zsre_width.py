"""zsRE 300 in one batch on a wider model (issue 14, item 2): is SmolLM2's line between
efficacy and specificity the method's or the model's? The recipe for question-answer facts
(bench_zsre.QA_RECIPE: clamp 1.25, 10-token templates, one δ per subject and target,
passes 2, context keys, λ fixed) on `--model` (default Qwen2.5-Coder-0.5B, d_in 4,864 =
3.2× SmolLM2's), its z-vectors computed once (cached, bench-zs) and written by the usual
solve at each `passes:λ` of `--solves`, against E[k kᵀ] from the model's default statistics
or from `--stats-source FILE --stats-tokens N` (as `memstore config stats_source` takes
it). One process, the first n zsre-dev records, the unedited model beside them.

    python benchmarks/bench_zsre_width.py --solves 2:1536,2:4864
    python benchmarks/bench_zsre_width.py --solves 2:4864,4:9728 \
        --stats-source ../shared/data/wikipedia-sample.jsonl --stats-tokens 1000000 \
        --name zsre-width-wiki98
Writes benchmarks/results/<name>.{json,md} (`--name`, default zsre-width)."""
from __future__ import annotations

import argparse
import time

import torch
from bench_sequential import base_zs
from bench_specificity import KEYS, SOLVE, mean
from bench_zsre import QA_RECIPE
from common import DATA, command, write_results

from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_zsre
from memstore.eval.metrics import zsre_per_record
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--solves", default="2:1536",
                    help="passes:λ pairs, comma separated (2:1536 is the recipe's solve)")
    ap.add_argument("--stats-source", default=None,
                    help="a .txt / .jsonl corpus for E[k kᵀ] (default: the model's defaults)")
    ap.add_argument("--stats-tokens", type=int, default=None)
    ap.add_argument("--name", default="zsre-width")
    args = ap.parse_args()
    solves = [(int(p), float(lam)) for p, lam in (x.split(":") for x in args.solves.split(","))]
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model(args.model)
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_zsre(DATA / "zsre-dev.json")[: args.n]
    requests = [r.request for r in records]
    s = default_settings(model)
    qa = s.with_changes(**QA_RECIPE)
    model_id = model_hash(model)
    d_in = ad.proj_dims(model, s.layers[0])[1]
    templates = templates_for(model, tok, qa)
    base = zsre_per_record(model, tok, records)
    rows = {"unedited": {k: mean(v) for k, v in base.items()}}
    print("unedited", {k: round(rows["unedited"][k], 4) for k in KEYS}, flush=True)
    source = args.stats_source or s.stats_source
    t = time.perf_counter()
    stats = cached_statistics(model, tok, ad, s.layers, model_id, cache_dir() / "stats", source,
                              args.stats_tokens or s.stats_tokens, s.seed, 128)
    stats_s = time.perf_counter() - t
    t = time.perf_counter()
    zs = base_zs(model, tok, ad, [records], qa, templates, model_id)[0]
    zs_s = time.perf_counter() - t
    for p, lam in solves:
        settings = qa.with_changes(**(SOLVE | {"mom2_weight": lam, "passes": p}))
        t = time.perf_counter()
        res = execute_memit(model, tok, requests, settings, stats, templates=templates, zs=zs,
                            show_progress=False)
        solve_s = time.perf_counter() - t
        per = zsre_per_record(model, tok, records)
        unapply_updates(model, ad, res.updates)
        name = f"passes {p}, λ {lam:g}"
        rows[name] = {k: mean(v) for k, v in per.items()} | {
            "passes": p, "lambda": lam, "solve_seconds": solve_s}
        print(name, {k: round(rows[name][k], 4) for k in KEYS}, flush=True)
    out = {"command": command(), "model": args.model, "n": len(records), "d_in": d_in,
           "layers": list(s.layers), "settings": qa.to_dict(), "templates": templates,
           "stats_tokens": min(st.n_tokens for st in stats.values()),
           "stats_source": "wikipedia (built-in)" if source == "wikipedia" else source,
           "stats_seconds": stats_s, "zs_seconds": zs_s, "rows": rows,
           "wall_seconds": time.perf_counter() - started}
    write_results(args.name, out, report(out))


def report(out: dict) -> list[str]:
    rows, base = out["rows"], out["rows"]["unedited"]
    lines = [(f"# zsRE, {out['model']} (d_in {out['d_in']:,}, layers "
              f"{out['layers'][0]}–{out['layers'][-1]}): {out['n']} zsre-dev records in one "
              f"batch, the recipe's z-vectors, statistics from {out['stats_tokens']:,} tokens of "
              f"{out['stats_source']}"), "",
             "| passes | λ | λ / d_in | efficacy | paraphrase | specificity | solve (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | | | {base['efficacy']:.4f} | {base['paraphrase']:.4f} | "
              f"{base['specificity']:.4f} | |")]
    for m in list(rows.values())[1:]:
        lines.append(f"| {m['passes']} | {m['lambda']:g} | {m['lambda'] / out['d_in']:.2f} | "
                     f"{m['efficacy']:.4f} | {m['paraphrase']:.4f} | {m['specificity']:.4f} "
                     f"({m['specificity'] - base['specificity']:+.4f}) | {m['solve_seconds']:.0f} |")
    lines += ["", ("Target (issue 14, asked of SmolLM2-135M): efficacy ≥ 0.95, paraphrase ≥ "
                   f"0.80, specificity ≥ {base['specificity'] - 0.02:.4f} (unedited − 0.02)."), "",
              (f"Statistics {out['stats_seconds']:.0f} s (0 when cached), z-vectors "
               f"{out['zs_seconds']:.0f} s (0 when cached); whole run "
               f"{out['wall_seconds'] / 60:.1f} min."), "", f"Command: `{out['command']}`"]
    return lines


if __name__ == "__main__":
    main()
