"""`memstore log --graph`'s drawing (cli/graph.py): exact pictures for small histories,
and a reader, written here from the drawing rules alone, that follows the drawn lines
back and checks that every commit's row reaches exactly its parents' rows; run on the
small histories and on random ones."""
from __future__ import annotations

import random
from collections import defaultdict
from types import SimpleNamespace

import pytest

from cli.graph import graph_rows

BOTTOM = "(below the picture)"


def commits(order: str, parents: dict[str, str]) -> list[SimpleNamespace]:
    """Commits in log order; `parents` maps a name to its parents' names, space separated."""
    return [SimpleNamespace(id=n, parents=parents.get(n, "").split()) for n in order.split()]


def drawing(cs) -> list[str]:
    return [prefix if c is None else f"{prefix} {c.id}" for prefix, c in graph_rows(cs)]


# -- the reader ------------------------------------------------------------------------

def read_back(rows: list[tuple[str, str | None]]) -> dict[str, set[str]]:
    """What the picture says: for each commit, the commits (or BOTTOM) its lines reach.

    Rows are stacked; the point (r, x) is where row r starts, at character x. Column
    characters sit at even x, the ones between columns at odd x:
      `|` at x joins (r, x) to (r+1, x);  `/` at x joins (r, x+1) to (r+1, x-1);
      `\\` at x joins (r, x-1) to (r+1, x+1);  `*` at x is a commit: lines end at
      (r, x) and leave from (r+1, x), and from (r+1, x') for each even x' of the
      `-...-.` run an octopus merge draws after it.
    At a point where several lines end and several start, each must keep its direction
    (a crossing); otherwise all lines ending there join all lines starting there. A line
    may not start from nowhere, end on nothing (but at the bottom), touch a commit's
    point from the wrong side, and no character may be anything else (`_` included:
    the drawing never needs it)."""
    ins: dict[tuple[int, int], list] = defaultdict(list)
    outs: dict[tuple[int, int], list] = defaultdict(list)
    seen: list[str] = []
    for r, (text, cid) in enumerate(rows):
        assert text == text.rstrip(), f"row {r} {text!r}: trailing blanks"
        stars = [x for x, ch in enumerate(text) if ch == "*"]
        assert len(stars) == (cid is not None), f"row {r} {text!r}: {len(stars)} commits"
        octopus: set[int] = set()
        for x, ch in enumerate(text):
            if ch == " " or x in octopus:
                continue
            odd = x % 2 == 1
            if ch == "|" and not odd:
                seg = ("seg", r, x)
                outs[(r, x)].append((seg, "|"))
                ins[(r + 1, x)].append((seg, "|"))
            elif ch in "/\\" and odd:
                seg = ("seg", r, x)
                top, bottom = (x + 1, x - 1) if ch == "/" else (x - 1, x + 1)
                outs[(r, top)].append((seg, ch))
                ins[(r + 1, bottom)].append((seg, ch))
            elif ch == "*" and not odd:
                seen.append(cid)
                node = ("node", cid)
                outs[(r, x)].append((node, "*"))
                end = x + 1
                while end < len(text) and text[end] == "-":
                    end += 1
                drops = [x]
                if end > x + 1:  # an octopus: `*-.`, `*---.`
                    assert end < len(text) and text[end] == "." and end % 2 == 0, text
                    drops += range(x + 2, end + 1, 2)
                    octopus.update(range(x + 1, end + 1))
                for d in drops:
                    ins[(r + 1, d)].append((node, "*"))
            else:
                raise AssertionError(f"row {r} {text!r}: {ch!r} at {x}")
    assert seen == [cid for _, cid in rows if cid is not None]

    below: dict[tuple, list] = defaultdict(list)
    for point in set(ins) | set(outs):
        came, went = ins.get(point, []), outs.get(point, [])
        where = f"point {point}"
        if any(d == "*" for _, d in came):
            assert len(came) == 1, f"{where}: a line ends below a commit"
        if any(d == "*" for _, d in went):
            assert len(went) == 1, f"{where}: a line starts above a commit"
        if not went:
            if came[0][1] != "*":  # a commit's point with nothing below: a root
                assert point[0] == len(rows), f"{where}: a line ends on nothing"
                for seg, _ in came:
                    below[seg].append(BOTTOM)
            continue
        if not came:  # a commit with no line above it is a head; a line is an error
            assert went[0][1] == "*", f"{where}: a line starts from nothing"
            continue
        if len(came) > 1 and len(went) > 1:  # a crossing: each keeps its direction
            dirs_in, dirs_out = [d for _, d in came], [d for _, d in went]
            assert len(set(dirs_in)) == len(dirs_in) and set(dirs_in) == set(dirs_out), (
                f"{where}: lines {dirs_in} meet lines {dirs_out}: ambiguous")
            for seg, d in came:
                below[seg] += [s for s, d2 in went if d2 == d]
        else:
            for seg, _ in came:
                below[seg] += [s for s, _ in went]

    reach: dict[str, set[str]] = {}
    for cid in seen:
        found: set[str] = set()
        stack, visited = list(below[("node", cid)]), set()
        while stack:
            el = stack.pop()
            if el in visited:
                continue
            visited.add(el)
            if el == BOTTOM:
                found.add(BOTTOM)
            elif el[0] == "node":
                found.add(el[1])
            else:
                stack += below[el]
        reach[cid] = found
    return reach


def check(cs) -> list[str]:
    """Draw `cs` and assert that the picture connects each commit to exactly its
    parents (parents not among `cs` are reached below the picture)."""
    rows = [(prefix, None if c is None else c.id) for prefix, c in graph_rows(cs)]
    assert [cid for _, cid in rows if cid is not None] == [c.id for c in cs]
    reach = read_back(rows)
    shown = {c.id for c in cs}
    for c in cs:
        want = {p if p in shown else BOTTOM for p in c.parents}
        if rows[-1][1] == c.id:  # nothing is drawn below the last row's commit
            want.discard(BOTTOM)
        assert reach[c.id] == want, (c.id, reach[c.id], want, [t for t, _ in rows])
    return [t if cid is None else f"{t} {cid}" for t, cid in rows]


def test_reader_reads_and_refuses():
    good = [("*", "M"), ("|\\", None), ("* |", "A"), ("| *", "B"), ("|/", None), ("*", "R")]
    assert read_back(good) == {"M": {"A", "B"}, "A": {"R"}, "B": {"R"}, "R": set()}
    assert read_back([("*", "X"), ("*", "Y")])["X"] == {"Y"}  # stacked: child, parent
    with pytest.raises(AssertionError, match="trailing"):
        read_back([("* ", "X")])
    with pytest.raises(AssertionError, match="ends on nothing"):
        read_back([("*", "M"), ("|\\", None), ("*", "A")])
    with pytest.raises(AssertionError, match="starts from nothing"):
        read_back([("*", "M"), ("| |", None)])
    with pytest.raises(AssertionError, match="ambiguous"):  # `/` in, `\` out: bends
        read_back([("*", "X"), ("|\\", None), ("|/|", None), ("|\\|", None)])
    with pytest.raises(AssertionError, match="'_'"):
        read_back([("*", "X"), ("|_", None)])
    # the join drawn one column off (as the old drawing did): Q reads as A's child
    wrong = [("*", "H"), ("|\\", None), ("| *", "M"), ("| |\\", None), ("| | *", "Q"),
             ("| |/", None), ("* |", "P"), ("| *", "A"), ("| *", "X"), ("|/", None),
             ("*", "R")]
    assert read_back(wrong)["Q"] == {"A"}


# -- exact pictures --------------------------------------------------------------------

def test_linear():
    cs = commits("C B A", {"C": "B", "B": "A"})
    assert check(cs) == ["* C", "* B", "* A"]
    assert [p for p, _ in graph_rows(cs)] == ["*", "*", "*"]


def test_simple_merge_as_in_the_docstring():
    cs = commits("5 4 3 2", {"5": "3 4", "4": "2", "3": "2"})
    assert check(cs) == ["* 5", "|\\", "| * 4", "* | 3", "|/", "* 2"]


def test_criss_cross_merge():
    # M1 and M2 each merge A and B, in opposite orders; H merges them
    cs = commits("H M2 M1 B A R", {"H": "M1 M2", "M2": "B A", "M1": "A B",
                                   "B": "R", "A": "R"})
    assert check(cs) == [
        "* H",
        "|\\",
        "| * M2",
        "| |\\",
        "* | | M1",
        "|\\| |",   # M1's second parent: straight into B's column
        "| |/",    # A's column (third) crosses B's to join M1's first parent
        "|/|",
        "| * B",
        "* | A",
        "|/",
        "* R",
    ]


def test_merge_parent_child_of_a_far_left_lane():
    # M's second parent Q is a child of P, which H's first column waits for
    cs = commits("H M Q P A X R", {"H": "P M", "M": "A Q", "Q": "P", "P": "R",
                                   "A": "X", "X": "R"})
    assert check(cs) == [
        "* H",
        "|\\",
        "| * M",
        "| |\\",
        "| | * Q",
        "| |/",    # Q's line goes to P's column, two to the left, crossing A's
        "|/|",
        "* | P",
        "| * A",
        "| * X",
        "|/",
        "* R",
    ]


def test_merge_parent_in_a_left_lane_gets_no_new_column():
    # lanes P X M when M (parents A, P) is drawn: its line runs into P's column
    cs = commits("H Z M A X P R", {"H": "P Z", "Z": "X M", "M": "A P", "A": "R",
                                   "X": "R", "P": "R"})
    assert check(cs) == [
        "* H",
        "|\\",
        "| * Z",
        "| |\\",
        "| | * M",
        "| |/|",   # no new column: the edge crosses X's and joins P's
        "|/| |",
        "| | * A",
        "| * | X",
        "| |/",
        "* | P",
        "|/",
        "* R",
    ]


def test_merge_parent_in_a_column_further_right():
    # lanes c X P when c (parents A, P) is drawn: as git, P's column joins c's new one
    cs = commits("H Z X c P A R", {"H": "c Z", "Z": "X P", "X": "R", "c": "A P",
                                   "P": "R", "A": "R"})
    assert check(cs) == [
        "* H", "|\\", "| * Z", "| |\\", "| * | X", "* | | c",
        "|\\ \\ \\",
        "| | |/",
        "| |/|",
        "| * | P", "| |/", "* | A", "|/", "* R",
    ]


def test_merge_of_two_columns_on_its_left():
    cs = commits("H Z c Q P R", {"H": "Z c", "Z": "P Q", "c": "P Q", "Q": "R", "P": "R"})
    assert check(cs) == [
        "* H", "|\\", "* | Z", "|\\ \\", "| | * c",
        "| |/|",   # to P, crossing Q's column
        "|/|/",    # and to Q
        "| * Q", "* | P", "|/", "* R",
    ]


def test_octopus_merge():
    cs = commits("O C B A R", {"O": "A B C", "A": "R", "B": "R", "C": "R"})
    assert check(cs) == [
        "*-. O",
        "|\\ \\",
        "| | * C",
        "| * | B",
        "| |/",
        "* | A",
        "|/",
        "* R",
    ]


def test_octopus_merge_with_a_column_on_its_right():
    cs = commits("H O C B A Y R", {"H": "O Y", "O": "A B C", "A": "R", "B": "R",
                                   "C": "R", "Y": "R"})
    assert check(cs) == [
        "* H",
        "|\\",
        "|  \\",    # Y's column makes room for the dashes
        "*-. | O",
        "|\\ \\ \\",
        "| | * | C",
        "| * | | B",
        "| |/ /",
        "* | | A",
        "|/ /",
        "| * Y",
        "|/",
        "* R",
    ]


def test_three_parallel_branches_on_one_root():
    cs = commits("J C I B H A R", {"J": "C", "C": "R", "I": "B", "B": "R", "H": "A",
                                   "A": "R"})
    assert check(cs) == [
        "* J", "* C", "| * I", "| * B", "|/", "| * H", "| * A", "|/", "* R",
    ]


def test_three_branches_merged_at_once():
    cs = commits("M C3 C2 C1 B3 B2 B1 R", {
        "M": "C1 C2 C3", "C3": "B3", "C2": "B2", "C1": "B1", "B3": "R", "B2": "R",
        "B1": "R"})
    assert check(cs) == [
        "*-. M",
        "|\\ \\",
        "| | * C3",
        "| * | C2",
        "* | | C1",
        "| | * B3",
        "| * | B2",
        "| |/",
        "* | B1",
        "|/",
        "* R",
    ]


def test_several_roots():
    # a merge of two unrelated histories
    cs = commits("M B S A R", {"M": "A B", "B": "S", "A": "R"})
    assert check(cs) == ["* M", "|\\", "| * B", "| * S", "* A", "* R"]
    # unrelated heads: an empty row keeps a root from reading as the next one's child
    cs = commits("X1 X0 Y1 Y0", {"X1": "X0", "Y1": "Y0"})
    assert check(cs) == ["* X1", "* X0", "", "* Y1", "* Y0"]
    # a root in the middle: the columns on its right move over
    cs = commits("H B S A R", {"H": "A S B", "A": "R", "B": "R"})
    assert check(cs) == ["*-. H", "|\\ \\", "| | * B", "| * | S", "|  /", "* | A", "|/",
                         "* R"]


# -- random histories ------------------------------------------------------------------

def random_history(rng: random.Random, size: int) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = {}
    for i in range(size):
        older = [f"c{j}" for j in range(i)]
        k = rng.choices([0, 1, 2, 3, 4], [1, 10, 5, 1, 0.5])[0] if older else 0
        parents[f"c{i}"] = rng.sample(older, min(k, len(older)))
    return parents


def log_order(parents: dict[str, list[str]], rng: random.Random,
              newest_first: bool) -> list[str]:
    """Children before parents: a random one of those ready, or the newest (as the
    repository's log does)."""
    waiting = dict.fromkeys(parents, 0)
    for ps in parents.values():
        for p in set(ps):
            waiting[p] += 1
    ready = [c for c, n in waiting.items() if n == 0]
    out: list[str] = []
    while ready:
        pick = (max(ready, key=lambda c: int(c[1:])) if newest_first
                else rng.choice(ready))
        ready.remove(pick)
        out.append(pick)
        for p in set(parents[pick]):
            waiting[p] -= 1
            if waiting[p] == 0:
                ready.append(p)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_histories_read_back(seed):
    rng = random.Random(seed)
    for size in (3, 8, 15, 30):
        parents = random_history(rng, size)
        for newest_first in (False, True):
            order = log_order(parents, rng, newest_first)
            cs = [SimpleNamespace(id=c, parents=parents[c]) for c in order]
            check(cs)
            check(cs[: rng.randrange(1, len(cs) + 1)])  # as `log -n` cuts it


def test_duplicate_parents_and_missing_parents():
    cs = [SimpleNamespace(id="M", parents=["A", "A"]), SimpleNamespace(id="A", parents=[])]
    rows = [(p, None if c is None else c.id) for p, c in graph_rows(cs)]
    assert rows == [("*", "M"), ("*", "A")]
    check(commits("M A", {"M": "A Z", "A": "Y"}))  # Z and Y not shown: lines go down
