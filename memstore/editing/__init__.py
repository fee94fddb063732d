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
    if module is not None:
        return getattr(import_module(f".{module}", __name__), name)
    # a submodule, imported when first named: `import memstore.editing` alone imported
    # apply, memit, statistics, … before the names were lazy, so `memstore.editing.apply.
    # build_state` (the README's) worked without importing the submodule by name
    if name.isidentifier() and not name.startswith("__"):  # (hasattr probes: no import)
        try:
            return import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":  # a submodule's own import failed: say so
                raise
    raise AttributeError(f"module 'memstore.editing' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names `__getattr__` gives too (the lazy ones and the submodules, found without
    importing them), as `dir()` and tab completion listed them before the names were lazy."""
    from pkgutil import iter_modules

    return sorted({*globals(), *_EXPORTS, *(m.name for m in iter_modules(__path__))})
