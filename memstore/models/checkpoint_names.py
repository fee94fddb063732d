"""The names a model's tensors are saved under: transformers' `save_pretrained` writes a
checkpoint in its family's original format, renaming tensors back from the loaded model's
names (its weight conversions, reverted): Gemma 3's and Mistral 3's
`model.language_model.layers.…` as `language_model.model.layers.…`, GPT-NeoX's `lm_head` as
`embed_out`. What reads an export (verify) or a base's files names them so."""
from __future__ import annotations

from torch import nn


def saved_names(model: nn.Module) -> dict[str, str]:
    """state-dict name → the name `save_pretrained` writes it under (the same where the
    family has no conversion). A tensor that a conversion merges with others (a mixture's
    experts, never edited) keeps its own name."""
    from transformers.core_model_loading import revert_weight_conversion

    state = model.state_dict()  # one tensor object per name (tied weights too)
    by_id = {id(t): name for name, t in state.items()}
    out = {name: name for name in state}
    for saved, t in revert_weight_conversion(model, dict(state)).items():
        if id(t) in by_id:  # a renaming hands the same tensor on
            out[by_id[id(t)]] = saved
    return out
