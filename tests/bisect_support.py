"""git itself as the reference of memstore bisect's search: `git bisect run` on a git
repository of a history's shape (one empty commit per commit, its memstore id as message;
a root for the base; commit dates in the history's order)."""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import children

Graph = dict[str, tuple[tuple[str, ...], float]]  # id -> (parents, time)


def git_bisect(g: Graph, head: str, bad_ones: set[str], where: Path,
               goods: Sequence[str] = (), merge_bases: list | None = None,
               first_parent: bool = False) -> tuple[list[tuple], str]:
    """`git bisect run` from HEAD (bad) and the base's root (good; or the commits `goods`),
    a commit being bad when it is in `bad_ones`. Returns git's steps (memstore id,
    revisions left to test after it, roughly how many steps) and the first bad commit it
    names; the merge bases git tested first ("a merge base must be tested": a GOOD no
    ancestor of HEAD; None for the base's root) are put in `merge_bases`. `first_parent`:
    `git bisect start --first-parent`."""
    assert shutil.which("git"), "git is needed here (CI clones with it)"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(where), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": os.environ["PATH"]}
    where.mkdir(parents=True)

    def git(*args: str, **kw: str) -> str:
        return children.run(["git", *args], cwd=where, env={**env, **kw}, check=True,
                            capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    tree = git("hash-object", "-t", "tree", "-w", "/dev/null")
    dated = {c: i for i, c in enumerate(sorted(g, key=lambda c: (g[c][1], c)), 1)}
    sha = {None: git("commit-tree", tree, "-m", "base", GIT_COMMITTER_DATE="@1000000000 +0000")}
    for c in sorted(g, key=dated.get):  # parents first: they are older
        parents = [a for p in g[c][0] or [None] for a in ("-p", sha[p])]
        date = f"@{1000000000 + dated[c] * 60} +0000"
        sha[c] = git("commit-tree", tree, *parents, "-m", c, GIT_COMMITTER_DATE=date,
                     GIT_AUTHOR_DATE=date)
    git("reset", "-q", "--hard", sha[head])
    (where.parent / "bad.txt").write_text("".join(f"{c}\n" for c in bad_ones))
    test = where.parent / "test.sh"
    test.write_text("#!/bin/sh\ngrep -qxF \"$(git log -1 --format=%s)\" "
                    f"{where.parent / 'bad.txt'} && exit 1 || exit 0\n")
    test.chmod(0o755)
    out = git("bisect", "start", *["--first-parent"] * first_parent, sha[head],
              *(sha[c] for c in goods or [None])) + "\n"
    for _ in range(len(g) + 1):  # git 2.39's `bisect run` ends ('bisect run success')
        if "is the first bad commit" in out:  # where a merge base it found good leaves
            break  # another to test (criss-cross merges): run it again from there
        out += children.run(["git", "bisect", "run", str(test)], cwd=where, env=env,
                            check=True, capture_output=True, text=True).stdout
    ids = {v: k for k, v in sha.items()}
    counts = re.findall(r"Bisecting: (\d+) revisions? left to test after this "
                        r"\(roughly (\d+) steps?\)\n\[([0-9a-f]+)\]", out)
    steps = [(ids[s], int(left), int(rough)) for left, rough, s in counts]
    if merge_bases is not None:
        merge_bases += [ids[s] for s in re.findall(r"Bisecting: a merge base must be tested"
                                                  r"\n\[([0-9a-f]+)\]", out)]
    first = re.search(r"^([0-9a-f]{40}) is the first bad commit", out, re.MULTILINE).group(1)
    return steps, ids[first]
