"""Where HEAD was before the last switch that moved it (git's `@{-1}`): what `switch -`
goes back to. memstore keeps no reflog, so the one place is recorded here.

Kept in the index's config table (key "previous_head": {"branch": NAME} or, for a
detached HEAD, {"commit": ID}), so copied into every ref snapshot as every config row is;
written inside the switch's transaction before HEAD moves (the move records the snapshot).
A rename of that branch carries it; a branch deleted or a commit removed by gc since is
said when `switch -` reads it, as git's `@{-1}` naming a branch that is gone."""
from __future__ import annotations

from sqlite_utils import Database

from ..errors import MemstoreError, ValidationError
from . import config
from .objects import OBJECT_ID
from .refs import HEADS, Head, check_ref_name

CONFIG_KEY = "previous_head"


def record(db: Database, was: Head, ref: str | None, commit: str | None) -> None:
    """Records `was` as the previous HEAD where HEAD now moves to branch ref `ref`, or
    detached (`ref` None) at `commit`; a switch that leaves HEAD as it was records nothing
    (`switch -` then still goes back to where it was before). Inside the transaction."""
    if was.ref == ref and (ref is not None or was.commit == commit):
        return
    if was.ref is not None:
        config.put(db, CONFIG_KEY, {"branch": was.ref[len(HEADS):]})
    elif was.commit is not None:
        config.put(db, CONFIG_KEY, {"commit": was.commit})


def read(db: Database) -> Head:
    """The previous HEAD (a branch as `Head(ref, None)`, a detached one as `Head(None,
    commit)`); none recorded, or a row that is neither, is one line (MemstoreError)."""
    raw = config.get(db, CONFIG_KEY)
    if raw is None:
        raise MemstoreError("no previous branch: `switch -` goes back to where the last "
                            "switch moved HEAD from, and none has moved it here yet")
    return parse(raw)


def parse(raw: object) -> Head:
    """A previous_head row's value as `read` returns it; a malformed one is MemstoreError."""
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
    """fsck: a MemstoreError where a recorded previous HEAD is malformed."""
    if config.get(db, CONFIG_KEY) is not None:
        read(db)


def dropped_if_malformed(conf: dict) -> str | None:
    """`fsck --repair`: takes a malformed previous HEAD out of the config rows `conf` it
    builds the new index from (no command can write over it, as `switch -` reads it first;
    losing it only makes `switch -` forget where to go back to); what was dropped, in
    words, or None."""
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


def renamed(db: Database, old: str, new: str) -> None:
    """`branch -m OLD NEW`: a previous HEAD on OLD is on NEW (git's reflog follows it)."""
    if config.get(db, CONFIG_KEY) == {"branch": old}:
        config.put(db, CONFIG_KEY, {"branch": new})
