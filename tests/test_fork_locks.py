"""A forked child killed while it holds tqdm's lock does not hold the test process
(tests/fork_locks.py, imported by conftest)."""
from __future__ import annotations

import os
import signal
import threading

from tqdm.auto import tqdm


def test_a_child_killed_holding_tqdms_lock_leaves_the_parents_bars_free():
    tqdm(disable=True).close()  # the lock exists before the fork, as in the crash tests
    pid = os.fork()
    if pid == 0:
        tqdm.get_lock().acquire()
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)  # never reached
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    made = threading.Event()
    thread = threading.Thread(target=lambda: (tqdm(disable=True).close(), made.set()),
                              daemon=True)
    thread.start()
    assert made.wait(10), "a bar in the test process waits on the killed child's lock"
