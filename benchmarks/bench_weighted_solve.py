"""The solve weighted by what ordinary text reads (issue 14, item 2): zsRE 300 in one batch
with the recipe for question-answer facts and its z-vectors, each batch written twice at
each (λ, passes) — by the usual solve and by the solve whose preservation term is measured
in F̃_l^γ, the Fisher information of SmolLM2's predictions at each edited layer's W_out
(memstore/editing/solve.py solve_layer_weighted, fisher.py output_fishers; F from the
first `--fisher-tokens` tokens of the built-in Wikipedia sample), with the
285,000-token statistics (or `--stats-source FILE --stats-tokens N`: E[k kᵀ] from a corpus
file, as `memstore config stats_source` takes it). One process, SmolLM2-135M, the first n
zsre-dev records.

    python benchmarks/bench_weighted_solve.py --n 300 --lambdas 6144,8192,10240 --passes 3
    python benchmarks/bench_weighted_solve.py --n 300 --lambdas 7168,8192,9216 --passes 4 \
        --stats-source ../shared/data/wikipedia-sample.jsonl --stats-tokens 1000000 \
        --gammas 0,1 --name weighted-solve-wiki98
Writes benchmarks/results/<name>.{json,md} (`--name`, default weighted-solve)."""
from __future__ import annotations

import argparse
import json
import time

import torch
from bench_fisher import STATS_TOKENS, cached_tensors
from bench_sequential import base_zs
from bench_specificity import KEYS, SOLVE, mean
from bench_zsre import QA_RECIPE
from common import DATA, command, write_results

from memstore.data import wikipedia_paragraphs
from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.fisher import output_fishers
from memstore.editing.memit import templates_for
from memstore.editing.solve import output_weight
from memstore.editing.statistics import cached_statistics, token_chunks
from memstore.eval.data import read_zsre
from memstore.eval.metrics import zsre_per_record
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model


def cached_output_fishers(model, tok, ad, layers, tokens: int, seed: int, model_id: str
                          ) -> tuple[dict[int, torch.Tensor], float]:
    """F at each edited layer's W_out from the first `tokens` Wikipedia tokens, and the
    seconds it took (bench_fisher.cached_tensors)."""
    key = json.dumps([model_id, list(layers), tokens, seed, 128, "W_out"])
    saved, seconds = cached_tensors("Fout", key, lambda: {
        f"f{l}": f for l, f in output_fishers(
            model, ad, token_chunks(tok, wikipedia_paragraphs(), tokens, 128), tuple(layers),
            seed).items()})
    return {l: saved[f"f{l}"] for l in layers}, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--lambdas", default="6144,8192,10240", help="the solve's λ values")
    ap.add_argument("--passes", default="3", help="passes values, comma separated")
    ap.add_argument("--gammas", default="0,1",
                    help="γ of the solve, comma separated (0: the usual solve)")
    ap.add_argument("--stats-source", default=None,
                    help="a .txt / .jsonl corpus for E[k kᵀ] (default: the built-in Wikipedia)")
    ap.add_argument("--stats-tokens", type=int, default=STATS_TOKENS)
    ap.add_argument("--fisher-tokens", type=int, default=65536)
    ap.add_argument("--name", default="weighted-solve")
    args = ap.parse_args()
    lambdas = [float(x) for x in args.lambdas.split(",")]
    passes = [int(x) for x in args.passes.split(",")]
    gammas = [float(x) for x in args.gammas.split(",")]
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_zsre(DATA / "zsre-dev.json")[: args.n]
    requests = [r.request for r in records]
    s = default_settings(model)
    qa = s.with_changes(**QA_RECIPE)
    model_id = model_hash(model)
    templates = templates_for(model, tok, qa)
    fs, fisher_s = cached_output_fishers(model, tok, ad, qa.layers, args.fisher_tokens, qa.seed,
                                         model_id)
    print(f"F at layers {list(qa.layers)} from {args.fisher_tokens} tokens: {fisher_s:.0f}s",
          flush=True)
    source = args.stats_source or s.stats_source
    stats = cached_statistics(model, tok, ad, s.layers, model_id, cache_dir() / "stats",
                              source, args.stats_tokens, s.seed, 128)
    stats_tokens = min(st.n_tokens for st in stats.values())
    zs = base_zs(model, tok, ad, [records], qa, templates, model_id)[0]
    base = zsre_per_record(model, tok, records)
    rows = {"unedited": {k: mean(v) for k, v in base.items()}}
    for p in passes:
        for lam in lambdas:
            settings = qa.with_changes(**(SOLVE | {"mom2_weight": lam, "passes": p}))
            for gamma in gammas:
                weights = (None if gamma == 0 else
                           {l: output_weight(f, gamma) for l, f in fs.items()})
                t = time.perf_counter()
                res = execute_memit(model, tok, requests, settings, stats, templates=templates,
                                    zs=zs, show_progress=False, output_weights=weights)
                solve_s = time.perf_counter() - t
                per = zsre_per_record(model, tok, records)
                unapply_updates(model, ad, res.updates)
                name = f"passes {p}, λ {lam:g}, γ {gamma:g}"
                rows[name] = {k: mean(v) for k, v in per.items()} | {
                    "passes": p, "lambda": lam, "gamma": gamma, "solve_seconds": solve_s}
                print(name, {k: round(rows[name][k], 3) for k in KEYS}, flush=True)
    out = {"command": command(), "n": len(records), "settings": qa.to_dict(),
           "stats_tokens": stats_tokens,
           "stats_source": "wikipedia (built-in)" if source == "wikipedia" else source,
           "fisher_tokens": args.fisher_tokens,
           "fisher_seconds": fisher_s, "rows": rows, "wall_seconds": time.perf_counter() - started}
    write_results(args.name, out, report(out))


def report(out: dict) -> list[str]:
    rows, base = out["rows"], out["rows"]["unedited"]
    lines = [(f"# zsRE, SmolLM2-135M: {out['n']} zsre-dev records in one batch, the recipe's "
              f"z-vectors, written by the usual solve (γ 0) and by the solve weighted by "
              f"F̃^γ at each edited layer (F from {out['fisher_tokens']:,} Wikipedia tokens, "
              f"{out['fisher_seconds']:.0f} s), statistics from {out['stats_tokens']:,} tokens of "
              f"{out.get('stats_source', 'wikipedia (built-in)')}"), "",
             "| passes | λ | γ | efficacy | paraphrase | specificity | solve (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | | | {base['efficacy']:.4f} | {base['paraphrase']:.4f} | "
              f"{base['specificity']:.4f} | |")]
    for m in list(rows.values())[1:]:
        lines.append(f"| {m['passes']} | {m['lambda']:g} | {m['gamma']:g} | {m['efficacy']:.4f} | "
                     f"{m['paraphrase']:.4f} | {m['specificity']:.4f} "
                     f"({m['specificity'] - base['specificity']:+.4f}) | {m['solve_seconds']:.0f} |")
    lines += ["", ("Target (issue 14): efficacy ≥ 0.95, paraphrase ≥ 0.80, specificity ≥ "
              f"{base['specificity'] - 0.02:.4f} (unedited − 0.02)."), "",
              f"Whole run {out['wall_seconds'] / 60:.1f} min.", "",
              f"Command: `{out['command']}`"]
    return lines


if __name__ == "__main__":
    main()
