"""bisect: the first commit whose state answers a prompt wrongly (memstore.store.bisection)."""
from __future__ import annotations

import click

from ..output import (
    counted,
    first_line,
    json_option,
    no_empty_path,
    print_json,
    runtime_options,
    short,
)


@click.command(short_help="Find the commit that broke an answer: binary search, as git's.")
@runtime_options
@click.argument("prompt", required=False)
@click.option("--good", "good", multiple=True, required=True, metavar="REV",
              help="A revision whose state answers as it should ('base': the base model; "
                   "repeatable).")
@click.option("--bad", default=None, metavar="REV",
              help="A revision whose state answers wrongly (default: HEAD).")
@click.option("--expect", metavar="TEXT",
              help="Good when the completion starts with TEXT (leading whitespace of both "
                   "ignored).")
@click.option("--reject", metavar="TEXT",
              help="Good when the completion does not contain TEXT (as written).")
@click.option("--max-tokens", default=20, show_default=True, type=click.IntRange(min=1),
              help="Tokens to generate, as ask's.")
@click.option("--facts", "facts", metavar="FILE", type=click.Path(dir_okay=False),
              callback=no_empty_path,
              help="Instead of a PROMPT: good when ES over FILE's facts (as eval FILE "
                   "reports it) is at least --threshold.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="X", help="With --facts: the ES a good state reaches (default 1: "
                                "every fact).")
@click.option("--first-parent", is_flag=True,
              help="Follow only the first parent of a merge (git's --first-parent): the "
                   "candidates are BAD's first-parent line; a merge may be named.")
@json_option
def bisect(prompt: str | None, good: tuple[str, ...], bad: str | None, expect: str | None,
           reject: str | None, max_tokens: int, facts: str | None, threshold: float | None,
           first_parent: bool, as_json: bool) -> None:
    """Find the first commit between GOOD and BAD whose state answers PROMPT wrongly.

    git's `bisect run` in one call, the test being a question to the model: each state
    asked gives the greedy completion of PROMPT that `ask --rev` gives there (the model
    loaded once; states built in memory). With --expect TEXT a state is good when its
    completion, leading whitespace removed, starts with TEXT (its leading whitespace
    removed too); with --reject TEXT, when its completion does not contain TEXT anywhere
    (as written: case counts; TEXT and the completion read in Unicode NFC); a
    completion that ends where TEXT may go on is read on (at most TEXT's length in the
    model's own tokens and 8 more, nor past its UTF-8 length and one, each of its
    decomposed form where that is longer, nor the model's context; a bar on a terminal), so that an answer cut short by --max-tokens is not
    judged on its cut (with
    --reject, a TEXT begun within the --max-tokens tokens counts). With --facts FILE instead of a PROMPT (a facts file as
    commit and eval take it), a state is good when its ES over FILE's facts that have a
    target_true (the efficacy `eval FILE` reports: P(new) > P(true) on the fact's prompt)
    is at least --threshold (default 1: every one). A PROMPT ending with a space is asked
    as written, with ask's warning line on stderr. The ends are checked first: a GOOD
    that is bad, or a BAD that is good, is refused (exit status 1), as git's. A GOOD on
    another branch than BAD (no ancestor of it; a descendant is refused) is taken as
    git takes it: the merge bases of BAD and the GOODs are asked next ("a merge base must
    be tested"), and one that is bad is refused (the answer was mended on the GOOD's
    side; exit status 1). The candidates are BAD's ancestors that are no GOOD's (merges
    included: the whole history, as git's; with --first-parent, those on BAD's
    first-parent line, a merge tested as one commit); each step asks
    the one git would test and prints its verdict and git's count of the revisions left;
    at the end, the first bad commit as log shows it. Nothing is written.

    --json prints one object: prompt, expect, reject, max_tokens (null with --facts),
    facts and threshold (null with a PROMPT), good (one per commit the GOODs name, a
    commit named twice asked once: commit, null for the base, and its answer), bad
    (commit, answer), merge_bases (commit, answer: those asked, all good), steps (commit, answer, verdict 'good' or
    'bad', left, steps: git's counts) and first_bad (the fields of `log --json` and its
    answer); an answer is `completion` (the text after PROMPT), or with --facts
    `efficacy` (the ES).
    """
    from memstore.store.bisection import AnswerTest, FactsQuestion, PromptQuestion
    from memstore.store.bisection import bisect as run_bisect

    from ..context import open_repo
    from .history import commit_entry, commit_lines
    from .model import warn_prompt_end

    if facts is not None:
        if prompt is not None or expect is not None or reject is not None:
            raise click.UsageError("--facts FILE asks its facts: no PROMPT, --expect or "
                                   "--reject with it")
        question = FactsQuestion(facts, 1.0 if threshold is None else threshold)
    else:
        if prompt is None:
            raise click.UsageError("give a PROMPT (with --expect or --reject), or --facts FILE")
        if (expect is None) == (reject is None):
            raise click.UsageError("give one of --expect TEXT and --reject TEXT")
        if threshold is not None:
            raise click.UsageError("--threshold goes with --facts FILE")
        question = PromptQuestion(prompt, AnswerTest(expect=expect, reject=reject),
                                  max_tokens)
    with open_repo() as repo:
        subjects: dict[str, str] = {}

        def label(commit: str | None) -> str:
            if commit is None:
                return "[base] the base model"
            if commit not in subjects:
                subjects[commit] = first_line(repo.get_commit(commit).message)
            return f"[{short(commit)}] {subjects[commit]}"

        def said(kind: str, step) -> None:
            if kind == "step":
                click.echo(f"Bisecting: {counted(step.left, 'revision')} left to test after "
                           f"this (roughly {counted(step.steps, 'step')})")
            elif kind == "merge base":
                click.echo("Bisecting: a merge base must be tested")
            verdict = "good" if step.good else "bad"
            click.echo(f"{label(step.commit)}: {verdict} ({shown(step.answer)})"
                       + (f", given as {kind}" if kind in ("good", "bad") else ""))

        found = run_bisect(repo, question, good, bad, on_step=None if as_json else said,
                           first_parent=first_parent)
        c = repo.get_commit(found.first_bad)
    if prompt is not None:
        warn_prompt_end(prompt)  # as ask warns, once asked
    if as_json:
        key = "completion" if facts is None else "efficacy"
        print_json({
            "prompt": prompt, "expect": expect, "reject": reject,
            "max_tokens": None if facts is not None else max_tokens,
            "facts": facts, "threshold": None if facts is None else question.threshold,
            "good": [{"commit": s.commit, key: s.answer} for s in found.good],
            "bad": {"commit": found.bad.commit, key: found.bad.answer},
            "merge_bases": [{"commit": s.commit, key: s.answer} for s in found.merge_bases],
            "steps": [{"commit": s.commit, key: s.answer,
                       "verdict": "good" if s.good else "bad", "left": s.left,
                       "steps": s.steps} for s in found.steps],
            "first_bad": {**commit_entry(c), key: found.first_bad_answer}})
        return
    click.echo(f"{c.id} is the first bad commit")
    for line in commit_lines(c, c.parents, f"commit {c.id}"):
        click.echo(line)


def shown(answer: str | float) -> str:
    """A state's answer on a step's line: a completion quoted as repr quotes it (a line
    break or an escape in it stays on the line), an ES as a number."""
    return f"ES {answer:.3f}" if isinstance(answer, float) else repr(answer)


COMMANDS = [bisect]
