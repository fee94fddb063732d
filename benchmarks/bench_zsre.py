"""zsRE on SmolLM2-135M: one MEMIT batch of the first n zsre-dev records (default 300),
with the unedited model beside it: efficacy, paraphrase and specificity (top-1 token
accuracy, teacher forced, as in ROME/MEMIT).

    python benchmarks/bench_zsre.py --n 300
Writes benchmarks/results/zsre.{json,md}."""
from __future__ import annotations

import argparse
import time

import torch
from common import DATA, command, write_results

from memstore.editing import default_settings, execute_memit
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_zsre
from memstore.eval.metrics import zsre_metrics
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

KEYS = ("efficacy", "paraphrase", "specificity")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_zsre(DATA / "zsre-dev.json")[: args.n]
    s = default_settings(model)
    stats = cached_statistics(model, tok, ad, s.layers, model_hash(model), cache_dir() / "stats",
                              s.stats_source, s.stats_tokens, s.seed)
    before = zsre_metrics(model, tok, records)
    t = time.perf_counter()
    res = execute_memit(model, tok, [r.request for r in records], s, stats,
                        templates=templates_for(model, tok, s), show_progress=False)
    edit_s = time.perf_counter() - t
    after = zsre_metrics(model, tok, records)
    out = {"command": command(), "settings": s.to_dict(), "n": len(records), "unedited": before,
           "edited": after, "edit_seconds": edit_s, "z_seconds": res.info["time_zs"],
           "solve_seconds": res.info["time_solve"],
           "mean_z_steps": sum(res.info["z_steps"]) / len(records),
           "wall_seconds": time.perf_counter() - started}
    lines = [f"# zsRE, SmolLM2-135M: {len(records)} zsre-dev records in one batch", "",
             "| | efficacy | paraphrase | specificity |", "| --- | --- | --- | --- |"]
    for name, m in (("unedited", before), ("after the edit", after)):
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in KEYS) + " |")
    lines += ["", (f"Top-1 token accuracy of the answer, teacher forced. Edit {edit_s:.0f} s "
              f"(z-vectors {res.info['time_zs']:.0f} s, mean {out['mean_z_steps']:.1f} steps; "
              f"solve {res.info['time_solve']:.1f} s); whole run {out['wall_seconds'] / 60:.1f} min."),
              "", f"Command: `{out['command']}`"]
    write_results("zsre", out, lines)


if __name__ == "__main__":
    main()
