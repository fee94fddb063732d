"""A forked child killed while it holds tqdm's lock does not hold the test process, a forked
child computes on one thread where the test process ran on two, and a child that hangs
fails its test in its time (tests/fork_locks.py, imported by conftest)."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch
from fork_locks import ended_forks, reap
from tqdm.auto import tqdm


def test_a_child_killed_holding_tqdms_lock_leaves_the_parents_bars_free():
    tqdm(disable=True).close()  # the lock exists before the fork, as in the crash tests
    pid = os.fork()
    if pid == 0:
        tqdm.get_lock().acquire()
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)  # never reached
    [status] = reap([pid], timeout=20)
    assert os.WIFSIGNALED(status)
    made = threading.Event()
    thread = threading.Thread(target=lambda: (tqdm(disable=True).close(), made.set()),
                              daemon=True)
    thread.start()
    assert made.wait(10), "a bar in the test process waits on the killed child's lock"



def test_a_child_forked_after_operations_on_two_threads_computes():
    """The test process runs an operation on two threads (GNU OpenMP's pool made), then
    forks: the child's operations run (on one thread), where on two they waited for the
    pool's threads, which are not in the child, for ever."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(2_000_000)
        (x * 2).exp()  # on two threads
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                (x * 2).exp().sum()
                code = 0 if torch.get_num_threads() == 1 else 4
            finally:
                os._exit(code)
    finally:
        torch.set_num_threads(threads)
    [status] = reap([pid], timeout=20)
    assert os.waitstatus_to_exitcode(status) == 0


def _child(sleep: float = 0, code: int = 0) -> int:
    """A forked child that sleeps `sleep` seconds, then exits with `code`."""
    pid = os.fork()
    if pid == 0:
        time.sleep(sleep)
        os._exit(code)
    return pid


def test_a_child_that_hangs_is_killed_and_fails_the_wait_in_its_time():
    """reap() on a child that hangs and one that exits: an AssertionError naming the one
    that hangs once the timeout is past (where waitpid waited for ever), that one killed
    and reaped, the other's status kept."""
    hung, quick = _child(sleep=600), _child(code=5)
    done: dict[int, int] = {}
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=rf"\[{hung}\] still running after 1 s"):
        reap([quick, hung], timeout=1, done=done)
    assert time.monotonic() - t0 < 10
    assert os.waitstatus_to_exitcode(done[quick]) == 5
    assert os.waitstatus_to_exitcode(done[hung]) == -signal.SIGKILL  # reaped: in done
    with pytest.raises(ChildProcessError):  # killed and reaped: no zombie left
        os.waitpid(hung, os.WNOHANG)


def test_ended_forks_kills_what_a_failing_test_left_and_never_signals_a_reaped_pid(
        monkeypatch):
    """A test that fails between its fork and its reap left the child running past pytest
    (test_cli_processes' committer, writing on); one that cleaned up with os.kill after a
    child exited 0 signalled a reaped pid (test_cli_signals' gc test), another process's
    once reused."""
    hung, quick = _child(sleep=600), _child()
    killed, real_kill = [], os.kill
    monkeypatch.setattr(os, "kill", lambda pid, sig: (killed.append(pid), real_kill(pid, sig)))
    done: dict[int, int] = {}
    with pytest.raises(AssertionError, match="the test failed"), \
            ended_forks([hung, quick], done):
        reap([quick], timeout=60, done=done)
        raise AssertionError("the test failed")
    assert killed == [hung] and os.waitstatus_to_exitcode(done[hung]) == -signal.SIGKILL
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(hung, os.WNOHANG)


def test_a_reap_interrupted_kills_the_child_it_waited_for(monkeypatch):
    """Ctrl-C in reap's wait left the child running past pytest."""
    import fork_locks

    child = _child(sleep=600)

    def interrupt(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(fork_locks.time, "sleep", interrupt)
    done: dict[int, int] = {}
    with pytest.raises(KeyboardInterrupt):
        reap([child], timeout=60, done=done)
    monkeypatch.undo()
    assert os.waitstatus_to_exitcode(done[child]) == -signal.SIGKILL
