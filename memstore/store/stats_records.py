"""Statistics records: E[k kᵀ] of one layer for one text sample, stored in the repository.

The matrix is a safetensors object holding its upper triangle in float32 (a quarter of
the bytes of the float64 matrix; the sums behind it are accumulated in float64); its
description (sample id, layer, token count, what
the sample was) is a small JSON record object too, so that `fsck --repair` can rebuild the
`statistics` rows of a lost index from the object store alone. Both are content-addressed,
so reading them back checks their hash. The tensor object also holds its layer (objects
written from 5 Dec 2026), so that a record naming another layer's matrix of the same size
is told."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MemstoreError
from .objects import OBJECT_ID
from .schema import DamagedIndexError, transaction
from .storage import Storage

if TYPE_CHECKING:  # torch and the editing code: where a matrix is read or written only
    import torch

    from ..editing.statistics import Statistics

TYPE = "memstore-statistics"
KIND, RECORD_KIND = "statistics", "statistics-record"


@dataclass(frozen=True)
class StatisticsRecord:
    id: str
    layer: int
    n_tokens: int
    description: str
    object: str
    created: float
    record: str | None = None  # the JSON record object (None in repositories made before it)


def row_record(r: dict[str, Any]) -> StatisticsRecord:
    for what in ("object", "record"):
        v = r.get(what)
        if not (v is None and what == "record") and not (isinstance(v, str)
                                                         and OBJECT_ID.fullmatch(v)):
            raise DamagedIndexError(f"the statistics row {r.get('id')!s:.16} layer "
                                    f"{r.get('layer')} names no object ({what} {v!r:.70}); "
                                    "run `memstore fsck --repair`")
    for what, kind in (("id", str), ("layer", int), ("n_tokens", int), ("description", str),
                       ("created", (int, float, type(None)))):
        v = r.get(what)
        if isinstance(v, bool) or not isinstance(v, kind):
            raise DamagedIndexError(f"the statistics row {r.get('id')!s:.16} layer "
                                    f"{r.get('layer')!s:.16} is damaged ({what} {v!r:.40}); "
                                    "run `memstore fsck --repair`")
    return StatisticsRecord(r["id"], r["layer"], r["n_tokens"], r["description"], r["object"],
                            r["created"], r.get("record"))


def find(store: Storage, stats_id: str, layer: int) -> StatisticsRecord | None:
    rows = list(store.db.query("select * from statistics where id = ? and layer = ?",
                               [stats_id, layer]))
    return row_record(rows[0]) if rows else None


def all_records(store: Storage) -> list[StatisticsRecord]:
    return [row_record(r) for r in store.db.query("select * from statistics order by id, layer")]


def put(store: Storage, stats: Statistics) -> StatisticsRecord:
    """Stores E[k kᵀ] of one layer (the first kept if the same id and layer exist). The
    caller holds the repository lock."""
    import torch

    from ..editing.statistics import pack_symmetric

    existing = find(store, stats.id, stats.layer)
    if existing is not None:
        return existing
    oid = store.objects.put_tensors({"mom2_triu": pack_symmetric(stats.mom2),
                                     "layer": torch.tensor([stats.layer], dtype=torch.int64)})
    created = time.time()
    record = {"type": TYPE, "id": stats.id, "layer": stats.layer, "n_tokens": stats.n_tokens,
              "description": stats.description, "object": oid, "created": created,
              "dim": int(stats.mom2.shape[0])}
    rid = store.objects.put_json(record)
    with transaction(store.db):
        store.db["statistics"].insert({k: v for k, v in record.items()
                                       if k not in ("type", "dim")} | {"record": rid},
                                      ignore=True)
        for o, kind in ((oid, KIND), (rid, RECORD_KIND)):
            store.db["objects"].insert({"id": o, "size": store.objects.size(o), "kind": kind},
                                       ignore=True)
    return find(store, stats.id, stats.layer)  # type: ignore[return-value]


def load(store: Storage, stats_id: str, layer: int) -> Statistics:
    from ..editing.statistics import Statistics

    rec = find(store, stats_id, layer)
    if rec is None:
        raise MemstoreError(f"no statistics {stats_id} for layer {layer} in this repository")
    if rec.record is not None and \
            not agrees(rec, parse_record(store.objects.get_bytes(rec.record))):
        raise DamagedIndexError(f"the statistics row {stats_id} layer {layer} disagrees with "
                                "its record; run `memstore fsck --repair`")
    tensors = store.objects.get_tensors(rec.object)
    mom2 = matrix_of(tensors)
    if mom2 is None:
        raise MemstoreError(f"statistics object {rec.object} holds no square matrix; "
                            "run `memstore fsck`")
    if layer_of(tensors) not in (None, layer):
        raise MemstoreError(f"statistics {stats_id} layer {layer}: its object {rec.object} "
                            f"holds layer {layer_of(tensors)}'s matrix; run `memstore fsck "
                            "--repair`")
    return Statistics(layer, mom2, rec.n_tokens, rec.description)


def agrees(rec: StatisticsRecord, record: dict[str, Any] | None) -> bool:
    """Whether an index row says what its record object says (a row naming another layer's
    tensor, or another sample's description, would be used unchecked)."""
    return record is not None and all(record[k] == getattr(rec, k) for k in
                                      ("id", "layer", "n_tokens", "description", "object"))


def matrix_of(tensors: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """E[k kᵀ] (float64) from a statistics object: its packed upper triangle, or the whole
    float64 matrix as stored before issue 11; None for anything else."""
    from ..editing.statistics import unpack_symmetric

    mom2 = tensors.get("mom2")
    if mom2 is None and "mom2_triu" in tensors:
        packed = tensors["mom2_triu"]
        d = round(((8 * packed.numel() + 1) ** 0.5 - 1) / 2)
        try:
            mom2 = unpack_symmetric(packed, d)
        except ValueError:
            return None
    if mom2 is None or mom2.ndim != 2 or mom2.shape[0] != mom2.shape[1]:
        return None
    return mom2.double()


def layer_of(tensors: dict[str, torch.Tensor]) -> int | None:
    """The layer a statistics object says it holds (None for an object written before it
    said, or one whose `layer` is not one whole number)."""
    import torch

    t = tensors.get("layer")
    if t is None or t.numel() != 1 or t.dtype != torch.int64:
        return None
    return int(t.item())


def parse_record(data: bytes) -> dict[str, Any] | None:
    """The statistics record held in `data`, or None when it is none."""
    try:
        d = json.loads(data)
    except (ValueError, RecursionError):
        return None
    keys = {"id": str, "layer": int, "n_tokens": int, "description": str, "object": str}
    if not (isinstance(d, dict) and d.get("type") == TYPE
            and all(isinstance(d.get(k), t) for k, t in keys.items())):
        return None
    return d
