"""fsck (is everything present, intact and consistent?) and gc (remove what nothing needs).

Reachable = the commits reachable from any ref (remote-tracking branches included) or a
detached HEAD, following parents and basis, with every object their records name, plus the
objects of all statistics and the stored running matrices of reachable commits."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..editing.settings import EditSettings
from ..errors import MemstoreError
from . import preserved
from .commits import Commit, load_requests
from .objects import CorruptObjectError, DiskObjectStore, MissingObjectError
from .refs import HEAD, HEADS
from .schema import transaction

if TYPE_CHECKING:
    from .repository import Repository


@dataclass(frozen=True)
class GcReport:
    commits: list[str]  # unreachable commits removed (or that would be)
    objects: list[str]  # objects removed (or that would be)
    bytes: int
    temp_files: int


def reachable_commits(repo: Repository) -> dict[str, Commit]:
    """Walks commit objects (the truth, not the index) from every ref. A missing or
    corrupt commit on the way raises: gc must not decide on a damaged history."""
    seen: dict[str, Commit] = {}
    stack = list(repo.refs.all().values())
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        if not repo.objects.contains(cid):
            raise MissingObjectError(f"commit {cid} is missing")
        commit = repo.get_commit(cid)
        seen[cid] = commit
        stack.extend(commit.parents)
        if commit.basis is not None:
            stack.append(commit.basis)
    return seen


def _statistics_objects(repo: Repository) -> set[str]:
    return {r["object"] for r in repo.db.query("select object from statistics")}


def _matrix_objects(repo: Repository, commits: list[str]) -> set[str]:
    return {r["object"] for c in commits
            for r in repo.db.query("select object from running_matrices where commit_id = ?", [c])}


def gc(repo: Repository, dry_run: bool = False) -> GcReport:
    with repo.lock():
        try:
            reachable = reachable_commits(repo)
        except (MissingObjectError, CorruptObjectError) as e:
            raise MemstoreError(f"gc refused, the history is damaged ({e})") from e
        dead_matrices = [c for c in preserved.cached_commits(repo) if c not in reachable]
        keep = ({o for c in reachable.values() for o in c.object_ids()} | _statistics_objects(repo)
                | _matrix_objects(repo, [c for c in preserved.cached_commits(repo) if c in reachable]))
        rows = {r["id"] for r in repo.db.query("select id from commits")}
        dead_commits = sorted(rows - set(reachable))
        dead_objects = sorted((set(repo.objects.iter()) - keep)
                              | {r["id"] for r in repo.db.query("select id from objects")} - keep)
        freed = sum(repo.objects.size(o) for o in dead_objects if repo.objects.contains(o))
        temps = repo.objects.temp_files() if isinstance(repo.objects, DiskObjectStore) else []
        if dry_run:
            return GcReport(dead_commits, dead_objects, freed, len(temps))
        # index rows first, then files: a crash in between leaves only orphan files
        with transaction(repo.db):
            preserved.forget(repo, dead_matrices)
            for cid in dead_commits:
                repo.db["requests"].delete_where("commit_id = ?", [cid])
                repo.db["commits"].delete(cid)
            for oid in dead_objects:
                repo.db["objects"].delete_where("id = ?", [oid])
        for oid in dead_objects:
            repo.objects.delete(oid)
        for t in temps:
            t.unlink(missing_ok=True)
        repo.forget_cached()
        return GcReport(dead_commits, dead_objects, freed, len(temps))


def fsck(repo: Repository, verify: bool = True) -> list[str]:
    """Every problem found, as one line each; an empty list means the repository is sound.
    `verify` re-hashes every object (reads everything)."""
    problems: list[str] = []
    store = repo.objects
    present = set(store.iter())
    corrupt: set[str] = set()
    if verify:
        for oid in sorted(present):
            try:
                store.get_bytes(oid, verify=True)
            except CorruptObjectError:
                corrupt.add(oid)
                problems.append(f"object {oid} is corrupt (its content does not match its name)")
    for row in repo.db.query("select id, size from objects"):
        if row["id"] not in present:
            problems.append(f"object {row['id']} is indexed but missing")
        elif row["id"] not in corrupt and store.size(row["id"]) != row["size"]:
            problems.append(f"object {row['id']} has size {store.size(row['id'])}, "
                            f"indexed as {row['size']}")
    rows = {r["id"]: r for r in repo.db.query("select * from commits")}
    stats = {(r["id"], r["layer"]): r for r in repo.db.query("select * from statistics")}
    for cid, row in sorted(rows.items()):
        problems.extend(_check_commit(repo, cid, row, rows, present, corrupt))
    for (sid, layer), row in sorted(stats.items()):
        if row["object"] not in present:
            problems.append(f"statistics {sid} layer {layer}: object {row['object']} is missing")
    problems.extend(_check_refs(repo, rows))
    problems.extend(_check_config(repo))
    return problems


def _check_commit(repo: Repository, cid: str, row: dict, rows: dict, present: set[str],
                  corrupt: set[str]) -> list[str]:
    at = f"commit {cid[:12]}"
    if cid not in present:
        return [f"{at}: its object is missing"]
    if cid in corrupt:
        return [f"{at}: its object is corrupt"]
    try:
        commit = repo.get_commit(cid)
    except (MemstoreError, KeyError, TypeError, ValueError) as e:
        return [f"{at}: unreadable record ({e})"]
    out = []
    if json.loads(row["parents"]) != list(commit.parents) or row["basis"] != commit.basis:
        out.append(f"{at}: index row disagrees with the record (parents or basis)")
    for other in [*commit.parents, *([commit.basis] if commit.basis else [])]:
        if other not in rows:
            out.append(f"{at}: parent or basis {other[:12]} is not a known commit")
    out.extend(set_object_problems(commit, present, corrupt, at))
    # statistics a set names but this repository lacks are not damage: they are derived
    # (a clone fetched without --with-stats recomputes them when a replay needs them)
    if not out:
        out.extend(_check_request_rows(repo, commit))
    return out


def set_object_problems(commit: Commit, present: set[str], corrupt: set[str],
                        at: str) -> list[str]:
    """The objects of `commit`'s update sets that are missing or corrupt, one line each
    (here and in a remote's fsck)."""
    out = []
    for i, s in enumerate(commit.update_sets):
        for oid in s.object_ids():
            if oid not in present:
                out.append(f"{at}: object {oid} of update set {i} is missing")
            elif oid in corrupt:
                out.append(f"{at}: object {oid} of update set {i} is corrupt")
    return out


def _check_request_rows(repo: Repository, commit: Commit) -> list[str]:
    got = [(r["set_index"], r["position"], r["subject"], r["prompt"], r["target_new"])
           for r in repo.db.query("select * from requests where commit_id = ? "
                                  "order by set_index, position", [commit.id])]
    want = [(i, p, r.subject, r.prompt, r.target_new)
            for i, s in enumerate(commit.update_sets)
            for p, r in enumerate(load_requests(repo.objects, s))]
    if got != want:
        return [(f"commit {commit.id[:12]}: request rows disagree with the record "
                 f"({len(got)} rows, {len(want)} requests)")]
    return []


def _check_refs(repo: Repository, rows: dict) -> list[str]:
    out = []
    for r in repo.db.query("select * from refs order by name"):
        if r["symbolic"] is not None:
            if r["name"] != HEAD or not r["symbolic"].startswith(HEADS):
                out.append(f"ref {r['name']}: bad symbolic target {r['symbolic']!r}")
        elif r["target"] not in rows:
            out.append(f"ref {r['name']} points to {r['target']}, which is not a known commit")
    if not list(repo.db.query("select name from refs where name = ?", [HEAD])):
        out.append("HEAD is missing")
    return out


def _check_config(repo: Repository) -> list[str]:
    out = []
    try:
        _ = repo.base
    except (MemstoreError, KeyError, TypeError) as e:
        out.append(f"config: the base record is unreadable ({e})")
    raw = repo.get_config("settings")
    if raw is not None:
        try:
            EditSettings.from_dict(raw)
        except (MemstoreError, TypeError) as e:
            out.append(f"config: the editor settings are invalid ({e})")
    return out
