"""clone: a new repository from a remote, on the clone's own copy of the base model.

The base is never pushed (it is as large as a checkpoint and every team member has it):
the clone names its own copy, memstore hashes it, and a copy whose hash is not the one the
remote records is refused. Everything is checked before the folder is touched (it must be
new or empty, the remote reachable and of a layout this memstore reads, the base the
right one); a clone that fails later removes what it made. The new repository has remote
`origin`, every remote branch as `origin/BRANCH` (and `origin/HEAD` naming the one the
remote's HEAD names, as git's clone: `origin` is then a revision), every remote tag (with its history, on a
branch or not), and a local branch for the remote's default one, whose upstream is
`origin/BRANCH` (recorded, as git's clone records it); its editor settings for future
commits are those of the newest update set on that branch (how the team last edited), else
the architecture's defaults.

A clone writes a marker `DIR/.memstore-clone-<host>-<pid>-<random>` before anything else
and removes it when done. A clone killed outright (kill -9, the out-of-memory killer)
cannot remove what it made; a later clone into DIR reuses the folder when it holds nothing
but that: the marker of a dead process of this host, the repository that process was
building (`.memstore`, whose local branches are at most the remote's own: nothing was
committed there) or its temporary `.memstore-init-<host>-<pid>-<random>`."""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .. import leftovers
from ..editing.settings import EditSettings
from ..errors import MemstoreError
from ..store.refs import branch_ref
from ..store.repository import DEFAULT_BRANCH, DIRNAME, INIT_PREFIX, Repository
from ..store.upstreams import Upstream
from . import remotes
from .connection import connect
from .fetch import FetchResult, fetch
from .layout import Marker, parse_head


@dataclass
class CloneResult:
    path: Path
    branch: str
    head: str | None  # None: the remote has no commits yet
    fetched: FetchResult


MARKER_PREFIX = ".memstore-clone-"
_MARKER, _INIT = re.escape(MARKER_PREFIX), re.escape(INIT_PREFIX)  # dots as dots


def _unfinished_repository(root: Path, remote: str) -> bool:
    """`root/.memstore` is a repository in which nothing but a clone from `remote` wrote:
    its local branches, if any, are where that remote's are."""
    try:
        with Repository.open(root) as repo:
            if remotes.remotes(repo) not in ({}, {remotes.DEFAULT: remote}):
                return False
            return all(repo.refs.read(remotes.tracking_ref(remotes.DEFAULT, b)) == c
                       for b, c in repo.refs.list("refs/heads/").items())
    except (MemstoreError, OSError, ValueError):
        return False


def left_by_dead_clone(target: Path) -> list[Path] | None:
    """What is in `target` when it holds nothing but what a clone killed outright left (a
    dead process of this host: its marker, the repository it was building, the temporary
    folder of that repository), else None."""
    try:
        names = os.listdir(target)
    except OSError:
        return None
    markers = [target / n for n in names if leftovers.owner(n, _MARKER) is not None]
    if not markers or not all(leftovers.is_dead_leftover(m, _MARKER) and m.is_file()
                              for m in markers):
        return None
    pids = {leftovers.dead_owner(m.name, _MARKER) for m in markers}
    found = []
    for n in names:
        p = target / n
        if p in markers:
            continue
        if n.startswith(INIT_PREFIX):  # killed while the repository was being built
            if not (leftovers.is_dead_leftover(p, _INIT) and p.is_dir()
                    and leftovers.dead_owner(n, _INIT) in pids):
                return None
        elif n != DIRNAME or p.is_symlink() or not p.is_dir():
            return None
        else:
            try:
                remote = {json.loads(m.read_text(encoding="utf-8"))["url"] for m in markers}
            except (OSError, ValueError, TypeError, KeyError, RecursionError):
                return None
            if len(remote) != 1 or not _unfinished_repository(target, remote.pop()):
                return None
        found.append(p)
    return [*found, *markers]


def checked_out(head: str | None, branches: dict[str, str]) -> str:
    """The branch a clone checks out: the one the remote's HEAD names (`head`), else main,
    else the first of the remote's `branches` (main when it has none)."""
    if head in branches:
        return head
    return DEFAULT_BRANCH if DEFAULT_BRANCH in branches or not branches else min(branches)


def clone(url: str, directory: str | Path, base_spec: str, *, with_stats: bool = False,
          on_start: Callable[[], None] | None = None) -> CloneResult:
    """`on_start` is called once the target folder is found fit, before the remote is read
    (the CLI's 'Cloning into DIR...', which git too prints only then)."""
    from ..models.hashing import changed_side_files  # clone loads the base: the engine
    from ..store.porcelain import identify_base

    target = Path(directory).resolve()
    dead: list[Path] = []
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        dead = left_by_dead_clone(target) or []
        if not dead:
            raise MemstoreError(f"cannot clone into {target}: it exists and is not an empty "
                                "folder")
    if on_start is not None:
        on_start()
    remote = connect(url, remotes.DEFAULT)
    marker = cast(Marker, remote.marker)  # connect refuses a place without one
    branches = remote.transport.branches([])  # those passed over: the fetch's to say
    head_file = remote.transport.read_head()
    said = parse_head(head_file) if head_file is not None else None  # the remote's HEAD
    default = checked_out(said, branches)
    base = identify_base(base_spec)
    if base.hash != marker.base_hash:
        raise MemstoreError(
            f"{base_spec} is not the base model of {remote.url}: its hash is "
            f"{base.hash[:12]}, the remote's base ({marker.base_spec}) is "
            f"{marker.base_hash[:12]}; give this machine's copy of that model with --base")
    changed = changed_side_files(marker.base_info.get("side_files"), base.info["side_files"])
    if changed:
        raise MemstoreError(
            f"{base_spec} has the weights of the base model of {remote.url} but not its "
            f"{', '.join(changed)} (settings or tokenizer): the history was written, and is "
            "served, with those of the remote's base")
    made = target  # the outermost folder this clone creates, removed if it fails
    while not made.parent.exists():
        made = made.parent
    created = not made.exists()
    for p in dead:  # a dead clone's: nothing else is in the folder (checked above)
        leftovers.remove(p)
    ours = False  # whether .memstore is this clone's: another clone may have made one since
    mark = target / leftovers.temp_name(MARKER_PREFIX)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"url": remote.url}, f)
        repo = Repository.init(target, base.spec, base.hash, base.info, base.settings,
                               base_path=base.path, branch=default)
        ours = True
        with repo:
            remotes.add(repo, remotes.DEFAULT, remote.url)
            with repo.refs.reason(f"clone: from {remote.url}"):  # git's, on origin/* too
                fetched = fetch(repo, remotes.DEFAULT, with_stats=with_stats, remote=remote,
                                all_tags=True)
            head = repo.refs.read(remotes.tracking_ref(remotes.DEFAULT, default))
            if said == default and head is not None:  # git's origin/HEAD -> origin/main:
                remotes.set_head(repo, remotes.DEFAULT, default)  # `origin` names it
            # git's branch.NAME.remote=origin, .merge: what push, pull, status use; as git's
            # clone of an empty repository, recorded for a branch with no commits yet too
            remotes.record_upstream(repo, default, Upstream(remotes.DEFAULT, default))
            if head is not None:
                repo.update_ref(branch_ref(default), head, expected=None,
                                reason=f"clone: from {remote.url}")  # git's words
                sets = repo.chain_sets(head)
                if sets:
                    # the last commit's settings, read by today's token rule from now on
                    repo.set_settings(EditSettings.from_dict(sets[-1].update_set.settings)
                                      .with_changes(token_rule=EditSettings.token_rule))
    except BaseException:
        if ours:
            shutil.rmtree(target / DIRNAME, ignore_errors=True)
        mark.unlink(missing_ok=True)
        if created:  # the folders it made, unless something else is in them now
            for d in [target, *target.parents]:
                try:
                    d.rmdir()
                except OSError:
                    break
                if d == made:
                    break
        raise
    mark.unlink(missing_ok=True)  # whole: no longer a clone's to reuse
    return CloneResult(target, default, head, fetched)
