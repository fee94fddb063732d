"""The searchable index of the objects: commit rows, one row per request (indexed by subject
and prompt), and object rows. Everything here is derived from the objects and can be
rebuilt from them (`maintenance.repair`)."""
from __future__ import annotations

import json
from typing import Any

from ..editing.requests import Request
from .commits import Commit, load_requests
from .storage import Storage

COMMIT, REQUESTS, TENSORS = "commit", "requests", "tensors"
# a (subject, prompt) key's request rows, by the subject's index: SQLite would take the
# prompt's, and many facts share a prompt ('{} plays'), so each look-up would read a good
# part of the table (the unary + keeps the prompt's index out)
BY_KEY = "subject = ? and +prompt = ?"


def index_objects(store: Storage, kinds: dict[str, str]) -> None:
    """Object rows (id, size, kind) of the objects the store holds (a lost one gets none:
    fsck names it from the records that need it); existing rows are kept."""
    store.db["objects"].insert_all(
        ({"id": o, "size": store.objects.size(o), "kind": k} for o, k in kinds.items()
         if store.objects.contains(o)), ignore=True)


def commit_kinds(commit: Commit) -> dict[str, str]:
    kinds = {commit.id: COMMIT}
    for s in commit.update_sets:
        kinds.update(dict.fromkeys(s.object_ids(), TENSORS))
        kinds[s.requests] = REQUESTS
    return kinds


def introduced_size(store: Storage, commit: Commit) -> int:
    """Bytes of the objects a commit adds beyond what its parents' records hold."""
    inherited = {o for p in commit.parents if store.has_commit(p)
                 for o in store.commit(p).object_ids()}
    return sum(store.objects.size(o) for o in set(commit.object_ids()) - inherited
               if store.objects.contains(o))  # a lost object (fsck names it) counts nothing


def index_commit(store: Storage, commit: Commit, requests: list[list[Request]] | None = None,
                 size: int | None = None) -> None:
    """The commit's row, its request rows and its object rows (call in a transaction).
    `requests` per update set, read from the objects when not given."""
    if requests is None:
        requests = [load_requests(store.objects, s) for s in commit.update_sets]
    store.db["commits"].insert({
        "id": commit.id, "parents": json.dumps(list(commit.parents)),
        "basis": commit.basis, "base_hash": commit.base, "time": commit.time,
        "message": commit.message, "operation": commit.operation,
        "n_requests": commit.n_requests,
        "size": introduced_size(store, commit) if size is None else size,
        "metrics": json.dumps(commit.metrics, sort_keys=True),
    })
    for i, reqs in enumerate(requests):
        index_requests(store, commit.id, i, reqs)
    index_objects(store, commit_kinds(commit))


def index_requests(store: Storage, commit_id: str, set_index: int,
                   requests: list[Request]) -> None:
    """The request rows of one update set (call in a transaction): index_commit's, and so
    `fsck --repair`'s, and those `fetch --refetch` writes again once it restored the set's
    request list (`reindex_requests`)."""
    store.db["requests"].insert_all(
        {"commit_id": commit_id, "set_index": set_index, "position": p, "subject": r.subject,
         "prompt": r.prompt, "target_new": r.target_new, "target_true": r.target_true,
         "case_id": r.case_id}
        for p, r in enumerate(requests))


def reindex_requests(store: Storage, commit_id: str, set_index: int,
                     requests: list[Request]) -> None:
    """The request rows of an indexed commit's update set replaced by `requests`, read
    from its request list (call in a transaction): a list `fsck --repair` could not read
    left the set without rows, which a refetch that restores the list puts back."""
    store.db["requests"].delete_where("commit_id = ? and set_index = ?", [commit_id, set_index])
    index_requests(store, commit_id, set_index, requests)


def short_of_requests(store: Storage) -> list[str]:
    """The indexed commits with fewer (or more) request rows than their records count:
    those with an update set `fsck --repair` indexed without the facts of a request list
    it could not read."""
    return [r["id"] for r in store.db.query(
        "select id from commits where n_requests != "
        "(select count(*) from requests where commit_id = commits.id) order by id")]


def request_counts(store: Storage, commit_id: str) -> dict[int, int]:
    """Set index → the number of request rows of that update set of the commit."""
    return {r["set_index"]: r["n"] for r in store.db.query(
        "select set_index, count(*) as n from requests where commit_id = ? group by set_index",
        [commit_id])}


def commit_row(store: Storage, commit_id: str) -> dict[str, Any] | None:
    rows = list(store.db.query("select * from commits where id = ?", [commit_id]))
    return rows[0] if rows else None


def find_requests(store: Storage, *, subject: str | None = None, prompt: str | None = None,
                  contains: str | None = None) -> list[dict[str, Any]]:
    """Request rows (commit_id, set_index, position, subject, prompt, targets) by exact
    subject and/or prompt, or by a substring of either."""
    where, args = [], []
    if subject is not None and prompt is not None:
        where.append(BY_KEY)
        args += [subject, prompt]
    elif subject is not None:
        where.append("subject = ?")
        args.append(subject)
    elif prompt is not None:
        where.append("prompt = ?")
        args.append(prompt)
    if contains is not None:
        where.append("(instr(subject, ?) > 0 or instr(prompt, ?) > 0)")
        args += [contains, contains]
    sql = "select requests.* from requests join commits on commits.id = commit_id"
    if where:
        sql += " where " + " and ".join(where)
    return list(store.db.query(sql + " order by commits.time, commit_id, set_index, position",
                               args))
