"""Immutable, content-addressed objects: the bytes of every tensor and record of a repository.

An object's id is the sha256 of its bytes; on disk it lives at `objects/ab/cdef…`. Tensors
are stored as safetensors (never pickle) and records as canonical JSON, both with
deterministic bytes, so equal content always gets the same id and is stored once.

`DiskObjectStore` writes each object to a temporary file in its final directory, fsyncs it,
renames it into place and fsyncs the directory (`write_durably`, which folder remotes use
too; a fetch fsyncs each directory once, before the index names what it wrote:
`folders_synced_once`): a crash leaves either the whole object or nothing under its name
(at worst a stray temporary file `.tmp-<host>-<pid>-<random>`, memstore/leftovers.py). A
process killed outright cannot remove its own: the next write into the same fan-out
directory (the first write into each that a store makes: no write lists more) removes those
of dead processes of this host, and gc removes them too, with any `.tmp-` file not named so
(an earlier memstore's); neither ever touches a live process's, another host's, a link or a
folder. An object that arrives in chunks (a fetch) is hashed as it is written
(`put_stream`) and renamed into place only when it hashes to its name; one that leaves in
chunks (a push) is hashed as it is read (`chunks`): memory stays at one chunk, whatever the
object's size.
`MemoryObjectStore` keeps objects in a dict, for fast tests."""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import leftovers
from ..errors import MemstoreError, ValidationError

if TYPE_CHECKING:  # torch is imported where tensors are read or written, not before
    import torch

OBJECT_ID = re.compile(r"[0-9a-f]{64}\Z")  # \Z, not $: no trailing newline
TEMP_PREFIX = ".tmp-"  # + <host>-<pid>-<random> (leftovers.temp_name)
CHUNK_BYTES = 8 * 2**20  # what a streamed object is read, hashed and written by
# Fixed metadata, so that equal tensors always serialise to equal bytes.
TENSOR_METADATA = {"format": "pt"}


class MissingObjectError(MemstoreError):
    """An object the repository refers to is not in the object store."""


class UnsafePathError(MemstoreError):
    """A path memstore would write or delete through is a symbolic link (or not what it
    should be): it could lead outside the repository, so nothing is done."""


class CorruptObjectError(MemstoreError):
    """An object's bytes no longer match its name."""


class HashMismatchError(CorruptObjectError):
    """Bytes read or written a chunk at a time do not hash to the object's name."""


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corrupt_message(oid: str) -> str:
    return f"object {oid} is corrupt (its content does not match its name)"


def folder_message(oid: str, path: Path) -> str:
    """fsck's and fsck --repair's line for a folder at an object's path: no content to
    match or not, and one that memstore leaves to the user (it deletes no folder)."""
    return (f"object {oid}: {path} is a folder where an object belongs; memstore does not "
            "delete a folder: remove it")


def verified(chunks: Iterable[bytes], oid: str) -> Iterator[bytes]:
    """The chunks of `chunks`, hashed as they pass; CorruptObjectError after the last one
    when they do not hash to `oid` (so that a writer consuming them never finishes a
    corrupt object: it is given the error before it would rename or commit)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
        yield chunk
    if h.hexdigest() != oid:
        raise HashMismatchError(corrupt_message(oid))


def hash_chunks(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def file_chunks(f: Any, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The content of the open binary file `f`, `size` bytes at a time (closed at the end)."""
    with f:
        while chunk := f.read(size):
            yield chunk


def check_object_id(oid: str) -> str:
    if not isinstance(oid, str) or not OBJECT_ID.match(oid):
        raise ValidationError(f"not an object id: {oid!r}")
    return oid


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: sorted keys, compact separators, UTF-8, finite numbers only."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValidationError(f"cannot store as JSON: {e}") from e
    return text.encode("utf-8")


def plain(value: Any, where: str = "value") -> Any:
    """`value` made JSON-ready: numpy/torch scalars become numbers, tuples lists, int keys
    strings, and NaN/inf the strings "nan"/"inf"/"-inf" (a failed metric must not lose a
    commit). Anything else (a tensor) is refused with a message naming `where`."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return plain(value.item(), where)
    raise ValidationError(f"{where}: cannot store a {type(value).__name__} as JSON")


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """Deterministic safetensors bytes: keys sorted, tensors contiguous on the CPU, fixed
    metadata. The bytes (and so the id) depend only on names, dtypes, shapes and values."""
    from safetensors.torch import save as save_safetensors

    ordered = {k: tensors[k].detach().to("cpu").contiguous().clone() for k in sorted(tensors)}
    return save_safetensors(ordered, metadata=TENSOR_METADATA)


def tensors_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as load_safetensors

    return load_safetensors(data)


class NotOwnFileError(Exception):
    """A path that is not a regular file of its own; `what` it is instead."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is {what}")
        self.what = what


def open_own_file(path: Path) -> BinaryIO:
    """`path` opened for reading where it is a regular file of its own: a symbolic link in
    its place is not followed (it could lead anywhere), and a FIFO, a device or a folder is
    refused rather than read (a read would block or never end): NotOwnFileError naming
    which; FileNotFoundError; another OSError as it comes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except IsADirectoryError:
        raise NotOwnFileError(path, "a directory") from None
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise NotOwnFileError(path, "a symbolic link") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotOwnFileError(path, "a directory" if stat.S_ISDIR(mode)
                              else "not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class ObjectStore(ABC):
    """Where a repository keeps its objects. Subclasses store and fetch raw bytes; the
    helpers here turn tensors and records into bytes."""

    @abstractmethod
    def put_bytes(self, data: bytes) -> str:
        """Store `data` (a no-op if already present); returns its id."""

    @abstractmethod
    def _read(self, oid: str) -> bytes:
        """The stored bytes of `oid`; MissingObjectError if absent."""

    @abstractmethod
    def contains(self, oid: str) -> bool: ...

    @abstractmethod
    def iter(self) -> Iterator[str]:
        """The ids of all stored objects."""

    @abstractmethod
    def delete(self, oid: str) -> None:
        """Remove `oid` (a no-op if absent)."""

    @abstractmethod
    def size(self, oid: str) -> int: ...

    _new: list[str] | None = None  # objects stored for the first time, while recorded

    def _stored_new(self, oid: str) -> None:
        if self._new is not None:
            self._new.append(oid)

    @contextmanager
    def folders_synced_once(self) -> Iterator[None]:
        """Inside the block, an object's fan-out folder is not fsynced after each object
        renamed into it, but once each when the block ends (a fetch: before the index
        names them; on an error too: a refetch's restores are kept); each object file is
        still fsynced before its rename. Here
        (in memory) nothing is synced."""
        yield

    @contextmanager
    def recording_new(self) -> Iterator[list[str]]:
        """The ids of the objects stored for the first time inside the block (not those
        already present, nor a damaged copy written again), in the list it yields."""
        outer, self._new = self._new, []
        try:
            yield self._new
        finally:
            new, self._new = self._new, outer
            if outer is not None:
                outer.extend(new)

    def head(self, oid: str, n: int) -> bytes:
        """The first `n` bytes of `oid` (unchecked: for telling kinds of objects apart)."""
        return self._read(check_object_id(oid))[:n]

    def get_bytes(self, oid: str, verify: bool = True) -> bytes:
        """The bytes of `oid`. With `verify`, a copy whose hash no longer matches its name
        raises CorruptObjectError instead of handing back wrong weights."""
        data = self._read(check_object_id(oid))
        if verify and hash_bytes(data) != oid:
            raise CorruptObjectError(f"{corrupt_message(oid)}; run `memstore fsck`")
        return data

    def chunks(self, oid: str, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The bytes of `oid`, `size` at a time, verified: CorruptObjectError after the last
        chunk when they do not hash to `oid` (a push never completes a corrupt object)."""
        data = self._read(check_object_id(oid))  # a disk store reads its file chunk by chunk
        try:
            yield from verified((data[i:i + size] for i in range(0, len(data), size)), oid)
        except HashMismatchError:
            raise HashMismatchError(f"{corrupt_message(oid)}; run `memstore fsck`") from None

    def put_stream(self, oid: str, chunks: Iterable[bytes]) -> str:
        """Stores the object `oid` whose bytes come as `chunks`, checked to hash to `oid`
        (CorruptObjectError, and nothing stored, when they do not)."""
        return self.put_bytes(b"".join(verified(chunks, check_object_id(oid))))

    def __contains__(self, oid: str) -> bool:
        return self.contains(oid)

    def __iter__(self) -> Iterator[str]:
        return self.iter()

    def put_tensors(self, tensors: dict[str, torch.Tensor]) -> str:
        return self.put_bytes(tensors_to_bytes(tensors))

    def get_tensors(self, oid: str) -> dict[str, torch.Tensor]:
        return tensors_from_bytes(self.get_bytes(oid))

    def put_json(self, value: Any) -> str:
        return self.put_bytes(canonical_json(value))

    def get_json(self, oid: str) -> Any:
        try:
            return json.loads(self.get_bytes(oid))
        except RecursionError:
            raise ValueError(f"object {oid} is JSON nested too deeply") from None


class MemoryObjectStore(ObjectStore):
    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    def put_bytes(self, data: bytes) -> str:
        oid = hash_bytes(data)
        if oid not in self._objects:
            self._objects[oid] = bytes(data)
            self._stored_new(oid)
        return oid

    def _read(self, oid: str) -> bytes:
        try:
            return self._objects[oid]
        except KeyError:
            raise MissingObjectError(f"object {oid} is missing") from None

    def contains(self, oid: str) -> bool:
        return oid in self._objects

    def iter(self) -> Iterator[str]:
        return iter(sorted(self._objects))

    def delete(self, oid: str) -> None:
        self._objects.pop(oid, None)

    def size(self, oid: str) -> int:
        return len(self._read(oid))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def refuse_link(path: Path, what: str = "") -> None:
    """UnsafePathError if `path` is a symbolic link."""
    if path.is_symlink():
        raise UnsafePathError(f"{path} is a symbolic link{what}; memstore never writes or "
                              "deletes through one (remove it, then run `memstore fsck`)")


def _temp_file(directory: Path) -> tuple[int, Path]:
    """A new file (mode 0600, as mkstemp makes it) named `.tmp-<host>-<pid>-<random>` in
    `directory`, open for writing."""
    for _ in range(100):
        p = directory / leftovers.temp_name(TEMP_PREFIX)
        try:
            return os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), p
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def _temp_files(folder: Path, unowned: bool = False) -> list[Path]:
    """The `.tmp-` files directly in `folder` that a dead process of this host left, and
    with `unowned` those whose names tell no owner; never a live process's, another host's,
    a link or a folder."""
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX))
    except OSError:
        return []
    head = re.escape(TEMP_PREFIX)
    out = []
    for n in names:
        p = folder / n
        if leftovers.owner(n, head) is None:
            if unowned and not p.is_symlink() and p.is_file():
                out.append(p)
        elif leftovers.is_dead_leftover(p, head) and p.is_file():
            out.append(p)
    return out


def remove_dead_temp_files(folder: Path) -> list[Path]:
    """Removes the `.tmp-` files directly in `folder` that a dead process of this host left
    (`_temp_files`); returns those removed."""
    return [t for t in _temp_files(folder) if leftovers.remove(t)]


def write_durably(target: Path, data: bytes | Iterable[bytes], mode: int | None = None,
                  sync_dir: bool = True, temp_dir: Path | None = None) -> None:
    """Writes `target` so that a crash leaves the whole file or nothing under its name: a
    temporary file in its directory (or in `temp_dir`, a folder above it on the same file
    system; either made, and its parent fsynced, if missing), fsynced,
    given `mode`, renamed into place, and the directory fsynced (unless `sync_dir` is
    False: the caller fsyncs it, once for many files, before anything names them). `data`
    is the bytes, or chunks written as they come: an error they raise (`verified`'s, on a
    hash that does not match) removes the temporary file, and nothing is renamed."""
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(target.parent.parent)
    fd, tmp = _temp_file(temp_dir or target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # a write's ENOSPC, EDQUOT, EIO:
            e.filename = str(target)  # name the file, so that it is reported as one line
        raise
    if sync_dir:
        fsync_dir(target.parent)


class DiskObjectStore(ObjectStore):
    """Objects under `root` (`.memstore/objects`). Nothing is written or deleted through a
    symbolic link: `root`, each fan-out directory and each object must be what they seem,
    or the operation is refused (a planted link could point outside the repository)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._cleaned: set[str] = set()  # fan-out directories rid of dead writers' leftovers
        self._unsynced: set[Path] | None = None  # in `folders_synced_once`: to fsync at its end

    @contextmanager
    def folders_synced_once(self) -> Iterator[None]:
        outer, self._unsynced = self._unsynced, set()
        try:
            yield
        except BaseException:
            # what was renamed in is fsynced all the same: a refetch's restores stay
            # whatever fails after them (a failing fetch discards only new objects); an
            # fsync failing here does not hide the error that ended the block
            for folder in sorted(self._unsynced):
                with suppress(OSError):
                    fsync_dir(folder)
            raise
        else:
            for folder in sorted(self._unsynced):
                fsync_dir(folder)
        finally:
            if outer is not None:
                outer |= self._unsynced
            self._unsynced = outer

    def _write(self, target: Path, data: bytes | Iterable[bytes]) -> None:
        """`write_durably`, objects immutable; the folder's fsync left to the end of
        `folders_synced_once` inside one."""
        write_durably(target, data, mode=0o444, sync_dir=self._unsynced is None)
        if self._unsynced is not None:
            self._unsynced.add(target.parent)

    def path(self, oid: str) -> Path:
        check_object_id(oid)
        return self.root / oid[:2] / oid[2:]

    def _fan_out(self, oid: str) -> Path:
        """The fan-out directory of `oid`, checked not to be a link (nor `root`)."""
        refuse_link(self.root)
        fan = self.root / oid[:2]
        refuse_link(fan)
        return fan

    def put_bytes(self, data: bytes) -> str:
        oid = hash_bytes(data)
        target = self._target(oid)
        new = False
        try:
            if target.stat().st_size == len(data) and hash_bytes(self._read(oid)) == oid:
                return oid  # already stored, and sound (a damaged copy is written again)
        except FileNotFoundError:
            new = True
        self._clean(target.parent)
        self._write(target, data)
        if new:
            self._stored_new(oid)
        return oid

    def put_stream(self, oid: str, chunks: Iterable[bytes]) -> str:
        """Writes the chunks to a temporary file beside the object as they come, hashing
        them; renames it into place only when they hash to `oid`, else removes it and
        raises CorruptObjectError. An object already stored whole is kept (the chunks are
        not read)."""
        target = self._target(check_object_id(oid))
        if target.is_file() and self._sound(oid):
            if hasattr(chunks, "close"):
                chunks.close()  # a generator holding a file or a connection open
            return oid
        self._clean(target.parent)
        self._write(target, verified(chunks, oid))
        return oid

    def _clean(self, fan: Path) -> None:
        """Removes from `fan` the temporary files of writers killed outright (dead
        processes of this host), the first time this store writes into it."""
        if fan.name in self._cleaned:
            return
        self._cleaned.add(fan.name)
        remove_dead_temp_files(fan)

    def _target(self, oid: str) -> Path:
        """Where `oid` is written: its fan-out directory made (and checked not to be a
        link), the path checked to be neither a link nor a directory."""
        target = self.path(oid)
        fan = self._fan_out(oid)
        refuse_link(target)
        if target.is_dir():
            raise CorruptObjectError(f"object {oid} is a directory, not a file; run "
                                     "`memstore fsck`")
        if not fan.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            fan.mkdir(exist_ok=True)
            refuse_link(fan)
            fsync_dir(self.root)
        return target

    def _open(self, oid: str) -> BinaryIO:
        """The object's file, where it is a regular file of its own (open_own_file)."""
        try:
            return open_own_file(self.path(oid))
        except FileNotFoundError:
            raise MissingObjectError(f"object {oid} is missing") from None
        except NotOwnFileError as e:
            if e.what == "a directory":
                raise CorruptObjectError(f"object {oid} is a directory, not a file; run "
                                         "`memstore fsck`") from None
            if e.what == "a symbolic link":
                raise CorruptObjectError(f"object {oid} is a symbolic link, which memstore "
                                         "does not read through; run `memstore fsck`") from None
            raise CorruptObjectError(f"object {oid} is not a regular file; run `memstore "
                                     "fsck`") from None

    def _sound(self, oid: str) -> bool:
        try:
            with self._open(oid) as f:
                return hash_chunks(file_chunks(f)) == oid
        except (MissingObjectError, CorruptObjectError):
            return False

    def chunks(self, oid: str, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        try:
            with self._open(oid) as f:
                yield from verified(file_chunks(f, size), oid)
        except HashMismatchError:
            raise HashMismatchError(f"{corrupt_message(oid)}; run `memstore fsck`") from None

    def _read(self, oid: str) -> bytes:
        with self._open(oid) as f:
            return f.read()

    def head(self, oid: str, n: int) -> bytes:
        with self._open(oid) as f:
            return f.read(n)

    def contains(self, oid: str) -> bool:
        return self.path(oid).is_file()

    def is_folder(self, oid: str) -> bool:
        """Whether a folder (not a link to one) stands at `oid`'s path."""
        path = self.path(oid)
        return path.is_dir() and not path.is_symlink()

    def links(self) -> list[Path]:
        """Symbolic links where objects or fan-out directories should be (fsck reports them)."""
        if not self.root.is_dir() or self.root.is_symlink():
            return [self.root] if self.root.is_symlink() else []
        out = []
        for fan in sorted(self.root.iterdir()):
            if fan.is_symlink():
                out.append(fan)
            elif fan.is_dir():
                out.extend(f for f in sorted(fan.iterdir()) if f.is_symlink())
        return out

    def iter(self) -> Iterator[str]:
        if not self.root.is_dir() or self.root.is_symlink():
            return
        for fan in sorted(self.root.iterdir()):
            if len(fan.name) != 2 or not fan.is_dir() or fan.is_symlink():
                continue
            for f in sorted(fan.iterdir()):
                oid = fan.name + f.name
                if OBJECT_ID.match(oid):
                    yield oid

    def delete(self, oid: str) -> None:
        self._fan_out(oid)
        self.path(oid).unlink(missing_ok=True)  # a link itself is removed, never its target

    def size(self, oid: str) -> int:
        """The size of the file at the object's path; a symbolic link's own (never the
        file it names: a link that loops, or names a file outside, is damage to report,
        not to follow)."""
        try:
            return os.lstat(self.path(oid)).st_size
        except FileNotFoundError:
            raise MissingObjectError(f"object {oid} is missing") from None

    def temp_files(self) -> list[Path]:
        """Leftovers of writes that a crash interrupted, for gc: the temporary files of dead
        processes of this host and those whose names tell no owner (never a live process's,
        another host's, a link, nor inside a linked directory)."""
        if not self.root.is_dir() or self.root.is_symlink():
            return []
        return sorted(f for fan in self.root.iterdir() if fan.is_dir() and not fan.is_symlink()
                      for f in _temp_files(fan, unowned=True))
