"""One commit of `--n` counterfact-dev records (from `--start`) with the z-vectors optimised as
memstore does and with noise in their optimisation (compute_zs's `noise`, after NAMET,
"Robust massive model editing via noise-aware memory optimization", 2025: at every step each
rewriting prompt's h^L at the subject's last token also gets ε ~ N(0, σ²‖h^L‖²/d I)); the
statistics, the templates and the solve are the defaults for all.

    python benchmarks/bench_znoise.py [--start 0] [--n 100] [--sigmas 0.25,0.5,1.0]
Writes results/znoise.{md,json} (znoise-from<start>.{md,json} from another start;
benchmarks/README.md, "Noise in the z-vectors' optimisation")."""
from __future__ import annotations

import argparse
import time

import torch
from common import DATA, command, write_results

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
    ap.add_argument("--start", type=int, default=0, help="the first record's index")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--sigmas", default="0.25,0.5,1.0", help="σ of the noise, comma-separated")
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
    rows = []

    def measure(name: str, sigma: float | None) -> None:
        model.load_state_dict(base)
        t = time.perf_counter()
        zs, info = compute_zs(model, tok, ad, requests, templates, s, False, noise=sigma)
        z_s = time.perf_counter() - t
        execute_memit(model, tok, requests, s, stats, adapter=ad, templates=templates,
                      show_progress=False, zs=zs)
        m = counterfact_metrics(model, tok, records)
        rows.append({"name": name, "sigma": sigma, "es": m["efficacy"], "ps": m["paraphrase"],
                     "ns": m["neighborhood"], "z_seconds": z_s,
                     "mean_steps": sum(info["z_steps"]) / len(requests)})
        print(rows[-1], flush=True)

    unedited = counterfact_metrics(model, tok, records)
    print("unedited", unedited["efficacy"], unedited["paraphrase"], unedited["neighborhood"], flush=True)
    measure("default", None)
    for sigma in (float(x) for x in args.sigmas.split(",")):
        measure(f"noise σ {sigma:g}", sigma)
    lines = [f"`{command()}`", "",
             (f"One commit of counterfact-dev records {args.start}–{args.start + args.n - 1}, "
              f"{args.model}, default "
             "settings; only the z-vectors' optimisation differs."), "",
             "| z-vectors | ES | PS | NS | mean steps | z-vectors' time |",
             "| --- | --- | --- | --- | --- | --- |",
             (f"| unedited | {unedited['efficacy']:.3f} | {unedited['paraphrase']:.3f} | "
             f"{unedited['neighborhood']:.3f} | | |")]
    lines += [f"| {r['name']} | {r['es']:.3f} | {r['ps']:.3f} | {r['ns']:.3f} | "
              f"{r['mean_steps']:.1f} | {r['z_seconds']:.0f} s |" for r in rows]
    write_results("znoise" if not args.start else f"znoise-from{args.start}",
                  {"command": command(), "settings": s.to_dict(), "start": args.start, "n": args.n,
                             "unedited": unedited, "rows": rows}, lines)


if __name__ == "__main__":
    main()
