"""Forked test children take tqdm's write lock and torch's threads for their own (an at-fork
hook; conftest imports this module). Waiting for them with a deadline: children.reap.

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
more set would have hung the next forked child. The child computes on one."""
from __future__ import annotations

import os
import sys
import threading


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


os.register_at_fork(after_in_child=_its_own)

