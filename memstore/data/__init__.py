"""Data shipped with memstore: the built-in statistics corpus (see README.md here)."""
from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

WIKIPEDIA = Path(__file__).with_name("wikipedia.txt.gz")


def wikipedia_paragraphs() -> Iterator[str]:
    """The paragraphs of the built-in Wikipedia sample, in order."""
    with gzip.open(WIKIPEDIA, "rt", encoding="utf-8", newline="\n") as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n")
