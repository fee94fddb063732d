"""The narrow interface the store's modules share: the SQLite index and the object store.

History, maintenance, running matrices, statistics records and commit writing take a
`Storage`, never a whole `Repository`: each reads commit records from the objects and rows
from the index, and the repository composes them. Commit records are immutable, so a
read-through cache of them is always valid (gc calls `forget_cached` after deleting)."""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from .commits import FORMAT, Commit, CorruptRecordError
from .objects import OBJECT_ID, ObjectStore

_UNREAD, _NO_JSON = object(), object()  # Storage's markers: not read yet, bytes no JSON


@dataclass
class Storage:
    db: Database
    objects: ObjectStore
    _commits: dict[str, Commit] = field(default_factory=dict, repr=False)
    # records read and hash-checked, not parsed yet (chain_link, ancestry_link)
    _checked_json: dict[str, Any] = field(default_factory=dict, repr=False)

    def commit(self, commit_id: str) -> Commit:
        """The record of `commit_id`, read from its object (checked against its hash)."""
        commit = self._commits.get(commit_id)
        if commit is None:
            raw = self._checked_json.pop(commit_id, _UNREAD)
            if raw is _UNREAD:
                raw = self._json(commit_id)
            if raw is _NO_JSON:  # a tensor object a ref was set to: a traceback
                raise CorruptRecordError(f"object {commit_id} is not a commit of format "
                                         f"{FORMAT} (its bytes are no JSON); run `memstore "
                                         "fsck`")
            commit = Commit.from_json(commit_id, raw)
            self._commits[commit_id] = commit
        return commit

    def _json(self, commit_id: str) -> Any:
        """The JSON of `commit_id`'s object, checked against its hash (_NO_JSON where its
        bytes are none; a missing or corrupt object raises)."""
        try:
            return self.objects.get_json(commit_id)
        except ValueError:
            return _NO_JSON

    def _light(self, commit_id: str) -> dict[str, Any] | None:
        """The hash-checked JSON of `commit_id`'s record where it is a record of this format
        not parsed yet (kept until it is: a later `commit` parses it without reading and
        hashing the object again), else None (parsed already, or of another shape)."""
        if commit_id in self._commits:
            return None
        raw = self._checked_json.get(commit_id, _UNREAD)
        if raw is _UNREAD:
            raw = self._json(commit_id)
            if not (isinstance(raw, dict) and raw.get("format") == FORMAT):
                return None
            self._checked_json[commit_id] = raw
        return raw

    def chain_link(self, commit_id: str) -> tuple[str | None, int]:
        """The basis `commit_id`'s record names and the number of requests its update sets
        hold, read from its object (checked against its hash) without parsing the rest
        where the record is not cached: a basis chain walked on the records (chain_facts)
        costs a third of reading each commit. A record of another shape is read as a
        commit, which names it."""
        raw = self._light(commit_id)
        if raw is not None:
            basis, sets = raw.get("basis", 0), raw.get("update_sets")
            ns = [u.get("n") if isinstance(u, dict) else None for u in sets] \
                if isinstance(sets, list) else [None]
            if (basis is None or isinstance(basis, str)) and all(
                    type(n) is int and n >= 0 for n in ns):
                return basis, sum(ns)
        commit = self.commit(commit_id)  # raises CorruptRecordError, naming it
        return commit.basis, commit.n_requests

    def ancestry_link(self, commit_id: str) -> tuple[tuple[str, ...], float]:
        """The parents and time `commit_id`'s record names, read from its object (checked
        against its hash) as chain_link's, without parsing the rest (its update sets'
        settings are most of a commit's parse): what the ancestry walks of the counting
        commands compare each row with (history.checked_graph(unreadable=True)). A record
        whose parents or time are of another shape is read as a commit, which names it."""
        raw = self._light(commit_id)
        if raw is not None:
            parents, t = raw.get("parents"), raw.get("time")
            if (isinstance(parents, list)
                    and all(isinstance(p, str) and OBJECT_ID.match(p) for p in parents)
                    and isinstance(t, (int, float)) and not isinstance(t, bool)
                    and math.isfinite(t)):
                return tuple(parents), t
        commit = self.commit(commit_id)  # raises CorruptRecordError, naming it
        return commit.parents, commit.time

    def remember(self, commit: Commit) -> None:
        self._commits[commit.id] = commit

    def forget_cached(self) -> None:
        self._commits.clear()
        self._checked_json.clear()

    def has_commit(self, commit_id: str) -> bool:
        """Whether the index knows `commit_id`."""
        return bool(list(self.db.query("select 1 from commits where id = ?", [commit_id])))

    @contextmanager
    def taken_back_on_failure(self) -> Iterator[None]:
        """When the block raises, the objects it stored for the first time that no index
        row names are deleted again: an operation that writes objects as it goes (a
        revert stores each set it replays) and is refused or interrupted part way leaves
        the store as it found it, while what it indexed meanwhile (statistics it computed)
        or a commit it wrote keeps its objects. Only for a caller holding the repository
        lock, so that no other writer can have named them."""
        with self.objects.recording_new() as new:
            try:
                yield
            except BaseException:
                for oid in new:
                    if not list(self.db.query("select 1 from objects where id = ?", [oid])):
                        self.objects.delete(oid)
                raise
