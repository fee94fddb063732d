"""git's config, read with `git config` where memstore runs: the author's user.name and
user.email (store.author), the signing settings git supplies (store.signing). A config git
cannot read stops memstore as it stops git, never read as unset."""
from __future__ import annotations

import shutil
import subprocess

from ..errors import ValidationError

TIMEOUT = 10  # seconds git config may take: a git that does not answer is not read as unset


class GitConfigError(ValidationError):
    """git's config cannot be read (a malformed file): git stops on it, and so does every
    memstore command that reads it, rather than read its settings as unset."""


def read(key: str, *options: str) -> str | None:
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
