"""The repository: `.memstore/` = objects/ + index.db + lock, behind one class.

Writes follow one rule, which makes a crash at any instant harmless: first every object is
written (each fsynced and renamed into place), then ONE SQLite transaction inserts the rows
and moves the ref, after checking that the ref still points where it did when the
operation started. Until that transaction commits, the new objects are unreferenced
orphans (gc removes them); after it, everything they need is on disk. Every write method
takes the repository lock (reentrant), so gc can never delete objects a writer is about to
reference; a CLI command may hold the lock around its whole run with `repo.lock()`."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time as clock
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sqlite_utils import Database

from ..editing.requests import Request
from ..editing.result import EditResult, LayerUpdate
from ..editing.settings import EditSettings
from ..editing.statistics import Statistics
from ..errors import MemstoreError, ValidationError
from . import history, maintenance
from .commits import (
    Commit,
    load_requests,
    load_updates,
    load_zs,
    make_commit,
    put_update_set,
)
from .lock import RepositoryLock, WaitCallback
from .objects import DiskObjectStore, MemoryObjectStore, ObjectStore, fsync_dir
from .refs import HEAD, HEADS, TAGS, Head, Refs, branch_ref, tag_ref
from .schema import open_index, transaction

if TYPE_CHECKING:
    from typing_extensions import Self

DIRNAME = ".memstore"
DEFAULT_BRANCH = "main"
_FROM_PARENTS: Any = object()  # write_commit's default `expected`: the first parent


class NotARepositoryError(MemstoreError):
    pass


@dataclass(frozen=True)
class BaseRecord:
    """The base model every state is built on."""

    spec: str  # what the user gave (a path or a model name)
    hash: str  # content hash of the weights (memstore.models.hashing.model_hash)
    path: str | None  # where the weights were found
    snapshot: dict[str, int] | None  # size and mtime of `path`, for a cheap re-check
    info: dict[str, Any]


@dataclass(frozen=True)
class StatisticsRecord:
    id: str
    layer: int
    n_tokens: int
    description: str
    object: str
    created: float


def path_snapshot(path: str | Path) -> dict[str, int]:
    """Total size, newest mtime and file count of a file or a directory tree."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    stats = [f.stat() for f in files]
    return {"size": sum(s.st_size for s in stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0), "files": len(stats)}


class Repository:
    def __init__(self, objects: ObjectStore, db: Database, root: Path | None = None,
                 on_wait: WaitCallback | None = None) -> None:
        self.root = root  # the directory holding .memstore; None for in-memory
        self.objects = objects
        self.db = db
        self.refs = Refs(db)
        self._lock = RepositoryLock(self.dir / "lock" if self.dir else None, on_wait)
        self._commits: dict[str, Commit] = {}

    # -- creating and opening -------------------------------------------------------------

    @property
    def dir(self) -> Path | None:
        return self.root / DIRNAME if self.root is not None else None

    @classmethod
    def init(cls, path: str | Path, base_spec: str, base_hash: str,
             base_info: dict[str, Any] | None = None, settings: EditSettings | None = None,
             *, base_path: str | Path | None = None, branch: str = DEFAULT_BRANCH,
             on_wait: WaitCallback | None = None) -> Repository:
        """Creates `path/.memstore`, refusing an existing one. Built in a temporary
        directory and renamed into place, so a crash never leaves half a repository."""
        root = Path(path).resolve()
        target = root / DIRNAME
        if target.exists():
            raise MemstoreError(f"a memstore repository already exists in {root}")
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=DIRNAME + "-init-", dir=root))
        try:
            (tmp / "objects").mkdir()
            (tmp / "lock").touch()
            db = open_index(tmp / "index.db")
            try:
                _setup(db, base_spec, base_hash, base_info, settings, base_path, branch)
            finally:
                db.close()
            try:
                os.rename(tmp, target)
            except OSError as e:  # created meanwhile by someone else
                raise MemstoreError(f"a memstore repository already exists in {root}") from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(root)
        return cls.open(root, on_wait=on_wait)

    @classmethod
    def memory(cls, base_spec: str = "test", base_hash: str = "0" * 64,
               base_info: dict[str, Any] | None = None, settings: EditSettings | None = None,
               *, branch: str = DEFAULT_BRANCH) -> Repository:
        """A repository held in memory (MemoryObjectStore, in-memory index), for tests."""
        db = open_index(None)
        _setup(db, base_spec, base_hash, base_info, settings, None, branch)
        return cls(MemoryObjectStore(), db)

    @staticmethod
    def find(path: str | Path | None = None) -> Path:
        """The directory holding `.memstore`, from `path` (default: cwd) upwards."""
        start = Path(path if path is not None else os.getcwd()).resolve()
        for d in (start, *start.parents):
            if (d / DIRNAME / "index.db").is_file():
                return d
        raise NotARepositoryError(f"not a memstore repository (or any parent): {start}")

    @classmethod
    def open(cls, path: str | Path | None = None, *,
             on_wait: WaitCallback | None = None) -> Repository:
        root = cls.find(path)
        db = open_index(root / DIRNAME / "index.db")
        return cls(DiskObjectStore(root / DIRNAME / "objects"), db, root, on_wait)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self, wait: bool = True, on_wait: WaitCallback | None = None,
             timeout: float | None = None) -> AbstractContextManager[None]:
        """The writer lock. Waiting calls `on_wait` (or the repository's) with a message
        naming the holder's pid; `wait=False` raises LockedError instead."""
        return self._lock(wait, on_wait, timeout)

    def forget_cached(self) -> None:
        self._commits.clear()

    # -- config, base, statistics ---------------------------------------------------------

    def get_config(self, key: str, default: Any = None) -> Any:
        rows = list(self.db.query("select value from config where key = ?", [key]))
        return json.loads(rows[0]["value"]) if rows else default

    def set_config(self, key: str, value: Any) -> None:
        with self.lock(), transaction(self.db):
            _set_config(self.db, key, value)

    @property
    def settings(self) -> EditSettings | None:
        """The editor settings future commits use."""
        raw = self.get_config("settings")
        return EditSettings.from_dict(raw) if raw is not None else None

    def set_settings(self, settings: EditSettings) -> None:
        self.set_config("settings", settings.to_dict())

    @property
    def base(self) -> BaseRecord:
        raw = self.get_config("base")
        if raw is None:
            raise MemstoreError("the repository has no base record; run `memstore fsck`")
        return BaseRecord(raw["spec"], raw["hash"], raw.get("path"), raw.get("snapshot"),
                          raw.get("info", {}))

    def set_base_path(self, path: str | Path) -> None:
        """Records where the base weights are now (after the caller checked their hash)."""
        b = self.base
        self.set_config("base", _base_json(b.spec, b.hash, path, b.info))

    def base_unchanged(self) -> bool | None:
        """True when the base path still has the recorded size and mtime (so its hash need
        not be recomputed), False when it changed or is gone; None when no path is recorded."""
        b = self.base
        if b.path is None or b.snapshot is None:
            return None
        return Path(b.path).exists() and path_snapshot(b.path) == b.snapshot

    def put_statistics(self, stats: Statistics) -> StatisticsRecord:
        """Stores E[k kᵀ] of one layer (kept first if the same id and layer exist)."""
        existing = self.statistics_record(stats.id, stats.layer)
        if existing is not None:
            return existing
        with self.lock():
            oid = self.objects.put_tensors({"mom2": stats.mom2})
            row = {"id": stats.id, "layer": stats.layer, "n_tokens": stats.n_tokens,
                   "description": stats.description, "object": oid, "created": clock.time()}
            with transaction(self.db):
                self.db["statistics"].insert(row, ignore=True)
                _index_objects(self.db, self.objects, {oid: "statistics"})
        return self.statistics_record(stats.id, stats.layer)  # type: ignore[return-value]

    def statistics_record(self, stats_id: str, layer: int) -> StatisticsRecord | None:
        rows = list(self.db.query("select * from statistics where id = ? and layer = ?",
                                  [stats_id, layer]))
        return StatisticsRecord(**rows[0]) if rows else None

    def statistics(self) -> list[StatisticsRecord]:
        return [StatisticsRecord(**r)
                for r in self.db.query("select * from statistics order by id, layer")]

    def get_statistics(self, stats_id: str, layer: int) -> Statistics:
        rec = self.statistics_record(stats_id, layer)
        if rec is None:
            raise MemstoreError(f"no statistics {stats_id} for layer {layer} in this repository")
        mom2 = self.objects.get_tensors(rec.object)["mom2"]
        return Statistics(layer, mom2, rec.n_tokens, rec.description)

    # -- refs -----------------------------------------------------------------------------

    def head(self) -> Head:
        return self.refs.head()

    def resolve(self, rev: str) -> str:
        return self.refs.resolve(rev)

    def branches(self) -> dict[str, str]:
        return self.refs.list(HEADS)

    def tags(self) -> dict[str, str]:
        return self.refs.list(TAGS)

    def create_branch(self, name: str, rev: str = HEAD, *, force: bool = False) -> str:
        return self._create_ref(branch_ref(name), "branch", rev, force)

    def create_tag(self, name: str, rev: str = HEAD, *, force: bool = False) -> str:
        return self._create_ref(tag_ref(name), "tag", rev, force)

    def _create_ref(self, ref: str, kind: str, rev: str, force: bool) -> str:
        with self.lock(), transaction(self.db):
            commit = self.resolve(rev)
            old = self.refs.read(ref)
            if old is not None and not force:
                raise ValidationError(f"{kind} {ref.split('/', 2)[2]!r} already exists")
            self.refs.update(ref, commit, expected=old)
        return commit

    def delete_branch(self, name: str, *, force: bool = False) -> str:
        ref = branch_ref(name)
        with self.lock(), transaction(self.db):
            commit = self.refs.read(ref)
            if commit is None:
                raise ValidationError(f"no branch {name!r}")
            if self.head().ref == ref:
                raise ValidationError(f"cannot delete the current branch {name!r}; "
                                      "switch to another one first")
            others = [c for r, c in self.refs.all().items() if r != ref]
            if not force and not any(history.is_ancestor(self, commit, c) for c in others):
                raise ValidationError(
                    f"branch {name!r} is not merged into any other branch or tag; its commits "
                    "would be lost at the next gc (force the deletion to do it anyway)")
            self.refs.update(ref, None, expected=commit)
        return commit

    def delete_tag(self, name: str) -> str:
        ref = tag_ref(name)
        with self.lock(), transaction(self.db):
            commit = self.refs.read(ref)
            if commit is None:
                raise ValidationError(f"no tag {name!r}")
            self.refs.update(ref, None, expected=commit)
        return commit

    def switch(self, target: str, *, create: bool = False, detach: bool = False) -> Head:
        """Points HEAD at branch `target` (created at HEAD first with `create`), or, with
        `detach` or when `target` is no branch, at the commit `target` names."""
        with self.lock(), transaction(self.db):
            if create:
                self.create_branch(target)
            ref = HEADS + target
            if not detach and self.refs.read(ref) is not None:
                self.refs.set_symbolic(HEAD, ref)
            else:
                self.refs.set_detached(HEAD, self.resolve(target))
        return self.head()

    def update_ref(self, ref: str, new: str, *, expected: str | None) -> None:
        """Compare-and-swap a ref (HEAD: whatever HEAD points to) to commit `new`; for
        fast-forwards and resets. RefConflictError if it no longer points to `expected`."""
        with self.lock(), transaction(self.db):
            self._get_commit_row(new)
            self.refs.update(self._ref_to_move(ref), new, expected)

    def _ref_to_move(self, ref: str) -> str:
        if ref == HEAD:
            return self.head().ref or HEAD
        return ref

    # -- commits --------------------------------------------------------------------------

    def write_commit(self, update_sets: Sequence[EditResult], *, parents: Sequence[str],
                     basis: str | None, message: str, metrics: dict[str, Any] | None = None,
                     operation: str = "commit", info: dict[str, Any] | None = None,
                     time: float | None = None, ref: str | None = HEAD,
                     expected: str | None = _FROM_PARENTS) -> Commit:
        """Records a commit whose state is `basis`'s state (None: the base weights) plus
        `update_sets` (one EditResult per solve, applied in order), and moves `ref` to it.

        `ref` HEAD moves the current branch (or a detached HEAD); None moves nothing.
        `expected` is where `ref` must still point (default: the first parent, i.e. where
        the operation started); if it moved meanwhile, RefConflictError and no change."""
        parents = list(parents)
        if expected is _FROM_PARENTS:
            expected = parents[0] if parents else None
        with self.lock():
            base = self._check_commit_inputs(update_sets, parents, basis)
            sets = [put_update_set(self.objects, r) for r in update_sets]
            commit, data = make_commit(
                parents=parents, base=base, basis=basis, update_sets=sets, message=message,
                time=clock.time() if time is None else time, operation=operation,
                metrics=metrics, info=info)
            self.objects.put_bytes(data)
            size = self._introduced_size(commit)
            with transaction(self.db):
                if ref is not None:
                    self.refs.update(self._ref_to_move(ref), commit.id, expected)
                if not self.has_commit(commit.id):
                    self._index_commit(commit, [r.requests for r in update_sets], size)
        self._commits[commit.id] = commit
        return commit

    def add_commits(self, commits: Sequence[Commit],
                    refs: dict[str, tuple[str | None, str | None]] | None = None) -> None:
        """Indexes commits that arrived from elsewhere (a fetch), whose objects are all in
        the store already, and moves `refs` (name → (expected, new); new None deletes) by
        compare-and-swap, in ONE transaction: a crash leaves all of it or none. `commits`
        come parents first; each must be on this repository's base, and its parents and
        basis indexed or earlier in `commits`."""
        base = self.base.hash
        with self.lock():
            known: set[str] = set()
            for c in commits:
                if c.base != base:
                    raise MemstoreError(f"commit {c.id[:12]} was made on another base model")
                for other in [*c.parents, *([c.basis] if c.basis else [])]:
                    if other not in known and not self.has_commit(other):
                        raise MemstoreError(f"commit {c.id[:12]}: parent or basis "
                                            f"{other[:12]} is not in this repository")
                known.add(c.id)
            rows = []
            for c in commits:
                try:
                    requests = [load_requests(self.objects, s) for s in c.update_sets]
                except (KeyError, TypeError, ValueError, AttributeError) as e:
                    raise MemstoreError(f"commit {c.id[:12]}: its request lists are "
                                        f"unreadable ({e!r})") from e
                rows.append((c, requests, self._introduced_size(c)))
            with transaction(self.db):
                for name, (expected, new) in (refs or {}).items():
                    self.refs.update(name, new, expected)
                for c, requests, size in rows:
                    if not self.has_commit(c.id):
                        self._index_commit(c, requests, size)

    def _check_commit_inputs(self, update_sets: Sequence[EditResult], parents: list[str],
                             basis: str | None) -> str:
        base = self.base.hash
        if len(set(parents)) != len(parents):
            raise ValidationError("a commit cannot have the same parent twice")
        for c in [*parents, *([basis] if basis is not None else [])]:
            row = self._get_commit_row(c)
            if row["base_hash"] != base:
                raise ValidationError(f"commit {c[:12]} was made on another base model")
        for r in update_sets:
            for layer, sid in r.stats_ids.items():
                if self.statistics_record(sid, layer) is None:
                    raise ValidationError(f"statistics {sid} of layer {layer} are not in "
                                          "this repository (store them first)")
        return base

    def _introduced_size(self, commit: Commit) -> int:
        """Bytes of the objects this commit adds beyond what its parents' records hold."""
        inherited = {o for p in commit.parents for o in self.get_commit(p).object_ids()}
        return sum(self.objects.size(o) for o in set(commit.object_ids()) - inherited)

    def _index_commit(self, commit: Commit, requests: list[list[Request]], size: int) -> None:
        self.db["commits"].insert({
            "id": commit.id, "parents": json.dumps(list(commit.parents)),
            "basis": commit.basis, "base_hash": commit.base, "time": commit.time,
            "message": commit.message, "operation": commit.operation,
            "n_requests": commit.n_requests, "size": size,
            "metrics": json.dumps(commit.metrics, sort_keys=True),
        })
        self.db["requests"].insert_all(
            {"commit_id": commit.id, "set_index": i, "position": p, "subject": r.subject,
             "prompt": r.prompt, "target_new": r.target_new, "target_true": r.target_true,
             "case_id": r.case_id}
            for i, reqs in enumerate(requests) for p, r in enumerate(reqs))
        kinds = {commit.id: "commit"}
        for s in commit.update_sets:
            kinds.update(dict.fromkeys(s.object_ids(), "tensors"))
            kinds[s.requests] = "requests"
        _index_objects(self.db, self.objects, kinds)

    def _get_commit_row(self, commit_id: str) -> dict[str, Any]:
        rows = list(self.db.query("select * from commits where id = ?", [commit_id]))
        if not rows:
            raise ValidationError(f"unknown commit {commit_id!r}")
        return rows[0]

    def has_commit(self, commit_id: str) -> bool:
        return bool(list(self.db.query("select 1 from commits where id = ?", [commit_id])))

    def get_commit(self, commit_id: str) -> Commit:
        commit = self._commits.get(commit_id)
        if commit is None:
            commit = Commit.from_json(commit_id, self.objects.get_json(commit_id))
            self._commits[commit_id] = commit
        return commit

    def commit_size(self, rev: str) -> int:
        """Bytes of the objects a commit introduces (not already held by its parents)."""
        return self._get_commit_row(self.resolve(rev))["size"]

    def requests_of(self, commit_id: str, set_index: int = 0) -> list[Request]:
        return load_requests(self.objects, self.get_commit(commit_id).update_sets[set_index])

    def zs_of_set(self, commit_id: str, set_index: int = 0) -> torch.Tensor:
        return load_zs(self.objects, self.get_commit(commit_id).update_sets[set_index])

    def updates_of(self, commit_id: str, set_index: int = 0) -> dict[int, LayerUpdate]:
        return load_updates(self.objects, self.get_commit(commit_id).update_sets[set_index])

    def find_requests(self, *, subject: str | None = None, prompt: str | None = None,
                      contains: str | None = None) -> list[dict[str, Any]]:
        """Request rows (commit_id, set_index, position, subject, prompt, targets) by exact
        subject and/or prompt, or by a substring of either."""
        where, args = [], []
        if subject is not None:
            where.append("subject = ?")
            args.append(subject)
        if prompt is not None:
            where.append("prompt = ?")
            args.append(prompt)
        if contains is not None:
            where.append("(instr(subject, ?) > 0 or instr(prompt, ?) > 0)")
            args += [contains, contains]
        sql = "select requests.* from requests join commits on commits.id = commit_id"
        if where:
            sql += " where " + " and ".join(where)
        return list(self.db.query(sql + " order by commits.time, commit_id, set_index, position",
                                  args))

    # -- history (memstore.store.history) -------------------------------------------------

    def log(self, rev: str = HEAD, *, first_parent: bool = False,
            limit: int | None = None) -> list[Commit]:
        """Commits reachable from `rev`, newest first; [] on an unborn HEAD."""
        if rev == HEAD and self.head().commit is None:
            return []
        ids = history.log_ids(self, self.resolve(rev), first_parent, limit)
        return [self.get_commit(c) for c in ids]

    def merge_base(self, a: str, b: str) -> str | None:
        bases = history.merge_bases(self, self.resolve(a), self.resolve(b))
        return bases[0] if bases else None

    def is_ancestor(self, ancestor: str, rev: str) -> bool:
        return history.is_ancestor(self, self.resolve(ancestor), self.resolve(rev))

    def chain_sets(self, rev: str) -> list[history.SetRef]:
        return history.chain_sets(self, self.resolve(rev))

    def update_chain(self, rev: str) -> list[dict[int, LayerUpdate]]:
        """The update sets that build `rev`'s state from the base weights, root first."""
        return history.update_chain(self, self.resolve(rev))

    def chain_keys(self, rev: str) -> dict[int, torch.Tensor]:
        return history.chain_keys(self, self.resolve(rev))

    def facts_at(self, rev: str) -> list[history.LiveFact]:
        return history.facts_at(self, self.resolve(rev))

    def zs_of(self, facts: list[history.LiveFact]) -> torch.Tensor:
        return history.zs_of(self, facts)

    # -- maintenance (memstore.store.maintenance) -----------------------------------------

    def fsck(self, verify: bool = True) -> list[str]:
        return maintenance.fsck(self, verify)

    def gc(self, dry_run: bool = False) -> maintenance.GcReport:
        return maintenance.gc(self, dry_run)


def _base_json(spec: str, base_hash: str, path: str | Path | None,
               info: dict[str, Any] | None) -> dict[str, Any]:
    return {"spec": spec, "hash": base_hash, "info": info or {},
            "path": str(Path(path).resolve()) if path is not None else None,
            "snapshot": path_snapshot(path) if path is not None else None}


def _set_config(db: Database, key: str, value: Any) -> None:
    db["config"].insert({"key": key, "value": json.dumps(value, sort_keys=True)}, replace=True)


def _setup(db: Database, base_spec: str, base_hash: str, base_info: dict[str, Any] | None,
           settings: EditSettings | None, base_path: str | Path | None, branch: str) -> None:
    if not isinstance(base_hash, str) or not base_hash:
        raise ValidationError("init: the base model's content hash is required")
    ref = branch_ref(branch)
    with transaction(db):
        _set_config(db, "base", _base_json(base_spec, base_hash, base_path, base_info))
        if settings is not None:
            _set_config(db, "settings", settings.to_dict())
        Refs(db).set_symbolic(HEAD, ref)


def _index_objects(db: Database, objects: ObjectStore, kinds: dict[str, str]) -> None:
    db["objects"].insert_all(
        ({"id": o, "size": objects.size(o), "kind": k} for o, k in kinds.items()), ignore=True)
