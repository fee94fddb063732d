"""commit, revert, squash, merge, cherry-pick, rebase: the commands that write facts into
the weights.

Each holds the repository lock for its whole run (a concurrent writer waits, saying so on
stderr) and prints the new commit id as the last line of stdout; with --json, one JSON
object instead (built by the *_result function beside each command, from which the text
is printed too)."""
from __future__ import annotations

from typing import Any

import click

from ..output import (
    counted,
    first_line,
    json_option,
    layers_text,
    metrics_line,
    no_empty_message,
    no_empty_path,
    num,
    print_json,
    runtime_options,
    short,
    warn,
)
from .signing import sign_options, signing_for, verify_option


def written(repo, report) -> dict[str, Any]:
    """What a command that wrote a commit did: the commit, the branch it moved (None:
    detached HEAD), its operation, facts, solves, layers, seconds, the metrics measured
    right after the edit, and the warning when it lost earlier facts (None: none)."""
    from memstore.store.retention import retention_warning

    c = report.commit
    return {"commit": c.id, "branch": repo.head().branch, "operation": c.operation,
            "message": c.message, "parents": list(c.parents), "n_facts": c.n_requests,
            "solves": len(c.update_sets),
            "layers": sorted({l for s in c.update_sets for l in s.layers}),
            "seconds": report.seconds, "metrics": report.metrics,
            "warning": retention_warning(report.metrics.get("earlier") or {})}


def show_written(d: dict[str, Any], verb: str) -> None:
    """The text of `written`'s dict: '[branch id] subject', what was solved, the metrics,
    the warning on stderr and the commit id last."""
    click.echo(f"[{d['branch'] or 'detached HEAD'} {short(d['commit'])}] "
               f"{first_line(d['message'])}")
    solves, layers = d["solves"], d["layers"]
    click.echo(f" {verb}: {counted(d['n_facts'], 'fact')} in {counted(solves, 'solve')}"
               f"{' on layers ' + layers_text(layers) if layers else ''}, "
               f"{d['seconds']:.1f} s")
    click.echo(f" {metrics_line(d['metrics'])}")
    if d["warning"] is not None:
        warn(f"warning: {d['warning']}")
    click.echo(d["commit"])


def report_json(d: dict[str, Any]) -> None:
    """--json: the warnings still on stderr, the object on stdout."""
    if d.get("warning") is not None:
        warn(f"warning: {d['warning']}")
    print_json(d)


def commit_result(repo, report, file: str, n_in_file: int, notes: list[str],
                  memory: list[str]) -> dict[str, Any]:
    """commit --json: `written` with the facts file, its requests (those repeated in it
    were written once), the notes heard on stderr and the memory estimate."""
    d = written(repo, report)
    return d | {"file": file, "requests_in_file": n_in_file,
                "repeated": n_in_file - d["n_facts"], "notes": notes,
                "memory": memory[0] if memory else None}


@click.command()
@runtime_options
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True), callback=no_empty_path)
@click.option("-m", "--message", help="The commit message (default: 'N facts from FILE').",
              callback=no_empty_message)
@click.option("--supersede", is_flag=True,
              help="Allow facts that replace a live fact's target (same subject and prompt).")
@sign_options
@json_option
def commit(file: str, message: str | None, supersede: bool, sign: bool | str | None,
           as_json: bool) -> None:
    """Write the facts in FILE into the model as one commit on HEAD.

    FILE holds requests, one JSON object per line:

    \b
      {"subject": "Danielle Darrieux", "prompt": "The mother tongue of {} is",
       "target_new": "English", "target_true": "French",
       "paraphrases": [...], "neighborhood": [...]}

    ('{}' marks the subject; target_true, paraphrases and neighborhood are optional and
    only used to measure the edit, case_id and relation_id are optional labels; any other
    field is refused), or CounterFact or zsRE records as they are (a JSON list or JSONL),
    in UTF-8, read in Unicode NFC; FILE '-' reads them from standard input. Every request is checked before any work: the prompt,
    the subject's tokens, contradictions within the file, and facts already live on the
    branch (a different target for the same subject and prompt is refused unless
    --supersede).

    The model is loaded at HEAD's state, the statistics of the edited layers are taken
    from the repository (computed and stored the first time), MEMIT writes the batch, and
    its efficacy on the requests is measured right after the edit and recorded, with how
    many of the facts live before it (a seeded sample of up to 256) the model recalls
    before and after: a commit that loses 5% of those it recalled warns. Prints the new
    commit id as the last line.

    --json prints one object: commit, branch, operation, message, parents, n_facts,
    solves, layers, seconds, metrics, warning, file, requests_in_file, repeated (given
    twice in FILE, written once), notes (what was said on stderr) and memory.
    """
    from memstore.eval.data import read_located_requests, source_name
    from memstore.store import porcelain

    from ..context import open_repo

    located = read_located_requests(file)
    requests = [r for _, r in located]
    if message is None:  # the facts written: one given twice in FILE is written once
        n = len({(r.subject, r.prompt, r.target_new) for r in requests})
        message = f"{counted(n, 'fact')} from {source_name(file)}"
    notes: list[str] = []
    memory: list[str] = []

    def note(line: str) -> None:
        notes.append(line)
        warn(line)

    def inform(line: str) -> None:  # the memory estimate: on stdout unless --json
        memory.append(line)
        warn(line) if as_json else click.echo(line)

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        signing_for(repo, sign)
        report = porcelain.commit(repo, requests, message, supersede=supersede,
                                  info={"file": source_name(file)}, note=note, inform=inform,
                                  where=[w for w, _ in located])
        d = commit_result(repo, report, file, len(requests), notes, memory)
    report_json(d) if as_json else show_written(d, "commit")


@click.command()
@runtime_options
@click.argument("rev")
@click.option("-m", "--message", help="The commit message (default: 'Revert \"…\"').",
              callback=no_empty_message)
@sign_options
@json_option
def revert(rev: str, message: str | None, sign: bool | str | None, as_json: bool) -> None:
    """Remove the facts of commit REV with a new commit.

    The new commit's state is HEAD's without REV's facts (for a merge commit: the facts it
    merged in). The update sets solved after REV were solved with it in place, so they are
    replayed from their cached z-vectors, without any z optimisation, on top of the state
    before REV; the message lists them. Prints the new commit id as the last line.

    --json prints one object: commit, branch, operation, message, parents, n_facts,
    solves, layers, seconds, metrics (with `reverted`: the facts taken out, measured
    after; absent when none is), warning, reverted (REV's id), replayed (the commits
    replayed), n_removed (how many facts it took out of HEAD's state: not those a later
    commit wrote again or another holder keeps) and n_restored (for a merge: how many facts
    it had taken out the revert puts back).
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        signing_for(repo, sign)  # the key (-S, else commit.gpgsign) checked before the work
        report = porcelain.revert(repo, rev, message)
        d = revert_result(repo, report)
    report_json(d) if as_json else show_written(d, revert_verb(d))


def revert_verb(d: dict[str, Any]) -> str:
    """'revert (5 facts taken out)': what left HEAD's state (and, for a merge, came back),
    before the count of the facts solved, which for a revert are the ones it replayed."""
    done = [f"{counted(d['n_removed'], 'fact')} taken out"]
    if d["n_restored"]:
        done.append(f"{d['n_restored']} put back")
    return f"revert ({', '.join(done)})"


def revert_result(repo, report) -> dict[str, Any]:
    n = report.notes
    return written(repo, report) | {"reverted": n["reverted"], "replayed": n["replayed"],
                                    "n_removed": n["n_removed"], "n_restored": n["n_restored"]}


@click.command()
@runtime_options
@click.argument("rev")
@click.option("-m", "--message", help="The commit message (default: the squashed messages).",
              callback=no_empty_message)
@sign_options
@json_option
def squash(rev: str, message: str | None, sign: bool | str | None, as_json: bool) -> None:
    """Make everything after REV on the branch one commit.

    The facts added after REV and live at HEAD are solved again in ONE update, on REV's
    state, from their cached z-vectors (no z optimisation). Their efficacy is reported
    before (at the old HEAD) and after; the branch moves to the new commit, whose parent
    is REV. REV `base` makes the whole history one commit, with no parent. The commits the
    branch leaves that no branch or tag holds are warned about, as reset warns, with the
    command that goes back (gc removes them once no reflog entry names them). Prints the
    new commit id as the last line.

    --json prints one object: commit, branch, operation, message, parents, n_facts,
    solves, layers, seconds, metrics, warning, squashed (the ids of the commits replaced,
    newest first), before (the metrics of the same facts at the old HEAD) and left_behind
    (the squashed commits no branch or tag holds now, newest first).
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        signing_for(repo, sign)  # the key (-S, else commit.gpgsign) checked before the work
        report = porcelain.squash(repo, rev, message)
        d = squash_result(repo, report)
    if as_json:
        report_json(d)
        return
    show_written(d, f"squash of {counted(len(d['squashed']), 'commit')}")
    before, after = d["before"], d["metrics"]
    if before:
        warn(f"efficacy before {num(before.get('efficacy'))}, after "
             f"{num(after.get('efficacy'))}; P(new) before {num(before.get('p_new'))}, "
             f"after {num(after.get('p_new'))}")


def squash_result(repo, report) -> dict[str, Any]:
    """squash --json: `written`, the commits squashed, the metrics before, and what the
    branch left that no branch or tag holds, warned about as reset and rebase warn."""
    from .refs import leaving

    d = written(repo, report)
    left, old = report.notes["left"], report.notes["squashed"][0]
    lost = leaving(left, f"`memstore reset {short(old)}` goes back")
    warning = "; ".join(w for w in (d["warning"], lost) if w is not None) or None
    return d | {"squashed": report.notes["squashed"], "before": report.notes["before"],
                "left_behind": left, "warning": warning}


@click.command()
@runtime_options
@click.argument("branch")
@click.option("-m", "--message", help="The merge commit's message.",
              callback=no_empty_message)
# one dest, as git's: the last of --ff, --no-ff and --ff-only given wins (click's parser
# keeps the last flag_value given for a name)
@click.option("--ff-only", "ff", flag_value="only", help="Only a fast-forward (or nothing "
              "to merge): where the branches have parted, refuse in one line, nothing "
              "written.")
@click.option("--no-ff", "ff", flag_value="never", help="Write a merge commit even where a "
              "fast-forward would do (nothing solved: its state is BRANCH's).")
@click.option("--ff", "ff", flag_value="allow", default=True, hidden=True,
              help="git's default: fast-forward where it can.")
@sign_options
@verify_option
@json_option
def merge(branch: str, message: str | None, ff: str | None, sign: bool | str | None,
          verify_signatures: bool, as_json: bool) -> None:
    """Merge BRANCH (or any revision) into the current branch (`-`: `@{-1}`, as git's).

    A fact-level three-way merge against the merge base: for each (subject, prompt), a
    side that changed it wins over a side that did not. Both sides giving it different
    targets is a conflict: each is listed on stderr, the exit status is 1 and nothing is
    written. Fast-forwards when the current branch is behind BRANCH; otherwise writes a
    merge commit (two parents) whose update is ONE solve, on the merge base's state, for
    the facts both sides added since it, from their cached z-vectors. Prints the
    resulting commit id as the last line. As git's: --ff-only refuses a merge that is no
    fast-forward (exit status 1, nothing written); --no-ff writes a merge commit where a
    fast-forward would do, with no update set (BRANCH's state is the result, nothing is
    solved), so that the branch's commits stay one side of the history and one revert of
    the merge takes them all out. Of --ff, --no-ff and --ff-only, the last given wins.

    --json prints one object: kind (up-to-date, fast-forward or merge), head (where the
    branch points now), branch, and commit (the merge commit written; null for the other
    kinds); for a merge commit also operation, message, parents, n_facts, solves, layers,
    seconds, metrics, warning, merge_base, basis (the state solved on: the merge base, or
    the side that keeps every merged fact where the other reverted some of the merge
    base's) and solved (the facts solved there).
    """
    from memstore.store import porcelain, signing

    from ..context import open_repo

    branch = "@{-1}" if branch == "-" else branch  # git's `merge -`
    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        repo.signing = sign  # the key checked where a commit will be written, before the work
        signing.before_merge(repo, repo.resolve(branch), branch, sign=sign,
                             verify_signatures=verify_signatures, ff=ff or "allow")
        report = porcelain.merge(repo, branch, message, ff=ff or "allow")
        d = merge_result(repo, report)
    report_json(d) if as_json else show_merged(d)


def merge_result(repo, report) -> dict[str, Any]:
    """What a merge (or a pull) did: a merge commit as `written`, or no commit (up to date,
    or fast-forwarded to `head`)."""
    n = report.notes
    if n["kind"] != "merge":
        return {"kind": n["kind"], "commit": None, "head": report.head,
                "branch": repo.head().branch}
    return {"kind": "merge", "head": report.head, **written(repo, report),
            "merge_base": n["merge_base"], "basis": report.commit.basis, "solved": n["solved"]}


def show_merged(d: dict[str, Any]) -> None:
    """The text of `merge_result`'s dict; the resulting commit id last."""
    if d["kind"] == "up-to-date":
        click.echo("Already up to date.")
        click.echo(d["head"])
    elif d["kind"] == "fast-forward":
        click.echo(f"Fast-forward to {short(d['head'])}")
        click.echo(d["head"])
    else:
        on = ("the merge base" if d["basis"] == d["merge_base"] else
              "this side" if d["basis"] == d["parents"][0] else "the merged side")
        show_written(d, f"merge ({counted(d['solved'], 'fact')} solved on {on} "
                        f"{short(d['basis'])})")


@click.command("cherry-pick")
@runtime_options
@click.argument("rev")
@click.option("-m", "--message",
              help="The commit message (default: REV's, with '(cherry picked from commit …)').",
              callback=no_empty_message)
@sign_options
@json_option
def cherry_pick(rev: str, message: str | None, sign: bool | str | None, as_json: bool) -> None:
    """Write the facts of commit REV (on another branch, say) on HEAD as a new commit.

    One solve, on HEAD's state, from REV's cached z-vectors (no z optimisation), as a merge
    solves what it brings in. A fact HEAD holds already is left out; a fact REV superseded
    is written over where HEAD holds the target REV replaced, and is a conflict where HEAD
    holds another: each is listed on stderr, the exit status is 1 and nothing is written.
    The new commit's writes are its own (a revert of it takes them out). Prints the new
    commit id as the last line.

    --json prints one object: commit, branch, operation, message, parents, n_facts,
    solves, layers, seconds, metrics, warning, picked (REV's id) and solved (the facts
    written).
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        signing_for(repo, sign)  # the key (-S, else commit.gpgsign) checked before the work
        report = porcelain.cherry_pick(repo, rev, message)
        d = written(repo, report) | report.notes
    report_json(d) if as_json else show_written(d, "cherry-pick")


@click.command()
@runtime_options
@click.argument("upstream", required=False)
@sign_options
@json_option
def rebase(upstream: str | None, sign: bool | str | None, as_json: bool) -> None:
    """Write the current branch's own commits again on top of UPSTREAM, as git's rebase.
    With no UPSTREAM, the branch's upstream as `status` and `pull` take it (the one `push
    -u` or `branch --set-upstream-to` recorded, else origin's or the only remote's branch
    of the same name): its remote-tracking branch, as of the last fetch or push.

    The commits the branch holds that UPSTREAM does not are picked onto UPSTREAM, oldest
    first, one new commit each, as cherry-pick writes one (one solve from the commit's
    cached z-vectors, no z optimisation, the model loaded once for all), with the
    original's message and author; then the branch moves to the last. A commit whose facts
    UPSTREAM holds already is dropped, as is a merge commit (the commits it brought in
    that UPSTREAM lacks are picked in their place: the history becomes one line). A
    revert or squash among them is refused, nothing changed (merge UPSTREAM instead).

    All or nothing, with no --continue: a conflict (a fact a commit superseded where
    the state it lands on holds yet another target, or none: UPSTREAM took it out, as
    merge refuses it; one it wrote again unchanged there stays out) stops it before any
    solve with nothing changed, listing the commit and its facts on stderr, exit status
    1; anything else that stops it part way leaves every ref as it was (the commits
    written for the attempt are held by no ref: gc removes them). Settle the conflict,
    then rebase again.

    Up to date when UPSTREAM is HEAD's commit or an ancestor of it with no merge between;
    a fast-forward to UPSTREAM when the branch has no commits of its own. The commits the
    branch leaves that no branch or tag holds are warned about, with the command that goes
    back (gc removes them once no reflog entry names them). HEAD must be on a branch.
    Prints the branch's commit as the last line.

    --json prints one object: branch, upstream (the commit UPSTREAM names), old and new
    (the branch's commit before and after), commits (each of the range, oldest first:
    old, new (null: dropped), dropped (why, else null) and summary), up_to_date,
    fast_forward, left_behind, warning and seconds.
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        repo.signing = sign  # its key checked once the plan says a pick writes a commit
        r = porcelain.rebase(repo, upstream)  # ('' too: an unknown revision, as git's)
        d = rebase_result(repo, r)
    if d["warning"] is not None:
        warn(f"warning: {d['warning']}")
    print_json(d) if as_json else show_rebased(d, r.shown)


def rebase_result(repo, r) -> dict[str, Any]:
    """What a rebase (or `pull --rebase`) did, as rebase --json prints it."""
    from .refs import leaving

    return {"branch": r.branch, "upstream": r.upstream, "old": r.old, "new": r.new,
            "commits": [{"old": c, "new": n, "dropped": r.dropped.get(c),
                         "summary": repo.get_commit(c).summary} for c, n in r.commits],
            "up_to_date": r.up_to_date, "fast_forward": r.fast_forward,
            "left_behind": r.left,
            "warning": leaving(r.left, f"`memstore reset {short(r.old)}` goes back"),
            "seconds": r.seconds}


def show_rebased(d: dict[str, Any], shown: str) -> None:
    """The text of `rebase_result`'s dict (git's words); the branch's commit last."""
    if d["up_to_date"]:
        click.echo(f"Current branch {d['branch']} is up to date.")
    elif d["fast_forward"]:
        click.echo(f"Fast-forwarded {d['branch']} to {shown}.")
    else:
        for c in d["commits"]:
            click.echo(f"dropped {short(c['old'])} {c['summary']} ({c['dropped']})"
                       if c["new"] is None else
                       f"picked {short(c['old'])} -> {short(c['new'])} {c['summary']}")
        written = sum(c["new"] is not None for c in d["commits"])
        click.echo(f"Successfully rebased and updated refs/heads/{d['branch']} "
                   f"({counted(written, 'commit')} written, {d['seconds']:.1f} s).")
    click.echo(d["new"])


COMMANDS = [commit, revert, squash, merge, cherry_pick, rebase]
