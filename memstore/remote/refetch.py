"""fetch --refetch: the objects here that are missing or damaged, written again from a remote.

A fetch asks a remote only for the objects this repository lacks by name, so an object that
is here but damaged (a flipped byte, a truncated record) or gone from under an indexed
commit is never asked for again, and every command that reads it fails. `memstore fetch
--refetch` (git 2.36's `fetch --refetch`, shaped for a store of large immutable objects)
walks every commit the remote's branches and tags reach, and for each one this repository
has (indexed, arriving with this fetch, or a parent or basis of one of those: a commit whose
record `fsck --repair` found damaged and left out of the index, which the fetch indexes
again once its record is restored) checks every object it needs here: the commit's
record, the objects its update sets name, and the tensors of the statistics records here
that they were solved with. Each one missing or not hashing to its name is read from the
remote, checked against its name, and written in its place by the object store's own
writer (a temporary file renamed over the damaged copy, as every object is written). An
intact object here is only read, never downloaded: hashing here costs less than a
download, even from a folder (benchmarks/README.md, "fetch --refetch"). A remote's copy
that is corrupt too, or one the remote lacks, is never written: it is listed, with why.
An update set of an indexed commit with fewer request rows than its record counts, whose
request list reads once the objects are restored, gets its rows written again in the
fetch's transaction (`Refetched.reindexed`): `fsck --repair` indexed the commit without
the facts of a list it could not read (under every commit holding the list, those the
remote's history does not reach too: a cherry-pick on a branch never pushed), or a
refetch killed after its restore, before that transaction, left them out. So fsck is
clean without another repair; a set whose rows are all there is not touched.

Nothing is written until every object has been checked, and nothing is read or written
through a symbolic link in the object store (UnsafePathError, before the first write). A commit neither side holds intact cannot be
read: its parents are walked only where another commit reaches them."""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import MemstoreError
from ..store.commits import Commit, UpdateSet, load_requests
from ..store.index import request_counts, short_of_requests
from ..store.maintenance import rehash
from ..store.objects import (
    CorruptObjectError,
    DiskObjectStore,
    MissingObjectError,
    ObjectStore,
    UnsafePathError,
    hash_bytes,
    refuse_link,
)
from ..store.repository import Repository
from .layout import object_path
from .stats import named
from .transfer import CORRUPT_THERE, LACKING_THERE, arrivals, remote_sizes
from .transport import Transport


@dataclass
class Refetched:
    """What `--refetch` found: the objects it checked here, those it wrote again (missing or
    damaged here, intact on the remote), and those it could not, each with why."""

    checked: int = 0
    restored: list[str] = field(default_factory=list)
    bytes: int = 0
    unrestored: dict[str, str] = field(default_factory=dict)  # id → CORRUPT_/LACKING_THERE
    unindexed: list[Commit] = field(default_factory=list)  # restored, for the fetch to index
    # (commit, set index) of each indexed commit's update set short of its request rows
    # whose list reads: the fetch writes its rows again (those `fsck --repair` left out)
    reindexed: list[tuple[Commit, int]] = field(default_factory=list)


def refetch_objects(repo: Repository, transport: Transport, tips: Iterable[str],
                    arriving: dict[str, Commit]) -> Refetched:
    """Restores from the remote behind `transport` every object missing or damaged here that
    the commits reachable from `tips` need, where the commit is here (indexed, or among
    `arriving`: fetched, not yet indexed). The caller holds the repository lock."""
    out = Refetched()
    commits, pending = _walk(repo, transport, sorted(set(tips)), arriving, out)
    wanted = {o for c in commits for o in c.object_ids()[1:]}
    for sid, layer in sorted(named(commits)):
        rec = repo.statistics_record(sid, layer)
        if rec is not None:
            wanted.add(rec.object)
    out.checked = len({c.id for c in commits} | set(out.unrestored) | wanted)
    _refuse_links(repo.objects, wanted)
    missing, corrupt = rehash(repo.objects, wanted)
    bad = sorted(missing | corrupt)
    _refuse_links(repo.objects, [*pending, *bad], objects_too=True)
    for oid, data in sorted(pending.items()):  # commit records, read and checked in the walk
        repo.objects.put_bytes(data)
        out.restored.append(oid)
        out.bytes += len(data)
    # a record `fsck --repair` found damaged and left out of the index, under a commit here
    out.unindexed = [c for c in commits if c.id in pending and c.id not in arriving
                     and not repo.has_commit(c.id)]
    _restore(repo, transport, bad, out)
    out.reindexed = _reindexed(repo)
    return out


def _reindexed(repo: Repository) -> list[tuple[Commit, int]]:
    """(commit, set index) of each update set of an indexed commit that has fewer request
    rows than its record counts while its request list reads (now that the refetch restored
    it): `fsck --repair` indexed the commit without the facts of a list it could not read,
    under every commit that holds the list (a cherry-pick on a branch never pushed holds
    that of the commit it copied, which the remote's history does not reach), or a refetch
    killed after its restore, before the index transaction, left them out. A set whose rows
    are all there is left untouched; a list that still does not read too (fsck names it)."""
    out = []
    for cid in short_of_requests(repo.store):
        try:
            commit = repo.get_commit(cid)
        except MemstoreError:  # a record damaged here: fsck names it
            continue
        counts = request_counts(repo.store, cid)
        out += [(commit, i) for i, s in enumerate(commit.update_sets)
                if counts.get(i, 0) != s.n and _readable(repo, s)]
    return out


def _readable(repo: Repository, update_set: UpdateSet) -> bool:
    """Whether the set's request list reads (the rows the fetch writes from it)."""
    try:
        load_requests(repo.objects, update_set)
    except MemstoreError:
        return False
    return True


def _walk(repo: Repository, transport: Transport, tips: list[str],
          arriving: dict[str, Commit], out: Refetched) -> tuple[list[Commit], dict[str, bytes]]:
    """The commits here reachable from `tips`, and the remote's checked bytes of those whose
    record here is missing or damaged (to write); one read of the remote per generation.
    A commit not here is read from the remote only to walk through it, unless a commit here
    needs it (a parent or basis: the index left it out, its record damaged here)."""
    here: list[Commit] = []
    pending: dict[str, bytes] = {}
    seen: set[str] = set()
    needed: set[str] = set()  # the parents and bases of the commits of `here`
    frontier = tips
    while frontier:
        seen.update(frontier)
        start = len(here)
        found: dict[str, Commit] = {}
        ask = []
        _refuse_links(repo.objects, frontier)
        for cid in frontier:
            commit = _local_commit(repo, cid)
            if commit is None:
                ask.append(cid)
            else:
                found[cid] = commit
                here.append(commit)
        got = transport.read_many(object_path(c) for c in ask) if ask else {}
        for cid in ask:
            ours = cid in arriving or repo.has_commit(cid) or cid in needed
            data = got.get(object_path(cid))
            if data is None or hash_bytes(data) != cid:
                if ours:
                    out.unrestored[cid] = LACKING_THERE if data is None else CORRUPT_THERE
                if cid in arriving:
                    found[cid] = arriving[cid]
                    here.append(arriving[cid])
                continue
            commit = _parsed(cid, data)
            if commit is None:
                continue
            found[cid] = commit
            if ours:
                pending[cid] = data
                here.append(commit)
        needed.update(p for c in here[start:] for p in c.parents_and_basis)
        frontier = sorted({p for c in found.values() for p in c.parents_and_basis} - seen)
    return here, pending


def _local_commit(repo: Repository, cid: str) -> Commit | None:
    """The record of commit `cid` here, where its object is here and intact."""
    try:
        return _parsed(cid, repo.objects.get_bytes(cid))
    except (MissingObjectError, CorruptObjectError):
        return None


def _parsed(cid: str, data: bytes) -> Commit | None:
    try:
        return Commit.from_json(cid, json.loads(data))
    except (MemstoreError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # a tensor a ref names, say: no history to walk, no object it needs


def _refuse_links(objects: ObjectStore, oids: Iterable[str], objects_too: bool = False) -> None:
    """UnsafePathError where the object folder or the fan-out folder of an object of `oids`
    (with `objects_too`, the object's own path) is a symbolic link, or the object's path a
    folder: refetch reads nothing through a link, and writes nothing once one is found (the
    writer refuses a link or a folder too, but only when it comes to it, after the objects
    before it were written)."""
    if not isinstance(objects, DiskObjectStore):
        return
    what = ": refetch wrote nothing"
    refuse_link(objects.root, what)
    paths = [objects.path(o) for o in oids]
    for folder in sorted({p.parent for p in paths}):
        refuse_link(folder, what)
    for path in paths if objects_too else []:
        refuse_link(path, what)
        if path.is_dir():  # the writer cannot rename a file over it, and deletes no folder
            raise UnsafePathError(f"{path} is a folder where an object belongs{what}; "
                                  "memstore does not delete a folder (remove it, then fetch "
                                  "with --refetch again)")


def _restore(repo: Repository, transport: Transport, bad: list[str], out: Refetched) -> None:
    """Writes each object of `bad` from the remote, where its copy there hashes to its name
    (transfer.arrivals, a fetch's own reader); the others go to `out.unrestored`."""
    sizes = remote_sizes(transport, bad)
    out.unrestored.update({o: LACKING_THERE for o in bad if o not in sizes})
    for oid, why in arrivals(repo, transport, [o for o in bad if o in sizes], sizes,
                             "refetch"):
        if why is not None:
            out.unrestored[oid] = why
        else:
            out.restored.append(oid)
            out.bytes += sizes[oid]
