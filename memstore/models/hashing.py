"""Content hash of a model's weights: the identity of a base."""
from __future__ import annotations

import hashlib

import torch
from torch import nn


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


def model_hash(model: nn.Module) -> str:
    return state_hash(model.state_dict())
