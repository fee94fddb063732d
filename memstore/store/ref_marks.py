"""Revisions that name a commit through another record, as git's (Refs.resolve reads them
before its other forms, and `~`/`^` follow them as any revision):

    BRANCH@{upstream}, BRANCH@{u}   the remote-tracking branch of BRANCH's upstream, as
                                    `status`, `pull` and `rebase` take it (the recorded one,
                                    else the default remote's branch of its name, where that
                                    is fetched); `@{u}`, `HEAD@{u}`: the current branch's;
                                    any case (`@{U}`), as git's
    BRANCH@{push}                   where `push` with no remote sends BRANCH (git's, under
                                    push.default=simple: the upstream, of the same name)
    REF@{DATE}                      the value REF had at DATE, from its reflog (DATE as
                                    `log --since` reads it: store.dates); `@{DATE}`: the
                                    current branch's (HEAD's when detached)

Told from `REF@{N}` as git's: all digits is N, unless 9 or 10 digits below 2**31 (git's
int), which are seconds since the epoch."""
from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING

from ..errors import ValidationError
from . import dates, reflog, upstreams

if TYPE_CHECKING:
    from .refs import Refs

HEADS = "refs/heads/"
REMOTES = "refs/remotes/"
MARK = re.compile(r"^(.*)@\{(upstream|u|push)\}$", re.IGNORECASE)
DATED = re.compile(r"^(.*)@\{([^{}]+)\}$")
EPOCH = (100_000_000, 2 ** 31)  # all digits in this range: seconds since the epoch (git's)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def resolve(refs: Refs, name: str, rev: str) -> str | None:
    """The commit the revision base `name` names where it is one of these forms, None
    where it is none of them; `rev`: the whole revision, as errors name it."""
    ref = marked_ref(refs, name, rev)
    if ref is not None:
        commit = refs.read(ref)
        if commit is None:
            raise ValidationError(f"unknown revision {rev!r}: {ref[len(REMOTES):]}, the "
                                  "upstream recorded, is not here (not fetched yet, or "
                                  "deleted there since): `memstore fetch`")
        return commit
    found = dated(name, rev)
    return None if found is None else \
        refs.indexed(at_date(refs, *found, rev))  # (REF@{N}: Refs reads it)


def dated(name: str, rev: str) -> tuple[str, float] | None:
    """(the ref part, the time) of `name` where it is REF@{DATE} (REF may be empty, or
    BRANCH@{u}: its upstream's log, or @{-N}: that branch's), None where it is another
    form (REF@{N}, @{-N}, a mark); `rev`: the whole revision, as errors name it."""
    m = DATED.match(name)
    if m is None or MARK.match(name) or ("@{" in m.group(1) and not MARK.match(m.group(1))
                                         and not reflog.PRIOR.match(m.group(1))) \
            or (re.fullmatch(r"-?[0-9]+", m.group(2))
                and not EPOCH[0] <= reflog.count(m.group(2)) < EPOCH[1]):
        return None
    return m.group(1), _date(m.group(2), rev)


def entry_at(refs: Refs, selector: str, warn: bool = True) -> tuple[str, int] | None:
    """(REF, the index in REF's log, newest first) of a reflog entry `selector` as `reflog
    show` and `reflog delete` take it: REF@{N}, or REF@{DATE} (the latest entry at or
    before DATE, as git's; the log's length where DATE is before its oldest, with git's
    warning where `warn`); None where it is neither."""
    at = reflog.split(selector)
    if at is not None:
        return at
    found = dated(selector, selector)
    if found is None:
        return None
    name, when = found
    log = reflog.entries(refs.db, refs.log_ref(name))
    i = _index(log, when)
    if i == len(log) and log and warn:
        refs.warn(f"log for {refs.log_shown(name)!r} only goes back to "
                  f"{rfc2822(log[-1].time)}", selector)
    return name, i


def _index(log: list[reflog.Entry], when: float) -> int:
    """The index of the latest entry of `log` (newest first) at or before `when`, to the
    second (git's log keeps seconds); len(log) where every entry is later."""
    at = math.floor(when)
    return next((i for i, e in enumerate(log) if math.floor(e.time) <= at), len(log))


def marked_ref(refs: Refs, name: str, rev: str | None = None) -> str | None:
    """The remote-tracking ref `name` names where it is BRANCH@{upstream} or
    BRANCH@{push} (refused as `tracking_ref` refuses it), else None; `rev`: the whole
    revision, as errors name it (default `name`)."""
    m = MARK.match(name)
    if m is None or not ("@{" not in m.group(1) or reflog.PRIOR.match(m.group(1))):
        return None
    return tracking_ref(refs, m.group(1), m.group(2).lower() == "push", rev or name)


def tracking_ref(refs: Refs, branch: str, push: bool, rev: str) -> str:
    """The remote-tracking ref `branch@{upstream}` (`push`: `@{push}`) names; '' or HEAD
    for the current branch, `@{-N}` for the branch checked out before. Refused as git's,
    in its words: a detached HEAD, no such branch, no upstream."""
    head = refs.head()
    if branch in ("HEAD", "", "@"):  # `@@{u}`: git's HEAD@{u}
        branch = head.branch
    elif reflog.PRIOR.match(branch):  # (a commit it was detached at: no such branch)
        branch = refs.prior_checkout(branch, rev)
    if branch is None:
        raise ValidationError(f"revision {rev!r}: HEAD does not point to a branch")
    up = upstreams.get(refs.db, branch)
    if up is None and refs.read(HEADS + branch) is None and branch != head.branch:
        raise ValidationError(f"revision {rev!r}: no such branch: {branch!r}")
    names = upstreams.remote_names(refs.db)
    found = upstreams.upstream_or_default(refs.db, branch, names)
    ref = REMOTES + found[0].name if found is not None else None
    if found is None or not found[1] and (found[0].remote not in names
                                          or refs.read(ref) is None):
        raise ValidationError(f"revision {rev!r}: no upstream configured for branch "
                              f"{branch!r}")
    if push and found[0].branch != branch:  # push.default=simple: no REMOTE, its own name
        raise ValidationError(f"revision {rev!r}: cannot resolve 'simple' push to a single "
                              f"destination (the upstream of {branch!r} is {found[0].name}, "
                              "another name)")
    return ref


def _date(text: str, rev: str) -> float:
    """The time `text` (inside REF@{...}) names; ValidationError where it is no date."""
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        return dates.parse(text)
    except ValueError as e:
        raise ValidationError(f"unknown revision {rev!r}: {text[:60]!r}: {e}") from None


def at_date(refs: Refs, name: str, when: float, rev: str) -> str:
    """The value ref `name` (as REF@{N} names refs) had at `when`, as git's read_ref_at:
    the latest entry of its log at or before `when` (to the second, as git's log keeps
    time); its value now after the latest entry; before the first, the value the first
    moved it from (warned about: git's 'log for REF only goes back to DATE')."""
    ref = refs.log_ref(name)
    shown = refs.log_shown(name)
    log = reflog.entries(refs.db, ref)
    if not log and refs.emptied_log(ref):
        raise reflog.emptied(ref, rev)
    if not log:
        raise ValidationError(f"unknown revision {rev!r}: no reflog for {shown!r}")
    i = _index(log, when)
    if i < len(log):
        return (refs.read(ref) or log[0].new) if i == 0 else log[i].new
    oldest = log[-1]
    refs.warn(f"log for {shown!r} only goes back to {rfc2822(oldest.time)}", rev)
    return oldest.old or oldest.new


def rfc2822(t: float) -> str:
    """`t` in local time as git's warning writes it: 'Tue, 1 Dec 2026 10:00:00 +0000'."""
    d = time.localtime(math.floor(t))
    return (f"{_DAYS[d.tm_wday]}, {d.tm_mday} {_MONTHS[d.tm_mon - 1]} {d.tm_year} "
            f"{time.strftime('%H:%M:%S %z', d)}")
