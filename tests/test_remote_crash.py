"""A push SIGKILLed at any moment leaves the remote fsck-clean, its branch at the commit it
held before or at the one pushed, never anywhere else and never pointing at a commit whose
objects are not all there.

The pusher is a process forked from a multiprocessing forkserver (the store imported
once), working on a repository of fake commits. Each round it makes one more commit and
pushes its branch; most rounds it kills itself: on a folder at its k-th durable step, an
fsync or a rename (tests/crash_points.py, the technique of test_store_crash), on S3 at a
named moment, before or after a PutObject of an object or of the branch; the other rounds it
is killed from outside at a random time."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from crash_points import forkserver_context, kill_at_s3_call, plan, run_round, self_kill_at
from remote_support import new_remote
from test_store_support import BASE_HASH, commit_on_head, fake_result

from memstore.remote import remotes
from memstore.remote.fetch import fetch
from memstore.remote.fsck import fsck_remote
from memstore.remote.layout import MARKER, branch_path
from memstore.remote.push import push
from memstore.remote.transfer import object_ids, reachable
from memstore.remote.transport import open_transport
from memstore.store.objects import hash_bytes
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # s3_server

DIMS = {"n": 4, "d_in": 96, "d_out": 48}
# Self-kill steps, random kills (within how many seconds) and pushes left to finish: a push
# of one commit has 42-54 durable steps on a folder (fsyncs and renames, before and after
# each; 68 the first, which makes the remote; the branch renamed about 12 before the end)
# and ~12-16 on S3 (before and after each PUT). A step past a push's last fails its round
# (crash_points.run_round): steps up to 63 left 2 of the 16 rounds finishing unkilled.
# The branch's rename is then at step 31-43, as the push's objects are fewer or more:
# the steps up to 39 stop short of it in most rounds, so it is named, the branch's
# temporary written and not renamed, and renamed (the push landed, its folder not
# fsynced). On S3 one round per state a kill can leave the remote in: no
# object of the push yet, some, all but the branch not moved, the branch moved (7 rounds
# at every third PUT hit the second of these 3-4 times).
PLANS = {"file": ([*range(1, 40, 3), ("before replace refs/heads/main", 1),
                   ("after replace refs/heads/main", 1)], 3, 0.3, 1),
         "s3": ([("before put_object object", 1), ("after put_object object", 1),
                 ("before put_object refs/heads/main", 1),
                 ("after put_object refs/heads/main", 1)], 2, 1.5, 2)}


def pusher(path: str, env: dict, kind: str, step, seed: int, ready) -> None:
    os.environ.update(env)
    repo = Repository.open(path)
    commit_on_head(repo, fake_result(seed, **DIMS), message=f"seed {seed}")
    if step:
        (self_kill_at if kind == "file" else kill_at_s3_call)(step)
    ready.set()
    push(repo)


@pytest.fixture(scope="module")
def forkserver():
    return forkserver_context(__name__)


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_sigkill_during_push_leaves_the_remote_clean(kind, tmp_path, request, forkserver):
    url, env = new_remote(kind, tmp_path, request)
    path = tmp_path / "local"
    with Repository.init(path, "fake", BASE_HASH) as repo:
        remotes.add(repo, "origin", url)
    transport = open_transport(url)
    steps, random_kills, within, finished = PLANS[kind]
    rng = random.Random(0)
    seen = []
    rounds = plan(steps, random_kills, finished, rng)
    for seed, (how, step) in enumerate(rounds, 1):
        old = transport.read_ref(branch_path("main")).commit
        code = run_round(forkserver, pusher, path, env, kind, how, step, seed, within, rng)
        with Repository.open(path) as repo:
            new = repo.head().commit
            now = transport.read_ref(branch_path("main")).commit
            assert now in (old, new), f"round {seed}: the branch is at neither commit"
            if transport.read(MARKER) is None:  # killed before the remote was made
                assert now is None and not transport.exists()
            else:
                assert fsck_remote(url) == [], f"round {seed} ({how} {step})"
            reached = object_ids(reachable(repo, [now])) if now else set()
        stored = {rel.replace("/", "") for rel in transport.list("objects/")}
        seen.append({"landed": now == new, "killed": code != 0,
                     "orphans": len(stored - reached)})
    # the kills hit before the branch moved (objects written, unreferenced) and after it
    # (rounds that ended by themselves land too: they do not count)
    assert {s["landed"] for s in seen if s["killed"]} == {True, False}
    assert any(s["orphans"] for s in seen)
    # and a clean push then brings everything, which another repository fetches intact
    with Repository.open(path) as repo:
        push(repo)
        head = repo.head().commit
    with Repository.init(tmp_path / "other", "fake", BASE_HASH) as other:
        remotes.add(other, "origin", url)
        fetch(other)
        assert other.resolve("origin/main") == head and other.fsck() == []
        assert len(other.log("origin/main")) == len(rounds)


def test_a_folder_push_fsyncs_each_object_folder_once_before_the_branch(tmp_path, monkeypatch):
    """A push to a folder fsynced the fan-out folder after each object it renamed in (two
    fsyncs an object: 56 s of a 5,000-commit push). Each folder is now fsynced once, after
    the last object renamed into it and before the branch that names them is renamed into
    place: what a power cut can lose is unreferenced, as before."""
    import memstore.remote.folder as folder_module
    import memstore.store.objects as objects_module

    url = tmp_path / "remote"
    with Repository.init(tmp_path / "local", "fake", BASE_HASH) as repo:
        remotes.add(repo, "origin", str(url))
        for seed in range(20):
            commit_on_head(repo, fake_result(seed, n=1), message=f"seed {seed}")
        events = []
        real_sync, real_replace = objects_module.fsync_dir, os.replace

        def sync(path):
            events.append(("sync", Path(path)))
            real_sync(path)

        def replace(src, dst):
            events.append(("rename", Path(dst)))
            real_replace(src, dst)

        monkeypatch.setattr(objects_module, "fsync_dir", sync)
        monkeypatch.setattr(folder_module, "fsync_dir", sync)
        monkeypatch.setattr(os, "replace", replace)
        pushed = push(repo)
    objects = [p for kind, p in events if kind == "rename" and p.parent.parent == url / "objects"]
    assert len(objects) == pushed.moved.objects == 100
    folders = {p.parent for p in objects}
    assert len(folders) < len(objects)  # some folder holds two objects or more
    synced = [p for kind, p in events if kind == "sync" and p in folders]
    assert sorted(synced) == sorted(folders)  # once each
    ref = events.index(("rename", url / "refs" / "heads" / "main"))
    for folder in folders:
        last_in = max(i for i, (kind, p) in enumerate(events)
                      if kind == "rename" and p.parent == folder)
        assert last_in < events.index(("sync", folder)) < ref, folder


def test_a_fetch_fsyncs_each_object_folder_once_before_indexing(tmp_path, monkeypatch):
    """A fetch (and so a clone) fsynced the repository's fan-out folder after each object
    it renamed in (two fsyncs an object: 52 s of a 5,000-commit clone). Each folder is now
    fsynced once, after the last object renamed into it and before the index names them."""
    import memstore.store.objects as objects_module

    url = str(tmp_path / "remote")
    with Repository.init(tmp_path / "a", "fake", BASE_HASH) as a:
        remotes.add(a, "origin", url)
        for seed in range(20):
            commit_on_head(a, fake_result(seed, n=1), message=f"seed {seed}")
        push(a)
        tip = a.head().commit
    events = []
    real_sync, real_replace = objects_module.fsync_dir, os.replace
    monkeypatch.setattr(objects_module, "fsync_dir",
                        lambda path: events.append(("sync", Path(path))) or real_sync(path))
    monkeypatch.setattr(os, "replace",
                        lambda src, dst: events.append(("rename", Path(dst))) or
                        real_replace(src, dst))
    with Repository.init(tmp_path / "b", "fake", BASE_HASH) as b:
        remotes.add(b, "origin", url)
        real_index = b.add_commits
        monkeypatch.setattr(b, "add_commits", lambda *args: events.append(("index", None))
                            or real_index(*args))
        events.clear()  # what init and remote add wrote
        got = fetch(b)
        assert b.resolve("origin/main") == tip and b.fsck() == []
    store = tmp_path / "b" / ".memstore" / "objects"
    index = events.index(("index", None))  # after it: the ref snapshot, a write of its own
    objects = [p for kind, p in events[:index] if kind == "rename" and p.parent.parent == store]
    assert len(objects) == got.moved.objects == 100
    folders = {p.parent for p in objects}
    assert len(folders) < len(objects)  # some folder holds two objects or more
    assert sorted(p for kind, p in events[:index] if kind == "sync" and p in folders) \
        == sorted(folders)
    for folder in folders:  # the ref snapshot written after indexing may share a folder
        last_in = max(i for i, (kind, p) in enumerate(events[:index])
                      if kind == "rename" and p.parent == folder)
        assert last_in < events.index(("sync", folder)) < index, folder


def test_a_failing_refetch_fsyncs_the_folders_of_the_objects_it_restored(tmp_path, monkeypatch):
    """`fetch --refetch` renames each restored object over its damaged copy, and keeps it
    whatever follows (it is no new object for the failing fetch to discard); the folder
    fsync was deferred to the end of the fetch's block and ran only on success, so a fetch
    failing after the restores (here its statistics) left those renames not durable. The
    folders are now fsynced on the failure path too: counted with the fsync stand-in."""
    import stat

    import memstore.remote.fetch as fetch_module
    from memstore.errors import MemstoreError

    url = str(tmp_path / "remote")
    with Repository.init(tmp_path / "a", "fake", BASE_HASH) as a:
        remotes.add(a, "origin", url)
        for seed in range(3):
            commit_on_head(a, fake_result(seed, n=1), message=f"seed {seed}")
        push(a)
    with Repository.init(tmp_path / "b", "fake", BASE_HASH) as b:
        remotes.add(b, "origin", url)
        fetch(b)
        commit = b.get_commit(b.resolve("origin/main"))
        damaged = [b.objects.path(commit.update_sets[0].zs),
                   b.objects.path(next(iter(commit.update_sets[0].layers.values())).object)]
        for path in damaged:
            path.chmod(0o644)
            path.write_bytes(b"damaged")
        synced: list[Path] = []
        stand_in = os.fsync

        def counted(fd):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
            stand_in(fd)

        def fail(*args, **kwargs):
            raise MemstoreError("the statistics failed")

        monkeypatch.setattr(os, "fsync", counted)
        monkeypatch.setattr(fetch_module, "fetch_statistics", fail)
        with pytest.raises(MemstoreError, match="the statistics failed"):
            fetch(b, refetch=True, with_stats=True)
        assert all(hash_bytes(p.read_bytes()) == p.parent.name + p.name
                   for p in damaged)  # restored, and kept
    assert {p.parent for p in damaged} <= set(synced), synced


def refetcher(path: str, env: dict, kind: str, step: int, seed: int, ready) -> None:
    repo = Repository.open(path)
    if step:
        self_kill_at(step)
    ready.set()
    fetch(repo, refetch=True)


def test_sigkill_during_a_refetch_of_a_request_list_then_a_refetch_leaves_fsck_clean(
        tmp_path, forkserver):
    """`fsck --repair` indexed a commit without the facts of its flipped request list;
    `fetch --refetch` restores the list (durable: fsync, rename) and then writes its rows
    in the fetch's one transaction. Killed at each of its durable steps, one more
    `fetch --refetch` leaves fsck clean and the facts indexed: killed between the two,
    the list was intact and its rows missing, and the next refetch, with nothing to
    restore, wrote no row (fsck named them until another `fsck --repair`)."""
    from memstore.store.repair import repair

    url = str(tmp_path / "remote")
    template = tmp_path / "template"
    with Repository.init(template, "fake", BASE_HASH) as a:
        remotes.add(a, "origin", url)
        for seed in range(2):
            commit_on_head(a, fake_result(seed, n=2), message=f"seed {seed}")
        push(a)
        tip = a.head().commit
        requests = a.get_commit(tip).update_sets[0].requests
        listed = a.objects.path(requests)
    listed.chmod(0o644)
    data = bytearray(listed.read_bytes())
    data[10] ^= 1
    listed.write_bytes(bytes(data))
    repair(template)

    def rows(repo: Repository) -> int:
        return next(iter(repo.db.query("select count(*) as n from requests where "
                                       "commit_id = ?", [tip])))["n"]

    with Repository.open(template) as a:
        assert rows(a) == 0 and a.fsck() != []
    rng = random.Random(0)
    between = 0
    for step in range(1, 10):  # the refetch's 9 steps (15 left 6 rounds unkilled)
        path = tmp_path / f"round{step}"
        shutil.copytree(template, path)
        run_round(forkserver, refetcher, path, {}, "file", "self", step, step, 0, rng)
        with Repository.open(path) as repo:
            restored = hash_bytes(repo.objects.path(requests).read_bytes()) == requests
            between += restored and rows(repo) == 0
            fetch(repo, refetch=True)
            assert repo.fsck() == [], f"killed at step {step}"
            assert rows(repo) == 2
    assert between  # some kill fell after the restore, before the rows
