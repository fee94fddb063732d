"""A branch's upstream, as git's branch.NAME.remote and branch.NAME.merge: the remote
branch that `pull`, `push`, `fetch` and `status` use for it when no remote is named.

Kept in the index's config table beside the remotes (key "upstreams": branch → {"remote",
"merge"}), so copied into every ref snapshot as every config row is. A branch without one
uses the default rule (origin, or the only remote; the branch of the same name). Renaming
a branch carries its upstream, deleting it drops it, removing a remote drops the upstreams
that name it, renaming one renames them; those writes run inside the caller's transaction,
before its ref moves (which record the snapshot)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from ..errors import MemstoreError, ValidationError
from . import config
from .refs import check_ref_name

CONFIG_KEY = "upstreams"
REMOTES_KEY = "remotes"  # the config row of the remotes, name → URL (memstore.remote.remotes)
DEFAULT_REMOTE = "origin"


@dataclass(frozen=True)
class Upstream:
    remote: str
    branch: str  # the remote's branch (git's merge)

    @property
    def name(self) -> str:
        return f"{self.remote}/{self.branch}"


def _table(db: Database) -> dict:
    """The upstreams row; a row that is no table of branches is an error naming the way out."""
    raw = config.get(db, CONFIG_KEY)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MemstoreError("the repository's upstreams (config row 'upstreams') are malformed; "
                            "`memstore branch --unset-upstream` clears them")
    return raw


def get(db: Database, branch: str) -> Upstream | None:
    """The recorded upstream of `branch`, None without one; a malformed one is an error."""
    entry = _table(db).get(branch)
    if entry is None:
        return None
    try:
        remote, merge = entry["remote"], entry["merge"]
        check_ref_name(remote, "remote")
        check_ref_name(merge)
        if "/" in remote:
            raise ValidationError("a remote name holds no '/'")
    except (KeyError, TypeError, ValidationError):
        shown = branch if len(branch) <= 60 else branch[:60] + "…"  # one line, not 100 kB
        name = branch if shown == branch and branch.isprintable() else "NAME"
        raise MemstoreError(f"the upstream of branch {shown!r} is malformed "
                            f"({str(entry)[:60]!r}); `memstore branch --unset-upstream "
                            f"{name}` forgets it") from None
    return Upstream(remote, merge)


def default_remote(names) -> str | None:
    """The remote a branch with no recorded upstream uses, among the remotes `names`:
    'origin' (also with none yet), else the only one; None with several, none 'origin'."""
    if DEFAULT_REMOTE in names or not names:
        return DEFAULT_REMOTE
    return next(iter(names)) if len(names) == 1 else None


def upstream_or_default(db: Database, branch: str, names
                        ) -> tuple[Upstream, bool] | None:
    """`branch`'s upstream as `pull` merges it, `status` compares with it, `rebase` and
    `@{upstream}` take it: the recorded one (True), else the default remote's (among the
    remotes `names`) branch of the same name (False); None where there is no default."""
    up = get(db, branch)
    if up is not None:
        return up, True
    remote = default_remote(names)
    return (Upstream(remote, branch), False) if remote is not None else None


def remote_table(db: Database) -> dict[str, str]:
    """The remotes' config row, name → URL as recorded (memstore.remote.remotes anchors a
    relative folder); a row that is not names and URLs (edited by hand) is an error naming
    it, wherever it is read: pull and push refuse it, so do rebase and @{upstream}."""
    raw = config.get(db, REMOTES_KEY) or {}
    if not (isinstance(raw, dict) and all(isinstance(u, str) for u in raw.values())):
        raise MemstoreError(f"the repository's remotes (config row {REMOTES_KEY!r}) are "
                            f"malformed ({str(raw)[:60]!r}): not remote names and URLs")
    return raw


def remote_names(db: Database) -> list[str]:
    """The names of the remotes (`remote_table`'s, checked as it checks them)."""
    return sorted(remote_table(db))


def no_remote(branch: str, up: Upstream) -> str:
    """What a command says where `branch`'s recorded upstream `up` names no remote (damage
    to the config, written by hand: exit 1)."""
    return (f"the upstream of branch {branch!r} is {up.name!r}, but there is no remote "
            f"{up.remote!r}; `memstore branch --unset-upstream {branch}` forgets it")


def no_upstream(branch: str, name_it: str) -> str:
    """What `rebase` and `pull` say where `upstream_or_default` finds none for `branch`
    (several remotes, none 'origin', none recorded): `name_it`, the command's own way."""
    return (f"branch {branch!r} has no upstream: {name_it}, or set one with `memstore "
            "branch --set-upstream-to REMOTE/BRANCH`")


def check(db: Database) -> None:
    """fsck: a MemstoreError for the first malformed upstream."""
    for branch in _table(db):
        get(db, branch)


def table_with(db: Database, branch: str, upstream: Upstream | None) -> dict:
    """The upstreams row with `branch`'s recorded (None: forgotten), to write with
    Repository.set_config; a malformed row is replaced."""
    raw = config.get(db, CONFIG_KEY)
    table = {b: u for b, u in raw.items() if b != branch} if isinstance(raw, dict) else {}
    if upstream is not None:
        table[branch] = {"remote": upstream.remote, "merge": upstream.branch}
    return table


def renamed(db: Database, old: str, new: str) -> None:
    """`branch -m OLD NEW`: NEW takes OLD's upstream (as recorded, even malformed)."""
    raw = config.get(db, CONFIG_KEY)
    if isinstance(raw, dict) and old in raw:
        table = {b: u for b, u in raw.items() if b not in (old, new)}
        config.put(db, CONFIG_KEY, table | {new: raw[old]})


def remote_renamed(db: Database, old: str, new: str) -> list[str]:
    """`remote rename OLD NEW`: every upstream naming remote `old` names `new`, as git
    rewrites branch.*.remote; the branches whose upstream changed."""
    raw = config.get(db, CONFIG_KEY)
    if not isinstance(raw, dict):
        return []
    moved = [b for b, u in raw.items() if isinstance(u, dict) and u.get("remote") == old]
    if moved:
        config.put(db, CONFIG_KEY, {b: {**u, "remote": new} if b in moved else u
                                    for b, u in raw.items()})
    return moved


def dropped(db: Database, branch: str | None = None, remote: str | None = None) -> None:
    """Forgets the upstream of `branch` (`branch -d`), or every one naming `remote`
    (`remote remove`)."""
    raw = config.get(db, CONFIG_KEY)
    if not isinstance(raw, dict):
        return
    table = {b: u for b, u in raw.items()
             if b != branch and not (remote is not None and isinstance(u, dict)
                                     and u.get("remote") == remote)}
    if table != raw:
        config.put(db, CONFIG_KEY, table)
