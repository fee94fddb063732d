"""push --tags (and `push REMOTE TAG`): create on a remote the tags this repository has.

A tag names a commit and does not move. The order is a branch's push's:

1. read each remote tag of the name (with the token its compare-and-swap checks);
   refuse the whole push, before writing anything, for a remote tag file that is not a
   commit id, or a tag name the remote cannot store beside the tags it has;
2. a remote tag naming the commit ours names is up to date; one naming another commit is
   refused for that tag (as git's push refuses it, "already exists"), unless `--force`;
3. write the objects the remote lacks of the history of every tag to create (and, with
   `--with-stats`, the statistics): until a tag names them they are harmless;
4. create each tag by compare-and-swap against "absent" (on S3 `If-None-Match: *`, as
   for a new branch); with `--force`, replace one against the commit read, never a tag
   pushed since. A tag created meanwhile at another commit is refused, as in 2.

A kill anywhere leaves each remote tag absent or at its commit, with all the history
that commit needs already there. Nothing here records anything: git keeps no
remote-tracking tags."""
from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field

from ..errors import ValidationError
from ..store.refs import (
    TAGS,
    _caseless,
    check_ref_name,
    check_storable,
    refspec,
    twin_difference,
)
from ..store.repository import Repository
from . import remotes
from .connection import connect
from .layout import RemoteFormatError, damaged_ref_way_out, tag_path
from .push import said_created
from .stats import push_statistics
from .transfer import Moved, object_ids, reachable, remote_sizes, upload
from .transport import RefValue, StaleRefError, Transport


@dataclass
class TagUpdate:
    tag: str
    old: str | None  # the remote tag before (None: new there)
    new: str
    refused: bool = False  # it names another commit there (and no --force), or it
    # moved while this push ran (`old`: what it held then; None: removed there)
    damaged: int | None = None  # forced: the bytes the remote tag held, no commit id

    @property
    def up_to_date(self) -> bool:
        return self.old == self.new

    @property
    def forced(self) -> bool:
        return (self.old is not None or self.damaged is not None) and not self.up_to_date \
            and not self.refused


@dataclass
class TagsPushResult:
    remote: str
    url: str
    tags: list[TagUpdate] = field(default_factory=list)
    moved: Moved = field(default_factory=Moved)
    created: bool = False  # this push created the remote (nothing was there)
    guarantee: str = ""  # what the store guarantees for the ref update
    seconds: float = 0.0

    @property
    def refused(self) -> list[TagUpdate]:
        return [t for t in self.tags if t.refused]


def pushed_ref(repo: Repository, name: str) -> tuple[str, str]:
    """What `push REMOTE NAME` pushes, by git's rules for a refspec: (HEADS or TAGS, the
    short name) of this repository's ref `name` names."""
    return refspec(name, lambda ref: repo.refs.read(ref) is not None, "here")


def push_tags(repo: Repository, name: str | None = None, only: str | None = None, *,
              force: bool = False, with_stats: bool = False,
              follow: str | None = None) -> TagsPushResult:
    """Creates on remote `name` (default: the current branch's upstream's remote, else
    origin or the only remote) every local tag it lacks, or tag `only`; with `follow` (a
    commit: the tip of the branch just pushed, git's `push --follow-tags`), only the tags
    of commits in its history (parents) that the remote has no tag of: one it has, at
    any commit, is left as it is, never refused."""
    t0 = time.perf_counter()
    if name is None:  # '' is no default
        name = remotes.remote_for(repo, repo.head().branch)
    url = remotes.url_of(repo, name)
    tags = repo.tags()
    if only is not None:
        if only not in tags:
            raise ValidationError(f"no tag {only!r}")
        tags = {only: tags[only]}
    if follow is not None:  # memstore's tags are all git's lightweight kind: each follows
        held = _history(repo, follow)
        tags = {t: c for t, c in tags.items() if c in held}
    for tag in tags:  # made before a rule on names: a remote would refuse it to every fetch
        check_ref_name(tag, "tag")
        try:  # or could not store it on every kind of store
            check_storable(tag, "tag")
        except ValidationError as e:
            raise ValidationError(f"push to {name} refused: {e}; rename it") from None
    remote = connect(url, name, base_hash=repo.base.hash, must_exist=False)
    transport = remote.transport
    for tag in tags:
        transport.check_key(tag_path(tag))
    listed = transport.list(TAGS)
    if follow is not None:
        tags = {t: c for t, c in tags.items() if t not in listed}
    _check_fits(name, tags, listed)
    result = TagsPushResult(name, url, guarantee=transport.guarantee)
    read: dict[str, RefValue] = {}
    for tag, tip in sorted(tags.items()):  # a large file there is read no further than a
        read[tag] = transport.read_ref(tag_path(tag), damaged=True)  # ref's size: damaged
        old, damaged = read[tag].commit, read[tag].damaged is not None
        if damaged and not force:  # a bad copy, a hand edit
            raise ValidationError(
                f"push to {name} refused: its tag {tag!r} ({tag_path(tag)}) holds "
                f"{read[tag].size} bytes, not a commit id; "
                f"{damaged_ref_way_out(tag_path(tag), name)}")
        result.tags.append(TagUpdate(tag, old, tip, refused=old not in (None, tip) and not force,
                                     damaged=read[tag].size if damaged else None))
    going = [u for u in result.tags if not u.up_to_date and not u.refused]
    with said_created(result):  # the remote is made first: a refusal after says so
        if going and remote.marker is None:
            result.created = remote.create(repo.base.hash, repo.base.spec, repo.base.info)
        if going or with_stats:
            held = _on_remote(repo, transport, {*_branches(transport),
                                                *(u.old for u in result.tags if u.old)})
            commits = reachable(repo, {u.new for u in going}, held=held)
            result.moved = upload(repo, transport, object_ids(commits), [c.id for c in commits])
            if with_stats:
                pushed = {u.new for u in result.tags if not u.refused}
                result.moved = result.moved.add(push_statistics(
                    repo, transport, reachable(repo, pushed)))
        for u in going:
            try:
                transport.swap_ref(tag_path(u.tag), u.new, read[u.tag])
            except StaleRefError as e:  # pushed (or removed) meanwhile: as if read at step 1
                u.old, u.refused = e.now, e.now != u.new
    result.guarantee = transport.guarantee
    result.seconds = time.perf_counter() - t0
    return result


def _history(repo: Repository, tip: str) -> set[str]:
    """`tip` and its ancestors (by parents, as git's follow-tags walks them), each row
    checked against its record, as the push walks them."""
    from ..store import history

    return history.ancestors(history.checked_graph(repo.store), tip)


def _on_remote(repo: Repository, transport: Transport, refs: set[str]) -> set[str]:
    """The commits the remote holds with every object they reach (reachable walks short of
    them and their ancestors): those of `refs` (its branches' and tags' commits) that this
    repository has and the remote holds (a ref names a commit only once all it reaches is
    there). A tag onto a pushed history walks and lists only what it adds, as a branch's
    push does."""
    there = remote_sizes(transport, {c for c in refs if repo.has_commit(c)})
    return set(there)


def _branches(transport: Transport) -> set[str]:
    """The commits of the remote's branches; none where a branch file is damaged (fsck
    names it): the push then trusts no branch, and walks the tags' whole history."""
    try:
        return set(transport.branches([]).values())
    except RemoteFormatError:
        return set()


def _check_fits(name: str, tags: dict[str, str], listed: dict[str, int]) -> None:
    """A tag is stored as the file refs/tags/NAME: refuses a push, before it writes
    anything, of a tag that differs only by case or Unicode normalization from another tag
    of the remote or of the push (a remote on a disk that ignores them stores both as one
    file), or that is the folder of another or in one ('v1' beside 'v1/rc'). A tag the
    remote holds already is not: a pair there (an S3 remote can hold 'v' and 'v/x') is the
    remote's, named by its fsck, and stopped every later `push --tags` ("rename one" of a
    tag already there). Each name is looked up, not compared with every other (that took
    3.5 s of CPU at 2,000 tags, growing with their square)."""
    names = sorted(set(listed) | set(tags))
    present = set(names)
    folded: dict[str, list[str]] = {}  # the names of each caseless form, sorted
    for n in names:
        folded.setdefault(_caseless(n), []).append(n)
    for tag in sorted(tags):
        if tag in listed:
            continue
        twin = next((n for n in folded[_caseless(tag)] if n != tag), None)
        if twin is not None:
            how, disk = twin_difference(tag, twin)
            raise ValidationError(f"push to {name} refused: tag {tag!r} differs {how} from tag "
                                  f"{twin!r}{_where(twin, listed)} (a remote on {disk} stores "
                                  "both as one file); rename one")
        # a folder of it (the shortest first, as sorted), else the first name in it
        clash = next((tag[:i] for i, ch in enumerate(tag) if ch == "/" and tag[:i] in present),
                     None)
        below = bisect_left(names, tag + "/")
        if clash is None and below < len(names) and names[below].startswith(tag + "/"):
            clash = names[below]
        if clash is not None:
            raise ValidationError(f"push to {name} refused: tag {tag!r} cannot be stored beside "
                                  f"tag {clash!r}{_where(clash, listed)} (a remote stores a tag "
                                  "as a file, so one cannot be both a tag and the folder of "
                                  "another); rename one")


def _where(tag: str, listed: dict[str, int]) -> str:
    return " of the remote" if tag in listed else ""
