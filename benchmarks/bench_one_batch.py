"""The facts of the sequential benchmark written in one batch instead: is the gap to the
targets the history's, or MEMIT's at this many facts on this model?

The same `--commits` × `--size` records as bench_sequential.py (distinct subjects), their
z-vectors computed on the base model (the cache `bench_sequential.py --zs base` fills; computed
here when missing), all written by one solve from the base model, several ways side by side;
ES / PS / NS over the same spread sample as bench_sequential's `--final-sample`, and ES of the
first `--size` records (the first commit's facts there).

    python benchmarks/bench_one_batch.py --commits 20 --size 100 --final-sample 400
Writes benchmarks/results/one-batch-<commits>x<size>.{json,md}."""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from bench_sequential import base_zs, efficacy, subject_batches
from common import command, spread, write_results

from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.keys import current_hidden
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.metrics import counterfact_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

KEYS = ("efficacy", "paraphrase", "neighborhood")
# name -> the settings it changes from the defaults; a variant that moves L (the band's
# last layer) gets its own base-model z-vectors at that layer
VARIANTS = {"default (λ growing)": {},
            "λ fixed (`mom2_growth 0`)": {"mom2_growth": 0.0},
            "`passes 2`": {"passes": 2},
            "layers 1–8 (default band 3–8)": {"layers": (1, 2, 3, 4, 5, 6, 7, 8)},
            "layers 3–14 (L = 14)": {"layers": tuple(range(3, 15))},
            "layers 3–14 (L = 14), λ fixed": {"layers": tuple(range(3, 15)), "mom2_growth": 0.0},
            "attention o_proj alone, λ fixed": {"mom2_growth": 0.0},
            "o_proj half, then W_out": {},
            "o_proj half, then W_out, λ fixed": {"mom2_growth": 0.0}}
# variants that write through the attention output projection of the band's layers (a
# write site beside W_out, with its own statistics): the share of z − h^L it takes
O_PROJ = {"attention o_proj alone, λ fixed": 1.0, "o_proj half, then W_out": 0.5,
          "o_proj half, then W_out, λ fixed": 0.5}
DEFAULT_VARIANTS = ("default (λ growing)", "λ fixed (`mom2_growth 0`)", "`passes 2`",
                    "layers 1–8 (default band 3–8)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=20)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--final-sample", type=int, default=400)
    ap.add_argument("--variants", default=",".join(str(i) for i in range(len(DEFAULT_VARIANTS))),
                    help="comma-separated numbers of: " + "; ".join(
                        f"{i} {name}" for i, name in enumerate(VARIANTS)))
    args = ap.parse_args()
    names = list(VARIANTS)
    try:
        chosen = [names[int(i)] for i in args.variants.split(",")]
    except (ValueError, IndexError):
        raise SystemExit(f"--variants: numbers from 0 to {len(names) - 1}, not {args.variants!r}")
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    batches = subject_batches(args.commits, args.size)
    records = [r for b in batches for r in b]
    s0 = default_settings(model)
    settings = {name: s0.with_changes(**VARIANTS[name]) for name in chosen}
    layers = tuple(sorted({l for s in settings.values() for l in s.layers}))
    model_id = model_hash(model)  # hashes every weight: once
    stats = cached_statistics(model, tok, ad, layers, model_id, cache_dir() / "stats",
                              s0.stats_source, s0.stats_tokens, s0.seed)
    templates = templates_for(model, tok, s0)
    zs = {}  # L -> every record's base-model z-vectors at that layer
    for s in settings.values():
        if s.layers[-1] not in zs:
            zs[s.layers[-1]] = torch.cat(base_zs(model, tok, ad, batches, s, templates, model_id))
    sample = spread(records, args.final_sample)
    rows = {"unedited": counterfact_metrics(model, tok, sample)}
    print("unedited", {k: round(rows["unedited"][k], 3) for k in KEYS}, flush=True)
    requests = [r.request for r in records]
    o_ad = dataclasses.replace(ad, proj_path="self_attn.o_proj")
    o_stats = (cached_statistics(model, tok, o_ad, s0.layers, model_id,
                                 cache_dir() / "stats-o_proj", s0.stats_source, s0.stats_tokens,
                                 s0.seed) if any(n in O_PROJ for n in chosen) else None)
    runs = {}
    for name, s in settings.items():
        t = time.perf_counter()
        z = zs[s.layers[-1]]
        written = []  # (adapter, result), in the order applied
        if name in O_PROJ:  # o_proj first, toward h^L + share·(z − h^L)
            h = current_hidden(model, tok, ad, s.last_layer, requests)
            written.append((o_ad, execute_memit(model, tok, requests, s, o_stats, adapter=o_ad,
                                                templates=templates, zs=h + O_PROJ[name] * (z - h),
                                                show_progress=False)))
        if O_PROJ.get(name, 0) < 1:
            written.append((ad, execute_memit(model, tok, requests, s, stats, templates=templates,
                                              zs=z, show_progress=False)))
        solve = time.perf_counter() - t
        rows[name] = counterfact_metrics(model, tok, sample)
        runs[name] = {"first_es": efficacy(model, tok, batches[0]), "solve_seconds": solve,
                      "lambda": written[-1][1].info.get("lambda")}
        for adapter, res in reversed(written):
            unapply_updates(model, adapter, res.updates)
        print(name, {k: round(rows[name][k], 3) for k in KEYS}, runs[name], flush=True)
    out = {"command": command(), "settings": s0.to_dict(), "commits": args.commits,
           "size": args.size, "final_sample": args.final_sample, "rows": rows, "runs": runs,
           "wall_seconds": time.perf_counter() - started}
    suffix = "" if chosen == list(DEFAULT_VARIANTS) else "-variants-" + args.variants.replace(",", "")
    write_results(f"one-batch-{args.commits}x{args.size}{suffix}", out, report(out))


def report(out: dict, title: str = "", intro: str = "", first_column: str = "") -> list[str]:
    """The results table; `title` and `intro` in place of this benchmark's (bench_names.py)."""
    n, u = out["commits"] * out["size"], out["rows"]["unedited"]
    lines = [f"# {n} CounterFact facts in one batch{title}, SmolLM2-135M", "",
             (intro or f"The records of `bench_sequential.py --commits {out['commits']} --size "
              f"{out['size']}`, their z-vectors computed on the base model, written by one "
              f"solve; ES / PS / NS over {out['final_sample']} of them spread over all, ES of "
              f"the first {out['size']}."), "",
             (f"| {first_column} |" if first_column else "| |")
             + " ES | ES (first commit's) | PS | NS | λ | solve |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | {u['efficacy']:.3f} | – | {u['paraphrase']:.3f} | "
             f"{u['neighborhood']:.3f} | | |")]
    for name, run in out["runs"].items():
        m = out["rows"][name]
        lines.append(f"| {name} | {m['efficacy']:.3f} | {run['first_es']:.3f} | "
                     f"{m['paraphrase']:.3f} | {m['neighborhood']:.3f} "
                     f"({m['neighborhood'] - u['neighborhood']:+.3f}) | {run['lambda']:g} | "
                     f"{run['solve_seconds']:.0f} s |")
    lines += ["", f"Whole run {out['wall_seconds'] / 60:.0f} min.", "",
              f"Command: `{out['command']}`"]
    return lines


if __name__ == "__main__":
    main()
