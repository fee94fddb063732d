"""How the commands scale with the size of the history, not the model (a scaling audit).

Builds repositories on the tests' tiny 4-layer Llama (tests/cli_support.py): one commit
through the CLI, then N commits of F facts written through the library API as `memstore
commit` lays them out (parents and basis HEAD, one update set of the shapes, settings,
templates and statistics of the CLI's commit; ΔW and z-vectors seeded random), with a tag
every 10 commits. Then times each command as its own process and reads its peak memory
(the process's maximum resident set, from wait4). The tiny model keeps the model's share
small, so what grows is what the history costs.

    python benchmarks/bench_history_scale.py [--sizes 10x100,100x100,1000x100,10x10000]
Writes benchmarks/results/history_scale.json and history_scale.md."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, command

sys.path.insert(0, str(ROOT / "tests"))

READS = [["log", "--oneline"], ["log", "--graph", "--oneline"], ["log", "-n", "1"],
         ["status"], ["show"], ["diff", "HEAD~1"], ["tag"], ["fsck", "--quick"], ["fsck"],
         ["gc", "--dry-run"], ["export", "HEAD", "{out}"]]
WRITES = [["revert", "HEAD~10"], ["squash", "HEAD~3"]]  # each on a fresh copy


def build(root: Path, n_commits: int, n_facts: int) -> Path:
    import torch
    from cli_support import SETTINGS, make_model_dir, ok, write_facts

    from memstore.editing.requests import Request
    from memstore.editing.result import EditResult, LayerUpdate
    from memstore.store.repository import Repository

    model, repo_dir = make_model_dir(root / "model"), root / "repo"
    ok("init", repo_dir, "--base", model)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo_dir)
    first = write_facts(root / "first.jsonl", [("Danielle Darrieux",
                                                "The mother tongue of {} is", "English",
                                                "French")])
    ok("commit", first, "-m", "the CLI's commit", cwd=repo_dir)
    with Repository.open(repo_dir) as repo:
        head = repo.head().commit
        record, like = repo.get_commit(head), repo.updates_of(head)
        s0, d_model = record.update_sets[0], repo.zs_of_set(head).shape[1]
        g = torch.Generator().manual_seed(0)
        for c in range(n_commits):
            requests = [Request(subject=f"Subject{c}x{i}", prompt="{} plays",
                                target_new=f"t{c}x{i}", target_true="soccer")
                        for i in range(n_facts)]
            updates = {l: LayerUpdate(l, torch.randn(u.U.shape[0], n_facts, generator=g) * 1e-3,
                                      torch.randn(u.V.shape[0], n_facts, generator=g) * 1e-3,
                                      torch.randn(n_facts, u.V.shape[0], generator=g),
                                      u.transposed)
                       for l, u in like.items()}
            zs = torch.randn(n_facts, d_model, generator=g)
            result = EditResult(requests, s0.edit_settings, list(s0.templates), zs, updates,
                                dict(s0.stats), dict(s0.info))
            parent = repo.head().commit
            new = repo.write_commit([result], parents=[parent], basis=parent,
                                    message=f"commit {c}", metrics=record.metrics,
                                    time=1.7e9 + c)
            if c % 10 == 0:
                repo.create_tag(f"v{c}", new.id)
    return repo_dir


def run(args: list[str], cwd: Path) -> tuple[float, float | None, int]:
    """Seconds, peak resident MB (None without /usr/bin/time) and exit status of `memstore
    ARGS` as its own process. The peak is read by /usr/bin/time: the rusage of a child
    forked from this process starts at this process's own peak (Linux carries it over
    exec), so it cannot be read here."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMSTORE_QUIET": "1", "OMP_NUM_THREADS": "1"}
    timer = shutil.which("time", path="/usr/bin")
    with tempfile.NamedTemporaryFile("r") as peak:
        wrap = [timer, "-f", "%M", "-o", peak.name] if timer else []
        t = time.perf_counter()
        code = subprocess.run([*wrap, sys.executable, "-m", "cli.main", *args], cwd=cwd,
                              env=env, check=False, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        seconds = time.perf_counter() - t
        kb = peak.read().strip().splitlines()
    return seconds, (int(kb[-1]) / 1024 if kb and kb[-1].isdigit() else None), code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10x100,100x100,1000x100,10x10000",
                    help="COMMITSxFACTS, comma-separated")
    sizes = [tuple(map(int, s.split("x"))) for s in ap.parse_args().sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="memstore-scale-") as tmp:
        os.environ.setdefault("MEMSTORE_STATS_CACHE", str(Path(tmp) / "stats"))
        for n, f in sizes:
            root = Path(tmp) / f"{n}x{f}"
            t = time.perf_counter()
            repo = build(root, n, f)
            print(f"built {n} commits x {f} facts in {time.perf_counter() - t:.1f} s", flush=True)
            for args in [*READS, *WRITES]:
                where = repo
                if args in WRITES:
                    where = root / "copy"
                    shutil.rmtree(where, ignore_errors=True)
                    shutil.copytree(repo, where)
                shown = [a.replace("{out}", str(root / "out")) for a in args]
                shutil.rmtree(root / "out", ignore_errors=True)
                seconds, mb, code = run(shown, where)
                rows.append({"commits": n, "facts": f, "command": " ".join(args).replace(
                    " {out}", " OUT"), "seconds": round(seconds, 2),
                    "peak_mb": round(mb) if mb is not None else None, "exit": code})
                print(f"{n:>5} x {f:<6} {rows[-1]['command']:<24} {seconds:7.2f} s "
                      f"{rows[-1]['peak_mb']} MB exit {code}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "history_scale.json").write_text(json.dumps(
        {"command": command(), "rows": rows}, indent=2) + "\n")
    lines = [f"`{command()}`", "", "| commits | facts/commit | command | s | peak MB | exit |",
             "| ---: | ---: | --- | ---: | ---: | ---: |"]
    lines += [f"| {r['commits']} | {r['facts']} | `{r['command']}` | {r['seconds']} | "
              f"{r['peak_mb']} | {r['exit']} |" for r in rows]
    (RESULTS / "history_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
