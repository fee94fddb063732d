"""A checkpoint's tensor names against the loaded model's. transformers renames tensors as
it loads them (its weight conversions: Gemma 3's and Mistral 3's language_model.model.… as
model.language_model.…, GPT-2's h.… as transformer.h.…), and `save_pretrained` names them
back in the family's original format (GPT-NeoX's lm_head as embed_out). What the model does
not read of a checkpoint (Qwen 3.5's multi-token-prediction layers mtp.*, which transformers
drops from its report of unexpected keys) no export of it holds."""
from __future__ import annotations

import json
import re
from pathlib import Path

from torch import nn

from ..errors import MemstoreError

SAFETENSORS_INDEX = "model.safetensors.index.json"
# tensors of published checkpoints that hold no weight but a buffer the model computes for
# itself, which transformers' loader drops (its models' _keys_to_ignore_on_load_unexpected,
# and the rotary and position patterns modeling_utils adds for every model): GPT-2's,
# GPT-J's and GPT-NeoX's causal masks (h.N.attn.bias, attention.bias, …masked_bias), the
# per-layer rotary frequencies of older Llama checkpoints (rotary_emb.inv_freq), position
# ids. An export without them loses nothing: not `unread_names`
COMPUTED_BUFFERS = re.compile(r"(^|\.)((attn|attention|crossattention)\.(bias|masked_bias)"
                              r"|rotary_emb\.inv_freq|position_ids)$")


def _conversions():
    """transformers' own renaming of checkpoint tensors (transformers.core_model_loading,
    5.24 and 5.25), whose functions memstore calls: a version without them, or with other
    signatures, is one line, not a traceback."""
    try:
        from transformers import core_model_loading as c

        return c.revert_weight_conversion, c.rename_source_key, c.WeightRenaming, c.WeightConverter
    except (ImportError, AttributeError) as e:
        raise MemstoreError(_unknown(e)) from None


def _unknown(e: Exception) -> str:
    import transformers

    return (f"transformers {transformers.__version__} renames a checkpoint's tensors otherwise "
            f"than the 5.24-5.25 memstore reads ({type(e).__name__}: {str(e)[:120]}); "
            "install transformers 5.25")


def saved_names(model: nn.Module) -> dict[str, str]:
    """state-dict name → the name `save_pretrained` writes it under (the same where the
    family has no conversion). A tensor that a conversion merges with others (a mixture's
    experts, never edited) keeps its own name."""
    revert_weight_conversion = _conversions()[0]
    state = model.state_dict()  # one tensor object per name (tied weights too)
    by_id = {id(t): name for name, t in state.items()}
    out = {name: name for name in state}
    try:
        reverted = revert_weight_conversion(model, dict(state))
    except TypeError as e:
        raise MemstoreError(_unknown(e)) from None
    for saved, t in reverted.items():
        if id(t) in by_id:  # a renaming hands the same tensor on
            out[by_id[id(t)]] = saved
    return out


def weight_files(directory: str | Path, required: bool = True) -> list[str]:
    """The safetensors files `from_pretrained` reads, in its order of preference:
    `model.safetensors` when present, else the files its index names; neither is an error,
    or with `required` false none (verify's problem to list)."""
    d = Path(directory)
    if (d / "model.safetensors").is_file():
        return ["model.safetensors"]
    index = d / SAFETENSORS_INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise MemstoreError(f"{index}: unreadable weight index ({e})") from None
        for n in names:
            if not isinstance(n, str) or Path(n).name != n:
                raise MemstoreError(f"{index}: names a file outside the folder: {n!r}")
        return names
    if not required:
        return []
    raise MemstoreError(f"{directory}: no model.safetensors (nor {SAFETENSORS_INDEX})")


def file_names(directory: Path) -> list[str]:
    """The tensor names of the safetensors files `from_pretrained` reads of a Hugging Face
    directory (weight_files; each file's header, no tensor read); none where it has none."""
    from safetensors import safe_open

    names = []
    for f in weight_files(directory, required=False):
        with safe_open(str(Path(directory) / f), "pt") as st:
            names.extend(st.keys())
    return names


def unread_names(model: nn.Module, names: list[str]) -> tuple[str, ...]:
    """Those of a checkpoint's tensor `names` that `model`, loaded from it, did not read: each
    renamed as transformers' loader renames it (the conversions it used, the base model's
    prefix added or taken off) names no tensor of the model, and holds no buffer the model
    computes for itself (COMPUTED_BUFFERS)."""
    _, rename_source_key, WeightRenaming, WeightConverter = _conversions()
    used = getattr(model, "_weight_conversions", None) or []
    renamings = [c for c in used if isinstance(c, WeightRenaming)]
    converters = [c for c in used if isinstance(c, WeightConverter)]
    state = model.state_dict()
    prefix = model.base_model_prefix
    unread = []
    for name in names:
        try:
            renamed, _ = rename_source_key(name, renamings, converters, prefix, state)
        except TypeError as e:
            raise MemstoreError(_unknown(e)) from None
        if renamed not in state and name not in state and not COMPUTED_BUFFERS.search(name):
            unread.append(name)
    return tuple(sorted(unread))
