"""Writing a commit: the one protocol that makes a crash at any instant harmless.

First every object is written (each fsynced and renamed into place); then ONE SQLite
transaction inserts the rows and, as its last write, moves the ref by compare-and-swap
(which also records a ref snapshot). Until that transaction commits the new objects are
unreferenced orphans (gc removes them); after it, everything they need is on disk. The
caller holds the repository lock, so gc cannot delete objects a writer is about to name."""
from __future__ import annotations

import time as clock
from collections.abc import Sequence
from typing import Any

from ..editing.result import EditResult
from ..errors import ValidationError
from . import stats_records
from .commits import Commit, make_commit, put_update_set
from .index import commit_row, index_commit, introduced_size
from .refs import Refs
from .schema import transaction
from .storage import Storage


def check_inputs(store: Storage, base_hash: str, update_sets: Sequence[EditResult],
                 parents: list[str], basis: str | None) -> None:
    if len(set(parents)) != len(parents):
        raise ValidationError("a commit cannot have the same parent twice")
    for c in [*parents, *([basis] if basis is not None else [])]:
        row = commit_row(store, c)
        if row is None:
            raise ValidationError(f"unknown commit {c!r}")
        if row["base_hash"] != base_hash:
            raise ValidationError(f"commit {c[:12]} was made on another base model")
    for r in update_sets:
        for layer, sid in r.stats_ids.items():
            if stats_records.find(store, sid, layer) is None:
                raise ValidationError(f"statistics {sid} of layer {layer} are not in "
                                      "this repository (store them first)")


def write_commit(store: Storage, refs: Refs, base_hash: str, update_sets: Sequence[EditResult],
                 *, parents: list[str], basis: str | None, message: str,
                 metrics: dict[str, Any] | None, operation: str, info: dict[str, Any] | None,
                 time: float | None, ref: str | None, expected: str | None) -> Commit:
    """Records the commit and moves `ref` (None: none) from `expected` to it."""
    check_inputs(store, base_hash, update_sets, parents, basis)
    sets = [put_update_set(store.objects, r) for r in update_sets]
    commit, data = make_commit(
        parents=parents, base=base_hash, basis=basis, update_sets=sets, message=message,
        time=clock.time() if time is None else time, operation=operation,
        metrics=metrics, info=info)
    store.objects.put_bytes(data)
    size = introduced_size(store, commit)
    with transaction(store.db):
        if not store.has_commit(commit.id):
            index_commit(store, commit, [r.requests for r in update_sets], size)
        if ref is not None:
            refs.update(ref, commit.id, expected)
    store.remember(commit)
    return commit
