"""The SQLite index (`.memstore/index.db`): its schema as an ordered list of migrations.

As in simonw/llm, each migration is a function recorded in the `migrations` table once
applied; opening an index applies the missing ones in order, each in its own transaction.
The schema version is the number of migrations applied. Append new migrations at the end;
never edit or reorder an applied one.

The objects are the truth; the index makes them searchable and holds the refs."""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from ..errors import MemstoreError

BUSY_TIMEOUT_MS = 30_000
SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's companions of the database file


class DamagedIndexError(MemstoreError):
    """index.db is missing, unreadable or not a memstore index: refused, never recreated."""


def parents_of(row: dict) -> tuple[str, ...]:
    """The parents of an index row of the commits table; a damaged one is refused."""
    try:
        parents = json.loads(row["parents"])
    except (TypeError, ValueError, RecursionError):
        parents = None
    if not (isinstance(parents, list) and all(isinstance(p, str) for p in parents)):
        raise DamagedIndexError(f"the index row of commit {str(row['id'])[:12]} is damaged "
                                "(its parents); run `memstore fsck --repair`")
    return tuple(parents)


def parents_loop(commit: str) -> DamagedIndexError:
    """The index's parent rows form a loop (a commit is its own ancestor): its rows are
    damaged, the commit records are not (they name their parents by hash)."""
    return DamagedIndexError(f"the index's parents of commit {commit[:12]} loop back to it; "
                             "run `memstore fsck --repair` (it rebuilds the index from the "
                             "commit records)")


def not_indexed(commit: str) -> DamagedIndexError:
    """A ref (or a walk of the rows) names `commit`, which has no commits row."""
    return DamagedIndexError(f"commit {commit[:12]} is named but not in the index; run "
                             "`memstore fsck`")


def time_of(row: dict) -> float:
    """The time of an index row of the commits table; a damaged one is refused."""
    t = row["time"]
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise DamagedIndexError(f"the index row of commit {str(row['id'])[:12]} is damaged "
                                f"(its time {str(t)[:40]!r}); run `memstore fsck --repair`")
    return t


def size_of(row: dict) -> int:
    """The size of an index row of the commits table (bytes its objects add); a damaged one
    is refused."""
    n = row["size"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise DamagedIndexError(f"the index row of commit {str(row['id'])[:12]} is damaged "
                                f"(its size {str(n)[:40]!r}); run `memstore fsck --repair`")
    return n


def m001_initial(db: Database) -> None:
    db["commits"].create({
        "id": str, "parents": str, "basis": str, "base_hash": str,
        "time": float, "message": str, "operation": str, "n_requests": int, "size": int,
        "metrics": str,
    }, pk="id", not_null={"parents", "base_hash", "time", "message", "operation"})
    db["requests"].create({
        "commit_id": str, "set_index": int, "position": int, "subject": str, "prompt": str,
        "target_new": str, "target_true": str, "case_id": int,
    }, pk=("commit_id", "set_index", "position"),
        not_null={"subject", "prompt", "target_new"})
    db["requests"].create_index(["subject"])
    db["requests"].create_index(["prompt"])
    db["refs"].create({"name": str, "target": str, "symbolic": str}, pk="name")
    db["objects"].create({"id": str, "size": int, "kind": str}, pk="id")
    db["statistics"].create({
        "id": str, "layer": int, "n_tokens": int, "description": str, "object": str,
        "created": float,
    }, pk=("id", "layer"), not_null={"n_tokens", "description", "object"})
    db["config"].create({"key": str, "value": str}, pk="key")


def m002_running_matrices(db: Database) -> None:
    """Stored running matrices (store.preserved): derived, rebuilt when missing."""
    db["running_matrices"].create({"commit_id": str, "object": str, "used": float},
                                  pk="commit_id", not_null={"object"})


def m003_snapshots(db: Database) -> None:
    """Ref/config snapshots as objects (store.snapshots) and statistics records as objects
    (store.stats_records): what lets `fsck --repair` rebuild a lost index."""
    db["snapshots"].create({"seq": int, "object": str, "time": float}, pk="seq",
                           not_null={"object"})
    db["statistics"].add_column("record", str)


def m004_reflog(db: Database) -> None:
    """The reflog (store.reflog): each move of HEAD, a branch or a remote-tracking branch."""
    db["reflog"].create({"id": int, "ref": str, "old": str, "new": str, "time": float,
                         "author": str, "message": str}, pk="id")
    db["reflog"].create_index(["ref"])


MIGRATIONS: list[Callable[[Database], None]] = [m001_initial, m002_running_matrices,
                                                m003_snapshots, m004_reflog]


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """One write transaction. BEGIN IMMEDIATE takes SQLite's write lock at the start, so a
    read-check-write (a ref compare-and-swap) cannot interleave with another writer.
    Nested uses become savepoints."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.commit()
    _backfill(db)


def _backfill(db: Database) -> None:
    """Copies what the WAL holds into index.db (a PASSIVE checkpoint: it never waits, and
    copies what no reader still needs the older pages for). Until then a committed change
    lives only in index.db-wal, and a process killed before it closes the index (closing
    does the same) leaves it there: an index.db copied or kept without its -wal file would
    silently lose the newest commits."""
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.OperationalError:
        pass  # busy or locked: the next write, or the last close, does it


@contextmanager
def read_snapshot(db: Database) -> Iterator[Database]:
    """One read transaction: every query in it sees the index as it was at its first read
    (WAL), whatever other processes commit meanwhile. Writes nothing; inside a transaction
    already, it is that one."""
    if db.conn.in_transaction:
        yield db
        return
    db.execute("BEGIN")
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts
        yield db
    finally:
        db.conn.rollback()


def wait_for_readers(db: Database, on_wait: Callable[[str], None] | None = None) -> None:
    """Returns once every connection to the index reads its newest state: a FULL
    checkpoint waits (SQLite's busy timeout at a time) for the read transactions that began
    before the last commit. gc calls it between deleting rows and deleting files, so a
    command that read the rows (`Repository.pin`) finishes reading the files first.

    Each try returns at once (no busy timeout), and the wait between tries is Python's: in
    SQLite's busy timeout a signal waited for the end of the try (Ctrl-C, up to 30 s)."""
    db.execute("PRAGMA busy_timeout = 0")
    try:
        busy = db.execute("PRAGMA wal_checkpoint(FULL)").fetchone()[0]
        if busy and on_wait is not None:
            on_wait("waiting for memstore commands that read the repository…")
        while busy:
            time.sleep(0.05)
            busy = db.execute("PRAGMA wal_checkpoint(FULL)").fetchone()[0]
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def applied_migrations(db: Database) -> list[str]:
    if "migrations" not in db.table_names():
        return []
    return [r["name"] for r in db.query("select name from migrations order by id")]


def migrate(db: Database) -> list[str]:
    """Applies the missing migrations; returns the names applied now. Idempotent."""
    known = [m.__name__ for m in MIGRATIONS]
    if _check_applied(applied_migrations(db), known) == len(known):
        return []  # the usual case: a plain read, no write lock taken
    done_now: list[str] = []
    with transaction(db):
        db["migrations"].create({"id": int, "name": str, "applied_at": str}, pk="id",
                                if_not_exists=True)
    while True:
        with transaction(db):  # re-read inside: another process may have migrated meanwhile
            applied = applied_migrations(db)
            if _check_applied(applied, known) == len(known):
                return done_now
            migration = MIGRATIONS[len(applied)]
            migration(db)
            db["migrations"].insert({
                "id": len(applied) + 1, "name": migration.__name__,
                "applied_at": datetime.datetime.now(datetime.UTC).isoformat(),
            })
            done_now.append(migration.__name__)


def _check_applied(applied: list[str], known: list[str]) -> int:
    if applied != known[: len(applied)]:
        raise MemstoreError(
            f"this repository's index has schema version {len(applied)} "
            f"({', '.join(applied[len(known):]) or 'different migrations'}), which "
            f"this memstore (schema version {len(known)}) does not know; upgrade memstore"
        )
    return len(applied)


def schema_version(db: Database) -> int:
    return len(applied_migrations(db))


def _refuse_links(path: Path) -> None:
    """The index and SQLite's side files are no links (SQLite would write through them),
    and a side file present is a file (a folder there fails every write, and every open of
    a WAL index)."""
    for p in [path, *(path.with_name(path.name + s) for s in SIDE_FILES)]:
        if p.is_symlink():
            raise DamagedIndexError(f"{p} is a symbolic link; memstore never writes through "
                                    "one (remove it)")
        if p != path and p.exists() and not p.is_file():
            raise DamagedIndexError(f"{p} is {'a folder' if p.is_dir() else 'not a file'}, "
                                    "where SQLite keeps a file of the index (remove it)")


def _damaged(path: Path, why: str) -> DamagedIndexError:
    return DamagedIndexError(f"{path} is damaged ({why}); run `memstore fsck --repair` to "
                             "rebuild it from the object store")


_SHARED_FIRST, _SHARED_SIZE = 0x40000000 + 2, 510  # SQLite's SHARED lock bytes (os_unix.c)
_READ_ATTEMPTS = 5
_DESERIALIZE = hasattr(sqlite3.Connection, "deserialize")  # Python 3.11


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the index in a folder memstore cannot write (a read-only
    mount, a repository of another user), never SQLite's `immutable=1`: that tells SQLite
    nobody changes the file, so it takes no locks and keeps pages across statements, and a
    read while the owner commits would mix two states (https://www.sqlite.org/uri.html).

    `mode=ro` takes SQLite's shared locks, so the owner's checkpoints wait for the read. It
    opens the index where its -wal and -shm exist (the owner has it open: SQLite reads a -shm
    it cannot write through a private copy) or can be created. Where they neither exist nor
    can be created SQLite refuses a WAL database unless told it is immutable
    (https://www.sqlite.org/walformat.html); then every commit is in index.db, and the
    connection reads a private copy of it taken while nothing wrote it (`_copy`). A copy
    spoiled by the owner starting a write tries `mode=ro` again: the owner's connection has
    made the -wal and -shm by then."""
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    for attempt in range(_READ_ATTEMPTS):
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the log
            return conn
        except sqlite3.OperationalError as e:
            conn.close()
            if "readonly" not in str(e) and "unable to open" not in str(e):
                raise
            if _wal_size(path):  # commits in a log this user cannot index: not readable
                raise
        data = _copy(path)
        if data is not None:
            return _connect_copy(data)
        time.sleep(0.05 * (attempt + 1))
    raise DamagedIndexError(f"{path} changed each time it was read (its folder cannot be "
                            "written here, so it is read as a copy); try again")


def _wal_size(path: Path) -> int | None:
    """The size of the index's write-ahead log, None where there is none."""
    try:
        return path.with_name(path.name + "-wal").stat().st_size
    except FileNotFoundError:
        return None


def _copy(path: Path) -> bytes | None:
    """index.db's bytes, read while nothing wrote it, or None: a WAL database with no log
    is written only by a checkpoint of a log that a connection opening it creates, so its
    bytes are one committed state when index.db (inode, size, mtime) and its log (none, or
    empty) are the same before and after the read. SQLite's own SHARED lock is held for it
    (where the file system has locks), so a closing connection cannot checkpoint and delete
    its log unseen."""
    with open(path, "rb") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB, _SHARED_SIZE, _SHARED_FIRST)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):  # a writer holds it: try again
                return None                           # (any other: no locks here)

        def state() -> tuple:
            st = os.fstat(f.fileno())
            return st.st_ino, st.st_size, st.st_mtime_ns, path.stat().st_ino, _wal_size(path)

        before = state()
        if before[-1] or before[0] != before[3]:
            return None
        data = f.read()
        if state() != before or len(data) != before[1]:
            return None
    return data


def _connect_copy(data: bytes) -> sqlite3.Connection:
    """A connection that reads `data`, an index's bytes, and refuses writes. Its header is
    set to rollback mode (bytes 18-19): a copy has no write-ahead log to read."""
    data = bytearray(data)
    if data.startswith(b"SQLite format 3\0") and len(data) >= 100:
        data[18:20] = b"\x01\x01"
    if _DESERIALIZE:
        conn = sqlite3.connect(":memory:")
        conn.deserialize(bytes(data))  # type: ignore[attr-defined]
    else:  # Python 3.10: a private file, removed once open (nothing reopens it)
        fd, name = tempfile.mkstemp(prefix="memstore-index-", suffix=".db")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            conn = sqlite3.connect(f"file:{urllib.parse.quote(name)}?mode=ro", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            os.unlink(name)
    conn.execute("PRAGMA query_only = 1")
    return conn


def open_index(path: str | Path | None, *, create: bool = False) -> Database:
    """The index at `path` (None: in memory), in WAL mode with a busy timeout, migrated.

    Only `create` makes a new schema (on a file that must not exist yet): an existing file
    that is empty, not SQLite, fails SQLite's quick check or holds no memstore schema is
    refused with DamagedIndexError, never silently turned into an empty repository."""
    if path is None:
        db = Database(memory=True)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        migrate(db)
        return db
    path = Path(path)
    _refuse_links(path)
    if create and path.exists():
        raise MemstoreError(f"{path} already exists")
    if not create:
        if not path.is_file():
            raise _damaged(path, "a folder is where the file belongs" if path.is_dir()
                           else "the file is missing")
        if path.stat().st_size == 0:
            raise _damaged(path, "the file is empty")
    read_only = not create and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    conn = None
    try:
        if read_only:  # read commands still work; a write is refused (the lock, the index)
            conn = _connect_read_only(path)
        else:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
        db = Database(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not create:
            check = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
            if check != ["ok"]:
                raise _damaged(path, f"SQLite's check says: {check[0]}")
            if "migrations" not in db.table_names():
                raise _damaged(path, "it holds no memstore schema")
        if not read_only:
            db.enable_wal()
        migrate(db)
        db.read_only = read_only  # type: ignore[attr-defined]
    except sqlite3.Error as e:
        if conn is not None:
            conn.close()
        if "readonly" in str(e) or "read-only" in str(e) or \
                (read_only and "unable to open" in str(e)):
            raise DamagedIndexError(f"{path} cannot be written ({e}); check its permissions") \
                from None
        if str(e) in ("database or disk is full", "disk I/O error"):  # not the file's fault
            raise DamagedIndexError(f"{path} cannot be opened ({e}); check that its disk has "
                                    "free space and works") from None
        raise _damaged(path, str(e)) from None
    except MemstoreError:
        if conn is not None:
            conn.close()
        raise
    return db
