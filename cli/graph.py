"""A text graph of the commit history for `memstore log --graph`, git style:

    * 5 Merge feature
    |\\
    | * 4 on feature
    * | 3 on main
    |/
    * 2
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


def graph_rows(commits: Sequence[Any]) -> Iterator[tuple[str, Any]]:
    """(graph prefix, commit) rows for `commits` in log order (children before parents);
    pure graph lines come with None. Each commit needs `.id` and `.parents`."""
    lanes: list[str] = []  # the commit each column waits for
    for c in commits:
        if c.id not in lanes:
            lanes.append(c.id)
        col = lanes.index(c.id)
        yield " ".join("*" if i == col else "|" for i in range(len(lanes))), c
        parents = list(c.parents)
        if len(parents) > 1:  # a merge opens a column for its other parent(s)
            yield " ".join(["|"] * (col + 1)) + "\\" + " |" * (len(lanes) - col - 1), None
        kept: list[str] = []
        for x in lanes[:col] + parents + lanes[col + 1:]:
            if x in kept:  # two columns wait for the same commit: they join
                yield " ".join(["|"] * len(kept)) + "/", None
            else:
                kept.append(x)
        lanes = kept
