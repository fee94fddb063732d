"""Named remotes (`memstore remote add origin URL`) and their remote-tracking branches.

A remote is a name and a URL, kept in the index's config table (key "remotes"); nothing
else about it is stored: credentials come from the environment or fsspec's configuration
when the store is contacted. What the last fetch saw of remote NAME's branch B is the ref
`refs/remotes/NAME/B`, a revision like any other (`origin/main`), and a root for gc. A
branch's upstream (store.upstreams), when recorded, names the remote branch that push,
fetch, pull and status use for it; without one, the default remote's branch of its name."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import MemstoreError, ValidationError
from ..store import reflog, upstreams
from ..store.refs import HEADS, REMOTES, SHOWN, branch_ref, check_ref_name, no_such, none_deleted
from ..store.repository import Repository
from ..store.schema import transaction
from ..store.upstreams import Upstream
from . import urls

CONFIG_KEY = upstreams.REMOTES_KEY
DEFAULT = upstreams.DEFAULT_REMOTE


def check_remote_name(name: str) -> str:
    check_ref_name(name, "remote")
    if "/" in name:
        raise ValidationError(f"invalid remote name {name!r}: it contains '/'")
    return name


def remotes(repo: Repository) -> dict[str, str]:
    """Name → URL of every remote (a relative folder path, written by hand, taken from the
    repository's root: urls.anchored); a row that is not names and URLs (edited by hand)
    is an error naming it."""
    raw = upstreams.remote_table(repo.db)
    return {name: urls.anchored(url, repo.root) for name, url in sorted(raw.items())}


def name_of(known: dict[str, str], url: str) -> str | None:
    """The name of the remote of `known` (`remotes`) at `url`, as recorded (a folder made
    absolute); None when there is none."""
    try:
        url = urls.normalise(url)
    except ValidationError:
        return None
    return next((name for name, u in known.items() if u == url), None)


def add(repo: Repository, name: str, url: str) -> str:
    """Records remote `name` at `url` (checked, not contacted); returns the URL recorded."""
    check_remote_name(name)
    url = urls.check(url)
    with repo.lock(), transaction(repo.db):
        known = remotes(repo)
        if name in known:
            raise ValidationError(f"remote {name!r} already exists ({known[name]})")
        _not_hiding(repo, name)
        repo.set_config(CONFIG_KEY, {**known, name: url})
    return url


def _not_hiding(repo: Repository, name: str) -> None:
    """A remote may not be named `name` where a branch or tag `name/B` is here: REMOTE/B
    would find that branch or tag, not the remote's B."""
    hiding = [(kind, n) for kind, names in (("branch", repo.branches()), ("tag", repo.tags()))
              for n in names if n.startswith(name + "/")]
    if hiding:
        kind, n = hiding[0]
        raise ValidationError(f"invalid remote name {name!r}: {kind} {n!r} would hide its "
                              f"branch {n.split('/', 1)[1]!r}; choose another name")


def set_url(repo: Repository, name: str, url: str) -> tuple[str, str]:
    """`remote set-url NAME URL` (the shared folder moved, the bucket renamed): records
    `url` (checked, not contacted) for remote `name`, keeping its remote-tracking branches
    and the upstreams naming it, as git's (`remove` then `add` would drop both). Returns
    the old URL and the new one, as recorded."""
    url = urls.check(url)
    with repo.lock(), transaction(repo.db):
        known = remotes(repo)
        if name not in known:
            raise ValidationError(f"no remote {name!r}{_what_else(repo, known, name)}"
                                  + (f"; known: {', '.join(known)}" if known else ""))
        repo.set_config(CONFIG_KEY, {**known, name: url})
    return known[name], url


@dataclass(frozen=True)
class Renamed:
    url: str
    tracking: dict[str, str]  # branch → commit of each remote-tracking branch moved
    upstreams: list[str]  # the branches whose upstream named the remote


def rename(repo: Repository, old: str, new: str) -> Renamed:
    """`remote rename OLD NEW`, as git's: the remote, its remote-tracking branches (OLD/B
    becomes NEW/B) and every upstream naming it, in one transaction: a refusal (OLD
    missing, NEW taken or invalid, a ref in the way) changes nothing."""
    check_remote_name(new)
    with repo.lock(), transaction(repo.db):
        known = remotes(repo)
        url_of(repo, old, guess=False)
        if new in known:
            raise ValidationError(f"remote {new!r} already exists ({known[new]})")
        _not_hiding(repo, new)
        moving, there = tracking(repo, old), tracking(repo, new)
        if there:  # left by hand or by damage: they would mix with OLD's
            raise ValidationError(f"cannot rename remote {old!r} to {new!r}: remote-tracking "
                                  f"branch {new}/{next(iter(there))} is already here "
                                  f"(`memstore branch -d -r {new}/{next(iter(there))}`)")
        named = upstreams.remote_renamed(repo.db, old, new)  # before the refs: their moves
        head = repo.refs.remote_head(old)
        if head is not None:  # git's rename: OLD/HEAD -> OLD/B becomes NEW/HEAD -> NEW/B
            repo.refs.set_remote_head(old, None)
            repo.refs.set_remote_head(new, head)
        for branch, commit in moving.items():  # snapshot it
            src, dst = tracking_ref(old, branch), tracking_ref(new, branch)
            with repo.refs.reason(f"remote: renamed {src} to {dst}"):  # git's words
                repo.refs.update(src, None, commit, keep_log=True)
                reflog.renamed(repo.db, src, dst)  # its log goes with it, as git's
                repo.refs.update(dst, commit, None, renamed=True)
        url = known.pop(old)
        repo.set_config(CONFIG_KEY, {**known, new: url})
    return Renamed(url, moving, named)


def remove(repo: Repository, name: str) -> str:
    """Forgets remote `name` and its remote-tracking branches; returns its URL."""
    with repo.lock(), transaction(repo.db):
        known = remotes(repo)
        if name not in known:
            raise ValidationError(f"no remote {name!r}")
        if repo.refs.remote_head(name) is not None:  # NAME/HEAD goes with them, as git's
            repo.refs.set_remote_head(name, None)
        for branch, commit in tracking(repo, name).items():
            repo.refs.update(tracking_ref(name, branch), None, commit)
        url = known.pop(name)
        upstreams.dropped(repo.db, remote=name)  # as git drops branch.*.remote = NAME
        repo.set_config(CONFIG_KEY, known)
    return url


def set_head(repo: Repository, name: str, branch: str | None) -> str | None:
    """`remote set-head NAME BRANCH` (`-d`: `branch` None), as git's: points NAME/HEAD,
    the revision `NAME` names (refs/remotes/NAME/HEAD), at remote-tracking branch
    NAME/`branch`, which must be here (git's 'Not a valid ref'), or deletes it (none
    there: nothing to do, as git's). Returns what it named before. Not logged, where git
    2.39's clone and set-head log it ('clone: from URL', 'remote set-head'): `reflog show
    origin/HEAD` lists nothing here."""
    if branch is not None:  # not HEAD itself (a loop), nor a name no branch may have
        check_ref_name(branch)
    with repo.lock(), transaction(repo.db):
        url_of(repo, name, guess=False)
        before = repo.refs.remote_head(name)
        if branch is not None and repo.refs.read(tracking_ref(name, branch)) is None:
            shown = branch if len(branch) <= SHOWN else branch[:SHOWN] + "…"
            raise ValidationError(f"no remote-tracking branch {name}/{shown} (git's 'Not a "
                                  f"valid ref: {tracking_ref(name, shown)}'): `memstore fetch "
                                  f"{name}` brings the remote's branches, `memstore branch -r` "
                                  "lists them")
        if branch is None and before is None:  # git's -d says nothing then: nothing to do
            return None
        repo.refs.set_remote_head(name, branch)
    return before


def url_of(repo: Repository, name: str, *, guess: bool = True) -> str:
    """The URL of remote `name`; none is one line naming the remotes there are, and with
    `guess` (where REMOTE comes before a BRANCH, as push's) what `name` is instead."""
    known = remotes(repo)
    if name not in known:
        hint = f"; known: {', '.join(known)}" if known else " (add one with `memstore remote add`)"
        what = _what_else(repo, known, name) if guess else ""
        raise ValidationError(f"no remote {name!r}{what}{hint}")
    return known[name]


def _what_else(repo: Repository, known: dict[str, str], name: str) -> str:
    """What `name`, given where a remote belongs, is instead, for the error that says it is
    none: `push main` (a branch) and `pull origin/main` (REMOTE/BRANCH as one word), which
    git reads the same way, are meant as `push origin main` and `pull origin main`."""
    remote, _, branch = name.partition("/")
    if branch and remote in known:
        return f" (REMOTE/BRANCH: the remote is {remote!r}, its branch {branch!r})"
    try:
        check_ref_name(name)
        is_branch = repo.refs.read(branch_ref(name)) is not None
    except MemstoreError:  # not a name a branch can have, or a damaged row: no hint
        return ""
    if is_branch and known:
        first = DEFAULT if DEFAULT in known else next(iter(known))
        return f" ({name!r} is a branch: the remote comes first, `{first} {name}`)"
    return ""


def still_at(repo: Repository, name: str, url: str, undone: str) -> None:
    """Under the lock, before a command that read remote `name`'s store at `url` writes its
    remote-tracking branches: the remote must still be `name` at `url`. A `remote remove`
    landing meanwhile would leave them naming no remote; a `remote rename` of another
    remote onto the name (git's fork workflow: rename origin upstream, rename fork origin)
    or a `set-url` would have one store's branches written, and pruned, as another's.
    Either refuses, saying `undone`."""
    why = moved(repo, name, url)
    if why is not None:
        raise MemstoreError(f"{why}: {undone}")


def moved(repo: Repository, name: str, url: str) -> str | None:
    """Why remote `name` is no longer the store at `url` that a command read (`still_at`'s
    refusal; a push that landed writes no tracking branch then, and says nothing): removed,
    or naming another store now; None where it still is."""
    now = remotes(repo).get(name)
    if now is None:
        return f"remote {name!r} is gone (removed while this command ran?)"
    if now != url:
        return (f"remote {name!r} now names {now}, not {url}, which this command read "
                "(renamed or set-url while it ran?)")
    return None


def default_remote(repo: Repository) -> str:
    """'origin', or the only remote there is."""
    known = remotes(repo)
    remote = upstreams.default_remote(known)
    if remote is not None:
        return remote
    raise ValidationError(f"several remotes ({', '.join(known)}) and none is 'origin': "
                          "name the remote")


def upstream_of(repo: Repository, branch: str | None) -> Upstream | None:
    """The recorded upstream of `branch` (None: none recorded, or no branch), whose remote
    must still exist: one naming no remote is damage to the config (as a malformed one is,
    exit 1), written by hand (`remote remove` drops the upstreams naming the remote, and
    record_upstream records none for a remote that is not there)."""
    up = upstreams.get(repo.db, branch) if branch is not None else None
    if up is not None and up.remote not in remotes(repo):
        raise MemstoreError(upstreams.no_remote(branch, up))
    return up


def upstream_or_default(repo: Repository, branch: str) -> tuple[Upstream, bool] | None:
    """The upstream `branch` is compared with and rebased onto when none is named, as `pull`
    merges it: the recorded one (True: `branch -vv` says [gone] when its tracking branch is
    not here), else the default remote's branch of the same name (False); None with
    several remotes and none 'origin' (no default). `status`, `branch -vv` and `rebase`
    take it from here, so that they name the same one."""
    return upstreams.upstream_or_default(repo.db, branch, remotes(repo))


def remote_for(repo: Repository, branch: str | None) -> str:
    """The remote a command given none uses for `branch`: its upstream's, else the default."""
    up = upstream_of(repo, branch)
    return up.remote if up is not None else default_remote(repo)


def set_upstream(repo: Repository, branch: str | None, target: str) -> tuple[str, Upstream]:
    """`branch --set-upstream-to REMOTE/BRANCH [NAME]`: records the upstream of `branch`
    (default: the current one), a remote-tracking branch that exists (fetched or pushed);
    returns the branch and its upstream."""
    name, branch = branch, _local(repo, branch)
    remote, _, theirs = target.partition("/")
    if not theirs:
        raise ValidationError(f"invalid upstream {target!r}: give REMOTE/BRANCH (a remote's "
                              "branch, as `origin/main`)")
    url_of(repo, remote)  # a remote that exists
    with repo.lock(), transaction(repo.db):
        branch = _local(repo, name)  # again: the current branch may be another one now
        # asked before the rule on names: origin/HEAD here is one the caller could not read
        # as its branch (dangling, or none), and git says this of it, not 'invalid name'
        if repo.refs.read(tracking_ref(remote, theirs)) is None:
            raise ValidationError(f"the requested upstream branch {target!r} does not exist: "
                                  f"fetch {remote} first (`memstore fetch {remote}`), or "
                                  "push a new branch with `memstore push -u`")
        up = Upstream(remote, check_ref_name(theirs))
        record_upstream(repo, branch, up)
    return branch, up


def unset_upstream(repo: Repository, branch: str | None) -> str:
    """`branch --unset-upstream [NAME]`: forgets the upstream of `branch` (default: the
    current one), malformed or naming a remote gone; returns the branch."""
    with repo.lock(), transaction(repo.db):  # the current branch as it is now
        branch = branch if branch is not None else repo.head().branch
        if branch is None:
            raise ValidationError("HEAD is detached: name the branch")
        raw = repo.get_config(upstreams.CONFIG_KEY)
        if raw is None or isinstance(raw, dict) and branch not in raw:  # malformed: cleared
            raise ValidationError(f"branch {branch!r} has no upstream information")
        record_upstream(repo, branch, None)
    return branch


def record_upstream(repo: Repository, branch: str, up: Upstream | None) -> None:
    """Records `up` as the upstream of `branch` (None: forgets it), the other branches'
    read in the same transaction: `push -u` after the push, clone, and `branch
    --set-upstream-to` and `--unset-upstream` after their checks (inside their own
    transaction: this one is then its savepoint). A remote removed since the caller
    read it (`remote remove` while `push -u` ran) is refused: the upstream would name no
    remote."""
    with repo.lock(), transaction(repo.db):
        if up is not None and up.remote not in remotes(repo):
            raise MemstoreError(f"remote {up.remote!r} is gone (removed while this command "
                                f"ran?): no upstream recorded for branch {branch!r}")
        repo.set_config(upstreams.CONFIG_KEY, upstreams.table_with(repo.db, branch, up))


def _local(repo: Repository, branch: str | None) -> str:
    head = repo.head()
    branch = branch if branch is not None else head.branch
    if branch is None:
        raise ValidationError("HEAD is detached: name the branch")
    if repo.refs.read(branch_ref(branch)) is None:
        if branch != head.branch:
            raise ValidationError(f"no branch {branch!r}")
        # the current branch before its first commit: git 2.39 refuses it in these words
        # (an upstream recorded there was listed by no `branch -vv` nor `status`, yet pulled)
        raise ValidationError(f"no commit on branch {branch!r} yet: commit, or start it "
                              "from a remote's branch (`memstore pull REMOTE BRANCH`), "
                              "then set its upstream")
    return branch


def tracking_ref(remote: str, branch: str) -> str:
    return f"{REMOTES}{remote}/{branch}"


def tracking(repo: Repository, remote: str) -> dict[str, str]:
    """Branch → commit of every remote-tracking branch of `remote`."""
    return repo.refs.list(f"{REMOTES}{remote}/")


def all_tracking(repo: Repository) -> dict[str, str]:
    """REMOTE/BRANCH → commit of every remote-tracking branch, by name (`branch -r`); a
    damaged row is a DamagedIndexError naming its ref."""
    return repo.refs.list(REMOTES)


def delete_tracking(repo: Repository, names: list[str]) -> dict[str, str]:
    """`branch -d -r REMOTE/BRANCH...`: forgets the remote-tracking branches `names` here,
    as git's (no merge check: they are the remote's, which is not contacted and keeps them;
    the next fetch brings them back), all or none (a name that is none refuses them all).
    A branch whose upstream one was is then reported gone. Name → the commit it named
    (None for one whose row held no commit id: deleted so, `Refs.drop`, as fsck says
    where no snapshot holds it sound). REMOTE/HEAD goes alone, its branch stays, as git's
    (the commit it named through that branch said; None where that branch is gone)."""
    names = list(dict.fromkeys(names))
    damaged = [n for n in names if isinstance(n, str) and n
               and repo.refs.damaged(REMOTES + n) is not None]
    with repo.lock(mending=REMOTES + damaged[0] if damaged else None), \
            transaction(repo.db):
        commits = {n: None if n in damaged else repo.refs.read(REMOTES + n) for n in names}
        heads = repo.refs.remote_heads()  # origin/HEAD: deleted as git's, not its branch
        missing = [n for n, c in commits.items()  # (a dangling one too: None, as git's)
                   if c is None and n not in damaged and n not in heads]
        if missing:  # one is told what it is instead; several, how to list them
            shown = [n if len(n) <= SHOWN else n[:SHOWN] + "…" for n in missing]
            hint = (_not_tracking(repo, missing[0], shown[0]) if len(missing) == 1
                    else " (`memstore branch -r` lists them)")
            raise ValidationError(f"{no_such('remote-tracking branch', shown)}{hint}"
                                  f"{none_deleted(names)}")
        for n, c in commits.items():
            if n in damaged:
                repo.refs.drop(REMOTES + n)
            elif n in heads:
                repo.refs.set_remote_head(n[:-len("/HEAD")], None)
            else:
                repo.refs.update(REMOTES + n, None, expected=c)
    return commits


def _not_tracking(repo: Repository, name: str, shown: str) -> str:
    """What `name` (`shown`), not a remote-tracking branch, is instead, for the error that
    says so."""
    if name.startswith("remotes/") and repo.refs.read("refs/" + name) is not None:
        return f" (`branch -a` shows it so: say {shown[len('remotes/'):]!r})"
    if name and repo.refs.read(HEADS + name) is not None:
        return f" (it is a local branch: `memstore branch -d {shown}` deletes it)"
    return " (`memstore branch -r` lists them)"


def upstream(repo: Repository, branch: str | None = None, *,
             g: dict[str, tuple[tuple[str, ...], float]] | None = None,
             walks: dict[str, set[str]] | None = None) -> dict[str, object] | None:
    """Where `branch` (default: the current one) stands against its upstream (the
    recorded one, else the default remote's branch of the same name, as `pull` merges it):
    its name, commit, and the commits each side has that the other lacks (`ahead`,
    `behind`), as of the last fetch; None on a detached HEAD, an unborn branch, or with no
    such tracking branch. A recorded upstream whose remote or branch is gone has `gone`
    true (and commit, ahead, behind None), as git's 'the upstream is gone'. A malformed one
    is a MemstoreError. `g` (the rows' graph) and `walks` (commit → its ancestors) may be
    shared by the calls of one listing (`branch -vv`): one query, each commit's history
    walked once however many branches name it or track it."""
    from ..store import history

    if branch is None:
        head = repo.head()
        branch, commit = head.branch, head.commit
    else:
        commit = repo.refs.read(branch_ref(branch))
    if branch is None or commit is None:
        return None
    found = upstream_or_default(repo, branch)
    if found is None:  # several remotes, none 'origin': no default to compare with
        return None
    up, recorded = found
    theirs = (repo.refs.read(tracking_ref(up.remote, up.branch))
              if up.remote in remotes(repo) else None)
    if theirs is None:
        return ({"name": up.name, "commit": None, "ahead": None, "behind": None, "gone": True}
                if recorded else None)
    if not repo.has_commit(theirs):  # counted as a commit of no history: 'ahead by' all
        raise MemstoreError(f"{tracking_ref(up.remote, up.branch)} names commit "
                            f"{theirs[:12]}, which is not in the index; run `memstore fsck`")
    g = history.graph(repo.db) if g is None else g
    walks = {} if walks is None else walks
    for c in (commit, theirs):
        if c not in walks:
            walks[c] = history.ancestors(g, c)
    ours_all, theirs_all = walks[commit], walks[theirs]
    return {"name": up.name, "commit": theirs, "ahead": len(ours_all - theirs_all),
            "behind": len(theirs_all - ours_all), "gone": False}
