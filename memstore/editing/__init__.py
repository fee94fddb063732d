"""MEMIT: requests, z-vectors, keys, statistics, the solve, apply.

Names are imported lazily (as in `memstore.store`), so that importing a light module of the
package (`memstore.editing.requests`, `.settings`) does not import torch and transformers:
the CLI's commands that never touch the model start in a fraction of a second."""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "apply_updates": "apply", "build_state": "apply", "unapply_updates": "apply",
    "default_settings": "memit", "execute_memit": "memit",
    "Request": "requests", "validate_requests": "requests",
    "EditResult": "result", "LayerUpdate": "result",
    "EditSettings": "settings",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memstore.editing' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
