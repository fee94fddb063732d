"""What a memstore process killed outright (SIGKILL, the out-of-memory killer, a power cut)
leaves behind, and how the next run that touches the same place removes it.

Every temporary file or folder memstore writes outside the object store is named
`<prefix><host>-<pid>-<random>[<suffix>]`, so that its owner can be told: a leftover is
removed only when it has exactly such a name (under a prefix its caller gives), is not a
symbolic link, was made on this host (a folder on a network file system may be shared
with other machines, whose pids mean nothing here) and in this pid namespace (containers
on one machine may share its host name, with `--network host`, and a volume, each with pids
of its own) and its pid is no longer alive (`os.kill(pid, 0)` says no such process). A live process's temporary files, another
host's, and anything named otherwise are never touched."""
from __future__ import annotations

import calendar
import os
import re
import secrets
import shutil
import socket
import stat
import time
from pathlib import Path


def _host() -> str:
    """This machine's name as it appears in temporary names: the characters a file name
    can always hold, at most 64 of them; then, where Linux tells it, `.pidns<inode>` of
    the pid namespace the pids in the name belong to (/proc/self/ns/pid)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:64] or "localhost"
    try:
        return f"{name}.pidns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux, or no /proc: the host name alone
        return name


HOST = _host()
_OWNER = r"(?P<host>[A-Za-z0-9._-]+)-(?P<pid>[1-9][0-9]{0,9})-(?P<rand>[0-9a-f]{8})"
_STAMP = "%Y%m%dT%H%M%SZ"  # UTC
STALE_AFTER = 24 * 3600  # seconds: a stamped temporary older than this is a dead writer's


def owner_tag() -> str:
    """`<host>-<pid>`: who makes a temporary name now."""
    return f"{HOST}-{os.getpid()}"


def temp_name(prefix: str, suffix: str = "") -> str:
    """A fresh temporary name `<prefix><host>-<pid>-<random><suffix>`."""
    return f"{prefix}{owner_tag()}-{secrets.token_hex(4)}{suffix}"


def now() -> float:
    """The time a stamped temporary's age is measured at (a function: tests move it)."""
    return time.time()


def stamped_temp_name(prefix: str, suffix: str = "") -> str:
    """A fresh temporary name `<prefix><host>-<pid>-<random>-<UTC time><suffix>`, for a
    store where only its age can tell that it is stale."""
    made = time.strftime(_STAMP, time.gmtime(now()))
    return f"{prefix}{owner_tag()}-{secrets.token_hex(4)}-{made}{suffix}"


def made_at(name: str, head: str, tail: str = "") -> float | None:
    """When the stamped temporary `name` (`<head><host>-<pid>-<random>-<time><tail>`,
    head and tail regular expressions) was made, in seconds since the epoch; None when
    `name` is not such a name."""
    m = re.fullmatch(f"(?:{head}){_OWNER}-(?P<made>[0-9]{{8}}T[0-9]{{6}}Z)(?:{tail})", name)
    if m is None:
        return None
    try:
        return calendar.timegm(time.strptime(m["made"], _STAMP))
    except ValueError:  # a stamp that is no date (month 13)
        return None


def stale(made: float | None) -> bool:
    """Whether a temporary made at `made` (seconds since the epoch; None: unknown) is older
    than STALE_AFTER: its writer is gone, whatever machine it ran on."""
    return made is not None and now() - made > STALE_AFTER


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder (mode 0700, as mkdtemp makes it) named by `temp_name` in `parent`."""
    for _ in range(100):
        p = parent / temp_name(prefix)
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            continue
        return p
    raise FileExistsError(f"no free temporary name in {parent}")


def owner(name: str, head: str, tail: str = "") -> tuple[str, int] | None:
    """(host, pid) of a temporary name `<head><host>-<pid>-<random><tail>` (head and tail
    are regular expressions), or None when `name` is not such a name."""
    m = re.fullmatch(f"(?:{head}){_OWNER}(?:{tail})", name)
    return (m["host"], int(m["pid"])) if m else None


def pid_dead(pid: int) -> bool:
    """Whether no process `pid` exists on this machine (one of another user is alive)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    return False


def dead_owner(name: str, head: str, tail: str = "") -> int | None:
    """The pid of a dead process of this host that made the temporary `name`, else None."""
    who = owner(name, head, tail)
    if who is None or who[0] != HOST or not pid_dead(who[1]):
        return None
    return who[1]


def is_dead_leftover(path: Path, head: str, tail: str = "") -> bool:
    """`path` is a file or folder (not a link) named as a temporary of a dead process of
    this host."""
    if dead_owner(path.name, head, tail) is None:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)


def remove(path: Path) -> bool:
    """Removes a file or a folder and what it holds (never following a link inside); a
    link, or something else, is left. True when it is gone."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    elif stat.S_ISREG(st.st_mode):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return False
    return not os.path.lexists(path)


def dead_leftovers(folder: Path, head: str, tail: str = "") -> list[Path]:
    """The temporaries of dead processes of this host directly in `folder`, by name."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [folder / n for n in names if is_dead_leftover(folder / n, head, tail)]


def clean(folder: Path, head: str, tail: str = "") -> list[Path]:
    """Removes the temporaries of dead processes of this host directly in `folder` (the
    names `<head><host>-<pid>-<random><tail>`); returns those removed."""
    return [p for p in dead_leftovers(folder, head, tail) if remove(p)]
