"""memstore.store.reflog on an in-memory index: what the CLI tests cannot count."""
from __future__ import annotations

from sqlite_utils import Database

from memstore.store import reflog
from memstore.store.schema import m004_reflog


def test_delete_runs_a_statement_per_500_entries_not_one_per_entry():
    """`reflog expire --all` of 2,000 entries ran 12,000 statements (a delete per entry,
    each with its table lookups); now 4, and every named entry goes, no other."""
    db = Database(memory=True)
    m004_reflog(db)
    commit = "a" * 64
    for i in range(2001):
        reflog.append(db, "refs/heads/main" if i % 2 else "HEAD", commit, commit,
                      f"reset: moving to {i}", None, 1.0 + i)
    ids = [r["id"] for r in db.query("select id from reflog order by id")]
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    reflog.delete(db, ids[:2000])
    db.conn.set_trace_callback(None)
    deletes = [s for s in statements if s.lower().startswith("delete")]
    assert len(deletes) == 4 and len(statements) < 20, statements[:20]
    assert [r["id"] for r in db.query("select id from reflog")] == ids[2000:]
