"""Model-sized objects move a chunk at a time: fetch (and so pull and clone), push and
fsck of a remote never hold a whole large object in memory. Coming down, an object is
hashed as it is written to a temporary file of the object store, renamed into place only
when it matches its name; going up, a local object is hashed as it is read and the store's
write is aborted before the object appears when it does not match.

How much of an object is held at once is checked two ways: every piece of data that goes
through a transport's calls into its store (`Transport._call`: whole files, batches, the
chunks of a stream) is measured on each kind of store, and tracemalloc's peak is measured
around push, fetch and fsck of a folder remote with one object of 40 MiB."""
from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import snapshot
from remote_support import make_repo, tamper
from test_store_support import commit_on_head, fake_result

from memstore import leftovers
from memstore.remote.fetch import fetch
from memstore.remote.fsck import fsck_remote
from memstore.remote.layout import object_path
from memstore.remote.push import push
from memstore.remote.transfer import CorruptRemoteObjectError
from memstore.remote.transport import Transport, open_transport
from memstore.store.objects import (
    CHUNK_BYTES,
    TEMP_PREFIX,
    CorruptObjectError,
    DiskObjectStore,
    hash_bytes,
)
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # s3_server, remote_url, pair, transport

MiB = 2**20


def big_commit(repo: Repository, mib: int):
    """A commit with one object of `mib` MiB (a layer's factors U: d_out × 3 float32)."""
    c = commit_on_head(repo, fake_result(1, layers=(1,), d_out=mib * MiB // 12))
    big = max(c.object_ids(), key=repo.objects.size)
    assert repo.objects.size(big) > max(mib * MiB - 64, CHUNK_BYTES)
    return c, big


@pytest.fixture
def largest(monkeypatch):
    """The largest piece of data read from or written to a store in one call (a whole
    file, a file of a batch, or one chunk of a stream), through `Transport._call`."""
    seen = {"read": 0, "write": 0}

    def sizes(value) -> list[int]:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return [len(value)]
        if isinstance(value, dict):
            return [n for v in value.values() for n in sizes(v)]
        return []

    def noted(chunks):
        for chunk in chunks:
            seen["write"] = max(seen["write"], len(chunk))
            yield chunk

    real = Transport._call

    def call(self, what, fn, *args, **kwargs):
        args = tuple(noted(a) if isinstance(a, Iterator) else a for a in args)
        seen["write"] = max([seen["write"], *(n for a in args for n in sizes(a))])
        out = real(self, what, fn, *args, **kwargs)
        seen["read"] = max([seen["read"], *sizes(out)])
        return out

    monkeypatch.setattr(Transport, "_call", call)
    return seen


def remote_leftovers(url: str) -> list[str]:
    """Temporary files and unfinished multipart uploads on the remote."""
    t = open_transport(url)
    if isinstance(getattr(t, "root", None), Path):
        return [str(p) for p in t.root.rglob(f"{TEMP_PREFIX}*")]
    found = [p for p in t.fs.find(t.root) if p.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)]
    uploads = t.fs.call_s3("list_multipart_uploads", Bucket=t.bucket).get("Uploads", [])
    return found + [u["Key"] for u in uploads]


def damage(path: Path) -> None:
    """Flips the last byte of a file: the damage shows only at the end of a stream."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_large_object_moves_a_chunk_at_a_time(pair, largest):
    """push, fetch and fsck of the remote read and write a 12 MiB object in chunks; a
    corrupt local copy is refused by the push before it appears on the remote."""
    a, b, url = pair
    c, big = big_commit(a, 12)
    good = a.objects.path(big).read_bytes()
    damage(a.objects.path(big))
    with pytest.raises(CorruptObjectError, match=f"object {big} is corrupt"):
        push(a)
    assert object_path(big)[len("objects/"):] not in open_transport(url).list("objects/")
    assert remote_leftovers(url) == []
    a.objects.path(big).write_bytes(good)
    largest.update(read=0, write=0)
    push(a)
    assert 0 < largest["write"] <= CHUNK_BYTES
    assert open_transport(url).list("objects/")[object_path(big)[len("objects/"):]] == len(good)
    assert remote_leftovers(url) == []
    largest.update(read=0, write=0)
    fetch(b)
    assert 0 < largest["read"] <= CHUNK_BYTES
    assert b.resolve("origin/main") == c.id and b.fsck() == []
    assert b.objects.get_bytes(big) == good and b.objects.temp_files() == []
    largest.update(read=0, write=0)
    assert fsck_remote(url) == []
    assert 0 < largest["read"] <= CHUNK_BYTES


def test_a_damaged_large_remote_object_leaves_nothing_behind(pair, largest):
    """The mismatch shows after the last chunk, when the object is all written to its
    temporary file: the fetch is refused in one line naming the object, and the
    repository is as it was, with no temporary file left."""
    a, b, url = pair
    _, big = big_commit(a, 12)
    push(a)
    data = bytearray(a.objects.get_bytes(big))
    data[-1] ^= 0xFF
    tamper(url, object_path(big), bytes(data))
    before = snapshot(b.root)
    largest.update(read=0, write=0)
    with pytest.raises(CorruptRemoteObjectError) as e:
        fetch(b)
    assert str(e.value) == (
        f"object {big} from remote 'origin' ({url}) is corrupt (its content does not match "
        "its name); refused, nothing was fetched (run `memstore fsck` on the remote)")
    assert 0 < largest["read"] <= CHUNK_BYTES
    assert snapshot(b.root) == before and b.refs.all() == {} and b.objects.temp_files() == []
    assert not list((b.root / ".memstore").rglob(f"{TEMP_PREFIX}*"))
    largest.update(read=0, write=0)
    assert f"object {big} is corrupt (its content does not match its name)" in fsck_remote(url)
    assert 0 < largest["read"] <= CHUNK_BYTES


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_object(tmp_path):
    """One object of 40 MiB: push, fetch and remote fsck each peak well below its size
    (reading it whole peaked above it)."""
    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    with a, b:
        _, big = big_commit(a, 40)
        size = a.objects.size(big)
        peaks = {"push": _peak(lambda: push(a)), "fetch": _peak(lambda: fetch(b)),
                 "fsck": _peak(lambda: fsck_remote(url))}
        assert all(p < size / 2 for p in peaks.values()), (size, peaks)
        assert b.objects.size(big) == size and b.fsck() == []


def test_put_stream_hashes_into_an_owner_tagged_temporary(tmp_path):
    """The object store writes a streamed object to `.tmp-<host>-<pid>-<random>` beside
    it and renames it only when it hashes to its name; a mismatch removes the temporary
    and stores nothing."""
    store = DiskObjectStore(tmp_path / "objects")
    data = os.urandom(3 * 1000)
    oid = hash_bytes(data)
    seen = []

    def chunks():
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]
            seen.extend(p.name for p in (store.root / oid[:2]).iterdir())

    with pytest.raises(CorruptObjectError, match=f"object {'0' * 64} is corrupt"):
        store.put_stream("0" * 64, iter([data]))
    assert not store.contains("0" * 64) and store.temp_files() == []
    assert store.put_stream(oid, chunks()) == oid
    assert store.get_bytes(oid) == data and store.temp_files() == []
    assert seen and all(n.startswith(f"{TEMP_PREFIX}{leftovers.owner_tag()}-") for n in seen)
    assert oct(store.path(oid).stat().st_mode & 0o777) == oct(0o444)


def test_streamed_reads_and_writes(transport):
    """`read_chunks` hands a file back in pieces of at most the size asked (None when
    absent); `put_stream` writes chunks as they come, and chunks that raise leave
    nothing under the name (nor a temporary file)."""
    data = os.urandom(100_000)
    transport.put_stream("objects/ab/cd", (data[i:i + 30_000] for i in range(0, len(data),
                                                                            30_000)))
    pieces = list(transport.read_chunks("objects/ab/cd", 40_000))
    assert b"".join(pieces) == data and max(map(len, pieces)) <= 40_000
    assert transport.read_chunks("objects/ab/nothing") is None

    def failing():
        yield data
        raise CorruptObjectError("no")

    with pytest.raises(CorruptObjectError):
        transport.put_stream("objects/ef/gh", failing())
    assert transport.list("objects/") == {"ab/cd": len(data)}
    if isinstance(getattr(transport, "root", None), Path):
        assert not list(transport.root.rglob(f"{TEMP_PREFIX}*"))
    else:
        assert transport.fs.find(transport.root) == [transport.full("objects/ab/cd")]


def test_fsck_repair_of_a_remote_streams_a_large_object_and_never_completes_a_corrupt_one(
        pair, largest):
    """A large object corrupt on the remote is written again a chunk at a time; one corrupt
    here too is not completed there (no temporary file or multipart upload is left)."""
    from memstore.remote.repair import repair_remote

    a, _, url = pair
    _, big = big_commit(a, 12)
    push(a)
    good = a.objects.path(big).read_bytes()
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    tamper(url, object_path(big), bytes(bad))
    damage(a.objects.path(big))
    r = repair_remote(a, url)
    assert r.rewritten == [] and r.corrupt_here == [big] and remote_leftovers(url) == []
    assert f"object {big} is corrupt (its content does not match its name)" in fsck_remote(url)
    a.objects.path(big).write_bytes(good)
    largest.update(read=0, write=0)
    r = repair_remote(a, url)
    assert r.rewritten == [big] and 0 < largest["write"] <= CHUNK_BYTES
    assert fsck_remote(url) == [] and remote_leftovers(url) == []
