"""A tag push or a push --delete SIGKILLed at any moment leaves the remote fsck-clean and
each ref it touches at its old value or its new one (a tag: absent or at the pushed
commit, a forced one at the commit read or the new one; a deleted ref: there, at its
commit, or gone), never anywhere else; here, the repository stays fsck-clean and a fetch
puts its remote-tracking branches right.

As tests/test_remote_crash.py does for a branch's push: the pusher is a process forked
from a multiprocessing forkserver, working on a repository of fake commits; most rounds it
kills itself at its k-th durable step (on a folder before or after an fsync, a rename, an
unlink, a removed folder or a moment of a transaction of the repository; on S3 before or
after the k-th PutObject or DeleteObject), the other rounds it is killed from outside at a
random time."""
from __future__ import annotations

import os
import random

import pytest
from crash_points import forkserver_context, kill_at_s3_call, plan, run_round, self_kill_at
from remote_support import new_remote
from test_store_support import BASE_HASH, commit_on_head, fake_result

from memstore.remote import remotes
from memstore.remote.fetch import fetch
from memstore.remote.fsck import fsck_remote
from memstore.remote.layout import MARKER
from memstore.remote.push import push
from memstore.remote.push_delete import push_delete
from memstore.remote.push_tags import push_tags
from memstore.remote.transport import open_transport
from memstore.store.refs import HEADS, TAGS
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # s3_server

DIMS = {"n": 4, "d_in": 96, "d_out": 48}
# Self-kill steps, random kills (within how many seconds) and runs left to finish. A tag push
# of one commit and two tags has 46-54 durable steps on a folder and 14-16 on S3; a delete
# of a branch and a tag 14-16 on a folder (with the transaction that drops the tracking
# branch), 4 on S3. A step past a run's last fails its round (crash_points.run_round): the
# steps up to 55, 21, 15 and 5 these plans held left 4 rounds finishing unkilled. The tag
# push writes its tags last ('latest', then v<seed>), the first renamed at step 37-45 on
# a folder as its objects are fewer or more, where the steps stop at 37: that rename is
# named, before (its temporary written) and after (one tag moved, the other not), on S3
# its PUT.
PLANS = {("tags", "file"): ([*range(1, 41, 4), ("before replace refs/tags/latest", 1),
                             ("after replace refs/tags/latest", 1)], 2, 0.3, 1),
         ("tags", "s3"): ([*range(1, 15, 3), ("after put_object refs/tags/latest", 1)], 1,
                          1.5, 1),
         ("delete", "file"): (range(1, 15, 2), 2, 0.2, 1),
         ("delete", "s3"): (range(1, 5), 1, 1.0, 1)}


def arm(kind: str, step: int) -> None:
    if step:
        if kind == "file":
            self_kill_at(step, ("fsync", "replace", "unlink", "rmdir"))
        else:
            kill_at_s3_call(step, ("put_object", "delete_object"))


def tag_pusher(path: str, env: dict, kind: str, step: int, seed: int, ready) -> None:
    """One commit, tagged v<seed> and 'latest' (moved here), then push --tags --force."""
    os.environ.update(env)
    repo = Repository.open(path)
    commit_on_head(repo, fake_result(seed, **DIMS), message=f"seed {seed}")
    repo.create_tag(f"v{seed}")
    repo.create_tag("latest", force=True)
    arm(kind, step)
    ready.set()
    push_tags(repo, force=True)


def deleter(path: str, env: dict, kind: str, step: int, seed: int, ready) -> None:
    """Branch topic<seed> and tag v<seed> pushed whole, then both deleted there."""
    os.environ.update(env)
    repo = Repository.open(path)
    repo.create_branch(f"topic{seed}", "main")
    repo.switch(f"topic{seed}")
    commit_on_head(repo, fake_result(seed, **DIMS), message=f"seed {seed}")
    repo.create_tag(f"v{seed}")
    repo.switch("main")
    push(repo, branch=f"topic{seed}")
    push_tags(repo, only=f"v{seed}")
    arm(kind, step)
    ready.set()
    push_delete(repo, "origin", [f"topic{seed}", f"v{seed}"])


@pytest.fixture(scope="module")
def forkserver():
    return forkserver_context(__name__)


def refs_of(transport) -> dict[str, str]:
    return {**{HEADS + b: c for b, c in transport.branches().items()},
            **{TAGS + t: c for t, c in transport.tags().items()}}


def rounds(what: str, kind: str) -> list[tuple[str, int]]:
    steps, random_kills, _, finished = PLANS[what, kind]
    return plan(steps, random_kills, finished, random.Random(0))


def repository(tmp_path, url):
    path = tmp_path / "local"
    with Repository.init(path, "fake", BASE_HASH) as repo:
        remotes.add(repo, "origin", url)
        commit_on_head(repo, fake_result(0, **DIMS), message="seed 0")
        push(repo)
    return path


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_sigkill_during_push_tags_leaves_each_tag_old_or_new(kind, tmp_path, request,
                                                              forkserver):
    url, env = new_remote(kind, tmp_path, request)
    path = repository(tmp_path, url)
    transport = open_transport(url)
    plan, within, rng = rounds("tags", kind), PLANS["tags", kind][2], random.Random(1)
    seen, split = [], False
    for seed, (how, step) in enumerate(plan, 1):
        before = refs_of(transport)
        code = run_round(forkserver, tag_pusher, path, env, kind, how, step, seed, within, rng)
        with Repository.open(path) as repo:
            tags = repo.tags()
        after = refs_of(transport)
        assert transport.read(MARKER) is not None
        for ref in {*before, *after}:
            old, now = before.get(ref), after.get(ref)
            new = tags.get(ref[len(TAGS):]) if ref.startswith(TAGS) else old
            assert now in (old, new), f"round {seed} ({how} {step}): {ref} is at neither"
        assert fsck_remote(url) == [], f"round {seed} ({how} {step})"
        seen.append(after.get(TAGS + f"v{seed}") is not None)
        # killed between its tags: 'latest' moved there, v<seed> not yet
        split |= bool(code) and after.get(TAGS + "latest") != before.get(TAGS + "latest") \
            and not seen[-1]
    assert any(seen) and not all(seen)  # kills hit before the tags and after
    assert split
    with Repository.open(path) as repo:  # a clean push then brings every tag
        push_tags(repo, force=True)
        tags = repo.tags()
    assert transport.tags() == tags and fsck_remote(url) == []
    with Repository.init(tmp_path / "other", "fake", BASE_HASH) as other:
        remotes.add(other, "origin", url)
        fetch(other, all_tags=True)
        assert other.tags() == tags and other.fsck() == []


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_sigkill_during_push_delete_leaves_each_ref_there_or_gone(kind, tmp_path, request,
                                                                  forkserver):
    url, env = new_remote(kind, tmp_path, request)
    path = repository(tmp_path, url)
    transport = open_transport(url)
    plan, within, rng = rounds("delete", kind), PLANS["delete", kind][2], random.Random(1)
    gone = []
    for seed, (how, step) in enumerate(plan, 1):
        run_round(forkserver, deleter, path, env, kind, how, step, seed, within, rng)
        after = refs_of(transport)
        with Repository.open(path) as repo:
            pushed = repo.refs.read(HEADS + f"topic{seed}")
            assert repo.tags()[f"v{seed}"] == pushed  # the local ones stay
            for ref in (HEADS + f"topic{seed}", TAGS + f"v{seed}"):
                assert after.get(ref) in (pushed, None), f"round {seed}: {ref} at neither"
            tracking = repo.refs.read(remotes.tracking_ref("origin", f"topic{seed}"))
            assert tracking in (pushed, None)
            if tracking is None:  # removed here only once deleted there
                assert HEADS + f"topic{seed}" not in after
            assert repo.fsck() == [], f"round {seed} ({how} {step})"
        assert fsck_remote(url) == [], f"round {seed} ({how} {step})"
        gone.append(HEADS + f"topic{seed}" not in after)
    assert any(gone) and not all(gone)  # kills hit before the delete and after
    with Repository.open(path) as repo:  # a fetch puts the remote-tracking branches right
        fetch(repo)
        assert remotes.tracking(repo, "origin") == transport.branches()
        left = [n for n in transport.branches() if n != "main"]
        left += [f"refs/tags/{t}" for t in transport.tags()]
        if left:
            push_delete(repo, "origin", left)
        assert transport.branches() == {"main": repo.resolve("main")} and transport.tags() == {}
        assert remotes.tracking(repo, "origin") == {"main": repo.resolve("main")}
    assert fsck_remote(url) == []
