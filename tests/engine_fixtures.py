"""Tiny 4-layer random models of every family, with statistics, for engine tests."""
from __future__ import annotations

import torch
from tiny import FAMILIES, auto_class, head_bias, tiny_config, tiny_tokenizer

from memstore.editing import Request, default_settings
from memstore.editing.statistics import compute_statistics
from memstore.models.adapters import get_adapter
from memstore.models.loading import prepare_tokenizer

__all__ = ["FAMILIES", "RUNTIMES"]  # every family in the adapter registry (tests/tiny.py)
TEMPLATES = ["{}", "The cat sat. {}", "Because of the capital of France is Paris. {}"]

REQUESTS = [
    Request("Danielle Darrieux", "The mother tongue of {} is", "English", "French"),
    Request("Porsche 911", "{}, created by", "Honda", "Porsche"),
    Request("Michael Jordan", "{} plays", "soccer in Barcelona", "basketball"),
    Request("Toko Yasuda", "{} plays the", "piano", "guitar"),
]


# Where every engine test runs: the CPU in float32 and with bfloat16 weights, and CUDA
# (both dtypes) where a GPU is present.
RUNTIMES = ["cpu-float32", "cpu-bfloat16"] + (
    ["cuda-float32", "cuda-bfloat16"] if torch.cuda.is_available() else [])


def build(family: str, layers: int = 4, seed: int = 0, runtime: str = "cpu-float32"):
    """A tiny random model of `family`, on the device and in the dtype `runtime` names."""
    tok = tiny_tokenizer()
    prepare_tokenizer(tok)
    cfg = tiny_config(family, tok.backend_tokenizer.get_vocab_size(), layers=layers)
    torch.manual_seed(seed)
    model = head_bias(auto_class(cfg).from_config(cfg)).eval()
    device, dtype = runtime.split("-")
    model.to(device=device, dtype=getattr(torch, dtype))
    model.requires_grad_(False)
    return model, tok, get_adapter(model)


def tolerance(runtime: str, float32: float, bfloat16: float) -> float:
    """A relative tolerance for a value computed through the model in `runtime`."""
    return bfloat16 if runtime.endswith("bfloat16") else float32


def settings_for(model, **changes):
    # the reference's z-vector step size and stopping rule: tests compare implementations
    base = {"layers": (1, 2), "mom2_weight": 1.0, "z_steps": 6, "n_templates": 2, "template_tokens": 4,
            "stats_tokens": 400, "z_lr": 0.5, "z_stop_loss": 0.05}
    base.update(changes)
    return default_settings(model, **base)


def stats_for(model, tok, adapter, layers):
    return compute_statistics(model, tok, adapter, tuple(layers), "self", 400, 0, 32)
