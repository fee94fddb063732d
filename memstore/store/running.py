"""The running matrix: per edited layer, Σ k kᵀ (float64, d_in × d_in) over the keys of the
facts live in a state — the earlier edits a history-aware solve preserves (README,
"Sequential commits").

Along a state's chain of update sets, root first, each set s changes it by

    M  ←  M − Σ k kᵀ over the key rows of the live facts s supersedes  +  K_s K_sᵀ

A fact is superseded when a later request has its subject and prompt (`--supersede`, or a
replay that writes it again): it is no longer what the model should say, so its keys leave
the sum — kept at full weight they would hold the old value in place and roughly halve the
new write. The solve of a set uses M after the subtraction and adds its own K Kᵀ.

It is derived data. So that a commit's cost does not grow with its history, the matrix of
a state is stored as an object (safetensors, one float64 tensor per layer) indexed in the
`running_matrices` table; the next commit advances its parent's matrix by its own sets. A
missing entry or object is rebuilt from the nearest stored state up the basis chain (or
the root) by the same steps in the same order, so the result is bit-identical either way.
Each matrix is as large as E[k kᵀ], so only the `KEEP` most recently used stay."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..editing.requests import Request, fact_key
from ..editing.result import EditResult
from .commits import load_layer, load_requests
from .history import chain_sets
from .objects import MissingObjectError
from .schema import transaction
from .storage import Storage

KEEP = 4  # running matrices kept in the store; older ones are rebuilt when needed
KIND = "running-matrix"
Matrix = dict[int, torch.Tensor]


@dataclass
class _Keys:
    """The keys of one update set: stored (read on first use) or in memory."""

    store: Storage | None = None
    where: tuple[str, int] | None = None  # (commit, set index)
    loaded: dict[int, torch.Tensor] = field(default_factory=dict)

    def layer(self, layer: int) -> torch.Tensor | None:
        if layer not in self.loaded and self.where is not None and self.store is not None:
            s = self.store.commit(self.where[0]).update_sets[self.where[1]]
            if layer in s.layers:
                self.loaded[layer] = load_layer(self.store.objects, layer, s.layers[layer]).keys
        return self.loaded.get(layer)


# fact key -> the key rows that wrote it: (keys of their set, row positions)
Live = dict[tuple[str, str], tuple[_Keys, list[int]]]


def _write(matrix: Matrix, live: Live, requests: Sequence[Request], keys: _Keys,
           layers: Sequence[int], add: bool) -> Matrix:
    """`matrix` after a set writing `requests`: superseded rows subtracted, then (with
    `add`) the set's own K Kᵀ added; `live` is updated. A new dict; inputs are not modified."""
    out = dict(matrix)
    rows: dict[tuple[str, str], list[int]] = {}
    for p, r in enumerate(requests):
        rows.setdefault(fact_key(r), []).append(p)
    gone = [live[k] for k in rows if k in live]
    for layer in sorted(out):
        for src, positions in gone:
            k = src.layer(layer)
            if k is not None:
                k = k[positions].double()
                out[layer] = out[layer] - k.T @ k
    if add:
        for layer in sorted(layers):
            k = keys.layer(layer)
            if k is not None:
                kk = k.double().T @ k.double()
                out[layer] = kk if layer not in out else out[layer] + kk
    for key, positions in rows.items():
        live[key] = (keys, positions)
    return out


def _live_at(store: Storage, commit_id: str | None) -> Live:
    """Which set's rows wrote each fact live in `commit_id`'s state (reads request lists)."""
    live: Live = {}
    if commit_id is None:
        return live
    for ref in chain_sets(store, commit_id):
        src = _Keys(store, (ref.commit, ref.index))
        for p, r in enumerate(load_requests(store.objects, ref.update_set)):
            key = fact_key(r)
            if key in live and live[key][0] is src:
                live[key][1].append(p)
            else:
                live[key] = (src, [p])
    return live


def running_matrix(store: Storage, commit_id: str | None) -> Matrix:
    """The running matrix of `commit_id`'s state ({} for the empty state), from the store
    or rebuilt (and then stored)."""
    if commit_id is None:
        return {}
    found = _load(store, commit_id)
    if found is not None:
        return found
    chain: list[str] = []  # commits whose sets must be applied, newest first
    cur: str | None = commit_id
    matrix: Matrix = {}
    while cur is not None:
        cached = _load(store, cur) if cur != commit_id else None
        if cached is not None:
            matrix = cached
            break
        chain.append(cur)
        cur = store.commit(cur).basis
    live = _live_at(store, cur)
    for cid in reversed(chain):
        for i, s in enumerate(store.commit(cid).update_sets):
            matrix = _write(matrix, live, load_requests(store.objects, s), _Keys(store, (cid, i)),
                            sorted(s.layers), add=True)
    _store(store, commit_id, matrix)
    return matrix


def running_matrix_for(store: Storage, basis: str | None, done: Sequence[EditResult],
                 requests: Sequence[Request]) -> Matrix:
    """The running matrix a solve of `requests` uses: `basis`'s, advanced by the sets
    `done` already in this operation (replays), minus the rows `requests` supersede."""
    matrix = running_matrix(store, basis)
    live = _live_at(store, basis)
    for r in done:
        keys = _Keys(loaded={l: u.keys for l, u in r.updates.items()})
        matrix = _write(matrix, live, r.requests, keys, sorted(r.updates), add=True)
    return _write(matrix, live, requests, _Keys(), [], add=False)


def cached_commits(store: Storage) -> list[str]:
    return [r["commit_id"] for r in store.db.query("select commit_id from running_matrices")]


def objects(store: Storage) -> set[str]:
    """The objects of the stored running matrices (gc keeps them while their commit lives)."""
    return {r["object"] for r in store.db.query("select object from running_matrices")}


def forget(store: Storage, commit_ids: list[str]) -> list[str]:
    """Drops the index rows of these commits' matrices; returns their objects (for the
    caller to delete once the rows are gone)."""
    out = []
    for cid in commit_ids:
        for r in store.db.query("select object from running_matrices where commit_id = ?", [cid]):
            out.append(r["object"])
        store.db["running_matrices"].delete_where("commit_id = ?", [cid])
    return out


def _load(store: Storage, commit_id: str) -> Matrix | None:
    rows = list(store.db.query("select object from running_matrices where commit_id = ?",
                               [commit_id]))
    if not rows:
        return None
    try:
        tensors = store.objects.get_tensors(rows[0]["object"])
    except MissingObjectError:
        return None  # derived data: rebuilt by the caller
    with transaction(store.db):
        store.db["running_matrices"].update(commit_id, {"used": time.time()})
    return {int(name.split(".")[1]): t for name, t in tensors.items()}


def _store(store: Storage, commit_id: str, matrix: Matrix) -> None:
    """Writes the matrix object, indexes it, and evicts the least recently used beyond
    KEEP (rows first, then objects no row or commit still names)."""
    if not matrix:
        return
    oid = store.objects.put_tensors({f"layer.{l}": m.contiguous() for l, m in sorted(matrix.items())})
    with transaction(store.db):
        store.db["objects"].insert({"id": oid, "size": store.objects.size(oid), "kind": KIND},
                                   ignore=True)
        store.db["running_matrices"].upsert({"commit_id": commit_id, "object": oid,
                                             "used": time.time()}, pk="commit_id")
        rows = list(store.db.query("select commit_id from running_matrices order by used desc"))
        dropped = forget(store, [r["commit_id"] for r in rows[KEEP:]])
        dead = [o for o in set(dropped) - objects(store)]
        for o in dead:
            store.db["objects"].delete_where("id = ?", [o])
    for o in dead:
        store.objects.delete(o)
