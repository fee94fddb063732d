"""The facts a commit changed, read off the commits between two states of one basis chain
(show, diff), against the states' whole facts folded from the records."""
from __future__ import annotations

import itertools
import json

import pytest
from test_store_support import commit_on_head, fake_requests, fake_result, memory_repo

from memstore.editing.requests import Request
from memstore.store import chain_facts, queries
from memstore.store.commits import CorruptRecordError
from memstore.store.objects import ObjectStore


def _live(repo, commit):
    """(subject, prompt) -> (target, commit) of the last write in commit's basis chain,
    walked here from the records (the base's for None)."""
    stack = []
    while commit is not None:
        stack.append(commit)
        commit = repo.get_commit(commit).basis
    live = {}
    for c in reversed(stack):
        for i in range(len(repo.get_commit(c).update_sets)):
            for r in repo.requests_of(c, i):
                live.pop((r.subject, r.prompt), None)
                live[(r.subject, r.prompt)] = (r.target_new, c)
    return live


def _expected(repo, c1, c2):
    a, b = _live(repo, c1), _live(repo, c2)
    return {"added": sorted((k, v) for k, v in b.items() if k not in a),
            "removed": sorted((k, v) for k, v in a.items() if k not in b),
            "changed": sorted((k, a[k], v) for k, v in b.items()
                              if k in a and a[k][0] != v[0])}


def _got(d):
    return {"added": sorted(((r["subject"], r["prompt"]), (r["target_new"], r["commit"]))
                            for r in d["added"]),
            "removed": sorted(((r["subject"], r["prompt"]), (r["target_new"], r["commit"]))
                              for r in d["removed"]),
            "changed": sorted(((r["subject"], r["prompt"]), (r["old"], r["old_commit"]),
                               (r["new"], r["new_commit"])) for r in d["changed"])}


def _history(n: int):
    """n commits on main; every fifth writes again a fact of the first commit (another
    target), every seventh restates one with its target; commit 12 is built on commit 3's
    state (as a revert's), so that later states leave the chain of their parents."""
    repo = memory_repo()
    first = fake_requests("first", 4)
    ids = [commit_on_head(repo, fake_result(0, requests=first)).id]
    for k in range(1, n):
        requests = fake_requests(f"c{k}", 2)
        if k % 5 == 0:
            r = first[k % 4]
            requests.append(Request(subject=r.subject, prompt=r.prompt,
                                    target_new=f"again-{k}", target_true="Paris"))
        if k % 7 == 0:
            requests.append(first[(k + 1) % 4])
        head = repo.head().commit
        basis = ids[3] if k == 12 else head
        ids.append(repo.write_commit([fake_result(k, requests=requests)], parents=[head],
                                     basis=basis, message=f"c{k}").id)
    return repo, ids


def _split(reads: list[str], ids: list[str]) -> tuple[list[str], list[str]]:
    """`reads` as (commit records, other objects: request lists and tensors)."""
    commits = set(ids)
    return [r for r in reads if r in commits], [r for r in reads if r not in commits]


def _object_reads(monkeypatch) -> list[str]:
    """The ids of the objects read from here on (a list that grows)."""
    reads: list[str] = []
    real = ObjectStore.get_bytes

    def counted(self, oid, verify=True):
        reads.append(oid)
        return real(self, oid, verify)

    monkeypatch.setattr(ObjectStore, "get_bytes", counted)
    return reads


@pytest.mark.parametrize("few", [256, 0])  # the keys looked up one by one, or in one pass
def test_show_and_diff_give_the_facts_of_the_folded_states(few, monkeypatch):
    monkeypatch.setattr(chain_facts, "FEW", few)
    repo, ids = _history(30)
    pairs = [(None, ids[0])] + list(itertools.pairwise(ids)) + [
        (ids[k], ids[j]) for k, j in [(1, 29), (13, 29), (3, 20), (20, 3), (12, 11), (5, 5),
                                      (0, 10)]]
    for c1, c2 in pairs:
        assert _got(queries._diff_states(repo, c1, c2)) == _expected(repo, c1, c2), (c1, c2)
    changed = _got(queries.diff(repo, ids[19], ids[20]))["changed"]
    assert [(c[1][1], c[2][1]) for c in changed] == [(ids[0], ids[20])]  # not ids[7]: off the chain


def test_show_of_head_reads_its_own_objects_not_the_history(monkeypatch):
    """show HEAD (and diff HEAD~1 HEAD) folded both states' whole basis chains to compare
    them: every commit record and request list of the history, read twice (5x the time at
    1,000 commits as at 100). Where the parent is on HEAD's chain, the facts are HEAD's
    writes over what the parent held under the same keys: two request lists, and the
    chain's commit records (each once; the chain is walked on them, not on the index's
    basis rows, which a damage can make skip a commit)."""
    repo, ids = _history(41)
    expected = _expected(repo, ids[-2], ids[-1])
    assert expected["changed"]  # a fact of the first commit written again by HEAD
    repo.forget_cached()
    reads = _object_reads(monkeypatch)
    assert _got(queries.diff(repo, "HEAD~1", "HEAD")) == expected
    records, others = _split(reads, ids)
    assert len(others) <= 2, others  # HEAD's requests and the old write's, no other list
    # each once for its basis (the chain's walk), and again whole for HEAD and the old
    # write (read back) and for resolving HEAD~1 (refs reads HEAD's on its own)
    assert len(set(records)) <= len(ids) and len(records) <= len(set(records)) + 3, records


def test_status_counts_the_live_facts_without_reading_the_history(monkeypatch):
    """status folded HEAD's whole basis chain (every commit record and request list) only to
    count the live facts; it counts them off the index's request rows of that chain now,
    the chain walked on the commit records (each read once), no request list read."""
    repo, ids = _history(41)
    counts = {}
    for c in (ids[11], ids[12], ids[20], ids[-1]):  # before, at and after the chain's jump
        repo.switch(c, detach=True)
        counts[c] = queries.status(repo)["n_facts"]
    assert counts == {c: len(_live(repo, c)) for c in counts}
    repo.forget_cached()
    reads = _object_reads(monkeypatch)
    assert queries.status(repo)["n_facts"] == counts[ids[-1]]
    records, others = _split(reads, ids)
    # each once for its basis, HEAD's again whole for its message
    assert others == [] and len(records) <= len(set(records)) + 1 <= len(ids) + 1, records


def test_a_far_diff_finds_the_old_writes_in_one_pass(monkeypatch):
    """diff of two far states of one chain looked up each of its keys in the index on its
    own: at 1,000 commits of 20 facts, diff v25 HEAD (18,000 keys) took 2.1 s against 1.75
    s when it folded both chains. More keys than FEW are found in one pass over the rows."""
    monkeypatch.setattr(chain_facts, "FEW", 8)
    repo, ids = _history(41)
    c1, c2 = ids[12], ids[-1]  # on one chain; later commits rewrite first-commit facts
    expected = _expected(repo, c1, c2)
    assert expected["changed"]
    statements: list[str] = []
    real = type(repo.db).execute

    def counted(self, sql, *args, **kw):
        statements.append(sql)
        return real(self, sql, *args, **kw)

    monkeypatch.setattr(type(repo.db), "execute", counted)
    assert _got(queries._diff_states(repo, c1, c2)) == expected
    # one pass over the rows for the keys (and one count of the chain commits' rows)
    assert sum("from requests" in s and "count(" not in s for s in statements) == 1, statements


def test_a_chain_link_is_read_off_the_hash_checked_record_and_a_malformed_one_named():
    """chain_depths walks the chain on each record's basis and number of requests
    (Storage.chain_link) without parsing the rest; a record of another shape is parsed as
    a commit, which names it."""
    repo, ids = _history(13)
    repo.forget_cached()
    links = [repo.store.chain_link(c) for c in ids]
    assert links == [(repo.get_commit(c).basis, repo.get_commit(c).n_requests) for c in ids]
    assert links[12] == (ids[3], 2) and repo.store.chain_link(ids[12]) == links[12]  # cached
    record = json.loads(repo.objects.get_bytes(ids[1]))
    for raw in (b"no json", b'{"format": 1}', {**record, "basis": 7},
                {**record, "update_sets": [{**record["update_sets"][0], "n": "2"}]},
                {**record, "update_sets": {}}):
        oid = repo.objects.put_bytes(raw if isinstance(raw, bytes) else json.dumps(raw).encode())
        with pytest.raises(CorruptRecordError, match=oid):
            repo.store.chain_link(oid)


def test_an_ancestry_link_is_read_off_the_hash_checked_record_and_a_malformed_one_named(
        monkeypatch):
    """The counting walks (status, branch -vv, what a moved HEAD leaves) compare each row
    with its record's parents and time (Storage.ancestry_link), read off the hash-checked
    JSON without parsing the rest; a later whole read parses that JSON, the object not
    read again. A record of another shape is parsed as a commit, which names it; one whose
    bytes no longer hash to its name is refused, its content not trusted."""
    from memstore.store.objects import CorruptObjectError

    repo, ids = _history(13)
    expected = [(repo.get_commit(c).parents, repo.get_commit(c).time) for c in ids]
    repo.forget_cached()
    reads = _object_reads(monkeypatch)
    assert [repo.store.ancestry_link(c) for c in ids] == expected
    assert [repo.store.chain_link(c)[0] for c in ids] == [repo.get_commit(c).basis for c in ids]
    assert sorted(reads) == sorted(ids)  # each record read once for all three
    record = json.loads(repo.objects.get_bytes(ids[1]))
    for raw in (b"no json", b'{"format": 1}', {**record, "parents": ids[0]},
                {**record, "parents": [7]}, {**record, "parents": ["abc"]},
                {**record, "time": "1700000000"}, {**record, "time": True},
                {**record, "time": float("nan")}):
        oid = repo.objects.put_bytes(raw if isinstance(raw, bytes) else json.dumps(raw).encode())
        with pytest.raises(CorruptRecordError, match=oid):
            repo.store.ancestry_link(oid)
    repo.forget_cached()
    repo.objects._objects[ids[2]] = json.dumps({**json.loads(
        repo.objects.get_bytes(ids[2])), "parents": []}).encode()  # its bytes changed
    with pytest.raises(CorruptObjectError, match=ids[2]):
        repo.store.ancestry_link(ids[2])


def test_status_parses_no_record_but_heads_each_read_once_and_checked(monkeypatch):
    """status counted the commits on the checked graph parsing every record of HEAD's
    history whole (at 300 commits, half of the walk's time went to its update sets'
    editor settings); it compares each row with the record's parents and time alone now, and the
    chain's basis and number of requests off the same read, HEAD's record parsed for its
    message: each record read once, checked against its hash, none of it parsed but HEAD's."""
    from memstore.store.commits import Commit

    repo, ids = _history(41)
    repo.create_branch("side", ids[20])
    repo.switch("side")
    side = commit_on_head(repo, fake_result(99, requests=fake_requests("side", 2))).id
    repo.switch("main")
    head = repo.write_commit([fake_result(98, requests=fake_requests("merged", 1))],
                             parents=[ids[-1], side], basis=ids[-1], message="merge",
                             operation="merge").id
    expected = queries.status(repo)
    assert (expected["n_commits"], expected["head"]) == (43, head)
    repo.forget_cached()
    reads: list[tuple[str, bool]] = []
    real_read, real_parse = ObjectStore.get_bytes, Commit.from_json.__func__
    monkeypatch.setattr(ObjectStore, "get_bytes", lambda self, oid, verify=True: reads.append(
        (oid, verify)) or real_read(self, oid, verify))
    parsed: list[str] = []
    monkeypatch.setattr(Commit, "from_json", classmethod(
        lambda cls, oid, d: parsed.append(oid) or real_parse(cls, oid, d)))
    assert queries.status(repo) == expected
    assert sorted(reads) == sorted((c, True) for c in [*ids, side, head])
    assert parsed == [head]
