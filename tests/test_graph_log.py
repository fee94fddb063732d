"""`memstore log --graph` without --oneline (cli/graph.py's graph_log, through the log
command on a stand-in repository): a commit's several lines are drawn beside the graph
rows that follow it and then beside the padding of the columns that go on, as git does;
exact output for small histories, and the graph part of every printed line read back
with test_graph's reader (padding must continue the lines, never cut or join them)."""
from __future__ import annotations

import random
import re
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from test_graph import BOTTOM, commits, log_order, random_history, read_back

import cli.context
from cli.commands import history
from cli.graph import graph_log, graph_rows


class FakeRepo:
    """What `log` reads of a repository: the commits in log order, HEAD on main."""

    def __init__(self, cs):
        self.cs = cs
        self.refs = SimpleNamespace(list=lambda prefix: {}, remote_heads=dict)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def log(self, rev, limit=None, exclude=()):  # `log A..B` passes A (5056c27)
        assert not exclude
        return self.cs[:limit] if limit else list(self.cs)

    def head(self):
        return SimpleNamespace(ref="refs/heads/main", commit=self.cs[0].id, branch="main")

    def branches(self):
        return {"main": self.cs[0].id}

    def tags(self):
        return {}


def log_commits(order: str, parents: dict[str, str]) -> list[SimpleNamespace]:
    """`commits` with what `log` prints of a commit; the message is 'msg <name>'."""
    return [SimpleNamespace(id=c.id, parents=c.parents, message=f"msg {c.id}\n",
                            n_requests=1, operation="commit", basis=None, time=0.0,
                            authored=0.0,  # Commit.authored: the author date
                            metrics={}, author=None, committer=None)  # before authors were
            for c in commits(order, parents)]


def run_log(monkeypatch, cs, *args: str) -> list[str]:
    monkeypatch.setattr(cli.context, "open_repo", lambda: FakeRepo(cs))
    monkeypatch.setattr(history, "when", lambda t: "DATE")
    r = CliRunner().invoke(history.log, list(args))
    assert r.exit_code == 0, r.output
    return r.output.splitlines()


GRAPH = re.compile(r"[|/\\*.\- ]*")


def graph_part(line: str) -> str:
    """The picture's part of a printed line: its graph characters, before the text (no
    message line in these tests starts with one of them)."""
    return GRAPH.match(line).group().rstrip()


def read_printed(lines: list[str], cs) -> dict[str, set[str]]:
    """Read back the graph part of every printed line; a commit's row is its
    `commit <id>` line."""
    rows = []
    for line in lines:
        m = re.search(r"commit (\S+)$|commit (\S+) \(", line)
        rows.append((graph_part(line), m and (m.group(1) or m.group(2))))
    assert [cid for _, cid in rows if cid] == [c.id for c in cs]
    return read_back(rows)


def check_printed(lines: list[str], cs) -> None:
    reach = read_printed(lines, cs)
    shown = {c.id for c in cs}
    for c in cs:
        want = {p if p in shown else BOTTOM for p in c.parents}
        assert reach[c.id] == want, (c.id, reach[c.id], want, lines)


def details(c) -> list[str]:
    """A stand-in for log's lines of a commit: more of them for a merge."""
    return [f"commit {c.id}", *(["Merge:  " + " ".join(c.parents)]
                                if len(c.parents) > 1 else []), "", f"    msg {c.id}", ""]


# -- exact output ------------------------------------------------------------------------

MERGE = ("5 4 3 2 1", {"5": "3 4", "4": "2", "3": "2", "2": "1"})


def test_log_graph_merge_and_two_open_branches(monkeypatch):
    cs = log_commits(*MERGE)
    assert run_log(monkeypatch, cs, "--graph") == [
        "*   commit 5 (HEAD -> main)",
        "|\\  Merge:  3 4",           # the merge's `|\` row, beside its second line
        "| | Date:   DATE",            # then the padding of the two open columns
        "| | Facts:  1 (commit); no metrics",
        "| |",
        "| |     msg 5",
        "| |",
        "| * commit 4",
        "| | Date:   DATE",
        "| | Facts:  1 (commit); no metrics",
        "| |",
        "| |     msg 4",
        "| |",
        "* | commit 3",
        "|/  Date:   DATE",           # the join, beside the line after the commit's
        "|   Facts:  1 (commit); no metrics",
        "|",
        "|       msg 3",
        "|",
        "* commit 2",
        "| Date:   DATE",
        "| Facts:  1 (commit); no metrics",
        "|",
        "|     msg 2",
        "|",
        "* commit 1",
        "  Date:   DATE",              # a root: its column ends, nothing below it
        "  Facts:  1 (commit); no metrics",
        "",
        "      msg 1",
        "",
    ]


def test_log_graph_root_in_the_middle(monkeypatch):
    # H's second parent S is a root: the column on its right moves over below it
    cs = log_commits("H B S A R", {"H": "A S B", "A": "R", "B": "R"})
    lines = run_log(monkeypatch, cs, "--graph")
    assert lines == [
        "*-.   commit H (HEAD -> main)",
        "|\\ \\  Merge:  A S B",
        "| | | Date:   DATE",
        "| | | Facts:  1 (commit); no metrics",
        "| | |",
        "| | |     msg H",
        "| | |",
        "| | * commit B",
        "| | | Date:   DATE",
        "| | | Facts:  1 (commit); no metrics",
        "| | |",
        "| | |     msg B",
        "| | |",
        "| * | commit S",
        "|  /  Date:   DATE",          # S's column ends; B's moves over
        "| |   Facts:  1 (commit); no metrics",
        "| |",
        "| |       msg S",
        "| |",
        "* | commit A",
        "|/  Date:   DATE",
        "|   Facts:  1 (commit); no metrics",
        "|",
        "|       msg A",
        "|",
        "* commit R",
        "  Date:   DATE",
        "  Facts:  1 (commit); no metrics",
        "",
        "      msg R",
        "",
    ]
    check_printed(lines, cs)


def test_log_graph_unrelated_heads(monkeypatch):
    # after the root X0 no column is open: its lines have no graph, then the empty row
    cs = log_commits("X1 X0 Y1", {"X1": "X0"})
    lines = run_log(monkeypatch, cs, "--graph", "-n", "3")
    assert lines[:13] == [
        "* commit X1 (HEAD -> main)", "| Date:   DATE", "| Facts:  1 (commit); no metrics",
        "|", "|     msg X1", "|",
        "* commit X0", "  Date:   DATE", "  Facts:  1 (commit); no metrics", "",
        "      msg X0", "", "",
    ]
    assert lines[13] == "* commit Y1"
    check_printed(lines, cs)


def test_oneline_unchanged(monkeypatch):
    cs = log_commits(*MERGE)
    want = [t if c is None else f"{t} {c.id[:12]}{' (HEAD -> main)' * (c is cs[0])} "
            f"msg {c.id} [commit, 1 fact]" for t, c in graph_rows(cs)]
    assert run_log(monkeypatch, cs, "--graph", "--oneline") == want
    plain = run_log(monkeypatch, cs)
    assert plain[:3] == ["commit 5 (HEAD -> main)", "Merge:  3 4", "Date:   DATE"]
    assert not any(line.startswith("|") for line in plain)


def test_graph_log_more_rows_than_lines():
    # a commit with fewer lines than graph rows after it: the rest are drawn alone
    cs = commits("O C B A R", {"O": "A B C", "A": "R", "B": "R", "C": "R"})
    lines = list(graph_log(cs, lambda c: [f"commit {c.id}"]))
    assert lines == [t if c is None else f"{t:{w}} commit {c.id}"  # padded to the width
                     for (t, c), w in zip(graph_rows(cs), [5, 0, 5, 5, 3, 0, 3, 0, 1])]
    lines = list(graph_log(cs, lambda c: []))  # no text: the graph rows alone
    assert lines == [t for t, _ in graph_rows(cs)]


# -- read back ---------------------------------------------------------------------------

def test_printed_merge_reads_back(monkeypatch):
    cs = log_commits(*MERGE)
    check_printed(run_log(monkeypatch, cs, "--graph"), cs)


@pytest.mark.parametrize("seed", range(25))
def test_random_histories_printed_read_back(seed):
    rng = random.Random(1000 + seed)
    for size in (3, 8, 15, 30):
        parents = random_history(rng, size)
        for newest_first in (False, True):
            order = log_order(parents, rng, newest_first)
            cs = [SimpleNamespace(id=c, parents=parents[c]) for c in order]
            for shown in (cs, cs[: rng.randrange(1, len(cs) + 1)]):
                lines = list(graph_log(shown, details))
                check_printed(lines, shown)
                # each commit's text starts in one column, beside graph rows or padding
                for c in shown:
                    i = lines.index(next(x for x in lines if x.endswith(f"commit {c.id}")))
                    at = lines[i].index("commit")
                    assert lines[i + 2 + (len(c.parents) > 1)][at:] == f"    msg {c.id}"
