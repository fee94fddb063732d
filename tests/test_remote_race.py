"""Two clones pushing at once, 6 rounds, on a folder and on S3: every round exactly one push
lands and the other is told to fetch first, and no commit that landed is ever lost.

Each round both clones make a commit on the remote's tip and push it from two processes
(forked from a multiprocessing forkserver) started together. In even rounds both pushes
are held just before their compare-and-swap until both have arrived there, so both
compare against the same old tip and the store's compare-and-swap alone decides; in odd
rounds they run freely (the later one may also be refused as not a fast-forward). The
loser then fetches and makes its commit again on the new tip for the next round."""
from __future__ import annotations

import os

import children
import pytest
from crash_points import forkserver_context
from remote_support import new_remote
from test_store_support import BASE_HASH, commit_on_head, fake_result

from memstore.remote import remotes
from memstore.remote.fetch import fetch
from memstore.remote.fsck import fsck_remote
from memstore.remote.push import PushRejectedError, push
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # s3_server

ROUNDS = 6  # 3 held at the compare-and-swap, 3 free: 10 repeated each kind 5 times


def hold_swaps(barrier) -> None:
    """Every compare-and-swap of a branch waits until the other pusher reaches its own."""
    from memstore.remote.folder import FolderTransport
    from memstore.remote.s3 import S3Transport

    for cls in (FolderTransport, S3Transport):
        real = cls.swap_ref

        def swap(self, *args, _real=real, **kwargs):
            barrier.wait(60)
            return _real(self, *args, **kwargs)

        cls.swap_ref = swap


def racer(path: str, env: dict, barrier, start, results) -> None:
    os.environ.update(env)
    repo = Repository.open(path)
    if barrier is not None:
        hold_swaps(barrier)
    start.wait(60)
    try:
        results.put((path, "landed", push(repo).new))
    except PushRejectedError as e:
        results.put((path, "rejected", str(e)))


@pytest.fixture(scope="module")
def forkserver():
    return forkserver_context(__name__)


def sync_to_remote(repo: Repository) -> str:
    """fetch, and put the local branch where the remote's is (the loser drops its commit)."""
    fetch(repo)
    tip = repo.resolve("origin/main")
    repo.update_ref("refs/heads/main", tip, expected=repo.refs.read("refs/heads/main"))
    return tip


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_two_clones_pushing_at_once_lose_nothing(kind, tmp_path, request, forkserver):
    url, env = new_remote(kind, tmp_path, request)
    clones = []
    for name in "ab":
        repo = Repository.init(tmp_path / name, "fake", BASE_HASH)
        remotes.add(repo, "origin", url)
        clones.append(repo)
    a, b = clones
    commit_on_head(a, fake_result(0, n=2), message="seed 0")
    landed = [push(a).new]
    sync_to_remote(b)
    pending = {str(a.root): 1, str(b.root): 2}  # the seed each clone commits next
    next_seed = 3
    for round_ in range(ROUNDS):
        for repo in clones:
            seed = pending[str(repo.root)]
            commit_on_head(repo, fake_result(seed, n=2), message=f"seed {seed}")
        barrier = forkserver.Barrier(2) if round_ % 2 == 0 else None
        start, results = forkserver.Event(), forkserver.Queue()
        procs = [forkserver.Process(target=racer, args=(str(r.root), env, barrier, start, results))
                 for r in clones]
        for p in procs:
            p.start()
        with children.ended(*procs):  # a round that fails or hangs leaves no process behind
            start.set()
            outcome = sorted((results.get(timeout=120) for _ in procs), key=lambda r: r[1])
            assert children.join(procs, timeout=60) == [0, 0]
        assert [kind_ for _, kind_, _ in outcome] == ["landed", "rejected"], \
            f"round {round_}: {outcome}"
        (winner, _, commit), (_, _, refusal) = outcome
        assert "fetch first" in refusal
        landed.append(commit)
        pending[winner] = next_seed  # the loser keeps its seed and commits it again
        next_seed += 1
        for repo in clones:
            assert sync_to_remote(repo) == commit
    # no commit lost: the remote's history is every landed commit, in order
    history = [c.id for c in a.log("origin/main")][::-1]
    assert history == landed and len(set(landed)) == ROUNDS + 1
    seeds = [int(c.message.split()[1]) for c in a.log("origin/main")]
    assert len(set(seeds)) == len(seeds)
    assert fsck_remote(url) == []
    for repo in clones:
        repo.close()
