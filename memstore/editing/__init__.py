"""MEMIT: requests, z-vectors, keys, statistics, the solve, apply.

Names are imported lazily (as in `memstore.store`), so that importing a light module of the
package (`memstore.editing.requests`, `.settings`) does not import torch and transformers:
the CLI's commands that never touch the model start in a fraction of a second."""
from __future__ import annotations

from ..lazy import lazy_names

_EXPORTS = {
    "apply_updates": "apply", "build_state": "apply", "unapply_updates": "apply",
    "default_settings": "memit", "execute_memit": "memit",
    "Request": "requests", "validate_requests": "requests",
    "EditResult": "result", "LayerUpdate": "result",
    "EditSettings": "settings",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_names(__name__, __path__, _EXPORTS, lambda: globals())
