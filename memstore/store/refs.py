"""Refs (branches `refs/heads/NAME`, tags `refs/tags/NAME`, remote-tracking branches
`refs/remotes/REMOTE/NAME`, HEAD) and revision parsing.

Refs live in the index's `refs` table: a row holds either `target` (a commit id) or
`symbolic` (the name of another ref: HEAD → refs/heads/main). A branch may be unborn (HEAD
points to it before its first commit). Names follow git's check-ref-format."""
from __future__ import annotations

import re
import shlex
import time
import unicodedata
from collections.abc import Callable, Collection, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from ..errors import MemstoreError, ValidationError
from . import reflog, snapshots
from .objects import OBJECT_ID, ObjectStore
from .schema import DamagedIndexError, not_indexed, parents_loop, parents_of

HEAD = "HEAD"
HEADS = "refs/heads/"
TAGS = "refs/tags/"
KINDS = {HEADS: "branch", TAGS: "tag"}  # what a ref under each prefix is called
REMOTES = "refs/remotes/"  # what a fetch last saw of each remote's branches
_HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 4
SHOWN = 100  # characters of a revision an error quotes


class RefConflictError(MemstoreError):
    """A ref moved between the start of an operation and its end (a lost update refused)."""


@dataclass(frozen=True)
class Head:
    ref: str | None  # the branch ref HEAD points to; None when detached
    commit: str | None  # None on an unborn branch

    @property
    def branch(self) -> str | None:
        return self.ref[len(HEADS):] if self.ref else None


# beyond git's rules: C1 controls, format characters (zero-width, right-to-left overrides:
# a name that reads as another), other spaces and line or paragraph separators (they break
# `log --oneline`'s lines)
UNSEEN = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def name_problem(name: str, unseen: bool = True) -> str | None:
    """Why `name` cannot be a ref's short name (None when it can); `unseen`: with
    memstore's rule against characters that do not show as themselves, beyond git's."""
    if not name:
        return "it is empty"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty path component (or a leading or trailing '/')"
    if name.startswith("-"):
        return "it starts with '-'"
    if ".." in name:
        return "it contains '..'"
    if "@{" in name or name == "@":
        return "it contains '@{' or is '@'"
    for ch in name:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return "it contains a control character"
        if ch == " ":
            return "it contains a space"
        if unseen and unicodedata.category(ch) in UNSEEN:
            return f"it contains U+{ord(ch):04X}, a character that does not show as itself"
        if ch in "~^:?*[\\":
            return f"it contains {ch!r}"
    for part in name.split("/"):
        if part.startswith("."):
            return "a path component starts with '.'"
        if part.endswith(".lock"):
            return "a path component ends with '.lock'"
    if name.endswith("."):
        return "it ends with '.'"
    return None


def names_branch(symbolic: object) -> bool:
    """Whether `symbolic`, HEAD's symbolic value, names a branch: refs/heads/NAME with NAME
    a name git lets a branch have. HEAD naming 'refs/heads/' or 'refs/heads/a b' read as
    that branch, unborn, and the next commit made a branch of that name (fsck then named
    only its reflog entry, and the repair kept the branch)."""
    return isinstance(symbolic, str) and symbolic.startswith(HEADS) and \
        name_problem(symbolic[len(HEADS):], unseen=False) is None


def older_name(name: str) -> str | None:
    """What is wrong with `name` when it breaks only memstore's rule against characters
    that do not show as themselves (a name git accepts, and memstore did before that rule:
    a branch an older memstore pushed to a shared remote); else None."""
    return name_problem(name) if name_problem(name, unseen=False) is None else None


def case_twin(name: str, names) -> str | None:
    """The name among `names` that differs from `name` only by case or by Unicode
    normalization ('café' with é as one character or as e and an accent), if any: a disk
    that ignores case (macOS, Windows) or normalization (macOS) stores both as one file."""
    folded = _caseless(name)
    return next((n for n in sorted(names) if n != name and _caseless(n) == folded), None)


def _caseless(name: str) -> str:
    """`name` as a caseless, normalization-blind comparison sees it (Unicode's canonical
    caseless match: NFD, casefold, NFD)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def twin_difference(name: str, twin: str) -> tuple[str, str]:
    """(how `name` differs from its `case_twin`, the disk that stores both as one file)."""
    if name.casefold() == twin.casefold():
        return "only by case", "a case-insensitive disk (macOS, Windows)"
    how = "only by Unicode normalization (an accented letter written as one character or as two)"
    return how, "a disk that ignores Unicode normalization (macOS)"


def folder_clash(name: str, names) -> str | None:
    """The name among `names` that is a folder of `name` or that `name` is a folder of
    ('a' beside 'a/b'), if any: stored as files refs/heads/NAME, one cannot be both."""
    return next((n for n in sorted(names)
                 if n.startswith(name + "/") or name.startswith(n + "/")), None)


def refspec(name: str, exists: Callable[[str], bool], where: str) -> tuple[str, str]:
    """(HEADS or TAGS, the short name) of the ref `name` names where `exists` looks (here
    or on a remote), by git's rule for a refspec: `refs/heads/NAME` and `refs/tags/NAME`
    say which; a bare name is the branch, else the tag of that name where only that exists;
    both (made by an older memstore) is ambiguous, named `where` in the error."""
    for prefix in (HEADS, TAGS):
        if name.startswith(prefix):
            return prefix, name[len(prefix):]
    branch, tag = exists(HEADS + name), exists(TAGS + name)
    if branch and tag:
        raise ValidationError(f"{name!r} is both a branch and a tag {where}: say "
                              f"refs/heads/{name} or refs/tags/{name}")
    return (TAGS, name) if tag else (HEADS, name)


def dwim(name: str) -> list[str]:
    """The refs a revision's `name` may name, in the order git's rules try them (`git help
    revisions`, <refname>): NAME itself where it starts with refs/, refs/NAME, refs/tags/NAME,
    refs/heads/NAME, refs/remotes/NAME, refs/remotes/NAME/HEAD; so `tags/v1`, `heads/main`,
    `remotes/origin/main` and `refs/heads/main` are revisions, as git's (HEAD: the caller's)."""
    return [name] * name.startswith("refs/") + [
        "refs/" + name, TAGS + name, HEADS + name, REMOTES + name, REMOTES + name + "/HEAD"]


def split_suffix(rev: str) -> tuple[str, str]:
    """`rev` cut before its first `~` or `^`: (`main`, `~2^`) of `main~2^`."""
    cut = min((i for i in (rev.find("~"), rev.find("^")) if i >= 0), default=len(rev))
    return rev[:cut], rev[cut:]


def remote_head(name: object, symbolic: object) -> bool:
    """Whether a ref row `name` holding `symbolic` is a remote's HEAD as git's clone and
    `remote set-head` record it: refs/remotes/R/HEAD naming refs/remotes/R/B, B a name git
    lets a branch have (the only symbolic ref beside HEAD)."""
    if not (isinstance(name, str) and isinstance(symbolic, str) and name.startswith(REMOTES)
            and name.endswith("/HEAD")):
        return False
    prefix = name[:-len("HEAD")]
    branch = symbolic[len(prefix):]
    return len(prefix) > len(REMOTES) + 1 and symbolic.startswith(prefix) and \
        branch != HEAD and name_problem(branch, unseen=False) is None


# what follows git's warning where a full commit id is also a ref's name (git's advice
# objectNameWarning, shortened)
FULL_ID_NOTE = ("a full commit id names that commit, as git reads one, not the {kind} so "
                "named ({ref}): such a {kind} is most likely made by mistake; rename or "
                "delete it")


def _full_id(name: str) -> str | None:
    """The commit id `name` spells out in full (64 hex digits, either case), else None."""
    return name.lower() if len(name) == 64 and _HEX.match(name.lower()) else None


def check_ref_name(name: str, kind: str = "branch") -> str:
    """`name` if it is a valid short branch/tag name (git check-ref-format rules);
    otherwise a ValidationError naming it and the rule it breaks."""
    if not isinstance(name, str):
        raise ValidationError(f"invalid {kind} name {name!r}: not a string")
    problem = name_problem(name)
    if problem is None and name == HEAD:
        problem = "'HEAD' is reserved"
    if problem is None and name.startswith("refs/"):
        problem = "give the short name, without 'refs/'"
    if problem:
        raise ValidationError(f"invalid {kind} name {name!r}: {problem}")
    return name


def _shown(name: str) -> str:
    return name if len(name) <= 60 else name[:60] + "…"


def check_storable(name: str, kind: str = "branch") -> None:
    """ValidationError unless a remote can store the valid ref name `name` as the file
    refs/heads/NAME or refs/tags/NAME (as git's loose refs): no path component over 255
    bytes, the file name limit of a disk (a folder remote refused it, S3 and memory://
    took it: a tag was then on some remotes and not on others)."""
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in name.split("/")):
        raise ValidationError(f"invalid {kind} name {_shown(name)!r}: a path component is "
                              f"longer than 255 bytes (a remote stores a {kind} as a file)")


def branch_ref(name: str) -> str:
    return HEADS + check_ref_name(name, "branch")


def tag_ref(name: str) -> str:
    return TAGS + check_ref_name(name, "tag")


def short_name(ref: str) -> str:
    for prefix in (HEADS, TAGS, REMOTES):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def no_such(kind: str, names: list[str]) -> str:
    """The error of a delete naming refs that do not exist: "no tag 'v9'", "no branches
    'a', 'b'"."""
    plural = ("es" if kind.endswith("ch") else "s") if len(names) > 1 else ""
    return f"no {kind}{plural} {', '.join(map(repr, names))}"


def none_deleted(names: list[str]) -> str:
    """What the error of a refused delete of several refs adds: it deletes all or none
    (every name checked before any ref moves, as memstore's writers refuse before
    changing anything); '' for one."""
    return f"; none of the {len(names)} named was deleted" if len(names) > 1 else ""


class Refs:
    """Reads and writes refs in the index. Writes must run inside a transaction of the
    caller (schema.transaction), so a move is part of the same atomic change as the rows
    it points to; each write also records a snapshot of all refs as an object (the copy a
    lost index is rebuilt from), so a ref move should be a transaction's last write."""

    def __init__(self, db: Database, objects: ObjectStore | None = None) -> None:
        self.db = db
        self.objects = objects
        self._message: str | None = None  # why refs move now: their reflog entries say it
        self._author: tuple[str | None] | None = None  # who moves them (read once)
        self.on_warning: Callable[[str], None] | None = None  # a revision's warnings (git's
        self._warned: set[tuple[str, str]] = set()  # 'log for REF only goes back to DATE')
        # the words the user typed (the CLI: its command line): a full commit id is warned
        # about (FULL_ID_NOTE) where one of them spells it, not where a command resolves
        # an id it read itself (HEAD's, a parent's, a reflog entry's), as git's never does
        self.typed: tuple[str, ...] = ()

    def _changed(self) -> None:
        if self.objects is not None:
            snapshots.record(self.db, self.objects)

    def warn(self, message: str, rev: str) -> None:
        """Says `message` about revision `rev` through `on_warning` (the CLI: stderr), once
        however many times a command reads `rev`; each revision's, as git's."""
        said = (rev, message.split("\n")[0])  # its first line: once, with a note or not
        if self.on_warning is not None and said not in self._warned:
            self._warned.add(said)
            self.on_warning(message)

    @contextmanager
    def reason(self, message: str, *, fallback: bool = False) -> Iterator[None]:
        """The reflog message of the moves made inside ("reset: moving to HEAD~3"); a
        nested one says more than the command around it, unless `fallback`: then only
        where none is given around it (a commit's "commit: MSG" under a merge's)."""
        was = self._message
        if not (fallback and was is not None):
            self._message = message
        try:
            yield
        finally:
            self._message = was

    def log_unmoved(self, name: str, commit: str) -> None:
        """`name` set to `commit`, where it is (`reset` with no REV): git writes no ref
        then, so no entry in its log, but logs it in HEAD's where HEAD is on that branch (a
        detached HEAD: nothing). Inside the transaction."""
        self._log(name, commit, commit, unmoved=True)

    def _who(self) -> str | None:
        """Who moves the refs (author.recorded: None where it cannot be recorded), read
        once, when a logged ref is first changed, before anything is written: git's config
        unreadable stops the command there, as git's, where a move already made would have
        left its snapshot object (a rename's, main deleted, which fsck --repair restored
        after an index loss)."""
        if self._author is None:
            from . import author

            self._author = (author.recorded(),)
        return self._author[0]

    def _log(self, name: str, old: str | None, new: str | None, *,
             unmoved: bool = False) -> None:
        """A reflog entry for a move of `name` (and of HEAD, where HEAD is on that branch,
        as git's), in the transaction that moves it; nothing for a ref git does not log
        (tags) or for an unborn one. `unmoved`: HEAD's entry only (log_unmoved)."""
        if new is None or not reflog.logged(name):
            return
        who = self._who()
        message = self._message or f"update by memstore: {short_name(name)}"
        when = time.time()
        if not unmoved:
            reflog.append(self.db, name, old, new, message, who, when)
        if name.startswith(HEADS):
            head = list(self.db.query("select symbolic from refs where name = ?", [HEAD]))
            if head and head[0]["symbolic"] == name:
                reflog.append(self.db, HEAD, old, new, message, who, when)

    def check_new_name(self, ref: str, ignoring: str | None = None, *,
                       going: Collection[str] = ()) -> None:
        """A branch may not take a tag's name nor a tag a branch's: a short name must name
        one ref, or revision lookup would pick one silently. `ignoring`: a branch ref that
        is about to go (a rename's old name); `going`: tag refs deleted in the same write
        (`fetch --prune-tags` deletes 'v' and makes 'v/x', as git's)."""
        for mine, other, kind in ((HEADS, TAGS, "tag"), (TAGS, HEADS, "branch")):
            if ref.startswith(mine) and self._row(other + ref[len(mine):]) is not None:
                raise ValidationError(f"{ref[len(mine):]!r} is already the name of a {kind}; "
                                      "choose another name")
        for prefix, kind in KINDS.items():
            if ref.startswith(prefix):
                check_storable(ref[len(prefix):], kind)
        if ref.startswith(HEADS):
            self._check_pushable(ref[len(HEADS):], ignoring)
        elif ref.startswith(TAGS):  # a tag is stored as a file refs/tags/NAME too
            self._check_folders(ref[len(TAGS):], TAGS, {ignoring, *going} - {None})

    def _check_pushable(self, name: str, ignoring: str | None = None) -> None:
        """A new branch must fit where a remote stores it, the file refs/heads/NAME (as
        git's loose refs): no component over 255 bytes (the file name limit), and not both
        a branch and the folder of another ('a' and 'a/b'): its push would fail."""
        shown = _shown(name)
        self._check_folders(name, HEADS, {ignoring} - {None})
        other = case_twin(name, [n for n in self.list(HEADS) if HEADS + n != ignoring])
        if other is not None:
            how, disk = twin_difference(name, other)
            raise ValidationError(f"invalid branch name {shown!r}: branch {other!r} exists, and "
                                  f"a remote on {disk} would store both as one file (they "
                                  f"differ {how})")

    def _check_folders(self, name: str, prefix: str, ignoring: set) -> None:
        """Not both a ref and the folder of another under `prefix` (branches 'a' and 'a/b',
        tags 'v' and 'v/x'): stored as files, as git's and a remote's, one cannot be both
        (git: "cannot lock ref 'refs/tags/v/x': 'refs/tags/v' exists"); the refs `ignoring`
        go in the same write."""
        other = self.folder_clash(name, prefix, ignoring)
        if other is not None:
            shown, kind = _shown(name), KINDS[prefix]
            raise ValidationError(f"invalid {kind} name {shown!r}: {kind} {other!r} exists, and "
                                  f"a remote stores a {kind} as a file, so one cannot be both a "
                                  f"{kind} and the folder of another")

    def folder_clash(self, name: str, prefix: str, ignoring: Collection[str] = ()) -> str | None:
        """The ref under `prefix` here that `name` is the folder of, or that is the folder
        of `name` (its name less `prefix`), the refs `ignoring` left out; None where none
        is."""
        full = prefix + name
        # a ref above (a folder of this name) is a ref R with R + '/' starting the name,
        # found among those sorted between the first component and the name: one query
        # with four parameters, where one parameter a level (each prefix written out) took
        # memory in the square of the depth and broke SQLite's limit on parameters (999
        # before SQLite 3.32, 250,000 since) at a name that deep
        clash = [r for r in self.db.query(
            "select name from refs where (name between ? and ? "
            "and substr(?, 1, length(name) + 1) = name || '/') "
            "or substr(name, 1, ?) = ? order by name limit ?",
            [prefix + name.split("/")[0], full, full, len(full) + 1, full + "/",
             len(ignoring) + 1])
            if r["name"] not in ignoring]
        return clash[0]["name"][len(prefix):] if clash else None

    def _row(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from refs where name = ?", [name]))
        return self._sound(rows[0]) if rows else None

    def _sound(self, row: dict[str, Any]) -> dict[str, Any]:
        """`_sound(row)`; where the row holds no commit id (`damaged`) and no snapshot holds
        it sound, `fsck --repair` cannot mend it (it refuses): the refusal names the way
        fsck names then (`hand_set`), not the repair."""
        try:
            return _sound(row)
        except DamagedIndexError as e:
            name = row.get("name")
            if not isinstance(name, str) or self.damaged(name) is None or \
                    self.objects is None or snapshot_holds(self.db, self.objects, name):
                raise
            said = str(e).split("; run `memstore", 1)[0]
            raise DamagedIndexError(f"{said}; no snapshot holds it sound: "
                                    f"{hand_set(self.db, name)}") from None

    def _present(self, name: str) -> bool:
        """Whether ref `name` has a row, sound or not (its reflog is read apart: a branch
        whose row is damaged still has the log that names the way back, `main@{0}`)."""
        return any(self.db.query("select 1 from refs where name = ? limit 1", [name]))

    def read(self, name: str) -> str | None:
        """The commit `name` points to, following a symbolic ref; None if absent/unborn."""
        for _ in range(5):
            row = self._row(name)
            if row is None:
                return None
            if row["symbolic"] is None:
                return row["target"]
            name = row["symbolic"]
        raise MemstoreError(f"ref {name!r}: too many levels of symbolic refs")

    def head(self) -> Head:
        row = self._row(HEAD)
        if row is None:
            raise MemstoreError("the repository has no HEAD; run `memstore fsck`")
        if row["symbolic"] is not None:
            if not names_branch(row["symbolic"]):  # a commit would move a tag (or make one)
                raise DamagedIndexError(f"HEAD names {str(row['symbolic'])[:80]!r}, not a "
                                        "branch; run `memstore fsck`")
            return Head(row["symbolic"], self.read(row["symbolic"]))
        return Head(None, row["target"])

    def list(self, prefix: str) -> dict[str, str]:
        """Short name → commit for every ref under `prefix` (refs/heads/, refs/tags/,
        refs/remotes/NAME/), compared byte for byte: LIKE would take '_' for any character
        and ignore case, so remote my_fork's tracking branches were my-fork's and Origin's
        origin's too (and its fetch, refused, pruned the other's)."""
        rows = self.db.query("select * from refs where substr(name, 1, ?) = ? order by name",
                             [len(prefix), prefix])
        return {r["name"][len(prefix):]: r["target"] for r in map(self._sound, rows)
                if r["symbolic"] is None}

    def all(self, passed: Container[str] = ()) -> dict[str, str]:
        """Every ref that points to a commit, HEAD included when detached; the rows named in
        `passed` (`unreadable`: `reflog expire --all`) left out, unread."""
        rows = [r for r in self.db.query("select * from refs") if r.get("name") not in passed]
        return {r["name"]: r["target"] for r in map(self._sound, rows)
                if r["symbolic"] is None}

    def check(self, mending: str | None = None, *, passing: bool = False) -> None:
        """DamagedIndexError for the first damaged ref row (before a write does any work: it
        ends by recording every ref in a snapshot); `mending`: a row holding no commit id
        (HEAD's: or naming no branch), which the write sets or deletes (`mend`, `mend_head`,
        `drop`): it and other rows of that damage (`damaged`) are passed over (each is
        mended by its own command, which refused on the others). `passing`: a write that
        sets no ref (`reflog expire --all`) passes over the branch, tag and remote-tracking
        rows holding no commit id (`unreadable`), HEAD's still refused."""
        for row in self.db.query("select * from refs order by name"):
            name = str(row.get("name"))
            if passing and name != HEAD and self.damaged(name) is not None:
                continue
            if mending is None or not self.damaged(name) or self.damaged(mending) is None:
                self._sound(row)

    def unreadable(self) -> dict[str, str]:
        """Each branch, tag or remote-tracking row holding no commit id (`damaged`; HEAD's
        aside) → what fsck says of it, the way out named: git's `reflog expire --all` says
        'bad ref' for such a ref, keeps its log and expires the others'."""
        out = {}
        for row in self.db.query("select * from refs order by name"):
            name = row.get("name")
            if not isinstance(name, str) or name == HEAD or self.damaged(name) is None:
                continue
            try:
                self._sound(row)
            except DamagedIndexError as e:
                out[name] = str(e)
        return out

    def head_branch(self) -> str | None:
        """The branch HEAD's row names (None: detached or absent), that branch's row unread
        (`head` refuses one holding no commit id)."""
        row = next(iter(self.db.query("select * from refs where name = ?", [HEAD])), None)
        return None if row is None else _sound(row)["symbolic"]

    def damaged(self, name: str) -> str | None:
        """What branch `name`'s row holds where that is no commit id (the row not
        symbolic), shown as fsck shows it; else None. Only `branch -f NAME REV` writes
        over such a row (`mend`): where no snapshot holds the branch sound, `fsck
        --repair` cannot, and every other command refuses on it. A tag's or a
        remote-tracking branch's too: `tag -d` and `branch -d -r` delete such a row
        (`drop`). HEAD's too, or HEAD naming no branch: `switch` sets it (`mend_head`)."""
        if name != HEAD and not name.startswith((HEADS, TAGS, REMOTES)):
            return None
        rows = list(self.db.query("select * from refs where name = ?", [name]))
        if not rows:
            return None
        symbolic = rows[0]["symbolic"]
        if name == HEAD and symbolic is not None:
            return None if names_branch(symbolic) else repr(str(symbolic)[:80])
        if symbolic is not None:  # a branch, tag or remote-tracking row made symbolic holds
            # no commit id either (origin/HEAD naming origin/main aside): set or deleted so
            return None if remote_head(name, symbolic) else repr(str(symbolic)[:80])
        target = rows[0]["target"]
        if isinstance(target, str) and OBJECT_ID.match(target):
            return None
        return repr(str(target)[:80])

    def mend(self, name: str, commit: str) -> None:
        """Sets branch `name`, whose row holds no commit id (`damaged`), to `commit`, logged
        as a move from nothing (the value it had is unknown). Inside the transaction."""
        if self.damaged(name) is None:
            raise RefConflictError(f"{short_name(name)} was set while this operation ran "
                                   "(another memstore process?); nothing was changed - run "
                                   "it again")
        self.db["refs"].insert({"name": name, "target": commit, "symbolic": None},
                               replace=True)
        self._log(name, None, commit)
        self._changed()

    def mend_head(self, branch: str | None, commit: str | None) -> None:
        """Sets HEAD, whose row holds no commit id or names no branch (`damaged`), on
        branch ref `branch` (on `commit`; None: unborn, nothing logged), or detached at
        `commit` where `branch` is None; logged as a move from nothing (what it was on is
        unknown). Inside the transaction."""
        if self.damaged(HEAD) is None:
            raise RefConflictError("HEAD was set while this operation ran (another memstore "
                                   "process?); nothing was changed - run it again")
        self.db["refs"].insert({"name": HEAD, "target": None if branch else commit,
                                "symbolic": branch}, replace=True)
        self._log(HEAD, None, commit)
        self._changed()

    def drop(self, name: str) -> None:
        """Deletes tag or remote-tracking branch `name`, whose row holds no commit id
        (`damaged`), and its reflog, as a delete does. Inside the transaction."""
        if reflog.logged(name):
            self._who()
        if self.damaged(name) is None:
            raise RefConflictError(f"{short_name(name)} was changed while this operation ran "
                                   "(another memstore process?); nothing was changed - run "
                                   "it again")
        self.db["refs"].delete(name)
        reflog.dropped(self.db, name)
        self._changed()

    def update(self, name: str, new: str | None, expected: str | None, *,
               keep_log: bool = False, renamed: bool = False) -> None:
        """Compare-and-swap: move `name` to `new` (None deletes it, and its reflog unless
        `keep_log`: a rename moves it) only if it still points to `expected` (None: must
        not exist). Call inside a transaction. `renamed`: `name` is a renamed ref made at
        `new`, logged as git's rename logs it, `new` before and after."""
        if reflog.logged(name):
            self._who()
        current = self._row(name)
        if current is not None and current["symbolic"] is not None:
            if name == HEAD:  # detached when the operation read it, on a branch now
                raise RefConflictError(
                    f"HEAD moved from {_short(expected)} (detached) to branch "
                    f"{short_name(str(current['symbolic']))} while this operation ran "
                    "(another memstore process?); nothing was changed - run it again")
            raise MemstoreError(f"{name} is a symbolic ref; update {current['symbolic']}")
        now = current["target"] if current else None
        if now != expected:
            raise RefConflictError(
                f"{short_name(name)} moved from {_short(expected)} to {_short(now)} while "
                "this operation ran (another memstore process?); nothing was changed - "
                "run it again"
            )
        if new is None:
            self.db["refs"].delete(name)
            if not keep_log:
                reflog.dropped(self.db, name)
        else:
            if now is None:
                self.check_new_name(name)
            self.db["refs"].insert({"name": name, "target": new, "symbolic": None},
                                   replace=True)
            if new != now:
                self._log(name, new if renamed else now, new)
        self._changed()

    def set_symbolic(self, name: str, target: str, *, log: bool = True) -> None:
        """Points `name` (HEAD) at branch ref `target`; logged as a checkout (git logs one
        onto the same commit too) unless `log` is False (a rename carrying HEAD along)."""
        old, new = (self.read(name), self.read(target)) if log else (None, None)
        if new is not None:  # logged: not onto an unborn branch (`init`'s HEAD)
            self._who()
        self.db["refs"].insert({"name": name, "target": None, "symbolic": target},
                               replace=True)
        if log:
            self._log(name, old, new)
        self._changed()

    def set_remote_head(self, name: str, branch: str | None) -> None:
        """Points refs/remotes/`name`/HEAD at remote-tracking branch `branch` of remote
        `name` (None: deletes it), as git's `remote set-head`. Not logged, where git 2.39
        logs it ('clone: from URL', 'remote set-head'): memstore keeps no reflog for a
        remote's HEAD. Inside the transaction."""
        self._who()  # (a remote's rename moves its branches next)
        ref = f"{REMOTES}{name}/HEAD"
        if branch is None:
            self.db["refs"].delete_where("name = ?", [ref])
        else:
            self.db["refs"].insert({"name": ref, "target": None,
                                    "symbolic": f"{REMOTES}{name}/{branch}"}, replace=True)
        self._changed()

    def remote_head(self, name: str) -> str | None:
        """The remote-tracking branch of remote `name` that refs/remotes/`name`/HEAD names
        (git's `origin/HEAD -> origin/main`: 'main'), whether or not it exists; None where
        there is none (a row of another kind is the index's damage, as `_row` says)."""
        row = self._row(f"{REMOTES}{name}/HEAD")
        if row is None or row["symbolic"] is None:
            return None
        return str(row["symbolic"])[len(f"{REMOTES}{name}/"):]

    def remote_heads(self) -> dict[str, str]:
        """REMOTE/HEAD → REMOTE/B for every remote's HEAD here (`branch -r`'s
        `origin/HEAD -> origin/main`). Another symbolic row there is damage, which every
        reader of the refs refuses (`_sound`) but `branch -d -r` of that row (`drop`)."""
        rows = self.db.query("select * from refs where substr(name, 1, ?) = ? and symbolic "
                             "is not null order by name", [len(REMOTES), REMOTES])
        return {r["name"][len(REMOTES):]: r["symbolic"][len(REMOTES):] for r in rows
                if remote_head(r["name"], r["symbolic"])}

    def set_detached(self, name: str, commit: str) -> None:
        old = self.read(name)
        self.db["refs"].insert({"name": name, "target": commit, "symbolic": None},
                               replace=True)
        self._log(name, old, commit)
        self._changed()

    # -- revisions ---------------------------------------------------------------------

    def resolve(self, rev: str) -> str:
        """The commit id named by `rev`: HEAD, a ref's name as git's rules read it (`dwim`:
        a tag, a branch, a remote-tracking branch `origin/main`, `heads/main`, `tags/v1`,
        `remotes/origin/main`, `refs/...`), a full id or a unique prefix of at least 4 hex
        digits, followed by any of `~`, `~N`, `^`, `^N`, `^{}`, `^{commit}`, `^{/REGEX}`
        (`peel`). `@` alone is HEAD, as git's (`@~1`, `@^{}`)."""
        from .peel import peel, split_steps

        if not isinstance(rev, str) or not rev:
            raise ValidationError(f"unknown revision {rev!r}")
        shown = rev if len(rev) <= SHOWN else rev[:SHOWN] + "…"  # one line, not 5,000 chars
        base, steps = split_steps(rev)
        if not base or "~" in base or "^" in base:
            raise ValidationError(f"unknown revision {shown!r}")
        commit = self._resolve_base(HEAD if base == "@" else base, shown)
        walked = {commit}
        for op, count in steps:
            if op == "{":
                commit = peel(self, commit, count, shown)
                walked = {commit}
                continue
            n = reflog.count(count) if count else 1
            if op == "~":
                for _ in range(n):
                    commit = self._parent(commit, 1, shown, walked)
            elif n:
                commit = self._parent(commit, n, shown, walked)
        return commit

    def _resolve_base(self, name: str, rev: str) -> str:
        """The commit `name` (a revision without its suffix) names; `rev`, as messages show
        the whole revision."""
        from . import ref_marks  # (it imports upstreams, which import this module)

        marked = ref_marks.resolve(self, name, rev)  # @{upstream}, @{push}, REF@{DATE}
        if marked is not None:
            return marked
        at = reflog.split(name)
        if at is not None:
            return self._reflog_entry(*at, rev)
        was = self.prior_checkout(name, rev)
        if was is not None:  # a branch's name, or a full commit id
            return self.read(HEADS + was) or self._resolve_base(was, rev)
        if name == HEAD:
            commit = self.head().commit
            if commit is None:
                raise ValidationError(f"unknown revision {rev!r}: the current branch has no "
                                      "commits yet")
            return commit
        self.name_warnings(name, rev)
        full = _full_id(name)
        # git's get_oid_basic: a full id is its commit before any ref of that name; else the
        # first of git's rules that names a ref (a tag v1 before a branch v1)
        found = [] if full else \
            [(ref, c) for ref in dwim(name) if (c := self.read(ref)) is not None]
        if found:
            return found[0][1]
        if len(name) >= MIN_PREFIX and _HEX.match(name.lower()):
            ids = self._prefixed(name, 3)
            if len(ids) == 1:
                return ids[0]
            if ids:
                raise ValidationError(
                    f"unknown revision {rev!r}: ambiguous, it is a prefix of "
                    f"{'several' if len(ids) > 2 else 'two'} commits "
                    f"({', '.join(i[:12] for i in ids[:2])}, …); give more digits")
        if name == "base":  # diff, export, ask and eval take it (states.state_commit)
            raise ValidationError(f"unknown revision {rev!r}: 'base' names the base model's "
                                  "weights, not a commit, and a branch, a tag or HEAD points "
                                  "to a commit (only diff, export, ask and eval take 'base')")
        if OBJECT_ID.fullmatch(name) and (name in self.all().values()  # a ref's commit, or
                                          or reflog.names(self.db, name)):  # REF@{N}'s, which
            raise not_indexed(name)  # a command resolves again: damage, not the user's input
        named = self._named(name) if full else []
        if named:
            raise ValidationError(f"unknown revision {rev!r}: no commit here has that id (a "
                                  "full commit id names a commit before a ref so named: "
                                  f"say {_shown(named[0])} for that one)")
        for ref in dwim(name):  # git's 'ignoring dangling symref': its branch was pruned
            remote = ref[len(REMOTES):-len("/HEAD")]
            if ref.startswith(REMOTES) and ref.endswith("/HEAD") and \
                    (branch := self.remote_head(remote)) is not None:
                raise ValidationError(
                    f"unknown revision {rev!r}: {remote}/HEAD names {remote}/{branch}, which "
                    f"is not here (git's 'dangling symref'); `memstore remote set-head "
                    f"{shell_word(remote)} -a` points it at the remote's HEAD again, `-d` "
                    "deletes it")
        remote = self._remote_without_head(name)
        if remote is not None:  # `remote add` + push records none: clone and set-head do
            raise ValidationError(
                f"unknown revision {rev!r}: remote {remote!r} has no HEAD recorded here "
                f"({remote}/HEAD: `clone` records it, `remote add` does not); `memstore "
                f"remote set-head {shell_word(remote)} -a` reads it from the remote")
        raise ValidationError(f"unknown revision {rev!r}")

    def _remote_without_head(self, name: str) -> str | None:
        """The configured remote whose HEAD `name` (a revision without its suffix) names
        by git's rules (`origin`, `origin/HEAD`, `refs/remotes/origin/HEAD`) where none is
        recorded here; None otherwise (a malformed remotes row: no hint, the refusal as
        it was)."""
        from .upstreams import remote_names  # (it imports this module)

        try:
            remotes = remote_names(self.db)
        except MemstoreError:
            return None
        for ref in dwim(name):
            remote = ref[len(REMOTES):-len("/HEAD")]
            if ref.startswith(REMOTES) and ref.endswith("/HEAD") and remote in remotes \
                    and self._row(ref) is None:
                return remote
        return None

    def name_warnings(self, name: str, rev: str | None = None, *, note: bool = True) -> None:
        """git's warnings on reading `name` (a revision without its suffix; `rev`: the whole
        revision) as a revision, in git's words: 'refname NAME is ambiguous.' where two of
        git's rules name refs (a tag and a branch v1: the tag is taken), or one does and
        NAME is also a commit id or a unique abbreviation of one (the ref is taken: git's
        rule for an abbreviation); with a note where NAME is a full id (the commit is
        taken). A command that takes a branch's name (`switch v1`) says them too, as git's
        does (`note` False: without the note, for it takes the branch). Nothing is raised:
        a damaged row is the command's to name."""
        if not name or name == HEAD or "@{" in name:
            return
        rev = name if rev is None else rev
        named = self._named(name)
        if not named:
            return
        full = _full_id(name)
        if full and not note:  # (`switch ID`: typed, whatever the command read before)
            self.warn(f"refname {name!r} is ambiguous.", rev)
        elif full and any(name in word for word in self.typed):  # (not one read here)
            kind = next((k for p, k in KINDS.items() if named[0].startswith(p)), "ref")
            self.warn(f"refname {name!r} is ambiguous.\n" + FULL_ID_NOTE.format(
                kind=kind, ref=_shown(named[0])), rev)
        elif not full and (len(named) > 1 or self._abbreviates(name)):
            self.warn(f"refname {name!r} is ambiguous.", rev)

    def branch_start(self, start: str) -> str:
        """The commit a new branch's START names, as git's `branch`, `switch -c` and
        `checkout -b` read it: by git's rules for ref names first (its dwim_ref), so two
        refs named so are refused ('ambiguous object name', after git's warning: here the
        one line says it), and a ref named as a full commit id is that ref, warned (where
        every other command reads the commit); else START as any revision (`resolve`)."""
        named = self._named(start) if start != HEAD else []
        if len(named) > 1:
            raise ValidationError(f"ambiguous object name: {start[:SHOWN]!r} ("
                                  f"{' and '.join(named[:2])}): say which")
        commit = self.read(named[0]) if named and _full_id(start) else None
        if commit is not None:
            self.warn(f"refname {start!r} is ambiguous.", start)
            return commit
        return self.resolve(start)

    def _abbreviates(self, name: str) -> bool:
        """Whether `name` is a commit's id or a unique abbreviation of one (git's
        get_short_oid: 4 hex digits or more)."""
        if not (MIN_PREFIX <= len(name) <= 64 and _HEX.match(name.lower())):
            return False
        return len(self._prefixed(name, 2)) == 1

    def _prefixed(self, prefix: str, limit: int) -> list[str]:
        """The first `limit` commit ids (in order) that hex digits `prefix` (either case)
        begin."""
        return [r["id"] for r in self.db.query(
            "select id from commits where id >= ? and id < ? order by id limit ?",
            [prefix.lower(), prefix.lower() + "g", limit])]

    def _named(self, name: str) -> list[str]:
        """The refs git's rules (`dwim`) find by `name`, in their order: each with a row,
        sound or not."""
        return [r for r in dwim(name) if self._present(r)]

    def _reflog_entry(self, name: str, n: int, rev: str) -> str:
        """The commit `name@{n}` names, git's: `name`'s value `n` moves ago, from its
        reflog; `@{n}` (no name) the current branch's (HEAD's, when detached)."""
        ref = self.log_ref(name)
        shown = self.log_shown(name)
        try:
            return self.indexed(reflog.nth(self.db, ref, n, shown, rev))
        except ValidationError:
            now = self.head().commit if ref == HEAD else self.read(ref)
            if n == 0 and now is not None and reflog.logged(ref):
                return now  # git's: REF@{0} with an empty log (expired, rebuilt) is REF
            if self.emptied_log(ref):
                raise reflog.emptied(ref, rev) from None
            raise

    def emptied_log(self, ref: str) -> bool:
        """Whether logged ref `ref` holds a commit and its log no entry (`reflog expire
        --expire=now` took them all): git's 'log for REF is empty' for an entry of it. A
        remote's HEAD is never logged here (its log was not emptied: 'no reflog')."""
        now = self.head().commit if ref == HEAD else self.read(ref)
        return now is not None and reflog.logged(ref) and not reflog.entries(self.db, ref) \
            and not (ref.startswith(REMOTES) and ref.endswith("/HEAD")
                     and self.remote_head(ref[len(REMOTES):-len("/HEAD")]) is not None)

    def log_shown(self, name: str) -> str:
        """How messages name the log `name@{...}` reads: the current branch (HEAD when
        detached) for an empty `name`, the branch `@{-N}` names for it, else `name`, cut
        at 60 characters."""
        if reflog.PRIOR.match(name):
            return _shown(self.log_ref(name)[len(HEADS):])
        return (self.head().branch or HEAD) if not name else _shown(name)

    def indexed(self, commit: str) -> str:
        """`commit`, which a reflog entry names, where the index has its row; else the
        damage, in the words every reader uses ('named but not in the index; run `memstore
        fsck`', which names the entry): `show` read the object and said 'object … is
        missing', `revert` said it is not in HEAD's history."""
        if not any(self.db.query("select 1 from commits where id = ? limit 1", [commit])):
            raise not_indexed(commit)
        return commit

    def prior_checkout(self, name: str, rev: str | None = None) -> str | None:
        """What `@{-N}` (`name`) names, as git's: the branch HEAD was on before the N-th
        latest switch, or the commit it was detached at (its full id); None for a `name`
        that is no `@{-N}`. Out of range, or a branch deleted since: ValidationError
        (`rev`: the whole revision, as the message shows it)."""
        m = reflog.PRIOR.match(name)
        if m is None:
            return None
        n, rev = reflog.count(m.group(1)), rev or name
        was, switches = reflog.prior(self.db, n)
        if was is None:
            raise ValidationError(
                f"unknown revision {rev!r}: " + ("@{-0} names no switch (@{-1} is the last)"
                                                 if n == 0 else
                                                 f"HEAD's reflog has {switches} switch"
                                                 f"{'' if switches == 1 else 'es'}"))
        if not OBJECT_ID.fullmatch(was) and self.read(HEADS + was) is None:
            raise ValidationError(f"unknown revision {rev!r}: it names branch {was!r}, "
                                  "which has no commits here now (deleted or renamed since)")
        return was

    def log_ref(self, name: str) -> str:
        """The ref whose reflog `name` names, as a revision names refs: HEAD, `refs/...`,
        a branch, a remote-tracking branch (`origin/main`, `remotes/origin/main`); ''
        the current branch (HEAD when detached), as git's `@{N}`; BRANCH@{u}/@{push}, its
        upstream's remote-tracking branch (git's `@{u}@{1}`); `@{-N}`, the branch HEAD was
        on before the N-th latest switch (git's `@{-1}@{1}`, `reflog show @{-1}`; a
        commit HEAD was detached at has no log: ValidationError)."""
        from . import ref_marks  # (it imports upstreams, which import this module)

        marked = ref_marks.marked_ref(self, name) if "@{" in name else None
        if marked is not None:
            return marked
        was = self.prior_checkout(name)
        if was is not None:
            if OBJECT_ID.fullmatch(was):
                raise ValidationError(f"{name!r} names commit {was[:12]}, where HEAD was "
                                      "detached: a commit has no reflog")
            return HEADS + was
        if not name:
            return self.head().ref or HEAD
        if name in (HEAD, "@"):  # `@@{1}`, `reflog show @`: git's HEAD
            return HEAD
        ways = dwim(name)  # git's dwim_log: the first with a log, else the first that exists
        logs = set(reflog.refs(self.db))
        with_log = sum(r in logs and self._present(r) for r in ways)
        if with_log > 1 or (with_log and self._abbreviates(name)):
            self.warn(f"refname {name!r} is ambiguous.", name)  # git's, as for a revision
        return next((r for r in ways if r in logs), None) \
            or next((r for r in ways if self._present(r)),
                    name if name.startswith("refs/") else HEADS + name)

    def _parent(self, commit: str, n: int, rev: str, walked: set[str]) -> str:
        """The `n`th parent of `commit`, a step of the walk that has been through `walked`
        (and adds it): a walk comes back to a commit only round a loop of the index's rows."""
        rows = list(self.db.query("select parents from commits where id = ?", [commit]))
        if not rows:  # not 'has no parents': unknown (`fsck` names the way back)
            raise not_indexed(commit)
        parents = parents_of({"id": commit, "parents": rows[0]["parents"]}) if rows else ()
        if len(parents) >= n and parents[n - 1] in walked:
            raise parents_loop(parents[n - 1])
        recorded = _recorded_parents(self.objects, commit) \
            if rows and self.objects is not None else None
        if recorded is not None and parents != recorded:
            # the record (hash-checked) decides: `reset HEAD~1` moved the branch to the
            # parent a damaged row named, over the commit the record names
            raise DamagedIndexError(f"commit {commit[:12]}: index row disagrees with the "
                                    "record (parents); run `memstore fsck --repair`")
        if len(parents) < n:
            raise ValidationError(f"unknown revision {rev!r}: {commit[:12]} has "
                                  f"{len(parents) or 'no'} parent{'s' if len(parents) != 1 else ''}")
        walked.add(parents[n - 1])
        return parents[n - 1]


def hand_set(db: Database, name: str) -> str:
    """The way to set branch `name`, whose row holds no commit id, where no snapshot holds
    it sound (git's: write the id into the ref by hand): `branch -f NAME REV`, REV its
    reflog's newest entry where that names a commit the index holds (the value it was
    last moved to), else REV. A tag or remote-tracking branch holding no commit id is
    deleted (`tag -d`, `branch -d -r`), then made again (`tag NAME REV`, `fetch`). HEAD
    holding no commit id, or naming no branch, is set by `switch` (git's `switch BRANCH`
    off a HEAD on a commit it lacks)."""
    if name == HEAD:
        rev = _logged_rev(db, HEAD)
        if rev is None:
            return "`memstore switch BRANCH` (or `memstore switch --detach REV`) sets it"
        return (f"`memstore switch --detach {rev}` sets it to its reflog's newest entry "
                "(HEAD@{0}); `memstore switch BRANCH` puts it on a branch")
    if name.startswith(TAGS):
        tag = shell_word(name[len(TAGS):])
        again = (f" (`memstore tag {tag} REV` makes it again)"
                 if name_problem(name[len(TAGS):]) is None else "")  # else no tag can be
        return f"`memstore tag -d {tag}` deletes it{again}"
    if name.startswith(REMOTES):
        tracking = name[len(REMOTES):]
        return (f"`memstore branch -d -r {shell_word(tracking)}` deletes it (`memstore fetch "
                f"{shell_word(tracking.split('/', 1)[0])}` brings it back)")
    short = shell_word(name[len(HEADS):])
    problem = name_problem(name[len(HEADS):], unseen=False)
    if problem is not None:  # `branch -f` cannot set it: its reflog holds no such name
        return f"`memstore branch -D {short}` deletes it (no branch can be named so: {problem})"
    rev = _logged_rev(db, name)
    if rev is None:
        return f"`memstore branch -f {short} REV` sets it"
    return (f"`memstore branch -f {short} {rev}` sets it to its reflog's newest entry "
            f"({name[len(HEADS):]}@{{0}})")


def snapshot_holds(db: Database, objects: ObjectStore, ref: str) -> bool:
    """Whether a snapshot here holds `ref` on a commit id, or HEAD on a branch, or a
    remote's HEAD on its branch (`fsck --repair` takes its row from the newest such)."""
    return any(any(_holds_sound(r, ref) for r in rows) for rows in _snapshot_rows(db, objects))


def held_sound(db: Database, objects: ObjectStore) -> frozenset[str]:
    """Every ref some snapshot here holds sound (`snapshot_holds` of each), in one read of
    the snapshots: fsck asks it of each damaged ref row, and read them all once a row."""
    return frozenset(r["name"] for rows in _snapshot_rows(db, objects) for r in rows
                     if isinstance(r, dict) and isinstance(r.get("name"), str)
                     and _holds_sound(r, r["name"]))


def _snapshot_rows(db: Database, objects: ObjectStore) -> Iterator[list]:
    """The ref rows of each snapshot here, newest first."""
    for snap in db.query("select object from snapshots order by seq desc"):
        try:
            parsed = snapshots.parse(objects.get_bytes(snap["object"]))
        except MemstoreError:  # a missing or corrupt snapshot is named with the objects
            continue
        yield (parsed or {}).get("refs", [])


def _holds_sound(r: object, ref: str) -> bool:
    """Whether snapshot row `r` holds `ref` on a commit id, HEAD on a branch, or a
    remote's HEAD on its branch."""
    return isinstance(r, dict) and r.get("name") == ref and bool(
        (r.get("symbolic") is None and isinstance(r.get("target"), str)
         and OBJECT_ID.fullmatch(r["target"]))
        or (ref == HEAD and names_branch(r.get("symbolic")))
        or remote_head(ref, r.get("symbolic")))


def shell_word(name: str) -> str:
    """`name` as a command a message names says it, quoted where a shell would split or
    read it otherwise (a damaged row can hold any name: 'my side'), and after `--` where
    it starts with '-' (else an option to the command), so the pasted line works; the
    name's arguments follow it (`branch -D -- -x`, `branch -f -- -x REV`). A name holding
    a character that does not print (a newline: the message's one line broke in two) is
    quoted as $'...' with that character escaped (POSIX sh since 2024, bash, zsh, ksh);
    memstore runs on POSIX systems only (its locks are fcntl's)."""
    lead = "-- " if name.startswith("-") else ""
    if name.isprintable():
        return lead + shlex.quote(name)
    return f"{lead}$'{''.join(map(_ansi_c, name))}'"


def _ansi_c(ch: str) -> str:
    """`ch` inside $'...': itself where it prints, else its escape (\\xHH below 0x80, else
    \\uHHHH or \\UHHHHHHHH, which a UTF-8 shell writes as that character)."""
    if ch in "\\'":
        return "\\" + ch
    if ch.isprintable():
        return ch
    code = ord(ch)
    return (f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code <= 0xFFFF
            else f"\\U{code:08x}")


def line_name(name: object) -> str:
    """A ref's name as a message line shows it: itself, or where a character of it does
    not print (a newline would break the line), with that character escaped."""
    text = str(name)
    return text if text.isprintable() else repr(text)[1:-1]


def _logged_rev(db: Database, name: str) -> str | None:
    """The commit `name`'s reflog's newest entry names, shortened, where the index holds
    it; else None."""
    try:
        logged = reflog.entries(db, name)
    except MemstoreError:
        logged = []
    return next((e.new[:12] for e in logged[:1] if any(db.query(
        "select 1 from commits where id = ? limit 1", [e.new]))), None)


def _recorded_parents(objects: ObjectStore, commit: str) -> tuple[str, ...] | None:
    """The parents `commit`'s record names; None where the record cannot be read (its
    object missing or corrupt): the row is all there is then, as before the check, so that
    `reset HEAD~1` still steps off a commit whose object was damaged (fsck names it), as
    git's does, where refusing left no way off it but a hand-typed id."""
    from .commits import CorruptRecordError
    from .objects import CorruptObjectError, MissingObjectError
    from .storage import Storage  # (it reads commit records, which import the editing code)

    try:
        return Storage(None, objects).commit(commit).parents  # type: ignore[arg-type]
    except (CorruptObjectError, MissingObjectError, CorruptRecordError):
        return None


def _sound(row: dict[str, Any]) -> dict[str, Any]:
    """A ref row whose target, when it has one, is a commit id, and that is symbolic only
    when it is HEAD naming a ref by a string; else the index is damaged (a branch row made
    symbolic would read as an unborn branch: its commits silently gone)."""
    if not isinstance(row.get("name"), str):
        raise DamagedIndexError(f"a ref row of the index is damaged (its name "
                                f"{str(row.get('name'))[:80]!r}); run `memstore fsck --repair`")
    symbolic = row.get("symbolic")
    if symbolic is not None and (row.get("name") != HEAD or not isinstance(symbolic, str)) \
            and not remote_head(row.get("name"), symbolic):
        raise DamagedIndexError(f"ref {str(row.get('name'))[:80]} is damaged (symbolic "
                                f"{str(symbolic)[:80]!r}); run `memstore fsck --repair`")
    target = row.get("target")
    if row.get("symbolic") is None and not (isinstance(target, str)
                                            and OBJECT_ID.match(target)):
        raise DamagedIndexError(f"ref {row['name']} holds {str(target)[:80]!r}, not a commit id; "
                                "run `memstore fsck --repair`")
    return row


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "(nothing)"
