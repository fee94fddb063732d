"""A remote in a folder: a local disk or a network file system mounted as one (NFS, SMB).

Files are written as the local object store writes them: to a temporary file in the target
directory, fsynced, renamed into place, and the directory fsynced (an object's once for all
the objects a push writes into it, before a ref or a record could name them, not once per
object: `flush`); so a killed push leaves a
whole file or none under its name (at worst a `.tmp-<host>-<pid>-<random>` file, which
nothing reads, and which the first write of a later push into the same folder removes once
its process is dead: as in the object store, only a dead process of this host's, never
another machine's on a shared file system; a ref's is written in refs/heads/ or
refs/tags/ itself, never in a folder below, whose name a ref may need:
layout.temp_folder); an object is read and written a chunk at a
time (`open_read`, `put_stream`). A branch
moves under an exclusive lock on the remote's `lock` file (flock, which the kernel drops
when its holder dies, so a killed push leaves no stale lock): read, compare, rename; a ref
is deleted under it too: read, compare, unlink.
On a network file system the lock is as good as the file system's flock across clients
(NFSv4 and SMB honour it; a mount with local-only locks does not)."""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .. import leftovers
from ..store.lock import RepositoryLock
from ..store.objects import TEMP_PREFIX, fsync_dir, remove_dead_temp_files, write_durably
from .layout import LOCK, OBJECTS, ref_bytes, temp_folder
from .transport import RefValue, RemoteError, Transport

LOCK_TIMEOUT = 60.0  # seconds; the lock is held for a read and a rename


class FolderTransport(Transport):
    guarantee = "compare-and-swap (flock'ed lock file + atomic rename)"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.root = Path(url)
        self._cleaned: set[Path] = set()  # folders rid of dead writers' temporaries
        self._unsynced: set[Path] = set()  # folders of objects renamed in, not yet fsynced

    def _target(self, path: str) -> Path:
        """The file `path` names, refusing a symbolic link on the way: memstore writes only
        inside the folder the user named."""
        cur = self.root
        for part in Path(path).parts[:-1]:
            cur = cur / part
            if cur.is_symlink():
                raise RemoteError(f"remote {self.url}: {cur} is a symbolic link; memstore "
                                  "does not write through links")
        return self.root / path

    def _source(self, path: str) -> Path:
        """The file or folder `path` names, refusing a symbolic link on the way or at its
        end: memstore reads only inside the folder the user named (a link in a hostile
        remote could point at any file of this machine, whose first bytes an error would
        show)."""
        cur = self.root
        for part in Path(path).parts:
            cur = cur / part
            if cur.is_symlink():
                raise RemoteError(f"remote {self.url}: {cur} is a symbolic link; memstore "
                                  "does not read through links")
        return cur

    def read(self, path: str) -> bytes | None:
        return self._call(f"read {path}", lambda: _read(self._source(path)))

    def open_read(self, path: str):
        return _open(self._source(path))

    def read_small(self, path: str, hashed: bool = False) \
            -> tuple[bytes, int, str | None] | None:
        """As Transport's, a folder read as no file (as `read` reads it)."""
        source = self._source(path)
        if self._call(f"read {path}", source.is_dir):
            return None
        return super().read_small(path, hashed)

    def list(self, directory: str) -> dict[str, int]:
        base = self._source(directory)
        if not base.is_dir():
            return {}
        return self._call(f"list {directory or 'the remote'}", _walk, base)

    def is_folder(self, path: str) -> bool:
        """As Transport's, an empty folder too (which keeps `create` from writing there)."""
        return self._call(f"read {path}", self._source(path).is_dir)

    def put(self, path: str, data: bytes) -> None:
        self._call(f"write {path}", self._write, path, data)

    def put_stream(self, path: str, chunks) -> None:
        self._call(f"write {path}", self._write, path, chunks)

    def create(self, path: str, data: bytes) -> bool:
        with self._lock():
            if (self.root / path).exists():
                return False
            self.put(path, data)
            return True

    def swap_ref(self, path: str, commit: str, expected: RefValue) -> None:
        self.flush()  # the objects it names, durable before the lock is taken
        with self._lock():
            self.check_ref(path, expected)
            self.check_room(path)
            self._call(f"write {path}", self._make_room, path)
            self.put(path, ref_bytes(commit))

    def delete_ref(self, path: str, expected: RefValue) -> None:
        with self._lock():
            self.check_ref(path, expected)
            self._call(f"delete {path}", self._unlink, path)

    def remove(self, path: str) -> None:
        with self._lock():
            self._call(f"delete {path}", self._unlink, path)

    def _unlink(self, path: str) -> None:
        """Removes file `path` (a ref, HEAD), then the folders that leaves empty below
        refs/heads/ or refs/tags/ (a deleted 'topic/x' leaves no folder 'topic', which
        would keep a branch 'topic' from being pushed), and fsyncs the folder that changed
        last."""
        target = self._target(path)
        target.unlink(missing_ok=True)
        folder = target.parent
        while len(folder.relative_to(self.root).parts) > 2:
            try:
                folder.rmdir()
            except OSError:  # another ref is in it
                break
            folder = folder.parent
        fsync_dir(folder)

    def _make_room(self, path: str) -> None:
        """Removes the folder that stands at ref `path`'s name where it holds nothing but
        what a push or a delete killed outright leaves (a push of 'topic/x' killed once it
        made refs/heads/topic/, or, before temporaries of refs were written in refs/heads/
        itself, once it wrote its temporary there; a delete of it killed between the
        unlink and the rmdir), which would keep a branch 'topic' from ever being written: empty
        folders and a dead writer's temporaries (`_dead_temporary`). Called under the lock,
        which every write of a ref takes. A folder that holds anything else is refused, one
        line: a branch 'topic/x' pushed meanwhile, a live push's temporary, a link, a file
        memstore did not write."""
        target = self._source(path)
        if not target.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(target, topdown=False):  # no links
            for name in filenames:
                if _dead_temporary(Path(dirpath) / name):
                    (Path(dirpath) / name).unlink(missing_ok=True)
            for name in dirnames:
                try:
                    (Path(dirpath) / name).rmdir()
                except OSError:  # it holds something, or it is a link
                    pass
        try:
            target.rmdir()
        except OSError as e:
            left = _first_entry(target, self.root)
            held = f"holding {left}" if left else f"which cannot be removed ({e.strerror})"
            raise RemoteError(f"remote {self.url}: cannot write {path}: a folder stands at "
                              f"its name, {held}; a ref cannot be both a file and a "
                              "folder (remove or rename it there)") from None
        fsync_dir(target.parent)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """The remote's lock held. Its file gets the mode the umask allows, as the others
        do: every teammate who pushes opens it for writing (made 0644, it refused every
        push but its maker's in a group's shared folder)."""
        if not self._call("read the remote folder", os.path.lexists, self.root) and not \
                self._call("read the folder above it", self.root.parent.is_dir):
            # the remote's own folder is made, not those above it: a typo in a path
            # (/tmp/typo/deep/remote) made a tree of folders nobody meant
            raise RemoteError(f"remote {self.url}: no such folder {self.root.parent} (a first "
                              "`memstore push` creates the remote's own folder, not the "
                              "folders above it: check the path, or create them)")
        self._call("create the remote folder", self.root.mkdir, exist_ok=True)
        lock = RepositoryLock(self._target(LOCK), mode=0o666)
        self._call(f"lock the remote ({LOCK})", lock.acquire, timeout=LOCK_TIMEOUT)
        try:
            yield
        finally:
            lock.release()

    def _write(self, path: str, data: bytes | Iterable[bytes]) -> None:
        target = self._target(path)
        temps = self.root / temp_folder(path)  # a ref's: refs/heads/, never below
        if temps not in self._cleaned:  # the first write into the folder
            self._cleaned.add(temps)
            remove_dead_temp_files(temps)
        # an object's folder is fsynced once, before the first file that can name it (a
        # ref, a statistics record): not once per object, as long as no file names them
        is_object = path.startswith(OBJECTS)
        if not is_object:
            self.flush()
        # the modes the umask allows, as git gives a shared repository's files: a temporary
        # file is made 0600, which would leave a team's shared folder readable by the pusher
        # alone (another user's clone, fetch or pull refused with "Permission denied")
        write_durably(target, data, mode=_umask_file_mode(), sync_dir=not is_object,
                      temp_dir=temps)
        if is_object:
            self._unsynced.add(target.parent)

    def flush(self) -> None:
        """fsyncs the folders of the objects written since the last call, once each."""
        while self._unsynced:
            folder = self._unsynced.pop()
            self._call(f"sync {folder.relative_to(self.root)}", fsync_dir, folder)


def _dead_temporary(path: Path) -> bool:
    """Whether `path` is a temporary file a push wrote and will never move: named
    `.tmp-<host>-<pid>-<random>` (memstore's, and only those), a regular file (not a link),
    and made by a dead process of this host, or, another host's, last modified more than a
    day ago (leftovers.STALE_AFTER)."""
    head = re.escape(TEMP_PREFIX)
    if leftovers.owner(path.name, head) is None:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (leftovers.dead_owner(path.name, head) is not None
                                         or leftovers.stale(st.st_mtime))


def _first_entry(folder: Path, root: Path) -> str | None:
    """The first path that `folder` holds (relative to `root`), if any."""
    for dirpath, dirnames, filenames in os.walk(folder):  # does not follow links
        names = sorted(dirnames + filenames)
        if names:
            return Path(dirpath, names[0]).relative_to(root).as_posix()
    return None


def _umask_file_mode() -> int:
    """0666 less the process's umask: the mode `open` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _read(path: Path) -> bytes | None:
    """The file's bytes; None where there is no file (a folder at a ref's name holds refs
    below it, not one of that name: as git reads it)."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            return None
        if not stat.S_ISREG(mode):  # a pipe or a device would never end
            raise RemoteError(f"{path} is not a regular file")
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _open(path: Path) -> BinaryIO | None:
    """`path` open for reading; None when it does not exist. Opened without blocking, so
    that a pipe is refused (by `fstat`) rather than waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a pipe or a device would never end
            raise RemoteError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _walk(base: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):  # does not follow links
        dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
        for name in filenames:
            if name.startswith(TEMP_PREFIX):
                continue
            p = Path(dirpath) / name
            try:
                size = p.stat().st_size
            except FileNotFoundError:  # removed since os.walk listed it (push --delete),
                if p.is_symlink():  # unlike a dangling link, refused as before
                    raise
                continue
            out[p.relative_to(base).as_posix()] = size
    return out
