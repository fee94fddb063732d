"""One commit of `--n` counterfact-dev records (from `--start`) with the z-vectors optimised as
memstore does and with EAMET's alignment of the residuals with the keys (compute_zs's
`align`, after Dai et al., "Robust massive model editing via embedding alignment
optimization", ICLR 2026: each δ's loss adds KL(p ‖ q) of its key's and its own cosine
similarities to the other facts', and their squared gap on the 50 nearest keys); the
statistics, the templates and the solve are the defaults for all. Besides ES / PS / NS it
prints how much of z − h^L the solve wrote at each fact (the fraction of the residual the
edited model's h^L moved along it, mean and lowest decile).

    python benchmarks/bench_zalign.py [--start 0] [--n 100] [--weights 2:8,8:32] [--tau 0.07]
Writes results/zalign.{md,json} (zalign-from<start>-n<n> otherwise; benchmarks/README.md,
"The residuals aligned with the keys, after EAMET")."""
from __future__ import annotations

import argparse
import time

import torch
from common import DATA, command, write_results

from memstore.editing import default_settings, execute_memit
from memstore.editing.alignment import Alignment, last_layer_keys
from memstore.editing.keys import SubjectRows
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.editing.zs import compute_zs
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import DEFAULT_MODEL, cache_dir, load_model


def h_at_subject(model, tok, ad, requests, s) -> torch.Tensor:
    walk = SubjectRows(model, tok, ad, [r.prompt for r in requests],
                       [r.subject for r in requests], s.last_layer, rule=s.token_rule)
    return walk.at(s.last_layer, "out").float().cpu()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--start", type=int, default=0, help="the first record's index")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--weights", default="2:8,8:32",
                    help="KL:MSE weights of the alignment, comma-separated pairs")
    ap.add_argument("--tau", type=float, default=0.07)
    args = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model(args.model)
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_counterfact_records(DATA / "counterfact-dev.json")[args.start: args.start + args.n]
    requests = [r.request for r in records]
    s = default_settings(model)
    stats = cached_statistics(model, tok, ad, s.layers, model_hash(model), cache_dir() / "stats",
                              s.stats_source, s.stats_tokens, s.seed)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    templates = templates_for(model, tok, s)
    keys = last_layer_keys(model, tok, ad, requests, templates, s)
    h0 = h_at_subject(model, tok, ad, requests, s)
    rows = []

    def measure(name: str, align: Alignment | None) -> None:
        model.load_state_dict(base)
        t = time.perf_counter()
        zs, info = compute_zs(model, tok, ad, requests, templates, s, False, align=align)
        z_s = time.perf_counter() - t
        execute_memit(model, tok, requests, s, stats, adapter=ad, templates=templates,
                      show_progress=False, zs=zs)
        m = counterfact_metrics(model, tok, records)
        r = zs.float() - h0
        moved = ((h_at_subject(model, tok, ad, requests, s) - h0) * r).sum(1) / r.pow(2).sum(1)
        rows.append({"name": name, "es": m["efficacy"], "ps": m["paraphrase"],
                     "ns": m["neighborhood"], "z_seconds": z_s,
                     "mean_steps": sum(info["z_steps"]) / len(requests),
                     "written_mean": float(moved.mean()),
                     "written_p10": float(moved.quantile(0.1))})
        print(rows[-1], flush=True)

    unedited = counterfact_metrics(model, tok, records)
    print("unedited", unedited["efficacy"], unedited["paraphrase"], unedited["neighborhood"], flush=True)
    measure("default", None)
    for pair in args.weights.split(","):
        kl, mse = (float(x) for x in pair.split(":"))
        measure(f"aligned, KL {kl:g}, MSE {mse:g}, τ {args.tau:g}",
                Alignment(keys, kl_weight=kl, mse_weight=mse, tau=args.tau))
    lines = [f"`{command()}`", "",
             (f"One commit of counterfact-dev records {args.start}–{args.start + args.n - 1}, "
              f"{args.model}, default settings; only the z-vectors' optimisation differs. "
              "Written: the share of z − h^L the edited model's h^L moved along it."), "",
             "| z-vectors | ES | PS | NS | written (mean / lowest 10%) | mean steps | z-vectors' time |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | {unedited['efficacy']:.3f} | {unedited['paraphrase']:.3f} | "
              f"{unedited['neighborhood']:.3f} | | | |")]
    lines += [f"| {r['name']} | {r['es']:.3f} | {r['ps']:.3f} | {r['ns']:.3f} | "
              f"{r['written_mean']:.2f} / {r['written_p10']:.2f} | {r['mean_steps']:.1f} | "
              f"{r['z_seconds']:.0f} s |" for r in rows]
    name = "zalign" if (args.start, args.n) == (0, 100) else f"zalign-from{args.start}-n{args.n}"
    write_results(name, {"command": command(), "settings": s.to_dict(), "start": args.start,
                         "n": args.n, "tau": args.tau, "unedited": unedited, "rows": rows}, lines)


if __name__ == "__main__":
    main()
