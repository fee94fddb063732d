"""Crash points for kill -9 tests: a process that SIGKILLs itself at its k-th durable step
(an fsync, a rename, or a moment of the commit transaction)."""
import os
import signal
from contextlib import contextmanager

from memstore.store import repository


def self_kill_at(step: int) -> None:
    """Make this process SIGKILL itself at the `step`-th durable step."""
    count = [0]

    def point() -> None:
        count[0] += 1
        if count[0] == step:
            os.kill(os.getpid(), signal.SIGKILL)

    real_fsync, real_replace, real_tx = os.fsync, os.replace, repository.transaction

    def fsync(fd):
        point()
        real_fsync(fd)
        point()

    def replace(a, b):
        point()
        real_replace(a, b)
        point()

    @contextmanager
    def transaction(db):
        with real_tx(db):
            point()  # BEGIN IMMEDIATE taken
            yield db
            point()  # rows written and ref moved, not committed
        point()  # committed

    os.fsync, os.replace, repository.transaction = fsync, replace, transaction
