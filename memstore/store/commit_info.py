"""The keys of a commit record's `info` that rewrites read back (provenance, revert,
squash, blame), checked when the record is read: a well-hashed record of another shape
(another machine's push, a hand edit) is one line naming the object, not a traceback deep
in a command nor a value silently read as another. Each key is optional (older records
lack the newer ones) but a revert's reverted, which every revert recorded; other keys are
not read back by a rewrite and are not checked.

    revert        reverted (a commit id), replayed (commit ids), sources (per copied
                  write: its set, its position, and the source write's commit, set and
                  position), restored (the index of the set of the facts it put back)
    squash        squashed, reverted (commit ids), sources (commits: ids; paths: per
                  request, writes as three numbers, a commit's place in commits, its set
                  and position), restored (positions of its requests)
    cherry-pick   picked (a commit id)"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .objects import OBJECT_ID


def _shown(x: Any) -> str:
    """`x` as an error quotes it: its first 60 characters (a forged value may be long)."""
    text = repr(x)
    return text if len(text) <= 60 else text[:60] + "…"


def _index(x: Any, n: int | None, what: str) -> int:
    """`x` as a position (below `n`, where given)."""
    if type(x) is not int or x < 0 or n is not None and x >= n:
        raise ValueError(f"info {what}: {_shown(x)} is not a position"
                         + (f" below {n}" if n is not None else ""))
    return x


def _id(x: Any, what: str) -> None:
    if not isinstance(x, str) or not OBJECT_ID.match(x):
        raise ValueError(f"info {what}: {_shown(x)} is not a commit id")


def _ids(x: Any, what: str) -> None:
    if not isinstance(x, list):
        raise TypeError(f"info {what} must be a list of commit ids")
    for oid in x:
        _id(oid, what)


def check(operation: str, info: dict[str, Any], sizes: Sequence[int]) -> None:
    """Raises TypeError/KeyError/ValueError where a key of `info` that
    `operation`'s commits record is of another shape; `sizes`: the requests of each of the
    commit's update sets."""
    if operation == "revert":
        _revert(info, sizes)
    elif operation == "squash":
        if len(sizes) > 1:  # one solve for all its facts (every version)
            raise ValueError(f"info sources and restored name a squash's requests by "
                             f"position: {len(sizes)} update sets, where a squash writes "
                             "at most one")
        _squash(info, sum(sizes))
    elif operation == "cherry-pick" and "picked" in info:
        _id(info["picked"], "picked")


def _revert(info: dict[str, Any], sizes: Sequence[int]) -> None:
    if "reverted" not in info:  # every revert recorded it
        raise KeyError("info reverted")
    _id(info["reverted"], "reverted")
    if "replayed" in info:
        _ids(info["replayed"], "replayed")
    sources = info.get("sources", [])
    if not isinstance(sources, list):
        raise TypeError("info sources must be a list")
    for x in sources:
        if not isinstance(x, list) or len(x) != 5:
            raise ValueError(f"info sources: {_shown(x)} is not [set, position, commit, "
                             "set, position]")
        s = _index(x[0], len(sizes), "sources")
        _index(x[1], sizes[s], "sources")
        _id(x[2], "sources")
        for k in x[3:]:
            _index(k, None, "sources")  # within its commit: Provenance checks
    if "restored" in info:  # each write of that set a copy of another (its source)
        r = _index(info["restored"], len(sizes), "restored")
        if {x[1] for x in sources if x[0] == r} != set(range(sizes[r])):
            raise ValueError(f"info restored: set {r} has writes with no source")


def _squash(info: dict[str, Any], n: int) -> None:
    for key in ("squashed", "reverted"):
        if key in info:
            _ids(info[key], key)
    restored = info.get("restored", [])
    if not isinstance(restored, list):
        raise TypeError("info restored must be a list of positions")
    for p in restored:
        _index(p, n, "restored")
    if "sources" not in info:
        return
    sources = info["sources"]
    if not isinstance(sources, dict) or not isinstance(sources.get("paths"), list):
        raise TypeError("info sources must hold commits and paths")
    _ids(sources.get("commits"), "sources commits")
    if len(sources["paths"]) != n:
        raise ValueError(f"info sources: {len(sources['paths'])} paths for {n} requests")
    n_commits = len(sources["commits"])
    for path in sources["paths"]:  # (one per request: checked fast, a squash may hold 10^5)
        if not isinstance(path, list) or len(path) % 3 or not all(
                type(x) is int and x >= 0 for x in path) or any(
                x >= n_commits for x in path[::3]):
            raise ValueError(f"info sources: {_shown(path)} is not writes of three "
                             "positions, the first one of commits")


def sources(operation: str, info: dict[str, Any]) -> list[tuple[str, int, int]]:
    """The writes (commit, set, position) a checked record names as its writes' sources."""
    if operation == "revert":
        return [(x[2], x[3], x[4]) for x in info.get("sources", [])]
    if operation == "squash" and "sources" in info:
        ids = info["sources"]["commits"]
        return [(ids[path[k]], path[k + 1], path[k + 2])
                for path in info["sources"]["paths"] for k in range(0, len(path), 3)]
    return []
