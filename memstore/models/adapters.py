"""Architecture adapters: where each family keeps its decoder layers, the MLP output
projection W_out (the edited matrix), the final norm, the LM head and the embeddings, and
the family's default edited layers and λ. A new family is one more `Adapter(...)` here."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ValidationError


def _get(root: nn.Module, path: str) -> nn.Module:
    m = root
    for part in path.split("."):
        m = getattr(m, part)
    return m


def _band(lo: float, hi: float) -> Callable[[int], tuple[int, ...]]:
    """Default edited layers as a band of relative depth [lo, hi) (GPT-J: 3..8 of 28)."""

    def layers(n_layers: int) -> tuple[int, ...]:
        if n_layers <= 2:
            return tuple(range(n_layers))
        a = min(n_layers - 2, max(0, round(lo * n_layers)))
        b = min(n_layers - 1, max(a, round(hi * n_layers)))
        return tuple(range(a, b + 1))

    return layers


@dataclass(frozen=True)
class Adapter:
    name: str
    model_types: tuple[str, ...]  # config.model_type values this adapter serves
    layers_path: str  # the ModuleList of decoder layers
    proj_path: str  # W_out inside a decoder layer
    final_norm_path: str
    embed_path: str
    transposed: bool  # weight stored (d_in × d_out), as GPT-2's Conv1D
    default_layers: Callable[[int], tuple[int, ...]]
    default_mom2_weight: float
    default_clamp: float = 0.75
    # scoring may pack several targets after one prompt (a custom 4D mask, restarting
    # positions): True where the family's attention takes such a mask (eval.scoring)
    packed_scoring: bool = True
    # why the editing math does not cover this family's layers (None: it does); such a
    # family can be scored but is refused for edits, never edited with the wrong math
    not_editable: str | None = None

    def check_editable(self) -> None:
        if self.not_editable is not None:
            raise ValidationError(f"cannot edit {self.name} models: {self.not_editable}")

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return _get(model, self.layers_path)

    def n_layers(self, model: nn.Module) -> int:
        return len(self.layers(model))

    def layer(self, model: nn.Module, index: int) -> nn.Module:
        return self.layers(model)[index]

    def proj(self, model: nn.Module, index: int) -> nn.Module:
        return _get(self.layer(model, index), self.proj_path)

    def proj_weight_name(self, index: int) -> str:
        """The state_dict key of the edited weight in layer `index`."""
        return f"{self.layers_path}.{index}.{self.proj_path}.weight"

    def proj_dims(self, model: nn.Module, index: int) -> tuple[int, int]:
        """(d_out, d_in) of W_out as an operator."""
        w = self.proj(model, index).weight
        return (w.shape[1], w.shape[0]) if self.transposed else (w.shape[0], w.shape[1])

    def final_norm(self, model: nn.Module) -> nn.Module:
        return _get(model, self.final_norm_path)

    def embeddings(self, model: nn.Module) -> nn.Module:
        return _get(model, self.embed_path)

    def lm_head(self, model: nn.Module) -> nn.Module:
        # Tied embeddings (SmolLM2, Gemma, GPT-2) are handled by transformers: the output
        # embeddings module shares the input embedding weight.
        return model.get_output_embeddings()

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """The logits of final hidden states, as the model's own forward forms them: the LM
        head, then soft-capping where the config asks for it (Gemma 2/3)."""
        logits = self.lm_head(model)(hidden)
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits


# λ: the paper's values for GPT-2 XL, GPT-J and NeoX. For the Llama family it was measured
# on SmolLM2-135M (100 CounterFact dev records, layers 3-8; README "Choosing the defaults"):
# λ 15,000 gives ES 0.72 / PS 0.69 / NS 0.729, 5,000 gives 0.96 / 0.915 / 0.720, 1,500 gives
# 1.00 / 0.945 / 0.706 (unedited 0.27 / 0.26 / 0.744).
ADAPTERS: tuple[Adapter, ...] = (
    Adapter("gpt2", ("gpt2",), "transformer.h", "mlp.c_proj", "transformer.ln_f",
            "transformer.wte", True, _band(0.27, 0.36), 20000.0),
    Adapter("gptj", ("gptj",), "transformer.h", "mlp.fc_out", "transformer.ln_f",
            "transformer.wte", False, _band(0.11, 0.29), 15000.0),
    Adapter("gpt_neox", ("gpt_neox",), "gpt_neox.layers", "mlp.dense_4h_to_h",
            "gpt_neox.final_layer_norm", "gpt_neox.embed_in", False, _band(0.13, 0.23),
            20000.0, default_clamp=0.3),
    Adapter("llama", ("llama", "mistral", "qwen2", "qwen3"), "model.layers", "mlp.down_proj",
            "model.norm", "model.embed_tokens", False, _band(0.10, 0.27), 1500.0),
    Adapter("gemma", ("gemma",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, _band(0.11, 0.29), 15000.0),
    Adapter("gemma2", ("gemma2", "gemma3_text"), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, _band(0.11, 0.29), 15000.0,
            not_editable="the MLP output passes through a post-feedforward norm before it "
                         "joins the residual stream, which the update does not model yet"),
)


def supported() -> list[str]:
    return sorted(t for a in ADAPTERS for t in a.model_types)


def find_adapter(model_type: str) -> Adapter | None:
    for a in ADAPTERS:
        if model_type in a.model_types:
            return a
    return None


def get_adapter(model_or_type: nn.Module | str) -> Adapter:
    model_type = model_or_type if isinstance(model_or_type, str) else model_or_type.config.model_type
    found = find_adapter(model_type)
    if found is not None:
        return found
    raise ValidationError(
        f"unsupported architecture {model_type!r}; supported: {', '.join(supported())}"
    )


def hidden_of(output) -> torch.Tensor:
    """Decoder layers return a tensor or a tuple (hidden, ...) depending on the
    transformers version."""
    return output[0] if isinstance(output, (tuple, list)) else output
