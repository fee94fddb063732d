"""A remote store: reading and writing files of the remote layout, and moving a branch by
compare-and-swap, on whatever the URL names.

Three kinds of store, three guarantees for a ref update (the README's table):

    folder (a local or network path, file://)   flock'ed lock file + atomic rename (a
                                                delete: unlink under the lock)
    S3 (s3://)                                  conditional PutObject: If-Match on the ETag
                                                read, If-None-Match: * for a new branch;
                                                conditional DeleteObject: If-Match
    any other fsspec store                      single-writer: the ref is re-read before
                                                and after the write (before a delete); a
                                                concurrent push caught that way is
                                                refused, others are not

Every call into the store goes through `_call`, which turns what the backend raises
(OSError, botocore and aiohttp errors, …) into one RemoteError naming the remote and the
operation, so a user sees one line, never a backend's traceback.

Objects can be model-sized (ΔW factors, statistics: hundreds of MB, GB for a large model):
`read_chunks` and `put_stream` move one a chunk at a time, so that memory does not grow
with an object's size; `read`, `read_many` and `put_many` (whole files, concurrently where
the store allows) are for small ones."""
from __future__ import annotations

import hashlib
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import MemstoreError, ValidationError
from ..store.objects import CHUNK_BYTES
from ..store.refs import HEADS, KINDS, TAGS, check_ref_name, older_name
from . import urls
from .layout import HEAD_FILE, LOCK, RemoteFormatError, damaged_ref_way_out, parse_ref

T = TypeVar("T")


class RemoteError(MemstoreError):
    """The remote store cannot be reached, refuses us, or answered something unusable."""


class StaleRefError(MemstoreError):
    """A remote branch moved between our read and our compare-and-swap."""

    def __init__(self, path: str, now: str | None) -> None:
        super().__init__(f"{path} moved to {now[:12] if now else '(deleted)'}")
        self.path, self.now = path, now


@dataclass(frozen=True)
class RefValue:
    """A remote ref as read: the commit it holds (None: absent or damaged), the token the
    compare-and-swap checks (the S3 ETag; elsewhere the commit itself, or for a damaged ref
    the sha256 of its whole content), `damaged`: the first bytes of a ref that holds no
    commit id (read only where asked for: a `push --delete --force` or a `push --force`
    replacing it), its first MAX_REF_BYTES + 1 only (a ref is read no further for them),
    and `size` its size in bytes (0 where absent)."""

    commit: str | None
    token: Any = None
    damaged: bytes | None = None
    size: int = 0

    @property
    def exists(self) -> bool:
        return self.commit is not None or self.damaged is not None

    @property
    def shown(self) -> str | None:
        """What the ref holds, as a StaleRefError says it: its commit, None where it is
        absent, '(damaged)' where it holds no commit id."""
        return "(damaged)" if self.damaged is not None else self.commit

    @property
    def held(self) -> Any:
        """What a compare-and-swap compares: the commit (None: absent); for a damaged ref
        its token, which stands for its whole content (two damaged refs that share their
        first bytes and their size differ in it)."""
        return ("damaged", self.token) if self.damaged is not None else self.commit


MAX_REF_BYTES = 4096


class Transport(ABC):
    """One remote store; paths are relative to the remote's root ('objects/ab/…')."""

    guarantee = "single-writer"

    def __init__(self, url: str) -> None:
        self.url = url
        # the name the repository gives this remote, where known (connect, fsck): what the
        # way out of a damaged ref names (push takes a name)
        self.remote_name: str | None = None

    # -- what each kind of store implements -------------------------------------------------

    @abstractmethod
    def read(self, path: str) -> bytes | None:
        """The file's bytes; None when it does not exist."""

    @abstractmethod
    def list(self, directory: str) -> dict[str, int]:
        """Every file under `directory`, recursively: relative path → size ({} if absent).
        Partial writes (`.tmp-` names) are left out."""

    @abstractmethod
    def put(self, path: str, data: bytes) -> None:
        """Writes an immutable file so that it appears whole or not at all."""

    @abstractmethod
    def create(self, path: str, data: bytes) -> bool:
        """Writes `path` only if it does not exist; False when it already did."""

    @abstractmethod
    def swap_ref(self, path: str, commit: str, expected: RefValue) -> None:
        """Points ref `path` to `commit` if it still holds what `expected` read; else
        StaleRefError with what it holds now."""

    @abstractmethod
    def delete_ref(self, path: str, expected: RefValue) -> None:
        """Removes ref `path` if it still holds what `expected` read (a commit); else
        StaleRefError with what it holds now (None: removed meanwhile)."""

    @abstractmethod
    def remove(self, path: str) -> None:
        """Removes file `path` (absent: nothing to do): the remote's HEAD once its last
        branch is deleted, so that the next branch pushed becomes the default."""

    def open_read(self, path: str) -> Any:
        """The file open for reading (a binary file object); None when it does not exist.
        Stores that can read a file piecewise override this; here it is read whole."""
        data = self.read(path)
        return None if data is None else io.BytesIO(data)

    def put_stream(self, path: str, chunks: Iterable[bytes]) -> None:
        """`put` of the bytes `chunks` yields, written as they come where the store allows;
        an error the chunks raise (a hash that does not match) leaves nothing at `path`.
        Here they are joined and written whole."""
        self.put(path, b"".join(chunks))

    def read_chunks(self, path: str, size: int = CHUNK_BYTES) -> Iterator[bytes] | None:
        """The file's bytes, `size` at a time, each read through `_call` (one RemoteError
        naming the file for a backend's failure); None when it does not exist."""
        f = self._call(f"read {path}", self.open_read, path)
        if f is None:
            return None
        return self._chunks(path, f, size)

    def _chunks(self, path: str, f: Any, size: int) -> Iterator[bytes]:
        try:
            while chunk := self._call(f"read {path}", f.read, size):
                yield chunk
        finally:
            f.close()

    def read_ref(self, path: str, damaged: bool = False) -> RefValue:
        """The ref at `path`; its token is the commit itself (S3 reads the ETag too). A ref
        that holds no commit id is refused (RemoteFormatError), or with `damaged` read as
        such: commit None, its first bytes in `damaged`, its size, and as its token the
        sha256 of its whole content (hashed as it is read, a chunk at a time: a huge file
        there is never held whole), which the compare-and-swap checks."""
        got = self.read_small(path, hashed=damaged)
        if got is None:
            return RefValue(None)
        data, size, digest = got
        return self.ref_value(path, data, size, None, damaged, digest)

    def read_small(self, path: str, hashed: bool = False) \
            -> tuple[bytes, int, str | None] | None:
        """The first MAX_REF_BYTES + 1 bytes of file `path` (a ref: a large file there is
        never read whole for one), its size and, if `hashed`, the sha256 of its whole
        content (the rest read a chunk at a time, from the same open file); None when it
        does not exist."""
        f = self._call(f"read {path}", self.open_read, path)
        if f is None:
            return None
        digest = None
        try:
            data = self._call(f"read {path}", f.read, MAX_REF_BYTES + 1)
            if hashed:
                h, size = hashlib.sha256(data), len(data)
                while chunk := self._call(f"read {path}", f.read, CHUNK_BYTES):
                    h.update(chunk)
                    size += len(chunk)
                digest = h.hexdigest()
            else:
                size = len(data) if len(data) <= MAX_REF_BYTES \
                    else self._call(f"read {path}", f.seek, 0, io.SEEK_END)
        finally:
            f.close()
        return data, size, digest

    def read_head(self) -> bytes | None:
        """The remote's HEAD file, as `read_small` reads it (one too large for a branch
        name names none); None when there is none."""
        got = self.read_small(HEAD_FILE)
        return None if got is None else got[0]

    def ref_value(self, path: str, data: bytes, size: int, token: Any,
                  damaged: bool, digest: str | None = None) -> RefValue:
        """The RefValue of ref `path` of `size` bytes read as `data` (its first bytes;
        token: the commit, or for a damaged ref `digest`, the hash of its whole content,
        where `token` is None)."""
        try:
            if size > MAX_REF_BYTES:  # as `check_ref_file` refuses it to a fetch
                raise RemoteFormatError(f"remote {self.url}: {path} holds {size} bytes, "
                                        "not a commit id; "
                                        f"{damaged_ref_way_out(path, self.remote_name)}")
            commit = parse_ref(data, f"{self.url}: {path}", path, self.remote_name)
        except RemoteFormatError:
            if not damaged:
                raise
            return RefValue(None, digest if token is None else token, data, size)
        return RefValue(commit, commit if token is None else token, size=size)

    def held_now(self, path: str) -> str | None:
        """What ref `path` holds now, as a StaleRefError says it (RefValue.shown)."""
        return self.read_ref(path, damaged=True).shown

    def check_ref(self, path: str, expected: RefValue) -> None:
        """StaleRefError unless ref `path` still holds what `expected` read (a commit, or
        a damaged ref of the same whole content: RefValue.held)."""
        now = self.read_ref(path, damaged=True)
        if now.held != expected.held:
            raise StaleRefError(path, now.shown)

    # -- shared -------------------------------------------------------------------------------

    def is_folder(self, path: str) -> bool:
        """Whether a folder stands where file `path` belongs (which `read` reads as no
        file): here, files stored below `path/`."""
        return bool(self.list(path + "/"))

    def exists(self) -> bool:
        """Whether anything is stored at the remote's root (a lock file left by a push
        killed before it wrote the marker does not count)."""
        return any(p != LOCK for p in self.list(""))

    def list_many(self, directories: Iterable[str]) -> dict[str, dict[str, int]]:
        """`list` of several directories (concurrently where the store allows)."""
        return {d: self.list(d) for d in directories}

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes]:
        """The bytes of every path that exists (concurrently where the store allows)."""
        out = {}
        for p in paths:
            data = self.read(p)
            if data is not None:
                out[p] = data
        return out

    def put_many(self, files: dict[str, bytes]) -> None:
        for path, data in files.items():
            self.put(path, data)

    def flush(self) -> None:
        """Makes the objects written so far durable, where the store defers it (a folder
        fsyncs their folders once each, not once per object); a write of any other file
        (a ref, a record) flushes first. Here every write is durable when it returns."""

    def branches(self, passed_over: list[str] | None = None,
                 but: Collection[str] = ()) -> dict[str, str]:
        """Branch name → commit of every branch on the remote. With `passed_over`, a branch
        whose name an older memstore accepted (it breaks only the rule against characters
        that do not show as themselves) is left out, its line appended there, instead of
        refusing the whole remote: memstore cannot rename or remove a remote's branch. The
        branches `but` names are not read (a delete's: one may be damaged)."""
        return self.refs(HEADS, passed_over, but)

    def tags(self, passed_over: list[str] | None = None) -> dict[str, str]:
        """Tag name → commit of every tag on the remote (refs/tags/), as `branches`."""
        return self.refs(TAGS, passed_over)

    def refs(self, prefix: str, passed_over: list[str] | None = None,
             but: Collection[str] = ()) -> dict[str, str]:
        """Short name → commit of every ref under `prefix` (refs/heads/ or refs/tags/) but
        those `but` names."""
        kind = KINDS[prefix]
        found = {n: size for n, size in self.list(prefix).items() if n not in but}
        for name, size in list(found.items()):
            why = older_name(name) if passed_over is not None else None
            if why:
                del found[name]
                passed_over.append(f"remote {self.url}: {kind} {name!r} passed over: {why} "
                                   f"(an older memstore accepted it); remove it there, "
                                   f"under {prefix}")
                continue
            self.check_ref_file(prefix, name, size)
        refs = self.read_many(f"{prefix}{name}" for name in found)
        return {p[len(prefix):]: parse_ref(data, f"{self.url}: {p}", p, self.remote_name)
                for p, data in sorted(refs.items())}

    def check_key(self, path: str) -> None:
        """RemoteError unless the store can name `path` (S3: a key of at most 1,024 bytes);
        no limit beyond the refs' own rules (refs.check_storable) elsewhere."""

    def check_room(self, path: str) -> None:
        """RemoteError unless ref `path` (refs/heads/a/b) can be written beside the refs
        the remote has: no ref at a folder of its name (refs/heads/a) and none below it
        (refs/heads/a/b/c), which no folder and no repository can hold beside it. A push
        refuses such a ref before it writes anything (refs.folder_clash); this catches one
        pushed meanwhile, which a folder refused in a line that did not say why ('File
        exists') and S3 stored beside it. (A folder checks under its lock; another store
        just before its write.)"""
        prefix = next(p for p in KINDS if path.startswith(p))
        parts = path[len(prefix):].split("/")
        clash = [prefix + "/".join(parts[:i]) for i in range(1, len(parts))
                 if self.read(prefix + "/".join(parts[:i])) is not None]
        clash += [f"{path}/{rel}" for rel in sorted(self.list(path + "/"))]
        if clash:
            raise RemoteError(f"remote {self.url}: cannot write {path}: there is "
                              f"{clash[0]}, and a ref cannot be both a file and the folder of "
                              "another (pushed meanwhile?); rename one")

    def check_ref_file(self, prefix: str, name: str, size: int) -> None:
        """RemoteFormatError unless `PREFIX/NAME` of `size` bytes can be a branch (or tag):
        a valid name, and small enough to be read for a commit id."""
        kind = KINDS[prefix]
        try:
            name.encode("utf-8")
            check_ref_name(name, kind)
        except (UnicodeEncodeError, ValidationError) as e:
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            why = (e.args[0].split(": ", 1)[-1] if isinstance(e, ValidationError)
                   else "not UTF-8")
            raise RemoteFormatError(f"remote {self.url}: the {kind} name {shown!r} is not "
                                    f"valid ({why}); rename or remove it there") from None
        if size > MAX_REF_BYTES:  # a ref is one id: never read a large file whole for it
            raise RemoteFormatError(f"remote {self.url}: {prefix}{name} holds {size} "
                                    "bytes, not a commit id; "
                                    f"{damaged_ref_way_out(prefix + name, self.remote_name)}")

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except MemstoreError:
            raise
        except Exception as e:  # a backend's failure, whatever its type
            raise self.failed(what, e) from e

    def failed(self, what: str, e: BaseException) -> RemoteError:
        return RemoteError(f"remote {self.url}: cannot {what}: {_describe(e)}")


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return f"access denied ({text})"
    if isinstance(e, FileNotFoundError):
        return f"not found ({text})"
    if isinstance(e, (ConnectionError, TimeoutError)) or "ConnectionError" in type(e).__name__:
        return f"the store is unreachable ({type(e).__name__}: {text})"
    return f"{type(e).__name__}: {text}"


def open_transport(url: str) -> Transport:
    """The transport for `url` (checked first: scheme, installed backend, no password)."""
    url = urls.check(url)
    scheme = urls.protocol(url)
    if scheme in urls.FOLDER_PROTOCOLS:
        from .folder import FolderTransport

        return FolderTransport(url)
    if scheme in urls.S3_PROTOCOLS:
        from .s3 import S3Transport

        return S3Transport(url)
    from .fsspec_store import FsspecTransport

    return FsspecTransport(url)
