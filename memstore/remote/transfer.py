"""Moving objects between a repository and a remote: only what the other side lacks, in
batches, with a progress bar counting bytes, and every object re-hashed on arrival.

Going up, an object is read with its hash checked (a corrupt local object is never
pushed) and the remote's listing of the objects' fan-out folders says which are there
already (and whole: a size that differs is written again). Coming down, an object whose
bytes do not hash to its name is refused, naming it; the objects a failed fetch had
already written are removed again (`discard`), so a refused fetch leaves nothing behind."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..editing.progress import progress
from ..errors import MemstoreError
from ..store.commits import Commit
from ..store.objects import hash_bytes
from ..store.repository import Repository
from .layout import OBJECTS, object_path
from .transport import RemoteError, Transport

BATCH_BYTES = 64 * 2**20
BATCH_OBJECTS = 64
FULL_LISTING = 64  # above this many fan-out folders, list all objects at once


class CorruptRemoteObjectError(MemstoreError):
    """An object from a remote does not hash to its name."""


@dataclass
class Moved:
    """What a transfer moved."""

    commits: int = 0
    objects: int = 0
    bytes: int = 0

    def add(self, other: Moved) -> Moved:
        return Moved(self.commits + other.commits, self.objects + other.objects,
                     self.bytes + other.bytes)


def reachable(repo: Repository, tips: Iterable[str]) -> list[Commit]:
    """Every commit reachable from `tips` (parents and basis), from the local records."""
    seen: dict[str, Commit] = {}
    stack = list(tips)
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        commit = repo.get_commit(cid)
        seen[cid] = commit
        stack.extend([*commit.parents, *([commit.basis] if commit.basis else [])])
    return list(seen.values())


def object_ids(commits: Iterable[Commit]) -> set[str]:
    return {o for c in commits for o in c.object_ids()}


def remote_sizes(transport: Transport, oids: Iterable[str]) -> dict[str, int]:
    """Object id → size of those of `oids` on the remote, from listings of their fan-out
    folders (or of all objects, when they spread over many)."""
    wanted = set(oids)
    prefixes = sorted({o[:2] for o in wanted})
    if len(prefixes) > FULL_LISTING:
        listed = {rel.replace("/", ""): size for rel, size in transport.list(OBJECTS).items()}
    else:
        listings = transport.list_many(f"{OBJECTS}{p}/" for p in prefixes)
        listed = {d[len(OBJECTS):-1] + rel: size for d, found in listings.items()
                  for rel, size in found.items()}
    return {o: s for o, s in listed.items() if o in wanted}


def _batches(oids: list[str], sizes: dict[str, int]) -> Iterator[list[str]]:
    batch: list[str] = []
    total = 0
    for o in oids:
        if batch and (len(batch) >= BATCH_OBJECTS or total + sizes[o] > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(o)
        total += sizes[o]
    if batch:
        yield batch


def _bar(total: int, desc: str):
    return progress(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def upload(repo: Repository, transport: Transport, oids: Iterable[str],
           commits: Iterable[str] = (), desc: str = "push") -> Moved:
    """Writes to the remote the objects of `oids` it lacks; returns what moved (counting
    those of them that are `commits`)."""
    oids = set(oids)
    there = remote_sizes(transport, oids)
    sizes = {o: repo.objects.size(o) for o in oids}
    missing = sorted(o for o in oids if there.get(o) != sizes[o])
    total = sum(sizes[o] for o in missing)
    with _bar(total, desc) as bar:
        for batch in _batches(missing, sizes):
            transport.put_many({object_path(o): repo.objects.get_bytes(o) for o in batch})
            bar.update(sum(sizes[o] for o in batch))
    return Moved(len(set(commits) & set(missing)), len(missing), total)


def accept(repo: Repository, oid: str, data: bytes | None, label: str) -> None:
    """Stores an object that arrived from `label`, after checking it hashes to its name."""
    if data is None:
        raise RemoteError(f"{label} lacks object {oid}, which its history needs (a damaged "
                          "remote: run `memstore fsck` on it); nothing was fetched")
    if hash_bytes(data) != oid:
        raise CorruptRemoteObjectError(
            f"object {oid} from {label} is corrupt (its content does not match its name); "
            "refused, nothing was fetched (run `memstore fsck` on the remote)")
    repo.objects.put_bytes(data)


def download(repo: Repository, transport: Transport, oids: Iterable[str], label: str,
             written: list[str], desc: str = "fetch") -> Moved:
    """Stores the objects of `oids` this repository lacks, each verified; appends the ids
    written to `written` (for `discard` if the fetch fails later)."""
    missing = sorted(o for o in set(oids) if not repo.objects.contains(o))
    sizes = remote_sizes(transport, missing)
    for o in missing:
        if o not in sizes:
            accept(repo, o, None, label)
    total = sum(sizes.values())
    with _bar(total, desc) as bar:
        for batch in _batches(missing, sizes):
            got = transport.read_many(object_path(o) for o in batch)
            for o in batch:
                accept(repo, o, got.get(object_path(o)), label)
                written.append(o)
            bar.update(sum(sizes[o] for o in batch))
    return Moved(0, len(missing), total)


def discard(repo: Repository, written: list[str]) -> None:
    """Removes objects a failed fetch wrote (none of them is indexed or referenced yet: the
    fetch holds the repository lock and checked that each was absent before)."""
    for o in written:
        repo.objects.delete(o)
