"""A text graph of the commit history for `memstore log --graph`, git style:

    * 5 Merge feature
    |\\
    | * 4 on feature
    * | 3 on main
    |/
    * 2

Column c is drawn at character 2c; the characters between columns carry the lines
that change column. Every line runs from a commit's `*` down to one of its parents:

    |   stays in its column
    /   moves one column left on this row     \\   moves one column right
    *   a commit; its lines leave from below it and its children's lines end on it

A line moves at most one column per row, so a line that has to go far is a diagonal of
`/` over several rows. Where it passes a line that stays in its column, it goes
straight through it (a crossing: both lines keep their direction); where it reaches a
line waiting for the same commit, the two become one (`|/`). Lines never meet in any
other way, so every picture reads back unambiguously.

How a commit's lines are laid out, as git does it (graph.c), with a few of git's
refinements:

* the first parent stays in the commit's column; a merge opens one new column to the
  right per other parent, drawn `|\\` on the row below the commit, and the columns to
  its right step over with `\\` on that same row;
* an octopus merge (three lines or more below it) is drawn with git's dashes: `*-.`,
  `*---.` (two more `-` per line beyond three); the `-`/`.` part reaches the columns
  that its extra lines drop from, `|\\ \\` on the next row. Columns to the right of
  the commit first make room on rows of their own (`\\`, one column per row);
* a parent that already has a column to the commit's left gets no new column: its line
  leaves the `*` with `/` and runs into that column (`|/|`), crossing any columns on
  the way (should several parents wait on the left, the farthest is drawn so and the
  others get lines beside the first parent's, which then move left like a join);
  a parent waiting in the column just right of a two-parent merge is joined the same
  way (`|\\|`); any other parent that already has a column gets a new column next to
  the commit, and the old column then joins it from the right (git's collapsing);
* two columns that wait for the same commit join at once when they are neighbours
  (`|/`) and otherwise shift over, one column per row, until they are: every shift is
  a row of its own with a `/` per moving line, whatever lies between them;
* a commit that starts a new line of history (no child above it) takes the first free
  column on the right; if that is just below a root drawn on the row above (which
  would read as its parent), an empty row separates them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


def _render(cells: dict[int, str]) -> str:
    if not cells:
        return ""
    line = [" "] * (max(cells) + 1)
    for x, ch in cells.items():
        line[x] = ch
    return "".join(line).rstrip()


def _verticals(columns: Sequence[int]) -> dict[int, str]:
    return {2 * c: "|" for c in columns}


def graph_rows(commits: Sequence[Any],
               mark: Callable[[Any], str] | None = None) -> Iterator[tuple[str, Any]]:
    """(graph prefix, commit) rows for `commits` in log order (children before parents);
    pure graph lines come with None. Each commit needs `.id` and `.parents`. `mark`: the
    character drawn for a commit instead of `*` (git's --left-right `<` and `>`)."""
    for before, row, c, after, _ in graph_blocks(commits, mark):
        for text in before:
            yield text, None
        yield row, c
        for text in after:
            yield text, None


def graph_log(commits: Sequence[Any], text: Callable[[Any], Sequence[str]],
              mark: Callable[[Any], str] | None = None) -> Iterator[str]:
    """The lines of `log --graph` when a commit takes several lines (`text(c)`, the
    first of them on the commit's row), as git draws them (graph.c): the lines after
    the first are drawn beside the pure graph rows that follow the commit, then beside
    its padding (a `|` per column that continues below) until the next commit; graph
    rows left over when its lines run out are drawn on their own. Graph parts are
    padded to one width per commit, so its text starts in one column; an empty text
    line is the graph part alone (no trailing blanks). `mark` as graph_rows'."""
    for before, row, c, after, padding in graph_blocks(commits, mark):
        yield from before
        lines = list(text(c)) or [""]
        graph = [row, *after]
        width = max(len(g) for g in [*graph, padding])
        for i, line in enumerate(lines):
            g = graph[i] if i < len(graph) else padding
            yield f"{g.ljust(width)} {line}" if line else g
        yield from graph[len(lines):]


def graph_blocks(commits: Sequence[Any], mark: Callable[[Any], str] | None = None
                 ) -> Iterator[tuple[list[str], str, Any, list[str], str]]:
    """Per commit in `commits`: (the pure graph rows drawn before its row, its row, the
    commit, the pure graph rows that follow it, its padding). The padding is the row
    that continues the picture below those rows until the next commit's rows: a `|`
    at each open column ("" when none is left)."""
    lanes: list[Any] = []  # the commit each column waits for (no commit twice)
    root_col: int | None = None  # column of a childless `*` on the row just drawn
    for c in commits:
        before: list[str] = []
        after: list[str] = []
        if c.id in lanes:
            col = lanes.index(c.id)
        else:  # a new line of history: the first free column on the right
            col = len(lanes)
            if root_col == col:  # just below a root: it would read as its parent
                before.append(_render(_verticals(range(len(lanes)))))
            lanes.append(c.id)
        root_col = None
        left, right = lanes[:col], lanes[col + 1:]
        parents = list(dict.fromkeys(c.parents))
        in_left = [p for p in parents if p in left]
        direct = min(in_left, key=left.index) if in_left else None  # the farthest: `/`
        fresh = [p for p in parents if p not in left]  # each gets a column from `col` on
        fan = fresh + [p for p in in_left if p != direct]  # lines below the `*`
        n = len(fan)
        # a two-parent merge whose other parent waits in the next column: `|\|`
        join_right = n == 2 and len(fresh) == 2 and bool(right) and right[0] in fan
        if join_right and fan[0] == right[0]:
            fan.reverse()
            fresh.reverse()
        new = left + fresh + [x for x in right if x not in fresh]
        octopus = n >= 3
        spread = n >= 2 or (direct is not None and n >= 1 and not fresh)
        shift = 0 if join_right or n < 2 else n - 1  # how far the right columns move

        # rows that make room on the right for an octopus's dashes
        pre = n - 2 if octopus and right else 0
        for t in range(pre):
            cells = _verticals(range(col + 1))
            cells.update({2 * (i + t) + 1: "\\" for i in range(col + 1, len(lanes))})
            before.append(_render(cells))

        # the commit's row
        cells = _verticals(range(col))
        cells[2 * col] = "*" if mark is None else mark(c)
        if octopus:
            for x in range(2 * col + 1, 2 * (col + n - 2)):
                cells[x] = "-"
            cells[2 * (col + n - 2)] = "."
        cells.update({2 * (i + pre): "|" for i in range(col + 1, len(lanes))})
        row = _render(cells)

        # lines as (column now, column they end in); `direct` leaves the `*` moving
        lines = {(i, i) for i in range(col)}
        lines |= {(col + j, new.index(p)) for j, p in enumerate(fan)}
        lines |= {(i + shift, new.index(x)) for i, x in enumerate(lanes) if i > col}
        if spread:  # the row that opens the merge's lines
            cells = _verticals(range(col))
            if n >= 1:
                cells[2 * col] = "|"
            if n >= 2:
                cells[2 * col + 1] = "\\"
            for j in range(2, n):
                cells[2 * (col + j - 1) + 1] = "\\"
            for i in range(col + 1, len(lanes)):
                if join_right or n < 2:
                    cells[2 * i] = "|"
                else:
                    cells[2 * (i + pre) + 1] = "\\"
            if direct is not None:
                cells[2 * col - 1] = "/"
                lines.add((col - 1, new.index(direct)))
            after.append(_render(cells))
        elif direct is not None:
            lines.add((col, new.index(direct)))

        # collapsing rows: every line not yet in its column moves one column left
        while any(now != end for now, end in lines):
            cells = {}
            for now, end in lines:
                if now == end:
                    cells[2 * now] = "|"
                else:
                    cells[2 * now - 1] = "/"
            after.append(_render(cells))
            lines = {(now - (now != end), end) for now, end in lines}

        if not fan and direct is None and col == len(new):
            root_col = col
        lanes = new
        yield before, row, c, after, _render(_verticals(range(len(lanes))))
