"""The running matrix: per edited layer, Σ K Kᵀ (float64, d_in × d_in) over every update
set in a state's chain — the earlier edits a history-aware solve preserves (issue 5).

It is derived data: exactly the sum recomputed from the commits' keys, in chain order.
So that a commit's cost does not grow with the length of its history, the matrix of a state
is stored as an object (safetensors, one float64 tensor per layer) and indexed in the
`running_matrices` table; the next commit adds its own keys to its parent's matrix instead
of re-reading the whole chain. A missing entry or object is rebuilt: from the nearest
state up the basis chain that has one (or from the root), adding the later sets one by one
in the same order as the full sum, so the result is bit-identical either way.

Each matrix is as large as the layer's E[k kᵀ] (SmolLM2: 6 × 18.9 MB), so only the
`KEEP` most recently used ones stay; gc drops those of unreachable commits."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from ..editing.memit import add_keys
from .commits import load_layer
from .objects import MissingObjectError
from .schema import transaction

if TYPE_CHECKING:
    from .repository import Repository

KEEP = 4  # running matrices kept in the store; older ones are rebuilt when needed
KIND = "running-matrix"


def running_matrix(repo: Repository, commit_id: str | None) -> dict[int, torch.Tensor]:
    """The running matrix of `commit_id`'s state ({} for the empty state), from the store
    or rebuilt (and then stored)."""
    if commit_id is None:
        return {}
    found = _load(repo, commit_id)
    if found is not None:
        return found
    chain: list[str] = []  # commits whose sets must be added, newest first
    cur: str | None = commit_id
    matrix: dict[int, torch.Tensor] = {}
    while cur is not None:
        cached = _load(repo, cur) if cur != commit_id else None
        if cached is not None:
            matrix = cached
            break
        chain.append(cur)
        cur = repo.get_commit(cur).basis
    for cid in reversed(chain):
        for s in repo.get_commit(cid).update_sets:
            keys = {l: load_layer(repo.objects, l, rec).keys for l, rec in sorted(s.layers.items())}
            matrix = add_keys(matrix, keys)
    _store(repo, commit_id, matrix)
    return matrix


def cached_commits(repo: Repository) -> list[str]:
    return [r["commit_id"] for r in repo.db.query("select commit_id from running_matrices")]


def objects(repo: Repository) -> set[str]:
    """The objects of the stored running matrices (gc keeps them while their commit lives)."""
    return {r["object"] for r in repo.db.query("select object from running_matrices")}


def forget(repo: Repository, commit_ids: list[str]) -> list[str]:
    """Drops the index rows of these commits' matrices; returns their objects (for the
    caller to delete once the rows are gone)."""
    out = []
    for cid in commit_ids:
        for r in repo.db.query("select object from running_matrices where commit_id = ?", [cid]):
            out.append(r["object"])
        repo.db["running_matrices"].delete_where("commit_id = ?", [cid])
    return out


def _load(repo: Repository, commit_id: str) -> dict[int, torch.Tensor] | None:
    rows = list(repo.db.query("select object from running_matrices where commit_id = ?", [commit_id]))
    if not rows:
        return None
    try:
        tensors = repo.objects.get_tensors(rows[0]["object"])
    except MissingObjectError:
        return None  # derived data: rebuilt by the caller
    with transaction(repo.db):
        repo.db["running_matrices"].update(commit_id, {"used": time.time()})
    return {int(name.split(".")[1]): t for name, t in tensors.items()}


def _store(repo: Repository, commit_id: str, matrix: dict[int, torch.Tensor]) -> None:
    """Writes the matrix object, indexes it, and evicts the least recently used beyond
    KEEP (rows first, then objects no row or commit still names)."""
    if not matrix:
        return
    oid = repo.objects.put_tensors({f"layer.{l}": m.contiguous() for l, m in sorted(matrix.items())})
    with transaction(repo.db):
        repo.db["objects"].insert({"id": oid, "size": repo.objects.size(oid), "kind": KIND},
                                  ignore=True)
        repo.db["running_matrices"].upsert({"commit_id": commit_id, "object": oid,
                                            "used": time.time()}, pk="commit_id")
        rows = list(repo.db.query("select commit_id from running_matrices order by used desc"))
        dropped = forget(repo, [r["commit_id"] for r in rows[KEEP:]])
        dead = [o for o in set(dropped) - objects(repo)]
        for o in dead:
            repo.db["objects"].delete_where("id = ?", [o])
    for o in dead:
        repo.objects.delete(o)
