"""A damaged `.memstore/` found by a sweep that damaged each of its files in turn (and the
exports' files) and ran every command on it: each case here is one that got past a check."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from cli_support import run

from memstore.store.repository import Repository


def _flip_in_the_objects_index(repo: Path) -> str:
    """One byte of an object id changed in the b-tree of the objects table's primary-key
    index (not in the table): SQLite's quick check, run at every open, passes."""
    path = repo / ".memstore" / "index.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("select rootpage from sqlite_master where name = "
                       "'sqlite_autoindex_objects_1'").fetchone()[0]
    oid = con.execute("select id from objects order by id limit 1").fetchone()[0]
    con.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    at = data.index(oid.encode(), start, start + page_size)
    data[at + 10] = ord("u")
    path.write_bytes(bytes(data))
    return oid[:10] + "u" + oid[11:]


def test_fsck_reports_an_index_btree_that_disagrees_with_its_table(history):
    """gc refused ('the objects table holds a row naming no object …; run `memstore fsck
    --repair`') while fsck said ok: its queries read the table, gc's read the index."""
    repo, _ = history
    bad = _flip_in_the_objects_index(repo)
    gc = run("gc", "--dry-run", cwd=repo)
    assert gc.exit_code == 1 and bad in gc.stderr, gc.output
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "index.db is damaged (SQLite's integrity check says:" in r.stdout, r.stdout
    assert "fsck --repair" in r.stdout
    assert run("fsck", "--quick", cwd=repo).exit_code == 1
    assert run("fsck", "--repair", cwd=repo).exit_code == 0
    assert run("gc", "--dry-run", cwd=repo).exit_code == 0


def _object(repo: Path, data: bytes) -> str:
    """`data` stored as an object under its sha256, with its index row."""
    oid = hashlib.sha256(data).hexdigest()
    fan = repo / ".memstore" / "objects" / oid[:2]
    fan.mkdir(exist_ok=True)
    (fan / oid[2:]).write_bytes(data)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("insert or ignore into objects (id, size, kind) values (?, ?, 'commit')",
                    (oid, len(data)))
    con.close()
    return oid


def forge_head(repo: Path, change: Callable[[dict], None]) -> str:
    """A well-hashed commit record made from HEAD's by `change` (an object of the right
    name, damaged before it was hashed: another machine's push, a hand edit), indexed with
    HEAD's rows and named by the branch in HEAD's place (as a snapshot records it)."""
    with Repository.open(repo) as r:
        head = r.head().commit
        record = json.loads(r.store.objects.get_bytes(head))
    change(record)
    oid = _object(repo, json.dumps(record).encode())
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        for table, key in (("commits", "id"), ("requests", "commit_id")):
            cols = [c[1] for c in con.execute(f"pragma table_info({table})")]
            rows = con.execute(f"select * from {table} where {key} = ?", (head,)).fetchall()
            for row in rows:
                values = {**dict(zip(cols, row)), key: oid}
                if table == "commits":
                    values["time"] = record["time"]
                con.execute(f"insert into {table} ({', '.join(cols)}) values "
                            f"({', '.join('?' * len(cols))})", [values[c] for c in cols])
    con.close()
    with Repository.open(repo) as r:
        r.refs.update("refs/heads/main", oid, expected=head)
    return oid


def test_a_commit_time_no_calendar_holds_is_shown_not_a_traceback(history):
    """A record's time is any finite number; one past what a date can hold (1e300, or
    -1e300) was an OverflowError traceback from log and show."""
    repo, _ = history
    for t in (1e300, -1e300):
        forge_head(repo, lambda rec, t=t: rec.update(time=t))
        for args in (["log"], ["show", "HEAD"]):
            r = run(*args, cwd=repo)
            assert r.exit_code == 0 and "Traceback" not in r.output, (args, r.output)
            assert "Date:" in r.stdout and repr(t) in r.stdout, r.stdout
