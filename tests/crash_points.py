"""Crash points for kill -9 tests: a process that SIGKILLs itself at its k-th durable step
(an fsync, a rename, or a moment of the commit transaction)."""
import os
import signal
from contextlib import contextmanager

from memstore.store import writer


def self_kill_at(step: int) -> None:
    """Make this process SIGKILL itself at the `step`-th durable step."""
    count = [0]

    def point() -> None:
        count[0] += 1
        if count[0] == step:
            os.kill(os.getpid(), signal.SIGKILL)

    real_fsync, real_replace, real_tx = os.fsync, os.replace, writer.transaction

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

    os.fsync, os.replace, writer.transaction = fsync, replace, transaction


def orphans(repo, referenced: set[str]) -> int:
    """Objects that neither the commits (`referenced`) nor a statistics record, a stored
    running matrix or a kept ref snapshot name: what a crash between the objects and the
    transaction leaves behind."""
    named = set(referenced)
    for sql in ("select object, record from statistics", "select object from running_matrices",
                "select object from snapshots"):
        named |= {o for row in repo.db.query(sql) for o in row.values() if o}
    return len(set(repo.objects.iter()) - named)
