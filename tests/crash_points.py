"""Crash points for kill -9 tests: a process that SIGKILLs itself at its k-th durable step
(an fsync, a rename, or a moment of the commit transaction; on S3 a write), and the
forkserver those processes are forked from."""
import multiprocessing
import multiprocessing.forkserver
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import children

from memstore.store import writer

TESTS = Path(__file__).resolve().parent
# What every process forked for a kill or race test needs, imported once in the forkserver.
# One forkserver serves a whole test process (multiprocessing keeps one), so the list is
# the same for every module; each adds its own module, which is cheap once these are in.
PRELOAD = ["torch", "pytest", "s3fs", "memstore.store.repository", "memstore.remote.push",
           "memstore.remote.push_tags", "memstore.remote.push_delete", "memstore.remote.folder",
           "memstore.remote.s3", "test_store_support", "crash_points", "remote_support"]


def forkserver_context(module: str):
    """The forkserver context, its server started with PRELOAD and `module` imported. The
    server is started here with tests/ on PYTHONPATH: it takes its sys.path from the
    environment (Python 3.11 drops the one it is handed), so the test helpers were not
    found, their ImportError was swallowed, and every forked process imported torch again
    (about a second each, hundreds of rounds in the suite)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, module])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent), *filter(None, [old])])
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    return ctx


# This process's killer's counts, moment → times met (None → all moments): what a round
# that ended by itself reports of the steps it took (`_counted`).
_met: dict = {}


def _killer(step):
    """A function of a moment's name that SIGKILLs this process the `step`-th time it is
    called, or, `step` a (moment, n) pair, the n-th time it is called with that moment."""
    _met.clear()  # (one killer a process)
    count = _met

    def point(moment: str = "") -> None:
        for key in (None, moment):
            count[key] = count.get(key, 0) + 1
        if step in (count[None], (moment, count[moment])):
            os.kill(os.getpid(), signal.SIGKILL)
    return point


def self_kill_at(step, calls: tuple[str, ...] = ("fsync", "replace")) -> None:
    """Make this process SIGKILL itself at the `step`-th durable step: before or after each
    of the os functions `calls`, or a moment of the commit transaction. `step` may name the
    moment instead, as (moment, n), its n-th time: "before replace", "after fsync" …, with
    " in transaction" added while the commit transaction is open, or "transaction begun",
    "transaction written", "transaction committed". A rename or unlink of a remote folder's
    ref names it, as kill_at_s3_call names its key: "after replace refs/heads/main" (where
    the k-th step falls varies with the objects a push writes: the name does not)."""
    point, open_ = _killer(step), []

    def around(name, real):
        def call(*args, **kwargs):
            where = " in transaction" if open_ else ""
            target = str(args[1] if name == "replace" else args[0]) if args else ""
            if name in ("replace", "unlink") and "/refs/" in target:
                where += " refs/" + target.rsplit("/refs/", 1)[1]
            point(f"before {name}{where}")
            out = real(*args, **kwargs)
            point(f"after {name}{where}")
            return out
        return call

    real_tx = writer.transaction

    @contextmanager
    def transaction(db):
        with real_tx(db):
            point("transaction begun")  # BEGIN IMMEDIATE taken
            open_.append(db)
            try:
                yield db
            finally:
                open_.pop()
            point("transaction written")  # rows written and ref moved, not committed
        point("transaction committed")

    for name in calls:
        setattr(os, name, around(name, getattr(os, name)))
    writer.transaction = transaction


def kill_at_s3_call(step, methods: tuple[str, ...] = ("put_object",)) -> None:
    """Make this process SIGKILL itself before or after its `step`-th S3 call of `methods`
    (counting both). `step` may name the moment instead, as (moment, n), its n-th time:
    "before put_object object" (any object's key), "after put_object refs/heads/main" …"""
    import s3fs
    from fsspec.asyn import sync_wrapper

    point = _killer(step)
    real = s3fs.S3FileSystem._call_s3

    async def call(self, method, *args, **kwargs):
        if method not in methods:
            return await real(self, method, *args, **kwargs)
        key = "/" + kwargs.get("Key", "")
        what = ("object" if "/objects/" in key else
                "refs/" + key.split("/refs/", 1)[1] if "/refs/" in key else key.rsplit("/")[-1])
        point(f"before {method} {what}")
        out = await real(self, method, *args, **kwargs)
        point(f"after {method} {what}")
        return out

    s3fs.S3FileSystem._call_s3 = call
    s3fs.S3FileSystem.call_s3 = sync_wrapper(call)


def plan(steps, random_kills: int, finished: int, rng) -> list[tuple[str, int]]:
    """The rounds of a kill test, shuffled: ("self", k) kills itself at its k-th step,
    ("random", 0) is killed from outside at a random time, ("none", 0) runs to its end."""
    rounds = ([("self", s) for s in steps] + [("random", 0)] * random_kills
              + [("none", 0)] * finished)
    rng.shuffle(rounds)
    return rounds


def _counted(target, steps, *args) -> None:
    """`target(*args)`, then the number of durable steps it met put in `steps` (a process
    that kills itself never gets here)."""
    target(*args)
    steps.value = _met.get(None, 0)


def run_round(forkserver, target, path, env, kind, how, step, seed, within, rng) -> int:
    """One round: `target(path, env, kind, step, seed, ready)` in a process forked from
    `forkserver`, SIGKILLed from outside within `within` s of being ready when `how` is
    "random"; it must end by itself or by SIGKILL, and by its own SIGKILL when `how` is
    "self": a round whose `step` never comes (a moment renamed or no longer taken, a k-th
    step past the last of an operation that became shorter) fails, naming it and the steps
    the process took, where it ended by itself and the round tested nothing.
    Returns its exit code."""
    ready, steps = forkserver.Event(), forkserver.Value("i", -1, lock=False)
    proc = forkserver.Process(target=_counted,
                              args=(target, steps, str(path), env, kind, step, seed, ready))
    proc.start()
    with children.ended(proc):  # a round that fails or hangs leaves no process behind
        assert ready.wait(60), "the process did not start"
        if how == "random":
            proc.join(rng.uniform(0.0, within))
            if proc.exitcode is None:
                os.kill(proc.pid, signal.SIGKILL)
        [code] = children.join([proc], timeout=60)
    assert code in (0, -signal.SIGKILL), f"the process ended with {code}"
    if how == "self" and code == 0:
        if not step:  # the target kills itself its own way
            raise AssertionError(f"round {seed}: no kill in it (it ended by itself)")
        what = step if isinstance(step, tuple) else f"step {step}"
        raise AssertionError(f"round {seed}: no {what} in it (it ended by itself after "
                             f"{steps.value} durable steps)")
    return code


def orphans(repo, referenced: set[str]) -> int:
    """Objects that neither the commits (`referenced`) nor a statistics record, a stored
    running matrix or a kept ref snapshot name: what a crash between the objects and the
    transaction leaves behind."""
    named = set(referenced)
    for sql in ("select object, record from statistics", "select object from running_matrices",
                "select object from snapshots"):
        named |= {o for row in repo.db.query(sql) for o in row.values() if o}
    return len(set(repo.objects.iter()) - named)
