"""A δ that ordinary text reads less (issue 14, item 2): zsRE 300 in one batch with the
recipe for question-answer facts, its z-vectors optimised with β · ½ δᵀ F δ added to their
loss (memstore/editing/fisher.py: F, the Fisher information of SmolLM2's predictions with
respect to h^L, from the first `--fisher-tokens` tokens of the built-in Wikipedia sample),
each written by the recipe's solve with the 285,000-token statistics at each λ. β 0 is the
recipe's own z-vectors (the same bits: tests/test_engine_fisher.py), from the cache
bench_zsre.py and bench_specificity.py share. One process, SmolLM2-135M, the first n zsre-dev records.

    python benchmarks/bench_fisher.py --n 300 --betas 0,1.5 --lambdas 1024,2048
Writes benchmarks/results/fisher.{json,md} (fisher-TOKENS.{json,md} for another
--fisher-tokens)."""
from __future__ import annotations

import argparse
import json
import time

import torch
from bench_sequential import base_zs
from bench_specificity import KEYS, SOLVE, mean
from bench_zsre import QA_RECIPE
from common import DATA, cached, command, write_results

from memstore.data import wikipedia_paragraphs
from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.fisher import fisher_matrix
from memstore.editing.keys import current_hidden
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics, token_chunks
from memstore.editing.zs import compute_zs
from memstore.eval.data import read_zsre
from memstore.eval.metrics import zsre_per_record
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

STATS_TOKENS = 285000


def cached_zs(model, tok, ad, requests, templates, settings, fisher, key: str) -> torch.Tensor:
    """The z-vectors of `requests` with the Fisher penalty `fisher` (F, β), cached by
    everything they depend on (common.cached)."""
    def compute() -> dict:
        t = time.perf_counter()
        zs, _ = compute_zs(model, tok, ad, requests, templates, settings, False, fisher)
        print(f"z-vectors, β {fisher[1]:g}: {time.perf_counter() - t:.0f}s", flush=True)
        return {"zs": zs.float()}

    return cached("fisher", key, compute)["zs"]


def cached_tensors(prefix: str, key: str, compute) -> tuple[dict[str, torch.Tensor], float]:
    """The tensors `compute()` returns and the seconds it took, cached by `key`, everything
    they depend on (common.cached)."""
    def timed() -> dict:
        t = time.perf_counter()
        tensors = dict(compute())
        return tensors | {"seconds": torch.tensor(time.perf_counter() - t)}

    saved = dict(cached(prefix, key, timed))
    return saved, float(saved.pop("seconds"))


def cached_fisher(model, tok, ad, layer: int, tokens: int, seed: int, model_id: str
                  ) -> tuple[torch.Tensor, float]:
    """F at `layer` from the first `tokens` tokens of the Wikipedia sample, and the seconds it
    took to compute (cached_tensors)."""
    key = json.dumps([model_id, layer, tokens, seed, 128])
    saved, seconds = cached_tensors("F", key, lambda: {"f": fisher_matrix(
        model, ad, token_chunks(tok, wikipedia_paragraphs(), tokens, 128), layer, seed)})
    return saved["f"], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--betas", default="0,1.5", help="β values, comma separated")
    ap.add_argument("--lambdas", default="1024,2048", help="the solve's λ values")
    ap.add_argument("--fisher-tokens", type=int, default=8192)
    args = ap.parse_args()
    betas = [float(x) for x in args.betas.split(",")]
    lambdas = [float(x) for x in args.lambdas.split(",")]
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
    L = qa.last_layer
    f, fisher_s = cached_fisher(model, tok, ad, L, args.fisher_tokens, qa.seed, model_id)
    print(f"F at layer {L} from {args.fisher_tokens} tokens: {fisher_s:.0f}s", flush=True)
    stats = cached_statistics(model, tok, ad, s.layers, model_id, cache_dir() / "stats",
                              s.stats_source, STATS_TOKENS, s.seed, 128)
    h = current_hidden(model, tok, ad, L, requests).cpu().double()
    base = zsre_per_record(model, tok, records)
    rows = {"unedited": {k: mean(v) for k, v in base.items()}}
    for beta in betas:
        key = json.dumps([model_id, qa.to_dict(), templates, [r.describe() for r in requests],
                          args.fisher_tokens, beta], default=str)
        zs = (base_zs(model, tok, ad, [records], qa, templates, model_id)[0] if beta == 0
              else cached_zs(model, tok, ad, requests, templates, qa, (f, beta), key))
        d = zs.double() - h
        read = float((0.5 * ((d @ f) * d).sum(1)).mean())
        norm = float((d.norm(dim=1) / h.norm(dim=1)).mean())
        for lam in lambdas:
            res = execute_memit(model, tok, requests, qa.with_changes(**(SOLVE | {"mom2_weight": lam})),
                                stats, templates=templates, zs=zs, show_progress=False)
            per = zsre_per_record(model, tok, records)
            unapply_updates(model, ad, res.updates)
            name = f"β {beta:g}, λ {lam:g}"
            rows[name] = {k: mean(v) for k, v in per.items()} | {
                "beta": beta, "lambda": lam, "delta_read": read, "delta_norm": norm}
            print(name, {k: round(rows[name][k], 3) for k in KEYS}, flush=True)
    out = {"command": command(), "n": len(records), "settings": qa.to_dict(),
           "stats_tokens": STATS_TOKENS, "fisher_tokens": args.fisher_tokens,
           "fisher_seconds": fisher_s, "rows": rows, "wall_seconds": time.perf_counter() - started}
    write_results("fisher" if args.fisher_tokens == 8192 else f"fisher-{args.fisher_tokens}",
                  out, report(out))


def report(out: dict) -> list[str]:
    rows, base = out["rows"], out["rows"]["unedited"]
    lines = [(f"# zsRE, SmolLM2-135M: {out['n']} zsre-dev records in one batch, the recipe's "
              f"z-vectors with β · ½ δᵀFδ in their loss (F from {out['fisher_tokens']} "
              f"Wikipedia tokens, {out['fisher_seconds']:.0f} s), the recipe's solve with "
              f"{out['stats_tokens']:,}-token statistics"), "",
             "| β | λ | efficacy | paraphrase | specificity | ½ δᵀFδ (mean) | ‖δ‖ / ‖h‖ |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | | {base['efficacy']:.3f} | {base['paraphrase']:.3f} | "
              f"{base['specificity']:.3f} | | |")]
    for m in list(rows.values())[1:]:
        lines.append(f"| {m['beta']:g} | {m['lambda']:g} | {m['efficacy']:.3f} | "
                     f"{m['paraphrase']:.3f} | {m['specificity']:.3f} "
                     f"({m['specificity'] - base['specificity']:+.3f}) | {m['delta_read']:.2f} | "
                     f"{m['delta_norm']:.3f} |")
    lines += ["", f"Whole run {out['wall_seconds'] / 60:.1f} min.", "",
              f"Command: `{out['command']}`"]
    return lines


if __name__ == "__main__":
    main()
