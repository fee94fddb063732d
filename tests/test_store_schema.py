import pytest
from sqlite_utils import Database

from memstore.errors import MemstoreError
from memstore.store import schema
from memstore.store.schema import MIGRATIONS, migrate, open_index, schema_version, transaction


def test_migrations_are_recorded_in_order(tmp_path):
    db = open_index(tmp_path / "index.db", create=True)
    rows = list(db.query("select id, name, applied_at from migrations order by id"))
    assert [r["name"] for r in rows] == [m.__name__ for m in MIGRATIONS]
    assert [r["id"] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    assert schema_version(db) == len(MIGRATIONS)
    assert {"commits", "requests", "refs", "objects", "statistics", "config"} <= set(
        db.table_names())
    indexed = {tuple(i.columns) for i in db["requests"].indexes}
    assert ("subject",) in indexed and ("prompt",) in indexed


def test_reopening_applies_nothing_and_keeps_data(tmp_path):
    db = open_index(tmp_path / "index.db", create=True)
    db["config"].insert({"key": "k", "value": "1"})
    db.close()
    statements = []
    db = Database(str(tmp_path / "index.db"), tracer=lambda sql, params: statements.append(sql))
    assert migrate(db) == []
    assert not [s for s in statements if s.upper().startswith(("BEGIN", "CREATE", "INSERT"))]
    assert db["migrations"].count == len(MIGRATIONS)
    assert db["config"].get("k")["value"] == "1"


def test_wal_mode_and_busy_timeout(tmp_path):
    db = open_index(tmp_path / "index.db", create=True)
    assert db.journal_mode == "wal"
    assert next(db.query("pragma busy_timeout"))["timeout"] == schema.BUSY_TIMEOUT_MS


def test_a_new_migration_is_applied_once(tmp_path, monkeypatch):
    db = open_index(tmp_path / "index.db", create=True)

    def m002_add_column(db: Database) -> None:
        db["commits"].add_column("author", str)
    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, m002_add_column])
    assert migrate(db) == ["m002_add_column"]
    assert migrate(db) == []
    assert "author" in db["commits"].columns_dict


def test_an_index_from_a_newer_memstore_is_refused(tmp_path):
    db = open_index(tmp_path / "index.db", create=True)
    db["migrations"].insert({"id": 99, "name": "m099_future", "applied_at": "x"})
    db.close()
    with pytest.raises(MemstoreError, match="m099_future.*upgrade memstore"):
        open_index(tmp_path / "index.db")


def test_transaction_rolls_back_everything_on_error():
    db = open_index(None)
    with pytest.raises(RuntimeError), transaction(db):
        db["config"].insert({"key": "a", "value": "1"})
        with transaction(db):  # nested: a savepoint
            db["config"].insert({"key": "b", "value": "2"})
        raise RuntimeError("boom")
    assert db["config"].count == 0
    assert not db.conn.in_transaction


def test_a_committed_transaction_is_in_index_db_before_the_index_is_closed(tmp_path):
    """What a write transaction committed is copied from index.db-wal into index.db at once
    (a process killed before it closes the index, whose -wal file is then lost, keeps it),
    unless a reader still needs the older pages: then the next write after it ends does."""
    import shutil
    import sqlite3

    path = tmp_path / "index.db"
    db = open_index(path, create=True)
    reader = sqlite3.connect(str(path))

    def rows_without_the_wal() -> set[str]:
        copy = tmp_path / "copy.db"  # index.db alone, as after a crash that lost the -wal
        shutil.copyfile(path, copy)
        c = sqlite3.connect(str(copy))
        keys = {r[0] for r in c.execute("select key from config")}
        c.close()
        copy.unlink()
        return keys

    with transaction(db):
        db["config"].insert({"key": "first", "value": "1"})
    assert rows_without_the_wal() == {"first"}
    reader.execute("BEGIN")
    assert reader.execute("select count(*) from config").fetchone() == (1,)  # holds a snapshot
    with transaction(db):
        db["config"].insert({"key": "second", "value": "2"})
    assert rows_without_the_wal() == {"first"}  # the reader needs the older pages
    reader.rollback()
    with transaction(db):
        db["config"].insert({"key": "third", "value": "3"})
    assert rows_without_the_wal() == {"first", "second", "third"}
    reader.close()
    db.close()
