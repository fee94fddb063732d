"""Exceptions. A `MemstoreError` is a user mistake or a refused operation: the CLI prints
its message as one line on stderr and exits non-zero, never with a traceback."""


class MemstoreError(Exception):
    """Base class for errors a user can act on."""


class ValidationError(MemstoreError):
    """Bad input (requests, settings, names), detected before any work is done."""


class NumericalError(MemstoreError):
    """NaN or inf appeared where a finite value is required."""


class MergeConflictError(MemstoreError):
    """A fact-level conflict (merge, cherry-pick, rebase, pull); `details` holds one line per
    conflicting fact. Here, not beside the rewrites, so that `fetch` (which defines pull's)
    imports no engine."""

    def __init__(self, message: str, details: list[str]) -> None:
        super().__init__(message)
        self.details = details
