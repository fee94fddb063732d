"""fsck and gc: checking and cleaning the repository."""
from __future__ import annotations

import re

import click

from ..context import open_repo, pass_repo
from ..output import counted, json_option, print_json, size, warn


@click.command(short_help="Check the repository's (or a remote's) integrity; repair the index.")
@click.argument("remote", metavar="[REMOTE|URL]", required=False)
@click.option("--quick", is_flag=True, help="Skip re-hashing every object (only check that "
              "they exist and the records agree).")
@click.option("--repair", is_flag=True, help="First rebuild the index (index.db) from the "
              "object store: commit, request, object and statistics rows, with the refs and "
              "config from the index if it can be read and its ref, base and settings "
              "rows are sound, else from the newest ref snapshot; "
              "missing statistics are recomputed. With REMOTE (inside a repository): first "
              "write to the remote again, from this repository's intact copies, every "
              "object it holds corrupt or its branches, tags and statistics need and "
              "lack.")
@json_option
def fsck(remote: str | None, quick: bool, repair: bool, as_json: bool) -> None:
    """Check the repository: every object present and intact (re-hashed), commits, request
    rows, refs, statistics and config consistent. Exit status 1 if anything is wrong, with
    one line per problem. A damaged index is reported in one line; `--repair` rebuilds it
    (the damaged file is kept as .memstore/index.db.damaged-TIME).

    With REMOTE (a remote's name, or a URL: no repository needed), check that remote
    instead: its marker, every object's hash, every branch's and tag's history whole.

    --json prints one object: ok and problems (one line each); with REMOTE --repair also
    rewritten (the objects written to the remote again)."""
    rewritten = way_back = None
    if remote is not None:
        from .remote import remote_problems, remote_url

        if repair:
            rewritten = _repair_remote(remote_url(remote))
        problems = remote_problems(remote, verify=not quick)
    else:
        if repair:
            from memstore.store import porcelain  # may compute statistics: the model

            r = porcelain.repair(note=warn)
            kept = f"; the damaged index is kept as {r.kept_as}" if r.kept_as else ""
            warn(f"rebuilt the index: {counted(r.commits, 'commit')}, "
                 f"{counted(r.statistics, 'statistics record')}, "
                 f"{counted(r.refs, 'ref')} (from the {r.source}){kept}")
            for oid in r.skipped:
                warn(f"skipped object {oid}: corrupt")
            for line in r.folders:
                warn(f"skipped {line}")
            for line in r.refused:  # fsck's words for it
                warn(f"left out of the index: {line}")
            for line in r.unreadable:
                warn(f"requests not indexed: {line}")
        with open_repo() as repo:
            problems = repo.fsck(verify=not quick)
            way_back = _way_back(repo, problems)
    if as_json:
        print_json({"ok": not problems, "problems": problems}
                   | ({} if rewritten is None else {"rewritten": rewritten}))
    else:
        for p in problems:
            click.echo(p)
        if not problems:
            click.echo("ok")
        else:
            warn(f"{len(problems)} problem(s) found")
    if way_back is not None:
        warn(way_back)
    if problems:
        raise SystemExit(1)


_OBJECT_DAMAGE = re.compile(r"^(object|commit|statistics) .*\b(is corrupt|is missing|is "
                            r"indexed but missing)\b")

_DAMAGED_OBJECT = re.compile(r"^object ([0-9a-f]{64}) (is corrupt|is indexed but missing)\b")


def _way_back(repo, problems: list[str]) -> str | None:
    """Where fsck found objects missing or corrupt, the line that says how to get them back:
    from a configured remote's intact copies (`fetch --refetch`), else that only a remote
    holding them can, once named (no `--repair` rewrites an object's content)."""
    from memstore.errors import MemstoreError
    from memstore.remote import remotes

    try:
        known = remotes.remotes(repo)
    except MemstoreError:  # damaged remote rows: fsck names them
        return None
    if not any(_OBJECT_DAMAGE.search(p) for p in problems):
        return None
    damaged = {m[1] for p in problems if (m := _DAMAGED_OBJECT.match(p))}
    if damaged and all(_loose(repo, oid, problems) for oid in damaged):
        return "nothing here needs the damaged objects: `memstore gc` removes them"
    if not known:
        recompute = "`memstore fsck --repair` computes damaged statistics again from the base model"
        if damaged and damaged <= {rec.object for rec in repo.statistics()}:
            return recompute
        return ("no remote is configured: an object missing or corrupt here comes back only "
                "from a remote that holds it intact (`memstore remote add NAME URL`, then "
                f"`memstore fetch NAME --refetch`); {recompute}, nothing else")
    name = "origin" if "origin" in known else next(iter(known)) if len(known) == 1 else "REMOTE"
    return (f"objects a remote's history holds intact can be restored from it with "
            f"`memstore fetch {name} --refetch`")


def _loose(repo, oid: str, problems: list[str]) -> bool:
    """Whether object `oid` is a file the index does not name and no other problem line
    names (a commit's record `fsck --repair` left out, its branch reset off it): gc's."""
    if repo.db.execute("select 1 from objects where id = ?", [oid]).fetchone():
        return False
    return not any(oid[:12] in p for p in problems if not p.startswith(f"object {oid} "))


def _repair_remote(url: str) -> list[str]:
    """Writes to the remote at `url` what this repository can restore there (one line on
    stderr saying what); the objects rewritten."""
    from memstore.remote.repair import repair_remote

    with open_repo() as repo:
        r = repair_remote(repo, url)
    warn(f"rewrote {counted(len(r.rewritten), 'object')} ({size(r.bytes)}) on the remote "
         "from this repository")
    if r.records:
        warn(f"rewrote {counted(len(r.records), 'damaged statistics record')} on the remote "
             "from this repository")
    for oid in r.corrupt_here:
        warn(f"object {oid} is corrupt here too: not written (run `memstore fsck`)")
    return r.rewritten


@click.command(short_help="Remove unreachable commits and objects.")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@json_option
@pass_repo
def gc(repo, dry_run: bool, as_json: bool) -> None:
    """Remove what no branch, tag or HEAD needs: unreachable commits (e.g. left by a squash
    or a deleted branch), their objects, and temporary files left by interrupted writes.
    Stored statistics are kept, and so is what the reflog names, as git's gc keeps it: the
    commits of the entries younger than 90 days (30 for a commit no branch or tag reaches),
    whose expired entries are deleted (`memstore reflog expire --expire=now --all` first:
    everything unreachable goes).

    --json prints one object: dry_run, commits and objects (the ids removed, or that would
    be), bytes, temp_files and reflog_entries (the expired entries deleted)."""
    r = repo.gc(dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "commits": r.commits, "objects": r.objects,
                    "bytes": r.bytes, "temp_files": r.temp_files,
                    "reflog_entries": r.reflog_entries})
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {counted(len(r.commits), 'commit')}, "
               f"{counted(len(r.objects), 'object')} ({size(r.bytes)}) "
               f"and {counted(r.temp_files, 'temporary file')}")


COMMANDS = [fsck, gc]
