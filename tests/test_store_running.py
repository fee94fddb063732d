"""The running matrix (Σ K Kᵀ over a state's live facts) as a stored, derivable object."""
import torch
from test_store_support import commit_on_head, fake_result, memory_repo, same_bits

from memstore.editing.memit import running_matrix as from_keys
from memstore.store import running


def recomputed(repo, cid):
    """The sum recomputed from every update set's keys in the chain, root first."""
    return from_keys([{l: u.keys for l, u in ups.items()} for ups in repo.update_chain(cid)])


def three_commits(repo):
    return [commit_on_head(repo, seed=s).id for s in (1, 2, 3)]


def test_running_matrix_equals_the_sum_recomputed_from_the_commits_bit_for_bit():
    repo = memory_repo()
    ids = three_commits(repo)
    for cid in ids:
        got, want = running.running_matrix(repo.store, cid), recomputed(repo, cid)
        assert sorted(got) == sorted(want) == [1, 2]
        assert all(same_bits(got[l], want[l]) for l in want)
        assert got[1].dtype == torch.float64 and got[1].shape == (12, 12)
    assert running.running_matrix(repo.store, None) == {}


def test_stored_matrix_is_used_so_the_next_commit_reads_only_its_own_keys(monkeypatch):
    repo = memory_repo()
    ids = three_commits(repo)
    running.running_matrix(repo.store, ids[1])  # stored for the second commit
    assert ids[1] in running.cached_commits(repo.store)
    reads = []
    real = running.load_layer
    monkeypatch.setattr(running, "load_layer", lambda *a: reads.append(a[1]) or real(*a))
    got = running.running_matrix(repo.store, ids[2])
    assert len(reads) == 2  # the third commit's two layers, not the whole chain
    want = recomputed(repo, ids[2])
    assert all(same_bits(got[l], want[l]) for l in want)
    reads.clear()
    running.running_matrix(repo.store, ids[2])  # now stored itself: no keys read at all
    assert reads == []


def test_missing_matrix_or_object_is_rebuilt_identically():
    repo = memory_repo()
    ids = three_commits(repo)
    first = running.running_matrix(repo.store, ids[2])
    oid = next(r["object"] for r in repo.db.query("select object from running_matrices"))
    repo.objects.delete(oid)  # the object is lost: rebuilt from the commits
    again = running.running_matrix(repo.store, ids[2])
    assert all(same_bits(first[l], again[l]) for l in first)
    repo.db["running_matrices"].delete_where("1 = 1")  # the index rows are lost too
    third = running.running_matrix(repo.store, ids[2])
    assert all(same_bits(first[l], third[l]) for l in first)
    assert repo.fsck() == []


def test_only_the_most_recently_used_matrices_are_kept(monkeypatch):
    monkeypatch.setattr(running, "KEEP", 2)
    repo = memory_repo()
    ids = [commit_on_head(repo, seed=s).id for s in range(1, 6)]
    for cid in ids:
        running.running_matrix(repo.store, cid)
    assert sorted(running.cached_commits(repo.store)) == sorted(ids[-2:])
    kept = running.objects(repo.store)
    matrix_objects = {r["id"] for r in repo.db.query("select id from objects where kind = ?", [running.KIND])}
    assert matrix_objects == kept and all(repo.objects.contains(o) for o in kept)
    assert len(set(repo.objects.iter())) == len({r["id"] for r in repo.db.query("select id from objects")})
    assert repo.fsck() == []


def test_gc_drops_matrices_of_unreachable_commits_and_keeps_the_others():
    repo = memory_repo()
    ids = three_commits(repo)
    repo.create_branch("side")
    repo.switch("side")
    side = commit_on_head(repo, seed=9).id
    running.running_matrix(repo.store, side)
    running.running_matrix(repo.store, ids[2])
    repo.switch("main")
    repo.delete_branch("side", force=True)
    repo.gc()
    assert running.cached_commits(repo.store) == [ids[2]]
    assert all(repo.objects.contains(o) for o in running.objects(repo.store))
    assert repo.fsck() == []
    got, want = running.running_matrix(repo.store, ids[2]), recomputed(repo, ids[2])
    assert all(same_bits(got[l], want[l]) for l in want)


def test_keys_of_a_merge_or_squash_state_follow_its_basis_chain():
    repo = memory_repo()
    a = commit_on_head(repo, seed=1).id
    both = repo.write_commit([fake_result(2), fake_result(3)], parents=[a], basis=a,
                             message="two sets")
    got = running.running_matrix(repo.store, both.id)
    want = from_keys([{l: u.keys for l, u in fake_result(s).updates.items()} for s in (1, 2, 3)])
    assert all(same_bits(got[l], want[l]) for l in want)


def live_sum(repo, cid):
    """Σ k kᵀ over the key rows of the facts live at `cid`, recomputed from scratch: for
    each (subject, prompt), the rows of the last set in the chain that wrote it."""
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


def test_superseded_facts_leave_the_running_matrix():
    from test_store_support import fake_requests

    repo = memory_repo()
    first = commit_on_head(repo, seed=1).id  # s1-subject-0..2
    later = fake_requests("s2", 2, subjects=["s1-subject-1", "other"])  # supersedes one fact
    second = commit_on_head(repo, fake_result(2, requests=later)).id
    third = commit_on_head(repo, seed=3).id
    for cid in (first, second, third):
        got, want = running.running_matrix(repo.store, cid), live_sum(repo, cid)
        assert sorted(got) == sorted(want)
        for layer in want:
            torch.testing.assert_close(got[layer], want[layer], rtol=1e-9, atol=1e-9)
    # the sum over all keys, superseded included, is not it
    everything = recomputed(repo, third)
    assert not torch.allclose(everything[1], live_sum(repo, third)[1])
    # stored from the parent's matrix or rebuilt from the root: the same bits
    stored = running.running_matrix(repo.store, third)
    repo.db["running_matrices"].delete_where("1 = 1")
    rebuilt = running.running_matrix(repo.store, third)
    assert all(same_bits(stored[l], rebuilt[l]) for l in stored)
    # what the next commit's solve uses: the facts it supersedes are out
    nxt = fake_requests("s4", 1, subjects=["s3-subject-0"])
    solve = running.running_matrix_for(repo.store, third, [], nxt)
    k = repo.updates_of(third)[1].keys[0:1].double()
    torch.testing.assert_close(solve[1], stored[1] - k.T @ k)
