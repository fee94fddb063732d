"""Moving objects between a repository and a remote: only what the other side lacks, in
batches, with a progress bar counting bytes, and every object re-hashed on arrival.

Going up, an object is read with its hash checked (a corrupt local object is never
pushed) and the remote's listing of the objects' fan-out folders says which are there
already (and whole: a size that differs is written again). Coming down, an object whose
bytes do not hash to its name is refused, naming it, and a file already here at the name
of an object to fetch is hashed, a damaged one fetched again; the objects a failed fetch
had newly written are removed again (`discard`), so a refused fetch leaves nothing behind.

Small objects move in batches, whole (concurrently where the store allows); an object
larger than a chunk (8 MiB) moves alone, a chunk at a time, hashed as it passes: coming
down, into a temporary file of the object store renamed into place only when the hash
matches (`ObjectStore.put_stream`); going up, from the local file to the store's streaming
write, which a hash that does not match aborts before the object appears
(`Transport.put_stream`). Memory stays at a batch of small objects or a chunk, whatever
an object's size."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..editing.progress import progress
from ..errors import MemstoreError
from ..store.commits import Commit
from ..store.history import ancestors_of, graph, unreached
from ..store.maintenance import rehash
from ..store.objects import CHUNK_BYTES, HashMismatchError, hash_bytes
from ..store.repository import Repository
from ..store.schema import DamagedIndexError
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


def reachable(repo: Repository, tips: Iterable[str],
              arriving: dict[str, Commit] | None = None,
              held: Iterable[str] = ()) -> list[Commit]:
    """Every commit reachable from `tips` (parents and basis), from the local records and
    from `arriving` (commits fetched, not yet indexed), short of the commits the other side
    holds with all they reach: those of `held` and their ancestors (the walk stops there).
    Those ancestors come from the index's rows (one query); each one the walk stops at is
    then checked to be one by the records (a commits row naming a parent its record lacks,
    damage fsck names, made a push leave out a commit the remote lacked, and move the
    remote's branch onto it: refused, as a writer's walks refuse it)."""
    held = list(held)
    have = ancestors_of(graph(repo.db), held) if held else set()
    seen: dict[str, Commit] = {}
    met: set[str] = set()
    stack = list(tips)
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        if cid in have:
            met.add(cid)
            continue
        commit = arriving[cid] if arriving and cid in arriving else repo.get_commit(cid)
        seen[cid] = commit
        stack.extend(commit.parents_and_basis)
    if met and unreached(repo.store, held, met):  # (a damaged row on the way raises first)
        raise DamagedIndexError("the index's commits rows name ancestors their records do "
                                "not; run `memstore fsck --repair`")
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


def streamed(size: int) -> bool:
    """Whether an object of `size` bytes moves alone, a chunk at a time."""
    return size > CHUNK_BYTES


def batches(oids: list[str], sizes: dict[str, int]) -> Iterator[list[str]]:
    """`oids` in order, in batches of at most BATCH_OBJECTS objects and BATCH_BYTES bytes;
    an object to be `streamed` is a batch of its own."""
    batch: list[str] = []
    total = 0
    for o in oids:
        if batch and (len(batch) >= BATCH_OBJECTS or total + sizes[o] > BATCH_BYTES
                      or streamed(sizes[o])):
            yield batch
            batch, total = [], 0
        batch.append(o)
        total += sizes[o]
        if streamed(sizes[o]):
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def counted(chunks: Iterable[bytes], bar) -> Iterator[bytes]:
    """The chunks, each counted on the progress bar as it passes."""
    for chunk in chunks:
        yield chunk
        bar.update(len(chunk))


def byte_bar(total: int, desc: str):
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
    with byte_bar(total, desc) as bar:
        for batch in batches(missing, sizes):
            if streamed(sizes[batch[0]]):  # read, hashed and written a chunk at a time
                transport.put_stream(object_path(batch[0]),
                                     counted(repo.objects.chunks(batch[0]), bar))
                continue
            transport.put_many({object_path(o): repo.objects.get_bytes(o) for o in batch})
            bar.update(sum(sizes[o] for o in batch))
    transport.flush()
    return Moved(len(set(commits) & set(missing)), len(missing), total)


def corrupt_remote(oid: str, label: str) -> CorruptRemoteObjectError:
    return CorruptRemoteObjectError(
        f"object {oid} from {label} is corrupt (its content does not match its name); "
        "refused, nothing was fetched (run `memstore fsck` on the remote)")


def lacking(oid: str, label: str) -> RemoteError:
    return RemoteError(f"{label} lacks object {oid}, which its history needs (a damaged "
                       "remote: run `memstore fsck` on it); nothing was fetched")


def accept(repo: Repository, oid: str, data: bytes | None, label: str) -> None:
    """Stores an object that arrived from `label`, after checking it hashes to its name."""
    if data is None:
        raise lacking(oid, label)
    if hash_bytes(data) != oid:
        raise corrupt_remote(oid, label)
    repo.objects.put_bytes(data)


LACKING_THERE = "not on the remote"
CORRUPT_THERE = "corrupt on the remote too"


def arrivals(repo: Repository, transport: Transport, oids: list[str], sizes: dict[str, int],
             desc: str) -> Iterator[tuple[str, str | None]]:
    """Each object of `oids` (listed on the remote with `sizes`) read from the remote,
    checked against its name and stored: `(oid, None)` once it is, else `(oid, why)`,
    LACKING_THERE (gone since it was listed) or CORRUPT_THERE (nothing stored). Small
    objects are read in batches; a large one a chunk at a time, hashed as it is written to
    a temporary file of the object store, renamed into place only when the hash matches
    (else removed). A progress bar counts the bytes."""
    with byte_bar(sum(sizes[o] for o in oids), desc) as bar:
        for batch in batches(oids, sizes):
            if streamed(sizes[batch[0]]):
                oid = batch[0]
                chunks = transport.read_chunks(object_path(oid))
                if chunks is None:
                    yield oid, LACKING_THERE
                    continue
                try:
                    repo.objects.put_stream(oid, counted(chunks, bar))
                except HashMismatchError:
                    yield oid, CORRUPT_THERE
                    continue
                yield oid, None
                continue
            got = transport.read_many(object_path(o) for o in batch)
            for oid in batch:
                data = got.get(object_path(oid))
                if data is None:
                    yield oid, LACKING_THERE
                elif hash_bytes(data) != oid:
                    yield oid, CORRUPT_THERE
                else:
                    repo.objects.put_bytes(data)
                    yield oid, None
            bar.update(sum(sizes[o] for o in batch))


def download(repo: Repository, transport: Transport, oids: Iterable[str], label: str,
             written: list[str], desc: str = "fetch") -> Moved:
    """Stores the objects of `oids` this repository lacks or holds damaged, each verified;
    appends the ids written where there was no file to `written` (for `discard` if the
    fetch fails later: a damaged copy written again is kept). A file already at an
    object's name is hashed, not trusted by its name (a damaged copy that `fsck --repair`
    left under a commit it left out, say): only those of `oids`, the objects this
    transfer was about to write."""
    oids = set(oids)
    present = {o for o in oids if repo.objects.contains(o)}
    gone, damaged = rehash(repo.objects, present) if present else (set(), set())
    missing = sorted((oids - present) | gone | damaged)
    sizes = remote_sizes(transport, missing)
    for o in missing:
        if o not in sizes:
            raise lacking(o, label)
    for oid, why in arrivals(repo, transport, missing, sizes, desc):
        if why is not None:
            raise (lacking if why == LACKING_THERE else corrupt_remote)(oid, label)
        if oid not in damaged:
            written.append(oid)
    return Moved(0, len(missing), sum(sizes.values()))


def discard(repo: Repository, written: list[str]) -> None:
    """Removes objects a failed fetch wrote (none of them is indexed or referenced yet: the
    fetch holds the repository lock and checked that each was absent before)."""
    for o in written:
        repo.objects.delete(o)
