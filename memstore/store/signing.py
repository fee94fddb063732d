"""Signed commits: who wrote a commit, checked, as git checks it with SSH keys (2.34+).

A commit's id proves its bytes, not who wrote them: anyone who can write to a shared
remote can push a commit naming any author. A signed commit's record holds `signature`,
an SSH signature (`ssh-keygen -Y sign`, namespace "memstore": a memstore signature does
not verify as a git one, nor the reverse) over the record's canonical bytes without that
key; the id covers the signature, so push, fetch and clone carry it as any record.

Who signs: `user.signingkey`, a path to an SSH private key (or a public key whose private
half is in ssh-agent), or git's literal key ("key::ssh-ed25519 AAAA…", or one starting
"ssh-": the public key itself, its private half in ssh-agent), as git's. Who is trusted: `gpg.ssh.allowedSignersFile`, the
allowed-signers file of `man ssh-keygen` ("PRINCIPAL KEYTYPE KEY" a line), as git's.
Whether commands sign: `commit.gpgsign` (`-S` / `--no-gpg-sign` decide for one command).
Each is read from the repository's config (`memstore config KEY VALUE`), else from git's
(`git config`, where the command runs, as store.author reads user.name); git's
commit.gpgsign and user.signingkey only where git's gpg.format is ssh (a git set up to
sign with GPG does not make every memstore commit fail)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time as clock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MemstoreError, ValidationError
from . import config as config_rows
from . import git_config
from .commits import Commit
from .objects import canonical_json

if TYPE_CHECKING:
    from sqlite_utils import Database

    from .repository import Repository

NAMESPACE = "memstore"
FIELD = "signature"  # the record's key
KEY, ALLOWED, GPGSIGN = "user.signingkey", "gpg.ssh.allowedSignersFile", "commit.gpgsign"
REVOKED = "gpg.ssh.revocationFile"  # keys revoked (a KRL or public keys), as git's
KEYS = (KEY, ALLOWED, GPGSIGN, REVOKED)
ROW = "signing"  # the config row: {key: value} of those set with `memstore config`
GOOD, NONE, BAD, NOT_ALLOWED = "good", "none", "bad", "not-allowed"
REPOSITORY, GIT = "repository", "git"  # where a setting was found
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_FINGERPRINT = re.compile(r"\b(SHA256:[A-Za-z0-9+/=]+)")


class SigningError(MemstoreError):
    """No key configured, an unreadable key, ssh-keygen missing or failing."""


@dataclass(frozen=True)
class Verdict:
    """What a commit's signature says: status GOOD, NONE, BAD or NOT_ALLOWED."""

    status: str
    principal: str | None = None
    fingerprint: str | None = None
    # NOT_ALLOWED by a key the allowed-signers file names, on terms that exclude this
    # signature (namespaces="git", ...): ssh-keygen's line saying why
    refused: str | None = None

    @property
    def good(self) -> bool:
        return self.status == GOOD

    def line(self) -> str:
        """One line, as verify-commit and log --show-signature print it."""
        if self.status == GOOD:
            return f'Good "{NAMESPACE}" signature for {self.principal} with key {self.fingerprint}'
        if self.status == NOT_ALLOWED and self.refused is not None:
            return f"Signature by key {self.fingerprint}, which is not allowed: {self.refused}"
        if self.status == NOT_ALLOWED:
            return (f"Signature by key {self.fingerprint}, which is not in the allowed signers "
                    f"({ALLOWED})")
        if self.status == BAD:
            return "BAD signature: it does not match the commit's record"
        return "No signature"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "principal": self.principal,
                "fingerprint": self.fingerprint, "reason": self.refused}


# -- configuration -----------------------------------------------------------------------


def get(db: Database, key: str) -> str | None:
    """A signing setting: the repository's, else git's (as the module says)."""
    return found(db, key)[0]


def found(db: Database, key: str) -> tuple[str | None, str | None]:
    """A signing setting and where it was found: REPOSITORY (`memstore config`), GIT (git's
    config supplied it), or (None, None) where neither sets it."""
    stored = config_rows.get(db, ROW) or {}
    if not isinstance(stored, dict):
        raise MemstoreError(f"the repository's config row {ROW!r} is malformed; set the "
                            "signing settings again (`memstore config KEY VALUE`)")
    if key in stored:  # one set by hand: 5, or a value over two lines, is not passed over
        value = stored[key]  # for git's, which would sign with another key than the one set
        if not isinstance(value, str) or not value.isprintable():
            raise _damaged(key, value)
        return value, REPOSITORY
    if key in (KEY, GPGSIGN) and (git_config.read("gpg.format")
                                  or "openpgp").lower() != "ssh":
        return None, None
    value = git_config.read(key)
    if value is None and key == GPGSIGN and git_config.read(key, "--bool") == "true":
        value = "true"  # git's bare `gpgsign` (no `= VALUE`) is true, its value ""
    if value is not None and not value.isprintable():  # as `memstore config` refuses one
        raise ValidationError(f"git's config {key} holds {value!r}, a character that does "
                              f"not print: set it again (`git config {key} VALUE`)")
    return (value, GIT) if value is not None else (None, None)


def _damaged(key: str, value: Any) -> MemstoreError:
    return MemstoreError(f"the repository's config row {ROW!r} holds {value!r} for {key}; set "
                         f"it again (`memstore config {key} VALUE`)")


def changed(db: Database, key: str, value: str) -> dict[str, Any]:
    """The repository's signing settings with `key` set to `value` ("" unsets it)."""
    if key not in KEYS:
        raise ValidationError(f"unknown signing setting {key!r}; known: {', '.join(KEYS)}")
    if not value.isprintable():  # a newline, a tab, an escape: `config` lists one a line
        raise ValidationError(f"{key}: {value!r} holds a character that does not print; "
                              "give a path or key on one line")
    if key == GPGSIGN and value != "":
        _flag(value, "commit.gpgsign")
    # a row that is no table (found's error says to set them again) starts afresh, where
    # dict() of it was a traceback; in a table, another setting's entry that found refuses
    # (5, null, two lines, set by hand) is refused here too, in its words, not dropped:
    # `config KEY VALUE` of that one sets it again; entries of no signing setting are kept
    row = config_rows.get(db, ROW)
    stored = dict(row) if isinstance(row, dict) else {}
    for k, v in stored.items():
        if k in KEYS and k != key and not (isinstance(v, str) and v.isprintable()):
            raise _damaged(k, v)
    if value == "":
        stored.pop(key, None)
    else:
        stored[key] = (value if key == GPGSIGN or (key == KEY and literal_key(value))
                       else os.path.abspath(os.path.expanduser(value)))
    return stored


def _flag(text: str, where: str) -> bool:
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise ValidationError(f"{where}: {text!r} is not a boolean (true or false)")


def wanted(db: Database, override: bool | str | None) -> bool:
    """Whether a commit written now is signed: `override` (-S True or its KEY,
    --no-gpg-sign False), else commit.gpgsign."""
    if override is not None:
        return override is not False
    value = get(db, GPGSIGN)
    return False if value is None else _flag(value, GPGSIGN)


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise SigningError("ssh-keygen is not installed (it signs and verifies commits: "
                           "install OpenSSH's client)")
    return found


def _configured(db: Database, key: str) -> str:
    value = get(db, key)
    if not value:
        how = ("`memstore config user.signingkey PATH` (an SSH key)" if key == KEY else
               "`memstore config gpg.ssh.allowedSignersFile PATH`")
        raise SigningError(f"no {key} configured: set it with {how}")
    return value


def _path(db: Database, key: str, value: str | None = None) -> Path:
    value = _configured(db, key) if value is None else value
    path = Path(os.path.expanduser(value))
    if not path.is_file() or not os.access(path, os.R_OK):
        raise SigningError(f"{key} {value}: no readable file there")
    return path


def _given_key(override: bool | str | None) -> str | None:
    """The key of -S KEY (git's `-S<keyid>`, `--gpg-sign=<keyid>`), which stands for
    user.signingkey in that command; checked as `config user.signingkey` checks one."""
    if not isinstance(override, str):
        return None
    if not override or not override.isprintable():
        raise ValidationError(f"--gpg-sign: {override!r} is no key: give a path or key on "
                              "one line (-SKEY, --gpg-sign=KEY)")
    return override


def literal_key(value: str) -> str | None:
    """The public key a user.signingkey of git's literal form holds ("key::ssh-ed25519 AAAA…",
    or one starting "ssh-": git's is_literal_ssh_key), whose private half is in ssh-agent;
    None for a path."""
    if value.startswith("key::"):
        return value[len("key::"):]
    return value if value.startswith("ssh-") else None


@contextmanager
def _key_file(db: Database, value: str, where: str = KEY) -> Iterator[tuple[Path, list[str]]]:
    """The key file to hand ssh-keygen and the options it needs: a path's file, or a
    literal key written (as git writes it) into a private temporary folder, removed after,
    with -U (the key is in ssh-agent). `where`: the setting or option that named it."""
    literal = literal_key(value)
    if literal is None:
        yield _path(db, where, value), []
        return
    with tempfile.TemporaryDirectory(prefix="memstore-key-") as tmp:
        path = Path(tmp) / "signing_key.pub"
        path.write_text(literal.strip() + "\n", encoding="utf-8")
        yield path, ["-U"]


def signer(db: Database, override: bool | str | None) -> Callable[[bytes], str] | None:
    """The function that signs a record's payload where commits are signed now (None where
    they are not); its key (`override`'s where it is one, -S KEY: else user.signingkey)
    checked here, before any work."""
    if not wanted(db, override):
        return None
    given = _given_key(override)
    value, where = (given, "--gpg-sign") if given is not None else (_configured(db, KEY), KEY)
    with _key_file(db, value, where) as (key, _):
        keygen = _ssh_keygen()
        r = _run([keygen, "-l", "-f", str(key)], b"")  # a key at all: said before any work
    if r.returncode != 0:
        raise SigningError(f"{where} {value}: not an SSH key ssh-keygen can read ({_said(r)})")

    def sign(payload: bytes) -> str:
        with _key_file(db, value, where) as (key, options):
            r = _run([keygen, "-Y", "sign", "-f", str(key), *options, "-n", NAMESPACE],
                     payload)
        text = r.stdout.decode("ascii", "replace")
        if r.returncode != 0 and b"passphrase" in r.stderr:
            raise SigningError(_needs_passphrase(value))
        if r.returncode != 0 or "BEGIN SSH SIGNATURE" not in text:
            raise SigningError(f"ssh-keygen could not sign with {where} {value}: "
                               f"{_said(r)}")
        return text.strip() + "\n"

    return sign


def _needs_passphrase(value: str) -> str:
    """What to do about a key protected by a passphrase: ssh-keygen reads the passphrase
    from its standard input, which carries the record to sign ("Enter passphrase: …
    incorrect passphrase supplied", terminal or not; git hands it a file and ssh-keygen
    asks the terminal), so memstore signs with such a key through ssh-agent only."""
    public = value if value.endswith(".pub") else f"{value}.pub"
    return (f"{KEY} {value} needs its passphrase, which memstore cannot ask for: add the key "
            f"to ssh-agent (`ssh-add {value.removesuffix('.pub')}`) and point {KEY} at its "
            f"public key (`memstore config {KEY} {public}`)")


def _run(args: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, input=stdin, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise SigningError(f"ssh-keygen failed to run ({e})") from None


def _said(r: subprocess.CompletedProcess[bytes]) -> str:
    lines = [x for x in r.stderr.decode("utf-8", "replace").splitlines() if x.strip()]
    return lines[-1].strip() if lines else f"exit status {r.returncode}"


# -- verifying ---------------------------------------------------------------------------


def payload(record: dict[str, Any]) -> bytes:
    """The bytes a record's signature signs: its canonical JSON without the signature."""
    return canonical_json({k: v for k, v in record.items() if k != FIELD})


def verify(db: Database, record: dict[str, Any]) -> Verdict:
    """The verdict on a commit record (its JSON, read back against its hash), as git finds
    it: the principals of the allowed-signers file whose key made the signature
    (find-principals, one a line: a quoted principal may hold spaces), each tried with
    `verify -I`; failing those, check-novalidate says whether the signature is good at all:
    not, BAD; good, by a key the file lacks or allows on other terms (a `namespaces=` that
    leaves memstore out, a `valid-before` passed at the commit's time), a key revoked in
    gpg.ssh.revocationFile, or with no allowed-signers file set, NOT_ALLOWED (its `refused`
    saying why where it can)."""
    signature = record.get(FIELD)
    if signature is None:
        return Verdict(NONE)
    # none set: no key is allowed (git's "No principal matched"), and log --show-signature
    # still lists the history; one set but not there is refused
    allowed = _path(db, ALLOWED) if get(db, ALLOWED) else None
    keygen = _ssh_keygen()
    data = payload(record)
    refused = None
    at = _verify_time(record.get("time"))
    with tempfile.TemporaryDirectory(prefix="memstore-sig-") as tmp:
        sig = Path(tmp) / "commit.sig"
        sig.write_text(signature, encoding="utf-8")
        found = None if allowed is None else _run(
            [keygen, "-Y", "find-principals", "-s", str(sig), "-f", str(allowed), *at], b"")
        principals = [x for x in found.stdout.decode("utf-8", "replace").splitlines()
                      if x.strip()] if found is not None and found.returncode == 0 else []
        revoked = _revocation(db)
        for principal in principals:
            args = [keygen, "-Y", "verify", "-f", str(allowed), "-I", principal, "-n",
                    NAMESPACE, "-s", str(sig), *at]
            r = _run([*args, *revoked], data)
            if r.returncode == 0:
                return Verdict(GOOD, principal, _fingerprint(r))
            if revoked and _run(args, data).returncode == 0:  # ssh-keygen does not say it
                refused = refused or f"the key is revoked ({REVOKED} {revoked[1]})"
            refused = refused or _why(r)
        # no allowed key made it (or it does not verify): is it a good signature at all?
        r = _run([keygen, "-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig), *at],
                 data)
    if r.returncode != 0:
        return Verdict(BAD)
    if allowed is None:
        refused = (f"no {ALLOWED} is configured (`memstore config {ALLOWED} PATH`: the "
                   "keys trusted)")
    return Verdict(NOT_ALLOWED, None, _fingerprint(r),
                   (refused or "ssh-keygen refused it") if principals or allowed is None
                   else None)


def _revocation(db: Database) -> list[str]:
    """ssh-keygen's -r for gpg.ssh.revocationFile where it is set (git passes it to verify);
    one set but not there is refused, not passed over (git warns and verifies without it:
    a revoked key would be good again)."""
    if not get(db, REVOKED):
        return []
    return ["-r", str(_path(db, REVOKED))]


def _verify_time(when: Any) -> list[str]:
    """ssh-keygen's -Overify-time at the commit's time (its committer's), local time as git
    passes it: a key the allowed-signers file bounds with valid-after/valid-before is judged
    at the time the commit says it was made, so that a key retired since still vouches for
    the commits it signed while it was valid, as git's verify-commit judges them."""
    try:
        text = clock.strftime("%Y%m%d%H%M%S", clock.localtime(float(when)))
    except (TypeError, ValueError, OverflowError, OSError):
        return []
    return [f"-Overify-time={text}"] if len(text) == 14 else []


def _why(r: subprocess.CompletedProcess[bytes]) -> str | None:
    """ssh-keygen's reason for refusing a verify (the line before its last, "Could not
    verify signature.")."""
    lines = [x.strip() for x in r.stderr.decode("utf-8", "replace").splitlines()
             if x.strip() and x.strip() != "Could not verify signature."]
    return lines[-1] if lines else None


def _fingerprint(r: subprocess.CompletedProcess[bytes]) -> str | None:
    m = _FINGERPRINT.search(r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8",
                                                                                  "replace"))
    return m.group(1) if m else None


def verify_commit(db: Database, objects: Any, commit_id: str) -> Verdict:
    """The verdict on commit `commit_id`, its record read back against its hash first (an
    edited record is refused as damaged before its signature is looked at) and parsed as
    a commit record (an object of another kind, or bytes that are no JSON, a ref set to a
    tensor: damage named in one line, not a verdict)."""
    try:
        record = objects.get_json(commit_id)
    except ValueError:  # bytes that are no JSON (UnicodeDecodeError too)
        record = None
    Commit.from_json(commit_id, record)  # CorruptRecordError: not a commit record
    return verify(db, record)


def tip_verified(db: Database, objects: Any, commit_id: str, what: str) -> Verdict:
    """merge/pull --verify-signatures: the commit merged in (the tip only, as git checks
    it) signed by an allowed key, else SigningError naming it and its verdict."""
    verdict = verify_commit(db, objects, commit_id)
    if not verdict.good:
        raise SigningError(f"{what} ({commit_id[:12]}): {verdict.line()}; not merged "
                           "(--verify-signatures)")
    return verdict


def before_merge(repo: Repository, theirs: str, what: str, *, sign: bool | str | None,
                 verify_signatures: bool, ff: str = "allow") -> None:
    """What merge and pull check before their work, as git: nothing where `theirs` is
    merged already (up to date: nothing is merged, git checks no signature and signs
    nothing); else --verify-signatures' tip (`what` names it), and the signing key (-S,
    commit.gpgsign) only where a commit will be written: a fast-forward writes none (nor
    does --ff-only, `ff` "only"), and git's fast-forwards with a key it could not use."""
    repo.check_held(theirs, what, "merge")  # a commit the index lacks: the merge's own line
    ours = repo.head().commit
    if ours is not None and (ours == theirs or repo.is_ancestor(theirs, ours)):
        return
    if verify_signatures:
        tip_verified(repo.db, repo.objects, theirs, what)
    if ours is not None and ff != "only" and not (ff != "never"
                                                  and repo.is_ancestor(ours, theirs)):
        signer(repo.db, sign)
