"""Forked test children take tqdm's write lock and torch's threads for their own, and are
waited for with a deadline.

tqdm's lock (tqdm.std.TqdmDefaultWriteLock) holds a multiprocessing semaphore that a forked
child shares with the test process, and every bar takes it as it is made. The crash tests
fork children and SIGKILL them at random moments: one killed while making a bar left the
lock taken for ever, and the test process's next bar (fsck's, checking the repository
after the kill) waited on it without end — the suite hung (seen once, at 0da18cc, in
test_cli_processes). memstore itself never forks; after a fork in the tests, the child
gives tqdm locks of its own, so a kill there cannot hold the test process.

Torch's threads likewise: GNU OpenMP's pool of the test process is not in a forked child,
and where the test process ran an operation on more than one thread before the fork, the
child's first operation on more than one waits for the missing threads for ever (torch's
set_num_threads(1) before the fork, or in the child, avoids it; 2 or more in the child
hangs). The tests run one thread (tests/tiny.py), which is why none hung; a test that left
more set would have hung the next forked child. The child computes on one.

`reap` waits for a forked child with a deadline, so that one that hangs fails its test
(and is killed) where a plain waitpid would hold the suite; `ended_forks` kills one that a
test failing (or interrupted) before `reap` leaves running, which outlived pytest."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _its_own() -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    std = sys.modules.get("tqdm.std")
    if std is None:
        return  # tqdm not imported yet: the child makes its locks itself
    lock = std.TqdmDefaultWriteLock
    lock.mp_lock = None  # no semaphore shared across processes: thread locks alone
    lock.th_lock = threading.RLock()
    own = lock()
    classes = [std.tqdm]
    while classes:
        cls = classes.pop()
        if "_lock" in vars(cls):
            cls._lock = own
        classes.extend(cls.__subclasses__())


def reap(pids: list[int], timeout: float, done: dict[int, int] | None = None) -> list[int]:
    """The wait statuses of the forked children `pids` (those already reaped in `done`,
    pid → status), waiting at most `timeout` seconds for the others in all: past it, the
    ones still running are killed (their statuses put in `done` too: reaped) and an
    AssertionError names them; interrupted (Ctrl-C), it kills them as well."""
    done = {} if done is None else done
    deadline = time.monotonic() + timeout
    with ended_forks(pids, done):  # (interrupted, Ctrl-C, as well)
        while True:
            for pid in pids:
                if pid not in done and (found := os.waitpid(pid, os.WNOHANG))[0]:
                    done[pid] = found[1]
            hung = [pid for pid in pids if pid not in done]
            if not hung:
                return [done[pid] for pid in pids]
            if time.monotonic() > deadline:
                raise AssertionError(f"forked child(ren) {hung} still running after "
                                     f"{timeout} s (hung): killed")
            time.sleep(0.02)


os.register_at_fork(after_in_child=_its_own)


def _kill(pids: list[int], done: dict[int, int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        done[pid] = os.waitpid(pid, 0)[1]


@contextmanager
def ended_forks(pids: list[int], done: dict[int, int]) -> Iterator[None]:
    """Whatever happens inside, the forked children `pids` are not running after it: those
    not reaped into `done` (by `reap`) are SIGKILLed and reaped. One reaped is never
    signalled: its pid may be another process's by then."""
    try:
        yield
    finally:
        _kill([pid for pid in pids if pid not in done], done)
