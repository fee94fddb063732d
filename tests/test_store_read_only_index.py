"""The index of a repository this user cannot write (another user's, a read-only mount) is
read without SQLite's `immutable=1`: immutable tells SQLite that nobody changes the file, so
it takes no locks and keeps its cached pages across statements, and a reader running while
the owner commits mixes pages of two states (https://www.sqlite.org/uri.html: "Setting the
immutable property on a database file that does in fact change can result in incorrect query
results and/or SQLITE_CORRUPT errors")."""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

import children
import pytest

from memstore.store import schema
from memstore.store.schema import open_index

ROWS = 3000  # about 3 MB of rows: more than SQLite's page cache (2 MB), so a scan reads pages


def _writable(folder: Path, writable: bool) -> None:
    """`folder` made writable or not, for root too (chattr -i/+i; skipped where it cannot)."""
    if os.geteuid() != 0:
        folder.chmod(0o755 if writable else 0o555)
        return
    if shutil.which("chattr") is None or children.run(
            ["chattr", "-i" if writable else "+i", str(folder)], check=False,
            capture_output=True).returncode:
        pytest.skip("cannot make a folder unwritable for root here (chattr +i)")


@contextlib.contextmanager
def _unwritable(folder: Path):
    _writable(folder, False)
    try:
        yield
    finally:
        _writable(folder, True)


def _index(tmp_path: Path) -> Path:
    """A quiescent index (no -wal, no -shm, as memstore leaves it) with a probe table."""
    path = tmp_path / "repo" / "index.db"
    path.parent.mkdir()
    db = open_index(path, create=True)
    db.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    db.conn.executemany("INSERT INTO probe VALUES (?, ?)",
                        ((i, "old" + "x" * 1000) for i in range(1, ROWS + 1)))
    db.conn.commit()
    db.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.db"]
    return path


def _owner_commits(path: Path) -> None:
    """The owner (who can write the folder) changes every row in one transaction and closes,
    which checkpoints the write-ahead log into index.db."""
    owner = sqlite3.connect(path)
    owner.execute("UPDATE probe SET v = 'new' || substr(v, 4)")
    owner.commit()
    owner.close()


@pytest.mark.parametrize("deserialize", [True, False], ids=["in-memory", "private-file"])
def test_a_reader_sees_one_committed_state_while_the_owner_commits(tmp_path, monkeypatch,
                                                                   deserialize):
    """Opened while the folder cannot be written, a reader that has read a row and then
    scans the table after the owner committed sees one state: all old or all new rows,
    never old rows from its cache mixed with new ones read from the file (with and without
    Python 3.11's `deserialize`)."""
    if deserialize and not hasattr(sqlite3.Connection, "deserialize"):
        pytest.skip("Python 3.10: no Connection.deserialize")
    monkeypatch.setattr(schema, "_DESERIALIZE", deserialize, raising=False)
    path = _index(tmp_path)
    with _unwritable(path.parent):
        reader = open_index(path)
    try:
        assert reader.read_only
        assert reader.execute("SELECT v FROM probe WHERE id = 1").fetchone()[0][:3] == "old"
        _owner_commits(path)
        states = {v for (v,) in reader.execute("SELECT substr(v, 1, 3) FROM probe")}
        assert len(states) == 1, f"rows of two states in one read: {sorted(states)}"
        assert reader.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        reader.close()


def test_a_read_only_index_is_never_opened_immutable(tmp_path, monkeypatch):
    """No connection to a read-only index asks SQLite to skip its locks."""
    path = _index(tmp_path)
    uris = []
    real = schema.sqlite3.connect

    def connect(database, *a, **kw):
        uris.append(str(database))
        return real(database, *a, **kw)

    monkeypatch.setattr(schema.sqlite3, "connect", connect)
    with _unwritable(path.parent):
        reader = open_index(path)
    try:
        assert reader.read_only and uris
        assert not [u for u in uris if "immutable" in u], uris
        assert reader.execute("SELECT count(*) FROM probe").fetchone()[0] == ROWS
    finally:
        reader.close()


def test_a_log_removed_as_the_reader_opens_it_is_read_from_index_db(tmp_path, monkeypatch):
    """The owner has the index open with a commit in its log when a reader looks, and
    closes it (checkpointing the log into index.db, removing -wal and -shm) before SQLite
    opens them: the reader reads the commit from index.db instead of failing as unable to
    write (SQLite cannot make the -shm it went to read)."""
    path = _index(tmp_path)
    owner = sqlite3.connect(path)
    owner.execute("UPDATE probe SET v = 'new' || substr(v, 4) WHERE id = 1")
    owner.commit()
    assert path.with_name("index.db-wal").stat().st_size > 0
    real = schema.sqlite3.connect

    def connect(*a, **kw):
        if owner is not None and not closed:
            _writable(path.parent, True)
            owner.close()
            closed.append(True)
            _writable(path.parent, False)
        return real(*a, **kw)

    closed: list = []
    monkeypatch.setattr(schema.sqlite3, "connect", connect)
    with _unwritable(path.parent):
        reader = open_index(path)
    try:
        assert closed and not path.with_name("index.db-wal").exists()
        assert reader.read_only
        assert reader.execute("SELECT substr(v, 1, 3) FROM probe WHERE id = 1").fetchone() \
            == ("new",)
    finally:
        reader.close()
