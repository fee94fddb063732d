"""Progress bars on long work; quiet when stderr is not a terminal."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(enabled: bool = True, **kwargs) -> tqdm:
    quiet = not enabled or not sys.stderr.isatty() or bool(os.environ.get("MEMSTORE_QUIET"))
    return tqdm(disable=quiet, leave=False, dynamic_ncols=True, **kwargs)
