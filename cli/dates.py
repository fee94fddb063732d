"""The click type of a date option (`log --since`); the dates themselves are read by
memstore.store.dates, which `REF@{DATE}` reads them with too."""
from __future__ import annotations

import click

from memstore.store.dates import parse

__all__ = ["Date", "parse"]


class Date(click.ParamType):
    """A click option's value: the date as seconds since the epoch, or a usage error."""

    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            return parse(value)
        except ValueError as e:
            self.fail(f"{value[:60]!r}: {e}", param, ctx)
