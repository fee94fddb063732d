"""The repository: content-addressed objects, the SQLite index, refs, commits, history.

Names are imported lazily, so that `memstore.store.lock` (and the CLI's start-up) does not
pay for importing torch."""
from __future__ import annotations

from ..lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, __path__, _EXPORTS, lambda: globals())
