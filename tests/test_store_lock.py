import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import children
import pytest

from memstore.store.lock import LockedError, RepositoryLock

HOLDER = textwrap.dedent("""
    import sys, time
    from memstore.store.lock import RepositoryLock
    lock = RepositoryLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
""")


def hold(path: Path, seconds: float) -> subprocess.Popen:
    """Another process that takes the lock, says so, and keeps it for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    assert children.readline(proc, proc.stdout).strip() == "locked"
    return proc


def test_a_second_process_waits_and_says_so(tmp_path):
    path = tmp_path / "lock"
    holder = hold(path, 0.6)
    try:
        with pytest.raises(LockedError, match=f"another memstore process \\(pid {holder.pid}\\)"):
            RepositoryLock(path).acquire(wait=False)
        said = []
        t0 = time.monotonic()
        with RepositoryLock(path, on_wait=said.append)():
            waited = time.monotonic() - t0
            assert path.read_text().strip() == str(os.getpid())
        assert said == [f"waiting for another memstore process (pid {holder.pid})…"]
        assert waited > 0.2
    finally:
        children.wait(holder, 10)


def test_no_message_when_the_lock_is_free(tmp_path):
    said = []
    lock = RepositoryLock(tmp_path / "lock", on_wait=said.append)
    with lock(), lock():  # reentrant within one lock object
        assert lock.held
    assert not lock.held and said == []


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "lock"
    holder = hold(path, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    with RepositoryLock(path)(wait=False):
        pass


def test_waiting_can_time_out(tmp_path):
    path = tmp_path / "lock"
    holder = hold(path, 5)
    try:
        with pytest.raises(LockedError, match="gave up after 0.2s"):
            RepositoryLock(path).acquire(timeout=0.2)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_repository_writes_wait_for_the_lock(tmp_path):
    from test_store_support import BASE_HASH, commit_on_head

    from memstore.store.repository import Repository

    Repository.init(tmp_path, "x", BASE_HASH)
    said = []
    repo = Repository.open(tmp_path, on_wait=said.append)
    holder = hold(tmp_path / ".memstore" / "lock", 0.5)
    try:
        with pytest.raises(LockedError), repo.lock(wait=False):
            pass
        commit_on_head(repo)
    finally:
        children.wait(holder, 10)
    assert said == [f"waiting for another memstore process (pid {holder.pid})…"]
    assert len(repo.log()) == 1


def test_a_write_after_a_repair_it_waited_for_is_refused_not_lost(tmp_path):
    """A process that opened the index and then waited for the lock while `fsck --repair`
    renamed a rebuilt index into place would write into the old file: a commit reported
    and lost. It is refused instead, and nothing is written."""
    from test_store_support import BASE_HASH

    from memstore.errors import MemstoreError
    from memstore.store.repair import repair
    from memstore.store.repository import Repository

    Repository.init(tmp_path, "x", BASE_HASH).close()
    with Repository.open(tmp_path) as waiting:
        repair(tmp_path)  # as if it ran while `waiting` waited for the lock
        with pytest.raises(MemstoreError, match="rebuilt by another memstore process"):
            waiting.set_config("note", "lost?")
    with Repository.open(tmp_path) as repo:
        assert repo.get_config("note") is None
        repo.set_config("note", "kept")  # a repository opened after the repair writes
    with Repository.open(tmp_path) as repo:
        assert repo.get_config("note") == "kept"
        assert repo.fsck() == []


def test_a_repair_waits_for_the_lock_and_says_so(tmp_path):
    from test_store_support import BASE_HASH

    from memstore.store.repair import repair
    from memstore.store.repository import Repository

    Repository.init(tmp_path, "x", BASE_HASH).close()
    said = []
    holder = hold(tmp_path / ".memstore" / "lock", 0.5)
    try:
        repair(tmp_path, note=said.append)
    finally:
        children.wait(holder, 10)
    assert said[0] == f"waiting for another memstore process (pid {holder.pid})…"
