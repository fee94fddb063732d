"""Content hash of a model's weights: the identity of a base."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(_bytes(t)).hexdigest()


def _bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().contiguous().cpu()
    return memoryview(t.view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(_bytes(t))
    return h.hexdigest()


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with real tensors: weights accelerate offloaded to disk or
    the CPU (a device map) are read back from their offload store."""
    state = model.state_dict()
    if any(t.device.type == "meta" for t in state.values()):
        from accelerate.utils.modeling import get_state_dict_offloaded_model

        return get_state_dict_offloaded_model(model)
    return state


def model_hash(model: nn.Module) -> str:
    return state_hash(full_state_dict(model))
