"""push: make a remote's branch what a local branch is, losing no one's update.

The order is what makes a push safe to kill and safe to race:

1. read the remote branch (with the token its compare-and-swap checks);
2. refuse, before writing anything, a push that is not a fast-forward of it: its tip is
   not here ("fetch first") or not an ancestor of ours, unless `--force`;
3. write the objects the remote lacks of the commits that the remote branch does not
   reach (and, with `--with-stats`, the statistics), each whole or not at all: until the
   ref moves they are unreferenced and harmless;
4. move the remote branch by compare-and-swap against what step 1 read: if another push
   moved it meanwhile, this one is refused ("fetch first") and nothing is lost;
5. record the new remote-tracking branch here.

A kill anywhere leaves the remote branch at the old commit or the new one, with every
object the new one needs already there. `--force` still compares and swaps: it replaces
the commit it read, never one pushed since."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import MemstoreError, ValidationError
from ..store.refs import (
    HEADS,
    branch_ref,
    case_twin,
    check_storable,
    folder_clash,
    twin_difference,
)
from ..store.repository import Repository
from ..store.upstreams import Upstream
from . import remotes
from .connection import connect
from .layout import HEAD_FILE, branch_path, damaged_ref_way_out, head_bytes
from .stats import push_statistics
from .transfer import Moved, object_ids, reachable, remote_sizes, upload
from .transport import StaleRefError, Transport

if TYPE_CHECKING:
    from .push_tags import TagsPushResult


class PushRejectedError(MemstoreError):
    """The remote branch has commits that the pushed one does not contain. `remote` and
    `tip`: the remote pushed to and the commit refused there, where a branch's push was
    (what `push --follow-tags` still pushes the tags of, as git's); None otherwise."""

    def __init__(self, message: str, remote: str | None = None,
                 tip: str | None = None) -> None:
        super().__init__(message)
        self.remote, self.tip = remote, tip


@dataclass
class PushResult:
    remote: str
    url: str
    branch: str
    old: str | None  # the remote branch before (None: new there)
    new: str
    forced: bool = False  # the old commit is not an ancestor of the new one (or was damaged)
    damaged: int | None = None  # forced: the bytes the remote branch held, no commit id
    moved: Moved = field(default_factory=Moved)
    created: bool = False  # this push created the remote (nothing was there: a new folder)
    guarantee: str = ""  # what the store guarantees for the ref update
    seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return self.old == self.new


def push(repo: Repository, name: str | None = None, branch: str | None = None, *,
         force: bool = False, with_stats: bool = False,
         set_upstream: bool = False) -> PushResult:
    """Pushes local `branch` (default: the current one) to the branch of the same name on
    remote `name` (default: the branch's upstream's remote, else origin or the only
    remote); `set_upstream` then records that branch there as its upstream (`push -u`)."""
    t0 = time.perf_counter()
    branch = branch if branch is not None else repo.head().branch
    if branch is None:
        raise ValidationError("HEAD is detached: name the branch to push")
    if name is None:  # '' is no default
        up = remotes.upstream_of(repo, branch)
        if up is not None and up.branch != branch and not set_upstream:
            raise ValidationError(  # git's push.default=simple
                f"the upstream of branch {branch!r} is {up.name!r}, another name: "
                f"`memstore push {up.remote}` pushes it as {up.remote}/{branch}")
        name = up.remote if up is not None else remotes.default_remote(repo)
    url = remotes.url_of(repo, name)
    tip = repo.refs.read(branch_ref(branch))
    if tip is None:  # the current branch before its first commit, or no branch at all
        raise ValidationError(f"branch {branch!r} has no commits to push"
                              if branch == repo.head().branch else f"no branch {branch!r}")
    try:  # a branch made before the rule: no remote of every kind could hold it
        check_storable(branch, "branch")
    except ValidationError as e:
        raise ValidationError(f"push to {name} refused: {e}; rename it") from None
    with repo.lock():  # what the write here at the end checks, before the remote moves: a
        pass  # damaged ref or config row, a read-only repository refused it after
    base = repo.base
    remote = connect(url, name, base_hash=base.hash, must_exist=False)
    path = branch_path(branch)
    remote.transport.check_key(path)
    listed = remote.transport.list(HEADS)
    twin = case_twin(branch, listed)
    # on a case-insensitive disk, one file: the push would move it. A remote that lists
    # both names (an older memstore pushed them) holds two files: each moves on its own
    if twin is not None and branch not in listed:
        how, disk = twin_difference(branch, twin)
        raise ValidationError(f"push to {name} refused: it has a branch {twin!r}, which "
                              f"differs from {branch!r} {how} (a remote on {disk} stores "
                              "both as one file); rename the branch")
    clash = folder_clash(branch, listed)
    if clash is not None:  # a folder cannot hold both; on S3, no teammate could branch from both
        raise ValidationError(f"push to {name} refused: it has a branch {clash!r}, and a "
                              "remote stores a branch as a file, so one cannot be both a "
                              f"branch and the folder of another; rename {branch!r}")
    old = remote.transport.read_ref(path, damaged=True)
    result = PushResult(name, url, branch, old.commit, tip, guarantee=remote.transport.guarantee)
    if old.damaged is not None:  # a bad copy, a hand edit: replaced against its bytes
        if not force:
            raise ValidationError(
                f"push to {name} refused: its branch {branch!r} ({path}) holds "
                f"{old.size} bytes, not a commit id; {damaged_ref_way_out(path, name)}")
        result.forced, result.damaged = True, old.size
    if old.commit is not None and old.commit != tip:
        if not repo.has_commit(old.commit):
            if not force:
                raise PushRejectedError(
                    f"push to {name} rejected: {branch} there is at {old.commit[:12]}, which "
                    f"is not here (someone else pushed); fetch first (`memstore pull {name} "
                    f"{branch}`), or push --force to replace it", name, tip)
            result.forced = True
        elif not repo.is_ancestor(old.commit, tip):
            if not force:
                raise PushRejectedError(
                    _not_a_fast_forward(repo, name, branch, old.commit, tip), name, tip)
            result.forced = True
    with said_created(result):  # the remote is made first: a refusal after says so
        if not result.up_to_date:
            if remote.marker is None:
                result.created = remote.create(base.hash, base.spec, base.info)
            commits = reachable(repo, [tip],
                                held=_on_remote(repo, remote.transport, old.commit))
            result.moved = upload(repo, remote.transport, object_ids(commits),
                                  [c.id for c in commits])
            if with_stats:  # the whole history's, which earlier pushes may have left out
                result.moved = result.moved.add(
                    push_statistics(repo, remote.transport, reachable(repo, [tip])))
            try:
                remote.transport.swap_ref(path, tip, old)
            except StaleRefError as e:
                raise PushRejectedError(
                    f"push to {name} rejected: {branch} there moved to "
                    f"{e.now[:12] if e.now else '(deleted)'} while this push ran (another push "
                    f"landed first); fetch first (`memstore pull {name} {branch}`)", name,
                    tip) from None
            # the first branch is the default
            remote.transport.create(HEAD_FILE, head_bytes(branch))
        elif with_stats:  # the branch is there already: its statistics may not be
            result.moved = result.moved.add(
                push_statistics(repo, remote.transport, reachable(repo, [tip])))
        _track(repo, name, url, branch, tip)
        if set_upstream:
            try:
                remotes.record_upstream(repo, branch, Upstream(name, branch))
            except MemstoreError as e:  # the push itself landed: say so
                raise MemstoreError(f"pushed {branch} to {name}, but {e}") from None
    result.guarantee = remote.transport.guarantee
    result.seconds = time.perf_counter() - t0
    return result


@contextmanager
def said_created(result: PushResult | TagsPushResult) -> Iterator[None]:
    """A MemstoreError out of a push that created the remote (its marker written first)
    carries its URL (`created_url`), for the CLI to say so before the refusal: the next
    push finds the remote there and says nothing (a mistyped folder would go unnoticed)."""
    try:
        yield
    except MemstoreError as e:
        if result.created:
            e.created_url = result.url  # type: ignore[attr-defined]
        raise


def _not_a_fast_forward(repo: Repository, name: str, branch: str, theirs: str,
                        tip: str) -> str:
    """Why a push of `tip` over `theirs` (here, not an ancestor of `tip`) is refused. Where
    `tip` is an ancestor of `theirs` (a `reset` here dropped commits the remote has), the
    branch is only behind: a merge would bring nothing new, so say how far, as status does;
    both walks are on the records (is_ancestor stops at `tip`; the count reads its history)."""
    if repo.is_ancestor(tip, theirs):
        n = len(repo.log(theirs, exclude=[tip]))
        return (f"push to {name} rejected: your branch {branch!r} is behind "
                f"{name}/{branch} by {n} commit(s) ({theirs[:12]} there descends from "
                f"{tip[:12]}): pull (`memstore pull {name} {branch}`), or push --force to "
                "drop them there")
    return (f"push to {name} rejected: {branch} there ({theirs[:12]}) is not an ancestor "
            f"of {tip[:12]} (not a fast-forward); fetch first and merge (`memstore pull "
            f"{name} {branch}`), or push --force to replace it")


def _on_remote(repo: Repository, transport: Transport, old: str | None) -> set[str]:
    """The commit the remote holds with every object it reaches (reachable walks short of
    it and its ancestors): the remote branch's commit, where this repository has it (a ref
    is moved only once all its commit reaches is there). A push walks and lists only what
    its commits add to them, not the whole history. A remote that lacks the branch's
    commit itself (damaged, or its ref copied by hand) is trusted with none: the push walks
    the whole history and writes what the remote's listing lacks."""
    if old is None or not repo.has_commit(old):
        return set()
    if old not in remote_sizes(transport, [old]):
        return set()
    return {old}


def _track(repo: Repository, name: str, url: str, branch: str, tip: str) -> None:
    """Moves remote `name`'s tracking branch to `tip`; none for a remote removed while the
    push ran (`remote remove` deleted its tracking branches: one written now would be
    left behind, naming no remote), nor for one that names another store now (`remote
    rename` of another remote onto `name`, or set-url: its tracking branches say what
    that store holds, which this push did not write to)."""
    ref = remotes.tracking_ref(name, branch)
    with repo.lock():
        if remotes.moved(repo, name, url) is not None:
            return
        old = repo.refs.read(ref)
        if old != tip:
            repo.update_ref(ref, tip, expected=old, reason="update by push")  # git's
