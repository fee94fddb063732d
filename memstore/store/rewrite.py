"""History rewrites: revert, squash and merge. None of them optimises z-vectors: each
re-solves from the z-vectors cached in the records (execute_memit with zs=, templates=),
so a rewrite costs a few solves, and a revert is exact (the later update sets are replayed
on the state before the reverted commit, bit for bit as a fresh replay would be).

Each holds the repository lock from its first read of HEAD to the ref move. Off a terminal,
each phase still running after 30 s says so on stderr, and when it is done
(editing.progress.phase), as a commit's do."""
from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import torch

from ..editing.apply import apply_updates
from ..editing.memit import execute_memit
from ..editing.memory import estimate as estimate_memory
from ..editing.progress import phase
from ..editing.requests import Request, fact_key
from ..editing.result import EditResult
from ..editing.settings import EditSettings
from ..editing.tokens import read_alike, read_once
from ..errors import MemstoreError, MergeConflictError, ValidationError
from . import author as authors
from . import history
from .commits import Commit, StoredSet, UpdateSet, load_requests, load_updates, load_zs, store_set
from .history import LiveFact, SetRef
from .merge_message import merge_message
from .provenance import Fact, Provenance, Write
from .provenance import fact as _fact
from .queries import measure
from .repository import Repository
from .retention import earlier_sample, recall, retention_metrics
from .running import Replays, earlier_keys_for
from .states import BASE, LoadedBase, state_commit, state_of, statistics_of_set


@dataclass
class Report:
    """What a writing operation did: the new commit (None when no commit was written, e.g.
    a fast-forward), metrics measured right after the edit, and operation-specific notes."""

    commit: Commit | None
    head: str | None  # where the branch (or detached HEAD) points now
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


# -- replays ----------------------------------------------------------------------------------


def _replay(repo: Repository, base: LoadedBase, requests: list[Request], zs: torch.Tensor,
            templates, settings: EditSettings, solved_as: UpdateSet,
            earlier: dict[int, torch.Tensor] | None) -> EditResult:
    """One solve from cached z-vectors on the model's current state (no z optimisation),
    with the statistics update set `solved_as` was solved with; refused, before it starts,
    before statistics missing here are computed, and before anything is written, where its
    memory estimate does not fit."""
    need = estimate_memory(base.model, base.adapter, settings, len(requests),
                           next(iter(earlier.values())).shape[0] if earlier else 0,
                           statistics_needed=any(repo.statistics_record(sid, l) is None
                                                 for l, sid in solved_as.stats.items()),
                           optimise=False)
    if not need.fits():
        raise MemstoreError(f"a solve of {len(requests)} facts from their cached z-vectors "
                            f"will not fit: {need.line()}; use a GPU with more memory or a "
                            "device map")
    stats_ = statistics_of_set(repo, solved_as)
    base.editing(settings.layers)
    return execute_memit(base.model, base.tokenizer, requests, settings, stats_,
                         adapter=base.adapter, zs=zs, templates=list(templates),
                         earlier=earlier)


def _carried(repo: Repository, base: LoadedBase, ref: SetRef) -> StoredSet:
    """An update set carried unchanged into a new commit, applied to `base`'s model."""
    updates = load_updates(repo.objects, ref.update_set)
    base.editing(tuple(updates))
    apply_updates(base.model, base.adapter, updates)
    return StoredSet(load_requests(repo.objects, ref.update_set), ref.update_set)


def _running(repo: Repository, basis: str | None, results: list[EditResult | StoredSet],
             requests: list[Request], settings: EditSettings,
             replays: Replays | None = None) -> dict[int, torch.Tensor] | None:
    """The earlier keys a replay of `requests` preserves: those live in `basis`'s state,
    advanced by the sets already replayed, less the facts `requests` write again
    (`replays`: what the earlier replays of this operation read, kept)."""
    if settings.history == "plain":
        return None
    if replays is not None:
        return replays.earlier_keys(results, requests) or None
    return earlier_keys_for(repo.store, basis, results, requests) or None


def _require_head(repo: Repository, what: str) -> str:
    head = repo.head().commit
    if head is None:
        raise ValidationError(f"nothing to {what}: the current branch has no commits yet")
    return head


# -- revert -----------------------------------------------------------------------------------


class _Taken:
    """The writes a revert of commit `c` takes out: those carried on from a write of `c`
    (its own, and the copies of them that merges, squashes and replays carried on since).
    For a merge: those carried on from a write of it or of a commit of its merged side (in
    the history of its other parents, not of its first), the writes it brought in, facts
    its first parent held too among them, less copies of a write made in its first parent's
    history (that side wrote it: the merged side carried it on). And the facts it puts back
    (`back`): for a merge, those its first parent held that it did not (a revert on its
    merged side took them out), as git's revert of a merge (mainline 1) gives back what the
    merge removed; none for another commit (a fact it superseded is live again without:
    the older write is still in the state, under its own)."""

    def __init__(self, g: dict, c: Commit) -> None:
        self.commits, self.before = {c.id}, set()
        self.merge = c.id if len(c.parents) > 1 else None
        self.first = c.parents[0] if c.parents else None
        if len(c.parents) > 1:
            self.before = history.ancestors(g, c.parents[0])
            self.commits |= history.ancestors_of(g, c.parents[1:]) - self.before

    def back(self, repo: Repository) -> list[LiveFact]:
        """The writes of its first parent's state that hold the facts it took out."""
        if self.merge is None or self.first is None:
            return []
        kept = {fact_key(f.request) for f in repo.facts_at(self.merge)}
        return [f for f in repo.facts_at(self.first) if fact_key(f.request) not in kept]

    def facts(self, repo: Repository, prov: Provenance) -> set[Fact]:
        """The facts its commits wrote: those of the writes it can take out."""
        return {f for x in self.commits for i, s in enumerate(repo.get_commit(x).update_sets)
                for f in prov.facts(SetRef(x, i, s))}

    def takes(self, line: list[Write]) -> bool:
        """Whether it takes out the write whose line (Provenance.line) is `line`."""
        commits = {x[0] for x in line}
        return not commits.isdisjoint(self.commits) and commits.isdisjoint(self.before)


def _reverted_by(c: Commit) -> list[str]:
    """The commits `c` took out: a revert's one, a squash's that the reverts it replaced
    took out (info `reverted`); none for any other commit."""
    if c.operation == "revert":
        return [c.info["reverted"]]
    return list(c.info.get("reverted", [])) if c.operation == "squash" else []


def _undone(prov: Provenance, g: dict, c: Commit) -> list[str]:
    """For a revert `c` of a merge that put facts back (info `restored`): the commits the
    reverts of that merge's merged side took out, which it undid; none for another."""
    merge = c.info.get("reverted") if "restored" in c.info else None
    if c.operation != "revert" or merge is None or not prov.holds(merge):
        return []
    side = _Taken(g, prov.repo.get_commit(merge)).commits
    return [t for x in side if prov.holds(x) for t in _reverted_by(prov.repo.get_commit(x))]


def _restored(prov: Provenance, w: Write) -> bool:
    """Whether write `w` is one a revert of a merge put back (info `restored`: the set's
    index), or a squash's copy of one (info `restored`: the positions of those writes)."""
    if not prov.holds(w[0]):  # a commit a squash replaced, gone since (gc, a clone)
        return False
    c = prov.repo.get_commit(w[0])
    if c.operation == "squash":
        return w[2] in c.info.get("restored", ())
    return c.operation == "revert" and c.info.get("restored") == w[1]


def _layers(repo: Repository, w: Write) -> list[int]:
    """The edited layers of the update set that made write `w`."""
    return repo.get_commit(w[0]).update_sets[w[1]].settings["layers"]


class _Owners:
    """Who else holds a fact a write of which a rewrite takes out: the writes of the same
    fact that merges in HEAD's history met it with (Provenance.fellows), less those a revert
    in that history (or one a squash there replaced) already took out. HEAD's history is
    walked on the checked graph `g` (its own where none is given): a commit of it the index
    does not hold (its commits row deleted; fsck names it) is refused (not_indexed), not
    taken for the end of the history, which hid the reverts and merges below it."""

    def __init__(self, repo: Repository, prov: Provenance, head: str,
                 merges: Collection[str] | None = None, g: dict | None = None) -> None:
        self.repo, self.prov = repo, prov
        self.g = history.checked_graph(repo.store) if g is None else g
        self.history = history.ancestors_of(self.g, [head], indexed=True)
        self.merges = sorted((m for m in (self.history if merges is None else merges)
                              if len(self.g[m][0]) > 1), key=lambda m: (self.g[m][1], m))
        self._above: dict[str, set[str]] = {}
        self._gone: list[tuple[str, _Taken]] | None = None

    def above(self, m: str) -> set[str]:
        if m not in self._above:
            self._above[m] = history.ancestors(self.g, m)
        return self._above[m]

    def fellows(self, w: Write, written: Fact) -> list[Write]:
        return self.prov.fellows(w, written, self.merges, self.above) if self.merges else [w]

    def takes(self, t: _Taken, w: Write) -> bool:
        return t.takes(self.prov.line(w))

    def gone(self, w: Write) -> bool:
        """Whether a revert in HEAD's history took `w` out (it would have dropped it): not
        one older than a revert of a merge that put `w` back (its line passes through the
        set of the facts that revert restored, or a squash's copy of one: _restored), which
        undid it."""
        if self._gone is None:
            pairs: list[tuple[str, str]] = []  # (the revert or squash, a commit it took out)
            for r in self.repo.db.query(
                    "select id from commits where operation in ('revert', 'squash')"):
                if r["id"] in self.history:
                    pairs += [(r["id"], x) for x in _reverted_by(self.repo.get_commit(r["id"]))]
            self._gone = [(r, _Taken(self.g, self.repo.get_commit(x)))
                          for r, x in dict.fromkeys(pairs) if self.prov.holds(x)]
        back = next((x[0] for x in self.prov.line(w) if _restored(self.prov, x)), None)
        return any(self.takes(t, w) for r, t in self._gone
                   if back is None or r not in self.above(back))


def revert(repo: Repository, rev: str, message: str | None = None) -> Report:
    """A new commit whose state is HEAD's without the facts `rev` introduced. The update
    sets solved after `rev` (with it in place) are replayed from their cached z-vectors on
    top of the state before it; the sets before it are kept as they are."""
    t0 = time.perf_counter()
    # the sets it replays are stored as they are solved: a refusal or an interrupt part
    # way takes them back
    with repo.lock(), repo.store.taken_back_on_failure():
        head = _require_head(repo, "revert")
        target = repo.resolve(rev)
        prov = Provenance(repo)
        # a fact both sides of a merge held, each by its own write, is both's: a write of
        # it that is `target`'s is written again from another holder's cached z-vector
        # (`again`), unless a revert took that one out too; with none left, it goes
        owners = _Owners(repo, prov, head)
        if target not in owners.history:
            raise ValidationError(f"commit {target[:12]} is not in the history of HEAD")
        c = repo.get_commit(target)
        if c.operation == "revert":
            raise MemstoreError(f"commit {target[:12]} is itself a revert; reverting a revert "
                                "is not supported (commit its facts again instead)")
        reverts = [r["id"] for r in repo.db.query(
            "select id from commits where operation = 'revert'")]
        earlier = next((x for x in reverts if repo.get_commit(x).info.get("reverted") == target
                        and x in owners.history), None)
        if earlier is not None:  # its facts may have been committed again since: keep those
            raise MemstoreError(f"commit {target[:12]} was already reverted by {earlier[:12]}")
        chain = repo.chain_sets(head)
        set_facts = [prov.facts(ref) for ref in chain]
        # the writes that are `target`'s own, in its sets or carried on by a merge, squash
        # or revert since; a write of the same fact by another commit stays. A merge's are
        # those it brought in from the merged side
        taken = _Taken(owners.g, c)
        removed = taken.facts(repo, prov)
        drop: dict[int, set[Fact]] = {}
        again: dict[int, dict[int, Write]] = {}
        hit = False
        for i, ref in enumerate(chain):
            for p, fact in enumerate(set_facts[i]):
                if fact not in removed:
                    continue
                w = (ref.commit, ref.index, p)
                fellows = owners.fellows(w, fact)
                mine = [owners.takes(taken, x) for x in fellows]
                if not any(m and not owners.gone(x) for x, m in zip(fellows, mine)):
                    continue  # no write of `target`'s holds it, or a revert took it out
                hit = True
                if not mine[0] and not owners.gone(w):
                    continue  # another's write, `target` being one more holder of the fact
                others = [x for x, m in zip(fellows[1:], mine[1:])
                          if not m and not owners.gone(x)]
                if not others:
                    drop.setdefault(i, set()).add(fact)
                    continue
                # its z-vector is replayed in this set: one written at the same layers
                layers = ref.update_set.settings["layers"]
                other = next((x for x in others if _layers(repo, x) == layers), None)
                if other is None:
                    by = others[0][0][:12]
                    raise MemstoreError(
                        f"the {Request(*fact).describe()} is written by {target[:12]} and "
                        f"by {by} too, at other edited layers ({list(layers)} and "
                        f"{list(_layers(repo, others[0]))}): {by}'s cached z-vector cannot "
                        f"take the place of {target[:12]}'s; revert {by} first, or commit "
                        "the fact again")
                again.setdefault(i, {})[p] = other
        # a write of a fact it takes out that a revert took out already, still in the state
        # (a squash onto its commit wrote the fact again, the revert among those it
        # replaced: info `reverted`), goes too: else the fact would be live again by it
        gone = {f for fs in drop.values() for f in fs}
        for i, ref in enumerate(chain):
            for p, fact in enumerate(set_facts[i]):
                if fact in gone and owners.gone((ref.commit, ref.index, p)):
                    drop.setdefault(i, set()).add(fact)
        # what it took out comes back where HEAD's state, less what this revert takes out,
        # holds nothing of that subject and prompt (a later write of it stays)
        left = {f[:2] for k, fs in enumerate(set_facts) for f in fs
                if f not in drop.get(k, set())}
        back = [f for f in taken.back(repo) if fact_key(f.request) not in left]
        if not hit and not back:
            raise MemstoreError(f"commit {target[:12]} has no facts in the current state "
                                "(already reverted, or rewritten since)")
        if drop or again:
            j = min(set(drop) | set(again))
            basis = repo.get_commit(chain[j].commit).basis
        else:  # only holders of facts that others hold too, written as they are: no solve
            j, basis = len(chain), head
        with phase("loading the state before the reverted commit"):
            base = state_of(repo, basis)
        loaded = {k: load_requests(repo.objects, chain[k].update_set)
                  for k in range(j, len(chain))}
        for k, requests in loaded.items():  # before any replay: each set is read by its rule
            _check_rule_recorded(base, chain[k].update_set,
                                 [r for p, r in enumerate(requests)
                                  if _fact(r) not in drop.get(k, set())
                                  and p not in again.get(k, {})],
                                 chain[k].commit)
            for p, x in again.get(k, {}).items():  # a z-vector from another set: its rule
                sets = {x[:2]: repo.get_commit(x[0]).update_sets[x[1]]}
                s = chain[k].update_set
                _check_token_rules(base, [LiveFact(requests[p], *x)], sets,
                                   list(s.templates), s.edit_settings.token_rule)
        results: list[StoredSet] = []
        sources: list[list] = []  # [set, position, commit, set, position] per write again
        for ref in chain[j - chain[j].index: j] if j < len(chain) else []:
            results.append(_carried(repo, base, ref))  # the owner's sets before j, unchanged
        replayed: list[str] = []
        replays = Replays(repo.store, basis)
        with phase(f"replaying the {len(chain) - j} update sets from their cached z-vectors"):
            for k in range(j, len(chain)):
                ref = chain[k]
                keep = [p for p, f in enumerate(set_facts[k]) if f not in drop.get(k, set())]
                if not keep:
                    continue
                s = ref.update_set
                requests = loaded[k]
                zs = load_zs(repo.objects, s)[keep]
                for n, p in enumerate(keep):
                    if p in again.get(k, {}):
                        x = again[k][p]
                        zs[n] = repo.zs_of([LiveFact(requests[p], *x)])[0]
                        sources.append([len(results), n, *x])
                settings = s.edit_settings
                kept = [requests[p] for p in keep]
                # stored as it is solved: the replay holds one set's tensors at a time
                results.append(store_set(repo.objects, _replay(
                    repo, base, kept, zs, s.templates, settings, s,
                    _running(repo, basis, results, kept, settings, replays))))
                if ref.commit not in replayed:
                    replayed.append(ref.commit)
        if back:  # solved last, from the cached z-vectors of the writes that held them
            with phase(f"solving the {len(back)} facts it took out from their cached "
                       "z-vectors"):
                sources += [[len(results), n, f.commit, f.set_index, f.position]
                            for n, f in enumerate(back)]
                results.append(store_set(repo.objects, _solve_from_cache(
                    repo, base, back, basis, results, replays)))
        live = [r for res in results for r in res.requests]
        # the facts that left HEAD's state: not one a later commit wrote again (its write
        # stays), nor one another holder keeps
        at_head = {f[:2]: f for fs in set_facts for f in fs}  # the newest write of each
        after = {f[:2]: f for k, fs in enumerate(set_facts) for f in fs
                 if f not in drop.get(k, set())}
        out = set(at_head.values()) - set(after.values())
        with phase(f"measuring the {len(live)} live and {len(out)} reverted facts"):
            metrics = measure(base, live) if live else {}
            if out:  # as written (target_true too): ES says whether each is still preferred
                written = {_fact(r): r for k in drop for r in loaded[k]}
                metrics["reverted"] = measure(base, [written.get(f, Request(*f))
                                                     for f in sorted(out)])
        if message is None:
            message = f'Revert "{c.summary}"\n\nThis reverts commit {target}.'
            if replayed:
                message += ("\nThe commits after it were replayed from their cached z-vectors "
                            "(no z optimisation): " + ", ".join(r[:12] for r in replayed) + ".")
        new = repo.write_commit(results, parents=[head], basis=basis, message=message,
                                metrics=metrics, operation="revert",
                                info={"reverted": target, "replayed": replayed}
                                | ({"sources": sources} if sources else {})
                                | ({"restored": len(results) - 1} if back else {}))
    return Report(new, new.id, metrics, {"reverted": target, "replayed": replayed,
                                         "n_removed": len(out), "n_restored": len(back)},
                  time.perf_counter() - t0)


# -- squash and merge: one solve for many facts from their cached z-vectors --------------------


def _check_token_rules(base: LoadedBase, facts: list[LiveFact], sets: dict,
                       templates: list[str], rule: int) -> None:
    """Refuses, naming the first, a fact whose cached z-vector was optimised at a token that
    a solve by token rule `rule` would not read: its set records another rule, or none
    (memstore before the rule was recorded: _check_rule_recorded) while the two rules read
    it apart. Facts read alike pass."""
    for f in facts:
        s = sets[(f.commit, f.set_index)]
        recorded, r = s.settings.get("token_rule"), f.request
        if recorded == rule or read_alike(base.tokenizer, templates, r.prompt, r.subject):
            continue
        how = ("was written by a memstore that recorded no token rule (which rule read it "
               "cannot be told)" if recorded is None else f"was read by token rule {recorded}")
        raise MemstoreError(
            f"the {r.describe()} (commit {f.commit[:12]}) {how}; it cannot be solved "
            f"with facts read by token rule {rule}: revert {f.commit[:12]} and commit its "
            "facts again")


def _check_rule_recorded(base: LoadedBase, s: UpdateSet, requests: list[Request],
                         commit: str) -> None:
    """Refuses, naming the first, a fact of a set that records no token rule whose subject
    rules 1 and 2 read at different tokens: memstore before 415216c (5 Dec 2026) wrote such
    sets by rule 1, memstore from then until token_rule was recorded (c24c1f6 among them) by
    rule 2, and nothing in the record tells which; a replay by either rule may read its keys
    where its z-vector was not optimised."""
    if "token_rule" in s.settings:
        return
    for r in requests:
        if not read_alike(base.tokenizer, list(s.templates), r.prompt, r.subject):
            raise MemstoreError(
                f"the {r.describe()} (commit {commit[:12]}) was written by a memstore that "
                "recorded no token rule, and rules 1 and 2 read its subject at different "
                "tokens: which it was read by cannot be told, so it cannot be replayed; "
                f"revert {commit[:12]} and commit its facts again")


@read_once()  # its checks read the prompts the solve reads
def _solve_from_cache(repo: Repository, base: LoadedBase, facts: list[LiveFact],
                      basis: str | None, results: list[EditResult | StoredSet] | None = None,
                      replays: Replays | None = None) -> EditResult:
    """One solve for `facts` on the model's current state (`basis`'s, advanced by the sets
    `results` replayed on it: _running), from their cached z-vectors, with the settings,
    templates and statistics of the newest fact's set."""
    sets = {(f.commit, f.set_index): repo.get_commit(f.commit).update_sets[f.set_index]
            for f in facts}
    layers = {tuple(s.settings["layers"]) for s in sets.values()}
    if len(layers) > 1:
        raise MemstoreError("these facts were written with different edited layers "
                            f"({' and '.join(str(list(l)) for l in sorted(layers))}); their "
                            "cached z-vectors cannot be solved together")
    newest = sets[(facts[-1].commit, facts[-1].set_index)]
    # read by the rule of the newest set whose reading it decided (only those record one:
    # commits.recorded_settings), by any rule where none did
    recorded = [s.settings["token_rule"] for s in sets.values() if "token_rule" in s.settings]
    settings = newest.edit_settings.with_changes(
        token_rule=recorded[-1] if recorded else EditSettings.token_rule)
    requests = [f.request for f in facts]
    _check_token_rules(base, facts, sets, newest.templates, settings.token_rule)
    return _replay(repo, base, requests, repo.zs_of(facts), newest.templates, settings,
                   newest, _running(repo, basis, results or [], requests, settings, replays))


def _pairs(facts: list[LiveFact]) -> set[Fact]:
    return {_fact(f.request) for f in facts}


def squash(repo: Repository, rev: str, message: str | None = None) -> Report:
    """Replaces the commits after `rev` on the branch by one commit: one solve, on `rev`'s
    state, for the facts written since `rev` that are live at HEAD, from their cached
    z-vectors. Measures the efficacy of those facts before (at HEAD) and after. `rev`
    'base' (where nothing else has that name) squashes the whole history into one commit
    with no parent."""
    t0 = time.perf_counter()
    with repo.lock():
        head = _require_head(repo, "squash")
        onto = state_commit(repo, rev)
        if onto == head:
            raise ValidationError(f"nothing to squash: {rev} is HEAD")
        g = history.checked_graph(repo.store)  # a commit it lacks refused (_Owners)
        if onto is not BASE and onto not in history.ancestors_of(g, [head], indexed=True):
            raise ValidationError(f"commit {onto[:12]} is not in the history of HEAD")
        repo.held_by_no_ref(head)  # damaged rows of what it leaves refuse it now, not after
        at_onto = repo.facts_at(onto) if onto is not BASE else []
        at_head = repo.facts_at(head)
        head_keys = {fact_key(f.request) for f in at_head}
        gone = [f for f in at_onto if fact_key(f.request) not in head_keys]
        if gone:
            r = gone[0].request
            raise MemstoreError(f"{len(gone)} fact(s) live at {onto[:12]} were reverted after it "
                                f"(e.g. {r.subject!r} / {r.prompt!r}); squash onto an earlier "
                                "revision")
        # the facts written since `rev`: a fact live at `rev` too, but written again since
        # (with its target of then), is solved again, so that it stays the later commit's
        # write, which a revert of the earlier one leaves (as it would without the squash)
        kept, prov = _pairs(at_onto), Provenance(repo)
        onto_writes = {(f.commit, f.set_index, f.position) for f in at_onto}
        # (not one held at HEAD by a write `rev`'s state holds too, though not as its live
        # one: written before, live again since a revert after `rev` took the later out)
        at_rev = {(r.commit, r.index, p) for r in repo.chain_sets(onto)
                  for p in range(r.update_set.n)} if onto is not BASE else set()
        older = history.ancestors(g, onto) if onto is not BASE else set()
        squashed = [c.id for c in repo.log(head) if c.id not in older]
        # so is a fact live at `rev` that a merge squashed met with another write of it (the
        # other side's, the fact being both's), solved from that write's z-vector, so that
        # a revert of the commit that wrote it before `rev` leaves it
        owners = _Owners(repo, prov, head, merges=squashed, g=g)
        added = []
        for f in at_head:
            w, written = (f.commit, f.set_index, f.position), _fact(f.request)
            if written not in kept or at_rev.isdisjoint(prov.line(w)):
                added.append(f)
                continue
            other = next((x for x in owners.fellows(w, written)[1:]
                          if onto_writes.isdisjoint(prov.line(x))
                          and not owners.gone(x)
                          and _layers(repo, x) == _layers(repo, w)),
                         None)  # else not solvable with the others, as before
            if other is not None:
                added.append(LiveFact(f.request, *other))
        # what the reverts squashed took out of commits before `rev`: gone, after gc, with
        # them, and no write may tell (a revert of a fact another holder keeps writes none);
        # not what a revert of a merge squashed put back (the reverts of its merged side)
        undone = {t for c in squashed for t in _undone(prov, owners.g, repo.get_commit(c))}
        reverted = [t for c in map(repo.get_commit, squashed) for t in _reverted_by(c)
                    if t not in squashed and t not in undone]
        with phase("loading the state at HEAD"):
            base = state_of(repo, head)
        requests = [f.request for f in added]
        with phase(f"measuring the {len(added)} facts at HEAD"):
            before = measure(base, requests) if added else {}
        with phase("loading the state squashed onto"):
            state_of(repo, onto)
        with phase(f"solving the {len(added)} facts from their cached z-vectors"):
            results = [_solve_from_cache(repo, base, added, onto)] if added else []
        with phase(f"measuring the {len(added)} facts after the solve"):
            metrics = measure(base, requests) if added else {}
        metrics["before"] = before
        if message is None:
            lines = [f"* {repo.get_commit(c).summary}"
                     for c in reversed(squashed) if repo.get_commit(c).summary]
            after = onto[:12] if onto is not BASE else "the base model"
            n_commits, n_facts = len(squashed), len(added)  # 'Squash 1 commit (1 fact)'
            message = (f"Squash {n_commits} commit{'s' * (n_commits != 1)} after {after} "
                       f"({n_facts} fact{'s' * (n_facts != 1)})\n\n" + "\n".join(lines))
        sources = prov.squash_sources(added, set(squashed))
        # the writes carried from one a revert of a merge put back: gc may drop that revert
        restored = [n for n, f in enumerate(added) if any(
            _restored(prov, x) for x in prov.line((f.commit, f.set_index, f.position)))]
        new = repo.write_commit(results, parents=[onto] if onto is not BASE else [],
                                basis=onto, message=message,
                                metrics=metrics, operation="squash",
                                info={"squashed": squashed, "sources": sources}
                                | ({"reverted": reverted} if reverted else {})
                                | ({"restored": restored} if restored else {}),
                                expected=head, **_first_authorship(repo, squashed))
        # what the branch left that no branch or tag holds (reset's and rebase's warning)
        kept = repo.reached(new.id)
        left = [c for c in repo.held_by_no_ref(head) if c not in kept]
    return Report(new, new.id, metrics, {"squashed": squashed, "before": before,
                                         "n_facts": len(added), "left": left},
                  time.perf_counter() - t0)


def _first_authorship(repo: Repository, squashed: list[str]) -> dict[str, Any]:
    """Who a squash records as its author, and when they wrote it: the oldest squashed
    commit's (git's `rebase -i` squash keeps the first commit's author and author date,
    the one who squashes its committer); unknown, with its date, where that commit was
    made before authors were recorded (author.kept)."""
    if not squashed:
        return {}
    return authors.kept(repo.get_commit(squashed[-1]))


def _describe(f: LiveFact | None) -> str:
    return repr(f.request.target_new) if f is not None else "reverted"


def merge(repo: Repository, rev: str, message: str | None = None, *,
          shown: str | None = None, ff: str = "allow", action: str | None = None) -> Report:
    """Fact-level three-way merge of `rev` into HEAD against their merge base. The same
    (subject, prompt) with different targets on the two sides is a conflict: nothing is
    written. Otherwise a fast-forward when possible, else a merge commit (parents HEAD and
    `rev`) whose update is one solve, on the merge base's state, for the facts the two
    sides added since it, from their cached z-vectors. `shown`: how messages name `rev`
    (pull's `origin/main` for `refs/remotes/origin/main`). `ff` as git's: "allow" (the
    above), "only" (--ff-only: a merge that is no fast-forward is refused, nothing
    written), "never" (--no-ff: where a fast-forward would do, a merge commit with no update
    set, whose state is `rev`'s: its basis, as a merge builds on the side that holds every
    merged fact; nothing is solved). `action`: what the reflog entry names the command
    (git's "merge topic: Fast-forward", pull's "pull: Fast-forward")."""
    t0 = time.perf_counter()
    shown = rev if shown is None else shown
    action = f"merge {shown}" if action is None else action
    with repo.lock(), repo.refs.reason(f"{action}: Merge made by the fact-level merge"):
        ours = repo.head().commit
        theirs = repo.resolve(rev)
        if ours == theirs:
            return Report(None, ours, notes={"kind": "up-to-date"})
        repo.check_held(theirs, shown, "merge")  # a fast-forward would move HEAD onto it
        if ours is None and ff == "never":  # git's: no merge commit into an empty head
            raise ValidationError(f"--no-ff: the current branch has no commits yet, so no "
                                  f"merge commit can have it as a parent (without --no-ff, "
                                  f"the merge starts it at {shown})")
        if ours is None or (repo.is_ancestor(ours, theirs) and ff != "never"):
            repo.update_ref("HEAD", theirs, expected=ours, reason=f"{action}: Fast-forward")
            return Report(None, theirs, notes={"kind": "fast-forward"})
        if repo.is_ancestor(theirs, ours):
            return Report(None, ours, notes={"kind": "up-to-date"})
        if ff == "only":
            raise MemstoreError(f"not possible to fast-forward to {shown}: HEAD and {shown} "
                                "have each commits the other lacks; nothing was merged "
                                "(without --ff-only, a merge commit joins them)")
        if repo.is_ancestor(ours, theirs):  # --no-ff: `rev`'s state is the result
            if message is None:
                message = merge_message(repo.refs, shown)
            new = repo.write_commit([], parents=[ours, theirs], basis=theirs,
                                    message=message, metrics={}, operation="merge",
                                    info={"merge_base": ours, "solved": 0})
            return Report(new, new.id, {}, {"kind": "merge", "merge_base": ours, "solved": 0},
                          time.perf_counter() - t0)
        mb = repo.merge_base(ours, theirs)  # the state a solve on the merge base builds on
        f_base = {fact_key(f.request): f for f in (repo.facts_at(mb) if mb else [])}
        # what each side is compared with: mb's facts, or after criss-cross merges those of
        # the merge bases merged with each other (the newest alone would let clocks decide)
        b_targets = history.merge_base_targets(repo.store, ours, theirs)
        f_ours = {fact_key(f.request): f for f in repo.facts_at(ours)}
        f_theirs = {fact_key(f.request): f for f in repo.facts_at(theirs)}

        picked, clashing = history.three_way(
            {k: f.request.target_new for k, f in f_ours.items()},
            {k: f.request.target_new for k, f in f_theirs.items()}, b_targets)
        # each merged fact is the write of the side whose target it took (ours on a tie)
        merged = [f_ours[k] if k in f_ours and f_ours[k].request.target_new == t else f_theirs[k]
                  for k, t in picked.items()]
        conflicts = [f"CONFLICT {k[0]!r} / {k[1]!r}: {_describe(f_ours.get(k))} here, "
                     f"{_describe(f_theirs.get(k))} on {shown}" for k in clashing]
        if conflicts:
            raise MergeConflictError(f"merge of {shown} refused: {len(conflicts)} conflicting "
                                     "fact(s); nothing was written (to settle one, make the "
                                     "sides agree: revert the commit that wrote it here, or "
                                     "write this side's target on the other, then merge "
                                     "again)", conflicts)
        merged_pairs, merged_keys = _pairs(merged), {fact_key(f.request) for f in merged}
        if merged_pairs == _pairs(list(f_ours.values())):
            basis, solve = ours, []  # their side brings nothing new: our state is the result
        elif set(f_base) <= merged_keys:
            # the usual case: one solve, on the merge base, for what both sides added
            basis = mb
            solve = [f for f in merged if f_base.get(fact_key(f.request)) is None
                     or _fact(f_base[fact_key(f.request)].request) != _fact(f.request)]
        elif set(f_ours) <= merged_keys or set(f_theirs) <= merged_keys:
            # facts of the merge base reverted on one side: their weights are in the merge
            # base's state, so the merge builds on the side whose live facts it all keeps
            # (a changed target is written over, as a superseding commit does)
            side = f_ours if set(f_ours) <= merged_keys else f_theirs
            basis = ours if side is f_ours else theirs
            solve = [f for f in merged if _fact(f.request) not in _pairs(list(side.values()))]
        else:
            reverted_here = sorted(k[0] for k in set(f_theirs) - merged_keys)
            reverted_there = sorted(k[0] for k in set(f_ours) - merged_keys)
            raise MemstoreError(
                f"merge of {shown} refused: each side reverted facts of the merge base that the "
                f"other keeps (here {', '.join(map(repr, reverted_here[:3]))}; on {shown} "
                f"{', '.join(map(repr, reverted_there[:3]))}), so no state of either side can "
                f"carry the merge; revert here what {shown} reverted, then merge again")
        with phase("loading the state the merge builds on"):
            base = state_of(repo, basis)
        # the facts carried by the basis's state, not solved again: what the solve can lose
        earlier, n_live = earlier_sample(merged, [f.request for f in solve])
        with phase(f"checking {len(earlier)} earlier facts before the solve"):
            before = recall(base.model, base.tokenizer, earlier) if solve and earlier else None
        with phase(f"solving the {len(solve)} facts from their cached z-vectors"):
            results = [_solve_from_cache(repo, base, solve, basis)] if solve else []
        with phase(f"measuring the {len(solve)} facts after the solve"):
            metrics = measure(base, [f.request for f in solve]) if solve else {}
            if before is not None:
                metrics["earlier"] = retention_metrics(
                    before, recall(base.model, base.tokenizer, earlier), n_live)
        if message is None:
            message = merge_message(repo.refs, shown)
        new = repo.write_commit(results, parents=[ours, theirs], basis=basis, message=message,
                                metrics=metrics, operation="merge",
                                info={"merge_base": mb, "solved": len(solve)})
    return Report(new, new.id, metrics, {"kind": "merge", "merge_base": mb,
                                         "solved": len(solve)}, time.perf_counter() - t0)


# -- cherry-pick: another branch's commit, solved again on HEAD -------------------------------

# the operations whose commits a pick (and a rebase) writes again: a commit of facts, or a
# commit that wrote another's facts again on a new parent; not a merge, revert or squash,
# whose writes are copies of others' and whose change is no list of facts to write
PICKABLE = ("commit", "cherry-pick", "rebase")


def pick_facts(repo: Repository, c: Commit, here: dict[tuple[str, str], LiveFact], *,
               taken_out: bool = False) -> tuple[list[LiveFact], list[str]]:
    """What a pick of commit `c` writes on a state whose live facts are `here` (by
    fact_key): `c`'s facts that state does not hold already, in their order (as `c`'s
    writes, whose cached z-vectors are solved), and a CONFLICT line for each fact `c`
    superseded where that state holds another target than the one `c` replaced (a fact it
    wrote where the state holds another target is one too). `taken_out` (a rebase): the
    state is UPSTREAM's plus the picks before, so a fact `c`'s parent held that it does
    not hold is one UPSTREAM took out (a cherry-pick's state may never have held it): `c`
    retargeting it is a conflict too (git's modify/delete, merge's 'reverted here'), and
    `c` writing it again at its parent's target leaves it out (no change: merge keeps the
    revert). Facts alone: no weights read."""
    before = {fact_key(f.request): f.request.target_new
              for f in (repo.facts_at(c.parents[0]) if c.parents else [])}
    facts, conflicts = [], []
    for i in range(len(c.update_sets)):
        for p, r in enumerate(repo.requests_of(c.id, i)):
            k = fact_key(r)
            if k in here and here[k].request.target_new == r.target_new:
                continue  # held already
            if k in here and here[k].request.target_new != before.get(k):
                conflicts.append(f"CONFLICT {k[0]!r} / {k[1]!r}: "
                                 f"{here[k].request.target_new!r} here, "
                                 f"{r.target_new!r} in {c.id[:12]}")
                continue
            if taken_out and k not in here and k in before:
                if before[k] != r.target_new:
                    conflicts.append(f"CONFLICT {k[0]!r} / {k[1]!r}: reverted here, "
                                     f"{r.target_new!r} in {c.id[:12]}")
                continue  # written again at its parent's target: no change, it stays out
            facts.append(LiveFact(r, c.id, i, p))
    return facts, conflicts


def solve_pick(repo: Repository, base: LoadedBase, facts: list[LiveFact],
               here: dict[tuple[str, str], LiveFact], onto: str
               ) -> tuple[EditResult, dict[str, Any]]:
    """One solve of `facts` (pick_facts') on `base`, in the state of `onto` whose live facts
    are `here`, from their cached z-vectors, and the metrics measured right after it (with
    how many of the earlier facts the model recalled before and after). The model is left
    in the state the solve made: `onto`'s plus the new set."""
    requests = [f.request for f in facts]
    earlier, n_live = earlier_sample(list(here.values()), requests)
    with phase(f"checking {len(earlier)} earlier facts before the solve"):
        recalled = recall(base.model, base.tokenizer, earlier) if earlier else None
    with phase(f"solving the {len(facts)} facts from their cached z-vectors"):
        result = _solve_from_cache(repo, base, facts, onto)
    with phase(f"measuring the {len(facts)} facts after the solve"):
        metrics = measure(base, requests)
        if recalled is not None:
            metrics["earlier"] = retention_metrics(
                recalled, recall(base.model, base.tokenizer, earlier), n_live)
    return result, metrics


def cherry_pick(repo: Repository, rev: str, message: str | None = None) -> Report:
    """A new commit on HEAD holding the facts commit `rev` wrote (a commit not in HEAD's
    history, on another branch say): one solve, on HEAD's state, from their cached
    z-vectors, as a merge solves what it brings in. A fact HEAD holds already is left out;
    one `rev` superseded is written over where HEAD holds the target `rev` replaced (as
    `rev` did), and is a conflict where HEAD holds yet another (nothing is written). The
    writes are the new commit's own: a revert of it takes them out."""
    t0 = time.perf_counter()
    with repo.lock():
        head = _require_head(repo, "cherry-pick onto")
        picked = repo.resolve(rev)
        c = repo.get_commit(picked)
        if c.operation not in PICKABLE:
            raise MemstoreError(f"commit {picked[:12]} is a {c.operation}; only a commit of "
                                "facts can be cherry-picked (merge its branch, or pick the "
                                "commits it holds)")
        if repo.is_ancestor(picked, head):
            raise MemstoreError(f"commit {picked[:12]} is in the history of HEAD already")
        here = {fact_key(f.request): f for f in repo.facts_at(head)}
        facts, conflicts = pick_facts(repo, c, here)
        if conflicts:
            raise MergeConflictError(f"cherry-pick of {picked[:12]} refused: "
                                     f"{len(conflicts)} conflicting fact(s); nothing was "
                                     "written (to settle one, revert the commit that wrote it "
                                     "here, or write its target here, then pick again)",
                                     conflicts)
        if not facts:
            raise MemstoreError(f"nothing to cherry-pick: HEAD holds every fact of "
                                f"{picked[:12]} already")
        with phase("loading the state at HEAD"):
            base = state_of(repo, head)
        result, metrics = solve_pick(repo, base, facts, here, head)
        if message is None:
            message = f"{c.message.rstrip()}\n\n(cherry picked from commit {picked})"
        new = repo.write_commit([result], parents=[head], basis=head, message=message,
                                metrics=metrics, operation="cherry-pick",
                                info={"picked": picked, "solved": len(facts)},
                                **authors.kept(c))  # git's: the picker is the committer
    return Report(new, new.id, metrics, {"picked": picked, "solved": len(facts)},
                  time.perf_counter() - t0)
