"""Where HEAD was before the last switch (git's `@{-1}`): what `switch -` goes back to.

One rule with `@{-N}`, as git's: read from HEAD's reflog, the latest "checkout: moving from
A to B" entry's A (a branch, or the id of a commit HEAD was detached at). So a switch that
leaves HEAD where it was counts (`switch main` on main: `-` is main, "Already on"), a
branch renamed since is gone under its old name, and `reflog expire` of those entries
forgets it, as git's.

A memstore from before the reflog recorded it apart, in the index's config table (key
"previous_head": {"branch": NAME} or, detached, {"commit": ID}). That record is read only
where HEAD's log has no switch (such a repository's reflog starts empty), and the next
switch deletes it (inside its transaction, before HEAD moves and the move records the
snapshot): its entry says it from then on."""
from __future__ import annotations

from sqlite_utils import Database

from ..errors import MemstoreError, ValidationError
from . import config, reflog
from .objects import OBJECT_ID
from .refs import HEADS, Head, check_ref_name

CONFIG_KEY = "previous_head"


def forget(db: Database) -> None:
    """A switch: an older memstore's record goes (HEAD's log names the previous HEAD now).
    Inside the switch's transaction."""
    db["config"].delete_where("key = ?", [CONFIG_KEY])


def read(db: Database) -> Head:
    """The previous HEAD (a branch as `Head(ref, None)`, a detached one as `Head(None,
    commit)`), git's `@{-1}`; none (no switch in HEAD's log, no older record) is one line
    (ValidationError, exit 2, as `@{-1}` naming nothing), a record that is neither is damage
    (MemstoreError)."""
    was, _ = reflog.prior(db, 1)
    if was is not None:
        return Head(None, was) if OBJECT_ID.fullmatch(was) else Head(HEADS + was, None)
    raw = config.get(db, CONFIG_KEY)
    if raw is None:
        raise ValidationError("no previous branch: `switch -` goes back to where the last "
                            "switch came from (git's @{-1}, from HEAD's reflog), and HEAD's "
                            "reflog has no switch")
    return parse(raw)


def parse(raw: object) -> Head:
    """An older record's value as `read` returns it; a malformed one is MemstoreError."""
    way = "`memstore switch NAME` records a new one"
    if not isinstance(raw, dict) or len(raw) != 1:
        raise MemstoreError(f"the previous HEAD (config row {CONFIG_KEY!r}) is malformed "
                            f"({str(raw)[:60]!r}); {way}")
    (kind, value), = raw.items()
    if kind == "commit" and isinstance(value, str) and OBJECT_ID.match(value):
        return Head(None, value)
    if kind == "branch" and isinstance(value, str):
        try:
            check_ref_name(value)
        except ValidationError:
            pass
        else:
            return Head(HEADS + value, None)
    raise MemstoreError(f"the previous HEAD (config row {CONFIG_KEY!r}) is malformed "
                        f"({str(raw)[:60]!r}); {way}")


def check(db: Database) -> None:
    """fsck: a MemstoreError where an older memstore's record is malformed."""
    raw = config.get(db, CONFIG_KEY)
    if raw is not None:
        parse(raw)


def dropped_if_malformed(conf: dict) -> str | None:
    """`fsck --repair`: takes a malformed older record out of the config rows `conf` it
    builds the new index from (losing it only makes `switch -` forget where to go back to
    until the next switch); what was dropped, in words, or None."""
    if CONFIG_KEY not in conf:
        return None
    try:
        parse(conf[CONFIG_KEY])
        return None
    except MemstoreError:
        raw = conf.pop(CONFIG_KEY)
    return (f"dropped the malformed previous HEAD (config row {CONFIG_KEY!r}, "
            f"{str(raw)[:60]!r}): `switch -` has no branch to go back to until the next "
            "switch records one; nothing else is lost")
