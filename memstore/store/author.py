"""Who writes a commit: the author recorded in it, as git records one.

`MEMSTORE_AUTHOR` ("Name <email>") names them; else git's `user.name` and `user.email`
(read with `git config`, as a team that keeps its code in git has them set); else the
login and host name ("login <login@host>"), as git falls back. One line of printable text,
at most 200 characters. A commit made before memstore recorded authors has none, and so
does one written again from it (a cherry-pick, rebase or squash): its author is unknown."""
from __future__ import annotations

import getpass
import os
import socket
from typing import Any

from ..errors import ValidationError
from . import git_config

ENV = "MEMSTORE_AUTHOR"
LONGEST = 200


class Unknown:
    """An author not known: the one of a commit made before memstore recorded authors."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = Unknown()  # write_commit's author for none recorded (None there: this process's)


def kept(original: Any) -> dict[str, Any]:
    """The author and author date that a commit written again from `original` keeps (a
    cherry-pick, rebase or squash, as git's): its author and when they wrote it. Where it
    records no author, the author stays unknown (UNKNOWN: none recorded, whoever writes
    it again is the committer) and the date stays its: a date is never given to someone
    who did not write then (the one who picks is recorded with now, as committer)."""
    return {"author": UNKNOWN if original.author is None else original.author,
            "author_time": original.authored}


def check(author: str, where: str) -> str:
    """`author` when it is one line of printable text, not empty, at most LONGEST long."""
    text = author.strip()
    if not text or len(text) > LONGEST or not text.isprintable():
        raise ValidationError(f"{where}: an author is one line of printable text of 1 to "
                              f"{LONGEST} characters, not {author[:40]!r}")
    return text


def current() -> str:
    """The author of the commits this process writes."""
    if os.environ.get(ENV, "").strip():
        return check(os.environ[ENV], ENV)
    name, email = git_config.read("user.name"), git_config.read("user.email")
    if name:
        return check(f"{name} <{email}>" if email else name, "git config user.name")
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        login = f"uid {os.getuid()}"
    return check(f"{login} <{login.replace(' ', '-')}@{socket.gethostname()}>", "login")


def recorded() -> str | None:
    """The author a reflog entry records: `current()`, None where it cannot be recorded
    (commands that write no commit do not refuse on it: cli.main refuses it for those
    that do), but git's config that cannot be read stops the command, as git's."""
    try:
        return current()
    except git_config.GitConfigError:
        raise
    except ValidationError:
        return None
