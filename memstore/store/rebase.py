"""`memstore rebase UPSTREAM`: the current branch's own commits written again on top of
UPSTREAM, as git's rebase writes them, so that a team's history stays one line.

The commits of the branch that UPSTREAM does not hold are picked (rewrite.pick_facts and
solve_pick, a cherry-pick's two halves) onto UPSTREAM, oldest first, one new commit each:
one solve from the picked commit's cached z-vectors (no z optimisation) on the state the
previous pick made, which the model is left in, so it is loaded once for the whole
sequence. A merge commit of the range is dropped, as git's rebase drops it: the commits it
brought in that UPSTREAM lacks are in the range and are picked in their place (a
memstore merge writes no fact of its own: what it holds is its sides'). A revert or squash
in the range is refused before anything is done: its change is no list of facts to write
again (`memstore merge UPSTREAM` joins such a branch).

All or nothing. The facts alone decide conflicts, so every pick's conflicts are found on
the facts, before the model is loaded: a fact a commit superseded where the state it lands
on holds yet another target (cherry-pick's rule), or none (UPSTREAM took it out: git's
modify/delete, as merge refuses it), stops the rebase there, naming the commit and the
facts, nothing written; a fact UPSTREAM took out that a commit wrote again at its parent's
target (no change) stays out, as merge keeps the revert. The new commits are written as
they are solved, with no ref moved; the branch moves once, by compare-and-swap, after the
last. Anything that stops it part way (a solve refused, an interrupt) leaves every ref as
it was: the commits written for the attempt are held by no ref, and gc removes them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..editing.progress import progress
from ..editing.requests import fact_key
from ..errors import MemstoreError, ValidationError
from . import author as authors
from . import history, signing, upstreams
from .commits import Commit
from .history import LiveFact
from .ref_marks import REMOTES
from .repository import Repository
from .rewrite import PICKABLE, MergeConflictError, pick_facts, solve_pick
from .states import LoadedBase, state_of


@dataclass
class Rebased:
    """What a rebase did: the branch, the commit UPSTREAM named (and how it was named),
    where the branch was (`old`) and is (`new`), each commit of the range oldest first with
    the commit written for it (None: dropped, `dropped` says why), the commits the branch
    left that no branch or tag holds (newest first: gc removes them), and which of git's
    short cuts it was."""

    branch: str
    upstream: str
    shown: str
    old: str
    new: str
    commits: list[tuple[str, str | None]] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    up_to_date: bool = False
    fast_forward: bool = False
    seconds: float = 0.0


def _range(repo: Repository, head: str, upstream: str
           ) -> tuple[list[str], set[str], set[str], dict]:
    """The commits HEAD reaches that `upstream` does not, oldest first (parents before
    children, older first among those ready: log's order reversed), HEAD's and `upstream`'s
    histories, and the checked graph: walked on the records, a row that disagrees with its
    record or a parent with no row refused (history.ancestors_of's strict walk), as log's
    and merge's walks refuse them."""
    g = history.checked_graph(repo.store)
    theirs = history.ancestors_of(g, [upstream], indexed=True)
    reach = history.ancestors_of(g, [head], indexed=True)
    mine = reach - theirs
    sub = {c: (tuple(p for p in g[c][0] if p in mine), g[c][1]) for c in mine}
    order = list(reversed(history.log_ids(repo.db, head, g=sub))) if mine else []
    return order, reach, theirs, g


Live = dict[tuple[str, str], LiveFact]  # a state's live facts by fact_key, as facts_at orders them


def _plan(repo: Repository, picks: list[Commit], onto: str, shown: str,
          why: dict[str, str]) -> tuple[Live, list[list[LiveFact]]]:
    """`onto`'s live facts, and the facts each pick writes, found on the facts alone (no
    weights), each pick's on the facts the ones before it leave live (`_landed`), as
    cherry-pick finds them on HEAD's; the first pick with a conflict refuses the whole
    rebase, naming it. `why` receives, for each pick that writes nothing, the reason it
    is dropped. The state each pick lands on is not kept (a copy of the live facts a
    pick: 5 MB a pick at 100,000 live facts): the rebase makes them again as it goes."""
    start = {fact_key(f.request): f for f in repo.facts_at(onto)}
    here = dict(start)
    planned = []
    for c in picks:
        facts, conflicts = pick_facts(repo, c, here, taken_out=True)
        if conflicts:
            raise MergeConflictError(
                f"rebase onto {shown} refused: commit {c.id[:12]} ({c.summary!r}) has "
                f"{len(conflicts)} conflicting fact(s); nothing was changed (to settle one, "
                "make the sides agree: revert the commit that wrote it on one side, or write "
                "one side's target on the other, then rebase again; or merge instead)",
                conflicts)
        if not facts:  # git's 'patch contents already upstream'
            keys = {fact_key(r) for i in range(len(c.update_sets))
                    for r in repo.requests_of(c.id, i)}
            why[c.id] = (f"{shown} holds its facts already" if keys <= here.keys() else
                         f"{shown} took out the facts it wrote again unchanged"
                         if not keys & here.keys() else
                         f"{shown} holds its facts already or took them out")
        _landed(here, facts)
        planned.append(facts)
    return start, planned


def _landed(here: Live, facts: list[LiveFact]) -> None:
    """`here`, the live facts a pick lands on, made those it leaves: `facts` live now, as
    facts_at orders a fact written again: last."""
    for f in facts:
        here.pop(fact_key(f.request), None)
        here[fact_key(f.request)] = f


def upstream_of(repo: Repository, branch: str) -> tuple[str, str]:
    """(the remote-tracking ref to rebase onto, how messages name it) where `rebase` is
    given no UPSTREAM: `branch`'s upstream as `status` and `pull` take it (the recorded
    one, else the default remote's branch of its name: upstreams.upstream_or_default), as
    of the last fetch or push. Refused in one line: a recorded one naming no remote (as
    pull and push refuse it), none where `status` shows none (no default, or the default
    not fetched), a recorded one whose tracking branch is not here (`branch -vv`'s
    [gone])."""
    names = upstreams.remote_names(repo.db)
    up = upstreams.get(repo.db, branch)
    if up is not None and up.remote not in names:  # as remotes.upstream_of (pull, push)
        raise MemstoreError(upstreams.no_remote(branch, up))
    found = upstreams.upstream_or_default(repo.db, branch, names)
    ref = REMOTES + found[0].name if found is not None else ""
    fetched = found is not None and repo.refs.read(ref) is not None
    if not fetched and (found is None or not found[1]):
        raise ValidationError(upstreams.no_upstream(branch, "name UPSTREAM"))
    if not fetched:
        raise ValidationError(f"the upstream of {branch!r}, {found[0].name}, is gone (not "
                              "fetched yet, or deleted there since): name UPSTREAM, "
                              f"`memstore fetch {found[0].remote}`, or `memstore branch "
                              "--unset-upstream`")
    return ref, found[0].name


def rebase(repo: Repository, rev: str | None, *, shown: str | None = None,
           action: str = "rebase") -> Rebased:
    """Rebase the current branch onto the commit `rev` names (module docstring); None: the
    branch's upstream (`upstream_of`). `shown`: how messages name `rev` (pull's
    `origin/main`). Already up to date when `rev`'s
    commit is HEAD's or an ancestor of it with no merge between (git's check); a
    fast-forward to it when HEAD is its ancestor (the branch has no commits of its own).
    `action`: what the reflog entry names the command (pull's "pull --rebase")."""
    t0 = time.perf_counter()
    # the sets solved are stored before their commit: an interrupt part way takes them back
    with repo.lock(), repo.store.taken_back_on_failure():
        head = repo.head()
        if rev is None and head.branch is not None:  # (a detached HEAD: refused below)
            rev, shown = upstream_of(repo, head.branch)
        shown = rev if shown is None else shown
        if head.ref is None:
            raise ValidationError("rebase moves a branch, and HEAD is detached: `memstore "
                                  "switch BRANCH` first (or `memstore switch -c NAME` to make "
                                  "one here)")
        if head.commit is None:
            raise ValidationError(f"nothing to rebase: branch {head.branch!r} has no commits "
                                  "yet")
        old = head.commit
        upstream = repo.resolve(rev)
        repo.check_held(upstream, shown, f"rebase branch {head.branch!r}")
        order, reach, theirs, g = _range(repo, old, upstream)
        out = Rebased(head.branch, upstream, shown, old, old)
        merges = [c for c in order if len(g[c][0]) > 1]
        if old == upstream or (upstream in reach and not merges):
            out.up_to_date = True
            out.seconds = time.perf_counter() - t0
            return out
        if old in theirs:  # no commit of its own: git moves the branch there
            repo.held_by_no_ref(old)  # damaged rows of what it leaves refuse it
            repo.update_ref(head.ref, upstream, expected=old,
                            reason=f"{action} (finish): {head.ref} onto {upstream}")
            out.new, out.fast_forward = upstream, True
            out.seconds = time.perf_counter() - t0
            return out
        picks = [repo.get_commit(c) for c in order if c not in merges]
        for c in picks:  # refused before anything is done
            if c.operation not in PICKABLE:
                raise MemstoreError(
                    f"cannot rebase onto {shown}: commit {c.id[:12]} ({c.summary!r}) is a "
                    f"{c.operation}, which a rebase cannot write again (it writes commits of "
                    f"facts, as cherry-pick); nothing was changed (`memstore merge {shown}` "
                    "joins the branches instead)")
        repo.held_by_no_ref(old)  # damaged rows of what it leaves refuse it now, not after
        empty: dict[str, str] = {}
        here, planned = _plan(repo, picks, upstream, shown, empty)
        if any(planned):  # commit.gpgsign's key: before the solves, where a pick writes one
            signing.signer(repo.db, repo.signing)  # (every pick dropped: none, as git's)
        out.dropped = {c: "a merge: the commits it brought in are picked" for c in merges}
        new_of: dict[str, str | None] = dict.fromkeys(merges)
        onto, base = upstream, None
        with progress(total=len(picks), desc="rebasing", unit="commit") as bar:
            for c, facts in zip(picks, planned):
                if not facts:
                    new_of[c.id] = None
                    out.dropped[c.id] = empty[c.id]
                else:
                    base = base if base is not None else state_of(repo, onto)
                    try:
                        onto = new_of[c.id] = _pick(repo, base, c, onto, facts, here)
                    except MemstoreError as e:
                        raise MemstoreError(f"rebase stopped at commit {c.id[:12]}: {e}; "
                                            "nothing was changed") from e
                    _landed(here, facts)
                bar.update(1)
        out.commits = [(c, new_of[c]) for c in order]
        repo.update_ref(head.ref, onto, expected=old,
                        reason=f"{action} (finish): {head.ref} onto {upstream}")
        out.new = onto
        kept = repo.reached(onto)
        out.left = [c for c in repo.held_by_no_ref(old) if c not in kept]
    out.seconds = time.perf_counter() - t0
    return out


def _pick(repo: Repository, base: LoadedBase, c: Commit, onto: str, facts: list[LiveFact],
          here: Live) -> str:
    """Commit `c` written again on `onto` (the state `base`'s model is in), moving no ref:
    `facts`, what _plan found it writes on `onto`'s live facts `here`, solved from their
    cached z-vectors, with `c`'s message, author and author date. The model is then in the
    new commit's state, and is labelled so: the in-place update and a state built from the
    records are the same bits (editing.apply)."""
    found = [f.request for f in repo.facts_at(onto)]  # the records, against the plan
    if found != [f.request for f in here.values()]:
        raise MemstoreError(f"its facts on {onto[:12]} are not those planned (the "
                            "repository changed under the rebase?)")
    result, metrics = solve_pick(repo, base, facts, here, onto)
    new = repo.write_commit([result], parents=[onto], basis=onto, message=c.message,
                            metrics=metrics, operation="rebase",
                            info={"rebased": c.id, "solved": len(facts)}, ref=None,
                            **authors.kept(c))
    base.state = new.id
    return new.id
