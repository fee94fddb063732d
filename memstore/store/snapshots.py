"""Snapshots of the refs and config as objects: what makes a lost index recoverable.

The index (`index.db`) is the only place refs and config rows are read from, but every
change to them also writes a snapshot object, canonical JSON holding every ref, every
config row and a sequence number, inside the same transaction (as its last write). If the
index is lost or damaged, `memstore fsck --repair` rebuilds it from the object store: the
commits, request rows and statistics records are derived from their objects, and the refs
and config come from the newest snapshot. A snapshot is written before its transaction
commits, so after a crash the newest one is the state that landed or the one about to.

gc keeps the `KEEP` newest snapshots; a restore takes the newest whose refs all name commits
still in the store."""
from __future__ import annotations

import json
import time
from typing import Any

from sqlite_utils import Database

from . import config
from .objects import ObjectStore

TYPE = "memstore-snapshot"
KIND = "snapshot"
FORMAT = 1
KEEP = 20


def record(db: Database, objects: ObjectStore) -> str:
    """Writes the snapshot of the current refs and config (inside the caller's
    transaction) and indexes it; returns its object id."""
    refs = [{"name": r["name"], "target": r["target"], "symbolic": r["symbolic"]}
            for r in db.query("select * from refs order by name")]
    seq = next(iter(db.query("select coalesce(max(seq), 0) + 1 as n from snapshots")))["n"]
    snap = {"type": TYPE, "format": FORMAT, "seq": seq, "time": time.time(), "refs": refs,
            "config": config.rows(db)}
    oid = objects.put_json(snap)
    db["snapshots"].insert({"seq": seq, "object": oid, "time": snap["time"]}, replace=True)
    db["objects"].insert({"id": oid, "size": objects.size(oid), "kind": KIND}, ignore=True)
    return oid


def parse(data: bytes) -> dict[str, Any] | None:
    """The snapshot held in `data`, or None when it is no snapshot."""
    try:
        d = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(d, dict) and d.get("type") == TYPE and d.get("format") == FORMAT
            and isinstance(d.get("seq"), int) and isinstance(d.get("refs"), list)
            and isinstance(d.get("config"), dict)):
        return None
    return d


def kept(db: Database) -> list[str]:
    """The objects of the KEEP newest snapshots."""
    return [r["object"] for r in
            db.query("select object from snapshots order by seq desc limit ?", [KEEP])]


def pruned(db: Database) -> list[tuple[int, str]]:
    """(seq, object) of the snapshots beyond the KEEP newest."""
    return [(r["seq"], r["object"]) for r in
            db.query("select seq, object from snapshots order by seq desc limit -1 offset ?",
                     [KEEP])]
