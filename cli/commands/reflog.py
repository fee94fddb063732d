"""reflog: where HEAD and each branch have been (memstore.store.reflog), as git's."""
from __future__ import annotations

import time

import click

from ..context import pass_repo
from ..dates import parse
from ..output import json_option, print_json, warn, when

SUBCOMMANDS = ("show", "expire", "delete", "exists")


class _ShowByDefault(click.Group):
    """`reflog` and `reflog REF` are `reflog show [REF]`, as git's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ShowByDefault,
             short_help="Show where HEAD and branches have been; expire or delete entries.")
def reflog() -> None:
    """Where HEAD, each branch and each remote-tracking branch have been, newest first, as
    git's reflog: every commit, reset, merge, rebase, pull, switch and branch move is
    recorded with the commit before and after, when, by whom and why. `REF@{N}` names
    REF's N-th previous value in every command that takes a revision (`reset main@{1}`
    undoes a reset; `@{N}` is the current branch's; `@{-N}` the branch HEAD was on before
    the N-th latest switch, as git's). gc keeps every commit an entry names
    for 90 days (30 for one the entry's ref does not reach), then deletes the entry.

    `reflog [show] [REF]` lists REF's log (default HEAD); `reflog expire` deletes old
    entries; `reflog delete REF@{N}...` deletes those; `reflog exists REF` exits 0 when
    REF has a log, 1 when not."""


@reflog.command(short_help="List a ref's reflog (default HEAD).")
@click.argument("ref", default="HEAD", required=False)
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=0), default=None,
              help="Only the newest N entries.")
@json_option
@pass_repo
def show(repo, ref: str, limit: int | None, as_json: bool) -> None:
    """REF's entries, newest first, as git's `ID REF@{N}: MESSAGE`; `REF@{N}` or
    `REF@{DATE}`: from that entry on (the latest at or before DATE), as git's. A REF that names no ref here (and has no log) is one line, exit 2; a tag has no
    log (tags are not logged): nothing is listed, exit 0, as git's (`TAG@{N}`: one line,
    exit 2).

    --json prints a list of objects: selector (REF@{N}), ref, old (null where the move
    created it), new, time, author and message."""
    from memstore.store import ref_marks
    from memstore.store.reflog import PRIOR, TagHasNoLog, emptied, nth, split

    name, start = ref_marks.entry_at(repo.refs, ref) or (ref, 0)
    if name == ref:  # git's `reflog show v1` reads v1 as a revision first: its warnings
        repo.refs.name_warnings(name)
    try:
        full, log = repo.reflog_of(name, strict=True)  # a typo: one line, not silence
    except TagHasNoLog as e:
        if name != ref:  # TAG@{0}: no entry to name, as git's
            raise
        full, log = e.ref, []  # a tag has no log: nothing to list, as git's
    if name != ref and not (split(ref) is not None and start == 0) and not log \
            and repo.refs.emptied_log(full):  # git's, for REF@{N} (not @{0}) and REF@{DATE}
        raise emptied(full, ref)
    if start >= len(log) and start > 0 and split(ref) is not None:
        # git's: 'log for REF only has N entries' (REF@{DATE} before the oldest lists
        # nothing, with its warning; REF@{0} of an empty log is REF: nothing to list)
        nth(repo.db, full, start, repo.refs.log_shown(name), ref)
    shown = name or (repo.head().branch or "HEAD")  # `@{N}`: the current branch's, as git's
    if name == "@":  # `reflog show @`: HEAD's, so labelled, as git's
        shown = "HEAD"
    if ref_marks.MARK.match(name):  # `@{u}`: its remote-tracking ref, as git labels it
        shown = full
    elif PRIOR.match(name):  # `@{-1}`: that branch's name, as git labels it
        shown = full[len("refs/heads/"):]
    log = log[start:] if limit is None else log[start:start + limit]
    rows = [{"selector": f"{shown}@{{{i}}}", "ref": full, "old": e.old, "new": e.new,
             "time": e.time, "author": e.author, "message": e.message}
            for i, e in enumerate(log, start)]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        click.echo(f"{r['new'][:12]} {r['selector']}: {r['message']}")


@reflog.command(short_help="Delete old reflog entries.")
@click.argument("refs", nargs=-1)
@click.option("--expire", "expire", metavar="TIME", default="90 days ago", show_default=True,
              help="Delete the entries older than TIME (`now`: all; a date as `log "
                   "--since` takes it, or `never`).")
@click.option("--expire-unreachable", "expire_unreachable", metavar="TIME",
              default="30 days ago", show_default=True,
              help="Delete the entries older than TIME naming a commit the tip of "
                   "their ref does not reach (HEAD's: no ref).")
@click.option("--all", "all_refs", is_flag=True, help="Every ref that has a log.")
@click.option("-n", "--dry-run", is_flag=True, help="Only list what would be deleted.")
@json_option
@pass_repo
def expire(repo, refs: tuple[str, ...], expire: str, expire_unreachable: str,
           all_refs: bool, dry_run: bool, as_json: bool) -> None:
    """Delete the entries of REF... (or of every ref with `--all`) older than --expire, or
    older than --expire-unreachable and naming a commit the tip of their ref does not reach
    (HEAD's: no branch, tag or remote-tracking branch), as git's
    `reflog expire` (a REF that names no ref here, or a tag, which has no reflog, refuses
    them all; `--all` beside a ref row holding no commit id: one line naming the way out,
    that row's log kept, and HEAD's when on it, the others' expired, exit status 0, as
    git's beside a bad ref); gc then removes what only those entries kept
    (`memstore reflog expire --expire=now --all && memstore gc`: everything unreachable).

    --json prints one object: dry_run and expired (ref, new, time, message of each)."""
    if not refs and not all_refs:
        raise click.UsageError("name the refs whose entries to expire, or give --all")
    now = time.time()
    gone = repo.reflog_expire(None if all_refs else list(refs),
                              expire=_age(expire, now, "--expire"),
                              expire_unreachable=_age(expire_unreachable, now,
                                                      "--expire-unreachable"),
                              now=now, dry_run=dry_run,
                              on_passed=_passed)
    if as_json:
        print_json({"dry_run": dry_run,
                    "expired": [{"ref": e.ref, "new": e.new, "time": e.time,
                                 "message": e.message} for e in gone]})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(gone)} reflog entr{'y' if len(gone) == 1 else 'ies'}")


def _passed(line: str, head_too: bool) -> None:
    """A ref row `reflog expire --all` passed over (git's 'bad ref'): fsck's line for it."""
    also = " and HEAD's, on it," if head_too else ""
    warn(f"warning: {line}; its reflog{also} left as it was")


def _age(text: str, now: float, option: str) -> float:
    """How old (seconds) an entry written at TIME `text` is; `never`: no age."""
    if text.strip().lower() in ("never", "false"):
        return float("inf")
    if text.strip().lower() in ("all", "now"):
        return 0.0
    try:
        return max(now - parse(text), 0.0)
    except ValueError as e:
        raise click.BadParameter(f"{text[:60]!r}: {e}", param_hint=option) from None


@reflog.command(short_help="Delete reflog entries REF@{N}.")
@click.argument("selectors", nargs=-1, required=True, metavar="REF@{N|DATE}...")
@pass_repo
def delete(repo, selectors: tuple[str, ...]) -> None:
    """Delete the entries REF@{N}... (all or none), as git's `reflog delete`; REF@{DATE}
    names the latest entry at or before DATE."""
    for e in repo.reflog_delete(list(selectors)):
        click.echo(f"deleted {e.new[:12]} {e.ref}: {e.message} ({when(e.time)})")


@reflog.command(short_help="Exit 0 when REF has a reflog, 1 when not.")
@click.argument("ref")
@pass_repo
def exists(repo, ref: str) -> None:
    """Exit status 0 when REF has a reflog, 1 when not (git's `reflog exists`; a log that
    `reflog expire` emptied is there, empty, as git's). REF is a ref's name (HEAD, main,
    origin/main, refs/heads/main), not a revision: `main@{1}`, `main@{yesterday}`, `@{u}`,
    `main~1` are refused in one line (exit 2), as git's 'invalid ref format'."""
    from memstore.errors import ValidationError
    from memstore.store.refs import name_problem

    problem = name_problem(ref, unseen=False)
    if problem is not None:
        raise ValidationError(f"invalid ref name {ref[:60]!r} ({problem}): `reflog exists` "
                              "takes a ref (HEAD, a branch, a remote-tracking branch), not "
                              "a revision")
    full, log = repo.reflog_of(ref)
    if not log and not repo.refs.emptied_log(full):  # (emptied by an expire: there, as git's)
        raise SystemExit(1)


COMMANDS = [reflog]
