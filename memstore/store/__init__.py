"""The repository: content-addressed objects, the SQLite index, refs, commits, history.

Names are imported lazily, so that `memstore.store.lock` (and the CLI's start-up) does not
pay for importing torch."""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Repository": "repository", "BaseRecord": "repository", "StatisticsRecord": "repository",
    "NotARepositoryError": "repository",
    "Commit": "commits", "UpdateSet": "commits", "LayerRecord": "commits",
    "DenseLayerUpdate": "commits",
    "LiveFact": "history", "SetRef": "history",
    "GcReport": "maintenance",
    "ObjectStore": "objects", "DiskObjectStore": "objects", "MemoryObjectStore": "objects",
    "MissingObjectError": "objects", "CorruptObjectError": "objects",
    "Head": "refs", "RefConflictError": "refs", "check_ref_name": "refs",
    "RepositoryLock": "lock", "LockedError": "lock",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        return getattr(import_module(f".{module}", __name__), name)
    # a submodule, imported when first named (as memstore.editing's): `import memstore.store
    # as s; s.refs` was an AttributeError until `memstore.store.refs` was imported by name
    if name.isidentifier() and not name.startswith("__"):  # (hasattr probes: no import)
        try:
            return import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":  # a submodule's own import failed: say so
                raise
    raise AttributeError(f"module 'memstore.store' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names `__getattr__` gives too (the lazy ones and the submodules, found without
    importing them), as `dir()` and tab completion listed them before the names were lazy."""
    from pkgutil import iter_modules

    return sorted({*globals(), *_EXPORTS, *(m.name for m in iter_modules(__path__))})
