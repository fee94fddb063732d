"""How the read and maintenance commands scale with a team's history (a scaling audit).

Builds, on the tests' tiny 4-layer Llama (tests/cli_support.py), a repository of N commits
of F facts each, as a team's looks after a while: one commit through the CLI, then plain
commits written through the library as `memstore commit` lays them out (parents and basis
HEAD, one update set of the CLI commit's shapes, settings, templates and statistics; ΔW and
z-vectors seeded random; three authors), a branch `side` forked at N/10 with 5 commits and
never merged, every 50 commits a feature branch of 3 commits merged back (`porcelain.merge`,
a real solve) and a revert of HEAD~3 (`porcelain.revert`, a real replay), a tag every 25.
Every fact has its own subject. Then runs each command as its own process, as a user does
(write commands on a fresh copy), and reads its wall time and CPU time (user + system, of
the process: less moved by other work on the machine than the wall time). The tiny model
keeps the model's share small, so what grows is what the history costs; a process's start
(imports) is the `--help` row.

    python benchmarks/bench_history_scale.py [--sizes 100,300,1000] [--facts 20] [--work DIR]

--work keeps the built repositories in DIR (DIR/n<N>/repo) and reuses them on the next run.
Writes benchmarks/results/history-scale.json and history-scale.md."""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, command, write_results

sys.path.insert(0, str(ROOT / "tests"))

AUTHORS = ["Ada <ada@example.com>", "Bob <bob@example.com>", "Cy <cy@example.com>"]
READS = {"--help (start)": ["--help"], "status": ["status"], "log": ["log"],
         "log -n 5": ["log", "-n", "5"], "log --author Bob": ["log", "--author", "Bob"],
         "show HEAD": ["show", "HEAD"], "diff HEAD~1 HEAD": ["diff", "HEAD~1", "HEAD"],
         "diff v25 HEAD": ["diff", "v25", "HEAD"], "blame": ["blame"],
         "blame --contains 'm3 1'": ["blame", "--contains", "m3 1"], "branch": ["branch"],
         "tag": ["tag"], "fsck": ["fsck"], "gc (nothing to remove)": ["gc"]}
WRITES = {"revert HEAD~5": ["revert", "HEAD~5"], "cherry-pick side~2": ["cherry-pick", "side~2"],
          "merge side": ["merge", "side"], "export HEAD OUT": ["export", "HEAD", "{out}"]}
REMOTE = ["push (first)", "fetch (nothing new)", "push (one commit)"]


def build(root: Path, model: Path, n: int, f: int) -> Path:
    """The repository of `n` commits of `f` facts described above, in root/repo."""
    import torch
    from cli_support import SETTINGS, ok, write_facts

    from memstore.editing.requests import Request
    from memstore.editing.result import EditResult, LayerUpdate
    from memstore.store import porcelain
    from memstore.store.repository import Repository

    repo_dir = root / "repo"
    ok("init", repo_dir, "--base", model)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo_dir)
    first = write_facts(root / "first.jsonl", [("Danielle Darrieux",
                                                "The mother tongue of {} is", "English",
                                                "French")])
    ok("commit", first, "-m", "the CLI's commit", cwd=repo_dir)
    g = torch.Generator().manual_seed(0)
    made = 1
    with Repository.open(repo_dir) as repo:
        head = repo.head().commit
        record, like = repo.get_commit(head), repo.updates_of(head)
        s0, d_model = record.update_sets[0], repo.zs_of_set(head).shape[1]

        def commit(tag: str) -> None:
            nonlocal made
            requests = [Request(subject=f"Person {tag} {i}", prompt="{} plays",
                                target_new=f"sport {made % 7}", target_true="chess")
                        for i in range(f)]
            updates = {l: LayerUpdate(l, torch.randn(u.U.shape[0], f, generator=g) * 1e-3,
                                      torch.randn(u.V.shape[0], f, generator=g) * 1e-3,
                                      torch.randn(f, u.V.shape[0], generator=g), u.transposed)
                       for l, u in like.items()}
            result = EditResult(requests, s0.edit_settings, list(s0.templates),
                                torch.randn(f, d_model, generator=g), updates, dict(s0.stats),
                                dict(s0.info))
            parent = repo.head().commit
            repo.write_commit([result], parents=[parent], basis=parent,
                              message=f"commit {made} ({tag})", metrics=record.metrics,
                              time=1.7e9 + made, author=AUTHORS[made % 3])
            made += 1

        c = 0
        while made < n:
            c += 1
            commit(f"m{c}")
            if made == max(3, n // 10):
                repo.create_branch("side")
                repo.switch("side")
                for j in range(5):
                    commit(f"s{j}")
                repo.switch("main")
            if made % 25 == 0:
                repo.create_tag(f"v{made}")
            if made % 50 == 10 and made + 7 < n:
                name = f"feature{made}"
                repo.create_branch(name)
                repo.switch(name)
                for j in range(3):
                    commit(f"{name}x{j}")
                repo.switch("main")
                commit(f"m{c}b")
                porcelain.merge(repo, name)
                made += 1
            if made % 50 == 30:
                porcelain.revert(repo, "HEAD~3")
                made += 1
    return repo_dir


def run(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit status of `memstore ARGS` as its
    own process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMSTORE_QUIET": "1",
           "OMP_NUM_THREADS": "1", "MEMSTORE_AUTHOR": AUTHORS[0]}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, env=env,
                          check=False, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, code


MADE, BUILT = ".bench-history-scale", ".bench-history-scale-built"  # WORK/nN's markers


def fresh_copy(root: Path) -> Path:
    for name in ("copy", "out", "remote"):
        shutil.rmtree(root / name, ignore_errors=True)
    shutil.copytree(root / "repo", root / "copy")
    return root / "copy"


def measure(root: Path) -> dict[str, tuple[float, float, int]]:
    repo, out = root / "repo", {}
    for name, args in READS.items():
        out[name] = run(args, repo)
    for name, args in WRITES.items():
        out[name] = run([a.replace("{out}", str(root / "out")) for a in args], fresh_copy(root))
    copy = fresh_copy(root)
    run(["remote", "add", "origin", str(root / "remote")], copy)
    out["push (first)"] = run(["push", "origin", "main"], copy)
    out["fetch (nothing new)"] = run(["fetch", "origin"], copy)
    run(["revert", "HEAD~2"], copy)
    out["push (one commit)"] = run(["push", "origin", "main"], copy)
    for name, (wall, cpu, code) in out.items():
        print(f"{root.name:>6} {name:<26} wall {wall:7.2f} s  cpu {cpu:7.2f} s  exit {code}",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,300,1000", help="commits, comma-separated")
    ap.add_argument("--facts", type=int, default=20, help="facts per commit")
    ap.add_argument("--work", help="keep (and reuse) the built repositories here")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    tmp = None if a.work else tempfile.TemporaryDirectory(prefix="memstore-history-scale-")
    work = Path(a.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MEMSTORE_STATS_CACHE", str(work / "stats"))
    from cli_support import make_model_dir

    model = work / "model"
    if not model.exists():
        make_model_dir(model)
    results, built = {}, {}
    for n in sizes:
        root = work / f"n{n}"
        if not (root / BUILT).exists():
            if (root / MADE).is_file() and not root.is_symlink():
                shutil.rmtree(root)  # a build of ours that did not finish
            elif root.exists() or root.is_symlink():
                sys.exit(f"{root} exists and is no build of this benchmark: remove it or name "
                         "another --work")
            root.mkdir()
            (root / MADE).touch()  # from here on the folder is ours (fresh_copy empties it)
            t = time.perf_counter()
            build(root, model, n, a.facts)
            (root / BUILT).touch()
            built[n] = round(time.perf_counter() - t, 1)
            print(f"built {n} commits x {a.facts} facts in {built[n]} s", flush=True)
        results[n] = measure(root)
    names = [*READS, *WRITES, *REMOTE]
    first, last = sizes[0], sizes[-1]
    head = " | ".join(f"{n} wall / cpu" for n in sizes)
    lines = [f"`{command()}`", "",
             (f"{a.facts} facts a commit; seconds per command as its own process (wall / "
              f"CPU); ratio: CPU at {last} over CPU at {first} commits, and the same less the "
              "`--help` row's start."), "",
             f"| command | {head} | ratio | ratio less start |",
             "| --- |" + " ---: |" * (len(sizes) + 2)]
    start = {n: results[n]["--help (start)"][1] for n in sizes}
    for name in names:
        cells = [f"{results[n][name][0]:.2f} / {results[n][name][1]:.2f}"
                 + ("" if results[n][name][2] == 0 else f" (exit {results[n][name][2]})")
                 for n in sizes]
        c0, c1 = results[first][name][1], results[last][name][1]
        own0, own1 = c0 - start[first], c1 - start[last]
        less = f"{own1 / own0:.1f}" if own0 > 0.05 and name != "--help (start)" else "-"
        lines.append(f"| `{name}` | {' | '.join(cells)} | {c1 / c0:.1f} | {less} |")
    if built:
        lines += ["", "built in " + ", ".join(f"{s} s ({n} commits)" for n, s in built.items())]
    write_results("history-scale", {
        "command": command(), "facts": a.facts, "sizes": sizes, "built_s": built,
        "rows": [{"commits": n, "command": name, "wall_s": round(results[n][name][0], 3),
                  "cpu_s": round(results[n][name][1], 3), "exit": results[n][name][2]}
                 for n in sizes for name in names]}, lines)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
