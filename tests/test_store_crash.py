"""Crash safety: a process writing commits is SIGKILLed at many different moments; after
every kill the repository must pass fsck, and every commit must be wholly present (indexed,
on the branch, all its objects intact) or wholly absent.

The writer uses only the store layer with fake updates. It runs in processes forked from a
multiprocessing forkserver that has imported torch and the store once, so that each of the
15 rounds costs milliseconds rather than an interpreter start-up. 9 of the kills come from
the writer itself at a named durable step (before or after an fsync, a rename, a SQLite
BEGIN or COMMIT), one for each state a kill can leave a commit in; the others come from
outside at random times."""
from __future__ import annotations

import os
import random
import signal
import struct
import time

import pytest
from crash_points import forkserver_context, orphans, run_round, self_kill_at
from test_store_support import BASE_HASH, commit_on_head, fake_result, same_bits

from memstore.store.repository import Repository

DIMS = {"n": 4, "d_in": 96, "d_out": 48}
# One round per state a kill can leave a commit in, in this order (as test_cli_processes:
# before and after an fsync leave the same files), and the commits after each round
SELF_KILLS = [
    (("before fsync", 1), 0),  # the first object's new folder made, nothing in it
    (("before replace", 1), 0),  # an object's temporary file written, not renamed
    (("after replace", 1), 0),  # an object in place that nothing names
    (("transaction begun", 2), 1),  # (2: in the second commit; the first is whole)
    (("before fsync in transaction", 1), 1),  # an object folder made in the transaction
    (("before replace in transaction", 2), 2),
    (("after replace in transaction", 2), 3),
    (("transaction written", 2), 4),  # rows written and the branch moved, not committed
    (("transaction committed", 4), 8),
]
NAMED_WITHIN = 6  # commits: each moment above comes in a round's first 4
RANDOM_KILLS = 6


def writer(path: str, env: dict, kind: str, step, seed: int, ready) -> None:
    """Writes commits on HEAD until killed; one that kills itself at a named moment ends
    after NAMED_WITHIN commits without it, which fails its round (crash_points.run_round)
    where it wrote commits until the round's 60 s were out, the moment unnamed."""
    repo = Repository.open(path)
    if step:
        self_kill_at(step)
    ready.set()
    made = 0
    while not step or made < NAMED_WITHIN:
        n = struct.unpack("<I", os.urandom(4))[0]
        commit_on_head(repo, fake_result(n, **DIMS), message=f"seed {n}")
        made += 1


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
    plan = [("self", moment) for moment, _ in SELF_KILLS] + [("random", 0)] * RANDOM_KILLS
    seen = []
    for seed, (how, step) in enumerate(plan, 1):
        code = run_round(forkserver, writer, path, {}, "store", how, step, seed, 0.1, rng)
        assert code == -signal.SIGKILL, f"round {seed}: the writer ended by itself"
        seen.append(check(path))
    # the kills landed in every phase: between an object's write and its rename (temp
    # files), between the objects and the transaction (orphans), and after commits
    assert any(s["temp_files"] for s in seen) and any(s["orphans"] for s in seen)
    assert [s["commits"] for s in seen[:len(SELF_KILLS)]] == [n for _, n in SELF_KILLS]
    assert seen[-1]["commits"] >= 8
    repo = Repository.open(path)
    repo.gc()
    assert repo.fsck() == [] and check(path) == {**seen[-1], "orphans": 0, "temp_files": 0}


@pytest.mark.parametrize("step, named", [
    (("transaction writen", 1), r"\('transaction writen', 1\)"),
    (10**6, "step 1000000"),
])
def test_a_round_whose_named_moment_never_comes_fails_naming_it(tmp_path, forkserver, step,
                                                                named):
    """A moment misspelt, or one the code stopped taking (a step renamed), fails its round
    in seconds with its name, where the writer wrote until the round's 60 s were out and
    the round failed as 'still running (hung)'. So does a k-th step past the last the
    writer takes (as a push's, which became shorter): such a round ended by itself and
    passed, testing nothing. The message says how many steps there were."""
    Repository.init(str(tmp_path), "fake", BASE_HASH).close()
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=rf"round 1: no {named} in it \(it ended by "
                                             r"itself after [1-9]\d* durable steps\)"):
        run_round(forkserver, writer, str(tmp_path), {}, "store", "self", step, 1, 0, None)
    assert time.monotonic() - t0 < 50
    assert check(str(tmp_path))["commits"] == NAMED_WITHIN
