"""History ranges and counts on the records (memstore.store.history): git's symmetric
difference (`log A...B`), and what a moved ref leaves, each walked on the checked graph, so
that an index row naming other parents than its record is refused, not counted."""
from __future__ import annotations

import json

import pytest
from test_store_support import memory_repo

from memstore.store.refs import HEADS
from memstore.store.schema import DamagedIndexError


def commit(repo, parents: list[str], message: str, time: float, ref: str | None = None) -> str:
    """A commit of no update set (cheap) with `parents` at `time`, moving `ref` (None:
    nothing) from wherever it is."""
    expected = repo.refs.read(ref) if ref is not None else None
    return repo.write_commit([], parents=parents, basis=parents[0] if parents else None,
                             message=message, time=time, ref=ref, expected=expected).id


def damage(repo, commit_id: str, parents: list[str]) -> None:
    """The index row of `commit_id` made to name `parents` (its record unchanged)."""
    repo.db.execute("update commits set parents = ? where id = ?",
                    [json.dumps(parents), commit_id])


@pytest.fixture
def forked():
    """P ← K ← R (right), P ← X, and L merging X and K (left): L and X are the left
    side's own, R the right's; K and P both reach."""
    repo = memory_repo()
    p = commit(repo, [], "P", 1.0)
    k = commit(repo, [p], "K", 2.0)
    x = commit(repo, [p], "X", 3.0)
    r = commit(repo, [k], "R", 4.0, ref=HEADS + "right")
    left = commit(repo, [x, k], "L", 5.0, ref=HEADS + "left")
    return repo, {"P": p, "K": k, "X": x, "R": r, "L": left}


def names(ids, c) -> list[str]:
    back = {v: k for k, v in c.items()}
    return [back[i if isinstance(i, str) else i.id] for i in ids]


def test_symmetric_difference_lists_each_side_own_commits_newest_first(forked):
    repo, c = forked
    commits, lefts = repo.log_sides("left", "right")
    assert names(commits, c) == ["L", "R", "X"]  # by time over both sides, as git's
    assert sorted(names(lefts, c)) == ["L", "X"]
    commits, lefts = repo.log_sides("right", "left", limit=2)  # -n: the newest two
    assert names(commits, c) == ["L", "R"] and names(lefts, c) == ["R"]
    assert repo.log_sides("left", "left") == ([], set())
    commits, lefts = repo.log_sides(c["K"], "left")  # K in left's history: all right
    assert names(commits, c) == ["L", "X"] and lefts == set()


def test_symmetric_difference_of_unrelated_histories_is_both_whole(forked):
    repo, c = forked
    c["O"] = commit(repo, [], "O", 2.5, ref=HEADS + "other")
    commits, lefts = repo.log_sides("other", "right")
    assert names(commits, c) == ["R", "O", "K", "P"] and names(lefts, c) == ["O"]


def test_symmetric_difference_refuses_a_damaged_row_of_what_both_reach(forked):
    """K's row damaged to name no parent: on the rows, P is reached by the left side only
    (through X) and was listed as left's own, though every listed commit's row matches its
    record; K's is only walked, not listed. Both sides are walked on the records."""
    repo, c = forked
    damage(repo, c["K"], [])
    with pytest.raises(DamagedIndexError, match=f"commit {c['K'][:12]}: index row disagrees"):
        repo.log_sides("left", "right")


def test_what_a_moved_head_leaves_is_counted_on_the_records():
    """A detached HEAD's two commits D1 ← D2, D2's row damaged to skip D1: the rows said
    a switch away left one commit (D2); the records say two. Refused in one line instead
    of the wrong count, before anything moves."""
    repo = memory_repo()
    c1 = commit(repo, [], "C1", 1.0, ref="HEAD")
    repo.switch(c1, detach=True)
    d1 = commit(repo, [c1], "D1", 2.0, ref="HEAD")
    d2 = commit(repo, [d1], "D2", 3.0, ref="HEAD")
    assert repo.held_by_no_ref(d2) == [d2, d1]
    damage(repo, d2, [c1])
    with pytest.raises(DamagedIndexError, match=f"commit {d2[:12]}: index row disagrees"):
        repo.held_by_no_ref(d2)
    with pytest.raises(DamagedIndexError):
        repo.switch("main")
    assert repo.head().commit == d2 and repo.head().branch is None
