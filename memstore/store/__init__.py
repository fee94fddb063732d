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
    if module is None:
        raise AttributeError(f"module 'memstore.store' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    """The lazy names too, as `dir()` and tab completion listed them before they were lazy
    (its submodules are attributes once imported, as any package's: `__getattr__` gives
    none, so none is listed before)."""
    return sorted({*globals(), *_EXPORTS})
