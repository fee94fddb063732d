"""A revision's steps after its base, read from its end as git 2.39's get_oid_1 reads them:
`~N`, `^N`, and `^{...}` (git's peel_onion):

    REV^{}, REV^{commit}   REV's commit: every object a revision names here is a commit (git
                           peels a tag to one; memstore's tags name commits)
    REV^{/REGEX}           the youngest commit reachable from REV whose message matches
                           REGEX, a POSIX extended regular expression over the whole message
                           (git's get_oid_oneline: its message ends in a newline, so `$`
                           matches after it only, `.`, `[^a]` take a newline); `/!-REGEX`: whose
                           message does not match; `/!!X`: REGEX `!X`; `/` alone: REV
    REV^{tree}, ^{blob}, ^{tag}   objects memstore has none of: refused in one line

A `^{` inside REGEX is read as git's: the last `^{` starts the step."""
from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from ..errors import ValidationError
from .schema import not_indexed

if TYPE_CHECKING:
    from .refs import Refs
    from .storage import Storage

_DIGITS = frozenset("0123456789")
NO_OBJECTS = ("tree", "blob", "tag")


def split_steps(rev: str) -> tuple[str, list[tuple[str, str]]]:
    """(the base, its steps in order) of `rev`: each step ('~', DIGITS), ('^', DIGITS) or
    ('{', TEXT) for `^{TEXT}`; what is left where no step ends it is the base (a `~` or `^`
    still in it: no revision). Linear in `rev`'s length (a revision of 100,000 `~` too)."""
    steps = []
    end = len(rev)
    while True:
        i = end
        while i > 0 and rev[i - 1] in _DIGITS:  # ASCII digits: int() reads others too
            i -= 1
        if i > 1 and rev[i - 1] in "~^":
            steps.append((rev[i - 1], rev[i:end]))
            end = i - 1
            continue
        cut = rev.rfind("^{", 0, end) if end and rev[end - 1] == "}" else -1
        if cut > 0:
            steps.append(("{", rev[cut + 2:end - 1]))
            end = cut
            continue
        return rev[:end], steps[::-1]


def peel(refs: Refs, commit: str, text: str, rev: str) -> str:
    """The commit `commit^{text}` names; `rev`: the whole revision, as errors name it."""
    if text in ("", "commit"):
        return commit
    if text in NO_OBJECTS:
        raise ValidationError(f"revision {rev!r}: ^{{{text}}} names a {text} object, and "
                              "memstore has none (a revision names a commit; ^{commit} "
                              "and ^{} are that commit)")
    if not text.startswith("/"):
        raise ValidationError(f"unknown revision {rev!r}: ^{{{text[:40]}}} is none of "
                              "git's ^{}, ^{commit}, ^{/REGEX}")
    return youngest_matching(refs, commit, text[1:], rev)


def youngest_matching(refs: Refs, start: str, pattern: str, rev: str) -> str:
    """The youngest commit (committer time, as git walks) reachable from `start` whose
    message matches `pattern` (its `!-`/`!!` prefixes read as git's)."""
    # (here: history and storage read commit records, which import the editing code)
    from .history import checked_graph, graph
    from .posix_regex import SLOW, PatternError, compile_pattern, search
    from .storage import Storage

    negative = pattern.startswith("!-")
    if pattern.startswith("!") and not pattern.startswith(("!-", "!!")):
        raise ValidationError(f"unknown revision {rev!r}: '/!' is followed by '-' (no match "
                              "of what follows) or '!' (a '!'), as git reads it")
    if pattern.startswith("!"):
        pattern = pattern[2:] if negative else pattern[1:]
    try:
        regex = compile_pattern(pattern, "extended", lines=False)  # no REG_NEWLINE: git's
    except PatternError as e:
        raise ValidationError(f"unknown revision {rev!r}: {pattern[:60]!r} is not a "
                              f"regular expression ({e})") from None
    # each row walked is checked against its record, as `~N` is (Refs._parent): a damaged
    # row naming other parents must not name a commit off REV's history
    store = Storage(refs.db, refs.objects) if refs.objects is not None else None
    g = checked_graph(store, unreadable=True) if store is not None else graph(refs.db)
    if start not in g:
        raise not_indexed(start)
    ready, seen = [(-g[start][1], start)], {start}
    while ready:
        _, c = heapq.heappop(ready)
        try:
            hit = search(regex, _message(refs, store, c) + "\n")  # git's ends in one
        except PatternError as e:
            raise ValidationError(f"unknown revision {rev!r}: commit {c[:12]}: {e}; "
                                  f"{SLOW}") from None
        if hit != negative:
            return c
        for p in g[c][0]:
            if p not in g:
                raise not_indexed(p)
            if p not in seen:
                seen.add(p)
                heapq.heappush(ready, (-g[p][1], p))
    raise ValidationError(f"unknown revision {rev!r}: no commit it reaches has a message "
                          f"that {'does not match' if negative else 'matches'} "
                          f"{pattern[:60]!r}")


def _message(refs: Refs, store: Storage | None, commit: str) -> str:
    """The message of `commit`, as `log --grep` reads it: from its record (checked against
    its hash), its index row's where the record cannot be read (fsck names it)."""
    from .commits import CorruptRecordError
    from .objects import CorruptObjectError, MissingObjectError

    if store is not None:
        try:
            return store.commit(commit).message
        except (CorruptObjectError, MissingObjectError, CorruptRecordError):
            pass
    rows = list(refs.db.query("select message from commits where id = ?", [commit]))
    return str(rows[0]["message"]) if rows else ""
