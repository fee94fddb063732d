"""Exceptions. A `MemstoreError` is a user mistake or a refused operation: the CLI prints
its message as one line on stderr and exits non-zero, never with a traceback."""


class MemstoreError(Exception):
    """Base class for errors a user can act on."""


class ValidationError(MemstoreError):
    """Bad input (requests, settings, names), detected before any work is done."""


class NumericalError(MemstoreError):
    """NaN or inf appeared where a finite value is required."""
