"""branch, switch (alias checkout), tag, reset: names for commits."""
from __future__ import annotations

import click

from ..context import pass_repo
from ..output import first_line, json_option, print_json, short, shown_name, warn


@click.command(short_help="List, create, delete or rename branches.")
@click.argument("args", nargs=-1, metavar="[NAME [REV] | -d NAME... | --list PATTERN...]")
@click.option("-d", "--delete", is_flag=True, help="Delete the branches NAME... (each merged "
              "into a branch or tag that stays; all or none).")
@click.option("-D", "force_delete", is_flag=True, help="Delete the branches NAME... even if "
              "unmerged.")
@click.option("-l", "--list", "list_", is_flag=True, help="List the branches (as with no "
              "NAME; with -r or -a, those too); PATTERN... (globs, as git's `branch --list "
              "'feat*'`): only those matching one.")
@click.option("-f", "--force", is_flag=True, help="With NAME [REV]: move branch NAME to REV "
              "(default: HEAD) though it exists, as git's (not the current one: `reset` "
              "moves that); a branch whose row holds no commit id (damaged), the current "
              "one too, is set to REV.")
@click.option("-m", "--move", is_flag=True, help="Rename a branch: `branch -m OLD NEW`, or "
              "`branch -m NEW` for the current one.")
@click.option("-u", "--set-upstream-to", "upstream", metavar="REMOTE/BRANCH", help="Record "
              "REMOTE/BRANCH as the upstream of NAME (default: the current branch).")
@click.option("--unset-upstream", is_flag=True, help="Forget NAME's upstream.")
@click.option("--track", is_flag=True, help="With NAME REV (or -f): make REV, a "
              "remote-tracking branch (origin/x), NAME's upstream (the default); another REV "
              "is refused.")
@click.option("--no-track", is_flag=True, help="With NAME REV (or -f): a REV that is a "
              "remote-tracking branch (origin/x) is not made NAME's upstream.")
@click.option("-r", "--remotes", "remotes", is_flag=True, help="List the remote-tracking "
              "branches (REMOTE/BRANCH: what the last fetch saw); with -d, delete one here.")
@click.option("-a", "--all", "all_", is_flag=True, help="List the local branches, then the "
              "remote-tracking ones (as remotes/REMOTE/BRANCH).")
@click.option("-v", "--verbose", count=True, help="-vv: each local branch's upstream and how "
              "far ahead and behind it is, as of the last fetch or push ([origin/main: ahead "
              "1, behind 2], [origin/main: gone]); -v alone lists as without it.")
@json_option
@pass_repo
def branch(repo, args: tuple[str, ...], delete: bool, force_delete: bool, list_: bool,
           force: bool, move: bool, upstream: str | None, unset_upstream: bool, remotes: bool,
           all_: bool, verbose: int, track: bool, no_track: bool, as_json: bool) -> None:
    """List branches, create branch NAME at REV (default: HEAD), delete or rename one.

    With no argument, lists the branches and marks the current one with '*'.
    Branch names follow git's rules (no spaces, '..', '~', '^', ':' and the like).
    `branch -m OLD NEW` renames OLD (HEAD follows it); a remote's copy keeps its name.
    `branch -f NAME [REV]` moves NAME to REV though it exists (not the current branch:
    `reset` moves that); the commits it leaves that nothing else holds are warned about.
    A branch whose row in the index holds no commit id (damaged, and in no snapshot for
    `fsck --repair` to take it from) is set to REV by `branch -f NAME REV`, the current
    one too: fsck names REV (the branch's reflog's newest entry).
    `--set-upstream-to REMOTE/BRANCH [NAME]` records a branch's upstream, as `push -u`
    does; `--unset-upstream [NAME]` forgets it. A rename carries it, a delete drops it.
    `branch NAME REV` (and -f) where REV is a remote-tracking branch (origin/x, or
    remotes/origin/x as `-a` shows it) makes it NAME's upstream, as git's
    ("branch 'NAME' set up to track 'origin/x'."); --no-track does not; --track refuses
    any other REV (git's --track of a local branch: memstore's upstreams are remote ones).
    `-r` lists the remote-tracking branches, `-a` the local ones then those (shown as
    git does, remotes/origin/main, a revision too); `branch -d -r REMOTE/BRANCH...`
    deletes them here (the remote keeps them: the next fetch brings them back), one
    whose row holds no commit id (damaged, as fsck says) too.
    `branch -d NAME...` (-D, -d -r) deletes all the branches named or none: one that
    cannot be deleted (no such branch, the current one, unmerged) refuses them all,
    naming it (git deletes the others and exits 1); -d's merge check counts only the
    branches and tags that stay. `--list [PATTERN...]` (-l; with -r, -a, -vv too) lists
    the branches whose names (REMOTE/BRANCH for a remote-tracking one) match a glob
    PATTERN (`*` matches '/' too, as git's).
    `-vv` shows each local branch's upstream (the recorded one, else the default remote's
    branch of its name, as status and pull use) and how far ahead and behind it is, as
    git's: `[origin/main: ahead 1, behind 2]`, `[origin/main: gone]`.

    --json prints a list of branches (name, commit, remote, current: a remote-tracking
    branch's name is REMOTE/BRANCH; a remote's HEAD, REMOTE/HEAD, has target too, the
    REMOTE/BRANCH it names, whose commit it gives, and one naming a branch that is gone
    is not listed, as git's; with -vv, upstream, ahead, behind and gone too, null
    where there is none); or {created, commit, upstream}, {deleted, commit} (with remote
    true for -d -r; a list of those when several are deleted), {renamed, to, commit},
    {branch, upstream}, {moved, commit, was, left_behind, warning, upstream} (-f of a
    branch that exists), {set, commit, held} (-f of a damaged one); upstream: the remote-tracking branch REV is, which this made
    NAME's upstream, or null.
    """
    if track and no_track:
        raise click.UsageError("--track and --no-track cannot be used together")
    if (track or no_track) and (not args or list_ or delete or force_delete or move or remotes
                                or all_ or verbose or upstream is not None or unset_upstream):
        flag = "--track" if track else "--no-track"
        raise click.UsageError(f"{flag} goes with a branch made: `branch {flag} NAME REV` (or "
                               "-f)")
    if list_:  # git's: the arguments are patterns
        if delete or force_delete or move or force or upstream is not None or unset_upstream:
            raise click.UsageError("--list lists branches: no -d, -m, -f nor upstream option "
                                   "with it")
        return list_branches(repo, local=all_ or not remotes, remote=remotes or all_,
                             as_json=as_json, verbose=verbose, patterns=args)
    if len(args) > 2 and not (delete or force_delete):
        raise click.UsageError(f"unexpected extra argument {args[2]!r} (-d deletes several "
                               "branches, --list takes several patterns)")
    name, rev = (*args, None, None)[:2]
    if force and (name is None or delete or force_delete or move or remotes or all_ or verbose
                  or upstream is not None or unset_upstream):
        raise click.UsageError("-f moves a branch: `branch -f NAME [REV]`, no other option")
    if force:
        return force_branch(repo, name, rev, as_json, track=not no_track, required=track)
    if verbose and (name is not None or delete or force_delete or move
                    or upstream is not None or unset_upstream):
        raise click.UsageError("-v/-vv list the branches: no NAME, -d, -m nor upstream "
                               "option with them")
    if remotes or all_:
        return remote_branches(repo, args, delete or force_delete, move,
                               upstream is not None or unset_upstream, all_, as_json, verbose)
    if upstream is not None or unset_upstream:  # git's branch.NAME.remote and .merge
        from .remote import branch_upstream

        if upstream is not None:  # remotes/origin/x and refs/remotes/origin/x, as git's
            upstream = _tracked(repo, upstream) or upstream
        return branch_upstream(repo, name, upstream, unset_upstream, as_json,
                               alone=not (move or delete or force_delete or rev is not None))
    if move:
        if name is None:
            raise click.UsageError("branch -m needs the NEW name (and the OLD one first)")
        if (delete or force_delete):
            raise click.UsageError("-m and -d/-D cannot be used together")
        with repo.lock():  # the current branch as it is when renamed
            old, new = (name, rev) if rev is not None else (repo.head().branch, name)
            if old is None:
                raise click.UsageError("HEAD is detached: give the branch to rename, "
                                       "`branch -m OLD NEW`")
            commit = repo.rename_branch(old, new)
        print_json({"renamed": old, "to": new, "commit": commit}) if as_json else \
            click.echo(f"Renamed branch {shown_name(old)} to {shown_name(new)}")
        return
    if delete or force_delete:
        if name is None:
            raise click.UsageError("branch -d needs a branch NAME")
        show_deleted("branch", repo.delete_branches(list(args), force=force_delete), as_json)
        return
    if name is not None:
        from memstore.remote import remotes as known

        with repo.lock():  # git's: a branch made at origin/x tracks it (autoSetupMerge)
            tracks = _tracked(repo, rev) if rev is not None and not no_track else None
            if track and tracks is None:
                _cannot_track(repo, rev)
            commit = repo.create_branch(name, rev or "HEAD")
            if tracks is not None:
                known.set_upstream(repo, name, tracks)
        show_created(name, commit, tracks, as_json)
        return
    list_branches(repo, local=True, remote=False, as_json=as_json, verbose=verbose)


def show_created(name: str, commit: str, tracks: str | None, as_json: bool) -> None:
    """What `branch NAME [REV]` (and -f of a new NAME) prints; `tracks`: the upstream it
    recorded (REV a remote-tracking branch), said as git's and switch's say it."""
    if as_json:
        print_json({"created": name, "commit": commit, "upstream": tracks})
        return
    if tracks is not None:
        click.echo(f"branch '{name}' set up to track '{tracks}'.")
    click.echo(f"Created branch {name} at {short(commit)}")


def force_branch(repo, name: str, rev: str | None, as_json: bool, track: bool = True,
                 required: bool = False) -> None:
    """`branch -f NAME REV`: git's; the ref moves by compare-and-swap without reading the
    commit it leaves (a branch left on a commit whose record is gone moves as well). A REV
    that is a remote-tracking branch becomes NAME's upstream unless not `track`, as git's;
    `required` (--track): any other REV is refused."""
    from memstore.errors import ValidationError
    from memstore.remote import remotes as known
    from memstore.store.refs import HEADS, branch_ref, shell_word

    held = repo.refs.damaged(HEADS + name) if isinstance(name, str) else None
    if held is not None:  # (checked again under the lock)
        if rev is None:  # HEAD may be this branch: no default, the commit is the user's
            raise ValidationError(f"branch {name!r} holds {held}, not a commit id: "
                                  f"`memstore branch -f {shell_word(name)} REV` sets it "
                                  "(`memstore fsck` names REV)")
        return mend_branch(repo, name, rev, as_json)
    rev = rev or "HEAD"
    with repo.lock():  # the current branch, and what the move leaves, as they are then
        head = repo.head()
        if head.branch == name:
            raise ValidationError(f"cannot force-move the current branch {name!r}: "
                                  f"`memstore reset {rev}` moves it")
        was = repo.refs.read(branch_ref(name))
        # off a commit the index does not hold, what it leaves is what it named before
        before = (_named_before(repo, branch_ref(name), was)
                  if was is not None and not repo.has_commit(was) else None)
        if was is not None:  # damaged rows of what it would leave refuse it before it moves
            repo.held_by_no_ref(before or was)
        # a detached HEAD is not moved here: what it reaches stays (gc keeps it)
        kept = (repo.reached(head.commit)
                if head.branch is None and head.commit is not None else set())
        tracks = _tracked(repo, rev) if track else None
        if required and tracks is None:
            _cannot_track(repo, rev)
        commit = repo.create_branch(name, rev, force=True)
        left = ([c for c in repo.held_by_no_ref(before or was) if c not in kept]
                if was is not None and was != commit else [])
        if tracks is not None:
            known.set_upstream(repo, name, tracks)
    if was is None:
        show_created(name, commit, tracks, as_json)
        return
    warning = leaving(left, f"`memstore branch -f {shell_word(name)} {short(before or was)}` "
                            "goes back")
    if warning is not None:
        warn(f"warning: {warning}")
    if as_json:
        print_json({"moved": name, "commit": commit, "was": was, "left_behind": left,
                    "warning": warning, "upstream": tracks})
        return
    if tracks is not None:
        click.echo(f"branch '{name}' set up to track '{tracks}'.")
    click.echo(f"Moved branch {name} to {short(commit)} (was {short(was)})")


def mend_branch(repo, name: str, rev: str, as_json: bool) -> None:
    """`branch -f NAME REV` where NAME's row holds no commit id (the current branch too):
    sets it, as git's way is to write the id into the ref by hand; no commit is left (the
    one it named is unknown) and no upstream is recorded."""
    commit, held = repo.mend_branch(name, rev)
    if as_json:
        print_json({"set": name, "commit": commit, "held": held})
        return
    click.echo(f"Set branch {name} to {short(commit)} (its row held {held}, not a commit id)")


def remote_branches(repo, names: tuple[str, ...], delete: bool, move: bool,
                    upstream: bool, all_: bool, as_json: bool, verbose: int = 0) -> None:
    """`branch -r` and `branch -a`: list; `branch -d -r REMOTE/BRANCH...`: delete here."""
    from memstore.remote.remotes import delete_tracking
    from memstore.store.refs import REMOTES

    flag = "-a" if all_ else "-r"
    if upstream:
        raise click.UsageError(f"{flag} cannot be used with --set-upstream-to or "
                               "--unset-upstream")
    if move:
        raise click.UsageError(f"{flag} cannot be used with -m")
    if delete and all_:
        raise click.UsageError("-a cannot be used with -d/-D (`branch -d -r REMOTE/BRANCH` "
                               "deletes a remote-tracking branch)")
    if delete:
        if not names:
            raise click.UsageError("branch -d -r needs a REMOTE/BRANCH")
        heads = repo.refs.remote_heads()  # origin/HEAD: said as git's, by the ref it named
        show_deleted("remote-tracking branch", delete_tracking(repo, list(names)), as_json,
                     {n: REMOTES + b for n, b in heads.items()})
        return
    if names:
        raise click.UsageError(f"{flag} lists branches and takes no NAME (`branch {flag} "
                               "--list PATTERN` lists those matching; `branch -d -r "
                               "REMOTE/BRANCH` deletes a remote-tracking one)")
    list_branches(repo, local=all_, remote=True, as_json=as_json, verbose=verbose)


def list_branches(repo, local: bool, remote: bool, as_json: bool, verbose: int = 0,
                  patterns: tuple[str, ...] = ()) -> None:
    """The local branches (the current one marked, an unborn or detached HEAD said), then
    the remote-tracking ones: as `remotes/REMOTE/BRANCH` after local ones, as git's -a;
    with `verbose` 2 (-vv), each local branch's upstream; with `patterns` (--list), those
    whose name (REMOTE/BRANCH for a remote-tracking one, as git matches) matches one."""
    from memstore.remote.remotes import all_tracking
    from memstore.store import history
    from memstore.store.refs import HEADS, REMOTES

    head = repo.head() if local else None
    every = repo.branches() if local else {}
    branches = matching(every, patterns)
    fetched = all_tracking(repo) if remote else {}
    tracking = matching(fetched, patterns)
    # git's `origin/HEAD -> origin/main`: REMOTE/HEAD → (REMOTE/B, B's commit), in its place
    # among them; one naming a branch that is gone (dangling) is left out, as git's
    heads = {n: (b, fetched[b]) for n, b in matching(repo.refs.remote_heads(), patterns).items()
             if b in fetched}
    unborn = (head is not None and head.branch is not None and head.branch not in every
              and bool(matching({head.branch: ""}, patterns)))
    current = head.branch if head is not None else None
    ups = {}
    if verbose >= 2 and branches:  # one query; each commit's history walked once
        from memstore.remote.remotes import upstream

        # counted on the records: a damaged row is one line, not a wrong count
        g, walks = history.checked_graph(repo.store, unreadable=True), {}
        ups = {n: upstream(repo, n, g=g, walks=walks) for n in branches}
    if as_json:  # an unborn current branch too, as the text lists it
        def tracked(n: str) -> dict:
            up = ups.get(n)
            return {"upstream": up["name"] if up else None, "ahead": up and up["ahead"],
                    "behind": up and up["behind"], "gone": bool(up and up["gone"])} \
                if verbose >= 2 else {}

        print_json(([{"name": current, "commit": None, "remote": False, "current": True,
                      **tracked(current)}] if unborn else [])
                   + [{"name": n, "commit": c, "remote": False, "current": n == current,
                       **tracked(n)}
                      for n, c in branches.items()]
                   + sorted([{"name": n, "commit": c, "remote": True, "current": False}
                             for n, c in tracking.items()]
                            + [{"name": n, "commit": c, "remote": True, "current": False,
                                "target": b} for n, (b, c) in heads.items()],
                            key=lambda row: row["name"]))
        return
    if unborn:
        click.echo(f"* {shown_name(head.branch)} (no commits yet)")
    if head is not None and head.ref is None and not patterns:  # git's: HEAD is no match
        click.echo(f"* (HEAD detached at {short(head.commit)})")
    prefix = "remotes/" if local else ""
    for mark, n, c, ref in (
            [("*" if n == current else " ", n, c, HEADS + n) for n, c in branches.items()]
            + [(" ", prefix + n, tracking.get(n), REMOTES + n)
               for n in sorted([*tracking, *heads])]):
        if c is None:  # a remote's HEAD (symbolic)
            click.echo(f"  {shown_name(n)} -> {heads[ref[len(REMOTES):]][0]}")
            continue
        up = ups.get(n) if ref.startswith(HEADS) else None
        click.echo(f"{mark} {shown_name(n):<20} {short(c)} {tracking_mark(up)}"
                   f"{subject(repo, ref, c)}")


def tracking_mark(up: dict | None) -> str:
    """git's `branch -vv` mark of a branch's upstream: `[origin/main: ahead 1, behind 2] `,
    `[origin/main] ` when even, `[origin/main: gone] `; '' with none."""
    if up is None:
        return ""
    if up["gone"]:
        return f"[{shown_name(up['name'])}: gone] "
    far = ", ".join(f"{word} {up[word]}" for word in ("ahead", "behind") if up[word])
    return f"[{shown_name(up['name'])}{': ' + far if far else ''}] "


def subject(repo, ref: str, commit: str) -> str:
    """The first line of the message of `commit`, which `ref` names; a commit that cannot be
    read is an error that names the ref too (one row of the index or object damaged)."""
    from memstore.errors import MemstoreError

    try:
        return first_line(repo.get_commit(commit).message)
    except MemstoreError as e:
        raise MemstoreError(f"{shown_name(ref)[:100]}: {e}") from None


@click.command()
@click.argument("name")
@click.argument("start", required=False)
@click.option("-c", "-b", "--create", is_flag=True, help="Create branch NAME at START "
              "(default: HEAD) first, and switch to it (-b: checkout's spelling).")
@click.option("--detach", is_flag=True, help="Point HEAD at the commit NAME names, not at "
              "a branch.")
@click.option("--track", is_flag=True, help="With -c: make a START that is a "
              "remote-tracking branch the new branch's upstream (the default); another START "
              "is refused. Without -c, NAME a remote-tracking branch (origin/x): make branch x "
              "there, tracking it (git's checkout --track origin/x; x is NAME's text after "
              "its first '/', as git names it).")
@click.option("--no-track", is_flag=True, help="With -c: make no upstream, though START is a "
              "remote-tracking branch. Without -c, `--no-track origin/x` makes x at origin/x "
              "with none.")
@json_option
@pass_repo
def switch(repo, name: str, start: str | None, create: bool, detach: bool, track: bool,
           no_track: bool, as_json: bool) -> None:
    """Switch HEAD to branch NAME (alias: checkout).

    Later commits go onto that branch. `switch -c NAME [START]` (`checkout -b NAME
    [START]`) creates branch NAME at START (default: HEAD) and switches to it, as git's:
    a NAME that exists, a START that names no commit or an invalid name is refused, with
    nothing changed, as is one naming a commit the index does not hold (a damaged
    remote-tracking branch, say). A START that is a remote-tracking branch (origin/x, or
    remotes/origin/x as `branch -a` shows it) becomes the new branch's upstream; `switch
    x` where no branch or revision x exists but one remote's branch x was fetched makes x
    there, tracking it (git's guess; two remotes' x: refused, naming both); `--no-track`
    (with -c) makes none its upstream; `switch --track origin/x` (git's `checkout --track
    origin/x`) makes x at origin/x, tracking it (--no-track: with no upstream); x is, as
    git names it, NAME's text after refs/, remotes/ and its first '/' (`--track origin`,
    `--track origin/HEAD` are refused, as git's). A revision that is not a branch (a tag, a commit
    id, HEAD~2) detaches HEAD at its commit, as `git checkout` does (a tag x wins over a
    remote's branch x there: git's switch refuses a tag without --detach). `switch -`
    is `switch @{-1}`, as git's: back to where the last switch came from, read from HEAD's
    reflog (that branch, or that commit detached); `switch @{-N}` onto the branch HEAD was
    on before the N-th latest switch.
    Nothing else changes: states are built from the records, there is no working copy to
    update.

    --json prints one object: branch (null when detached), commit (null on a branch with
    no commits yet), detached, created, upstream (the remote-tracking branch this switch
    made the new branch's upstream, or null: a branch switched to keeps its own, which
    `branch -vv` and `status` show), and left_behind: the commits a detached HEAD leaves
    that no branch or tag holds, newest first (empty when none; also warned).
    """
    if create and detach:  # the new branch would be made and left at once
        raise click.UsageError("-c and --detach cannot be used together")
    if start is not None and not create:
        raise click.UsageError(f"START ({start!r}) is where -c creates the branch: "
                               f"`switch -c {name} {start}`")
    if track and no_track:
        raise click.UsageError("--track and --no-track cannot be used together")
    if (track or no_track) and not create and not detach and start is None:
        # git's `switch --track origin/x` (`checkout --track`), --no-track too: branch x
        # made at NAME, its name NAME's text after refs/, remotes/ and the first '/' (not
        # the branch NAME resolves to: `--track origin/HEAD` makes no main)
        made = name.removeprefix("refs/").removeprefix("remotes/").partition("/")[2]
        if made:
            create, start, name = True, name, made
    if (track or no_track) and not create:  # git's: "missing branch name; try -c"
        flag = "--track" if track else "--no-track"
        raise click.UsageError(f"missing branch name; try -c: `switch -c NAME START {flag}`"
                               + (" (or --track REMOTE/BRANCH, a remote-tracking branch)"
                                  if track else ""))
    from memstore.remote import remotes

    held = repo.refs.damaged("HEAD")  # HEAD's row reads as no commit nor branch: set it
    if held is not None and name != "HEAD":
        if name == "-" and not create:  # read from HEAD's reflog, as git's `switch -` off
            name, detach = _previous(repo, detach)  # a HEAD on a commit it lacks
        elif not create:
            name = repo.refs.prior_checkout(name) or name
        head = repo.mend_head(name, create=create, detach=detach)  # -c: refused
        d = switch_result(head, False, [])
        d["upstream"] = None
        if as_json:
            print_json(d)
        elif d["branch"]:
            click.echo(f"Switched to branch '{d['branch']}' (HEAD's row held {held})")
        else:
            click.echo(f"HEAD is now at {short(d['commit'])} (detached; its row held {held})")
        return
    with repo.lock():  # what it leaves is read before a gc elsewhere can remove it
        if name == "-" and not create:  # git's `switch -`: where the last switch came from
            name, detach = _previous(repo, detach)
        elif not create:  # `switch @{-N}`: that branch (git's), or that commit detached
            name = repo.refs.prior_checkout(name) or name
        guess = None if create or detach else _tracking_guess(repo, name)
        if guess is not None:  # git's: `switch topic` with only origin/topic here
            create, start = True, guess
        # a branch made at a remote-tracking branch tracks it, as git's (autoSetupMerge):
        # read before the switch, whose refusal then moves nothing
        tracks = _tracked(repo, start) if create and start is not None and not no_track else None
        if track and tracks is None:
            _cannot_track(repo, start, "START")
        was = repo.head()
        # off a commit the index does not hold, what a detached HEAD leaves is what it named
        # before (as reset's): damaged rows there refuse it before it moves (a switch that
        # keeps HEAD's commit, -c NAME or HEAD, reads nothing)
        keeps = (create and start is None) or name == "HEAD"
        before = (_named_before(repo, "HEAD", was.commit)
                  if was.branch is None and was.commit is not None and not keeps
                  and not repo.has_commit(was.commit) else None)
        if before is not None:
            repo.held_by_no_ref(before)
        head = repo.switch(name, create=create, detach=detach, start=start)
        left = (_left_behind(repo, before or was.commit, head.commit)
                if was.branch is None and was.commit is not None and was.commit != head.commit
                else [])
        if tracks is not None:
            remotes.set_upstream(repo, name, tracks)
    d = switch_result(head, create, left)
    d["upstream"] = tracks
    if d["warning"] is not None:
        warn(f"warning: {d['warning']}")
    if as_json:
        print_json(d)
        return
    if tracks is not None:
        click.echo(f"branch '{d['branch']}' set up to track '{tracks}'.")
    if d["branch"] and not create and d["branch"] == was.branch:  # git's wording (exit 0)
        click.echo(f"Already on '{d['branch']}'")
    elif d["branch"]:
        made = "a new " if d["created"] else ""
        click.echo(f"Switched to {made}branch '{d['branch']}'")
    else:
        click.echo(f"HEAD is now at {short(d['commit'])} (detached)")


def _previous(repo, detach: bool) -> tuple[str, bool]:
    """What `switch -` names, git's `@{-1}` (previous_head): the branch HEAD was on before
    the last switch (its name, `detach` as given), or the commit it was detached at (its
    id, detached); one that is gone since (a branch deleted or renamed, a commit gc
    removed) is one line."""
    from memstore.errors import ValidationError
    from memstore.store import previous_head

    was = previous_head.read(repo.db)
    if was.branch is not None:  # a revision naming nothing now: bad input, as @{-1}'s
        if repo.refs.read(was.ref) is None:
            raise ValidationError(f"the previous branch, {shown_name(was.branch)!r}, has no "
                                "commits here now (deleted or renamed since, or it had none yet)")
        return was.branch, detach
    if not repo.has_commit(was.commit):
        from memstore.store import reflog
        from memstore.store.schema import not_indexed

        if reflog.prior(repo.db, 1)[0] is not None:  # gc keeps what a switch's entry names:
            raise not_indexed(was.commit)  # damage (a record `fsck --repair` left out)
        raise ValidationError(f"the previous HEAD, commit {short(was.commit)} (detached), is "
                            "no longer here (gc removed it)")
    return was.commit, True


def _tracking_guess(repo, name: str) -> str | None:
    """REMOTE/NAME where `switch NAME` names no branch and no revision here but exactly one
    remote-tracking branch of that name exists (git's guess: the branch is made there and
    tracks it); several such: refused, naming them."""
    from memstore.errors import ValidationError
    from memstore.store.refs import HEADS

    if name == "HEAD" or repo.refs.read(HEADS + name) is not None:
        return None
    try:
        repo.resolve(name)
        return None  # a tag, a commit id, origin/x itself: as before
    except ValidationError:
        pass
    found = sorted(t for t in _tracking(repo) if t.partition("/")[2] == name)
    if len(found) > 1:
        raise ValidationError(f"{shown_name(name)!r} is no branch here and matches "
                              f"{len(found)} remote-tracking branches ({', '.join(found)}): "
                              f"say which, `memstore switch -c {name} {found[0]}`")
    return found[0] if found else None


def _tracking(repo) -> list[str]:
    """The remote-tracking branches (REMOTE/BRANCH) of the remotes recorded here: the ones
    a new branch can track. As git's, one whose remote is not recorded (the remotes row
    edited by hand) is not guessed nor tracked: recording it as an upstream was refused
    ('no remote …') after the switch had moved HEAD."""
    from memstore.remote import remotes

    known = remotes.remotes(repo)
    return [t for t in remotes.all_tracking(repo) if t.partition("/")[0] in known]


def _cannot_track(repo, rev: str | None, what: str = "REV") -> None:
    """`--track` of a REV that is no remote-tracking branch: git tracks a local branch
    (branch.NAME.remote '.'), and a tag it refuses; memstore's upstreams are remote ones.
    REMOTE/BRANCH of a remote here that has no such branch: git's line for it."""
    from memstore.errors import ValidationError
    from memstore.remote import remotes

    remote, _, theirs = (rev or "").partition("/")
    if theirs and remote in remotes.remotes(repo):
        raise ValidationError(f"the requested upstream branch {rev!r} does not exist: fetch "
                              f"{remote} first (`memstore fetch {remote}`)")
    raise ValidationError(f"cannot track {rev or 'HEAD'!r}: --track needs a {what} that is "
                          "a remote-tracking branch (origin/x)")


def _tracked(repo, start: str) -> str | None:
    """The remote-tracking branch (REMOTE/BRANCH, one of `_tracking`) that START, as
    `switch -c NAME START` names it, is: `origin/x`, or as git takes them too
    `remotes/origin/x` (as `branch -a` shows it) and `refs/remotes/origin/x`, read as
    refs.resolve reads them, and `@{upstream}` (`@{u}`, `BRANCH@{u}`, as git's); None for
    any other revision. One whose BRANCH no upstream can name (fetched before cd5f049's
    rule on names) is a ValidationError: asked before the branch is made, so that the
    refusal moves nothing."""
    from memstore.errors import ValidationError
    from memstore.remote import remotes
    from memstore.store.ref_marks import marked_ref
    from memstore.store.refs import REMOTES, check_ref_name, dwim

    if (marked := marked_ref(repo.refs, start)) is not None:  # @{u}, as git's
        ref = marked
    elif start.startswith("refs/"):
        ref = start
    elif repo.refs.read(REMOTES + start) is not None:
        ref = REMOTES + start
    else:
        ref = "refs/" + start  # remotes/origin/x; any other name is no ref under REMOTES
        found = [r for r in dwim(start) if repo.refs.read(r) is not None]
        if found and found[0] == f"{REMOTES}{start}/HEAD":  # `origin`: origin/HEAD's
            ref = found[0]
    if ref.startswith(REMOTES) and ref.endswith("/HEAD") and \
            (head := repo.refs.remote_head(ref[len(REMOTES):-len("/HEAD")])) is not None:
        ref = ref[:-len("HEAD")] + head  # origin/HEAD: the branch it names, as git's
    if not ref.startswith(REMOTES) or repo.refs.read(ref) is None:
        return None
    name = ref[len(REMOTES):]
    remote, _, branch = name.partition("/")
    if remote not in remotes.remotes(repo):
        return None
    try:
        check_ref_name(branch)
    except ValidationError as e:
        raise ValidationError(f"{name!r} cannot be an upstream: {e} (`memstore branch "
                              "--no-track NAME REV` makes a branch there without one)") from None
    return name


# what gc does with them: the reflog entry of the move names them (store.reflog's
# EXPIRE_UNREACHABLE), as git's gc keeps what the reflog names
KEPT = "gc removes them once no reflog entry names them: 30 days"


def leaving(left: list[str], way_back: str) -> str | None:
    """The warning of a command that moved a ref (reset, branch -f, switch off a detached
    HEAD) and left `left` (newest first) that no branch or tag holds; None when nothing."""
    return (f"leaving {len(left)} commit(s) that no branch or tag holds, the newest "
            f"{short(left[0])}; {way_back} ({KEPT})") if left else None


def switch_result(head, create: bool, left: list[str]) -> dict:
    """switch --json, and the values its text is printed from."""
    warning = (leaving(left, f"`memstore branch NAME {short(left[0])}` keeps them")
               if left else None)
    return {"branch": head.branch, "commit": head.commit, "detached": head.branch is None,
            "created": create, "left_behind": list(left), "warning": warning}


def show_deleted(kind: str, deleted: dict[str, str], as_json: bool,
                 symbolic: dict[str, str] | None = None) -> None:
    """What `tag -d` and `branch -d` print: a line per ref deleted (`kind`: 'tag',
    'branch', 'remote-tracking branch'); --json {deleted, commit} (remote true for
    `branch -d -r`), a list of those for several. `symbolic`: name → the ref a deleted
    REMOTE/HEAD named, which git's line says (`was refs/remotes/origin/main`)."""
    remote = {"remote": True} if kind.startswith("remote") else {}
    rows = [{"deleted": n, "commit": c, **remote} for n, c in deleted.items()]
    if as_json:
        print_json(rows[0] if len(rows) == 1 else rows)
        return
    symbolic = symbolic or {}
    for n, c in deleted.items():
        was = (f"was {symbolic[n]}" if n in symbolic else f"was {short(c)}" if c is not None
               else "its row held no commit id")
        # git 2.39's words: the tag quoted, no period; a branch unquoted, a period
        name = f"'{n}'" if kind == "tag" else shown_name(n) if remote else n
        click.echo(f"Deleted {kind} {name} ({was})" + ("" if kind == "tag" else "."))


def matching(refs: dict[str, str], patterns: tuple[str, ...]) -> dict[str, str]:
    """The refs (name → commit) whose names match a glob of `patterns` (all with none), as
    git's `tag -l` and `branch --list` match (its wildmatch: `*` matches '/' too, `[^a]`
    is `[!a]`)."""
    from memstore.store.wildmatch import wildmatch

    return {n: c for n, c in refs.items()
            if not patterns or any(wildmatch(p, n) for p in patterns)}


@click.command(short_help="List, create or delete tags.")
@click.argument("names", nargs=-1, metavar="[NAME [REV] | -d NAME... | -l PATTERN...]")
@click.option("-d", "--delete", is_flag=True, help="Delete the tags NAME... (all or none: "
              "one that is no tag deletes nothing).")
@click.option("-l", "--list", "list_", is_flag=True, help="List the tags (as with no NAME); "
              "PATTERN... (globs, as git's `tag -l 'v1.*'`): only those matching one.")
@json_option
@pass_repo
def tag(repo, names: tuple[str, ...], delete: bool, list_: bool, as_json: bool) -> None:
    """List tags, create tag NAME at REV (default: HEAD), or delete some (-d NAME...).

    `tag -d NAME...` deletes all the tags named or none: a NAME that is no tag refuses
    them all, naming it, with nothing deleted (git deletes the others and exits 1).
    A tag whose row in the index holds no commit id (damaged) is deleted too (commit
    null), as fsck says where no snapshot holds it; `tag NAME REV` makes it again.
    `tag -l [PATTERN...]` (--list) lists the tags whose names match a glob PATTERN
    (`*` matches '/' too, as git's), all with none.

    --json prints a list of tags (name, commit); or {created, commit}, {deleted, commit}
    (a list of those when -d names several).
    """
    if delete and list_:
        raise click.UsageError("-d and -l cannot be used together")
    if delete:
        if not names:
            raise click.UsageError("tag -d needs a tag NAME")
        show_deleted("tag", repo.delete_tags(list(names)), as_json)
        return
    if names and not list_:
        if len(names) > 2:
            raise click.UsageError(f"unexpected extra argument {names[2]!r} (`tag NAME [REV]` "
                                   "creates one tag; -d deletes several, -l lists)")
        name, rev = names[0], names[1] if len(names) > 1 else "HEAD"
        commit = repo.create_tag(name, rev)
        print_json({"created": name, "commit": commit}) if as_json else \
            click.echo(f"Tagged {short(commit)} as {name}")
        return
    tags = matching(repo.tags(), names)
    if as_json:
        print_json([{"name": n, "commit": c} for n, c in tags.items()])
        return
    for n, c in tags.items():
        click.echo(f"{shown_name(n):<20} {short(c)} {first_line(repo.get_commit(c).message)}")


@click.command(short_help="Move the current branch to REV (drop the commits after it).")
@click.argument("rev", required=False, default="HEAD")
@click.option("--soft", "--mixed", "--hard", "mode", is_flag=True, hidden=True,
              help="git's modes, accepted: with no working copy they are all the same.")
@json_option
@pass_repo
def reset(repo, rev: str, mode: bool, as_json: bool) -> None:
    """Move the current branch (or a detached HEAD) to the commit REV names (default:
    HEAD, which moves nothing, as git's), as `git reset` does: commits after REV leave the
    branch, as a local commit one would rather not have made and not push (a revert
    records undoing it, and replays the later commits). There is no working copy, so git's
    --soft, --mixed and --hard are all the same here (each is accepted, as a git user types
    them, with or without REV). A REV naming a commit the index does not hold (a damaged
    remote-tracking branch, say) is refused, nothing moved. The commits it leaves that no
    branch or tag holds are warned about, with the command that goes back (`reset
    main@{1}` too, the reflog's); gc removes them once no reflog entry names them (30 days).

    --json prints one object: branch (null when detached), commit (where it points now),
    was (where it pointed), left_behind (the commits no branch or tag holds now, newest
    first) and warning.
    """
    from memstore.errors import ValidationError

    was = repo.head()
    if was.commit is None:
        raise ValidationError("nothing to reset: the current branch has no commits yet")
    target = repo.resolve(rev)
    repo.check_held(target, rev, f"reset {f'branch {was.branch!r}' if was.branch else 'HEAD'}")
    # what HEAD named when REV was read (its branch, or HEAD itself when detached): another
    # process's switch since moves no other branch (its commit may be the same, which a
    # compare-and-swap of commits alone cannot tell)
    with repo.lock():  # what it leaves is read before a gc elsewhere can remove it
        # off a commit the index does not hold (its parents unknown), what the branch
        # leaves is what it named before, as the ref snapshots tell: read before it moves
        before = (_named_before(repo, was.ref or "HEAD", was.commit)
                  if target != was.commit and not repo.has_commit(was.commit) else None)
        if before is not None:  # damaged rows there refuse it before it moves, as branch -f
            repo.held_by_no_ref(before)
        repo.reset(target, was=was, rev=rev)
        left = _left_behind(repo, before or was.commit, target) if target != was.commit else []
        message = first_line(repo.get_commit(target).message)
    warning = leaving(left, f"`memstore reset {short(was.commit)}` goes back")
    if target != was.commit and not repo.has_commit(was.commit):
        warning = (f"left commit {short(was.commit)}, which is not in the index (its record "
                   "is corrupt or missing); `memstore gc` removes what is left of it")
        if left:  # good commits it held before, which nothing holds now
            warning += (f"; and {len(left)} commit(s) that no branch or tag holds, the "
                        f"newest {short(left[0])}, where it was before; `memstore reset "
                        f"{short(left[0])}` goes back to that ({KEPT})")
    elif left and not _readable(repo, left[0]):  # no reset goes back to it
        warning = (f"leaving {len(left)} commit(s) that no branch or tag holds, the newest "
                   f"{short(left[0])}, whose record is corrupt or missing (`memstore fsck` "
                   "names it; no reset goes back to it); gc removes them")
    if warning is not None:
        warn(f"warning: {warning}")
    if as_json:
        print_json({"branch": was.branch, "commit": target, "was": was.commit,
                    "left_behind": left, "warning": warning})
    else:
        click.echo(f"HEAD is now at {short(target)} {message}")


def _named_before(repo, ref: str, commit: str) -> str | None:
    """The commit `ref` (on `commit`, which the index does not hold) named before, as the
    ref snapshots tell (fsck's way back), if the index holds it and its record reads."""
    from memstore.store.maintenance import named_before

    rows = {r["id"] for r in repo.db.query("select id from commits")}
    return named_before(repo.store, ref, commit, rows)


def _left_behind(repo, leaves: str, now: str | None) -> list[str]:
    """What HEAD (or its branch) moving off `leaves` onto `now` leaves that no branch or
    tag holds, newest first: `leaves` and its ancestors less what `now` reaches, which a
    detached HEAD holds (gc keeps it; held_by_no_ref counts no HEAD). Both on the records:
    repo.reset and repo.switch read them before the move, so damage refuses it there."""
    left = repo.held_by_no_ref(leaves)
    kept = repo.reached(now) if left and now else set()
    return [c for c in left if c not in kept]


def _readable(repo, commit: str) -> bool:
    """Whether `commit`'s record can be read (its object present and intact)."""
    from memstore.errors import MemstoreError

    try:
        repo.get_commit(commit)
    except MemstoreError:
        return False
    return True


COMMANDS = [branch, switch, tag, reset]
