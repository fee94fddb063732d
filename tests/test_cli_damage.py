"""A damaged `.memstore/` found by a sweep that damaged each of its files in turn (and the
exports' files) and ran every command on it: each case here is one that got past a check."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from cli_support import run


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
