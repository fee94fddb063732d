"""Who writes a commit: the author recorded in it, as git records one.

`MEMSTORE_AUTHOR` ("Name <email>") names them; else git's `user.name` and `user.email`
(read with `git config`, as a team that keeps its code in git has them set); else the
login and host name ("login <login@host>"), as git falls back. One line of printable text,
at most 200 characters. A commit made before memstore recorded authors has none, and so
does one written again from it (a cherry-pick, rebase or squash): its author is unknown."""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from typing import Any

from ..errors import ValidationError

ENV = "MEMSTORE_AUTHOR"
LONGEST = 200
TIMEOUT = 10  # seconds git config may take: a git that does not answer is not read as unset


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
    name, email = _git("user.name"), _git("user.email")
    if name:
        return check(f"{name} <{email}>" if email else name, "git config user.name")
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        login = f"uid {os.getuid()}"
    return check(f"{login} <{login.replace(' ', '-')}@{socket.gethostname()}>", "login")


class GitConfigError(ValidationError):
    """git's config cannot be read (a malformed file): git stops on it, and so does every
    memstore command that reads it, rather than read its settings as unset."""


def recorded() -> str | None:
    """The author a reflog entry records: `current()`, None where it cannot be recorded
    (commands that write no commit do not refuse on it: cli.main refuses it for those
    that do), but git's config that cannot be read stops the command, as git's."""
    try:
        return current()
    except GitConfigError:
        raise
    except ValidationError:
        return None


def _git(key: str, *options: str) -> str | None:
    """git's config `key` where git has one set (`options`: git config's, `--bool`); None
    where it is not (git config's exit status 1) or where git is not installed. Any other
    status is git refusing its config ("fatal: bad config line 1 in file ~/.gitconfig",
    128): refused in one line in git's words (it read as unset: commits went unsigned and
    the author came from the login); so is a git that cannot run or does not answer in
    TIMEOUT seconds. A value that is no UTF-8 text is refused in one line naming it (it was
    a UnicodeDecodeError traceback)."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        r = subprocess.run([git, "config", *options, "--get", key], capture_output=True,
                           timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:  # (read as unset, it left commits unsigned too)
        raise GitConfigError(f"git's config cannot be read (`git config` did not answer in "
                             f"{TIMEOUT} s)") from None
    except OSError as e:
        raise GitConfigError(f"git's config cannot be read ({git}: {e.strerror or e})") from None
    if r.returncode == 1:  # the key is not set
        return None
    if r.returncode != 0:
        raise GitConfigError(f"git's config cannot be read ({_said(r.stderr, r.returncode)}): "
                             "mend it, as git refuses it too")
    try:
        value = r.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"git's config {key} is not UTF-8 text: set it again (`git "
                              f"config {key} VALUE`)") from None
    return value.strip() or None


def _said(stderr: bytes, status: int) -> str:
    """git's reason, from its last "fatal:" or "error:" line (its warnings left out)."""
    lines = [x.strip() for x in stderr.decode("utf-8", "replace").splitlines() if x.strip()]
    reasons = [x.split(":", 1)[1].strip() for x in lines
               if x.startswith(("fatal:", "error:"))]
    return (reasons or lines or [f"git config exit status {status}"])[-1]
