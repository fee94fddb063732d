"""The directory an export is written to: checked before any work, written beside it and
renamed into place, so that an interrupted export leaves nothing under its name.

memstore writes only where the user said: OUT must not be a symbolic link (writing through
it would write elsewhere), and a non-empty OUT is replaced only with `force` and only when
it holds a previous memstore export (its manifest), never a directory of other files."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import MemstoreError

MANIFEST = "memstore-manifest.json"


def check_out(out_dir: str | Path, force: bool) -> Path:
    """OUT as an absolute path; an error when it is a symbolic link, not a directory, or a
    non-empty directory (unless `force` and it holds a previous export)."""
    out = Path(out_dir).absolute()
    if out.is_symlink():
        raise MemstoreError(f"{out} is a symbolic link; give the directory itself")
    if out.exists() and not out.is_dir():
        raise MemstoreError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise MemstoreError(f"{out} is not empty (use --force to replace it)")
        if not (out / MANIFEST).is_file():
            raise MemstoreError(f"{out} is not a memstore export; --force replaces only a "
                                "previous export")
    return out


@contextmanager
def written_beside(out: Path) -> Iterator[Path]:
    """A fresh directory beside `out`, renamed to `out` (replacing it) when the block
    succeeds, removed when it fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.memstore-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
