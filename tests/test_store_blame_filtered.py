"""blame --contains / --subject: the facts kept are found by the index's request rows of the
state's chain and only their writes read back (chain_facts.live_where), where blame folded
the whole chain first (0.21 -> 0.93 s in process from 100 to 1,000 commits). The rows are
those of the whole blame, filtered here."""
from __future__ import annotations

import pytest
from test_store_chain_facts import _history, _object_reads, _split

from memstore.store.blame import blame
from memstore.store.schema import DamagedIndexError

# 'again' is every rewrite's target of a first-commit fact (commits 5, 10, ... : _history),
# 'AGAIN-10' one that a restatement (21) and another rewrite (30) write over at HEAD,
# 'first-subject-2' the subject of that fact, 'c3-' a commit left out of the chain past 12
NEEDLES = ["again", "AGAIN-10", "first-subject-2", "first", "c3-", "C40", "located", "none"]


def _kept(row: dict, needle: str) -> bool:
    return any(needle.casefold() in row[k].casefold() for k in ("subject", "prompt", "target_new"))


def test_blame_filtered_gives_the_rows_of_the_whole_blame_it_keeps():
    repo, ids = _history(41)
    for c in (ids[11], ids[12], ids[30], ids[-1]):  # before, at and after the chain's jump
        whole = blame(repo, c)
        for needle in NEEDLES:
            assert blame(repo, c, contains=needle) == [r for r in whole if _kept(r, needle)], \
                (c, needle)
        for subject in ("first-subject-2", "c7-subject-0", "c13-subject-1", "nobody"):
            assert blame(repo, c, subject=subject) == [r for r in whole
                                                       if r["subject"] == subject]
            assert blame(repo, c, subject=subject, contains="AGAIN") == [
                r for r in whole if r["subject"] == subject and _kept(r, "AGAIN")]
    # the live writes alone, in their order: again-25 was restated at 28, again-20 written
    # over at 40, again-15 at 35
    rows = blame(repo, ids[-1], contains="again")
    assert [r["target_new"] for r in rows] == ["again-30", "again-35", "again-40"]
    assert blame(repo, ids[11], contains="AGAIN-10")[0]["commit"] == ids[10]
    assert blame(repo, ids[-1], contains="AGAIN-10") == []  # written over at 21 and 30


def test_blame_contains_reads_the_kept_writes_not_the_history(monkeypatch):
    repo, ids = _history(41)
    expected = blame(repo, contains="c40-subject-1")
    assert len(expected) == 1
    repo.forget_cached()
    reads = _object_reads(monkeypatch)
    assert blame(repo, contains="c40-subject-1") == expected
    # HEAD's request list (the write), where the whole chain is 33 of them; the chain
    # walked on its commit records, each read once for its basis, HEAD's again whole
    records, others = _split(reads, ids)
    assert len(others) <= 1 and len(records) <= len(set(records)) + 1 <= len(ids) + 1, \
        (records, others)


def test_blame_contains_on_an_index_row_unlike_its_record_says_the_index_is_damaged():
    repo, ids = _history(6)
    repo.db.execute("update requests set target_new = 'forged' where commit_id = ? and "
                    "position = 0", [ids[5]])
    with pytest.raises(DamagedIndexError, match="fsck --repair"):
        blame(repo, contains="forged")
