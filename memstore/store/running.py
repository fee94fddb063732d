"""The running matrix: per edited layer, Σ k kᵀ (float64, d_in × d_in) over the key rows of
the facts live in a state — the earlier edits a history-aware solve preserves (README,
"Sequential commits").

A fact is live until a later request gives its subject and prompt again (`--supersede`,
or a replay that writes it anew): then it is no longer what the model should say, and its
keys leave the sum — kept at full weight they would hold the old value in place and
roughly halve the new write.

It is derived data, and nothing is stored for it: the matrix is formed when a solve needs
it from the keys every update set already carries (rows of live facts, in chain order),
K_liveᵀ K_live. Its inputs are as large as what they carry (n_live × d_in floats: 12 MB
for 2,000 facts on SmolLM2, against 19 MB for the d_in × d_in matrix of one layer, or
1.6 GB at Llama-3-8B's d_in of 14,336), forming it costs O(n_live · d_in²), and the same
keys in the same order give the same bits."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..editing.requests import Request, fact_key
from ..editing.result import EditResult
from .commits import StoredSet, load_layer, load_requests
from .history import chain_sets
from .storage import Storage

Matrix = dict[int, torch.Tensor]
# fact key -> (where its rows' keys are: (commit, set index) or an in-memory set, positions)
Live = dict[tuple[str, str], tuple[object, list[int]]]
KIND = "running-matrix"  # objects of stored matrices made by earlier versions (gc drops them)


def _live_at(store: Storage, commit_id: str | None) -> Live:
    """Which set's rows wrote each fact live in `commit_id`'s state (reads request lists)."""
    live: Live = {}
    if commit_id is None:
        return live
    for ref in chain_sets(store, commit_id):
        where = (ref.commit, ref.index)
        for p, r in enumerate(load_requests(store.objects, ref.update_set)):
            key = fact_key(r)
            if key in live and live[key][0] == where:
                live[key][1].append(p)
            else:
                live[key] = (where, [p])
    return live


def _advance(live: Live, requests: Sequence[Request], where: object) -> None:
    """`live` after a set at `where` wrote `requests` (their facts replace earlier rows)."""
    rows: dict[tuple[str, str], list[int]] = {}
    for p, r in enumerate(requests):
        rows.setdefault(fact_key(r), []).append(p)
    for key in rows:
        live.pop(key, None)
    for key, positions in rows.items():
        live[key] = (where, positions)


def live_keys(store: Storage, live: Live,
              memory: dict[int, EditResult | StoredSet] | None = None
              ) -> dict[int, torch.Tensor]:
    """Per layer, the key rows (n_live × d_in, float32) of the live facts, grouped by the
    set that wrote them in chain order, rows in request order."""
    by_set: dict[object, list[int]] = {}
    for where, positions in live.values():
        by_set.setdefault(where, []).extend(positions)
    out: dict[int, list[torch.Tensor]] = {}
    for where, positions in by_set.items():
        positions = sorted(positions)
        done = None if isinstance(where, tuple) else (memory or {})[where]
        if isinstance(done, EditResult):
            layers = {l: u.keys for l, u in done.updates.items()}
        else:
            s = (done.update_set if done is not None
                 else store.commit(where[0]).update_sets[where[1]])
            layers = {l: load_layer(store.objects, l, rec).keys for l, rec in s.layers.items()}
        for l, k in layers.items():
            out.setdefault(l, []).append(k[positions])
    return {l: torch.cat(ks) for l, ks in sorted(out.items())}


def _matrix(keys: dict[int, torch.Tensor]) -> Matrix:
    return {l: k.double().T @ k.double() for l, k in keys.items()}


def running_matrix(store: Storage, commit_id: str | None) -> Matrix:
    """The running matrix of `commit_id`'s state ({} for the empty state)."""
    return _matrix(live_keys(store, _live_at(store, commit_id)))


def earlier_keys_for(store: Storage, basis: str | None, done: Sequence[EditResult],
                     requests: Sequence[Request]) -> dict[int, torch.Tensor]:
    """The keys whose running matrix a solve of `requests` preserves: those of the facts
    live in `basis`'s state, after the sets `done` already in this operation (replays),
    without the facts `requests` write again (the solve adds their new keys itself)."""
    return Replays(store, basis).earlier_keys(done, requests)


class Replays:
    """`earlier_keys_for` for the solves of one operation on one basis, `done` growing by
    the sets solved (a revert replays every later set in turn): which rows of the basis's
    chain are live is read once (every request list of the chain), then advanced by each
    set solved, instead of read again per solve. (The key rows themselves are read per
    solve, as a solve needs them: kept, they would double the memory they take.)"""

    def __init__(self, store: Storage, basis: str | None) -> None:
        self.store = store
        self.basis = basis
        self._live: Live | None = None  # the basis's live facts, advanced by `_done` sets
        self._done: list[EditResult | StoredSet] = []

    def earlier_keys(self, done: Sequence[EditResult | StoredSet],
                     requests: Sequence[Request]) -> dict[int, torch.Tensor]:
        if (self._live is None or len(done) < len(self._done)
                or any(a is not b for a, b in zip(done, self._done))):  # not the same sets
            self._live, self._done = _live_at(self.store, self.basis), []
        for i in range(len(self._done), len(done)):
            _advance(self._live, done[i].requests, i)
            self._done.append(done[i])
        live = dict(self._live)
        for key in {fact_key(r) for r in requests}:
            live.pop(key, None)
        return live_keys(self.store, live, dict(enumerate(done)))


def running_matrix_for(store: Storage, basis: str | None, done: Sequence[EditResult],
                       requests: Sequence[Request]) -> Matrix:
    """The running matrix of `earlier_keys_for` (for inspection and tests; the solve adds
    the keys straight into its matrix)."""
    return _matrix(earlier_keys_for(store, basis, done, requests))
