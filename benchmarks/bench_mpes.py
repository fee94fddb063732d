"""ENCORE's most-probable early stopping (MPES, Gupta et al. 2025) against memstore's stopping
rule, one commit of `--n` counterfact-dev records from `--start`, the defaults otherwise.

memstore stops a request's z-vector once its mean target NLL is below `z_stop_loss` (0.1);
MPES stops it once every target token is the most probable token at every rewriting prompt
(the bare prompt and each template), teacher-forced; `MPES+K` waits K more steps after that.
Not in the engine (measured, not kept: benchmarks/README.md, "Stopping once the target is the
most probable"): the rule is put in by wrapping `zs.request_losses` so that the NLL it reports
to the stopping test is 0 for a request that has held MPES for K + 1 steps and never below
the threshold otherwise; the loss the optimiser follows is unchanged.

    python benchmarks/bench_mpes.py [--start 0] [--n 100] [--extra 0,2]
"""
from __future__ import annotations

import argparse

import torch
from common import DATA

import memstore.editing.zs as zs_module
from memstore.editing import default_settings, execute_memit
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import DEFAULT_MODEL, cache_dir, load_model

_losses = zs_module.request_losses
_chunk = zs_module._compute_chunk
RULE = {"extra": None}  # None: memstore's own rule
HELD: dict[str, torch.Tensor] = {}  # per request of the chunk: steps MPES has held in a row


def _all_most_probable(model, adapter, parts, delta, settings) -> tuple[torch.Tensor, torch.Tensor]:
    n = delta.shape[0]
    wrong, present = torch.zeros(n), torch.zeros(n)
    with torch.no_grad():
        for rows, h_L in parts:
            out = zs_module._suffix_forward(model, adapter, rows, h_L, delta.detach(), settings)
            logits = adapter.logits(model, out[rows.tgt_row, rows.tgt_pos]).float()
            miss = (logits.argmax(-1).cpu() != rows.tgt_id.cpu()).float()
            req = rows.request[rows.tgt_row].cpu()
            wrong.index_add_(0, req, miss)
            present.index_add_(0, req, torch.ones_like(miss))
    return (wrong == 0) & (present > 0), present > 0


def request_losses(model, adapter, parts, delta, kl_init, h_norm, settings, fisher=None):
    loss, nll, kl = _losses(model, adapter, parts, delta, kl_init, h_norm, settings, fisher)
    if RULE["extra"] is None or kl_init is None:  # kl_init None: the pass before the first step
        return loss, nll, kl
    ok, seen = _all_most_probable(model, adapter, parts, delta, settings)
    held = HELD.setdefault("n", torch.zeros(delta.shape[0]))
    held[ok] += 1
    held[seen & ~ok] = 0
    stop = (held > RULE["extra"]).to(nll.device)
    floor = torch.full_like(nll, 2 * settings.z_stop_loss)
    return loss, torch.where(stop, torch.zeros_like(nll), torch.maximum(nll, floor)).detach(), kl


def compute_chunk(*args, **kwargs):
    HELD.clear()
    return _chunk(*args, **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--extra", default="0,2", help="MPES+K rows, comma-separated K")
    args = ap.parse_args()
    torch.set_num_threads(2)
    zs_module.request_losses = request_losses
    zs_module._compute_chunk = compute_chunk
    lm = load_model(DEFAULT_MODEL)
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_counterfact_records(DATA / "counterfact-dev.json")[args.start:args.start + args.n]
    s = default_settings(model)
    stats = cached_statistics(model, tok, ad, s.layers, model_hash(model), cache_dir() / "stats",
                              s.stats_source, s.stats_tokens, s.seed)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    templates = templates_for(model, tok, s)

    def show(name: str, steps: list | None = None) -> None:
        m = counterfact_metrics(model, tok, records)
        tail = f" | mean steps {sum(steps) / len(steps):.2f}" if steps else ""
        print(f"{name}: ES {m['efficacy']:.3f} PS {m['paraphrase']:.3f} "
              f"NS {m['neighborhood']:.3f}{tail}", flush=True)

    print(f"counterfact-dev records {args.start}–{args.start + args.n - 1}, SmolLM2-135M defaults")
    show("unedited")
    rules = [("NLL < z_stop_loss (memstore)", None)]
    rules += [(f"MPES+{k}" if k else "MPES", k) for k in map(int, args.extra.split(","))]
    for name, extra in rules:
        RULE["extra"] = extra
        model.load_state_dict(base)
        res = execute_memit(model, tok, [r.request for r in records], s, stats,
                            templates=templates, show_progress=False)
        show(name, res.info["z_steps"])


if __name__ == "__main__":
    main()
