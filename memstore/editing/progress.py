"""Progress bars on long work; quiet when stderr is not a terminal."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def on_terminal() -> bool:
    """Whether bars are drawn: stderr is a terminal and MEMSTORE_QUIET is unset."""
    return sys.stderr.isatty() and not os.environ.get("MEMSTORE_QUIET")


def progress(enabled: bool = True, **kwargs) -> tqdm:
    return tqdm(disable=not (enabled and on_terminal()), leave=False, dynamic_ncols=True,
                **kwargs)
