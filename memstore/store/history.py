"""Walking history: update chains, live facts, log, merge bases.

Two graphs meet here. The ancestry graph (parents) is what `log` and `merge_base` walk, as
in git. The state graph (basis) says how weights are built: a commit's state is its basis'
state plus its update sets, so following `basis` back to the root and reading the sets
forward gives the chain that `build_state` applies."""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..editing.requests import Request, fact_key
from ..editing.result import LayerUpdate
from ..errors import MemstoreError
from .commits import UpdateSet, load_requests, load_updates, load_zs
from .schema import DamagedIndexError, not_indexed, parents_loop, parents_of, time_of

if TYPE_CHECKING:
    import torch
    from sqlite_utils import Database

    from .storage import Storage


@dataclass(frozen=True)
class SetRef:
    """An update set in a chain: set number `index` of commit `commit`."""

    commit: str
    index: int
    update_set: UpdateSet


@dataclass(frozen=True)
class LiveFact:
    """A fact live in some state, and where it was written: request number `position` of
    set `set_index` of `commit`, whose z-vector is row `position` of that set's zs."""

    request: Request
    commit: str
    set_index: int
    position: int


def chain_sets(store: Storage, commit_id: str) -> list[SetRef]:
    """The update sets whose application to the base weights gives `commit_id`'s state,
    root first. The order is fixed by the records, so every rebuild applies the same sets
    in the same order."""
    stack, seen, cur = [], set(), commit_id
    while cur is not None:
        if cur in seen:
            raise MemstoreError(f"commit {cur[:12]}: its basis chain loops; run `memstore fsck`")
        seen.add(cur)
        commit = store.commit(cur)
        stack.append(commit)
        cur = commit.basis
    return [SetRef(c.id, i, s) for c in reversed(stack) for i, s in enumerate(c.update_sets)]


def update_chain(store: Storage, commit_id: str) -> list[dict[int, LayerUpdate]]:
    return list(chain_updates(store, chain_sets(store, commit_id)))


def chain_updates(store: Storage, chain: Iterable[SetRef]) -> Iterator[dict[int, LayerUpdate]]:
    """The ΔWs of each set of `chain`, read when the next one is asked for: building a state
    from them holds one set's tensors at a time, not the whole history's."""
    for ref in chain:
        yield load_updates(store.objects, ref.update_set)


def chain_layers(chain: Iterable[SetRef]) -> set[int]:
    """The layers the sets of `chain` write, from their records (no tensor read)."""
    return {l for ref in chain for l in ref.update_set.layers}


def chain_keys(store: Storage, commit_id: str) -> dict[int, torch.Tensor]:
    """Per layer, the keys K (stacked, n_total × d_in) of every update set in the chain."""
    import torch

    keys: dict[int, list[torch.Tensor]] = {}
    for updates in update_chain(store, commit_id):
        for layer, update in updates.items():
            keys.setdefault(layer, []).append(update.keys)
    return {l: torch.cat(ks) for l, ks in sorted(keys.items())}


def facts_at(store: Storage, commit_id: str) -> list[LiveFact]:
    """The facts live in `commit_id`'s state, in the order they were written. A later
    request for the same (subject, prompt) replaces the earlier one: both ΔWs are in the
    weights, but the later one is what the model was last told."""
    live: dict[tuple[str, str], LiveFact] = {}
    for ref in chain_sets(store, commit_id):
        for i, request in enumerate(load_requests(store.objects, ref.update_set)):
            key = fact_key(request)
            live.pop(key, None)
            live[key] = LiveFact(request, ref.commit, ref.index, i)
    return list(live.values())


def zs_of(store: Storage, facts: list[LiveFact]) -> torch.Tensor:
    """The cached z-vectors of `facts`, stacked in their order (for a replay)."""
    import torch

    cache: dict[tuple[str, int], torch.Tensor] = {}
    rows = []
    for f in facts:
        where = (f.commit, f.set_index)
        if where not in cache:
            cache[where] = load_zs(store.objects, store.commit(f.commit).update_sets[f.set_index])
        rows.append(cache[where][f.position])
    if not rows:
        raise MemstoreError("no facts given, so no z-vectors")
    return torch.stack(rows)


# -- the ancestry graph ------------------------------------------------------------------


def graph(db: Database) -> dict[str, tuple[tuple[str, ...], float]]:
    """Every indexed commit: id → (parents, time), as the index's rows say (what `log` walks,
    reading the records of what it lists; writers, and the counts of ahead/behind, of
    `status`'s commits and of what a moved ref leaves, decide on `checked_graph`)."""
    return {r["id"]: (parents_of(r), time_of(r))
            for r in db.query("select id, parents, time from commits")}


class _Checked(dict):
    """The rows' graph, each commit's entry compared with its record (the hash-checked
    object) the first time a walk reads it: a row whose parents or time disagree is damage
    (fsck names it), not the history to decide on."""

    def __init__(self, store: Storage, rows: dict[str, tuple[tuple[str, ...], float]],
                 unreadable: bool = False) -> None:
        super().__init__(rows)
        self._store = store
        self._checked: set[str] = set()
        self._unreadable = unreadable

    def __getitem__(self, commit: str) -> tuple[tuple[str, ...], float]:
        entry = super().__getitem__(commit)
        if commit not in self._checked:
            try:
                # a counting walk compares each row with its record's parents and time
                # alone, read off its hash-checked JSON (the rest unparsed: 300 commits
                # 38 -> 15 ms); a writer's parses each record whole, a malformed one refused
                if self._unreadable:
                    record = self._store.ancestry_link(commit)
                else:
                    whole = self._store.commit(commit)
                    record = whole.parents, whole.time
            except MemstoreError:
                if not self._unreadable:
                    raise
                record = None  # nothing to compare its row with: fsck names the record
            if record is not None and entry != record:
                raise DamagedIndexError(f"commit {commit[:12]}: index row disagrees with the "
                                        "record (parents or time); run `memstore fsck "
                                        "--repair`")
            self._checked.add(commit)
        return entry


def checked_graph(store: Storage, *, unreadable: bool = False
                  ) -> dict[str, tuple[tuple[str, ...], float]]:
    """The ancestry graph for a command that writes from it (reset, merge, revert, squash,
    cherry-pick, branch -d, push) or counts on it (ahead/behind, what a moved ref leaves):
    the rows' (one query), each commit that a walk reaches checked against its record, read
    once (a merge's walk over both histories reads every record of them, as gc's does): a
    row a damage left naming other parents would make a merge fast-forward over commits it
    then drops, or pick another merge base. `unreadable`: a commit whose record cannot be
    read (corrupt or missing) is walked on its row instead of refused, for what moving off
    such a commit leaves (reset's warning names it; fsck names the record)."""
    return _Checked(store, graph(store.db), unreadable)


def excluded(store: Storage, rows: dict[str, tuple[tuple[str, ...], float]],
             starts: Iterable[str]) -> dict[str, tuple[tuple[str, ...], float]]:
    """The graph `rows` without the commits of `starts` and their ancestors, and without
    the parents that name them (what `log A..B` walks from B: git's range, the commits B
    reaches that A does not). A's ancestry is walked on the checked graph, each record read
    and compared with its row: a damaged row must not hide commits from the range, nor bring
    others in; the commits the range then lists are checked as they are read (`log`). A
    start the index does not hold (a damaged ref) is refused, as log's own start is: it
    would exclude nothing; so is a commit of A's ancestry with no row (its row deleted):
    what lies below it would not be excluded."""
    for c in starts:
        if c not in rows:
            raise not_indexed(c)
    hidden = ancestors_of(_Checked(store, rows), starts, indexed=True)
    return {c: (tuple(p for p in parents if p not in hidden), t)
            for c, (parents, t) in rows.items() if c not in hidden}


def symmetric(store: Storage, rows: dict[str, tuple[tuple[str, ...], float]], left: str,
              right: str) -> tuple[dict[str, tuple[tuple[str, ...], float]], set[str]]:
    """git's symmetric difference `log A...B` (`A B --not $(merge-base --all A B)`): the
    graph `rows` without the commits both `left` and `right` reach, nor the parents that
    name them, and those of it `left` reaches (git's left side, `<`; the rest is the right
    side, `>`). Both histories are walked on the checked graph, each record read and
    compared with its row, as `excluded`'s: a damaged row must not move a commit from one
    side to the other or into the common part. Histories with no common commit (no merge
    base) keep all of both, as git's."""
    for c in (left, right):
        if c not in rows:
            raise not_indexed(c)
    g = _Checked(store, rows)
    ours, theirs = (ancestors_of(g, [left], indexed=True),
                    ancestors_of(g, [right], indexed=True))
    common = ours & theirs
    return ({c: (tuple(p for p in parents if p not in common), t)
             for c, (parents, t) in rows.items() if c not in common}, ours - common)


def ancestors(g: dict[str, tuple[tuple[str, ...], float]], start: str) -> set[str]:
    """`start` and all its ancestors."""
    return ancestors_of(g, [start])


def ancestors_of(g: dict[str, tuple[tuple[str, ...], float]], starts: Iterable[str], *,
                 indexed: bool = False, gone: Callable[[str], bool] | None = None) -> set[str]:
    """The commits of `starts` and all their ancestors, in one walk: each commit is visited
    once however many starts reach it (many refs over a long history cost the history's
    length, not their product). `indexed`: a commit `g` does not hold (a parent whose
    commits row is gone; fsck names it) is refused, not taken for the end of the history,
    unless `gone` says it is (its record unreadable too: `fsck --repair` dropped it)."""
    seen, stack = set(), list(starts)
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        if c not in g:
            if indexed and not (gone is not None and gone(c)):
                raise not_indexed(c)
            continue
        seen.add(c)
        stack.extend(g[c][0])
    return seen


def log_ids(db: Database, start: str | Sequence[str], first_parent: bool = False,
            limit: int | None = None,
            g: dict[str, tuple[tuple[str, ...], float]] | None = None,
            gone: Callable[[str], bool] | None = None) -> list[str]:
    """Newest first. Full ancestry comes out in topological order (a commit before its
    parents), newest time first among those that are ready; ties broken by id. `g`: the
    graph to walk (the rows', read here, by default). `start` may be several commits (the
    two tips of `log A...B`), walked together as git walks several tips: one order over
    both histories, each commit once. A commit walked to that `g` does not hold (a parent
    whose commits row is gone; fsck names it) is refused, not taken for a root: log listed
    2 commits of 3, exit 0, with C1's row deleted."""
    g = graph(db) if g is None else g
    starts = [start] if isinstance(start, str) else list(dict.fromkeys(start))
    for c in starts:
        if c not in g:
            raise not_indexed(c)
    if first_parent and len(starts) > 1:
        raise ValueError("a first-parent walk has one start")
    out: list[str] = []
    if first_parent:
        cur: str | None = starts[0]
        while cur is not None and (limit is None or len(out) < limit):
            if cur not in g:
                raise not_indexed(cur)
            if cur in out:
                raise parents_loop(cur)
            out.append(cur)
            cur = g[cur][0][0] if g[cur][0] else None
        return out
    reach = ancestors_of(g, starts, indexed=True, gone=gone)
    children = {c: 0 for c in reach}
    for c in reach:
        for p in set(g[c][0]):
            if p in children:
                children[p] += 1
    # a start another start reaches is listed after its children, as any other commit; a
    # start on a loop of the rows is listed first, and the loop found when it comes back
    ready = ([(-g[c][1], c) for c in starts if children[c] == 0]
             or [(-g[c][1], c) for c in starts])
    heapq.heapify(ready)
    listed: set[str] = set()
    while ready and (limit is None or len(out) < limit):
        _, c = heapq.heappop(ready)
        if c in listed:
            raise parents_loop(c)
        listed.add(c)
        out.append(c)
        for p in set(g[c][0]):
            if p in children:
                children[p] -= 1
                if children[p] == 0:
                    heapq.heappush(ready, (-g[p][1], p))
    if limit is None and len(out) < len(reach):  # commits on a loop are never ready
        raise parents_loop(min(reach - listed))
    return out


def merge_bases(store: Storage, a: str, b: str) -> list[str]:
    """The best common ancestors of `a` and `b` (those that are not ancestors of another
    common ancestor), newest first. Usually one; several after criss-cross merges."""
    return best_common(checked_graph(store), [a], [b])


def best_common(g: dict[str, tuple[tuple[str, ...], float]], left: list[str],
                 right: list[str]) -> list[str]:
    """The best common ancestors of the commits `left` and the commits `right`."""
    common = set().union(*(ancestors(g, c) for c in left)) \
        & set().union(*(ancestors(g, c) for c in right))
    best = set(common)
    for c in sorted(common, key=lambda c: (-g[c][1], c)):
        if c in best:
            best -= ancestors(g, c) - {c}
    return sorted(best, key=lambda c: (-g[c][1], c))


class _Unknown:
    """The target of a fact the merge bases disagree on, with no rule to settle it."""

    def __repr__(self) -> str:
        return "unknown"


UNKNOWN = _Unknown()
Targets = dict[tuple[str, str], "str | _Unknown"]


def three_way(ours: Targets, theirs: Targets, base: Targets) -> tuple[Targets, list]:
    """The fact-level three-way merge of two sides' targets (absent: no key) against their
    base's: a side that changed a (subject, prompt) wins over one that did not. Returns the
    merged targets and the keys both sides changed differently (conflicts)."""
    merged: Targets = {}
    conflicts = []
    for key in list(ours) + [k for k in theirs if k not in ours]:
        o, t, b = ours.get(key), theirs.get(key), base.get(key)
        if o == t or t == b:
            pick = o
        elif o == b:
            pick = t
        else:
            conflicts.append(key)
            continue
        if pick is not None:
            merged[key] = pick
    return merged, conflicts


def merge_base_targets(store: Storage, a: str, b: str) -> Targets:
    """What a merge of `a` and `b` compares both sides with: the live targets of their merge
    base. After criss-cross merges, where several commits are best merge bases, no one of
    them is the base (which one is newest is a matter of clocks): the bases are merged with
    each other, against their own merge base(s), as git's recursive strategy merges them
    into a virtual one; a fact they disagree on with no rule to settle it is UNKNOWN, so a
    side holding any target for it has changed it."""
    try:
        # (the rows: merge walked both histories checked, finding the merge base)
        return _virtual_base(store, graph(store.db), [a], [b])
    except RecursionError:  # one level of Python's stack per nested criss-cross
        raise MemstoreError(f"cannot merge {a[:12]} and {b[:12]}: their merge bases are "
                            "criss-cross merges nested too deep to follow (hundreds of "
                            "levels); squash one side's history first") from None


def _virtual_base(store: Storage, g, left: list[str], right: list[str]) -> Targets:
    bases = best_common(g, left, right)
    if not bases:
        return {}

    def targets(c: str) -> Targets:
        return {fact_key(f.request): f.request.target_new for f in facts_at(store, c)}

    merged, merged_of = targets(bases[0]), [bases[0]]
    for other in bases[1:]:
        below = _virtual_base(store, g, merged_of, [other])
        merged, conflicts = three_way(merged, targets(other), below)
        merged.update({k: UNKNOWN for k in conflicts})
        merged_of.append(other)
    return merged


def is_ancestor(store: Storage, ancestor: str, commit: str) -> bool:
    """Whether `ancestor` is `commit` or one of its ancestors: walked from `commit` until
    found, so that a fast-forward's check (a push's, a merge's) reads the records of the
    commits between the two, not of the whole history (checked_graph reads each record).
    Where the answer would rest on a commit with no row (`unreached`), it is refused."""
    return not unreached(store, [commit], {ancestor})


def unreached(store: Storage, starts: Iterable[str], targets: Iterable[str]) -> set[str]:
    """Those of `targets` that are neither one of `starts` nor an ancestor of one, walked
    on checked_graph from `starts` until all are met (a row naming other parents than its
    record, met on the way, is refused), newest first as git walks (by the rows' times:
    an order only, each commit is checked as it is walked): the records of the commits
    newer than the targets, not of the whole history, where all are met. Depth first, the
    first parent of a merge was met only after the merged side and all the history below
    its fork point (a push after a merge read every record). A commit met with no row (its
    row deleted; fsck names it) is walked last, and refused (`not_indexed`) if a target is
    still unmet then: what lies below it is unknown, and taking it for the end of the
    history answered 'not an ancestor' (merge then merged with no merge base, a push was
    refused as no fast-forward, or forced over one). A target met another way is met."""
    rows = graph(store.db)
    g, left = _Checked(store, rows), set(targets)

    def newest_first(c: str) -> tuple[float, str]:
        return (-rows[c][1] if c in rows else float("inf"), c)

    heap = [newest_first(c) for c in set(starts)]
    heapq.heapify(heap)
    seen = {c for _, c in heap}
    while heap and left:
        _, c = heapq.heappop(heap)
        left.discard(c)
        if not left:
            break
        if c not in g:
            raise not_indexed(c)
        for p in g[c][0]:
            if p not in seen:
                seen.add(p)
                heapq.heappush(heap, newest_first(p))
    return left
