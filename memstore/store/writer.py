"""Writing a commit: the one protocol that makes a crash at any instant harmless.

First every object is written (each fsynced and renamed into place); then ONE SQLite
transaction inserts the rows and, as its last write, moves the ref by compare-and-swap
(which also records a ref snapshot). Until that transaction commits the new objects are
unreferenced orphans (gc removes them); after it, everything they need is on disk. The
caller holds the repository lock, so gc cannot delete objects a writer is about to name."""
from __future__ import annotations

import time as clock
from collections.abc import Callable, Sequence
from typing import Any

from ..editing.result import EditResult
from ..errors import MemstoreError, ValidationError
from . import stats_records
from .commits import Commit, StoredSet, load_requests, make_commit, store_set
from .index import commit_row, index_commit, introduced_size, reindex_requests
from .refs import Refs
from .schema import transaction
from .storage import Storage


def check_inputs(store: Storage, base_hash: str,
                 update_sets: Sequence[EditResult | StoredSet],
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


def write_commit(store: Storage, refs: Refs, base_hash: str,
                 update_sets: Sequence[EditResult | StoredSet], *, parents: list[str],
                 basis: str | None, message: str, metrics: dict[str, Any] | None,
                 operation: str, info: dict[str, Any] | None, time: float | None,
                 ref: str | None, expected: str | None, author: str | None = None,
                 committer: str | None = None, author_time: float | None = None,
                 sign: Callable[[bytes], str] | None = None) -> Commit:
    """Records the commit (signed with `sign`, store.signing, where given) and moves `ref`
    (None: none) from `expected` to it."""
    check_inputs(store, base_hash, update_sets, parents, basis)
    sets = [store_set(store.objects, r).update_set for r in update_sets]
    commit, data = make_commit(
        parents=parents, base=base_hash, basis=basis, update_sets=sets, message=message,
        time=clock.time() if time is None else time, operation=operation,
        metrics=metrics, info=info, author=author, committer=committer,
        author_time=author_time, sign=sign)
    store.objects.put_bytes(data)
    size = introduced_size(store, commit)
    with transaction(store.db), refs.reason(reflog_message(commit), fallback=True):
        if not store.has_commit(commit.id):
            index_commit(store, commit, [r.requests for r in update_sets], size)
        if ref is not None:
            refs.update(ref, commit.id, expected)
    store.remember(commit)
    return commit


def reflog_message(commit: Commit) -> str:
    """The reflog entry of a commit's ref move, as git's: "commit: MSG", "commit
    (initial): MSG" for a first commit, "revert: MSG", "cherry-pick: MSG", "rebase (pick):
    MSG", "commit (merge): MSG"; a command that says more gives its own (Refs.reason)."""
    how = {"commit": "commit (initial)" if not commit.parents else "commit",
           "merge": "commit (merge)", "rebase": "rebase (pick)"}.get(commit.operation,
                                                                       commit.operation)
    return f"{how}: {commit.summary}"


def add_commits(store: Storage, refs: Refs, base_hash: str, commits: Sequence[Commit],
                moves: dict[str, tuple[str | None, str | None]],
                reindexed: Sequence[tuple[Commit, int]] = ()) -> None:
    """Indexes commits that arrived from elsewhere (a fetch), whose objects are all in the
    store already, and moves refs (name → (expected, new); new None deletes) by
    compare-and-swap, in ONE transaction, refs last: a crash leaves all of it or none.
    `commits` come parents first; each must be on this repository's base, and its parents
    and basis indexed or earlier in `commits`. Each (commit, set index) of `reindexed`, an
    indexed commit's update set whose request list `fetch --refetch` restored, gets its
    request rows written again from that list in the same transaction (one that does not
    read is left as it is: fsck names it)."""
    known: set[str] = set()
    for c in commits:
        if c.base != base_hash:
            raise MemstoreError(f"commit {c.id[:12]} was made on another base model")
        for other in c.parents_and_basis:
            if other not in known and not store.has_commit(other):
                raise MemstoreError(f"commit {c.id[:12]}: parent or basis {other[:12]} is not "
                                    "in this repository")
        known.add(c.id)
    rows = [(c, [load_requests(store.objects, s) for s in c.update_sets]) for c in commits]
    again = []
    for c, i in reindexed:
        try:
            again.append((c.id, i, load_requests(store.objects, c.update_sets[i])))
        except MemstoreError:
            continue
    with transaction(store.db):
        for c, requests in rows:
            if not store.has_commit(c.id):
                index_commit(store, c, requests)
                store.remember(c)
        for cid, i, requests in again:
            if store.has_commit(cid):
                reindex_requests(store, cid, i, requests)
        for name, (expected, new) in moves.items():
            refs.update(name, new, expected)
