"""A remote on any store fsspec reaches (GCS, Azure, SFTP, memory://, …): the generic case.

Such a store offers memstore no compare-and-swap it can rely on, so the remote is
single-writer: a push re-reads the branch just before writing it (a push that started
from an older state is refused) and again just after (a concurrent write that replaced
ours is reported, and the push refused); two pushes whose reads and writes interleave
exactly can still both be told they landed. A delete re-reads the ref just before
removing it: a push landing between that read and the removal is lost. Files are written under a temporary name and
moved into place, which is atomic where the store renames (SFTP, HDFS) and harmless
where it copies (object stores upload whole objects). An object is read and written a
chunk at a time (`open_read`, `put_stream`), through fsspec's file objects.

A temporary name is `.tmp-<host>-<pid>-<random>-<UTC time>-<name>` (leftovers.py): a push
killed outright leaves it behind (fetch and fsck never read it), and on a store shared by
machines only its age can tell it is stale. So the first write of a transport into each
folder (a push's: an object's fan-out folder, refs/heads/ or refs/tags/, the root)
lists that folder and removes the temporaries there older than a day
(leftovers.STALE_AFTER), and those
named `.tmp-<uuid>-<name>` (an earlier memstore's, with no time in the name) whose
modification time, where the store tells one, is older than that; never a younger one,
which a push still running could be writing. That removal is best effort: a store that
lets us write but not delete (or fails to list) makes the write go on."""
from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Iterable
from typing import Any

from .. import leftovers
from ..store.objects import CHUNK_BYTES, TEMP_PREFIX
from .layout import ref_bytes, temp_folder
from .transport import RefValue, RemoteError, StaleRefError, Transport

_HEAD = re.escape(TEMP_PREFIX)
_LEGACY = re.compile(_HEAD + r"[0-9a-f]{32}-.+")  # .tmp-<uuid>-<name>, no owner, no time


# The backends whose own pipe_file(mode="create") is known to refuse a file that is there
# (s3fs: If-None-Match; the memory store: open(mode="xb")). A `mode` parameter alone says
# nothing: HTTP's takes one and PUTs whatever it is, so a remote's HEAD would be
# overwritten by every push and each push told it created it.
_REFUSES_EXISTING = ("fsspec.implementations.memory", "s3fs")


def _exclusive_create(fs: Any) -> bool:
    """Whether the backend of `fs` implements fsspec's `pipe_file(mode="create")` itself
    (s3fs: If-None-Match; the memory store) rather than inheriting fsspec's generic one,
    a check then a write: no better than `_create_checked`, which also writes whole. Only
    a backend of _REFUSES_EXISTING is taken at its word."""
    from fsspec.asyn import AsyncFileSystem
    from fsspec.spec import AbstractFileSystem

    if not any(cls.__module__ == m or cls.__module__.startswith(m + ".")
               for cls in type(fs).__mro__ for m in _REFUSES_EXISTING):
        return False
    if fs.async_impl:
        impl, generic = getattr(type(fs), "_pipe_file", None), AsyncFileSystem._pipe_file
    else:
        impl, generic = getattr(type(fs), "pipe_file", None), AbstractFileSystem.pipe_file
    if impl is None or impl is generic:
        return False
    try:
        return "mode" in inspect.signature(impl).parameters
    except (TypeError, ValueError):
        return False


class FsspecTransport(Transport):
    guarantee = ("single-writer (the branch is re-read before and after the write; "
                 "a concurrent push is refused when seen)")

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import fsspec

        # No cached listings: refs change under our feet. (fsspec shares one instance per
        # process and configuration, connection pool included.)
        self.fs, root = self._call("open the store", fsspec.core.url_to_fs, url,
                                   use_listings_cache=False)
        self.root = root.rstrip("/")
        self._cleaned: set[str] = set()  # folders rid of stale temporaries (`_clean`)

    def full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def read(self, path: str) -> bytes | None:
        return self._call(f"read {path}", self._read, self.full(path))

    def _read(self, full: str) -> bytes | None:
        try:
            return self.fs.cat_file(full)
        except FileNotFoundError as e:
            return self._not_found(e)

    def _not_found(self, e: FileNotFoundError) -> None:
        """What a FileNotFoundError means: the file is absent (S3 tells a missing bucket
        apart, and refuses it)."""

    def open_read(self, path: str) -> Any:
        try:  # no cache: each read of a chunk is one ranged request of that chunk
            return self.fs.open(self.full(path), "rb", block_size=CHUNK_BYTES,
                                cache_type="none")
        except FileNotFoundError as e:
            return self._not_found(e)
        except (FileExistsError, NotADirectoryError):  # a file where a folder of the path
            return None  # is (fsspec's memory store says so): no file there, as `read` finds

    def read_many(self, paths) -> dict[str, bytes]:
        wanted = {self.full(p): p for p in paths}
        if not wanted:
            return {}
        got: dict[str, Any] = self._call("read objects", self.fs.cat, list(wanted),
                                         on_error="return")
        out = {}
        for full, value in got.items():
            path = wanted.get(full) or wanted.get(self.fs._strip_protocol(full))
            if isinstance(value, FileNotFoundError) or path is None:
                continue
            if isinstance(value, BaseException):
                raise RemoteError(f"remote {self.url}: cannot read {path}: {value}") from value
            out[path] = value
        return out

    def list(self, directory: str) -> dict[str, int]:
        return self._call(f"list {directory or 'the remote'}", self._list, directory)

    def list_many(self, directories) -> dict[str, dict[str, int]]:
        directories = list(directories)
        if not self.fs.async_impl or len(directories) < 2:
            return super().list_many(directories)
        from fsspec.asyn import sync

        async def find(d: str) -> dict[str, int]:
            try:
                found = await self.fs._find(self.full(d).rstrip("/"), detail=True)
            except FileNotFoundError:
                found = {}
            return self._relative(d, found)

        async def run() -> list[dict[str, int]]:
            return await asyncio.gather(*(find(d) for d in directories))

        return dict(zip(directories, self._call("list objects", sync, self.fs.loop, run)))

    def _list(self, directory: str) -> dict[str, int]:
        try:
            found = self.fs.find(self.full(directory).rstrip("/"), detail=True)
        except FileNotFoundError:
            return {}
        return self._relative(directory, found)

    def _relative(self, directory: str, found: dict[str, Any]) -> dict[str, int]:
        base = self.full(directory).rstrip("/")
        out = {}
        for name, info in found.items():
            rel = name[len(base):].lstrip("/") if name.startswith(base) else None
            if rel and info.get("type", "file") == "file" \
                    and not rel.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
                out[rel] = int(info.get("size") or 0)
        return out

    def put(self, path: str, data: bytes) -> None:
        self._call(f"write {path}", self._put_via_temp, path, data)

    def _temp(self, path: str) -> str:
        """A fresh temporary name for `path` in its folder (a ref's: refs/heads/ or
        refs/tags/ itself, never below: layout.temp_folder), after removing the stale
        temporaries of that folder (the first time this transport writes there)."""
        folder = self.full(temp_folder(path))
        self._clean(folder)
        name = path.rpartition("/")[2]
        return f"{folder}/{leftovers.stamped_temp_name(TEMP_PREFIX, '-' + name)}"

    def _clean(self, folder: str) -> list[str]:
        """Removes from `folder`, once per transport, the temporaries a push killed
        outright left there: those stamped more than a day ago, and an earlier memstore's
        unstamped ones the store says were modified that long ago. Best effort: what the
        store refuses to list or delete is left. Returns the paths removed."""
        if folder in self._cleaned:
            return []
        self._cleaned.add(folder)
        try:
            names = self.fs.ls(folder, detail=False)
        except Exception:  # noqa: BLE001 - absent (a new fan-out folder), or not ours to list
            return []
        return [path for path in names if self._stale_temporary(path) and self._remove(path)]

    def _stale_temporary(self, path: str) -> bool:
        """Whether `path` is a temporary a push wrote and will never move: stamped more than
        a day ago, or an earlier memstore's unstamped one the store says was modified that
        long ago, or made by a dead process of this host."""
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith(TEMP_PREFIX):
            return False
        if leftovers.dead_owner(name, _HEAD, "-.+") is not None:
            return True
        made = leftovers.made_at(name, _HEAD, "-.+")
        if made is None and _LEGACY.fullmatch(name):
            made = self._modified(path)
        return leftovers.stale(made)

    def _remove(self, path: str) -> bool:
        try:
            self.fs.rm_file(path)
        except Exception:  # noqa: BLE001 - gone meanwhile, or we may write but not delete
            return False
        return True

    def _rmdir(self, path: str) -> bool:
        try:
            self.fs.rmdir(path)
        except Exception:  # noqa: BLE001 - a file, a folder not empty, or no folders here
            return False
        return True

    def _modified(self, path: str) -> float | None:
        """When the store says `path` was last modified; None where it does not tell."""
        try:
            return self.fs.modified(path).timestamp()
        except Exception:  # noqa: BLE001 - not implemented by this store, or gone
            return None

    def _put_via_temp(self, path: str, data: bytes) -> None:
        tmp = self._temp(path)
        self.fs.pipe_file(tmp, data)
        try:
            self.fs.mv(tmp, self.full(path))
        except BaseException:
            self.fs.rm(tmp)
            raise

    def put_stream(self, path: str, chunks: Iterable[bytes]) -> None:
        self._call(f"write {path}", self._put_stream_via_temp, path, chunks)

    def _put_stream_via_temp(self, path: str, chunks: Iterable[bytes]) -> None:
        """The chunks written to a temporary file as they come, moved into place when all
        came (an error they raise removes the temporary file: nothing is moved)."""
        tmp = self._temp(path)
        try:
            with self.fs.open(tmp, "wb", block_size=CHUNK_BYTES) as f:
                for chunk in chunks:
                    f.write(chunk)
            self.fs.mv(tmp, self.full(path))
        except BaseException:
            try:
                self.fs.rm(tmp)
            except FileNotFoundError:
                pass
            raise

    def create(self, path: str, data: bytes) -> bool:
        """Writes `path` only if absent: in one request where the backend offers an
        exclusive create (its own fsspec `pipe_file(mode="create")`: a conditional write,
        or the memory store's check and write in one call), so that of two pushes creating
        the remote at once exactly one is told it did; else read, then write
        (`_create_checked`): two at once can both write it, and both say so (single-writer).
        A backend that reports "it exists" otherwise than with FileExistsError (a 412 of
        its own) is answered by reading the file."""
        if not _exclusive_create(self.fs):
            return self._create_checked(path, data)
        try:
            self._call(f"write {path}", self.fs.pipe_file, self.full(path), data,
                       mode="create")
        except RemoteError as e:
            if isinstance(e.__cause__, FileExistsError) or self.read(path) is not None:
                return False
            raise
        return True

    def _create_checked(self, path: str, data: bytes) -> bool:
        """`create` by reading first, then writing under a temporary name moved into
        place: not exclusive, but whole or absent on every store."""
        if self.read(path) is not None:
            return False
        self.put(path, data)
        return True

    def swap_ref(self, path: str, commit: str, expected: RefValue) -> None:
        self.check_ref(path, expected)
        self.check_room(path)
        self._call(f"write {path}", self._make_room, path)
        self.put(path, ref_bytes(commit))
        after = self.read_ref(path).commit
        if after != commit:  # another push wrote meanwhile: one of the two is lost
            raise StaleRefError(path, after)

    def _make_room(self, path: str) -> None:
        """Clears the way for ref `path` where a folder stands at its name (on a store that
        has folders, or holds files below that name) holding nothing but the temporaries of
        pushes that will never move them (`_stale_temporary`): an earlier memstore wrote a
        ref's temporary beside it, so a push of 'topic/x' killed outright left one in
        refs/heads/topic/, which would keep a branch 'topic' from being written (it was
        moved into that folder instead, and the push refused as if the branch had been
        deleted meanwhile). Anything else there refuses the push, one line."""
        full = self.full(path)
        if not self.fs.isdir(full):
            return
        for found in sorted(self.fs.find(full)):
            if self._stale_temporary(found):
                self._remove(found)
        for folder in sorted(self.fs.find(full, withdirs=True), reverse=True) + [full]:
            self._rmdir(folder)  # where the store has folders: the empty ones left
        if self.fs.isdir(full):
            left = sorted(self.fs.find(full)) or [full]  # a file it holds, else itself
            shown = left[0][len(self.root):].lstrip("/")
            raise RemoteError(f"remote {self.url}: cannot write {path}: a folder stands at "
                              f"its name, holding {shown}; a ref cannot be both a file and "
                              "a folder (remove or rename it there)")

    def delete_ref(self, path: str, expected: RefValue) -> None:
        """Read, compare, remove: a push that lands between the read and the removal is
        lost (single-writer)."""
        self.check_ref(path, expected)
        self._call(f"delete {path}", self._remove_ref, path)

    def remove(self, path: str) -> None:
        try:
            self._call(f"delete {path}", self.fs.rm_file, self.full(path))
        except RemoteError as e:
            if not isinstance(e.__cause__, FileNotFoundError):
                raise

    def _remove_ref(self, path: str) -> None:
        try:
            self.fs.rm_file(self.full(path))
        except FileNotFoundError:  # removed meanwhile
            raise StaleRefError(path, None) from None
