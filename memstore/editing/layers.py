"""Running part of a model: stop after a layer, or start from known hidden states.

Both go through the model's own forward (its masks, positions and rotary embeddings), so
no architecture code is copied: decoder layers below the start are swapped for stand-ins
that return known hidden states, and a hook on the last layer needed stops the pass."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..models.adapters import Adapter, hidden_of


class _Stop(Exception):
    pass


class _Known(nn.Module):
    """Stands in for a decoder layer whose output is known (or irrelevant)."""

    def __init__(self, original: nn.Module, output: Callable[[torch.Tensor], torch.Tensor] | None,
                 returns_tuple: bool):
        super().__init__()
        self.output = output
        self.returns_tuple = returns_tuple
        for attr in ("attention_type", "layer_idx", "is_sliding", "sliding_window"):
            if hasattr(original, attr):
                setattr(self, attr, getattr(original, attr))

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        # Layers return a tensor in transformers >= 5 and a tuple before, except those of
        # families whose adapter says they still return a tuple (Falcon): the model loop
        # takes [0] of a tuple; given a tensor where its layers return a tuple, it would
        # take the first row of the batch. A 1-tuple is what a tuple-reading loop expects.
        out = hidden_states if self.output is None else self.output(hidden_states)
        return (out,) if self.returns_tuple else out


def _layers_return_tensor() -> bool:
    import transformers

    return int(transformers.__version__.split(".")[0]) >= 5


_LAYERS_RETURN_TENSOR = _layers_return_tensor()


@contextmanager
def replaced_layers(model: nn.Module, adapter: Adapter, start: int,
                    start_hidden: Callable[[], torch.Tensor]) -> Iterator[None]:
    """Within the block, layers 0..start-1 are not run: layer start-1 outputs
    `start_hidden()` (the hidden states entering layer `start`)."""
    layers = adapter.layers(model)
    originals = [layers[i] for i in range(start)]
    try:
        for i in range(start):
            out = (lambda _h: start_hidden()) if i == start - 1 else None
            layers[i] = _Known(originals[i], out,
                               adapter.layer_tuple or not _LAYERS_RETURN_TENSOR)
        yield
    finally:
        for i, m in enumerate(originals):
            layers[i] = m


def run_until(model: nn.Module, adapter: Adapter, stop: int,
              capture: list[tuple[int, str]] = (),
              **forward_kwargs) -> dict[tuple[int, str], torch.Tensor]:
    """Runs the model forward and stops after layer `stop`.

    `capture` lists (layer, kind) with kind "out" (the decoder layer's output hidden
    states), "key" (the input of its MLP output projection W_out) or "value" (W_out's
    output).
    Returns {(layer, kind): tensor}."""
    captured: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for layer, kind in capture:
        if kind == "out":
            def hook(_m, _i, out, layer=layer):
                captured[(layer, "out")] = hidden_of(out)
            handles.append(adapter.layer(model, layer).register_forward_hook(hook))
        elif kind == "key":
            def pre(_m, args, layer=layer):
                captured[(layer, "key")] = args[0]
            handles.append(adapter.proj(model, layer).register_forward_pre_hook(pre))
        elif kind == "value":
            def post(_m, _args, out, layer=layer):
                captured[(layer, "value")] = out
            handles.append(adapter.proj(model, layer).register_forward_hook(post))
        else:
            raise ValueError(kind)

    def stopper(*_):
        raise _Stop

    handles.append(adapter.layer(model, stop).register_forward_hook(stopper))
    try:
        model.base_model(**forward_kwargs, use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return captured
