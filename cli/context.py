"""Opening the repository for a command: found from the current directory upwards (after
`memstore -C PATH` moved there), with the lock's waiting message going to stderr.
The library is imported on first use, so that `memstore --help` starts quickly."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .output import warn

# the key of click's context meta under which cli.main keeps the command line's words
TYPED = "memstore.typed"

if TYPE_CHECKING:
    from memstore.store.repository import Repository


def open_repo() -> Repository:
    from memstore.store.repository import Repository

    repo = Repository.open(on_wait=warn)
    repo.refs.on_warning = lambda message: warn(f"warning: {message}")  # as git's
    ctx = click.get_current_context(silent=True)
    repo.refs.typed = ctx.meta.get(TYPED, ()) if ctx is not None else ()
    repo.pin()  # a reading command sees one state, which gc does not remove under it
    return repo


def pass_repo(f: Callable) -> Callable:
    """Calls the command with an open Repository as its first argument, closed after."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with open_repo() as repo:
            return f(repo, *args, **kwargs)

    return wrapper
