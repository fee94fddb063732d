"""One commit of the first `--n` counterfact-dev records solved with E[k kᵀ] from the default
number of tokens and from the whole built-in Wikipedia sample, side by side: the z-vectors are
computed once (a first commit's depend only on the base model), so the statistics alone differ.

    python benchmarks/bench_stats_size.py [--model M] [--n 100] [--tokens 285000]
Prints ES / PS / NS for the unedited model and each solve (benchmarks/README.md, "With each
commit's own z-vectors the larger sample is past the default")."""
from __future__ import annotations

import argparse

import torch
from common import DATA

from memstore.editing import default_settings, execute_memit
from memstore.editing.memit import templates_for
from memstore.editing.settings import COMPUTE_DTYPES
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import DEFAULT_MODEL, cache_dir, load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--compute-dtype", choices=COMPUTE_DTYPES, default=None,
                    help="the z-vectors' passes in this dtype (default: the model's setting)")
    ap.add_argument("--tokens", type=int, default=285_000, help="the larger sample's tokens")
    args = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model(args.model)
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_counterfact_records(DATA / "counterfact-dev.json")[: args.n]
    s0 = default_settings(model)
    if args.compute_dtype:
        s0 = s0.with_changes(compute_dtype=args.compute_dtype)
    model_id = model_hash(model)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    templates = templates_for(model, tok, s0)

    def show(name: str) -> None:
        m = counterfact_metrics(model, tok, records)
        print(f"{name}: ES {m['efficacy']:.3f} PS {m['paraphrase']:.3f} "
              f"NS {m['neighborhood']:.3f}", flush=True)

    show("unedited")
    zs = None
    for tokens in (s0.stats_tokens, args.tokens):
        s = s0.with_changes(stats_tokens=tokens)
        stats = cached_statistics(model, tok, ad, s.layers, model_id, cache_dir() / "stats",
                                  s.stats_source, s.stats_tokens, s.seed)
        model.load_state_dict(base)
        res = execute_memit(model, tok, [r.request for r in records], s, stats,
                            templates=templates, show_progress=False, zs=zs)
        zs = res.zs  # the second solve reuses the first's z-vectors
        show(f"statistics from {tokens} tokens")


if __name__ == "__main__":
    main()
