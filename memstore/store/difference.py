"""The difference between two states, as stacked factors per edited layer: what an adapter
must add to the weights of `since` (None: the base) to give those of `commit`.

A state is its base plus Σ U Vᵀ over its update chain (memstore.store.history), so

    W(commit) − W(since) = Σ_{sets only in commit's chain} U Vᵀ − Σ_{sets only in since's} U Vᵀ
                         = [U₁ … | −U′₁ …] [V₁ … | V′₁ …]ᵀ

The two chains' common prefix (the same update sets, by commit and index) cancels exactly
and is left out; whatever else cancels (a revert's replay beside the original) is left to
the numerical-rank cut of the factorisation (memstore.serving.lowrank). Dense update sets
enter through their exact identity factorisation (commits.DenseLayerUpdate). Nothing of size
d_out × d_in is formed here."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..editing.requests import Request, fact_key
from ..errors import MemstoreError
from .history import LiveFact, SetRef
from .repository import Repository
from .states import BASE


@dataclass
class StateDifference:
    commit: str | None  # the state exported
    since: str | None  # the state it applies to (BASE: the base weights)
    plus: list[SetRef]  # update sets added
    minus: list[SetRef]  # update sets taken away
    U: dict[int, torch.Tensor] = field(default_factory=dict)  # layer → d_out × n, float64
    V: dict[int, torch.Tensor] = field(default_factory=dict)  # layer → d_in × n, float64
    transposed: dict[int, bool] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.U)

    @property
    def empty(self) -> bool:
        return not self.plus and not self.minus


def _chain(repo: Repository, commit: str | None) -> list[SetRef]:
    return repo.chain_sets(commit) if commit is not BASE else []


def chain_difference(repo: Repository, commit: str | None,
                     since: str | None = BASE) -> tuple[list[SetRef], list[SetRef]]:
    """The update sets only in `commit`'s chain and those only in `since`'s (after their
    common prefix)."""
    new, old = _chain(repo, commit), _chain(repo, since)
    same = 0
    while (same < min(len(new), len(old))
           and (new[same].commit, new[same].index) == (old[same].commit, old[same].index)):
        same += 1
    return new[same:], old[same:]


def state_difference(repo: Repository, commit: str | None,
                     since: str | None = BASE) -> StateDifference:
    """The factors of W(commit) − W(since), both given as commit ids (or BASE)."""
    out = StateDifference(commit, since, *chain_difference(repo, commit, since))
    us: dict[int, list[torch.Tensor]] = {}
    vs: dict[int, list[torch.Tensor]] = {}
    for refs, sign in ((out.plus, 1.0), (out.minus, -1.0)):
        for ref in refs:
            for layer, update in sorted(repo.updates_of(ref.commit, ref.index).items()):
                us.setdefault(layer, []).append(sign * update.U.double())
                vs.setdefault(layer, []).append(update.V.double())
                out.transposed[layer] = bool(update.transposed)
    for l in sorted(us):
        shapes = sorted({(u.shape[0], v.shape[0]) for u, v in zip(us[l], vs[l])})
        if len(shapes) > 1:  # each well-formed, of two layers' shapes: torch.cat's traceback
            raise MemstoreError(f"the update sets of layer {l} are of {len(shapes)} shapes "
                                f"({', '.join(f'{a}x{b}' for a, b in shapes)}) (a damaged "
                                "record? run `memstore fsck`)")
    out.U = {l: torch.cat(us[l], dim=1) for l in sorted(us)}
    out.V = {l: torch.cat(vs[l], dim=1) for l in sorted(vs)}
    return out


@dataclass(frozen=True)
class FactChange:
    """A fact the difference writes (`request` is the live request; `old` is the target it
    replaces: the one live in `since`, else the request's target_true) or removes (`new`
    and `request` are None)."""

    subject: str
    prompt: str
    old: str | None
    new: str | None
    request: Request | None = None


def fact_changes(repo: Repository, commit: str | None,
                 since: str | None = BASE) -> list[FactChange]:
    """Facts written (in the order they were written), then facts removed, from the state
    of `since` to that of `commit`."""
    before = {fact_key(f.request): f.request for f in _live(repo, since)}
    after = [f.request for f in _live(repo, commit)]
    out = []
    for r in after:
        was = before.get(fact_key(r))
        if was is None or was.target_new != r.target_new:
            old = was.target_new if was is not None else r.target_true
            out.append(FactChange(r.subject, r.prompt, old, r.target_new, r))
    kept = {fact_key(r) for r in after}
    out += [FactChange(r.subject, r.prompt, r.target_new, None)
            for k, r in before.items() if k not in kept]
    return out


def _live(repo: Repository, commit: str | None) -> list[LiveFact]:
    return repo.facts_at(commit) if commit is not BASE else []
