"""Child processes and threads of the tests end in a time: one that hangs fails its test, its
command named, where a wait without a timeout held the suite until CI's global timeout with no
test named. A process is killed when its time is up, or when its test fails before waiting for
it (`ended`): subprocess's Popen.wait/communicate and multiprocessing's join give up on a
timeout but leave the child running, and a forked child outlives pytest's test.

TIMEOUT is generous for a loaded 2-core machine (the tests' children take seconds)."""
from __future__ import annotations

import select
import subprocess
import threading
import time
from collections.abc import Iterator
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


def join(procs: list, timeout: float = TIMEOUT) -> list[int]:
    """The exit codes of the multiprocessing Processes `procs`, waiting at most `timeout`
    seconds for all: past it the ones still running are killed and an AssertionError names
    them (Process.join(timeout) returns with the process running)."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    hung = [proc for proc in procs if proc.exitcode is None]
    for proc in hung:
        end(proc)
    assert not hung, f"process(es) {[p.pid for p in hung]} still running after {timeout} s " \
                     "(hung): killed"
    return [proc.exitcode for proc in procs]


def join_threads(threads: list[threading.Thread], timeout: float = TIMEOUT) -> None:
    """Wait at most `timeout` seconds for `threads` in all; past it an AssertionError names
    those still running. A thread cannot be killed: start them as daemons, so that one left
    hanging does not hold the test process's exit."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"thread(s) {hung} still running after {timeout} s (hung)"
