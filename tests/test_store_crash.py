"""Crash safety: a process writing commits is SIGKILLed at many different moments; after
every kill the repository must pass fsck, and every commit must be wholly present (indexed,
on the branch, all its objects intact) or wholly absent.

The writer uses only the store layer with fake updates. It runs in processes forked from a
multiprocessing forkserver that has imported torch and the store once, so that each of the
26 rounds costs milliseconds rather than an interpreter start-up. 20 of the kills come
from the writer itself at the k-th durable step (before or after an fsync, a rename, a
SQLite BEGIN or COMMIT), so every phase of a commit is hit; the others come from outside
at random times."""
from __future__ import annotations

import os
import random
import signal
import struct

import children
import pytest
from crash_points import forkserver_context, orphans, self_kill_at
from test_store_support import BASE_HASH, commit_on_head, fake_result, same_bits

from memstore.store.repository import Repository

DIMS = {"n": 4, "d_in": 96, "d_out": 48}
SELF_KILL_STEPS = list(range(2, 82, 4))  # 20 moments spread over the first ~3 commits
RANDOM_KILLS = 6


def writer(path: str, step: int, ready) -> None:
    """Writes commits on HEAD until killed."""
    repo = Repository.open(path)
    if step:
        self_kill_at(step)
    ready.set()
    while True:
        seed = struct.unpack("<I", os.urandom(4))[0]
        commit_on_head(repo, fake_result(seed, **DIMS), message=f"seed {seed}")


def check(path) -> dict:
    """The invariants after a crash; returns what the round left behind."""
    repo = Repository.open(path)
    try:
        assert repo.fsck() == []
        indexed = {r["id"] for r in repo.db.query("select id from commits")}
        on_branch = repo.log()
        # linear history: every indexed commit is on the branch, so none is half-visible
        assert {c.id for c in on_branch} == indexed
        for c in on_branch:
            want = fake_result(int(c.message.split()[1]), **DIMS)
            assert repo.requests_of(c.id) == want.requests
            assert same_bits(repo.zs_of_set(c.id), want.zs)
            got = repo.updates_of(c.id)
            for layer, u in want.updates.items():
                assert same_bits(got[layer].U, u.U) and same_bits(got[layer].V, u.V)
                assert same_bits(got[layer].keys, u.keys)
        referenced = {o for c in on_branch for o in c.object_ids()}
        return {"commits": len(indexed),
                "orphans": orphans(repo, referenced),
                "temp_files": len(repo.objects.temp_files())}
    finally:
        repo.close()


@pytest.fixture(scope="module")
def forkserver():
    return forkserver_context(__name__)


def test_sigkill_at_many_moments_leaves_a_valid_repository(tmp_path, forkserver):
    path = str(tmp_path)
    Repository.init(path, "fake", BASE_HASH).close()
    rng = random.Random(0)
    plan = [("self", s) for s in SELF_KILL_STEPS] + [("random", 0)] * RANDOM_KILLS
    rng.shuffle(plan)
    seen = []
    for how, step in plan:
        ready = forkserver.Event()
        proc = forkserver.Process(target=writer, args=(path, step, ready))
        proc.start()
        with children.ended(proc):  # a round that fails or hangs leaves no process behind
            assert ready.wait(60), "the writer did not start"
            if how == "random":
                proc.join(rng.uniform(0.0, 0.1))
                os.kill(proc.pid, signal.SIGKILL)
            [code] = children.join([proc], timeout=60)
        assert code == -signal.SIGKILL, f"writer ended otherwise ({code})"
        seen.append(check(path))
    # the kills landed in every phase: between an object's write and its rename (temp
    # files), between the objects and the transaction (orphans), and after commits
    assert any(s["temp_files"] for s in seen) and any(s["orphans"] for s in seen)
    assert seen[-1]["commits"] >= 8
    repo = Repository.open(path)
    repo.gc()
    assert repo.fsck() == [] and check(path) == {**seen[-1], "orphans": 0, "temp_files": 0}
