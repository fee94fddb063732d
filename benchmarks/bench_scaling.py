"""Quality against batch size on SmolLM2-135M (the analogue of the paper's Figure 5 and
Table 2): one MEMIT batch of the first n CounterFact dev records, for each n, each from
the base model, with the unedited model beside it. Per n: ES, PS, NS, S over the n
records, GE on a fixed sample of generation prompts, and the wall time of the edit.

    python benchmarks/bench_scaling.py --sizes 1,10,100,300
Writes benchmarks/results/scaling.{json,md,png}."""
from __future__ import annotations

import argparse
import time

import torch
from common import DATA, command, ge_sample, pyplot, write_results

from memstore.editing import default_settings, execute_memit
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics, generation_entropy
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

KEYS = ("efficacy", "paraphrase", "neighborhood", "score")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,100,300")
    ap.add_argument("--ge-records", type=int, default=32)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    base = {k: v.clone() for k, v in model.state_dict().items()}
    records = read_counterfact_records(DATA / "counterfact-dev.json")
    s = default_settings(model)
    stats = cached_statistics(model, tok, ad, s.layers, model_hash(model), cache_dir() / "stats",
                              s.stats_source, s.stats_tokens, s.seed)
    templates = templates_for(model, tok, s)
    largest = records[: max(sizes)]
    sample = ge_sample(largest, args.ge_records)

    def row(on) -> dict:
        t = time.perf_counter()
        m = counterfact_metrics(model, tok, on) | {"ge": generation_entropy(model, tok, sample)}
        return m | {"eval_seconds": time.perf_counter() - t}

    out = {"command": command(), "settings": s.to_dict(), "ge_records": args.ge_records,
           "unedited": row(largest), "rows": {}}
    print("unedited", {k: round(out["unedited"][k], 3) for k in (*KEYS, "ge")}, flush=True)
    for n in sizes:
        model.load_state_dict(base)
        t = time.perf_counter()
        res = execute_memit(model, tok, [r.request for r in records[:n]], s, stats,
                            templates=templates, show_progress=False)
        edit_s = time.perf_counter() - t
        out["rows"][n] = row(records[:n]) | {"edit_seconds": edit_s,
                                             "mean_z_steps": sum(res.info["z_steps"]) / n,
                                             "z_seconds": res.info["time_zs"],
                                             "solve_seconds": res.info["time_solve"]}
        print(n, {k: round(out["rows"][n][k], 3) for k in (*KEYS, "ge", "edit_seconds")}, flush=True)
    model.load_state_dict(base)
    out["wall_seconds"] = time.perf_counter() - started
    report(out, sizes)


def report(out: dict, sizes: list[int]) -> None:
    u = out["unedited"]
    lines = ["# Quality against batch size, SmolLM2-135M, CounterFact dev (one batch per n)", "",
             (f"ES, PS, NS, S over the n records edited (unedited: over the first {max(sizes)}); GE on "
             f"{out['ge_records']} records × 2 generation prompts (top-k 5, 90 new tokens, seed 0); "
             "edit = z-vectors + solve, statistics cached."), "",
             "| n | ES | PS | NS | S | GE | edit wall time |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | {u['efficacy']:.3f} | {u['paraphrase']:.3f} | {u['neighborhood']:.3f} | "
             f"{u['score']:.3f} | {u['ge']:.3f} | – |")]
    for n in sizes:
        r = out["rows"][n]
        lines.append(f"| {n} | {r['efficacy']:.3f} | {r['paraphrase']:.3f} | {r['neighborhood']:.3f} | "
                     f"{r['score']:.3f} | {r['ge']:.3f} | {r['edit_seconds']:.0f} s |")
    lines += ["", f"Whole run {out['wall_seconds'] / 60:.1f} min. Command: `{out['command']}`"]
    stem = write_results("scaling", out, lines)
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in zip(KEYS[:3], ("ES", "PS", "NS")):
        line, = axes[0].plot(sizes, [out["rows"][n][key] for n in sizes], marker="o", label=label)
        axes[0].axhline(u[key], color=line.get_color(), linestyle=":", linewidth=1)
    axes[0].set_xscale("log")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_xlabel("edits in one batch (n)")
    axes[0].set_title("ES / PS / NS (dotted: unedited)")
    axes[0].legend()
    axes[1].plot(sizes, [out["rows"][n]["ge"] for n in sizes], marker="o", color="C3")
    axes[1].axhline(u["ge"], color="C3", linestyle=":")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("edits in one batch (n)")
    axes[1].set_title("GE (dotted: unedited)")
    fig.suptitle("MEMIT on SmolLM2-135M, CounterFact dev")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
