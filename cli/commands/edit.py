"""commit, revert, squash, merge: the commands that write facts into the weights.

Each holds the repository lock for its whole run (a concurrent writer waits, saying so on
stderr) and prints the new commit id as the last line of stdout."""
from __future__ import annotations

from pathlib import Path

import click

from memstore.store.retention import retention_warning

from ..output import first_line, layers_text, metrics_line, runtime_options, short, warn


def _done(repo, report, verb: str) -> None:
    c = report.commit
    branch = repo.head().branch or "detached HEAD"
    click.echo(f"[{branch} {short(c.id)}] {first_line(c.message)}")
    layers = sorted({l for s in c.update_sets for l in s.layers})
    solves = len(c.update_sets)
    click.echo(f" {verb}: {c.n_requests} facts in {solves} solve{'s' * (solves != 1)}"
               f"{' on layers ' + layers_text(layers) if layers else ''}, "
               f"{report.seconds:.1f} s")
    click.echo(f" {metrics_line(report.metrics)}")
    fading = retention_warning(report.metrics.get("earlier") or {})
    if fading is not None:
        warn(f"warning: {fading}")
    click.echo(c.id)


@click.command()
@runtime_options
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-m", "--message", help="The commit message (default: 'N facts from FILE').")
@click.option("--supersede", is_flag=True,
              help="Allow facts that replace a live fact's target (same subject and prompt).")
def commit(file: str, message: str | None, supersede: bool) -> None:
    """Write the facts in FILE into the model as one commit on HEAD.

    FILE holds requests, one JSON object per line:

    \b
      {"subject": "Danielle Darrieux", "prompt": "The mother tongue of {} is",
       "target_new": "English", "target_true": "French",
       "paraphrases": [...], "neighborhood": [...]}

    ('{}' marks the subject; target_true, paraphrases and neighborhood are optional and
    only used to measure the edit), or CounterFact or zsRE records as they are (a JSON list
    or JSONL). Every request is checked before any work: the prompt, the subject's tokens,
    contradictions within the file, and facts already live on the branch (a different
    target for the same subject and prompt is refused unless --supersede).

    The model is loaded at HEAD's state, the statistics of the edited layers are taken
    from the repository (computed and stored the first time), MEMIT writes the batch, and
    its efficacy on the requests is measured right after the edit and recorded, with how
    many of the facts live before it (a seeded sample of up to 256) the model recalls
    before and after: a commit that loses 5% of those it recalled warns. Prints the new
    commit id as the last line.
    """
    from memstore.eval.data import read_requests_file
    from memstore.store import porcelain

    from ..context import open_repo

    requests = read_requests_file(file)
    if message is None:
        message = f"{len(requests)} facts from {Path(file).name}"
    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        report = porcelain.commit(repo, requests, message, supersede=supersede,
                                  info={"file": Path(file).name}, note=warn, inform=click.echo)
        _done(repo, report, "commit")


@click.command()
@runtime_options
@click.argument("rev")
@click.option("-m", "--message", help="The commit message (default: 'Revert \"…\"').")
def revert(rev: str, message: str | None) -> None:
    """Remove the facts of commit REV with a new commit.

    The new commit's state is HEAD's without REV's facts (for a merge commit: the facts it
    merged in). The update sets solved after REV were solved with it in place, so they are
    replayed from their cached z-vectors, without any z optimisation, on top of the state
    before REV; the message lists them. Prints the new commit id as the last line.
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        report = porcelain.revert(repo, rev, message)
        _done(repo, report, "revert")


@click.command()
@runtime_options
@click.argument("rev")
@click.option("-m", "--message", help="The commit message (default: the squashed messages).")
def squash(rev: str, message: str | None) -> None:
    """Make everything after REV on the branch one commit.

    The facts added after REV and live at HEAD are solved again in ONE update, on REV's
    state, from their cached z-vectors (no z optimisation). Their efficacy is reported
    before (at the old HEAD) and after; the branch moves to the new commit, whose parent
    is REV. REV `base` makes the whole history one commit, with no parent. Prints the new
    commit id as the last line.
    """
    from memstore.store import porcelain

    from ..context import open_repo
    from ..output import num

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        report = porcelain.squash(repo, rev, message)
        _done(repo, report, f"squash of {len(report.notes['squashed'])} commits")
        before, after = report.notes["before"], report.metrics
        if before:
            warn(f"efficacy before {num(before.get('efficacy'))}, after "
                 f"{num(after.get('efficacy'))}; P(new) before {num(before.get('p_new'))}, "
                 f"after {num(after.get('p_new'))}")


@click.command()
@runtime_options
@click.argument("branch")
@click.option("-m", "--message", help="The merge commit's message.")
def merge(branch: str, message: str | None) -> None:
    """Merge BRANCH (or any revision) into the current branch.

    A fact-level three-way merge against the merge base: for each (subject, prompt), a
    side that changed it wins over a side that did not. Both sides giving it different
    targets is a conflict: each is listed on stderr, the exit status is 1 and nothing is
    written. Fast-forwards when the current branch is behind BRANCH; otherwise writes a
    merge commit (two parents) whose update is ONE solve, on the merge base's state, for
    the facts both sides added since it, from their cached z-vectors. Prints the
    resulting commit id as the last line.
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo, repo.lock(wait=True, on_wait=warn):
        report = porcelain.merge(repo, branch, message)
        merged(repo, report)


def merged(repo, report) -> None:
    """Prints what a merge (or a pull) did; the resulting commit id last."""
    kind = report.notes["kind"]
    if kind == "up-to-date":
        click.echo("Already up to date.")
        click.echo(report.head)
    elif kind == "fast-forward":
        click.echo(f"Fast-forward to {short(report.head)}")
        click.echo(report.head)
    else:
        _done(repo, report, f"merge ({report.notes['solved']} facts solved on the merge "
                            f"base {short(report.notes['merge_base'])})")


COMMANDS = [commit, revert, squash, merge]
