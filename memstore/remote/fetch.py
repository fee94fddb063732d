"""fetch and pull: bring a remote's branches (and the commits they need) into the repository.

A fetch reads the remote's branches, walks back from each tip to the commits this
repository already has (one read per generation, so a long history costs round trips in
its depth, not its size), downloads the objects those commits name that are missing here
(or damaged: a file already at such a name is hashed, not trusted), each verified, and then, in ONE transaction, indexes the new commits and moves the
remote-tracking branches `refs/remotes/REMOTE/BRANCH` (by compare-and-swap): a fetch that
fails or is killed leaves the repository as it was (objects it wrote are removed again, or
are orphans gc removes). With `--with-stats` the statistics the fetched history names are
downloaded and checked before that transaction too (a damaged record refuses the whole
fetch), and stored after it. Local branches never move; `pull` then merges, as `merge`
does. The remote's tags whose commits are here once its branches are fetched (all of
them, with their history, for a clone) are created in the same transaction; a tag here is
never moved (git's "would clobber existing tag"), and a name that cannot be a tag here is
left: each said in one warning line. With `refetch` (git's `fetch --refetch`), every
object here that the remote's branches and tags need is checked too, and each one missing
or damaged is written again from the remote's intact copy (refetch.py)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..editing.settings import EditSettings
from ..errors import MemstoreError, MergeConflictError, ValidationError
from ..store import upstreams
from ..store.commits import Commit
from ..store.objects import hash_bytes
from ..store.refs import SHOWN, TAGS, Head, check_ref_name
from ..store.repository import Repository
from ..store.schema import transaction
from ..store.upstreams import Upstream
from . import remotes
from .connection import Remote, connect
from .layout import RemoteFormatError, object_path, parse_head
from .refetch import Refetched, refetch_objects
from .stats import fetch_statistics
from .transfer import (
    Moved,
    accept,
    corrupt_remote,
    discard,
    download,
    reachable,
    remote_sizes,
)
from .transport import RemoteError

if TYPE_CHECKING:  # pull's results; the rewrites are imported where pull merges or rebases
    from ..store.rebase import Rebased
    from ..store.rewrite import Report


class NoSuchBranchError(ValidationError):
    """The remote has no branch of the name a pull merges."""


@dataclass(frozen=True)
class RefUpdate:
    branch: str
    old: str | None  # None: new here
    new: str | None  # None: gone from the remote
    forced: bool = False  # old is not an ancestor of new: rewritten there (push --force)


CLOBBER = "would clobber existing tag"  # git's words for a tag here at another commit


@dataclass(frozen=True)
class TagUpdate:
    tag: str
    new: str  # the commit the remote's tag names: the tag is created here at it, unless
    refused: str | None = None  # why not: a tag here names another commit, or the name
    here: str | None = None  # the commit of that tag here, which stays (or, forced, moved)
    beside: str | None = None  # refused as this tag, a tag here or one the fetch creates
    beside_here: bool = False  # (then False), is its folder or in it: 'v' beside 'v/x'


@dataclass
class FetchResult:
    remote: str
    url: str
    updates: list[RefUpdate] = field(default_factory=list)
    moved: Moved = field(default_factory=Moved)
    seconds: float = 0.0
    passed_over: list[str] = field(default_factory=list)  # refs an older memstore named
    tags: list[TagUpdate] = field(default_factory=list)  # created, or kept (not clobbered)
    pruned_tags: dict[str, str] = field(default_factory=dict)  # prune_tags: tag → its commit
    refetched: Refetched | None = None  # with refetch: what was checked and written again
    head: str | None = None  # the branch REMOTE/HEAD names (a pruned one: git's 'dangling')


def _parse_commit(cid: str, data: bytes, label: str, base_hash: str) -> Commit:
    if hash_bytes(data) != cid:
        raise corrupt_remote(cid, label)
    try:
        commit = Commit.from_json(cid, json.loads(data))
    except (MemstoreError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise RemoteFormatError(f"{label}: object {cid} is not a commit "
                                f"({type(e).__name__}: {e})") from None
    if commit.base != base_hash:
        raise MemstoreError(f"{label}: commit {cid[:12]} was made on another base model")
    return commit


def new_commits(repo: Repository, remote: Remote, tips: list[str],
                written: list[str]) -> list[Commit]:
    """The commits reachable from `tips` that this repository lacks, parents first; their
    objects are verified and stored (appended to `written`)."""
    found: dict[str, Commit] = {}
    frontier = sorted({t for t in tips if not repo.has_commit(t)})
    base_hash = repo.base.hash
    while frontier:
        got = remote.transport.read_many(object_path(c) for c in frontier)
        following = set()
        for cid in frontier:
            data = got.get(object_path(cid))
            if data is None:
                accept(repo, cid, None, remote.label)  # raises: the remote lacks it
            commit = _parse_commit(cid, data, remote.label, base_hash)
            # put_bytes hashes a file already at the name and writes a damaged one again
            # (a record `fsck --repair` left out of the index); one there before is kept
            # if the fetch fails, not discarded
            there = repo.objects.contains(cid)
            repo.objects.put_bytes(data)
            if not there:
                written.append(cid)
            found[cid] = commit
            following.update(p for p in commit.parents_and_basis
                             if p not in found and not repo.has_commit(p))
        frontier = sorted(following)
    return parents_first(found)


def parents_first(commits: dict[str, Commit]) -> list[Commit]:
    """`commits` ordered so that each comes after its parents and basis among them, as
    Repository.add_commits indexes them (one depth-first pass)."""
    out: list[Commit] = []
    done: set[str] = set()
    for start in sorted(commits):
        stack = [(start, False)]
        while stack:
            cid, expanded = stack.pop()
            if cid in done or cid not in commits:
                continue
            if expanded:
                done.add(cid)
                out.append(commits[cid])
                continue
            stack.append((cid, True))
            c = commits[cid]
            stack.extend((p, False) for p in c.parents_and_basis)
    return out


def fetch(repo: Repository, name: str | None = None, *, with_stats: bool = False,
          remote: Remote | None = None, need: str | None = None,
          all_tags: bool = False, prune: bool = True,
          prune_tags: bool = False, refetch: bool = False, force: bool = False) -> FetchResult:
    """Fetches every branch of remote `name` (default: the current branch's upstream's
    remote, else origin or the only remote), through `remote` when the caller has it open
    already (a clone); refused before anything moves when the remote has no branch `need`
    (a pull's). The remote's tags come with it: each whose commit is here once the
    branches are fetched (git's auto-following of tags), or with `all_tags` (a clone's)
    every tag, with its history. A remote-tracking branch whose branch is gone from the
    remote is removed (git's `fetch --prune`, memstore's default), kept with `prune`
    False; with `prune` and `prune_tags` (git's `fetch --prune --prune-tags`), so is
    each tag here of a name the remote holds no tag of, one made here and never pushed
    too, in the same transaction, and every remote tag is fetched as with `all_tags`
    (git's -P is its tag refspec): the remote's tag list mirrored. With `refetch`, the
    objects here that the remote's branches and tags need are checked, and those missing
    or damaged written again from the remote (`FetchResult.refetched`; refetch.py), before
    the statistics and the index transaction. A tag here naming another commit stays
    (`TagUpdate.refused`: git's "would clobber existing tag"), but with `force` and every
    remote tag asked for (git's `fetch --tags --force`) it moves to the remote's commit
    (`TagUpdate.here`: the commit it named), in the same transaction."""
    t0 = time.perf_counter()
    all_tags = all_tags or (prune and prune_tags)  # git's -P is the tag refspec: every tag
    if name is None:  # '' is no default
        name = remotes.remote_for(repo, repo.head().branch)
    url = remotes.url_of(repo, name)
    if remote is None:
        remote = connect(url, name, base_hash=repo.base.hash)
    passed_over: list[str] = []
    branches = remote.transport.branches(passed_over)
    if need is not None and need not in branches:
        raise NoSuchBranchError(f"remote {name!r} has no branch {need!r}")
    tags = remote.transport.tags(passed_over)
    # every tag name there, those passed over too: a tag an older memstore named is there
    theirs = set(remote.transport.list(TAGS)) if prune and prune_tags else None
    if theirs is not None:  # one listing mirrored: not a tag deleted there since the read
        tags = {t: c for t, c in tags.items() if t in theirs}
    tips = set(branches.values()) | (_tag_commits(repo, remote, tags) if all_tags else set())
    written: list[str] = []
    indexed = False
    with repo.lock(), repo.refs.reason(f"fetch {name}", fallback=True):  # (clone's: its own)
        try:
            with repo.objects.folders_synced_once():  # all durable before the index names them
                commits = new_commits(repo, remote, sorted(tips), written)
                moved = download(repo, remote.transport,
                                 {o for c in commits for o in c.object_ids()[1:]},
                                 remote.label, written)
                moved = moved.add(Moved(len(commits), len(commits),
                                        sum(repo.objects.size(c.id) for c in commits)))
                refetched = None
                if refetch:  # the remote's every tag: what it reaches here is checked too
                    refetched = refetch_objects(repo, remote.transport, tips | set(tags.values()),
                                                {c.id: c for c in commits})
                    commits = parents_first({c.id: c for c in [*refetched.unindexed, *commits]})
                statistics = []
                if with_stats:  # checked before anything moves: a bad record refuses it
                    got, statistics = fetch_statistics(
                        repo, remote.transport,
                        reachable(repo, tips, {c.id: c for c in commits}),
                        remote.label, written)
                    moved = moved.add(got)
            remotes.still_at(repo, name, url, "nothing fetched")  # removed or renamed meanwhile
            old = remotes.tracking(repo, name)
            updates = [RefUpdate(b, old.get(b), c) for b, c in sorted(branches.items())
                       if old.get(b) != c]
            if prune:
                updates += gone(old, branches)
            arrived = {c.id for c in commits}
            pruned_tags = ({t: c for t, c in repo.tags().items() if t not in theirs}
                           if theirs is not None else {})
            followed = _followed_tags(repo, {t: c for t, c in tags.items()
                                             if c in arrived or repo.has_commit(c)},
                                      clobber=force and all_tags, going=set(pruned_tags))
            # the pruned tags go first: 'v' pruned makes room for 'v/x', as git's
            repo.add_commits(commits, {remotes.tracking_ref(name, u.branch): (u.old, u.new)
                                       for u in updates}
                             | {TAGS + t: (c, None) for t, c in pruned_tags.items()}
                             | {TAGS + t.tag: (t.here, t.new) for t in followed
                                if t.refused is None},
                             refetched.reindexed if refetched is not None else ())
            indexed = True
            updates = [replace(u, forced=True) if _forced(repo, u) else u for u in updates]
            head = repo.refs.remote_head(name)
        finally:
            if not indexed:
                discard(repo, written)
        for stats in statistics:  # checked above; a statistics object is kept once stored
            repo.put_statistics(stats)
    return FetchResult(name, url, updates, moved, time.perf_counter() - t0, passed_over,
                       followed, pruned_tags, refetched, head)


def gone(tracked: dict[str, str], branches: dict[str, str]) -> list[RefUpdate]:
    """What a prune removes: each remote-tracking branch of `tracked` (branch → its commit
    here) whose branch the remote's listing `branches` lacks, deleted there or passed over
    (a name an older memstore took), as git's `fetch --prune`."""
    return [RefUpdate(b, c, None) for b, c in sorted(tracked.items()) if b not in branches]


@dataclass
class PruneResult:
    remote: str
    url: str
    pruned: list[RefUpdate]  # old: the commit each named here
    dry_run: bool
    passed_over: list[str] = field(default_factory=list)


def prune(repo: Repository, name: str, *, dry_run: bool = False) -> PruneResult:
    """`remote prune NAME`, as git's: removes the remote-tracking branches of remote `name`
    whose branch is gone from it (`gone`, as a fetch prunes them), reading only its branch
    list, no object; each by compare-and-swap against the commit read, in one transaction.
    With `dry_run` nothing is removed: the result lists what would be."""
    url = remotes.url_of(repo, name, guess=False)
    passed_over: list[str] = []
    branches = connect(url, name, base_hash=repo.base.hash).transport.branches(passed_over)
    if dry_run:
        return PruneResult(name, url, gone(remotes.tracking(repo, name), branches), True,
                           passed_over)
    with repo.lock(), transaction(repo.db):
        remotes.still_at(repo, name, url, "nothing pruned")
        pruned = gone(remotes.tracking(repo, name), branches)
        for u in pruned:
            repo.refs.update(remotes.tracking_ref(name, u.branch), None, expected=u.old)
    return PruneResult(name, url, pruned, False, passed_over)


def clobbered(f: FetchResult) -> str | None:
    """The error line of a fetch that asked for every tag (`fetch --tags`, `-P`, `pull
    --tags`) and kept tags here at other commits (`CLOBBER`), as git's exits 1 on them
    ("! [rejected] … (would clobber existing tag)"); None where it kept none."""
    kept = [t for t in f.tags if t.refused == CLOBBER]
    if not kept:
        return None
    names = ", ".join(repr(t.tag) for t in kept)
    one, many = kept[0], len(kept) > 1
    naming = ("each names another commit here" if many
              else f"it names {one.here[:12]} here, {one.new[:12]} there")
    return (f"fetch from {f.remote} rejected tag{'s' * many} {names}: "
            f"{'they' if many else 'it'} would clobber existing tag{'s' * many} ({naming}; "
            f"a tag does not move: `memstore fetch {f.remote} --tags --force` takes the "
            "remote's); the rest was fetched")


def unstored(f: FetchResult) -> str | None:
    """The error line of a fetch that left out remote tags a tag it created is the folder
    of ('v/x' beside 'v', `TagUpdate.beside`), as git's fetch, clone and pull exit non-zero
    on a ref they cannot lock ("cannot lock ref 'refs/tags/v/x': 'refs/tags/v' exists"),
    the rest updated; None where it left none."""
    left = [t for t in f.tags if t.beside is not None]
    if not left:
        return None
    names = ", ".join(f"{t.tag!r} (beside tag {t.beside!r}"
                      f"{' here' if t.beside_here else ', fetched with it'})" for t in left)
    return (f"fetch from {f.remote} did not create tag{'s' * (len(left) > 1)} {names}: one "
            "tag cannot be the folder of another, as each is stored as a file; the rest was "
            "fetched")


def tag_errors(f: FetchResult, rejecting: bool) -> str | None:
    """A fetch's error line for its tags: those it left out beside another (`unstored`),
    and, where it asked for every tag (`rejecting`: --tags, -P, pull --tags), those it
    would clobber (`clobbered`); None where there are none."""
    lines = [x for x in (clobbered(f) if rejecting else None, unstored(f)) if x is not None]
    return "; ".join(lines) or None


def remote_default(repo: Repository, name: str) -> str:
    """The branch remote `name`'s HEAD names (what a clone checks out), read from it, for
    `remote set-head NAME -a`; one it has no branch of, or no HEAD, is git's 'Cannot
    determine remote HEAD'."""
    url = remotes.url_of(repo, name, guess=False)
    remote = connect(url, name, base_hash=repo.base.hash)
    data = remote.transport.read_head()
    branch = parse_head(data) if data is not None else None
    if branch is None or branch not in remote.transport.branches([]):
        raise MemstoreError(f"cannot determine the HEAD of {remote.label}: "
                            + ("it has none" if data is None else
                               "its HEAD file names no branch" if branch is None else
                               f"it names {branch[:SHOWN]!r}, which is no branch there")
                            + f"; `memstore remote set-head {name} BRANCH` names one")
    return branch


def _tag_commits(repo: Repository, remote: Remote, tags: dict[str, str]) -> set[str]:
    """The commits `tags` name, each held by the remote or here: a tag naming a commit
    that neither has refuses the fetch, naming the tag, before anything moves."""
    wanted = {c for c in tags.values() if not repo.has_commit(c)}
    there = remote_sizes(remote.transport, wanted)
    for tag, commit in sorted(tags.items()):
        if commit in wanted and commit not in there:
            raise RemoteError(f"{remote.label}: tag {tag!r} names commit {commit[:12]}, which "
                              "the remote lacks (a damaged remote: run `memstore fsck` on it); "
                              "nothing was fetched")
    return set(tags.values())


def _followed_tags(repo: Repository, tags: dict[str, str], *, clobber: bool = False,
                   going: set[str] | frozenset[str] = frozenset()) -> list[TagUpdate]:
    """What a fetch does with the remote's `tags` whose commits are here: a tag absent
    here is created; one here naming the same commit is left; one here naming another
    commit stays (git's "would clobber existing tag") unless `clobber` (then it moves, its
    `here` the commit it named), and a name that cannot be a tag here (a branch's, a
    remote's branch's, 'base'; one that a tag the fetch creates is the folder of, or is
    in: 'v' beside 'v/x', which a remote on S3 can hold) is not created: each `refused`,
    saying why (git's: "cannot lock ref 'refs/tags/v/x': 'refs/tags/v' exists"); the
    tags `going` (pruned in the same write) are no obstacle."""
    out = []
    made: set[str] = set()  # the tags created
    for tag, commit in sorted(tags.items()):
        here = repo.refs.read(TAGS + tag)
        if here == commit:
            continue
        if here is not None and clobber:
            out.append(TagUpdate(tag, commit, None, here))
            continue
        if here is not None:
            out.append(TagUpdate(tag, commit, CLOBBER, here))
            continue
        try:
            repo.check_new_tag(tag, going)
        except ValidationError as e:
            other = repo.refs.folder_clash(tag, TAGS, {TAGS + t for t in going})
            out.append(TagUpdate(tag, commit, str(e), beside=other,
                                 beside_here=other is not None))
            continue
        # a folder sorts before what is in it ('v' < 'v/x'): only the folders of this
        # name among those created here (the write would refuse the fetch whole)
        other = next((tag[:i] for i, ch in enumerate(tag) if ch == "/" and tag[:i] in made),
                     None)
        if other is not None:
            out.append(TagUpdate(tag, commit, f"tag {other!r} of the remote is fetched with "
                                 "it, and a remote stores a tag as a file, so one cannot be "
                                 "both a tag and the folder of another", beside=other))
            continue
        made.add(tag)
        out.append(TagUpdate(tag, commit))
    return out


def pull(repo: Repository, name: str | None = None, branch: str | None = None, *,
         with_stats: bool = False, prune: bool = True,
         all_tags: bool = False, ff: str = "allow",
         rebase: bool = False,
         verify_tip: Callable[[str], object] | None = None,
         ) -> tuple[FetchResult, Report | Rebased]:
    """fetch, then merge the remote's `branch` (default: the current branch's name) into
    the current branch: a fast-forward when possible, else a fact-level merge (conflicts
    listed, nothing written), as `memstore merge` does (`ff` as merge's: "only" refuses
    one that is no fast-forward, the fetch kept). With neither given, the current
    branch's upstream gives both, where it has one; with `name` alone, the upstream's
    branch where `name` is the upstream's remote (git's branch.NAME.merge). `rebase` (git's pull --rebase): the
    current branch rebased onto the fetched branch instead (store.rebase; a conflict
    refused with nothing changed, the fetch kept); on a branch with no commits yet, as
    without it (nothing to rebase: the branch starts at the fetched one). `verify_tip`
    (pull --verify-signatures) is given the fetched branch's commit before it is merged
    or rebased onto, and refuses it by raising."""
    with repo.lock():
        head = repo.head()
        up = None
        if branch is None and name is None:
            up = remotes.upstream_of(repo, head.branch)
        elif branch is None and head.branch is not None:  # REMOTE alone: the upstream's
            up = upstreams.get(repo.db, head.branch)  # branch where it is REMOTE's; one on
            if up is not None and up.remote != name:  # another remote, there or gone, is
                up = None  # not read: REMOTE's branch of the current one's name
        if up is not None:
            name, branch = up.remote, up.branch
        elif name is None and head.branch is not None:  # as status and rebase find it
            found = remotes.upstream_or_default(repo, head.branch)
            if found is None:
                raise ValidationError(upstreams.no_upstream(
                    head.branch, "name the remote and branch (`memstore pull REMOTE "
                    "BRANCH`)"))
            name = found[0].remote
        branch = branch if branch is not None else head.branch
        if branch is None:
            raise ValidationError("HEAD is detached: name the remote branch to pull")
        check_ref_name(branch)
        try:
            fetched = fetch(repo, name, with_stats=with_stats, need=branch, prune=prune,
                            all_tags=all_tags)
        except NoSuchBranchError as e:
            if up is None:
                raise
            raise NoSuchBranchError(f"{e} ({_upstream_gone(repo, up, head)})") from None
        try:
            rejected = tag_errors(fetched, all_tags)
            if rejected is not None:  # git's pull: its fetch failed, nothing merged
                raise MemstoreError(f"{rejected}; nothing merged")
            tip = repo.refs.read(remotes.tracking_ref(fetched.remote, branch))
            if verify_tip is not None and tip is not None:
                verify_tip(tip)
            report = (_rebase_fetched(repo, fetched, branch)
                      if rebase and head.commit is not None
                      else _merge_fetched(repo, fetched, branch, head, ff))
        except PullConflictError:
            raise
        except MemstoreError as e:
            # any other refusal (each side reverted facts, a damaged row, …): the fetch
            # landed all the same, and the CLI says so before the refusal, as for a conflict
            e.fetched = fetched  # type: ignore[attr-defined]
            raise
    return fetched, report


def _upstream_gone(repo: Repository, up: Upstream, head: Head) -> str:
    """What a pull says of an upstream the remote lacks. Deleted there only where this
    repository saw it there (its remote-tracking branch still here, from the last fetch or
    push); else it cannot tell: a clone of a remote with no branches records its upstream
    before anyone pushed it. And a push that is true of the names: `push -u` pushes the
    local branch under its own name, the upstream's only when they agree (none before the
    branch has commits)."""
    local = head.branch
    seen = repo.refs.read(remotes.tracking_ref(up.remote, up.branch)) is not None
    why = ("deleted there since the last fetch or push" if seen else
           "deleted there, or never pushed there (a clone of a remote with no branches "
           "records it before the first push)")
    ways = "`memstore branch --unset-upstream` forgets it"
    if head.commit is not None:
        ways += (f", `memstore push -u {up.remote} {local}` pushes this branch there again"
                 if up.branch == local else
                 f", `memstore push -u {up.remote} {local}` pushes this branch as "
                 f"{up.remote}/{local} and makes that its upstream")
    return f"the upstream of {local!r}, {up.name}, is not on the remote: {why}; {ways}"


def _rebase_fetched(repo: Repository, fetched: FetchResult, branch: str) -> Rebased:
    """pull --rebase: the current branch rebased onto the fetched REMOTE/`branch`."""
    ref = remotes.tracking_ref(fetched.remote, branch)
    if repo.refs.read(ref) is None:
        raise ValidationError(f"remote {fetched.remote!r} has no branch {branch!r}")
    from ..store.rebase import rebase  # the engine: on pull's paths only, not fetch's

    shown = f"{fetched.remote}/{branch}"
    try:
        return rebase(repo, ref, shown=shown, action="pull --rebase")
    except MergeConflictError as e:
        raise PullConflictError(f"{e}; {shown} is fetched", e.details, fetched) from None


def _merge_fetched(repo: Repository, fetched: FetchResult, branch: str, head: Head,
                   ff: str = "allow") -> Report:
    """pull's merge of the fetched REMOTE/`branch` into `head`'s branch."""
    ref = remotes.tracking_ref(fetched.remote, branch)
    if repo.refs.read(ref) is None:
        raise ValidationError(f"remote {fetched.remote!r} has no branch {branch!r}")
    from ..store.merge_message import pull_message
    from ..store.rewrite import merge  # the engine: on pull's paths only, not fetch's

    shown = f"{fetched.remote}/{branch}"
    try:
        report = merge(repo, ref, message=pull_message(branch, fetched.url, head.branch),
                       shown=shown, ff=ff, action="pull")
        if head.commit is None and report.head is not None:
            report.notes["settings_from"] = _settings_as_clone(repo, report.head)
    except MergeConflictError as e:
        raise PullConflictError(
            f"merge of {shown} refused: {len(e.details)} conflicting fact(s); nothing was "
            f"written, {shown} is fetched (to settle one, make the sides agree, then pull "
            f"again: take {shown}'s target with `memstore commit FILE --supersede` here, "
            f"or revert the commit that wrote yours; to keep yours, write it with "
            f"--supersede on a branch made at {shown} and merge that branch; README: "
            "Settling a conflict)", e.details, fetched) from None
    return report


def _settings_as_clone(repo: Repository, head: str) -> str | None:
    """A pull onto a branch with no commits yet (`init`, `remote add`, `pull`: git's way
    to start from a remote) takes the editor settings a clone takes, those of the newest
    update set on the branch, so that its next commit edits as the team's did (the same
    layers, λ, statistics) and not with `init`'s defaults for the architecture. Returns the
    commit whose settings were taken, None where they were the same already or there is
    no update set."""
    sets = repo.chain_sets(head)
    if not sets:
        return None
    settings = EditSettings.from_dict(sets[-1].update_set.settings) \
        .with_changes(token_rule=EditSettings.token_rule)
    if settings == repo.settings:
        return None
    repo.set_settings(settings)
    return sets[-1].commit


def _forced(repo: Repository, u: RefUpdate) -> bool:
    """Whether the fetched update `u` rewrote the branch there (its old commit is no
    ancestor of the new), as the fetch's report marks it, once the refs have moved. An old
    commit not here (a damaged tracking ref's, which the fetch moves back) is not marked:
    is_ancestor took its id for a revision and the fetch failed. Nor is one whose check
    meets damage (a commits row its record disagrees with, which fsck names): the fetch had
    landed, and failed after moving the refs, its report unprinted."""
    if not (u.old and u.new and repo.has_commit(u.old)):
        return False
    try:
        return not repo.is_ancestor(u.old, u.new)
    except MemstoreError:
        return False


class PullConflictError(MergeConflictError):
    """The merge of a pull met conflicting facts: nothing was merged, but the fetch before
    it landed (`fetched`: the remote-tracking branches moved, the objects are here), which
    the CLI reports as a fetch's."""

    def __init__(self, message: str, details: list[str], fetched: FetchResult) -> None:
        super().__init__(message, details)
        self.fetched = fetched
