"""fsck and gc: checking and cleaning the repository."""
from __future__ import annotations

import click

from ..context import open_repo, pass_repo
from ..output import json_option, print_json, size, warn


@click.command(short_help="Check the repository's (or a remote's) integrity.")
@click.argument("remote", metavar="[REMOTE|URL]", required=False)
@click.option("--quick", is_flag=True, help="Skip re-hashing every object (only check that "
              "they exist and the records agree).")
@json_option
def fsck(remote: str | None, quick: bool, as_json: bool) -> None:
    """Check the repository: every object present and intact (re-hashed), commits, request
    rows, refs, statistics and config consistent. Exit status 1 if anything is wrong, with
    one line per problem.

    With REMOTE (a remote's name, or a URL: no repository needed), check that remote
    instead: its marker, every object's hash, every branch's history whole."""
    if remote is not None:
        from .remote import remote_problems

        problems = remote_problems(remote, verify=not quick)
    else:
        with open_repo() as repo:
            problems = repo.fsck(verify=not quick)
    if as_json:
        print_json({"ok": not problems, "problems": problems})
    else:
        for p in problems:
            click.echo(p)
        if not problems:
            click.echo("ok")
        else:
            warn(f"{len(problems)} problem(s) found")
    if problems:
        raise SystemExit(1)


@click.command(short_help="Remove unreachable commits and objects.")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@json_option
@pass_repo
def gc(repo, dry_run: bool, as_json: bool) -> None:
    """Remove what no branch, tag or HEAD needs: unreachable commits (e.g. left by a squash
    or a deleted branch), their objects, and temporary files left by interrupted writes.
    Stored statistics are kept."""
    r = repo.gc(dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "commits": r.commits, "objects": r.objects,
                    "bytes": r.bytes, "temp_files": r.temp_files})
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(r.commits)} commits, {len(r.objects)} objects ({size(r.bytes)}) "
               f"and {r.temp_files} temporary files")


COMMANDS = [fsck, gc]
