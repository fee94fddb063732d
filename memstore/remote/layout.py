"""The remote layout, version 1: what a memstore remote holds, on any fsspec URL.

    memstore-remote.json         the format marker, written once when the remote is made:
                                 {"format": "memstore-remote", "version": 1,
                                  "base": {"hash": …, "spec": …, "info": …}}
    HEAD                         the branch a clone checks out: "ref: refs/heads/main"
    objects/ab/cdef…             immutable objects, named by the sha256 of their bytes
                                 (the same bytes and names as in `.memstore/objects/`)
    refs/heads/NAME              a branch: its commit id and a newline
    refs/tags/NAME               a tag: the same (`push --tags`); moved only by --force.
                                 A memstore without tags on remotes reads refs/heads/
                                 alone (fetch, clone, push, fsck pass refs/tags/ over),
                                 so a remote with tags is still version 1
    statistics/SAMPLE.LAYER.json a statistics record (only with `--with-stats`): sample id,
                                 layer, token count, description and its tensor object
    lock                         folders only: flock'ed while a branch is compared and swapped

No server of ours: any store fsspec reaches holds a remote. Objects are written before the
ref that makes them reachable, and the ref last, by compare-and-swap; a reader never trusts
the store: every object is re-hashed on arrival, a ref must hold a commit id. A remote of a
newer layout version is refused rather than half-understood, and so is a remote of another
base model: commits are only meaningful on the base whose hash they record."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import MemstoreError
from ..store.objects import canonical_json, check_object_id
from ..store.refs import HEADS, TAGS

FORMAT = "memstore-remote"
VERSION = 1
MARKER = "memstore-remote.json"
HEAD_FILE = "HEAD"
OBJECTS = "objects/"
STATISTICS = "statistics/"
LOCK = "lock"


class RemoteFormatError(MemstoreError):
    """The remote is not a memstore remote of a layout this memstore can read."""


@dataclass(frozen=True)
class Marker:
    """The remote's identity: its layout version and the base model its commits are on."""

    version: int
    base_hash: str
    base_spec: str
    base_info: dict[str, Any]

    def to_bytes(self) -> bytes:
        return canonical_json({"format": FORMAT, "version": self.version,
                               "base": {"hash": self.base_hash, "spec": self.base_spec,
                                        "info": self.base_info}}) + b"\n"

    @classmethod
    def parse(cls, data: bytes, where: str) -> Marker:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError("no memstore-remote format field")
            version = raw["version"]
            base = raw["base"]
            if not isinstance(version, int) or isinstance(version, bool) \
                    or not isinstance(base.get("hash"), str):
                raise TypeError("no version or base hash")
            if version < 1:  # layouts are numbered from 1
                raise ValueError(f"version {version}")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise RemoteFormatError(f"{where}: {MARKER} is damaged ({e})") from None
        if version > VERSION:
            raise RemoteFormatError(
                f"{where} has remote layout version {version}, newer than this memstore "
                f"reads ({VERSION}); upgrade memstore")
        return cls(version, base["hash"], str(base.get("spec", "")), base.get("info") or {})


def object_path(oid: str) -> str:
    check_object_id(oid)
    return f"{OBJECTS}{oid[:2]}/{oid[2:]}"


def branch_path(branch: str) -> str:
    return HEADS + branch


def tag_path(tag: str) -> str:
    return TAGS + tag


def temp_folder(path: str) -> str:
    """The folder (relative to the remote's root, '' for the root) where the temporary
    file of `path` is written before it is moved into place: `path`'s own, except that a
    ref's is refs/heads/ or refs/tags/ itself. A push killed outright leaves its temporary
    behind: beside ref 'topic/x', in refs/heads/topic/, that made a folder of the name a
    branch 'topic' needs, and kept it from being written."""
    for prefix in (HEADS, TAGS):
        if path.startswith(prefix):
            return prefix.rstrip("/")
    return path.rpartition("/")[0]


def statistics_path(sample: str, layer: int) -> str:
    return f"{STATISTICS}{sample}.{layer}.json"


def ref_bytes(commit: str) -> bytes:
    return check_object_id(commit).encode() + b"\n"


def parse_ref(data: bytes, where: str, ref: str | None = None,
              remote: str | None = None) -> str:
    """The commit id ref file `data` holds; else one line naming `where`, and for remote
    ref `ref` (refs/heads/NAME, refs/tags/NAME) the way out (`damaged_ref_way_out`, with
    the `remote`'s name where the caller knows it)."""
    text = data.decode("ascii", errors="replace").strip()
    try:
        return check_object_id(text)
    except MemstoreError:
        out = f"; {damaged_ref_way_out(ref, remote)}" if ref is not None else ""
        raise RemoteFormatError(f"{where} does not hold a commit id ({text[:20]!r}){out}") \
            from None


def damaged_ref_way_out(ref: str, remote: str | None = None) -> str:
    """What removes or replaces remote ref `ref` that holds no commit id (a bad copy, a
    hand edit), by compare-and-swap against the bytes there; `remote`: the remote's name,
    where the caller knows it (else the word REMOTE: push takes a name, not a URL)."""
    remote = remote or "REMOTE"
    tag = ref.startswith(TAGS)
    name = ref[len(TAGS if tag else HEADS):]
    replace = f"push --tags --force {remote}" if tag else f"push --force {remote} {name}"
    return (f"`memstore push --delete --force {remote} {ref}` removes it, `{replace}` "
            "replaces it")


def head_bytes(branch: str) -> bytes:
    return f"ref: {HEADS}{branch}\n".encode()


def parse_head(data: bytes) -> str | None:
    """The branch the remote's HEAD names; None when it names none."""
    text = data.decode("utf-8", errors="replace").strip()
    prefix = f"ref: {HEADS}"
    return text[len(prefix):] if text.startswith(prefix) else None


def statistics_record(sample: str, layer: int, n_tokens: int, description: str,
                      oid: str) -> bytes:
    return canonical_json({"id": sample, "layer": layer, "n_tokens": n_tokens,
                           "description": description, "object": oid}) + b"\n"


def parse_statistics_record(data: bytes, where: str, path: str) -> dict[str, Any]:
    """The record read from `path`, which must be the path its id and layer name (a record
    of layer 2 at SAMPLE.1.json would be taken for layer 1's statistics); each field of
    its type, the token count one the index can hold, the description the one its id is
    the hash of."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        for key, kind in (("id", str), ("layer", int), ("n_tokens", int),
                          ("description", str), ("object", str)):
            if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
                raise TypeError(f"{key} is not {'an integer' if kind is int else 'a string'}")
        if not 0 <= raw["n_tokens"] < 2**63 or raw["layer"] < 0:
            raise ValueError("a negative or oversized layer or token count")
        rec = {k: raw[k] for k in ("id", "layer", "n_tokens", "description")}
        rec["object"] = check_object_id(raw["object"])
    except (ValueError, KeyError, TypeError, MemstoreError, RecursionError) as e:
        raise RemoteFormatError(f"{where} is damaged ({e})") from None
    if statistics_path(rec["id"], rec["layer"]) != path:
        raise RemoteFormatError(f"{where} is damaged (it holds the record of layer "
                                f"{rec['layer']} of {rec['id'][:40]!r})")
    from ..editing.statistics import sample_id  # (with its engine: statistics move rarely)

    if sample_id(rec["description"]) != rec["id"]:  # fsck said ok, a fetch refused it
        raise RemoteFormatError(f"{where} is damaged (its description does not match its id)")
    return rec
