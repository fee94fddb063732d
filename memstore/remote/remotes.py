"""Named remotes (`memstore remote add origin URL`) and their remote-tracking branches.

A remote is a name and a URL, kept in the index's config table (key "remotes"); nothing
else about it is stored: credentials come from the environment or fsspec's configuration
when the store is contacted. What the last fetch saw of remote NAME's branch B is the ref
`refs/remotes/NAME/B`, a revision like any other (`origin/main`), and a root for gc."""
from __future__ import annotations

from ..errors import ValidationError
from ..store.refs import REMOTES, check_ref_name
from ..store.repository import Repository
from ..store.schema import transaction
from . import urls

CONFIG_KEY = "remotes"
DEFAULT = "origin"


def check_remote_name(name: str) -> str:
    check_ref_name(name, "remote")
    if "/" in name:
        raise ValidationError(f"invalid remote name {name!r}: it contains '/'")
    return name


def remotes(repo: Repository) -> dict[str, str]:
    """Name → URL of every remote."""
    return dict(sorted((repo.get_config(CONFIG_KEY) or {}).items()))


def add(repo: Repository, name: str, url: str) -> str:
    """Records remote `name` at `url` (checked, not contacted); returns the URL recorded."""
    check_remote_name(name)
    url = urls.check(url)
    with repo.lock(), transaction(repo.db):
        known = remotes(repo)
        if name in known:
            raise ValidationError(f"remote {name!r} already exists ({known[name]})")
        hiding = [(kind, n) for kind, names in (("branch", repo.branches()), ("tag", repo.tags()))
                  for n in names if n.startswith(name + "/")]
        if hiding:  # REMOTE/B would find that branch or tag, not the remote's B
            kind, n = hiding[0]
            raise ValidationError(f"invalid remote name {name!r}: {kind} {n!r} would hide its "
                                  f"branch {n.split('/', 1)[1]!r}; choose another name")
        repo.set_config(CONFIG_KEY, {**known, name: url})
    return url


def remove(repo: Repository, name: str) -> str:
    """Forgets remote `name` and its remote-tracking branches; returns its URL."""
    with repo.lock(), transaction(repo.db):
        known = remotes(repo)
        if name not in known:
            raise ValidationError(f"no remote {name!r}")
        for branch, commit in tracking(repo, name).items():
            repo.refs.update(tracking_ref(name, branch), None, commit)
        url = known.pop(name)
        repo.set_config(CONFIG_KEY, known)
    return url


def url_of(repo: Repository, name: str) -> str:
    known = remotes(repo)
    if name not in known:
        hint = f"; known: {', '.join(known)}" if known else " (add one with `memstore remote add`)"
        raise ValidationError(f"no remote {name!r}{hint}")
    return known[name]


def default_remote(repo: Repository) -> str:
    """'origin', or the only remote there is."""
    known = remotes(repo)
    if DEFAULT in known or not known:
        return DEFAULT
    if len(known) == 1:
        return next(iter(known))
    raise ValidationError(f"several remotes ({', '.join(known)}) and none is 'origin': "
                          "name the remote")


def tracking_ref(remote: str, branch: str) -> str:
    return f"{REMOTES}{remote}/{branch}"


def tracking(repo: Repository, remote: str) -> dict[str, str]:
    """Branch → commit of every remote-tracking branch of `remote`."""
    return repo.refs.list(f"{REMOTES}{remote}/")


def upstream(repo: Repository) -> dict[str, object] | None:
    """Where the current branch stands against its remote-tracking branch (the default
    remote's branch of the same name, as `pull` merges it): its name, commit, and the
    commits each side has that the other lacks (`ahead`, `behind`), as of the last fetch;
    None on a detached HEAD, an unborn branch, or with no such tracking branch."""
    from ..store import history

    head = repo.head()
    try:
        remote = default_remote(repo)
    except ValidationError:  # several remotes, none 'origin': no default to compare with
        return None
    theirs = repo.refs.read(tracking_ref(remote, head.branch)) if head.branch else None
    if head.commit is None or theirs is None:
        return None
    g = history.graph(repo.db)
    ours_all, theirs_all = history.ancestors(g, head.commit), history.ancestors(g, theirs)
    return {"name": f"{remote}/{head.branch}", "commit": theirs,
            "ahead": len(ours_all - theirs_all), "behind": len(theirs_all - ours_all)}
