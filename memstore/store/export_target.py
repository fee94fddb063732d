"""Where an export may go, and how it takes its place.

An export is written into a fresh temporary directory beside OUT and renamed into place.
What it may replace is narrow: nothing (a missing or empty OUT), or, with `--force`, a
previous memstore export — a folder holding a memstore manifest and only the files that
manifest lists, each with the sha256 it records — never a symbolic link, the repository,
the base model, a folder holding either, or anything inside them. OUT itself may not be a
link; a link in the path above it is the user's own, followed (as cp and git follow one),
and the rest is checked on the real path it leads to. The check is made before
any work and again at the final rename: a folder that appeared or changed meanwhile (a
file added, removed or written to) is never replaced.

The temporary folders are named `.OUT.memstore-tmp-<host>-<pid>-<random>` (the export) and
`.OUT.memstore-old-<host>-<pid>-<random>` (the previous export, between the two renames of
`--force`), where OUT is the folder's name; where such a name would be longer than the file
system takes (an OUT name near its 255 bytes), OUT there is shortened to its first 32 bytes,
`~` and 16 hex digits of the sha256 of the whole name. A process killed outright cannot
remove them; the next export to the same OUT does (by either name), for a dead process of
this host only (memstore/leftovers.py): a temporary export is removed, and a previous
export left aside while OUT is missing is put back first."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from .. import leftovers
from ..errors import MemstoreError, ValidationError
from ..models.hashing import file_sha256
from .objects import OBJECT_ID

MANIFEST = "memstore-manifest.json"


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# What a format-1 export (before manifests listed their files) held besides its manifest:
# a flat Hugging Face checkpoint, nothing else.
_FORMAT1_FILES = frozenset({
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
    "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
    "vocab.txt", "model.safetensors", "model.safetensors.index.json"})
_FORMAT1_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


def is_manifest(m: Any) -> bool:
    """`m` has the shape of a memstore manifest: the base's hash, the tensors' hashes, the
    commit (an object id) and, from format 2, the hash of every file by its plain name."""
    if not (isinstance(m, dict) and isinstance(m.get("base"), dict)
            and isinstance(m["base"].get("hash"), str) and isinstance(m.get("tensors"), dict)):
        return False
    commit, files = m.get("commit"), m.get("files", {})
    return (all(isinstance(k, str) and isinstance(v, str) for k, v in m["tensors"].items())
            and (commit is None or (isinstance(commit, str) and bool(OBJECT_ID.match(commit))))
            and isinstance(files, dict)
            and all(isinstance(k, str) and Path(k).name == k and k not in ("", ".", "..")
                    and isinstance(v, str) for k, v in files.items()))


def _listed_files(out: Path) -> dict[str, str | None] | None:
    """The files a previous export's manifest lists (plus the manifest), each with the
    sha256 it records (None: the manifest itself, and every file of a format-1 manifest),
    or None when OUT holds no memstore manifest."""
    p = out / MANIFEST
    if p.is_symlink() or not p.is_file():
        return None
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not is_manifest(m):
        return None
    if "files" in m:
        return {**m["files"], MANIFEST: None}
    # format 1 manifests list tensors, not files: its files are a flat checkpoint's
    return {f.name: None for f in out.iterdir()
            if f.name in _FORMAT1_FILES or _FORMAT1_SHARD.fullmatch(f.name)} | {MANIFEST: None}


def _fingerprint(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Per entry of `folder`: inode, size and modification time (what changes when a file
    is added, removed, replaced or written to)."""
    out = {}
    for name in os.listdir(folder):
        st = os.lstat(folder / name)
        out[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


@dataclass
class Target:
    """OUT as checked before the export: `replaces` is (device, inode) of the previous
    export to replace (with --force), else None; `entries` its files' fingerprint as
    checked."""

    out: Path
    replaces: tuple[int, int] | None
    entries: dict[str, tuple[int, int, int]] | None = None
    made: tuple[Path, ...] = ()  # the folders above OUT that this export created

    def temporary(self) -> Path:
        self.made = tuple(reversed([a for a in self.out.parents if not os.path.lexists(a)]))
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            return _temp_dir_beside(self.out, "tmp-")
        except OSError as e:  # named by the temporary folder's name, which the user never gave
            self.unmake()
            raise MemstoreError(f"cannot write {self.out}: {e.strerror or e}") from None

    def unmake(self) -> None:
        """Removes the folders above OUT that this export created, deepest first, while
        they are empty (a failed export leaves nothing behind)."""
        for folder in reversed(self.made):
            try:
                os.rmdir(folder)
            except OSError:
                return

    def commit(self, tmp: Path) -> None:
        """Renames `tmp` into place; refuses (leaving OUT as it is) what appeared or
        changed since the check."""
        if self.replaces is None:
            try:
                os.rename(tmp, self.out)  # replaces at most an empty directory
            except OSError:
                raise MemstoreError(f"{self.out} appeared or filled up while exporting; "
                                    "nothing was replaced") from None
            return
        old = _temp_dir_beside(self.out, "old-")
        os.rmdir(old)
        os.rename(self.out, old)
        placed = False
        try:
            st = os.lstat(old)
            if (st.st_dev, st.st_ino) != self.replaces or _fingerprint(old) != self.entries:
                raise MemstoreError(f"{self.out} changed while exporting; nothing was replaced")
            try:
                os.rename(tmp, self.out)
            except OSError:
                raise MemstoreError(f"{self.out} appeared while exporting; the previous export "
                                    f"is kept in {old}") from None
            placed = True
        finally:  # refused or interrupted (Ctrl-C) before the new export took OUT's place:
            if not placed and not os.path.lexists(self.out):  # the previous one goes back
                os.rename(old, self.out)
        shutil.rmtree(old)  # never follows links inside


_SHORT_BYTES = 32  # of OUT's name, in a temporary's name that the whole would make too long


def short_name(name: str) -> str:
    """What a temporary beside OUT is named after where OUT's `name` makes it too long: its
    first 32 bytes (whole characters), `~` and 16 hex digits of its sha256."""
    head = name
    while len(os.fsencode(head)) > _SHORT_BYTES:
        head = head[:-1]
    return f"{head}~{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}"


def _temp_dir_beside(out: Path, kind: str) -> Path:
    """A new temporary folder `.OUT.memstore-<kind><host>-<pid>-<random>` beside `out`;
    OUT is short_name's where the whole name is too long for the file system."""
    try:
        return leftovers.make_temp_dir(out.parent, f".{out.name}.memstore-{kind}")
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
    return leftovers.make_temp_dir(out.parent, f".{short_name(out.name)}.memstore-{kind}")


def _is_export(folder: Path) -> bool:
    """`folder` holds a memstore manifest and only the files it lists."""
    listed = _listed_files(folder)
    if listed is None:
        return False
    return all(f.name in listed and not f.is_symlink() and f.is_file()
               for f in folder.iterdir())


def clean_beside(out: Path) -> None:
    """Removes what an export to `out` killed outright by a dead process of this host left
    beside it: its temporary folder, and a previous export it had set aside with --force
    (removed when OUT is back, put back when OUT is missing; one line on stderr)."""
    head = (f"(?:{re.escape(f'.{out.name}.memstore-')}"
            f"|{re.escape(f'.{short_name(out.name)}.memstore-')})")
    for p in leftovers.dead_leftovers(out.parent, head + "tmp-"):
        leftovers.remove(p)
    for p in leftovers.dead_leftovers(out.parent, head + "old-"):
        if not p.is_dir():
            continue
        if not any(p.iterdir()):  # killed between making the name and the first rename
            leftovers.remove(p)
        elif not os.path.lexists(out):  # killed between the two renames: it goes back
            try:
                os.rename(p, out)
            except OSError:
                continue
            what = "the previous export" if _is_export(out) else "what stood there"
            print(f"memstore: {out} was missing after an export killed while replacing it; "
                  f"put {what} back from {p.name}", file=sys.stderr)
        elif _is_export(p):  # the new export had taken OUT's place: it was to be removed
            leftovers.remove(p)


def check_target(out_dir: str | Path, force: bool, protected: dict[str, Path]) -> Target:
    """Validates OUT before any work. `protected`: what must never be written over or
    into, by description (the repository, the base model)."""
    raw = Path(os.path.abspath(out_dir))
    if raw.is_symlink():
        raise ValidationError(f"{out_dir} is a symbolic link; give the folder itself")
    try:
        out = raw.resolve()
    except (RuntimeError, OSError):  # pathlib's 'Symlink loop from ...' (RuntimeError)
        raise ValidationError(f"{out_dir}: a loop of symbolic links on the way") from None
    for what, p in protected.items():
        p = p.resolve()
        if _within(p, out):
            raise ValidationError(f"{out_dir} is or holds {what} ({p}); choose another folder")
        if _within(out, p):
            raise ValidationError(f"{out_dir} is inside {what} ({p}); choose another folder")
    above = next(a for a in out.parents if a.exists())
    if not above.is_dir():  # found before the work, not by the mkdir after it
        raise MemstoreError(f"{out_dir}: {above} is not a directory")
    clean_beside(out)
    if not out.exists():
        return Target(out, None)
    if not out.is_dir():
        raise MemstoreError(f"{out} exists and is not a directory")
    entries = sorted(os.listdir(out))
    if not entries:
        return Target(out, None)
    if not force:
        raise MemstoreError(f"{out} is not empty (use --force to replace a previous export)")
    st = os.lstat(out)
    # before the manifest and the hashes are read: a file written to meanwhile differs
    fingerprint = _fingerprint(out)
    listed = _listed_files(out)
    if listed is None:
        why = (f"its {MANIFEST} is a link, unreadable or no memstore manifest"
               if os.path.lexists(out / MANIFEST) else f"no {MANIFEST}")
        raise MemstoreError(f"{out} is not a memstore export ({why}); --force only replaces "
                            "a previous export")
    for name in sorted(fingerprint):
        p = out / name
        if name not in listed or p.is_symlink() or not p.is_file():
            raise MemstoreError(f"{out} holds {name!r}, which no memstore export wrote; "
                                "--force only replaces a previous export (move it away)")
        if listed[name] is not None and file_sha256(p) != listed[name]:
            raise MemstoreError(f"{out} holds {name!r}, changed since it was exported (not "
                                "the sha256 its manifest records); --force only replaces a "
                                "previous export as it was written (move it away)")
    return Target(out, (st.st_dev, st.st_ino), fingerprint)


@contextmanager
def written_beside(target: Target) -> Iterator[Path]:
    """A fresh temporary folder beside OUT, renamed into place (Target.commit) when the
    block succeeds, removed when it fails."""
    tmp = target.temporary()
    try:
        yield tmp
        _as_umask_allows(tmp)
        target.commit(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        target.unmake()
        # A failed write (a full disk, a quota) names no file: name the export's folder,
        # so that it is one line, not a traceback.
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(target.out)
        if isinstance(e, SafetensorError) and "I/O error" in str(e):
            raise MemstoreError(f"cannot write the export to {target.out}: {e}; nothing "
                                "was written") from None
        raise


def _as_umask_allows(folder: Path) -> None:
    """The modes a plain mkdir and open would have given: mkdtemp makes the folder 0700 and
    some writers make their files 0600, which would keep a serving process out."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for f in folder.iterdir():
        if f.is_file() and not f.is_symlink():
            os.chmod(f, 0o666 & ~mask)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Adds the sha256 of every file in `folder` to `manifest` ("files": what a later
    `--force` may replace and `verify` checks) and writes it as MANIFEST."""
    manifest["files"] = {f.name: file_sha256(f) for f in sorted(folder.iterdir())
                         if f.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def listed_file_problems(folder: Path, listed: dict[str, str]) -> list[str]:
    """One line per file the manifest lists that is missing or no longer has its hash."""
    problems = []
    for name, sha in sorted(listed.items()):
        p = folder / name
        if p.is_symlink():
            problems.append(f"{name}: a symbolic link, which memstore does not read through")
        elif missing(p):
            problems.append(f"{name}: listed in the manifest but missing")
        elif file_sha256(p) != sha:
            problems.append(f"{name}: differs from the manifest")
    return problems


def missing(path: Path) -> bool:
    """`path` is no file of the export's own: absent, a link, or not a regular file."""
    return path.is_symlink() or not path.is_file()
