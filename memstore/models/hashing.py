"""Content hash of a model's weights: the identity of a base."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# What a loader reads from a Hugging Face directory besides the weights: the architecture's
# settings (a norm's epsilon, RoPE's base), the tokenizer and the chat template
SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json",
              "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
              "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt",
              "tokenizer.model", "spiece.model", "vocab.txt")


def side_files(path: str | Path) -> dict[str, str]:
    """sha256 of what makes a base besides its weights (which `model_hash` covers): for a
    directory, each of SIDE_FILES it holds (a JSON file by its values: spacing, key order
    and a re-save's notes aside); for a .gguf file, its header — the metadata
    (settings, tokenizer, chat template) and the tensor directory, all before the tensor
    data — as 'gguf header'."""
    p = Path(path)
    if p.is_dir():
        return {n: _content_sha256(p / n) for n in SIDE_FILES if (p / n).is_file()}
    from gguf import GGUFReader

    with open(p, "rb") as f:
        header = f.read(GGUFReader(str(p)).data_offset)
    return {"gguf header": hashlib.sha256(header).hexdigest()}


def changed_side_files(recorded: Any, actual: dict[str, str]) -> list[str]:
    """The files besides the weights that differ, appeared or went since `recorded` (not a
    dict: a repository made before they were recorded, nothing to compare)."""
    if not isinstance(recorded, dict):
        return []
    return sorted(n for n in set(recorded) | set(actual) if recorded.get(n) != actual.get(n))


def _content_sha256(path: Path) -> str:
    if path.suffix == ".json":
        try:
            value = json.loads(path.read_bytes())
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(value, dict):
                value.pop("transformers_version", None)  # which library wrote it, not what
            return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    return file_sha256(path)


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(_bytes(t)).hexdigest()


def _bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().contiguous().cpu()
    return memoryview(t.view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, in name order."""
    return _items_hash((name, state[name]) for name in sorted(state))


def _items_hash(items: Iterable[tuple[str, torch.Tensor]],
                step: Callable[[torch.Tensor], object] | None = None) -> str:
    h = hashlib.sha256()
    for name, t in items:
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(_bytes(t))
        if step is not None:
            step(t)
    return h.hexdigest()


def state_items(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of the model's state dict, in name order, one tensor at a time: a
    weight accelerate offloaded to disk or the CPU (a device map) is read back from its
    offload store for its turn only, so that hashing, checking or comparing a model larger
    than memory holds one module's tensors of it at a time (accelerate's
    get_state_dict_offloaded_model gathers every tensor on the CPU). A tensor is valid
    until the next is asked for."""
    state = model.state_dict(keep_vars=True)  # references; an offloaded one on `meta`
    for name in sorted(state):
        t = state[name]
        if t.device.type != "meta":
            yield name, t.detach()
            continue
        from accelerate.utils import align_module_device, has_offloaded_params

        prefix, _, local = name.rpartition(".")
        owner = prefix  # the module whose hook offloaded it: its own, or one it is inside
        while owner and not has_offloaded_params(model.get_submodule(owner)):
            owner = owner.rpartition(".")[0]
        with align_module_device(model.get_submodule(owner), torch.device("cpu")):
            yield name, model.get_submodule(prefix).state_dict(keep_vars=True)[local].detach()


def model_hash(model: nn.Module, step: Callable[[torch.Tensor], object] | None = None) -> str:
    """`state_hash` of the model's state dict, read one tensor at a time (state_items);
    `step` is given each tensor once hashed (a progress bar's count)."""
    return _items_hash(state_items(model), step)
