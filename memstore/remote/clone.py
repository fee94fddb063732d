"""clone: a new repository from a remote, on the clone's own copy of the base model.

The base is never pushed (it is as large as a checkpoint and every team member has it):
the clone names its own copy, memstore hashes it, and a copy whose hash is not the one the
remote records is refused. Everything is checked before the folder is touched (it must be
new or empty, the remote reachable and of a layout this memstore reads, the base the
right one); a clone that fails later removes what it made. The new repository has remote
`origin`, every remote branch as `origin/BRANCH`, and a local branch for the remote's
default one; its editor settings for future commits are those of the newest update set
on that branch (how the team last edited), else the architecture's defaults."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ..editing.settings import EditSettings
from ..errors import MemstoreError
from ..store.porcelain import identify_base
from ..store.refs import branch_ref
from ..store.repository import DEFAULT_BRANCH, DIRNAME, Repository
from . import remotes
from .connection import connect
from .fetch import FetchResult, fetch
from .layout import HEAD_FILE, Marker, parse_head


@dataclass
class CloneResult:
    path: Path
    branch: str
    head: str | None  # None: the remote has no commits yet
    fetched: FetchResult


def clone(url: str, directory: str | Path, base_spec: str, *,
          with_stats: bool = False) -> CloneResult:
    target = Path(directory).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise MemstoreError(f"cannot clone into {target}: it exists and is not an empty "
                            "folder")
    remote = connect(url, remotes.DEFAULT)
    marker = cast(Marker, remote.marker)  # connect refuses a place without one
    branches = remote.transport.branches()
    head_file = remote.transport.read(HEAD_FILE)
    default = parse_head(head_file) if head_file is not None else None
    if default not in branches:
        default = DEFAULT_BRANCH if DEFAULT_BRANCH in branches or not branches \
            else min(branches)
    base = identify_base(base_spec)
    if base.hash != marker.base_hash:
        raise MemstoreError(
            f"{base_spec} is not the base model of {remote.url}: its hash is "
            f"{base.hash[:12]}, the remote's base ({marker.base_spec}) is "
            f"{marker.base_hash[:12]}")
    made = target  # the outermost folder this clone creates, removed if it fails
    while not made.parent.exists():
        made = made.parent
    created = not made.exists()
    ours = False  # whether .memstore is this clone's: another clone may have made one since
    try:
        repo = Repository.init(target, base.spec, base.hash, base.info, base.settings,
                               base_path=base.path, branch=default)
        ours = True
        with repo:
            remotes.add(repo, remotes.DEFAULT, remote.url)
            fetched = fetch(repo, remotes.DEFAULT, with_stats=with_stats, remote=remote)
            head = repo.refs.read(remotes.tracking_ref(remotes.DEFAULT, default))
            if head is not None:
                repo.update_ref(branch_ref(default), head, expected=None)
                sets = repo.chain_sets(head)
                if sets:
                    repo.set_settings(EditSettings.from_dict(sets[-1].update_set.settings))
    except BaseException:
        if ours:
            shutil.rmtree(target / DIRNAME, ignore_errors=True)
        if created:  # the folders it made, unless something else is in them now
            for d in [target, *target.parents]:
                try:
                    d.rmdir()
                except OSError:
                    break
                if d == made:
                    break
        raise
    return CloneResult(target, default, head, fetched)
