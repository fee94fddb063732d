"""The repository's writer lock: fcntl.flock on `.memstore/lock`.

The kernel drops a flock when its holder exits, kill -9 included, so a crash never leaves
a stale lock. The holder writes its pid into the file so that a waiting process can say
whom it waits for. The lock is reentrant within one `RepositoryLock` object: the CLI may
hold it around a whole command while the library's write methods take it again."""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import MemstoreError

WaitCallback = Callable[[str], None]


class LockedError(MemstoreError):
    """Another process holds the repository lock and we were asked not to wait."""


class RepositoryLock:
    def __init__(self, path: str | Path | None, on_wait: WaitCallback | None = None,
                 mode: int = 0o644) -> None:
        """`path` None: a process-local lock (for in-memory repositories). `mode`: of the
        lock file when this process makes it (less the umask)."""
        self.path = Path(path) if path is not None else None
        self.mode = mode
        self.on_wait = on_wait
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._depth > 0

    def holder_pid(self) -> int | None:
        """The pid written by the current (or last) holder, if readable."""
        if self.path is None:
            return None
        try:
            return int(self.path.read_text().strip() or "x")
        except (OSError, ValueError):
            return None

    def acquire(self, wait: bool = True, on_wait: WaitCallback | None = None,
                timeout: float | None = None) -> None:
        if self._depth:
            self._depth += 1
            return
        if self.path is not None:
            self._fd = self._take(wait, on_wait or self.on_wait, timeout)
        self._depth = 1

    def release(self) -> None:
        if not self._depth:
            raise RuntimeError("releasing a repository lock that is not held")
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @contextmanager
    def __call__(self, wait: bool = True, on_wait: WaitCallback | None = None,
                 timeout: float | None = None) -> Iterator[None]:
        self.acquire(wait, on_wait, timeout)
        try:
            yield
        finally:
            self.release()

    def _take(self, wait: bool, on_wait: WaitCallback | None, timeout: float | None) -> int:
        assert self.path is not None
        try:  # never through a planted link: it would truncate a file outside the repository
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, self.mode)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise MemstoreError(f"{self.path} is a symbolic link; memstore never writes "
                                    "through one (remove it)") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise MemstoreError(f"{self.path} is not a regular file (remove it)")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = self._who()
                if not wait:
                    raise LockedError(
                        f"another memstore process ({who}) is writing to this repository; "
                        "try again when it has finished"
                    ) from None
                if on_wait is not None:
                    on_wait(f"waiting for another memstore process ({who})…")
                self._wait(fd, who, timeout)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _who(self) -> str:
        pid = self.holder_pid()
        return f"pid {pid}" if pid is not None else "pid unknown"

    @staticmethod
    def _wait(fd: int, who: str, timeout: float | None) -> None:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"gave up after {timeout:g}s waiting for another memstore process "
                        f"({who})"
                    ) from None
                time.sleep(0.05)
