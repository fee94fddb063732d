"""The repository's configuration rows: the base record and the editor settings.

They live in the index's `config` table and, like the refs, are copied into every ref
snapshot (`snapshots`), so that a lost index can be rebuilt from the object store."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..editing.settings import EditSettings
from ..errors import MemstoreError

BASE, SETTINGS = "base", "settings"


@dataclass(frozen=True)
class BaseRecord:
    """The base model every state is built on."""

    spec: str  # what the user gave (a path or a model name)
    hash: str  # content hash of the weights (memstore.models.hashing.model_hash)
    path: str | None  # where the weights were found
    snapshot: dict[str, int] | None  # size and mtime of `path`, for a cheap re-check
    info: dict[str, Any]


def path_snapshot(path: str | Path) -> dict[str, int]:
    """Total size, newest mtime and file count of a file or a directory tree."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    stats = [f.stat() for f in files]
    return {"size": sum(s.st_size for s in stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0), "files": len(stats)}


def get(db: Database, key: str, default: Any = None) -> Any:
    rows = list(db.query("select value from config where key = ?", [key]))
    if not rows:
        return default
    try:
        return json.loads(rows[0]["value"])
    except (TypeError, ValueError) as e:
        raise MemstoreError(f"the repository's config row {key!r} is unreadable ({e}); "
                            "run `memstore fsck`") from None
    except RecursionError:  # JSON nested past Python's stack: a traceback in every command
        raise MemstoreError(f"the repository's config row {key!r} is unreadable (JSON nested "
                            "too deeply); run `memstore fsck`") from None


def put(db: Database, key: str, value: Any) -> None:
    """Writes one row; call inside a transaction (and record a snapshot after it)."""
    db["config"].insert({"key": key, "value": json.dumps(value, sort_keys=True)}, replace=True)


def rows(db: Database) -> dict[str, Any]:
    """Every config row, parsed (for snapshots); a row whose key is not a string (it could
    not be recorded in a snapshot, nor read by its name) is refused."""
    out = {}
    for r in db.query("select key from config"):
        if not isinstance(r["key"], str):
            raise MemstoreError(f"the repository's config table holds a row whose key is "
                                f"{str(r['key'])[:40]!r}, not a name; run `memstore fsck`")
        out[r["key"]] = get(db, r["key"])
    return out


def base_json(spec: str, base_hash: str, path: str | Path | None,
              info: dict[str, Any] | None) -> dict[str, Any]:
    return {"spec": spec, "hash": base_hash, "info": info or {},
            "path": str(Path(path).resolve()) if path is not None else None,
            "snapshot": path_snapshot(path) if path is not None else None}


def read_base(db: Database) -> BaseRecord:
    raw = get(db, BASE)
    if raw is None:
        raise MemstoreError("the repository has no base record; run `memstore fsck`")
    try:
        rec = BaseRecord(raw["spec"], raw["hash"], raw.get("path"), raw.get("snapshot"),
                         raw.get("info", {}))
    except (KeyError, TypeError, AttributeError):
        rec = None
    if rec is None or not isinstance(rec.hash, str) or not isinstance(rec.info, dict) \
            or not isinstance(rec.spec, str) or not isinstance(rec.path, (str, type(None))):
        raise MemstoreError("the repository's base record is malformed; run `memstore fsck`")
    return rec


def settings_json(settings: EditSettings) -> dict[str, Any]:
    """The settings as the config stores them: token_rule left out where it is today's,
    as it is read where missing (read_settings), so that memstore before the rule was
    recorded (c24c1f6) reads the config too."""
    d = settings.to_dict()
    if d.get("token_rule") == EditSettings.token_rule:
        del d["token_rule"]
    return d


def read_settings(db: Database) -> EditSettings | None:
    """The editor settings future commits use (validated: a bad row is an error naming it)."""
    raw = get(db, SETTINGS)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MemstoreError("the repository's editor settings are malformed; run `memstore fsck`")
    # future commits read prompts by today's rule, whatever the row says: stored before
    # token_rule, or rule 1 stored by `config token_rule 1` before it was refused (a fix,
    # not a choice; the commits recorded by rule 1 replay by theirs)
    raw = {**raw, "token_rule": EditSettings.token_rule}
    try:
        return EditSettings.from_dict(raw)
    except MemstoreError as e:
        raise MemstoreError(f"the repository's editor settings are invalid ({e}); run "
                            "`memstore fsck --repair`") from None
