"""Applying updates: in place on a live model, or as a pure function building weights.

ΔW is formed from the float32 factors in float64 on one thread and rounded to float32, and
updates are added in a fixed order (update sets in order, layers ascending), each as
`(W.float() + ΔW).to(W.dtype)` on W's device: one rounding per update in the weights'
dtype (none in float32). So the same history gives the same bits in every process on the
same device type with the same dtype, in place or built."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from ..errors import MemstoreError
from ..models.adapters import Adapter
from .result import LayerUpdate


@contextmanager
def single_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def delta(update: LayerUpdate) -> torch.Tensor:
    """ΔW in the weight's orientation, float32, bit-reproducible."""
    with single_thread():
        d = (update.U.double() @ update.V.double().T).float()
    return d.T.contiguous() if update.transposed else d


def added(w: torch.Tensor, d: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """W + sign·ΔW computed in float32 on W's device, rounded once to W's dtype."""
    d = d.to(w.device)
    return (w.float() + d if sign > 0 else w.float() - d).to(w.dtype)


def apply_update(model, adapter: Adapter, update: LayerUpdate, sign: float = 1.0) -> None:
    w = adapter.proj(model, update.layer).weight
    with torch.no_grad():
        w.copy_(added(w, delta(update), sign))


def apply_updates(model, adapter: Adapter, updates: dict[int, LayerUpdate]) -> None:
    for layer in sorted(updates):
        apply_update(model, adapter, updates[layer])


def unapply_updates(model, adapter: Adapter, updates: dict[int, LayerUpdate]) -> None:
    """Subtract `updates` in place (the benchmarks' way back to the unedited model between
    solves). W + ΔW − ΔW is rounded twice, so the weights come back to within rounding, not
    bit for bit: hash a model before editing it, and rebuild from the base (build_state)."""
    for layer in sorted(updates, reverse=True):
        apply_update(model, adapter, updates[layer], sign=-1.0)


def build_state(base_weights: dict[str, torch.Tensor], adapter: Adapter,
                update_sets: Iterable[dict[int, LayerUpdate]]) -> dict[str, torch.Tensor]:
    """The edited weights (only those) after applying `update_sets` in order to
    `base_weights` (state_dict-like). Pure: the inputs are not modified. `update_sets` is
    read once, in order (an iterator that loads each set when asked keeps one in memory)."""
    out: dict[str, torch.Tensor] = {}
    for updates in update_sets:
        for layer in sorted(updates):
            name = adapter.proj_weight_name(layer)
            if name not in base_weights:
                raise MemstoreError(f"an update writes layer {layer}, which the model does "
                                    "not have (a damaged record? run `memstore fsck`)")
            w = out.get(name)
            if w is None:
                w = base_weights[name].detach().clone()
            d = delta(updates[layer])
            if d.shape != w.shape:
                raise MemstoreError(f"the update of layer {layer} has shape {tuple(d.shape)}, "
                                    f"the weight {tuple(w.shape)} (a damaged record? run "
                                    "`memstore fsck`)")
            out[name] = added(w, d)
    return out
