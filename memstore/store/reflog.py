"""The reflog, as git's: every move of HEAD, a branch or a remote-tracking branch, with
where it was and where it went, when, by whom and why ("commit: MSG", "reset: moving to
HEAD~3", "checkout: moving from main to topic"). `REF@{N}` names the N-th previous value
of REF; gc keeps what an entry younger than the expiry names.

Kept in the index's `reflog` table, one row per entry, appended by `Refs` (the one place
refs move) inside the transaction that moves the ref: a refused or failed command leaves
none. Tags are not logged, as git's default (core.logAllRefUpdates): HEAD, refs/heads/ and
refs/remotes/ are. A ref deleted takes its log with it (HEAD's keeps its entries); a
renamed branch's log goes with it. The entries are not in the ref snapshots (each
snapshot would copy the whole log): `fsck --repair` keeps the sound entries of the old
index wherever its reflog table reads (also where refs come from a snapshot: a damaged ref
row's, or all), an index that cannot be opened leaves an empty reflog, as git's reflog is not
in its objects either."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from ..errors import ValidationError
from .objects import OBJECT_ID
from .schema import DamagedIndexError

TABLE = "reflog"
HEAD = "HEAD"


class TagHasNoLog(ValidationError):
    """A reflog asked of a tag (`ref`, its full name): tags are not logged (git's default),
    so a tag has none. `reflog show TAG` lists nothing, as git's; an entry of it
    (`TAG@{0}`) or `reflog expire TAG` is refused, as git's ('points nowhere')."""

    def __init__(self, name: str, ref: str) -> None:
        super().__init__(f"no reflog for {name[:100]!r}: a tag has no reflog (tags are not "
                         "logged)")
        self.ref = ref
LOGGED = ("refs/heads/", "refs/remotes/")
DAY = 86400.0
EXPIRE = 90 * DAY  # git's gc.reflogExpire
EXPIRE_UNREACHABLE = 30 * DAY  # git's gc.reflogExpireUnreachable
AT = re.compile(r"^(.*)@\{([0-9]+)\}$")  # REF@{N}; ASCII digits only
PRIOR = re.compile(r"^@\{-([0-9]+)\}$")  # @{-N}: the N-th branch checked out before
CHECKOUT = re.compile(r"^checkout: moving from (\S+) to ")  # a switch's entry (git's words)


@dataclass(frozen=True)
class Entry:
    id: int
    ref: str
    old: str | None  # None: the ref was created by this move
    new: str
    time: float
    author: str | None
    message: str


def logged(ref: str) -> bool:
    """Whether moves of `ref` are logged: HEAD, branches, remote-tracking branches."""
    return ref == HEAD or ref.startswith(LOGGED)


def _ref_sound(ref: Any) -> bool:
    """Whether a row's ref cell can be a logged ref's: HEAD, or a branch or
    remote-tracking branch whose name is one a ref can have (git's rules, as the names
    refs are made with are checked: refs.check_ref_name; a name only memstore's rule
    against unseen characters refuses, which an older memstore made, is sound)."""
    from .refs import name_problem  # (refs imports this module)

    if not isinstance(ref, str) or not logged(ref):
        return False
    return ref == HEAD or name_problem(ref.split("/", 2)[2], unseen=False) is None


def _present(db: Database) -> bool:
    """Whether the index has the table (an index migrated read-only may not)."""
    return TABLE in db.table_names()


def append(db: Database, ref: str, old: str | None, new: str, message: str,
           author: str | None, when: float) -> None:
    """One entry (inside the caller's transaction, the one that moves the ref)."""
    db[TABLE].insert({"ref": ref, "old": old, "new": new, "time": when, "author": author,
                      "message": " ".join(message.split())})


def dropped(db: Database, ref: str) -> None:
    """`ref` was deleted: its log goes (git's; HEAD's entries naming it stay)."""
    if _present(db):
        db[TABLE].delete_where("ref = ?", [ref])


def renamed(db: Database, old: str, new: str) -> None:
    """Ref `old` is now `new`: its log follows (before the move's entry is appended)."""
    if _present(db):
        db.execute(f"update {TABLE} set ref = ? where ref = ?", [new, old])


def _entry(row: dict[str, Any]) -> Entry:
    """The entry of a row; DamagedIndexError for a malformed one."""
    problem = malformed(row)
    if problem is not None:
        raise DamagedIndexError(f"reflog entry {row.get('id')!r} is damaged ({problem}); run "
                                "`memstore fsck --repair`")
    return Entry(row["id"], row["ref"], row["old"], row["new"], float(row["time"]),
                 row["author"], row["message"])


def malformed(row: dict[str, Any]) -> str | None:
    """What is wrong with a reflog row, in words; None when it is sound."""
    if not isinstance(row.get("id"), int) or isinstance(row.get("id"), bool):
        return f"its id {str(row.get('id'))[:40]!r}"
    if not _ref_sound(row.get("ref")):
        return f"its ref {str(row.get('ref'))[:80]!r}"
    for key in ("old", "new"):
        value = row.get(key)
        if not (isinstance(value, str) and OBJECT_ID.fullmatch(value)) and \
                not (key == "old" and value is None):
            return f"its {key} commit {str(value)[:80]!r}"
    t = row.get("time")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        return f"its time {str(t)[:40]!r}"
    if row.get("author") is not None and not isinstance(row["author"], str):
        return f"its author {str(row['author'])[:40]!r}"
    if not isinstance(row.get("message"), str):
        return f"its message {str(row.get('message'))[:40]!r}"
    return None


def entries(db: Database, ref: str) -> list[Entry]:
    """`ref`'s log, newest first (a damaged row: DamagedIndexError)."""
    if not _present(db):
        return []
    for name in [r["ref"] for r in db.query(f"select distinct ref from {TABLE}")]:
        if not _ref_sound(name):  # a row whose ref is damaged may be `ref`'s ('main\n'
            _entry(next(db.query(  # made of 'main'): its N would be off by one
                f"select * from {TABLE} where ref is ? order by id limit 1", [name])))
    return [_entry(r) for r in db.query(
        f"select * from {TABLE} where ref = ? order by id desc", [ref])]


def names(db: Database, commit: str) -> bool:
    """Whether an entry moved a ref to `commit` (what a `REF@{N}` resolved to)."""
    return _present(db) and any(db.query(f"select 1 from {TABLE} where new = ? limit 1",
                                         [commit]))


def refs(db: Database) -> list[str]:
    """Every ref with a log."""
    if not _present(db):
        return []
    return [r["ref"] for r in db.query(f"select distinct ref from {TABLE} order by ref")
            if isinstance(r["ref"], str)]


def nth(db: Database, ref: str, n: int, shown: str, rev: str) -> str:
    """The commit `ref@{n}` names: its value `n` moves ago (0: its value now; `n` the
    number of entries: the value the oldest moved it from, where it had one, as git's
    read_ref_at: after an expire, `reset main@{1}` undoes the one reset logged since).
    `shown`: how the error names the ref; `rev`: the whole revision."""
    log = entries(db, ref)
    if not log:
        raise ValidationError(f"unknown revision {rev!r}: no reflog for {shown!r}")
    if n == len(log) and log[-1].old is not None:
        return log[-1].old
    if n >= len(log):
        raise ValidationError(f"unknown revision {rev!r}: log for {shown!r} only has "
                              f"{len(log)} entr{'y' if len(log) == 1 else 'ies'}")
    return log[n].new


def emptied(ref: str, rev: str) -> ValidationError:
    """The refusal of `rev`, an entry of logged ref `ref` (which holds a commit) whose log
    is empty (`reflog expire --expire=now` took every entry), in git 2.39's words."""
    return ValidationError(f"unknown revision {rev!r}: log for {ref} is empty")


def problems(db: Database, has_commit: Callable[[str], bool],
             recorded: Callable[[str], bool] = lambda c: False) -> list[str]:
    """fsck: a line per malformed row and per entry naming a commit the store lacks;
    `recorded`: whether such a commit's record is here and reads (the index lacks its
    row: `fsck --repair` indexes it, and keeps the entry)."""
    if not _present(db):
        return []
    out = []
    for row in db.query(f"select * from {TABLE} order by id"):
        problem = malformed(row)
        if problem is not None:
            out.append(f"reflog entry {str(row.get('id'))[:40]} is malformed ({problem}); "
                       "`memstore fsck --repair` drops it")
            continue
        if not has_commit(row["new"]) and recorded(row["new"]):
            out.append(f"reflog entry {row['id']} of {row['ref']} names new commit "
                       f"{row['new'][:12]}, whose record is here but not in the index; "
                       "`memstore fsck --repair` indexes it (the entry stays)")
        elif not has_commit(row["new"]):  # (its old value is history: see `stale`)
            out.append(f"reflog entry {row['id']} of {row['ref']} names new commit "
                       f"{row['new'][:12]}, which is not in the repository; `memstore gc` "
                       "(or `memstore fsck --repair`) drops it")
    return out


def rows(db: Database) -> list[dict[str, Any]]:
    """Every row as it is (`fsck --repair` reads them from the old index)."""
    return [dict(r) for r in db.query(f"select * from {TABLE} order by id")] \
        if _present(db) else []


def sound_rows(rows: Iterable[dict[str, Any]], has_commit: Callable[[str], bool]
               ) -> tuple[list[dict[str, Any]], str | None]:
    """`fsck --repair`: (the rows of `rows` to copy into the new index, what was left out,
    in words: the malformed ones and those naming a commit it lacks; None for none)."""
    kept, bad, gone = [], 0, 0
    for row in rows:
        if malformed(row) is not None:
            bad += 1
        elif not has_commit(row["new"]):  # (as `stale`)
            gone += 1
        else:
            kept.append(dict(row))
    said = [f"{bad} malformed reflog entr{'y' if bad == 1 else 'ies'}"] if bad else []
    if gone:
        said.append(f"{gone} naming a commit not in the store" if bad else
                    f"{gone} reflog entr{'y' if gone == 1 else 'ies'} naming a commit not "
                    "in the store")
    return kept, (f"dropped {' and '.join(said)}" if said else None)


def reaching(tips: dict[str, str], ancestors: Callable[[list[str]], Container[str]]
             ) -> Callable[[str], Container[str]]:
    """For each ref, the commits its entries must name to be reachable, as git's `reflog
    expire` reads "unreachable": those the ref's tip reaches (a ref with no tip: none);
    HEAD's, those any ref reaches (branches, tags, remote-tracking branches: not a detached
    HEAD itself, as git's). `tips`: ref → commit; `ancestors`: the commits that some
    commits reach. Each ref's walk is made once, when first asked for."""
    memo: dict[str, Container[str]] = {}

    def reach(ref: str) -> Container[str]:
        if ref not in memo:
            memo[ref] = (ancestors([c for r, c in tips.items() if r != HEAD]) if ref == HEAD
                         else ancestors([tips[ref]]) if ref in tips else set())
        return memo[ref]
    return reach


def expired(db: Database, now: float, reaches: Callable[[str], Container[str]],
            expire: float = EXPIRE, expire_unreachable: float = EXPIRE_UNREACHABLE,
            ref_names: Iterable[str] | None = None) -> list[Entry]:
    """The entries (of `ref_names`, default every ref) older than `expire` seconds, or
    older than `expire_unreachable` and naming a commit, before or after the move, that
    `reaches(ref)` lacks (`reaching`: what the entry's ref reaches, not every ref), as
    git's: gc.reflogExpire and gc.reflogExpireUnreachable. A malformed row is left to
    fsck."""
    if not _present(db):
        return []
    names = None if ref_names is None else set(ref_names)
    out = []
    for row in db.query(f"select * from {TABLE} order by id"):
        if malformed(row) is not None or (names is not None and row["ref"] not in names):
            continue
        e = _entry(row)
        age = now - e.time
        if age >= expire or (age >= expire_unreachable and not all(
                c in reaches(e.ref) for c in (e.old, e.new) if c is not None)):
            out.append(e)
    return out


def stale(db: Database, alive: Callable[[str], bool]) -> list[Entry]:
    """The sound entries whose commit (the value they moved the ref to, what `REF@{N}`
    names) is not `alive` (one whose record `fsck --repair` left out, corrupt, which gc
    removes), as git's `reflog expire --stale-fix` prunes them. The value before is only
    history: a `reset` off a commit `fsck --repair` left out (the way back it names) is
    logged and kept, its old value gone."""
    if not _present(db):
        return []
    return [_entry(r) for r in db.query(f"select * from {TABLE} order by id")
            if malformed(r) is None and not alive(r["new"])]


def delete(db: Database, ids: Iterable[int]) -> None:
    """Deletes the entries `ids`: a statement per 500 (SQLite's bound on a statement's
    variables is 999 in older builds), where one per entry made `reflog expire --all` of
    2,000 entries run 12,000 statements (benchmarks/README.md)."""
    ids = list(ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        db.execute(f"delete from {TABLE} where id in ({', '.join('?' * len(chunk))})", chunk)


def kept_commits(db: Database, gone: Iterable[int] = ()) -> set[str]:
    """The commits the sound entries name (old and new, as git's gc keeps both), but for
    those of `gone` (the expired ones a gc deletes)."""
    if not _present(db):
        return set()
    skip = set(gone)
    return {c for row in db.query(f"select * from {TABLE}")
            if malformed(row) is None and row["id"] not in skip
            for c in (row["old"], row["new"]) if c is not None}


def count(digits: str) -> int:
    """The number ASCII `digits` write; 10**18 (more than any log holds) for a longer one,
    which Python would refuse to convert past 4300 digits (a traceback)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10 ** 18


def split(rev: str) -> tuple[str, int] | None:
    """(the ref part, N) of a revision base `REF@{N}` (the ref part may be empty: `@{N}`),
    or None when it has none."""
    m = AT.match(rev)
    return (m.group(1), count(m.group(2))) if m else None


def prior(db: Database, n: int) -> tuple[str | None, int]:
    """What HEAD was on before the `n`-th latest switch (git's `@{-n}`, read as git reads
    it from HEAD's log: the "checkout: moving from A to B" entries, newest first, A of the
    n-th): a branch name or the id of a commit it was detached at, None where the log has
    fewer; and how many such entries there are."""
    found = [m.group(1) for e in entries(db, HEAD) if (m := CHECKOUT.match(e.message))]
    return (found[n - 1] if 0 < n <= len(found) else None), len(found)
