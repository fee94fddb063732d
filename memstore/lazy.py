"""A package whose names are imported when first used: `memstore.editing` and
`memstore.store`, so that importing a light module of either (and the CLI's start-up) does
not import torch and transformers."""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pkgutil import iter_modules
from typing import Any


def lazy_names(package: str, path: list[str], exports: dict[str, str],
               names: Callable[[], dict[str, Any]]) -> tuple[Callable, Callable]:
    """The package's `__getattr__` and `__dir__`: an exported name from its module, and a
    submodule, imported when first named (`import memstore.store as s; s.refs`, the
    README's `memstore.editing.apply.build_state`, worked so before the names were lazy);
    `names` is the package's `globals`."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            return getattr(import_module(f".{module}", package), name)
        if name.isidentifier() and not name.startswith("__"):  # (hasattr probes: no import)
            try:
                return import_module(f".{name}", package)
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":  # a submodule's own import failed: say so
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        """The names `__getattr__` gives too (the submodules found without importing them),
        as `dir()` and tab completion listed them before the names were lazy."""
        return sorted({*names(), *exports, *(m.name for m in iter_modules(path))})

    return getattr_, dir_
