"""tests/children.py: a child (Popen, Process, forked pid) or thread that hangs fails its test
in the time given, its command named, and is killed (where a wait without a timeout held the
suite)."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import children
import pytest

SILENT = [sys.executable, "-c", "import time; time.sleep(60); print('late')"]


def test_run_of_a_child_that_hangs_fails_in_its_time_naming_it():
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired, match="time.sleep.60") as e:
        children.run(SILENT, check=False, capture_output=True, timeout=1)
    assert time.monotonic() - t0 < 20 and e.value.timeout == 1


def test_readline_of_a_child_that_says_nothing_fails_in_its_time_and_kills_it():
    proc = subprocess.Popen(SILENT, stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="time.sleep.60.*wrote nothing in 1 s"):
            children.readline(proc, proc.stdout, timeout=1)
        assert time.monotonic() - t0 < 20 and proc.returncode is not None  # killed, reaped
    finally:
        proc.kill()
        proc.wait(10)


def test_readline_returns_the_line_a_child_writes():
    proc = subprocess.Popen([sys.executable, "-c", "print('ready', flush=True)"],
                            stdout=subprocess.PIPE, text=True)
    assert children.readline(proc, proc.stdout, timeout=60) == "ready\n"
    assert proc.wait(60) == 0


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not been reaped (a zombie counts: not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_communicate_and_wait_of_a_child_that_hangs_fail_in_their_time_and_kill_it():
    # Popen.communicate(timeout=) and Popen.wait(timeout) raise and leave the child running
    for call in (children.communicate, children.wait):
        proc = subprocess.Popen(SILENT, stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        try:
            with pytest.raises(AssertionError, match="time.sleep.60.*still running after 1 s"):
                call(proc, timeout=1)
            assert time.monotonic() - t0 < 20 and not _running(proc.pid)  # killed, reaped
        finally:
            proc.kill()
            proc.wait(10)


def test_join_of_a_forked_process_that_hangs_fails_in_its_time_and_kills_it():
    # multiprocessing's Process.join(timeout) returns with the process running
    ctx = multiprocessing.get_context("fork")
    slow, quick = ctx.Process(target=time.sleep, args=(60,)), ctx.Process(target=time.sleep,
                                                                          args=(0,))
    for p in (slow, quick):
        p.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(AssertionError, match=f"\\[{slow.pid}\\] still running after 1 s"):
            children.join([slow, quick], timeout=1)
        assert time.monotonic() - t0 < 20 and not _running(slow.pid)
        assert (slow.exitcode, quick.exitcode) == (-signal.SIGKILL, 0)
    finally:
        children.end(slow, quick)
    assert children.join([quick], timeout=60) == [0]


def test_ended_kills_what_a_failing_test_left_running():
    proc = subprocess.Popen(SILENT, stdout=subprocess.DEVNULL)
    forked = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    forked.start()
    with pytest.raises(AssertionError, match="the test failed"), \
            children.ended(proc, forked, None):
        raise AssertionError("the test failed")
    assert not _running(proc.pid) and not _running(forked.pid)
    assert (proc.returncode, forked.exitcode) == (-signal.SIGKILL, -signal.SIGKILL)


def test_join_threads_of_a_thread_that_hangs_fails_in_its_time_naming_it():
    go = threading.Event()
    thread = threading.Thread(target=go.wait, args=(60,), name="stuck", daemon=True)
    thread.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(AssertionError, match=r"\['stuck'\] still running after 1 s"):
            children.join_threads([thread], timeout=1)
        assert time.monotonic() - t0 < 20
    finally:
        go.set()
    children.join_threads([thread], timeout=60)
    assert not thread.is_alive()


def _child(sleep: float = 0, code: int = 0) -> int:
    """A forked child that sleeps `sleep` seconds, then exits with `code`."""
    pid = os.fork()
    if pid == 0:
        time.sleep(sleep)
        os._exit(code)
    return pid


def test_reap_of_a_forked_child_that_hangs_fails_in_its_time_and_kills_it():
    """children.reap on a child that hangs and one that exits: an AssertionError naming the one
    that hangs once the timeout is past (where waitpid waited for ever), that one killed
    and reaped, the other's status kept."""
    hung, quick = _child(sleep=600), _child(code=5)
    done: dict[int, int] = {}
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=rf"\[{hung}\] still running after 1 s"):
        children.reap([quick, hung], timeout=1, done=done)
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
            children.ended_forks([hung, quick], done):
        children.reap([quick], timeout=60, done=done)
        raise AssertionError("the test failed")
    assert killed == [hung] and os.waitstatus_to_exitcode(done[hung]) == -signal.SIGKILL
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(hung, os.WNOHANG)


def test_a_reap_interrupted_kills_the_child_it_waited_for(monkeypatch):
    """Ctrl-C in reap's wait left the child running past pytest."""
    child = _child(sleep=600)

    def interrupt(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(children.time, "sleep", interrupt)
    done: dict[int, int] = {}
    with pytest.raises(KeyboardInterrupt):
        children.reap([child], timeout=60, done=done)
    monkeypatch.undo()
    assert os.waitstatus_to_exitcode(done[child]) == -signal.SIGKILL
