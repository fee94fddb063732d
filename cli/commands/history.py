"""log, show, diff, blame: reading the history."""
from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice

import click

from ..dates import Date
from ..output import (
    commit_facts,
    counted,
    first_line,
    json_option,
    layers_text,
    message_lines,
    metrics_line,
    num,
    print_json,
    runtime_options,
    short,
    shown_name,
    size,
    when,
)
from .signing import show_signature_option, verdicts


def _decorations(repo) -> dict[str, list[str]]:
    """commit id → names pointing at it ('HEAD -> main', 'tag: v1', 'feature',
    'origin/main')."""
    from memstore.store.refs import REMOTES

    out: dict[str, list[str]] = {}
    head = repo.head()
    if head.ref is None and head.commit:
        out[head.commit] = ["HEAD"]
    for name, c in repo.branches().items():
        if head.branch == name:
            out.setdefault(c, []).insert(0, f"HEAD -> {shown_name(name)}")
        else:
            out.setdefault(c, []).append(shown_name(name))
    for name, c in repo.tags().items():
        out.setdefault(c, []).append(f"tag: {shown_name(name)}")
    for name, c in repo.refs.list(REMOTES).items():  # remote-tracking branches: origin/main
        out.setdefault(c, []).append(shown_name(name))
    for name, branch in repo.refs.remote_heads().items():  # git's origin/HEAD, after them
        if (c := repo.refs.read(REMOTES + branch)) is not None:  # (a dangling one: none)
            out.setdefault(c, []).append(shown_name(name))
    return out


def commit_entry(c) -> dict:
    """A commit as `log --json` prints it."""
    return {"id": c.id, "parents": list(c.parents), "message": c.message,
            "n_requests": c.n_requests, "operation": c.operation, "basis": c.basis,
            "time": c.time, "author_time": c.authored, "author": c.author,
            "committer": c.committer, "metrics": c.metrics}


def dates(authored: float, committed: float) -> str:
    """A commit's `Date:`, as git's: when its author wrote it, and when it was committed
    where that is another time (a cherry-pick, rebase or squash; git's --pretty=fuller's
    CommitDate; not where the two read the same, within the second)."""
    author_date, commit_date = when(authored), when(committed)
    return author_date if author_date == commit_date else \
        f"{author_date} (committed {commit_date})"


def commit_lines(c, parents, first: str) -> list[str]:
    """A commit as `log` prints it, after its `first` line (`commit ID` and decorations)."""
    return [first,
            *([f"Merge:  {' '.join(short(p) for p in parents)}"] if len(parents) > 1 else []),
            *([f"Author: {c.author}"] if c.author is not None else []),
            *([f"Commit: {c.committer}"] if c.committer is not None else []),
            f"Date:   {dates(c.authored, c.time)}",
            f"Facts:  {c.n_requests} ({c.operation}); {metrics_line(c.metrics)}",
            "",
            *(f"    {line}" for line in message_lines(c.message) or [""])]


def _rewritten(commits: list, kept: set[str]) -> list:
    """The commits `kept` of `commits` (log order), each with its parents rewritten to its
    nearest kept ancestors, as git's --graph draws a filtered log: a line from each commit
    to the kept commits it descends from, not lanes to commits left out."""
    from dataclasses import replace

    nearest: dict[str, list[str]] = {}
    for c in reversed(commits):  # parents first
        nearest[c.id] = [c.id] if c.id in kept else list(dict.fromkeys(
            a for p in c.parents for a in nearest.get(p, ())))
    return [replace(c, parents=tuple(dict.fromkeys(a for p in c.parents
                                                   for a in nearest.get(p, ()))))
            for c in commits if c.id in kept]


@click.command()
@click.argument("rev", required=False)
@click.option("--oneline", is_flag=True, help="One line per commit: short id and subject.")
@click.option("--graph", is_flag=True, help="Draw the ancestry graph beside the commits.")
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="Show at most N commits.")
@click.option("--author", "authors", multiple=True, metavar="PATTERN",
              help="Only the commits whose author (Name <email>) matches PATTERN "
                   "(repeatable: any of them).")
@click.option("--committer", "committers", multiple=True, metavar="PATTERN",
              help="Only the commits whose committer (the author where none is recorded) "
                   "matches PATTERN (repeatable: any of them).")
@click.option("--grep", "patterns", multiple=True, metavar="PATTERN",
              help="Only the commits whose message has a line matching PATTERN "
                   "(repeatable: any of them).")
@click.option("--basic-regexp", "dialect", flag_value="basic", default=True,
              help="Read --grep's, --author's and --committer's patterns as POSIX basic "
                   "regular expressions, git's default.")
@click.option("-E", "--extended-regexp", "dialect", flag_value="extended",
              help="Read them as POSIX extended regular expressions (a+b, a|b, (x), a{2}).")
@click.option("-F", "--fixed-strings", "dialect", flag_value="fixed",
              help="Read them as text, no regular expression.")
@click.option("-P", "--perl-regexp", "dialect", flag_value="perl",
              help="Read them as Perl-compatible regular expressions, as Python's re reads "
                   "them.")
@click.option("-i", "--regexp-ignore-case", "ignore_case", is_flag=True,
              help="Match --grep's, --author's, --committer's and --fact's patterns in any "
                   "case.")
@click.option("--all-match", is_flag=True,
              help="Only the commits whose message matches every --grep pattern.")
@click.option("--invert-grep", is_flag=True,
              help="Only the commits whose message matches none of the --grep patterns.")
@click.option("--fact", metavar="PATTERN",
              help="Only the commits that wrote or took out a fact whose subject, prompt "
                   "(the subject filled in) or target matches PATTERN, a Python regular "
                   "expression.")
@click.option("--since", "--after", "since", type=Date(),
              help="Only the commits committed at or after DATE (2026-12-01, "
                   "2026-12-01T10:00, with or without a zone; yesterday, 2 weeks ago).")
@click.option("--until", "--before", "until", type=Date(),
              help="Only the commits committed at or before DATE.")
@click.option("--reverse", is_flag=True,
              help="Oldest first (after -n has taken the newest N, as git's).")
@show_signature_option
@click.option("--left-right", is_flag=True,
              help="Mark each commit of A...B with the side it is on: < (A's) or > (B's).")
@json_option
def log(rev: str | None, oneline: bool, graph: bool, max_count: int | None,
        authors: tuple[str, ...], committers: tuple[str, ...], patterns: tuple[str, ...],
        dialect: str, ignore_case: bool, all_match: bool, invert_grep: bool, fact: str | None,
        since: float | None, until: float | None, reverse: bool, show_signature: bool,
        left_right: bool, as_json: bool) -> None:
    """Show the commits reachable from REV (default: HEAD; none on a branch with no
    commits yet, where HEAD written out is an unknown revision, as in git), newest first.

    REV may be a range, as git's: `A..B` shows the commits B reaches that A does not (what
    B has that A lacks: `origin/main..main`, what a push would send); `A..` is A..HEAD and
    `..B` HEAD..B. `A...B` (git's symmetric difference) shows the commits either side
    reaches that the other does not (what each has since they forked; both whole histories
    when they share none), newest first over both; `A...` and `...B` stand for HEAD as
    `..` does. --left-right marks each commit with its side, as git's: `<` A's, `>` B's
    (and every commit `>` outside an A...B). The excluded and both sides' ancestries are
    walked on the records, each compared with its index row.

    The filters, as git's: --author (who wrote the commit, `Name <email>`: a cherry-pick,
    rebase or squash keeps the original's author); --committer (who wrote the commit
    record, where that is another: the one who picked, rebased or squashed; else its
    author); --grep (a line of the commit message; several: any of them, every one with
    --all-match, none with --invert-grep). Their patterns are read as git reads them: POSIX
    basic regular expressions (`a\\+b`, `a\\|b`, `\\(x\\)`; `a+b` is that text), extended
    ones with -E (`a+b`, `a|b`, `(x)`), text with -F, Python's re with -P; -i: any case;
    several --author or --committer: any of them;
    --since/--after and --until/--before (when the commit was committed, its `time`, as
    git's committer date: a pick's or rebase's time, not the author date it keeps; both
    ends included);
    --fact, git's -G for facts (Python's re, whatever -E/-F say; -i: any case): the
    commits whose requests wrote a fact whose subject, prompt with the subject filled in, or target
    matches (or whose target the write replaced: --supersede), and the reverts, merges and
    squashes whose state added, removed or retargeted one against their first parent's
    (what `show` lists; both targets of a retargeted one), so a fact written and reverted
    since is found too, where blame sees the live ones only.
    -n counts the commits the filters keep; --reverse lists them oldest first, after -n
    has taken the newest N (and cannot be drawn with --graph).

    `Date:` is when the author wrote the commit, as git's (a cherry-pick, rebase or squash
    keeps the original's), then `(committed DATE)` where it was committed at another time.

    --json prints a list of objects with id, parents, message, n_requests, operation,
    basis, time (when it was committed), author_time (when its author wrote it; time where
    they are one), author (null for a commit made before memstore recorded authors),
    committer (null where it is the author, or was not recorded) and metrics; for A...B, side too ("left" for A's, "right" for B's).

    --show-signature checks each commit's signature (as verify-commit) and says it under
    its `commit` line (before it with --oneline); with --json, a signature field (status:
    good, none, bad or not-allowed; principal; fingerprint; reason, as verify-commit's).
    """
    from ..context import open_repo
    from ..graph import graph_log, graph_rows

    if reverse and graph:
        raise click.UsageError("options '--reverse' and '--graph' cannot be used together")
    grep = _patterns("--grep", patterns, dialect, ignore_case)
    by = (_patterns("--author", authors, dialect, ignore_case),
          _patterns("--committer", committers, dialect, ignore_case))
    facts = _patterns("--fact", (fact,) if fact is not None else (), "perl", ignore_case)
    with open_repo() as repo:
        keep = _filter(by, grep, "none" if invert_grep else "all" if all_match else "any",
                       since, until, facts[0] if facts else None, repo)
        # no REV: HEAD, whose log is empty before the first commit; a REV written out
        # names a commit (HEAD too: an unknown revision there, as show and diff say)
        start, exclude, left = _range(rev, repo)
        whole = keep is not None or (graph and bool(exclude or left))  # -n cuts after
        limit = None if whole else max_count
        lefts: set[str] = set()
        if left is not None:
            commits, lefts = repo.log_sides(left, start, limit=limit)
        else:
            commits = repo.log("HEAD" if start is None else repo.resolve(start),
                               limit=limit, exclude=exclude)
        recorded = {c.id: c.parents for c in commits}  # `Merge:` says them, rewritten or not
        if keep is not None:  # -n counts the commits shown, as git's does
            kept = (c for c in commits if keep(c))  # --fact reads records: no more than -n
            commits = _rewritten(commits, {c.id for c in kept})[:max_count] if graph \
                else list(islice(kept, max_count))
        elif whole:  # a range's graph draws no lane to a parent A holds (not listed), as git's
            commits = _rewritten(commits, {c.id for c in commits})[:max_count]
        if reverse:  # the newest N, then oldest first: git's order of the two
            commits.reverse()
        signed = verdicts(repo) if show_signature else None
        if as_json:
            # the recorded parents: a graph's rewritten ones are for drawing only
            print_json([commit_entry(c) | {"parents": list(recorded[c.id])}
                        | ({"signature": signed(c.id).to_json()} if signed else {})
                        | ({"side": "left" if c.id in lefts else "right"}
                           if left is not None else {}) for c in commits])
            return
        refs = _decorations(repo)

        def deco(c) -> str:
            return f" ({', '.join(refs[c.id])})" if c.id in refs else ""

        def side(c) -> str:  # git's --left-right mark
            return "<" if c.id in lefts else ">"

        mark = side if left_right else None
        # without --graph the mark leads the id, as git's; with it, it is the graph's `*`
        lead_mark = "" if graph or not left_right else "{} "
        if oneline:
            rows = graph_rows(commits, mark) if graph else ((None, c) for c in commits)
            for prefix, c in rows:
                lead = f"{prefix} " if prefix is not None else ""
                if signed and c is not None:  # on the commit's lane, as a line above it
                    lane = lead.translate(str.maketrans("*<>", "|||"))
                    click.echo(f"{lane}{signed(c.id).line()}")
                click.echo(prefix if c is None else
                           f"{lead}{lead_mark.format(side(c))}{short(c.id)}{deco(c)} "
                           f"{first_line(c.message)} "
                           f"[{c.operation}, {commit_facts(c.n_requests, c.metrics)}]")
        else:
            def text(c) -> list[str]:
                lines = commit_lines(c, recorded[c.id],
                                     f"commit {lead_mark.format(side(c))}{c.id}{deco(c)}")
                if signed:  # git's place for it: under the commit line
                    lines.insert(1, signed(c.id).line())
                return [*lines, ""]

            lines = (graph_log(commits, text, mark) if graph
                     else (line for c in commits for line in text(c)))
            for line in lines:
                click.echo(line)
        if not commits and not as_json:
            # "match" only where there were commits to filter: a branch with none says so,
            # filtered or not (one state, one wording)
            click.echo("no commits match" if keep is not None and recorded else
                       f"no commits in {rev}" if exclude or left else "no commits yet",
                       err=True)


def _patterns(option: str, patterns: tuple[str, ...], dialect: str,
              ignore_case: bool) -> list[re.Pattern]:
    """An option's patterns compiled as git reads them in `dialect` (basic, extended,
    fixed, perl); one git would refuse: one line, exit 2."""
    from memstore.errors import ValidationError
    from memstore.store.posix_regex import PatternError, compile_pattern

    compiled = []
    for p in patterns:
        try:
            compiled.append(compile_pattern(p, dialect, ignore_case))
        except PatternError as e:
            raise ValidationError(f"{option} {p[:60]!r}: not a regular expression "
                                  f"({e})") from None
    return compiled


def _filter(by: tuple[list[re.Pattern], list[re.Pattern]], patterns: list[re.Pattern],
            grep: str, since: float | None, until: float | None, fact: re.Pattern | None,
            repo) -> Callable | None:
    """Whether a commit passes log's filters (None where there are none): each filter
    given must pass, as git's, --fact (which reads the commit's facts) last. `by`: the
    --author and the --committer patterns, any one of each; of the --grep patterns, `grep`
    says how many must match a line of the message: any, all (--all-match) or none
    (--invert-grep, which git 2.39 reads so with --all-match too). A search that runs past
    posix_regex's limit ends the log in one line."""
    from memstore.errors import ValidationError
    from memstore.store.posix_regex import SLOW, PatternError, matches, search

    authors, committers = by
    if not authors and not committers and not patterns and since is None \
            and until is None and fact is None:
        return None
    how_many = {"any": any, "all": all, "none": lambda found: not any(found)}[grep]

    def passes(c) -> bool:
        wrote = c.committer if c.committer is not None else c.author  # git's: one name
        return ((not authors or (c.author is not None
                                 and any(search(p, c.author) for p in authors)))
                and (not committers or (wrote is not None
                                        and any(search(p, wrote) for p in committers)))
                and (since is None or c.time >= since) and (until is None or c.time <= until)
                and (not patterns or how_many(matches(p, c.message) for p in patterns))
                and (fact is None or _touches(repo, c, fact)))

    def keep(c) -> bool:
        try:
            return passes(c)
        except PatternError as e:
            raise ValidationError(f"commit {c.id[:12]}: {e}; {SLOW}") from None
    return keep


def _touches(repo, c, pattern: re.Pattern) -> bool:
    from memstore.store.posix_regex import search
    from memstore.store.queries import facts_touched

    return any(search(pattern, text)
               for r in facts_touched(repo, c, lambda t: search(pattern, t))
               for text in (r.subject, r.text, r.target_new))


def _range(rev: str | None, repo) -> tuple[str | None, list[str], str | None]:
    """The revision `log` starts from, those it excludes, and the left side of a symmetric
    range: `A..B` is B excluding A, `A...B` B with A as its left side; a side left empty is
    HEAD, as git's (no branch or tag name holds '..'). A `^{/REGEX}` may hold '..'
    (`main^{/facts ..}`): a `rev` that names a commit whole is that one revision, as git's
    handle_dotdot takes it where a side names none. A..B..C and the like are refused in
    one line."""
    from memstore.errors import ValidationError

    if rev is None or ".." not in rev:
        return rev, [], None
    whole = None
    if "^{" in rev:
        try:
            repo.resolve(rev)
            return rev, [], None
        except ValidationError as e:
            whole = e  # a range, or refused as one
    cut = rev.find("..")  # the first, as git's handle_dotdot: B may be `X^{/a..b}`
    dots = "..." if rev.startswith("...", cut) else ".."
    a, b = rev[:cut], rev[cut + len(dots):]
    if whole is not None and a.rfind("^{") > a.rfind("}"):  # the cut is in A's `^{..}`:
        raise whole  # (`main^{/fa..zz}`) the whole's refusal, not A's
    if ".." in b and "^{" not in b:
        raise ValidationError(f"unknown revision {rev[:100]!r}: a range is A..B (what B "
                              "has that A lacks) or A...B (what either has that the "
                              "other lacks)")
    if dots == "...":
        return b or "HEAD", [], a or "HEAD"
    return b or "HEAD", [a or "HEAD"], None


@click.command(short_help="Show which commit wrote each live fact, and who.")
@click.argument("rev", required=False)
@click.option("--subject", help="Only the facts about SUBJECT (the exact subject).")
@click.option("--contains", metavar="TEXT",
              help="Only the facts whose subject, prompt or target contains TEXT (any case).")
@json_option
def blame(rev: str | None, subject: str | None, contains: str | None, as_json: bool) -> None:
    """Show, for each fact live at REV (default: HEAD), the commit that wrote it, its
    author and author date, as `git blame` does for lines: a write that a merge, squash,
    revert or cherry-pick carried on is followed back to the commit that wrote the fact,
    and the carrier is named after it.

    --json prints a list of objects with subject, prompt, target_new, target_true,
    case_id, commit, author (null for a commit made before authors were recorded), time,
    author_time (as log --json's), summary (the first line of its message) and carried_by (null where the commit holds
    its own write).
    """
    from memstore.store.blame import blame as blame_facts

    from ..context import open_repo

    with open_repo() as repo:
        rows = blame_facts(repo, rev, subject=subject, contains=contains)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        via = f", via {short(r['carried_by'])}" if r["carried_by"] else ""
        day = when(r["author_time"], "%Y-%m-%d")  # a number past any date, whole
        click.echo(f"{short(r['commit'])} ({r['author'] or '-'} {day}{via}) "
                   f"{r['prompt'].format(r['subject'])!r} -> {r['target_new']!r}")
    if not rows:
        click.echo("no facts" + (" match" if subject is not None or contains is not None
                                 else " live at " + (rev or "HEAD")), err=True)


def _fact_lines(d: dict) -> list[str]:
    """A diff's facts, one line each: + added, - removed, ~ changed."""
    return ([f"+ {f['subject']!r} / {f['prompt']!r} -> {f['target_new']!r}" for f in d["added"]]
            + [f"- {f['subject']!r} / {f['prompt']!r} -> {f['target_new']!r}"
               for f in d["removed"]]
            + [f"~ {f['subject']!r} / {f['prompt']!r}: {f['old']!r} -> {f['new']!r}"
               for f in d["changed"]])


def _counts(d: dict) -> str:
    return (f"{len(d['added'])} added, {len(d['removed'])} removed, "
            f"{len(d['changed'])} changed")


@click.command(short_help="Show a commit: the facts it changed, requests, ‖ΔW‖ per layer.")
@click.argument("rev", required=False, default="HEAD")
@show_signature_option
@json_option
def show(rev: str, show_signature: bool, as_json: bool) -> None:
    """Show a commit: its message and metrics; the facts it added, removed and changed
    against its first parent (the base model for a commit with no parent: for a revert,
    what it took out; for a merge, what it brought in); and for each update set (one MEMIT
    solve) the requests, and per edited layer the Frobenius norm ‖ΔW‖ and rank of the
    update; with the bytes the commit added to the repository. `Date:` as log's: the
    author date, then `(committed DATE)` where it was committed at another time.

    --json adds `facts` (`added`, `removed`, `changed`, as `diff --json` gives them) and
    `update_sets` to the fields of `log --json`, with `info` and `bytes`.
    --show-signature checks the commit's signature and says it under the `commit` line
    (--json: a signature field, as log's).
    """
    from memstore.store import queries

    from ..context import open_repo

    with open_repo() as repo:
        d = queries.show(repo, rev)
        verdict = verdicts(repo)(d["id"]) if show_signature else None
    if verdict is not None:
        d["signature"] = verdict.to_json()
    if as_json:
        print_json(d)
        return
    click.echo(f"commit {d['id']}")
    if verdict is not None:
        click.echo(verdict.line())
    click.echo(f"Parents:   {' '.join(short(p) for p in d['parents']) or '-'}")
    click.echo(f"Basis:     {short(d['basis'])}")
    click.echo(f"Operation: {d['operation']}")
    if d["author"] is not None:
        click.echo(f"Author:    {d['author']}")
    if d["committer"] is not None:  # git's --pretty=fuller's, where it is another
        click.echo(f"Commit:    {d['committer']}")
    click.echo(f"Date:      {dates(d['author_time'], d['time'])}")
    click.echo(f"Size:      {size(d['bytes'])}")
    click.echo("")
    for line in message_lines(d["message"]):
        click.echo(f"    {line}")
    click.echo("")
    click.echo(f"Metrics: {metrics_line(d['metrics'])}")
    against = short(d["parents"][0]) if d["parents"] else "the base"
    click.echo(f"Facts:   {_counts(d['facts'])} (against {against})")
    for line in _fact_lines(d["facts"]):
        click.echo(f"  {line}")
    for i, s in enumerate(d["update_sets"], 1):
        click.echo(f"\nUpdate set {i}: {counted(len(s['requests']), 'request')}, layers "
                   f"{layers_text([x['layer'] for x in s['layers']])}, λ "
                   f"{s['info'].get('lambda', s['settings']['mom2_weight']):g}")
        click.echo("  layer  rank    ‖ΔW‖_F  stored as")
        for x in s["layers"]:
            click.echo(f"  {x['layer']:>5}  {x['rank']:>4}  {x['norm']:>8.4f}  {x['form']}")
        for r in s["requests"]:
            was = f" (was {r['target_true']!r})" if r.get("target_true") else ""
            click.echo(f"  {r['prompt'].format(r['subject'])!r} -> {r['target_new']!r}{was}")


@click.command(short_help="Show the facts (and weights) that differ between two states.")
@runtime_options
@click.argument("rev1")
@click.argument("rev2", required=False)
@click.option("--weights", is_flag=True,
              help="Also print, per edited layer, the norm of the weight difference.")
@click.option("--probe", "prompts", multiple=True, metavar="PROMPT",
              help="Also print the greedy completion of PROMPT under both states "
                   "(repeatable).")
@click.option("--max-tokens", default=20, show_default=True, type=click.IntRange(min=1),
              help="Tokens generated per --probe completion.")
@json_option
def diff(rev1: str, rev2: str | None, weights: bool, prompts: tuple[str, ...], max_tokens: int,
         as_json: bool) -> None:
    """Show how the facts differ between the states of REV1 and REV2 (default: the
    current state, HEAD's, or the base model's on a branch with no commits yet).

    Facts are compared by (subject, prompt): added (+), removed (-) and changed (~, another
    target). 'base' names the base model's state. The states are built in memory; nothing
    is written.

    --json prints one object: added and removed (rows of subject, prompt, target_new,
    target_true, the commit that wrote each and carried_by, the commit that carried that
    write on where another did: a merge, squash, revert or cherry-pick, as blame names
    them; null else), changed (subject, prompt, old, new, old_commit, old_carried_by,
    new_commit, new_carried_by); with --weights, weights (layer -> norm of the difference);
    with --probe, revs and probe (prompt, rev1, rev2 per prompt).
    """
    from memstore.store import queries  # the model only with --weights or --probe

    from ..context import open_repo

    with open_repo() as repo:
        d = queries.diff(repo, rev1, rev2)
        if weights:
            d["weights"] = {str(k): v for k, v in queries.weight_diff(repo, rev1, rev2).items()}
        if prompts:
            got = queries.probe(repo, list(prompts), [rev1, rev2], max_tokens)
            d["revs"] = [rev1, rev2 or "HEAD"]  # the probe's completions under each
            d["probe"] = [{"prompt": p, "rev1": got[0]["completions"][i],
                           "rev2": got[1]["completions"][i]} for i, p in enumerate(prompts)]
    if as_json:
        print_json(d)
        return
    lines = _fact_lines(d)
    for line in lines:
        click.echo(line)
    click.echo(_counts(d) if lines else "no fact differs")
    if weights and not d["weights"]:  # neither state holds an update set: both the base's
        click.echo("no weight differs: both states are the base model's weights")
    elif weights:
        click.echo("layer  ‖W2 − W1‖_F")
        for k, v in d["weights"].items():
            click.echo(f"{k:>5}  {num(v, 6)}")
    for p in d.get("probe", []):
        click.echo(f"{p['prompt']!r}")
        click.echo(f"  {rev1}: {p['rev1']!r}")
        click.echo(f"  {rev2 or 'HEAD'}: {p['rev2']!r}")


COMMANDS = [log, show, diff, blame]
