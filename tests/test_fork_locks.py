"""A forked child killed while it holds tqdm's lock does not hold the test process, and a
forked child computes on one thread where the test process ran on two (tests/fork_locks.py,
imported by conftest). Waiting for forked children (reap): test_children.py."""
from __future__ import annotations

import os
import signal
import threading

import torch
from children import reap
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
