"""A revision (or the difference between two) as a PEFT LoRA adapter, and what truncating
its rank costs.

The adapter's factors are the balanced factorisation (memstore.serving.lowrank) of every
update set between the two states (memstore.store.difference), so `PeftModel` on the base
(or on the `since` state) computes the weights of the revision, up to float32 rounding. With
`max_rank`, each layer keeps its largest singular values; `truncation_efficacy` then
measures, on the facts the export writes, the efficacy of a model holding the truncated ΔW
beside that of the exact state."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..editing.apply import single_thread
from ..errors import MemstoreError
from ..models.adapters import Adapter, get_adapter
from ..models.loading import skeleton
from ..serving.lowrank import LowRank, balanced
from ..serving.peft import LoraAdapter, lora_adapter
from .difference import StateDifference, fact_changes, state_difference
from .queries import measure
from .repository import Repository
from .states import check_base, open_base, state_of


@dataclass
class BuiltAdapter:
    adapter: LoraAdapter
    difference: StateDifference
    factors: dict[int, LowRank]  # per edited layer
    family: Adapter


def family_of(repo: Repository) -> Adapter:
    """The base's architecture adapter, from the model type recorded at init (the base is
    loaded only for a repository that did not record it)."""
    model_type = repo.base.info.get("model_type")
    return get_adapter(model_type) if model_type else open_base(repo).adapter


def build_adapter(repo: Repository, commit: str | None, since: str | None,
                  max_rank: int | None = None) -> BuiltAdapter:
    """The adapter taking the weights of `since` (None: the base) to those of `commit`."""
    diff = state_difference(repo, commit, since)
    if diff.empty:
        raise MemstoreError("nothing to export: the two states are built from the same "
                            "update sets")
    family = family_of(repo)
    # float32 as the adapter stores them, one layer's float64 factors alive at a time (a
    # 70B model's six W_out: ~3.5 GB of float64 factors for 2,000 facts)
    factors = {l: _stored(balanced(diff.U[l], diff.V[l], max_rank)) for l in diff.layers}
    modules = {family.proj_weight_name(l).removesuffix(".weight"): f
               for l, f in factors.items()}
    if all(f.rank == 0 for f in factors.values()):
        raise MemstoreError("nothing to export: the two states have the same weights")
    b = repo.base
    # where the base lies, never a Hub id: PEFT's AutoPeftModel loads this as the base, and
    # the Hub's model is not memstore's (smollm2-135m is its Q4_1 GGUF, dequantized); none for
    # an adapter from the state of `since`, which lies nowhere until exported
    adapter = lora_adapter(modules, fan_in_fan_out=family.transposed,
                           base_model=(b.path or b.spec) if since is None else None)
    return BuiltAdapter(adapter, diff, factors, family)


def check_widths(repo: Repository, built: BuiltAdapter) -> None:
    """Each layer's factors fit the base's W_out there (d_out rows of U, d_in of V), as read
    from the base's config (no weights loaded): well-formed records of one width the base
    has not (each set of the layer alike) make an adapter no model loads. Export and verify
    both check it (a rebuild of such records is the same unloadable adapter)."""
    b, diff, family = repo.base, built.difference, built.family
    model = skeleton(str(b.path if b.path is not None else b.spec))
    n_layers = family.n_layers(model)
    for l in diff.layers:
        shape = (diff.U[l].shape[0], diff.V[l].shape[0])
        dims = family.proj_dims(model, l) if 0 <= l < n_layers else None
        if shape != dims:
            has = (f"has a {dims[0]}x{dims[1]} W_out there" if dims is not None
                   else f"has {n_layers} layers")
            raise MemstoreError(f"the update sets of layer {l} are {shape[0]}x{shape[1]} "
                                f"(d_out x d_in), but the base model {has} (a damaged "
                                "record? run `memstore fsck`)")


def _stored(f: LowRank) -> LowRank:
    return dataclasses.replace(f, B=f.B.float().contiguous(), A=f.A.float().contiguous())


def layer_report(built: BuiltAdapter) -> dict[str, dict[str, Any]]:
    """Per edited layer: module, rank kept, numerical rank, relative Frobenius error."""
    return {str(l): {"module": built.family.proj_weight_name(l).removesuffix(".weight"),
                     "rank": f.rank, "numerical_rank": f.numerical_rank, "error": f.error}
            for l, f in built.factors.items()}


def _efficacy(base, requests) -> dict[str, Any]:
    m = measure(base, requests)
    return {k: m.get(k) for k in ("n", "efficacy", "p_new")}


def truncation_efficacy(repo: Repository, built: BuiltAdapter) -> dict[str, Any]:
    """Efficacy (ES over the facts with target_true, and mean P(new)) of the facts the export
    writes, in the exact state and with the truncated ΔW added to the `since` state. Only
    the edit prompts are scored (not paraphrases nor neighbours)."""
    diff = built.difference
    requests = [dataclasses.replace(c.request, paraphrases=(), neighborhood=())
                for c in fact_changes(repo, diff.commit, diff.since) if c.request is not None]
    if not requests:
        return {"n_facts": 0}
    check_base(repo)
    exact = _efficacy(state_of(repo, diff.commit), requests)
    base = state_of(repo, diff.since)
    base.editing(tuple(built.factors))
    with torch.no_grad(), single_thread():
        for layer, f in built.factors.items():
            d = f.B @ f.A  # float32, as PEFT multiplies the stored factors
            base.parameter(built.family.proj_weight_name(layer)).add_(
                d.T if built.family.transposed else d)
    try:
        truncated = _efficacy(base, requests)
    finally:
        base.reset()
    return {"n_facts": len(requests), "exact": exact, "truncated": truncated}
