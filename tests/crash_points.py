"""Crash points for kill -9 tests: a process that SIGKILLs itself at its k-th durable step
(an fsync, a rename, or a moment of the commit transaction; on S3 a write)."""
import os
import signal
from contextlib import contextmanager

from memstore.store import writer


def _killer(step: int):
    """A function that SIGKILLs this process the `step`-th time it is called."""
    count = [0]

    def point() -> None:
        count[0] += 1
        if count[0] == step:
            os.kill(os.getpid(), signal.SIGKILL)
    return point


def self_kill_at(step: int, calls: tuple[str, ...] = ("fsync", "replace")) -> None:
    """Make this process SIGKILL itself at the `step`-th durable step: before or after each
    of the os functions `calls`, or a moment of the commit transaction."""
    point = _killer(step)

    def around(real):
        def call(*args, **kwargs):
            point()
            out = real(*args, **kwargs)
            point()
            return out
        return call

    real_tx = writer.transaction

    @contextmanager
    def transaction(db):
        with real_tx(db):
            point()  # BEGIN IMMEDIATE taken
            yield db
            point()  # rows written and ref moved, not committed
        point()  # committed

    for name in calls:
        setattr(os, name, around(getattr(os, name)))
    writer.transaction = transaction


def kill_at_s3_call(step: int, methods: tuple[str, ...] = ("put_object",)) -> None:
    """Make this process SIGKILL itself before or after its `step`-th S3 call of `methods`
    (counting both)."""
    import s3fs
    from fsspec.asyn import sync_wrapper

    point = _killer(step)
    real = s3fs.S3FileSystem._call_s3

    async def call(self, method, *args, **kwargs):
        if method not in methods:
            return await real(self, method, *args, **kwargs)
        point()
        out = await real(self, method, *args, **kwargs)
        point()
        return out

    s3fs.S3FileSystem._call_s3 = call
    s3fs.S3FileSystem.call_s3 = sync_wrapper(call)


def orphans(repo, referenced: set[str]) -> int:
    """Objects that neither the commits (`referenced`) nor a statistics record, a stored
    running matrix or a kept ref snapshot name: what a crash between the objects and the
    transaction leaves behind."""
    named = set(referenced)
    for sql in ("select object, record from statistics", "select object from running_matrices",
                "select object from snapshots"):
        named |= {o for row in repo.db.query(sql) for o in row.values() if o}
    return len(set(repo.objects.iter()) - named)
