"""One commit of the first `--n` counterfact-dev records with the z-vectors' loss keeping
other subjects' predictions: each δ is also run, scaled by β, at the subject's last token of
its own prompt about `m` other subjects of the batch, and its loss adds w · the mean
KL(current ‖ initial) of their next-token distributions (β < 0: |β|, and w · the rise of
log P(the request's new object) alone). The default first, then each `m:β:w`; the solve is
the default's.

    python benchmarks/bench_neighbours.py [--n 100] 4:1:0.5 4:1:2 4:-1:0.25
Prints ES / PS / NS for each (benchmarks/README.md, "Other subjects kept in the z-vectors'
loss")."""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import DATA

from memstore.editing import default_settings, execute_memit
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.editing.zs import compute_zs
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import DEFAULT_MODEL, cache_dir, load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("variants", nargs="*", default=["4:1:0.5", "4:1:2", "4:-1:0.25"],
                    help="m:β:w, the neighbour rows per request, δ's scale there, the weight")
    args = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model(args.model)
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_counterfact_records(DATA / "counterfact-dev.json")[: args.n]
    requests = [r.request for r in records]
    s = default_settings(model)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    templates = templates_for(model, tok, s)
    stats = cached_statistics(model, tok, ad, s.layers, model_hash(model), cache_dir() / "stats",
                              s.stats_source, s.stats_tokens, s.seed)
    m = counterfact_metrics(model, tok, records)
    print(f"unedited: ES {m['efficacy']:.3f} PS {m['paraphrase']:.3f} NS {m['neighborhood']:.3f}")
    for v in [None] + args.variants:
        model.load_state_dict(base)
        nb = None
        if v is not None:
            k, beta, w = v.split(":")
            nb = (int(k), float(beta), float(w))
        t = time.perf_counter()
        zs, info = compute_zs(model, tok, ad, requests, templates, s, show_progress=False,
                              neighbour=nb)
        t_z = time.perf_counter() - t
        execute_memit(model, tok, requests, s, stats, templates=templates, show_progress=False,
                      zs=zs)
        m = counterfact_metrics(model, tok, records)
        print(f"{v or 'default'}: ES {m['efficacy']:.3f} PS {m['paraphrase']:.3f} "
              f"NS {m['neighborhood']:.3f}  z-vectors {t_z:.0f} s, "
              f"{statistics.mean(info['z_steps']):.1f} steps", flush=True)


if __name__ == "__main__":
    main()
