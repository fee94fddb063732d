"""What the retention check of `memstore commit` costs, and what it reads.

SmolLM2-135M, default settings, CounterFact records with distinct subjects (those of
bench_sequential.py: counterfact-dev.json, then counterfact-easyedit-dev.json), a fresh
repository with its statistics stored before the clock starts, `--commits` commits of
`--size` records through `porcelain.commit` (as `memstore commit` runs them). Per commit:
its wall time and, side by side in the same run, the time spent in the retention check (the
two `recall` passes over the sample of earlier facts); the recall it recorded before → after;
and, for comparison, CounterFact's ES (P(new) > P(true)) over the same sample after the
commit, measured outside the commit (the edit prompt only).

    python benchmarks/bench_retention.py [--commits 3] [--size 130]
Writes benchmarks/results/retention.json and retention.md."""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch
from bench_sequential import subject_batches
from common import command, write_results

from memstore.eval.metrics import counterfact_metrics
from memstore.store import porcelain, retention
from memstore.store.states import state_of, statistics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=3)
    ap.add_argument("--size", type=int, default=130)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    batches = subject_batches(args.commits, args.size)

    spent: list[float] = []
    timed = porcelain.recall

    def recall(*a, **k):
        t = time.perf_counter()
        try:
            return timed(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    porcelain.recall = recall
    rows = []
    t_run = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        repo = porcelain.init(Path(work) / "repo", "smollm2-135m")
        statistics(repo, porcelain.open_base(repo), porcelain.current_settings(repo))
        for i, batch in enumerate(batches, 1):
            spent.clear()
            live = repo.facts_at(repo.head().commit) if i > 1 else []
            report = porcelain.commit(repo, [r.request for r in batch], f"batch {i}",
                                      note=print)
            row = {"commit": i, "facts": len(batch), "commit_s": report.seconds,
                   "check_s": sum(spent), "efficacy": report.metrics.get("efficacy")}
            earlier = report.metrics.get("earlier")
            if earlier:
                sample, _ = retention.earlier_sample(live, [r.request for r in batch])
                sample = [dataclasses.replace(r, paraphrases=(), neighborhood=()) for r in sample]
                base = state_of(repo, report.commit.id)
                es = counterfact_metrics(base.model, base.tokenizer, sample)["efficacy"]
                row.update(earlier=earlier, earlier_es=es)
            rows.append(row)
            print(row, flush=True)
        repo.close()

    title = (f"# The retention check of `memstore commit` (SmolLM2-135M, {args.commits} "
             f"commits of {args.size} CounterFact records, distinct subjects, default settings)")
    header = ("| commit | wall | retention check | share | earlier facts checked | recalled "
              "before → after | lost | ES of the same sample after |")
    lines = [title, "", header,
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        e = r.get("earlier")
        check = (f"{e['n']} of {e['live']}", f"{e['recalled_before']:.3f} → {e['recalled']:.3f}",
                 str(e["lost"]), f"{r['earlier_es']:.3f}") if e else ("–",) * 4
        lines.append(f"| {r['commit']} | {r['commit_s']:.1f} s | {r['check_s']:.1f} s | "
                     f"{r['check_s'] / r['commit_s']:.3f} | " + " | ".join(check) + " |")
    warned = [r["commit"] for r in rows
              if r.get("earlier") and retention.retention_warning(r["earlier"])]
    said = (f"Commits that warned: {', '.join(map(str, warned)) or 'none'} (a loss of "
            f"{retention.LOST_WARNING:.0%} of the sampled facts recalled before).")
    lines += ["", said,
              "", f"Whole run {(time.perf_counter() - t_run) / 60:.1f} min.", "",
              f"Command: `{command()}`"]
    write_results("retention", {"rows": rows, "command": command()}, lines)


if __name__ == "__main__":
    main()
