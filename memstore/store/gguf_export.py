"""A revision as a GGUF file, when the base is one: the base file with its edited `ffn_down`
tensors replaced by the revision's float32 weights (or float16), every other tensor and all
metadata byte for byte (memstore.serving.gguf).

memstore's base is the GGUF dequantized by transformers to float32, and a state adds ΔW to
that in float32; an F32 tensor holding the state's weight therefore loads back, through
transformers' GGUF loader, as exactly the state memstore builds. Re-quantising the edited
tensors to the base's 4- or 8-bit type would make the file smaller but can erase a small
ΔW: `requantization` measures how much of it would survive."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MemstoreError, ValidationError
from ..serving.gguf import DTYPES, GgufError, GgufLayout, read_layout, requantization, tensor_name
from .checkpoint import built_with, check_base_weights
from .history import chain_layers
from .repository import Repository
from .states import LoadedBase, check_base, state_of


@dataclass
class BuiltGguf:
    layout: GgufLayout  # of the base file
    replace: dict[str, np.ndarray]  # GGUF tensor name → the revision's weight
    layers: dict[int, str]  # edited layer → GGUF tensor name
    requantization: dict[int, dict[str, Any]]  # when measured: per layer, see build_gguf
    built_with: dict[str, str] | None = None  # the device type and dtype of the state


def gguf_base(repo: Repository) -> Path:
    """The base GGUF file; a one-line error when the base is not one."""
    b = repo.base
    path = Path(b.path) if b.path else None
    if path is None or path.suffix != ".gguf":
        raise MemstoreError(f"--format gguf needs a GGUF base model; this repository's base, "
                            f"{b.spec}, is not a .gguf file (use --format peft or full)")
    if not path.is_file():
        raise MemstoreError(f"the base model is gone: {path}")
    return path


def _weights(base: LoadedBase, names: dict[int, str], pristine: bool) -> dict[int, np.ndarray]:
    """The edited weights (or the base's) as (d_out, d_in) float32 arrays: the orientation
    llama.cpp stores every family's ffn_down in."""
    hf = {l: base.adapter.proj_weight_name(l) for l in names}
    source = base.pristine(list(hf.values())) if pristine else \
        {n: base.parameter(n).detach() for n in hf.values()}
    out = {}
    for l, n in hf.items():
        w = source[n].to(torch.float32)
        out[l] = np.ascontiguousarray((w.T if base.adapter.transposed else w).numpy())
    return out


def build_gguf(repo: Repository, commit: str | None, dtype: str = "f32", *,
               measure: bool = False) -> BuiltGguf:
    """The tensors replaced in the base file to give the state of `commit`. With `measure`,
    per edited layer the base tensor's type and, where gguf-py can quantise to it, how much
    of the layer's ΔW survives re-quantising the edited tensor to that type
    (memstore.serving.gguf.requantization; None where it cannot)."""
    if dtype not in DTYPES:
        raise ValidationError(f"unknown GGUF dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    path = gguf_base(repo)
    layout = read_layout(path)
    check_base(repo)
    check_base_weights(repo)  # the file's bytes are copied: they must be the base's
    base = state_of(repo, commit)
    edited = sorted(chain_layers(repo.chain_sets(commit)) if commit else [])
    n_blocks = base.adapter.n_layers(base.model)
    try:
        names = {l: tensor_name(layout.architecture, n_blocks, base.adapter.proj_weight_name(l))
                 for l in edited}
    except GgufError as e:
        raise MemstoreError(f"{path}: {e}") from None
    replace, survival = {}, {}
    edited_w = _weights(base, names, pristine=False)
    base_w = _weights(base, names, pristine=True) if measure else {}
    for l, w in edited_w.items():
        t = layout.tensor(names[l])
        if w.shape != t.shape:
            raise MemstoreError(f"{path}: {t.name} has shape {t.shape}, the model's layer {l} "
                                f"weight {w.shape}")
        if measure:
            survival[l] = {"base_type": t.type_name,
                           "requantized": requantization(base_w[l], w, t.type)}
        if dtype == "f16":
            w = w.astype(np.float16)
            if not np.isfinite(w).all():
                raise MemstoreError(f"layer {l}: weights beyond float16's range; use f32")
        replace[t.name] = w
    return BuiltGguf(layout, replace, names, survival, built_with(base))
