"""Child processes and threads of the tests end in a time: one that hangs fails its test, its
command named, where a wait without a timeout held the suite until CI's global timeout with no
test named. A process is killed when its time is up, or when its test fails before waiting for
it (`ended`, `ended_forks`): subprocess's Popen.wait/communicate and multiprocessing's join
give up on a timeout but leave the child running, a plain os.waitpid waits for ever, and a
forked child outlives pytest's test.

Three kinds of handle: subprocess.Popen (`run`, `readline`, `communicate`, `wait`),
multiprocessing Process (`join`) and the pid of an os.fork (`reap`); `end`/`ended` kill the
first two, `ended_forks` pids. `join`, `join_threads` and `reap` wait in one deadline loop
(`_left_after`). A forked child's tqdm lock and torch threads are its own: tests/fork_locks.py.

TIMEOUT is generous for a loaded 2-core machine (the tests' children take seconds)."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

TIMEOUT = 300


def run(args: list, *, check: bool, timeout: float = TIMEOUT,
        **kw) -> subprocess.CompletedProcess:
    """subprocess.run(args, check=check, **kw) within `timeout` seconds: past it the child is
    killed and subprocess.TimeoutExpired, which names the command, fails the test."""
    return subprocess.run(args, check=check, timeout=timeout, **kw)


def readline(proc: subprocess.Popen, stream: IO, timeout: float = TIMEOUT) -> str:
    """The next line `proc` writes on `stream` (a pipe of it not read from yet), waiting at
    most `timeout` seconds for it to begin; past it `proc` is killed and an AssertionError
    names its command."""
    if not select.select([stream], [], [], timeout)[0]:
        proc.kill()
        proc.wait(timeout)
        raise AssertionError(f"{proc.args} wrote nothing in {timeout} s (hung): killed")
    return stream.readline()


def end(*procs) -> None:
    """SIGKILL those of `procs` (subprocess.Popen or multiprocessing Process objects; None
    for one never started) still running, and reap them."""
    for proc in procs:
        if isinstance(proc, subprocess.Popen):
            if proc.poll() is None:
                proc.kill()
            proc.wait(TIMEOUT)  # a SIGKILLed child ends at once
        elif proc is not None and proc.pid is not None and proc.exitcode is None:
            proc.kill()
            proc.join(TIMEOUT)


@contextmanager
def ended(*procs) -> Iterator[None]:
    """Whatever happens inside, `procs` (started) are not running after it: those still
    running are killed and reaped (`end`)."""
    try:
        yield
    finally:
        end(*procs)


def communicate(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple:
    """proc.communicate() within `timeout` seconds: past it `proc` is killed and an
    AssertionError names its command (Popen.communicate's TimeoutExpired leaves it running)."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end(proc)
        raise AssertionError(f"{proc.args} still running after {timeout} s (hung): killed") \
            from None


def wait(proc: subprocess.Popen, timeout: float = TIMEOUT) -> int:
    """proc.wait() within `timeout` seconds, as `communicate` (its pipes are not read)."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        end(proc)
        raise AssertionError(f"{proc.args} still running after {timeout} s (hung): killed") \
            from None


def _left_after(timeout: float, running: Callable[[], list]) -> list:
    """What `running()` (asked every 20 ms) still names once it names nothing or `timeout`
    seconds are past: the deadline of `join`, `join_threads` and `reap`, for all their
    handles together."""
    deadline = time.monotonic() + timeout
    while (left := running()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def join(procs: list, timeout: float = TIMEOUT) -> list[int]:
    """The exit codes of the multiprocessing Processes `procs`, waiting at most `timeout`
    seconds for all: past it the ones still running are killed and an AssertionError names
    them (Process.join(timeout) returns with the process running)."""
    hung = _left_after(timeout, lambda: [proc for proc in procs if proc.exitcode is None])
    end(*hung)
    assert not hung, f"process(es) {[p.pid for p in hung]} still running after {timeout} s " \
                     "(hung): killed"
    return [proc.exitcode for proc in procs]


def join_threads(threads: list[threading.Thread], timeout: float = TIMEOUT) -> None:
    """Wait at most `timeout` seconds for `threads` in all; past it an AssertionError names
    those still running. A thread cannot be killed: start them as daemons, so that one left
    hanging does not hold the test process's exit."""
    hung = _left_after(timeout, lambda: [t.name for t in threads if t.is_alive()])
    assert not hung, f"thread(s) {hung} still running after {timeout} s (hung)"


def reap(pids: list[int], timeout: float, done: dict[int, int] | None = None) -> list[int]:
    """The wait statuses of the forked children `pids` (those already reaped in `done`,
    pid → status), waiting at most `timeout` seconds for the others in all: past it, the
    ones still running are killed (their statuses put in `done` too: reaped) and an
    AssertionError names them; interrupted (Ctrl-C), it kills them as well."""
    done = {} if done is None else done

    def running() -> list[int]:  # reaps those that ended into `done`
        for pid in pids:
            if pid not in done and (found := os.waitpid(pid, os.WNOHANG))[0]:
                done[pid] = found[1]
        return [pid for pid in pids if pid not in done]

    with ended_forks(pids, done):  # (interrupted, Ctrl-C, as well)
        hung = _left_after(timeout, running)
        assert not hung, f"forked child(ren) {hung} still running after {timeout} s " \
                         "(hung): killed"
        return [done[pid] for pid in pids]


@contextmanager
def ended_forks(pids: list[int], done: dict[int, int]) -> Iterator[None]:
    """Whatever happens inside, the forked children `pids` are not running after it: those
    not reaped into `done` (by `reap`) are SIGKILLed and reaped. One reaped is never
    signalled: its pid may be another process's by then."""
    try:
        yield
    finally:
        for pid in pids:
            if pid not in done:
                os.kill(pid, signal.SIGKILL)
                done[pid] = os.waitpid(pid, 0)[1]
