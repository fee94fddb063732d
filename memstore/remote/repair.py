"""Repairing a remote from a repository that holds what it lost.

A push writes only the objects a remote lacks, judged by its listing: an object that is
there but corrupt (a disk error, a bad copy, a hand edit), or gone from under a branch,
stays so, and every fetch or clone that needs it is refused. `memstore fsck REMOTE
--repair` writes each such object again from this repository: every object the remote
holds corrupt, and every object its branches' and tags' histories and statistics records need that
it lacks — each only from an intact local copy (re-hashed as it is read; a corrupt local
copy is not written). Rewriting an object with the bytes its name says it holds cannot
disturb a concurrent fetch or push more than the damage did: each write is whole or not at
all, as a push's is. Then the remote is checked again; what no local copy could restore
is listed. A statistics record that is damaged (unreadable, at another layer's path, its
description not the one its id hashes) is written again from this repository's record of
the same sample and layer, where it has one whose tensor is intact here."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import MemstoreError
from ..store.commits import Commit
from ..store.objects import CorruptObjectError
from ..store.refs import HEADS, TAGS
from ..store.repository import Repository
from ..store.stats_records import StatisticsRecord
from .fsck import corrupt_objects, listed_objects
from .layout import (
    MARKER,
    STATISTICS,
    Marker,
    RemoteFormatError,
    object_path,
    parse_statistics_record,
    statistics_path,
    statistics_record,
)
from .transfer import batches, byte_bar, counted, streamed
from .transport import Transport, open_transport


@dataclass
class RemoteRepair:
    rewritten: list[str] = field(default_factory=list)  # objects written again
    bytes: int = 0
    corrupt_here: list[str] = field(default_factory=list)  # wanted, but corrupt here too
    records: list[str] = field(default_factory=list)  # statistics records written again


def repair_remote(repo: Repository, url: str) -> RemoteRepair:
    """Writes to the remote at `url`, from `repo`, every object it holds corrupt or its
    branches and statistics need and lack (see the module's docstring)."""
    transport = open_transport(url)
    data = transport.read(MARKER)
    if data is None:
        raise MemstoreError(f"{MARKER} is missing: {transport.url} is not a memstore remote; "
                            "nothing to repair")
    marker = Marker.parse(data, transport.url)
    if marker.base_hash != repo.base.hash:
        raise MemstoreError(f"remote {transport.url} is on another base model than this "
                            "repository; it cannot repair it")
    present, _ = listed_objects(transport)
    corrupt = corrupt_objects(transport, present)
    records = _damaged_records(repo, transport)
    wanted = corrupt | ((_needed(repo, transport, present, corrupt)
                         | {r.object for r in records.values()}) - set(present))
    out = RemoteRepair()
    here = sorted(o for o in wanted if repo.objects.contains(o))
    sizes = {o: repo.objects.size(o) for o in here}
    with byte_bar(sum(sizes.values()), "repair") as bar:
        for batch in batches(here, sizes):
            if streamed(sizes[batch[0]]):
                try:  # the local copy is hashed as it goes: a corrupt one is never completed
                    transport.put_stream(object_path(batch[0]),
                                         counted(repo.objects.chunks(batch[0]), bar))
                except CorruptObjectError:
                    out.corrupt_here.append(batch[0])
                    continue
                out.rewritten.append(batch[0])
                out.bytes += sizes[batch[0]]
                continue
            files = {}
            for o in batch:
                try:
                    files[object_path(o)] = repo.objects.get_bytes(o)
                except CorruptObjectError:
                    out.corrupt_here.append(o)
            transport.put_many(files)
            bar.update(sum(sizes[o] for o in batch))
            done = [o for o in batch if object_path(o) in files]
            out.rewritten += done
            out.bytes += sum(sizes[o] for o in done)
    transport.flush()
    for path, r in sorted(records.items()):  # once their tensors are there
        if r.object in out.corrupt_here:
            continue
        transport.put(path, statistics_record(r.id, r.layer, r.n_tokens, r.description, r.object))
        out.records.append(path)
    return out


def _damaged_records(repo: Repository, transport: Transport) -> dict[str, StatisticsRecord]:
    """Remote path -> this repository's record, for each damaged statistics record on the
    remote whose sample and layer this repository holds (its path names them)."""
    out = {}
    paths = [STATISTICS + rel for rel in transport.list(STATISTICS)]
    for path, data in transport.read_many(paths).items():
        try:
            parse_statistics_record(data, path, path)
            continue
        except RemoteFormatError:
            pass
        sample, _, layer = path[len(STATISTICS):].removesuffix(".json").rpartition(".")
        if not layer.isdigit() or statistics_path(sample, int(layer)) != path:
            continue
        rec = repo.statistics_record(sample, int(layer))
        if rec is not None and repo.objects.contains(rec.object):
            out[path] = rec
    return out


def _needed(repo: Repository, transport: Transport, present: dict[str, int],
            corrupt: set[str]) -> set[str]:
    """The objects the remote's branches, tags and statistics records name: each commit on the
    way (read from this repository where it has it, else from the remote when intact
    there), the objects its update sets name, and the statistics tensors."""
    needed: set[str] = set()
    stack = []
    for path in [prefix + name for prefix in (HEADS, TAGS) for name in transport.list(prefix)]:
        try:  # read as every ref is: a large file there is not read whole
            commit = transport.read_ref(path).commit
        except RemoteFormatError:
            continue  # fsck lists it; there is no object to restore for it
        if commit is not None:  # gone since it was listed
            stack.append(commit)
    while stack:
        cid = stack.pop()
        if cid in needed:
            continue
        needed.add(cid)
        commit = _commit(repo, transport, cid, present, corrupt)
        if commit is None:
            continue
        needed.update(commit.object_ids())
        stack += commit.parents_and_basis
    paths = [STATISTICS + rel for rel in transport.list(STATISTICS)]
    for path, data in transport.read_many(paths).items():
        try:
            needed.add(parse_statistics_record(data, path, path)["object"])
        except RemoteFormatError:
            continue
    return needed


def _commit(repo: Repository, transport: Transport, cid: str, present: dict[str, int],
            corrupt: set[str]) -> Commit | None:
    if repo.has_commit(cid):
        try:
            return repo.get_commit(cid)
        except MemstoreError:
            pass
    if cid not in present or cid in corrupt:
        return None
    try:
        return Commit.from_json(cid, json.loads(transport.read(object_path(cid)) or b""))
    except (MemstoreError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
