"""Provenance's holders of a fact in a state, over a history of many merges."""
from __future__ import annotations

import random

from test_store_support import commit_on_head, fake_requests, fake_result, memory_repo

from memstore.editing.requests import Request
from memstore.store.provenance import Provenance, fact
from memstore.store.storage import Storage


def _reference_holding(repo, commit, written):
    """The runs read off the whole basis chain of `commit` (what holding did per state)."""
    runs = {}
    for ref in repo.chain_sets(commit):
        for p, r in enumerate(repo.requests_of(ref.commit, ref.index)):
            f = fact(r)
            run = runs.get(f[:2])
            if run is not None and run[0] == f:
                run[1].append((ref.commit, ref.index, p))
            else:
                runs[f[:2]] = (f, [(ref.commit, ref.index, p)])
    run = runs.get(written[:2])
    return run[1] if run and run[0] == written else []


def _history_with_merges(n_merges: int):
    """main with a side branch merged every few commits (merge solved on the merge base),
    facts written again with the same target (runs of holders) or another (a new run)."""
    rnd = random.Random(0)
    repo = memory_repo()
    subjects = [f"s{i}" for i in range(6)]

    def requests(tag):
        picked = rnd.sample(subjects, 2)
        return [Request(subject=s, prompt="{} is located in", target_new=rnd.choice("AB"),
                        target_true="Paris") for s in picked] + fake_requests(tag, 1)

    seed = 0
    for m in range(n_merges):
        seed += 1
        base = commit_on_head(repo, fake_result(seed, requests=requests(f"m{seed}"))).id
        side_reqs, main_reqs, tip = [], [], base
        for _ in range(2):
            seed += 1
            r = requests(f"x{seed}")
            side_reqs += r
            tip = repo.write_commit([fake_result(seed, requests=r)], parents=[tip], basis=tip,
                                    message="side", ref=None).id
            seed += 1
            r = requests(f"y{seed}")
            main_reqs += r
            commit_on_head(repo, fake_result(seed, requests=r))
        ours = repo.head().commit
        seed += 1
        repo.write_commit([fake_result(seed, requests=main_reqs + side_reqs)],
                          parents=[ours, tip], basis=base, message="merge", operation="merge")
    return repo


def test_holding_reads_each_commit_once_however_many_states(monkeypatch):
    """A revert over a history of many merges asks, for each merge after the reverted
    commit, which writes each parent's state holds the fact by: holding walked the whole
    basis chain of every state asked about (reading every commit record and request list
    of it), so a revert's check of the holders grew with merges x history (5.9 s of 7.5 s
    before the replay, reverting an old commit of 5,000 with 124 merges). The chains are
    read once now; the holders are the same."""
    repo = _history_with_merges(12)
    commits = [c.id for c in repo.log()]
    merges = [c for c in repo.log() if len(c.parents) > 1]
    asked = [p for m in merges for p in m.parents] + [m.id for m in merges]
    facts = sorted({fact(r) for c in commits for i in range(len(repo.get_commit(c).update_sets))
                    for r in repo.requests_of(c, i)})
    expected = [[_reference_holding(repo, c, f) for f in facts] for c in asked]
    assert any(len(w) > 1 for row in expected for w in row)  # runs of several holders

    reads: list[str] = []
    real = Storage.commit

    def counted(self, commit_id):
        reads.append(commit_id)
        return real(self, commit_id)

    monkeypatch.setattr(Storage, "commit", counted)
    prov = Provenance(repo)
    got = [[prov.holding(c, f) for f in facts] for c in asked]
    assert got == expected
    assert len(reads) == len(set(reads)) <= len(commits)  # each record read once


def test_a_picks_writes_are_matched_to_the_picked_commit_once_per_set(monkeypatch):
    """picked_from matched the pick's whole set against the picked commit's requests for
    each write it was asked about: blame over a pick of n facts did n matches of n, as
    quadratic as the pick is large (a pick of 100,000 facts: 10^10 steps). One match per
    set now, each write read off it: here the pick held the picked commit's first fact
    already, so its writes are the picked commit's from the second on."""
    from memstore.store import provenance

    repo = memory_repo()
    requests = fake_requests("p", 40)
    picked = commit_on_head(repo, fake_result(1, requests=requests))
    pick = commit_on_head(repo, fake_result(2, requests=requests[1:]), operation="cherry-pick",
                          info={"picked": picked.id})
    matches = []
    real = provenance._subsequence
    monkeypatch.setattr(provenance, "_subsequence",
                        lambda part, whole: matches.append(1) or real(part, whole))
    prov = Provenance(repo)
    got = [prov.picked_from((pick.id, 0, p)) for p in range(39)]
    want = [(picked.id, 0, 1 + p) for p in range(39)]  # the picked commit's, less the first
    assert got == want
    assert len(matches) == 1
