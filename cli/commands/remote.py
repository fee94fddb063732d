"""remote, push, fetch, pull, clone: sharing a repository through a store (memstore.remote)."""
from __future__ import annotations

import os

import click

from ..context import open_repo
from ..output import (
    counted,
    json_option,
    no_empty_path,
    print_json,
    runtime_options,
    short,
    size,
    warn,
)
from .edit import merge_result, rebase_result, report_json, show_merged, show_rebased
from .signing import sign_options, verify_option

WITH_STATS = click.option(
    "--with-stats", is_flag=True,
    help="Also move the statistics E[kkᵀ] the history was solved with (large; by default "
         "they are recomputed on the base model when first needed).")
PRUNE = click.option(
    "--prune/--no-prune", "-p", default=True, show_default=True,  # --help: 'prune' (-p first: 'p')
    help="Remove each REMOTE/BRANCH whose branch is gone from the remote ('[deleted]'), as "
         "git's fetch --prune: memstore's default; --no-prune keeps them.")


@click.group(invoke_without_command=True,
             short_help="List, add, rename, change, prune or remove remotes, set their HEAD.")
@click.option("-v", "--verbose", is_flag=True, hidden=True,
              help="git's `remote -v`: the list shows every URL anyway.")
@json_option
@click.pass_context
def remote(ctx: click.Context, verbose: bool, as_json: bool) -> None:
    """List, add, rename, change, prune or remove remotes: named URLs of stores that hold a shared
    repository (the list shows each name and URL, as git's `remote -v`).

    A URL is a folder path (file://), s3://BUCKET/PREFIX, or any other store fsspec
    reaches (gcs://, abfs://, …; its backend package must be installed). Credentials are
    never stored: they come from the environment or fsspec's configuration.
    """
    if ctx.invoked_subcommand is not None:
        return
    from memstore.remote import remotes

    with open_repo() as repo:
        known = remotes.remotes(repo)
    if as_json:
        print_json([{"name": n, "url": u} for n, u in known.items()])
        return
    for n, u in known.items():
        click.echo(f"{n}\t{u}")


@remote.command("add")
@click.argument("name")
@click.argument("url")
def remote_add(name: str, url: str) -> None:
    """Add remote NAME at URL (checked, not contacted: a first push creates it)."""
    from memstore.remote import remotes

    with open_repo() as repo:
        url = remotes.add(repo, name, url)
    click.echo(f"Added remote {name} ({url})")


@remote.command("set-url")
@click.argument("name")
@click.argument("url")
def remote_set_url(name: str, url: str) -> None:
    """Change the URL of remote NAME (checked, not contacted), keeping its remote-tracking
    branches and the upstreams naming it: the shared folder moved, the bucket renamed."""
    from memstore.remote import remotes

    with open_repo() as repo:
        old, url = remotes.set_url(repo, name, url)
    click.echo(f"Remote {name}: {old} -> {url}")


@remote.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Remove remote NAME and its remote-tracking branches (nothing on the store changes)."""
    from memstore.remote import remotes

    with open_repo() as repo:
        url = remotes.remove(repo, name)
    click.echo(f"Removed remote {name} ({url})")


@remote.command("rename")
@click.argument("old")
@click.argument("new")
@json_option
def remote_rename(old: str, new: str, as_json: bool) -> None:
    """Rename remote OLD to NEW, as git's: its remote-tracking branches (OLD/B becomes
    NEW/B) and every branch's upstream naming it follow, all in one transaction (NEW
    taken or invalid, OLD missing: one line, nothing changed). The store is not contacted.

    --json prints one object: renamed (OLD), to (NEW), url, tracking (the remote-tracking
    branches moved, as NEW/B) and upstreams (the branches whose upstream named OLD).
    """
    from memstore.remote import remotes

    with open_repo() as repo:
        r = remotes.rename(repo, old, new)
    moved = [f"{new}/{b}" for b in r.tracking]
    if as_json:
        print_json({"renamed": old, "to": new, "url": r.url, "tracking": moved,
                    "upstreams": r.upstreams})
        return
    branches = f"{len(moved)} remote-tracking branch{'' if len(moved) == 1 else 'es'}"
    click.echo(f"Renamed remote {old} to {new} ({branches}, "
               f"{counted(len(r.upstreams), 'upstream')} moved)")


@remote.command("set-head")
@click.argument("name")
@click.argument("branch", required=False)
@click.option("-a", "--auto", is_flag=True,
              help="Read the remote's HEAD (the branch a clone checks out) and point NAME/HEAD "
                   "at that branch's remote-tracking branch.")
@click.option("-d", "--delete", is_flag=True, help="Delete NAME/HEAD.")
def remote_set_head(name: str, branch: str | None, auto: bool, delete: bool) -> None:
    """Point NAME/HEAD (refs/remotes/NAME/HEAD, the revision NAME names: `memstore log
    origin`) at remote-tracking branch NAME/BRANCH, as git's `remote set-head`; a clone
    records it as the remote's HEAD names it. -a reads that from the remote (`NAME/HEAD set
    to BRANCH`); -d deletes it. Fetch and prune leave it as it is, as git's; `remote
    rename` moves it, `remote remove` deletes it. BRANCH must have been fetched."""
    from memstore.remote import remotes
    from memstore.remote.fetch import remote_default

    if auto + delete + (branch is not None) != 1:
        raise click.UsageError("give one of -a (--auto), -d (--delete) or BRANCH")
    with open_repo() as repo:
        if auto:
            branch = remote_default(repo, name)
        remotes.set_head(repo, name, branch)
    if auto:
        click.echo(f"{name}/HEAD set to {branch}")  # git's words; quiet otherwise, as git's


@remote.command("get-url")
@click.argument("name")
def remote_get_url(name: str) -> None:
    """Print the URL of remote NAME (a folder made absolute, as recorded)."""
    from memstore.remote import remotes

    with open_repo() as repo:
        click.echo(remotes.url_of(repo, name, guess=False))


@remote.command("prune")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-n", "--dry-run", is_flag=True,
              help="List the remote-tracking branches that would be removed; remove none.")
@json_option
def remote_prune(names: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Remove each NAME/B whose branch B is gone from remote NAME, as a fetch prunes them
    (git's `remote prune`): only the remote's branch list is read, no object moves. Each
    NAME in turn; every NAME must be a remote here before any is contacted.

    --json prints a list, one object per remote: remote, url, dry_run and pruned (each:
    branch, old: the commit it named here, which `memstore branch NAME ID` keeps).
    """
    from memstore.remote import remotes
    from memstore.remote.fetch import prune

    names = tuple(dict.fromkeys(names))
    out = []
    with open_repo() as repo:
        for name in names:  # a mistyped name refuses them all, before any is contacted
            remotes.url_of(repo, name, guess=False)
        for name in names:
            r = prune(repo, name, dry_run=dry_run)
            for line in r.passed_over:
                warn(f"warning: {line}")
            if as_json:
                out.append({"remote": r.remote, "url": r.url, "dry_run": r.dry_run,
                            "pruned": [{"branch": u.branch, "old": u.old} for u in r.pruned]})
                continue
            click.echo(f"Pruning {r.remote}\nURL: {r.url}")
            verb = "[would prune]" if dry_run else "[pruned]"
            head = repo.refs.remote_head(name)
            for u in r.pruned:
                click.echo(f" * {verb} {r.remote}/{u.branch}  (was {short(u.old)})")
                if u.branch == head:  # git's words: `origin` names nothing now
                    click.echo(f" refs/remotes/{r.remote}/HEAD "
                               f"{'will become' if dry_run else 'has become'} dangling!")
    if as_json:
        print_json(out)


@remote.command("list")
@json_option
@click.pass_context
def remote_list(ctx: click.Context, as_json: bool) -> None:
    """List the remotes: name and URL (--json: a list of {name, url})."""
    group = ctx.parent.params.get("as_json", False) if ctx.parent is not None else False
    ctx.invoke(remote, verbose=False, as_json=as_json or group)  # `remote --json list` too


def _moved_json(moved, seconds: float) -> dict:
    return {"commits": moved.commits, "objects": moved.objects, "bytes": moved.bytes,
            "seconds": seconds}


def _moved(verb: str, moved, seconds: float) -> str:
    commits = f"{counted(moved.commits, 'commit')}, " if moved.commits else ""
    return (f"{verb} {commits}{counted(moved.objects, 'object')} ({size(moved.bytes)}) "
            f"in {seconds:.1f} s")


@click.command(short_help="Push a branch or tags to a remote (objects first, refs by CAS).")
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.argument("branch", required=False)
@click.argument("more", nargs=-1, metavar="")
@click.option("-d", "--delete", is_flag=True,
              help="Delete BRANCH (and each NAME after it: branches or tags) from REMOTE, "
                   "each by compare-and-swap against what was read; the branch the remote's "
                   "HEAD names only with --force.")
@click.option("--tags", "all_tags", is_flag=True,
              help="Push every tag instead of a branch: each the remote lacks is created; one "
                   "it has at another commit is refused (tags do not move) unless --force.")
@click.option("-f", "--force", is_flag=True,
              help="Replace the remote branch even when it is not an ancestor of BRANCH "
                   "(its commits are dropped there; still never a push that landed "
                   "meanwhile), or a remote tag naming another commit.")
@click.option("-u", "--set-upstream", is_flag=True,
              help="After the push, record REMOTE/BRANCH as BRANCH's upstream (what pull, "
                   "push, fetch and status use with no REMOTE named).")
@click.option("--follow-tags", is_flag=True,
              help="After the branch, push the tags of commits in its history that the remote "
                   "has no tag of (git's push --follow-tags; memstore's tags are all "
                   "lightweight, and each follows).")
@WITH_STATS
@json_option
def push(remote_name: str | None, branch: str | None, more: tuple[str, ...], delete: bool,
         all_tags: bool, force: bool, set_upstream: bool, follow_tags: bool, with_stats: bool,
         as_json: bool) -> None:
    """Push BRANCH (default, or HEAD: the current one) to REMOTE (default: the branch's
    upstream's remote, else origin or the only remote there is), as the branch of the same
    name.

    Writes the objects the remote lacks, then moves the remote branch by compare-and-swap:
    a push that is not a fast-forward, or that another push overtook, is refused (fetch
    first) and loses nothing. A remote that does not exist yet is created, and said so on
    stderr ("created a new remote at URL": a mistyped folder or bucket would be one),
    before the error too where the push is refused after making it. A
    branch refused because it is behind the remote's (a `reset` here) says by how many
    commits.

    git's SRC:DST is taken where DST is SRC's own name, short or in full (`main:main`,
    `HEAD:main` or `HEAD:refs/heads/main` on main); a push under another name is refused.

    BRANCH may be a tag (a name that is a tag and no branch, refs/tags/NAME, or git's
    `tag NAME`; `tag` alone is refused, as git's, a branch named tag too: refs/heads/tag
    pushes it), and --tags pushes every tag: the history each names is written first,
    then each tag the remote lacks is created by compare-and-swap; a remote tag naming
    another commit is refused (exit status 1, the other tags pushed) unless --force. A
    remote branch or tag
    that holds no commit id (damaged: a bad copy, a hand edit) refuses the push unless
    --force, which replaces it by compare-and-swap against its whole content read.

    --follow-tags (git's): once the branch is pushed, each tag here of a commit in its
    history that the remote has no tag of is created there (' * [new tag]'); a remote tag
    of the name, at any commit, is left as it is. git follows annotated tags only; every
    memstore tag is of git's lightweight kind, so each follows. A tag that cannot go
    (refused) is said after the branch's push, which landed (exit status 1). A branch
    rejected (fetch first, not a fast-forward) does not stop them, as in git 2.39 (its push
    is not atomic): the tags of the history it refused are pushed all the same, their
    history first (with --with-stats, its statistics too), and the rejection's line names
    them (exit status 1).

    `push --delete REMOTE NAME...` (or git's `push REMOTE :NAME...`) deletes branches
    and tags there (a name as above: the remote's branch first, else its tag; git's `tag
    NAME` its tag NAME, as `push --delete origin tag v1` spells it; `tag` with no NAME after
    it is refused, as git's: "tag shorthand without <tag>"), each by
    compare-and-swap against the commit read: one another push moved meanwhile is kept
    (exit status 1, the others deleted).
    The branch the remote's HEAD names (what clones check out) is refused unless --force;
    so is a ref that holds no commit id (damaged: a bad copy, a hand edit), which --force
    removes by compare-and-swap against its whole content read.
    A deleted branch's REMOTE/BRANCH goes here too. The objects stay on the remote.

    --json prints one object: remote, url, branch, old and new (the remote branch's commit
    before and after), forced, damaged, up_to_date, created (this push made the remote),
    guarantee, upstream_set, commits, objects, bytes, seconds, tags (--follow-tags': each
    as below; else empty); for tags, remote, url,
    created, tags (each: tag, old, new, forced, damaged, up_to_date, refused), guarantee,
    commits, objects, bytes, seconds; for --delete, remote, url,
    deleted (each: ref, name, kind, old, refused, now, damaged), guarantee, seconds.
    """
    from memstore.errors import MemstoreError
    from memstore.remote.push import push as run_push
    from memstore.remote.push_delete import push_delete
    from memstore.remote.push_tags import push_tags, pushed_ref
    from memstore.store.refs import TAGS

    names = [n for n in (branch, *more) if n is not None]
    colon = not delete and names and all(n.startswith(":") and len(n) > 1 for n in names)
    if not colon and _tag_without_name(names):  # git's words (git exits 128: its die())
        raise click.UsageError(f"tag shorthand without <tag>: `memstore push "
                               f"{remote_name or 'origin'} tag v1` pushes tag v1 (a branch "
                               "or tag named tag: refs/heads/tag, refs/tags/tag)")
    if colon:  # git's `push origin :NAME`: nothing pushed onto NAME deletes it there
        delete, branch, more = True, names[0][1:], tuple(n[1:] for n in names[1:])
    if delete:
        if all_tags or set_upstream or with_stats or follow_tags:
            raise click.UsageError("--delete takes no --tags, --follow-tags, -u nor "
                                   "--with-stats")
        if remote_name is None or branch is None:
            raise click.UsageError("--delete: give REMOTE and the branches or tags to delete "
                                   "(`memstore push --delete origin topic`)")
        refs = [branch, *more] if colon else _tag_names([branch, *more])
        with open_repo() as repo:
            show_deleted(push_delete(repo, remote_name, refs, force=force), as_json)
        return
    if branch == "tag" and len(more) == 1:  # git's `push origin tag v1`: refs/tags/v1
        branch, more = TAGS + more[0], ()
    if more:
        raise click.UsageError(f"unexpected extra argument {more[0]!r} (push takes one BRANCH; "
                               "--delete takes several)")
    if all_tags and (branch is not None or set_upstream):
        raise click.UsageError("--tags pushes every tag: name no BRANCH and no -u with it")
    onto = None  # git's SRC:DST: DST must be SRC's own name (HEAD's: the current branch)
    spelled = branch
    if branch is not None and ":" in branch:
        branch, _, onto = branch.partition(":")
        onto = onto or None  # `main:`: its own name
    if branch in ("HEAD", "@"):  # git's `push origin HEAD` (`@`): the current branch
        branch = None
    try:
        with open_repo() as repo:
            kind, name = pushed_ref(repo, branch) if branch is not None else (None, None)
            if onto is not None:
                _check_onto(repo, spelled, kind, name, onto)
            if kind == TAGS and follow_tags:
                raise click.UsageError(f"--follow-tags pushes the tags of a pushed branch's "
                                       f"history, and {name!r} is a tag")
            if all_tags or kind == TAGS:  # --tags --follow-tags: every tag, as git's
                if set_upstream:
                    raise click.UsageError(f"-u records a branch's upstream, and {name!r} is "
                                           "a tag")
                show_tags(push_tags(repo, remote_name, name, force=force,
                                    with_stats=with_stats), as_json)
                return
            r = run_push(repo, remote_name, name, force=force, with_stats=with_stats,
                         set_upstream=set_upstream)
    except MemstoreError as e:  # refused after it made the remote: the next push won't say
        if getattr(e, "created_url", None) is not None:
            warn(f"created a new remote at {e.created_url}")
        if follow_tags and getattr(e, "tip", None) is not None:  # the branch rejected
            _follow_rejected(e, as_json, with_stats)
        raise
    if r.created:  # a typo'd folder or bucket would be a new remote: say so
        warn(f"created a new remote at {r.url}")
    followed, refused = _follow_tags(r.remote, r.new) if follow_tags else (None, None)
    tags = [t for t in followed.tags if not t.refused] if followed is not None else []
    if as_json:
        print_json({"remote": r.remote, "url": r.url, "branch": r.branch, "old": r.old,
                    "new": r.new, "forced": r.forced, "damaged": r.damaged,
                    "up_to_date": r.up_to_date, "created": r.created,
                    "guarantee": r.guarantee, "upstream_set": set_upstream,
                    **_moved_json(r.moved, r.seconds),
                    "tags": [_tag_json(t) for t in followed.tags] if followed else []})
    else:
        _show_pushed(r, set_upstream, tags, refused is None)
    if refused is not None:  # the branch landed: said above, then why a tag did not
        raise refused


def _show_pushed(r, set_upstream: bool, tags: list, all_done: bool) -> None:
    """What a branch's push did, as git shows it; the tags --follow-tags created after its
    line (`all_done`: none refused, so nothing else to say where nothing moved)."""
    click.echo(f"To {r.url}")
    tracking = (f"branch '{r.branch}' set up to track '{r.remote}/{r.branch}'."
                if set_upstream else None)
    if r.up_to_date:
        for t in tags:
            click.echo(f" {'* [new tag]':<28} {t.tag:<12} -> {t.tag}")
        if not tags and all_done:
            click.echo(_up_to_date(r.branch, r.moved, r.seconds))
        if tracking:
            click.echo(tracking)
        if tags:  # written there: as a push of tags says it
            _single_writer(r)
        return
    what = (f"{short(r.old) if r.old else '(damaged)'}...{short(r.new)} (forced update)"
            if r.forced else f"{short(r.old)}..{short(r.new)}" if r.old else "* [new branch]")
    click.echo(f" {what:<28} {r.branch:<12} -> {r.branch}")
    for t in tags:
        click.echo(f" {'* [new tag]':<28} {t.tag:<12} -> {t.tag}")
    if r.damaged is not None:
        click.echo(f"replaced damaged branch {r.branch} (it held {r.damaged} bytes, not a "
                   "commit id)")
    click.echo(_moved("pushed", r.moved, r.seconds))
    if tracking:
        click.echo(tracking)
    _single_writer(r)


def _follow_rejected(rejected, as_json: bool, with_stats: bool) -> None:
    """`push --follow-tags` whose branch was `rejected` (not a fast-forward, someone else's
    push there): the tags of the history it refused go all the same, as git 2.39's (each ref
    of its push on its own: `* [new tag]` lines, then `! [rejected]`), and the rejection is
    raised, naming them (--json prints nothing, as for any refusal). `with_stats`: their
    history's statistics go with them, as the branch's would have."""
    from memstore.remote.push import PushRejectedError

    followed, problem = _follow_tags(rejected.remote, rejected.tip, with_stats)
    tags = [t.tag for t in followed.tags if not t.refused] if followed is not None else []
    if tags and not as_json:
        click.echo(f"To {followed.url}")
        for t in tags:
            click.echo(f" {'* [new tag]':<28} {t:<12} -> {t}")
        _single_writer(followed)
    message = str(rejected) + (f"; --follow-tags pushed the tags of its history all the "
                               f"same, as git's: {', '.join(tags)}" if tags else "")
    if problem is not None:
        message += f"; and {problem}"
    raise PushRejectedError(message, rejected.remote, rejected.tip) from None


def _follow_tags(remote: str, tip: str, with_stats: bool = False):
    """`push --follow-tags` after the branch push to `remote` landed at `tip` (or was
    rejected there): (what push_tags did, the error to raise once the branch's push is
    shown, or None). `with_stats` (`push --with-stats` whose branch was rejected): the
    tags' statistics too; a branch that landed pushed its history's, theirs among them."""
    from memstore.errors import MemstoreError, ValidationError
    from memstore.remote.push import PushRejectedError
    from memstore.remote.push_tags import push_tags

    try:
        with open_repo() as repo:
            followed = push_tags(repo, remote, follow=tip, with_stats=with_stats)
    except ValidationError as e:  # a tag the remote cannot store (beside its V5, …): no
        return None, PushRejectedError(str(e))  # input of this command, whose branch landed:
    except MemstoreError as e:  # a failed operation (exit 1), not bad input (2); a damaged
        return None, e  # row, …: said after the branch's push too
    if not followed.refused:
        return followed, None
    names = ", ".join(repr(t.tag) for t in followed.refused)  # created there meanwhile
    return followed, PushRejectedError(
        f"push to {remote}: tag{'s' if len(followed.refused) > 1 else ''} {names} "
        f"{'were' if len(followed.refused) > 1 else 'was'} created or removed there while "
        "this push ran, and kept; fetch, then push --follow-tags again")


def _tag_without_name(names: list[str]) -> bool:
    """Whether git's `tag NAME` ends `names` with no NAME (`push origin tag`, `push -d
    origin v1 tag`), which git refuses, a ref named tag too: `tag tag` is tag 'tag'."""
    i = 0
    while i < len(names):
        if names[i] == "tag" and i + 1 == len(names):
            return True
        i += 2 if names[i] == "tag" else 1
    return False


def _tag_names(names: list[str]) -> list[str]:
    """git's `tag NAME` among the names of `push --delete REMOTE` (`push --delete origin tag
    v1`): refs/tags/NAME, not a branch or tag named tag deleted besides NAME (a 'tag' with
    no NAME after it is refused before, as git's)."""
    from memstore.store.refs import TAGS

    out, rest = [], list(names)
    while rest:
        name = rest.pop(0)
        out.append(TAGS + rest.pop(0) if name == "tag" and rest else name)
    return out


def _check_onto(repo, spelled: str, kind: str | None, name: str | None, onto: str) -> None:
    """git's SRC:DST, taken where DST is SRC's own name, short or full (`main:main`,
    `HEAD:refs/heads/main` on main, `v1:refs/tags/v1`); `kind`, `name`: the ref SRC names
    (None for HEAD: the current branch). A push under another name is one line."""
    from memstore.store.refs import HEADS, TAGS

    src = spelled.partition(":")[0]
    if name is None:
        kind, name = HEADS, repo.head().branch
    want = next(((p, onto[len(p):]) for p in (HEADS, TAGS) if onto.startswith(p)),
                (None, onto))
    if want[1] == name and want[0] in (None, kind):
        return
    if want[1] == name:  # `main:refs/tags/main`: a branch pushed as a tag, or the reverse
        raise click.UsageError(
            f"{spelled}: {name!r} is a {'tag' if kind == TAGS else 'branch'} here, and "
            "memstore pushes a branch or tag as what it is")
    if src in ("HEAD", "@"):
        raise click.UsageError(
            f"{spelled}: HEAD is " + (f"branch {name!r}" if name else "detached") +
            f", and memstore pushes a branch under its own name, not as {want[1]!r}")
    raise click.UsageError(
        f"{spelled}: memstore pushes a branch or tag under its own name, not as another "
        f"(`memstore branch {want[1]} {src}`, then `memstore push REMOTE {want[1]}`)")


def _up_to_date(what: str, moved, seconds: float) -> str:
    """git's line for a push with no ref to move; where --with-stats wrote the statistics
    the remote lacked, what it pushed (it said "Everything up-to-date" over 27 MiB)."""
    if not moved.objects:
        return "Everything up-to-date"
    return _moved(f"{what} up-to-date; pushed the statistics:", moved, seconds)


def _single_writer(r) -> None:
    if r.guarantee.startswith("single-writer"):
        warn(f"note: {r.url} is {r.guarantee}")


def show_tags(r, as_json: bool) -> None:
    """What `push --tags` did, as a branch's push shows it; then, for the tags refused,
    one error line (exit status 1)."""
    from memstore.remote.push import PushRejectedError

    if r.created:
        warn(f"created a new remote at {r.url}")
    if as_json:
        print_json({"remote": r.remote, "url": r.url, "created": r.created,
                    "tags": [_tag_json(t) for t in r.tags],
                    "guarantee": r.guarantee, **_moved_json(r.moved, r.seconds)})
    else:
        click.echo(f"To {r.url}")
        done = [t for t in r.tags if not t.up_to_date and not t.refused]
        for t in done:
            what = (f"{short(t.old) if t.old else '(damaged)'}...{short(t.new)} (forced "
                    "update)" if t.forced else "* [new tag]")
            click.echo(f" {what:<28} {t.tag:<12} -> {t.tag}")
        for t in done:
            if t.damaged is not None:
                click.echo(f"replaced damaged tag {t.tag} (it held {t.damaged} bytes, not a "
                           "commit id)")
        if done:
            click.echo(_moved("pushed", r.moved, r.seconds))
            _single_writer(r)
        elif not r.refused:
            click.echo(_up_to_date("every tag", r.moved, r.seconds))
    if r.refused:
        names = ", ".join(f"{t.tag!r}" for t in r.refused)
        one = r.refused[0]
        if len(r.refused) == 1 and one.old is None:  # removed there while this push ran
            raise PushRejectedError(f"push to {r.remote}: tag {names} was removed there while "
                                    "this push ran; push again")
        naming = (f"naming {short(one.old)}" if len(r.refused) == 1
                  else "naming other commits")
        theirs = one.tag if len(r.refused) == 1 else "NAME"
        raise PushRejectedError(
            f"push to {r.remote}: tag{'s' if len(r.refused) > 1 else ''} {names} already "
            f"exist{'s' if len(r.refused) == 1 else ''} on {r.remote} {naming} (a tag does "
            f"not move: push --tags --force replaces it there; `memstore tag -d {theirs}` and "
            "`memstore fetch --tags` take the remote's here)")


def _tag_json(t) -> dict:
    return {"tag": t.tag, "old": t.old, "new": t.new, "forced": t.forced,
            "damaged": t.damaged, "up_to_date": t.up_to_date, "refused": t.refused}


def show_deleted(r, as_json: bool) -> None:
    """What `push --delete` did, as git shows it; then, for the refs another push moved
    meanwhile, one error line (exit status 1)."""
    from memstore.remote.push import PushRejectedError

    if as_json:
        print_json({"remote": r.remote, "url": r.url,
                    "deleted": [{"ref": d.ref, "name": d.name, "kind": d.kind, "old": d.old,
                                 "refused": d.refused, "now": d.now, "damaged": d.damaged}
                                for d in r.refs],
                    "guarantee": r.guarantee, "seconds": r.seconds})
    else:
        click.echo(f"To {r.url}")
        for d in r.refs:
            if not d.refused:
                click.echo(f" - {'[deleted]':<26} {d.name}")
        for d in r.refs:
            if d.damaged is not None and not d.refused:
                click.echo(f"deleted damaged {d.kind} {d.name} (it held {d.damaged} bytes, "
                           "not a commit id)")
        _single_writer(r)
    if r.refused:
        d = r.refused[0]
        names = ", ".join(x.ref for x in r.refused)
        raise PushRejectedError(
            f"push --delete to {r.remote} rejected: {names} moved there while this ran "
            f"({'to ' + short(d.now) if len(r.refused) == 1 else 'other pushes landed'}), "
            f"so {'it was' if len(r.refused) == 1 else 'they were'} kept; fetch first")


def _passed_over(f, rejecting: bool = False) -> None:
    """The remote's refs left out: named by an older memstore, or tags not taken here
    (`rejecting`: a tag here at another commit is not warned of: `_fetched` lists it as
    rejected, and `_rejected` makes it the command's error, as git's `fetch --tags`; nor is
    one left out beside another, which `_rejected` makes the error of every fetch)."""
    for line in f.passed_over:
        warn(f"warning: {line}")
    for t in f.tags:
        if t.refused is not None and t.beside is None and not (rejecting and _clobbers(t)):
            here = (f" (it names {short(t.here)} here, {short(t.new)} there; `memstore fetch "
                    f"{f.remote} --tags --force` takes the remote's)") if t.here else ""
            warn(f"warning: tag {t.tag!r} of {f.remote} not fetched: {t.refused}{here}")


def _clobbers(t) -> bool:
    from memstore.remote.fetch import CLOBBER

    return t.refused == CLOBBER


def _rejected(f, rejecting: bool) -> str | None:
    """The error line of a fetch that asked for every tag (`rejecting`: --tags, -P) and
    kept tags here at other commits, as git's `fetch --tags` exits 1 on them, or that left
    out a tag beside another, as git's fetch on a ref it cannot lock; else None."""
    from memstore.remote.fetch import tag_errors

    return tag_errors(f, rejecting)


def _fetched(f, rejecting: bool = False) -> None:
    click.echo(f"From {f.url}")
    for u in f.updates:
        target = f"{f.remote}/{u.branch}"
        if u.new is None:  # the commit it named: `memstore branch NAME ID` keeps it here
            was = f"  (was {short(u.old)})" if u.old else ""
            click.echo(f" - {'[deleted]':<26} {target}{was}")
            if u.branch == f.head:  # git's words: `origin` names nothing now
                click.echo(f"   (refs/remotes/{f.remote}/HEAD has become dangling)")
        elif u.old is None:
            click.echo(f" * {'[new branch]':<26} {u.branch:<12} -> {target}")
        elif u.forced:  # as git marks it: the history there was rewritten, not extended
            click.echo(f" + {short(u.old) + '...' + short(u.new):<26} {u.branch:<12} -> "
                       f"{target}  (forced update)")
        else:
            click.echo(f"   {short(u.old) + '..' + short(u.new):<26} {u.branch:<12} -> {target}")
    for t in f.tags:
        if t.refused is None and t.here is not None:  # fetch --tags --force, git's mark
            click.echo(f" t {'[tag update]':<26} {t.tag:<12} -> {t.tag}")
        elif t.refused is None:
            click.echo(f" * {'[new tag]':<26} {t.tag:<12} -> {t.tag}")
        elif rejecting and _clobbers(t):  # git's line; the error after the report says it
            click.echo(f" ! {'[rejected]':<26} {t.tag:<12} -> {t.tag}  ({t.refused})")
        elif t.beside is not None:  # git's line ("unable to update local ref"); the error
            click.echo(f" ! {'[new tag]':<26} {t.tag:<12} -> {t.tag}  (beside tag "
                       f"{t.beside!r})")  # after the report says why
    for tag, old in f.pruned_tags.items():  # as git shows it, with the commit it named
        click.echo(f" - {'[deleted]':<26} {'(none)':<12} -> {tag}  (was {short(old)})")
    click.echo(_moved("fetched", f.moved, f.seconds))
    if f.refetched is not None:
        r = f.refetched
        click.echo(f"refetch: checked {counted(r.checked, 'object')} here, restored "
                   f"{len(r.restored)} missing or damaged ({size(r.bytes)}) from {f.remote}"
                   + (f"; request rows of {counted(len(r.reindexed), 'update set')} indexed "
                      "again" if r.reindexed else ""))


@click.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.option("--all", "every_remote", is_flag=True,
              help="Fetch every remote in turn (git's fetch --all); one that fails is said in "
                   "one line and the others are still fetched (exit status 1).")
@click.option("--tags", "all_tags", is_flag=True,
              help="Also fetch every remote tag, with the history it needs, even a tag on no "
                   "branch (git's fetch --tags).")
@PRUNE
@click.option("-P", "--prune-tags", is_flag=True,
              help="Also delete each tag here that the remote has no tag of, even one made "
                   "here and never pushed, and fetch every remote tag as --tags does (git's "
                   "fetch --prune --prune-tags: the remote's tags mirrored).")
@click.option("--refetch", is_flag=True,
              help="Also check every object here that the remote's branches and tags need "
                   "(git's fetch --refetch): each one missing or damaged here is written again "
                   "from the remote's copy, checked against its name; intact ones are only "
                   "re-hashed, not downloaded. Exit status 1 naming each object that neither "
                   "side holds intact.")
@click.option("-f", "--force", is_flag=True,
              help="With --tags or --prune-tags: a tag here naming another commit than the "
                   "remote's takes the remote's ('t [tag update]'), as git's fetch --tags "
                   "--force; without it such a tag is rejected (exit status 1, the rest "
                   "fetched).")
@WITH_STATS
@json_option
def fetch(remote_name: str | None, every_remote: bool, all_tags: bool, prune: bool,
          prune_tags: bool, refetch: bool, force: bool, with_stats: bool,
          as_json: bool) -> None:
    """Fetch every branch of REMOTE (default: the current branch's upstream's remote, else
    origin or the only remote there is) as REMOTE/BRANCH.

    Only the commits and objects missing here move, each verified against its hash; local
    branches do not change (see pull). REMOTE/BRANCH names a revision like any other.
    Each remote tag whose commit is here then is created here too (with --tags, every
    remote tag, its history fetched); a tag here naming another commit is kept (a warning:
    it would clobber an existing tag); with --tags or -P, as git's, it is rejected
    ('! [rejected]', exit status 1, the rest fetched) unless --force, which moves it to
    the remote's commit ('t [tag update]'). A remote-tracking branch whose branch is gone from
    the remote is removed ('[deleted]'), as git's fetch --prune (memstore's default:
    --prune and -p are accepted); --no-prune keeps it. With --prune-tags (-P), as git's,
    so is each tag here that the remote has no tag of ('[deleted] (none) -> TAG'), one
    made here and never pushed too, and every remote tag is fetched as with --tags: the
    tag list becomes the remote's. No setting makes
    it the default (git's remote.NAME.pruneTags): a fetch deletes local tags only when
    asked.

    --all fetches every remote, one after the other (`Fetching NAME` before each); a
    remote that cannot be fetched (unreachable, refused) is said in one error line and
    the others are still fetched, the exit status then 1.

    --refetch restores what `memstore fsck` finds missing or corrupt here: every commit
    here that the remote's branches and tags reach, the objects its update sets name and
    the statistics tensors they were solved with are re-hashed here; each one missing or
    damaged is read from the remote, checked against its name and written in place
    ('restored N objects'). An intact object here is not downloaded again. A copy that
    is corrupt on the remote too (or absent there) is never written: the fetch lands,
    and the exit status is 1, naming those objects (`memstore fsck REMOTE` checks it).
    An update set here short of its request rows (a list `fsck --repair` could not read)
    gets them again from its list once that reads ('request rows of K update sets
    indexed again').

    --json prints one object: remote, url, updates (the remote-tracking branches moved:
    branch, old, new, forced where the remote's history was rewritten),
    tags (each tag created, or refused: tag, new, refused, here), pruned_tags (each: tag,
    old), commits, objects, bytes and seconds; with --refetch also refetch (checked,
    restored: the ids written again, restored_bytes, unrestored: id → why, reindexed:
    each commit and set whose request rows were written again); with --all, a
    list of those, one per remote, each with error (null, or
    the line saying why that remote was not fetched: then only remote, url and error).
    """
    from memstore.remote.fetch import fetch as run_fetch

    if prune_tags and not prune:  # git's --prune-tags acts only with --prune
        raise click.UsageError("--prune-tags prunes with --prune, memstore's default: not "
                               "with --no-prune")
    if prune_tags and every_remote:
        raise click.UsageError("--prune-tags makes this repository's tags one remote's: with "
                               "--all each remote's fetch would delete the others' tags; "
                               "fetch one REMOTE")
    if every_remote:
        if remote_name is not None:
            raise click.UsageError(f"--all fetches every remote: name none (not "
                                   f"{remote_name!r}), or leave out --all")
        _fetch_all(all_tags, prune, with_stats, as_json, refetch, force)
        return
    with open_repo() as repo:
        f = run_fetch(repo, remote_name, with_stats=with_stats, all_tags=all_tags,
                      prune=prune, prune_tags=prune_tags, refetch=refetch, force=force)
    rejecting = all_tags or prune_tags  # git's tag refspec: a clobber is an error
    _passed_over(f, rejecting)
    if as_json:
        print_json(fetch_result(f))
    else:
        _fetched(f, rejecting)
    from memstore.errors import MemstoreError

    if f.refetched is not None and f.refetched.unrestored:
        raise MemstoreError(_unrestored(f))
    rejected = _rejected(f, rejecting)
    if rejected is not None:
        raise MemstoreError(rejected)


def _unrestored(f) -> str:
    """The one line of a refetch that left objects damaged: which, and why."""
    r = f.refetched
    objects = "; ".join(f"{o} ({why})" for o, why in sorted(r.unrestored.items()))
    return (f"{counted(len(r.unrestored), 'object')} missing or damaged here could not be "
            f"restored from {f.remote}: {objects}; `memstore fsck {f.remote}` checks the "
            "remote, whose own copy may be restored from another clone with "
            f"`memstore fsck {f.remote} --repair` there")


def _fetch_all(all_tags: bool, prune: bool, with_stats: bool, as_json: bool,
               refetch: bool = False, force: bool = False) -> None:
    """`fetch --all`: each remote in turn, a failure said in one line and passed over, as
    git's ("error: could not fetch NAME"); exit status 1 where one failed."""
    from memstore.errors import MemstoreError
    from memstore.remote import remotes
    from memstore.remote.fetch import fetch as run_fetch

    out, failed = [], False
    with open_repo() as repo:
        for name, url in remotes.remotes(repo).items():
            if not as_json:
                click.echo(f"Fetching {name}")
            try:
                f = run_fetch(repo, name, with_stats=with_stats, all_tags=all_tags,
                              prune=prune, refetch=refetch, force=force)
            except MemstoreError as e:  # unreachable, refused, damaged: the next one still
                failed = True
                line = f"could not fetch {name}: {' '.join(str(e).split())}"
                warn(f"memstore: error: {line}")
                out.append({"remote": name, "url": url, "error": line})
                continue
            _passed_over(f, all_tags)
            unrestored = f.refetched is not None and f.refetched.unrestored
            line = f"could not fetch {name} whole: {_unrestored(f)}" if unrestored else None
            if line is None:
                line = _rejected(f, all_tags)
            if as_json:
                out.append(fetch_result(f) | {"error": line})
            else:
                _fetched(f, all_tags)
            if line is not None:
                failed = True
                warn(f"memstore: error: {line}")
    if as_json:
        print_json(out)
    if failed:
        raise SystemExit(1)


def fetch_result(f) -> dict:
    """fetch --json (and pull --json's `fetched`): the remote, the branches that moved
    there, the tags created here (and those refused: why, and the commit of the tag of
    that name here), and what was moved."""
    return {"remote": f.remote, "url": f.url,
            "updates": [{"branch": u.branch, "old": u.old, "new": u.new, "forced": u.forced}
                        for u in f.updates],
            "tags": [{"tag": t.tag, "new": t.new, "refused": t.refused, "here": t.here}
                     for t in f.tags],
            "pruned_tags": [{"tag": t, "old": c} for t, c in f.pruned_tags.items()],
            **_moved_json(f.moved, f.seconds)} | _refetch_json(f.refetched)


def _refetch_json(r) -> dict:
    if r is None:
        return {}
    return {"refetch": {"checked": r.checked, "restored": sorted(r.restored),
                        "restored_bytes": r.bytes,
                        "unrestored": dict(sorted(r.unrestored.items())),
                        "reindexed": sorted(({"commit": c.id, "set": i} for c, i in r.reindexed),
                                            key=lambda d: (d["commit"], d["set"]))}}


@click.command(short_help="Fetch a remote and merge its branch into the current one.")
@runtime_options
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.argument("branch", required=False)
@click.option("--tags", "all_tags", is_flag=True,
              help="Also fetch every remote tag, with the history it needs, as fetch --tags.")
@click.option("--ff-only", is_flag=True, help="Only a fast-forward (or nothing to merge): "
              "where the branches have parted, refuse the merge (the fetch kept), as git's.")
@click.option("--rebase", "rebase", is_flag=True, help="Rebase the current branch onto the "
              "fetched one instead of merging it, as git's (`memstore rebase`).")
@PRUNE
@WITH_STATS
@sign_options
@verify_option
@json_option
def pull(remote_name: str | None, branch: str | None, all_tags: bool, ff_only: bool,
         rebase: bool, prune: bool, with_stats: bool, sign: bool | str | None,
         verify_signatures: bool, as_json: bool) -> None:
    """Fetch REMOTE and merge its BRANCH into the current branch: with neither given, the
    current branch's upstream (`push -u`, `branch --set-upstream-to`), else origin (or the
    only remote there is) and the current branch's name; with REMOTE alone, the upstream's
    branch where REMOTE is the upstream's remote (git's), else the current branch's name.
    Tags come as a fetch brings them (--tags: every remote tag); --no-prune as fetch's.

    A fast-forward when the current branch is behind; otherwise a fact-level merge, as
    `memstore merge` does: conflicting facts are listed and nothing is written, but the
    fetch is kept (REMOTE/BRANCH moved). Settle one by making the sides agree, then pull
    again: take theirs with `memstore commit FILE --supersede` here, or keep yours by
    writing it with --supersede on a branch made at REMOTE/BRANCH and merging that (README:
    Settling a conflict). A merge refused otherwise (a damaged row, …) is said after the
    fetch's report too: the fetch landed. --ff-only refuses a merge that is no
    fast-forward so, in one line (exit status 1), nothing merged.

    --rebase (git's pull --rebase): the current branch's own commits are written again on
    top of REMOTE/BRANCH instead, as `memstore rebase REMOTE/BRANCH` does (a conflict
    stops it with nothing changed, the fetch kept); on a branch with no commits yet it
    pulls as without it.

    --verify-signatures refuses (exit status 1, nothing merged, the fetch kept) unless
    REMOTE/BRANCH's tip commit is signed by an allowed key (git checks the tip only, and
    so does this); with --rebase too, the tip rebased onto is checked. -S signs a merge
    commit written (README: Signed commits).

    On a branch with no commits yet (`init`, `remote add`, `pull`), the editor settings
    become those a clone takes: the newest update set's on the branch pulled.

    --json prints one object: what `merge --json` prints (kind, head, branch, commit:
    null unless a merge commit was written, …), or with --rebase what `rebase --json`
    prints (branch, upstream, old, new, commits, …), fetched (what `fetch --json` prints)
    and settings_from (the commit whose settings were taken, else null).
    """
    from memstore.errors import MemstoreError
    from memstore.remote.fetch import pull as run_pull
    from memstore.store.rebase import Rebased

    if rebase and ff_only:
        raise click.UsageError("--rebase and --ff-only: one at most")
    try:
        with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
            repo.signing = sign  # its key checked once the fetched tip is known
            fetched, report = run_pull(repo, remote_name, branch, with_stats=with_stats,
                                       prune=prune, all_tags=all_tags,
                                       ff="only" if ff_only else "allow", rebase=rebase,
                                       verify_tip=_before_merge(repo, sign, verify_signatures,
                                                                "only" if ff_only or rebase
                                                                else "allow"))
            rebased = isinstance(report, Rebased)
            d = (rebase_result(repo, report) | {"fetched": fetch_result(fetched),
                                                "settings_from": None}
                 if rebased else pull_result(repo, fetched, report))
    except MemstoreError as e:  # a refused merge (a conflict, a damaged row, …) after the
        landed = getattr(e, "fetched", None)  # fetch landed: said as a fetch says it first
        if landed is not None:
            _passed_over(landed, all_tags)
            if not as_json:
                _fetched(landed, all_tags)
        raise
    _passed_over(fetched)  # a tag refused fails the pull before its merge (run_pull)
    if as_json:
        report_json(d)
        return
    _fetched(fetched)
    if rebased:
        if d["warning"] is not None:
            warn(f"warning: {d['warning']}")
        show_rebased(d, report.shown)
        return
    if d["settings_from"] is not None:
        click.echo(f"editor settings taken from {short(d['settings_from'])}, the newest update "
                   "set pulled, as a clone takes them (`memstore config` shows them)")
    show_merged(d)


def _before_merge(repo, sign: bool | str | None, verify_signatures: bool, ff: str):
    """What pull checks once the fetched branch's tip is known, before it is merged or
    rebased onto (signing.before_merge): --verify-signatures' tip, and the signing key
    where a commit will be written (none for a fast-forward, nor where up to date). `ff`
    "only" for --rebase too: the rebase checks the key itself once its plan says a pick
    writes a commit (every pick dropped writes none)."""
    from memstore.store import signing

    return lambda tip: signing.before_merge(repo, tip, "the fetched branch", sign=sign,
                                            verify_signatures=verify_signatures, ff=ff)


def pull_result(repo, fetched, report) -> dict:
    return merge_result(repo, report) | {"fetched": fetch_result(fetched),
                                         "settings_from": report.notes.get("settings_from")}


@click.command()
@runtime_options
@click.argument("url")
@click.argument("directory", type=click.Path(file_okay=False), callback=no_empty_path)
@click.option("--base", "base_spec", default="smollm2-135m", show_default=True, metavar="MODEL",
              help="This machine's copy of the base model (a Hugging Face directory, a .gguf "
                   "file or smollm2-135m); its hash must be the remote's.")
@WITH_STATS
@json_option
def clone(url: str, directory: str, base_spec: str, with_stats: bool, as_json: bool) -> None:
    """Clone the repository at URL into DIRECTORY (new or empty).

    The base model is never pushed: MODEL is hashed and must be the remote's base. The
    clone gets remote origin, every remote branch as origin/BRANCH, every remote tag and
    the remote's default branch checked out.

    --json prints one object: path, branch and head (checked out), tags (each: tag, new,
    refused, here, as fetch --json), commits, objects, bytes and seconds.
    """
    from memstore.remote.clone import clone as run_clone

    r = run_clone(url, directory, base_spec, with_stats=with_stats,
                  on_start=None if as_json else lambda: click.echo(f"Cloning into {directory}..."))
    _passed_over(r.fetched)
    if as_json:
        print_json({"path": str(r.path), "branch": r.branch, "head": r.head,
                    "tags": fetch_result(r.fetched)["tags"],
                    **_moved_json(r.fetched.moved, r.fetched.seconds)})
    else:
        click.echo(_moved("fetched", r.fetched.moved, r.fetched.seconds))
        created = [t.tag for t in r.fetched.tags if t.refused is None]
        if created:
            click.echo(f"{counted(len(created), 'tag')}: {', '.join(created)}")
        where = f"at {short(r.head)}" if r.head else "(no commits yet)"
        click.echo(f"branch {r.branch} {where}")
    # a tag left out beside another: the clone is kept (git's refuses the whole clone,
    # its ref transaction being one), exit status 1 as fetch's
    left = _rejected(r.fetched, False)
    if left is not None:
        from memstore.errors import MemstoreError

        raise MemstoreError(f"{left} (the clone is made: {r.path})")


def branch_upstream(repo, name: str | None, set_to: str | None, unset: bool, as_json: bool,
                    alone: bool) -> None:
    """`branch --set-upstream-to REMOTE/BRANCH [NAME]` and `branch --unset-upstream [NAME]`
    (`alone`: with no REV, -d, -D nor -m)."""
    from memstore.remote import remotes

    if (set_to is not None and unset) or not alone:
        raise click.UsageError("--set-upstream-to and --unset-upstream take one branch NAME "
                               "and no other option")
    if unset:
        branch = remotes.unset_upstream(repo, name)
        print_json({"branch": branch, "upstream": None}) if as_json else \
            click.echo(f"Branch '{branch}' has no upstream now.")
        return
    branch, up = remotes.set_upstream(repo, name, set_to)
    print_json({"branch": branch, "upstream": up.name}) if as_json else \
        click.echo(f"branch '{branch}' set up to track '{up.name}'.")


def remote_problems(target: str, verify: bool) -> list[str]:
    """fsck of a remote named in the current repository, or of a URL."""
    from memstore.remote.fsck import fsck_remote

    url, name = _remote(target)
    return fsck_remote(url, verify=verify, name=name)


def remote_url(target: str) -> str:
    """The URL of the remote named `target` in the current repository, else `target` as a
    URL or folder."""
    return _remote(target)[0]


def _remote(target: str) -> tuple[str, str | None]:
    """`remote_url`, and the name the current repository gives that remote (None: none,
    or no repository here)."""
    from memstore.errors import MemstoreError, ValidationError
    from memstore.remote import remotes
    from memstore.store.repository import NotARepositoryError

    def known() -> dict[str, str]:
        try:
            with open_repo() as repo:
                return remotes.remotes(repo)
        except NotARepositoryError:
            return {}

    if "://" not in target:
        url = known().get(target)  # a damaged repository refuses a name, as before
        if url is not None:
            return url, target
        if not os.path.lexists(target):  # neither a name nor a folder
            raise ValidationError(f"no remote {target!r} and no folder of that name")
    try:  # a URL or folder: fsck'ed whatever state this repository is in
        return target, remotes.name_of(known(), target)
    except MemstoreError:
        return target, None


COMMANDS = [remote, push, fetch, pull, clone]
