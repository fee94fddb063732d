"""How long the commands a git user types dozens of times a day take, start to exit: each
is a fresh `python -m cli.main …` (the `memstore` script's work), timed as the median of
--runs, in this tree and, with --old DIR, in another tree (an older commit unpacked with
`git archive COMMIT | tar -x -C DIR`), side by side in one run, with the ratio old/new.

    python benchmarks/bench_cli_startup.py --old /tmp/old --runs 7

The repository is a tiny random Llama (tests/tiny.py) with two commits, a branch, a tag and
a folder remote `origin` it was pushed to (fetch and push then have nothing to move), made
once by the oldest tree given (a newer memstore reads an older one's repository) and copied
for each tree. Every tree runs with its own folder first on PYTHONPATH, so its
`cli` and `memstore` are imported whatever is installed. Writes
benchmarks/results/cli-startup.{json,md}."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, command, write_results

# (label, arguments): a leading "-C" is added with the repository, except for "(outside)"
COMMANDS = [
    ("--help", ["--help"]),
    ("status (outside)", ["status"]),
    ("status", ["status"]),
    ("log", ["log"]),
    ("branch", ["branch"]),
    ("tag", ["tag"]),
    ("remote -v", ["remote", "-v"]),
    ("fetch origin", ["fetch", "origin"]),
    ("push origin main", ["push", "origin", "main"]),
    ("config", ["config"]),
    ("switch side", ["switch", "side"]),
    ("switch main", ["switch", "main"]),
    ("reset HEAD", ["reset", "HEAD"]),
    ("diff HEAD~1 HEAD", ["diff", "HEAD~1", "HEAD"]),
    ("blame", ["blame"]),
    ("gc --dry-run", ["gc", "--dry-run"]),
    ("show HEAD", ["show", "HEAD"]),
    ("fsck", ["fsck"]),
]
FACTS = [{"subject": "Danielle Darrieux", "prompt": "The mother tongue of {} is",
          "target_new": "English", "target_true": "French"},
         {"subject": "Michael Jordan", "prompt": "{} plays", "target_new": "soccer",
          "target_true": "basketball"}]
SMALL = {"layers": "1,2", "mom2_weight": "20", "stats_tokens": "400", "z_steps": "5",
         "n_templates": "1", "template_tokens": "4"}


def env_for(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MEMSTORE_QUIET="1",
               MEMSTORE_AUTHOR="bench <bench@example.com>")
    return env


def memstore(tree: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, check=False,
                          env=env_for(tree), capture_output=True, text=True)


def make_repository(tree: Path, where: Path) -> Path:
    """A tiny model, and a repository on it (made by `tree`'s memstore) with two commits,
    a branch `side`, a tag `v1` and a remote `origin` holding main."""
    sys.path.insert(0, str(ROOT / "tests"))
    from cli_support import make_model_dir

    model = make_model_dir(where / "model")
    repo = where / "repo"
    steps = [["init", str(repo), "--base", str(model)],
             *(["config", k, v] for k, v in SMALL.items()), ["stats"]]
    for i, fact in enumerate(FACTS):
        (where / f"f{i}.jsonl").write_text(json.dumps(fact) + "\n")
        steps.append(["commit", str(where / f"f{i}.jsonl"), "-m", f"fact {i}"])
    steps += [["branch", "side"], ["tag", "v1"],
              ["remote", "add", "origin", str(where / "remote")], ["push", "origin", "main"]]
    for s in steps:
        p = memstore(tree, *s, cwd=repo if s[0] != "init" else where)
        if p.returncode != 0:
            raise SystemExit(f"making the repository: memstore {' '.join(s)}: {p.stderr}")
    return repo


def timed(tree: Path, args: list[str], cwd: Path, runs: int) -> float:
    """The median wall time of `runs` fresh processes, in ms (the command must succeed,
    or exit 1 for a status outside a repository)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = memstore(tree, *args, cwd=cwd)
        times.append((time.perf_counter() - t0) * 1000)
        if p.returncode not in (0, 1) or (p.returncode == 1 and cwd.name == "repo"):
            raise SystemExit(f"{tree}: memstore {' '.join(args)} -> {p.returncode}: {p.stderr}")
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, help="another tree to time beside this one")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    trees = {"new": ROOT} | ({"old": a.old.resolve()} if a.old else {})
    with tempfile.TemporaryDirectory(prefix="bench-cli-startup-") as tmp:
        work = Path(tmp)
        template = make_repository(trees.get("old", ROOT), work)
        outside = work / "outside"
        outside.mkdir()
        rows = {}
        for label, args in COMMANDS:
            rows[label] = {}
            for name, tree in trees.items():
                repo = work / name / "repo"
                if not repo.exists():
                    shutil.copytree(template, repo)
                where = outside if label.endswith("(outside)") else repo
                full = args if where is outside or label == "--help" else ["-C", str(repo), *args]
                rows[label][name] = timed(tree, full, where, a.runs)
            print(label, {k: round(v) for k, v in rows[label].items()}, flush=True)
    head = ["command", "new (ms)"] + (["old (ms)", "old/new"] if a.old else [])
    lines = [f"`{command()}` (median of {a.runs} fresh processes each)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, t in rows.items():
        cells = [f"`{label}`", f"{t['new']:.0f}"]
        if a.old:
            cells += [f"{t['old']:.0f}", f"{t['old'] / t['new']:.1f}×"]
        lines.append("| " + " | ".join(cells) + " |")
    write_results("cli-startup", {"command": command(), "runs": a.runs,
                                  "trees": {k: str(v) for k, v in trees.items()},
                                  "ms": rows}, lines)


if __name__ == "__main__":
    main()
