"""The running matrix: Σ k kᵀ over the key rows of the facts live in a state, formed from
the keys the commits carry (nothing stored)."""
import torch
from test_store_support import commit_on_head, fake_requests, fake_result, memory_repo, same_bits

from memstore.store import running


def live_sum(repo, cid):
    """Σ k kᵀ over the key rows of the facts live at `cid`, recomputed here from scratch:
    for each (subject, prompt), the rows of the last set in the chain that wrote it."""
    last = {}
    for ref in repo.chain_sets(cid):
        reqs = repo.requests_of(ref.commit, ref.index)
        ups = repo.updates_of(ref.commit, ref.index)
        for p, r in enumerate(reqs):
            last[(r.subject, r.prompt)] = (ups, p)
    out = {}
    for ups, p in last.values():
        for layer, u in ups.items():
            k = u.keys[p:p + 1].double()
            out[layer] = out.get(layer, 0) + k.T @ k
    return out


def all_keys_sum(repo, cid):
    out = {}
    for ups in repo.update_chain(cid):
        for layer, u in ups.items():
            k = u.keys.double()
            out[layer] = out.get(layer, 0) + k.T @ k
    return out


def test_running_matrix_sums_the_keys_of_the_live_facts():
    repo = memory_repo()
    ids = [commit_on_head(repo, seed=s).id for s in (1, 2, 3)]
    for cid in ids:
        got, want = running.running_matrix(repo.store, cid), live_sum(repo, cid)
        assert sorted(got) == sorted(want) == [1, 2]
        for layer in want:
            assert got[layer].dtype == torch.float64 and got[layer].shape == (12, 12)
            torch.testing.assert_close(got[layer], want[layer], rtol=1e-12, atol=1e-12)
    assert running.running_matrix(repo.store, None) == {}
    again = running.running_matrix(repo.store, ids[2])  # the same keys: the same bits
    first = running.running_matrix(repo.store, ids[2])
    assert all(same_bits(again[l], first[l]) for l in first)
    assert list(repo.db.query("select * from running_matrices")) == []  # nothing stored


def test_superseded_facts_leave_the_running_matrix():
    repo = memory_repo()
    commit_on_head(repo, seed=1)  # s1-subject-0..2
    later = fake_requests("s2", 2, subjects=["s1-subject-1", "other"])  # supersedes one fact
    second = commit_on_head(repo, fake_result(2, requests=later)).id
    third = commit_on_head(repo, seed=3).id
    for cid in (second, third):
        got, want = running.running_matrix(repo.store, cid), live_sum(repo, cid)
        for layer in want:
            torch.testing.assert_close(got[layer], want[layer], rtol=1e-12, atol=1e-12)
    everything = all_keys_sum(repo, third)  # superseded rows included: not the running matrix
    assert not torch.allclose(everything[1], live_sum(repo, third)[1])
    # what the next commit's solve uses: the facts it writes again are out
    nxt = fake_requests("s4", 1, subjects=["s3-subject-0"])
    solve = running.running_matrix_for(repo.store, third, [], nxt)
    k = repo.updates_of(third)[1].keys[0:1].double()
    torch.testing.assert_close(solve[1], live_sum(repo, third)[1] - k.T @ k)


def test_a_merge_or_squash_state_follows_its_basis_chain_and_replays_count():
    repo = memory_repo()
    a = commit_on_head(repo, seed=1).id
    both = repo.write_commit([fake_result(2), fake_result(3)], parents=[a], basis=a,
                             message="two sets")
    got = running.running_matrix(repo.store, both.id)
    want = all_keys_sum(repo, both.id)  # no fact repeats: every row is live
    for layer in want:
        torch.testing.assert_close(got[layer], want[layer], rtol=1e-12, atol=1e-12)
    # a replay in progress: the sets already solved count, in memory
    done = [fake_result(4)]
    solve = running.running_matrix_for(repo.store, a, done, [])
    k4 = done[0].updates[2].keys.double()
    torch.testing.assert_close(solve[2], live_sum(repo, a)[2] + k4.T @ k4)


def test_only_the_keys_of_the_chain_are_read(monkeypatch):
    repo = memory_repo()
    ids = [commit_on_head(repo, seed=s).id for s in (1, 2, 3)]
    reads = []
    real = running.load_layer
    monkeypatch.setattr(running, "load_layer", lambda *a: reads.append(a[1]) or real(*a))
    running.running_matrix(repo.store, ids[1])
    assert sorted(reads) == [1, 1, 2, 2]  # two sets, two layers each; not the third commit
