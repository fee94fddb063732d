"""fsck (is everything present, intact and consistent?) and gc (remove what nothing needs).

Reachable = the commits reachable from any ref (remote-tracking branches included) or a
detached HEAD, following parents and basis, with every object their records name, plus the
objects of all statistics records and the newest ref snapshots. gc also keeps what git's
gc keeps: the commits a reflog entry names that has not expired (store.reflog: 90 days, 30
for a commit the entry's ref does not reach, HEAD's no ref, as git's; gc deletes the
expired entries). That holds the detached
commit `switch -` goes back to (previous_head) as long as git's does: `switch -` (git's
`@{-1}`) is read from the entry of the switch that left it, which names it; once that
expires (`reflog expire --expire=now --all`), `switch -` has no switch to read and gc
removes the commit. Rebuilding a lost or damaged index is `repair`."""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from safetensors import SafetensorError

from ..editing.progress import progress
from ..errors import MemstoreError
from . import commit_info, config, previous_head, reflog, snapshots, stats_records, upstreams
from .commits import Commit, CorruptRecordError, load_layer, load_requests, load_zs
from .objects import (
    OBJECT_ID,
    CorruptObjectError,
    DiskObjectStore,
    MissingObjectError,
    ObjectStore,
    corrupt_message,
    folder_message,
)
from .refs import (
    HEAD,
    HEADS,
    REMOTES,
    TAGS,
    Refs,
    hand_set,
    held_sound,
    line_name,
    name_problem,
    names_branch,
    remote_head,
    shell_word,
)
from .schema import (
    DamagedIndexError,
    parents_of,
    read_snapshot,
    size_of,
    time_of,
    transaction,
    wait_for_readers,
)
from .storage import Storage


@dataclass(frozen=True)
class GcReport:
    commits: list[str]  # unreachable commits removed (or that would be)
    objects: list[str]  # objects removed (or that would be)
    bytes: int
    temp_files: int
    reflog_entries: int = 0  # expired reflog entries deleted (or that would be)


def reachable_commits(store: Storage, refs: Refs) -> dict[str, Commit]:
    """Walks commit objects (the truth, not the index) from every ref. A missing or
    corrupt commit on the way raises: gc must not decide on a damaged history."""
    seen: dict[str, Commit] = {}
    stack = list(refs.all().values())
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        if not store.objects.contains(cid):
            raise MissingObjectError(f"commit {cid} is missing")
        commit = store.commit(cid)
        seen[cid] = commit
        stack.extend(commit.parents_and_basis)
    return seen


def _also_kept(store: Storage, roots: Iterable[str], seen: dict[str, Commit]) -> None:
    """Adds to `seen` the commits `roots` (what reflog entries name) reach; one whose
    record is missing or corrupt is passed over, with what only it reaches (fsck names
    it): damage there must not stop a gc, as damage under a ref does, since no ref needs
    it."""
    stack = [c for c in roots if c not in seen]
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        try:
            commit = store.commit(cid)
        except (MemstoreError, KeyError, TypeError, ValueError):
            continue
        seen[cid] = commit
        stack.extend(commit.parents_and_basis)


def _reached(starts: Iterable[str], reachable: dict[str, Commit]) -> set[str]:
    """The commits of `reachable` (what every ref reaches) that `starts` reach, by the
    edges `reachable_commits` follows (the reflog's expiry asks it per ref, as git's)."""
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        cid = stack.pop()
        if cid in seen or cid not in reachable:
            continue
        seen.add(cid)
        commit = reachable[cid]
        stack.extend(commit.parents_and_basis)
    return seen


def _statistics_objects(store: Storage) -> set[str]:
    return {o for r in store.db.query("select object, record from statistics")
            for o in (r["object"], r["record"]) if o}


def gc(store: Storage, refs: Refs, lock: Callable[[], AbstractContextManager[None]],
       dry_run: bool = False, on_wait: Callable[[str], None] | None = None,
       expire: float = reflog.EXPIRE,
       expire_unreachable: float = reflog.EXPIRE_UNREACHABLE) -> GcReport:
    """Removes what nothing keeps (the module docstring); `expire`, `expire_unreachable`:
    the reflog's expiry in seconds (git's gc.reflogExpire, gc.reflogExpireUnreachable)."""
    with lock():
        try:
            reachable = reachable_commits(store, refs)
        except (MissingObjectError, CorruptObjectError) as e:
            raise MemstoreError(f"gc refused, the history is damaged ({e})") from e
        reaches = reflog.reaching(refs.all(), lambda tips: _reached(tips, reachable))
        expired = [e.id for e in reflog.expired(store.db, time.time(), reaches, expire,
                                                 expire_unreachable)]
        _also_kept(store, reflog.kept_commits(store.db, expired), reachable)
        old_snapshots = snapshots.pruned(store.db)
        # running matrices are no longer stored (store.running): those of earlier
        # versions are removed like any unreachable object
        keep = ({o for c in reachable.values() for o in c.object_ids()}
                | _statistics_objects(store) | set(snapshots.kept(store.db)))
        rows = {r["id"] for r in store.db.query("select id from commits")}
        for cid in rows:
            if not isinstance(cid, str):
                raise DamagedIndexError(_no_commit(cid))
        dead_commits = sorted(rows - set(reachable))
        alive = rows - set(dead_commits)
        expired = sorted(set(expired) | {e.id for e in reflog.stale(store.db,
                                                                    alive.__contains__)})
        indexed = {r["id"] for r in store.db.query("select id from objects")}
        for oid in indexed:
            if not _is_object_id(oid):
                raise DamagedIndexError(_no_object(oid))
        dead_objects = sorted((set(store.objects.iter()) - keep) | indexed - keep)
        if isinstance(store.objects, DiskObjectStore):
            # a folder at an object's path, which nothing keeps: memstore deletes no folder,
            # and finding it mid-way would leave its row (and those before it) deleted
            for oid in dead_objects:
                if store.objects.is_folder(oid):
                    raise MemstoreError(
                        f"gc refused: {folder_message(oid, store.objects.path(oid))}; "
                        "nothing was changed")
        freed = sum(store.objects.size(o) for o in dead_objects if store.objects.contains(o))
        temps = store.objects.temp_files() if isinstance(store.objects, DiskObjectStore) else []
        if dry_run:
            return GcReport(dead_commits, dead_objects, freed, len(temps), len(expired))
        # index rows first, then files: a crash in between leaves only orphan files
        with transaction(store.db):
            store.db["running_matrices"].delete_where("1 = 1")
            reflog.delete(store.db, expired)
            for seq, _ in old_snapshots:
                store.db["snapshots"].delete(seq)
            for cid in dead_commits:
                store.db["requests"].delete_where("commit_id = ?", [cid])
                store.db["commits"].delete(cid)
            for oid in dead_objects:
                store.db["objects"].delete_where("id = ?", [oid])
        # a command reading the rows as they were (a commit that HEAD named when it began)
        # reads their files too: they go once it is done
        wait_for_readers(store.db, on_wait)
        for oid in dead_objects:
            store.objects.delete(oid)
        for t in temps:
            t.unlink(missing_ok=True)
        store.forget_cached()
        return GcReport(dead_commits, dead_objects, freed, len(temps), len(expired))


def _size(objects, oid: str) -> int | None:
    """The size of an object, None where a gc removed it since it was listed."""
    try:
        return objects.size(oid)
    except MissingObjectError:
        return None


def _is_object_id(oid: object) -> bool:
    return isinstance(oid, str) and OBJECT_ID.match(oid) is not None


def _no_object(oid: object) -> str:
    return (f"the index's objects table holds a row naming no object ({str(oid)[:70]!r}); "
            "run `memstore fsck --repair`")


def _no_commit(cid: object) -> str:
    """A commits row whose id is no text (NULL, which SQLite lets a TEXT primary key hold):
    no commit is named by it (a text id that names none is 'its object is missing')."""
    return (f"the index's commits table holds a row of no commit id ({cid!r}); run "
            "`memstore fsck --repair`")


def rehash(objects: ObjectStore, oids: Iterable[str]) -> tuple[set[str], set[str]]:
    """Of `oids`, those missing and those corrupt (not hashing to their names, or no
    regular file of their own), each object read a chunk at a time as it is hashed (memory
    stays flat), a progress bar counting bytes on a terminal (fsck, fetch --refetch)."""
    missing: set[str] = set()
    sizes = {}
    for oid in oids:
        try:
            sizes[oid] = objects.size(oid)
        except MissingObjectError:
            missing.add(oid)
    corrupt: set[str] = set()
    with progress(total=sum(sizes.values()), desc="checking objects", unit="B",
                  unit_scale=True, unit_divisor=1024) as bar:
        for oid in sorted(sizes):
            try:
                for chunk in objects.chunks(oid):
                    bar.update(len(chunk))
            except MissingObjectError:
                missing.add(oid)
            except CorruptObjectError:
                corrupt.add(oid)
    return missing, corrupt


def fsck(store: Storage, refs: Refs, verify: bool = True) -> list[str]:
    """Every problem found, as one line each; an empty list means the repository is sound.
    `verify` re-hashes every object (reads everything).

    It takes no lock: the objects are listed (and hashed), then every row is read in ONE
    read transaction, and the objects are listed again inside it. A writer writes its
    objects before the transaction that indexes them, so every row read names an object of
    the second listing; gc deletes rows before files, so an object of the first listing
    that is gone from the second was removed after the rows were read, which is no damage."""
    problems: list[str] = []
    objects = store.objects
    if isinstance(objects, DiskObjectStore):
        problems.extend(f"{p} is a symbolic link (memstore never writes through one)"
                        for p in objects.links())
    present = set(objects.iter())
    # a folder at an object's path: named for what it is (the user removes it: memstore
    # deletes no folder), and unreadable as a corrupt object is, whether or not `verify`
    corrupt = {o for o in present if objects.is_folder(o)} \
        if isinstance(objects, DiskObjectStore) else set()
    problems.extend(folder_message(oid, objects.path(oid)) for oid in sorted(corrupt))
    if verify:
        # one missing now was removed since it was listed: a gc running now, which drops
        # the index rows first (read below)
        missing, bad = rehash(objects, present - corrupt)
        present -= missing
        corrupt |= bad
        problems.extend(corrupt_message(oid) for oid in sorted(bad))
    with read_snapshot(store.db):
        return problems + _check_index(store, refs, present | set(objects.iter()), corrupt,
                                       verify)


def _check_index(store: Storage, refs: Refs, present: set[str], corrupt: set[str],
                 verify: bool = True) -> list[str]:
    """fsck's checks of the rows, all read in one transaction, against the objects (and,
    with `verify`, of every layer update's tensors)."""
    objects, problems = store.objects, _check_sqlite(store)
    rows = {r["id"]: r for r in store.db.query("select * from commits")}
    for row in store.db.query("select id, size from objects"):
        if not _is_object_id(row["id"]):
            problems.append(_no_object(row["id"]))
        elif row["id"] not in present:
            if row["id"] not in rows:  # a commit's record: its one line is the commit's
                problems.append(f"object {row['id']} is indexed but missing")
        elif row["id"] not in corrupt and (size := _size(objects, row["id"])) not in \
                (None, row["size"]):
            problems.append(f"object {row['id']} has size {size}, indexed as {row['size']}")
    for cid in [c for c in rows if not isinstance(c, str)]:
        problems.append(_no_commit(cid))
        del rows[cid]
    stats = list(store.db.query("select * from statistics order by id, layer"))
    try:
        base = config.read_base(store.db)
    except MemstoreError:
        base = None  # reported by _check_config
    for cid, row in sorted(rows.items()):
        problems.extend(_check_commit(store, cid, row, rows, present, corrupt, base, verify))
    for row in stats:
        try:
            rec = stats_records.row_record(row)
        except DamagedIndexError as e:
            problems.append(str(e))
            continue
        for what, oid in (("object", rec.object), ("record", rec.record)):
            if oid and oid not in present:
                problems.append(f"statistics {rec.id} layer {rec.layer}: {what} {oid} is missing")
        if rec.record and rec.record in present and rec.record not in corrupt:
            problems.extend(_stats_row_problems(store, rec))
    problems.extend(_check_refs(store, refs, rows))
    problems.extend(_check_config(store))
    # an entry naming a commit whose record is here damaged, or that a ref names, is that
    # object's or that ref's line (fsck --repair keeps the entry: the commit may come back)
    named = {r["target"] for r in store.db.query("select target from refs")}
    if not verify:  # (with it, every object here was hashed)
        # a commit an entry names, not indexed but here: its record may be corrupt (left
        # out by `fsck --repair`, which keeps the entry): hashed, so that --quick says what
        # fsck says, not that the repair drops the entry
        here = {row["new"] for row in reflog.rows(store.db) if reflog.malformed(row) is None
                and row["new"] not in rows and row["new"] in present
                and row["new"] not in corrupt}
        _, bad = rehash(objects, here)
        corrupt = corrupt | bad
        problems.extend(corrupt_message(oid) for oid in sorted(bad))
    problems.extend(reflog.problems(store.db,
                                    lambda c: c in rows or c in corrupt or c in named,
                                    lambda c: c in present and _commit_record(objects, c)))
    return problems


def _commit_record(objects: ObjectStore, oid: str) -> bool:
    """Whether object `oid` (here, and hashed: not corrupt) is a commit record, as `fsck
    --repair`'s scan reads one: a JSON object, no ref snapshot nor statistics record."""
    try:
        data = objects.get_bytes(oid)
        if data[:1] != b"{" or snapshots.parse(data) is not None or \
                stats_records.parse_record(data) is not None:
            return False
        Commit.from_json(oid, json.loads(data))
    except (MemstoreError, ValueError, KeyError, TypeError, RecursionError):
        return False
    return True


def _check_sqlite(store: Storage) -> list[str]:
    """SQLite's full check of the index file: a b-tree of an index that disagrees with its
    table (one flipped byte) passes the quick check every open runs, and a query that
    reads that index (gc's) sees rows the table lacks."""
    said = [r[0] for r in store.db.execute("PRAGMA integrity_check").fetchall()]
    if said == ["ok"]:
        return []
    more = f" and {len(said) - 1} more" if len(said) > 1 else ""
    return [(f"index.db is damaged (SQLite's integrity check says: {said[0]}{more}); run "
             "`memstore fsck --repair`")]


def _stats_row_problems(store: Storage, rec: stats_records.StatisticsRecord) -> list[str]:
    """A statistics row that says other than its record object (another layer's tensor,
    another sample's description): every solve would use it, unchecked."""
    try:
        record = stats_records.parse_record(store.objects.get_bytes(rec.record))
    except MemstoreError:
        record = None
    at = f"statistics {rec.id} layer {rec.layer}"
    if record is None:
        return [f"{at}: its record {rec.record} is not a statistics record"]
    if not stats_records.agrees(rec, record):
        return [f"{at}: index row disagrees with its record; run `memstore fsck --repair`"]
    try:
        held = stats_records.layer_of(store.objects.get_tensors(rec.object))
    except (MemstoreError, SafetensorError):
        return []  # a missing or corrupt object is named with the objects
    if held not in (None, rec.layer):
        return [(f"{at}: its object {rec.object} holds layer {held}'s matrix; run `memstore "
                 "fsck --repair`")]
    return []


def _check_commit(store: Storage, cid: str, row: dict, rows: dict, present: set[str],
                  corrupt: set[str], base: config.BaseRecord | None,
                  verify: bool = True) -> list[str]:
    at = f"commit {cid[:12]}"
    if cid not in present:
        return [f"{at}: its object is missing"]
    if cid in corrupt:  # one line per damage: the object's ('is corrupt', or the folder's)
        return []
    try:
        commit = store.commit(cid)
    except (MemstoreError, KeyError, TypeError, ValueError) as e:
        # (the error's way out, `run memstore fsck`, left off: this is fsck)
        return [f"{at}: unreadable record ({str(e).split('; run `memstore fsck', 1)[0]})"]
    out = []
    try:
        parents = parents_of(row)
        time = time_of(row)
        size_of(row)
    except DamagedIndexError as e:
        return [str(e)]
    if parents != commit.parents or row["basis"] != commit.basis or time != commit.time \
            or row["base_hash"] != commit.base or row["operation"] != commit.operation:
        # (a commit checks its parents' base rows; merge and revert find reverts by rows)
        out.append(f"{at}: index row disagrees with the record (parents, basis, time, base "
                   "or operation)")
    # once each (a commit's first parent is its basis too); where the record is here (its
    # row alone deleted), the way back is said: log, status and the writers refuse such a
    # history with 'run `memstore fsck`'
    for other in dict.fromkeys(commit.parents_and_basis):
        if other not in rows:
            way = ("; its record is in the object store: `memstore fsck --repair` rebuilds "
                   "its row" if other in present and other not in corrupt else "")
            out.append(f"{at}: parent or basis {other[:12]} is not a known commit{way}")
    out.extend(set_object_problems(commit, present, corrupt, at))
    out.extend(_base_problems(commit, base, at))
    # statistics a set names but this repository lacks are not damage: they are derived
    # (a clone fetched without --with-stats recomputes them when a replay needs them)
    if not out:
        out.extend(_check_request_rows(store, commit))
        out.extend(_source_problems(store, commit, rows))
        out.extend(_pick_problems(store, commit, rows))
        out.extend(_restored_problems(store, commit, rows))
    if not out and verify:
        out.extend(_layer_problems(store, commit))
    return out


def _source_problems(store: Storage, commit: Commit, rows: dict) -> list[str]:
    """The writes its record names as sources (a revert's, a squash's) that a commit the
    repository holds has not: blame, revert and squash refuse the record (a commit not
    held is one gc or a clone left out)."""
    out = []
    for c, i, p in commit_info.sources(commit.operation, commit.info):
        try:
            sets = store.commit(c).update_sets if c in rows else None
        except (MemstoreError, KeyError, TypeError, ValueError):
            continue  # that commit's own check names it
        if sets is not None and not (i < len(sets) and p < sets[i].n):
            out.append(f"commit {commit.id[:12]}: its record names request {p} of set {i} "
                       f"of commit {c[:12]} as a source, which that commit has not")
    return out


def _restored_problems(store: Storage, commit: Commit, rows: dict) -> list[str]:
    """A revert recording facts it put back (info `restored`) of a commit, held here, that
    is no merge: only a revert of a merge puts facts back, and the rewrites read the key
    as that (an earlier revert it undid, writes that hold a fact again)."""
    target = commit.info.get("reverted") if commit.operation == "revert" else None
    if "restored" not in commit.info or target not in rows:
        return []
    try:
        merged = len(store.commit(target).parents) > 1
    except (MemstoreError, KeyError, TypeError, ValueError):
        return []  # that commit's own check names it
    if merged:
        return []
    return [(f"commit {commit.id[:12]}: a revert of {target[:12]}, no merge, that records "
             "facts it put back (only a revert of a merge does)")]


def _pick_problems(store: Storage, commit: Commit, rows: dict) -> list[str]:
    """A cherry-pick's sets whose requests are not, in order, among those of the commit it
    picked, where the repository holds it: blame follows a pick's writes to that commit's
    by them (Provenance.picked_from) and refuses such a record."""
    picked = commit.info.get("picked") if commit.operation == "cherry-pick" else None
    if picked not in rows:
        return []
    try:
        theirs = [(r.subject, r.prompt, r.target_new) for s in store.commit(picked).update_sets
                  for r in load_requests(store.objects, s)]
        mine = [[(r.subject, r.prompt, r.target_new) for r in load_requests(store.objects, s)]
                for s in commit.update_sets]
    except (MemstoreError, KeyError, TypeError, ValueError):
        return []  # that commit's own check names it
    out = []
    for i, facts in enumerate(mine):
        left = iter(theirs)
        if not all(f in left for f in facts):  # in order: each found after the last
            out.append(f"commit {commit.id[:12]}: a cherry-pick of {picked[:12]} whose set "
                       f"{i} holds requests that commit has not")
    return out


def _layer_problems(store: Storage, commit: Commit) -> list[str]:
    """Each layer update read as a command reads it (finite matrices of one update's
    shapes): a well-hashed object of another form failed those commands, 'run memstore
    fsck', and fsck said ok."""
    out = []
    for i, s in enumerate(commit.update_sets):
        reads = [(f"layer {layer}", lambda layer=layer, record=record: load_layer(
            store.objects, layer, record)) for layer, record in sorted(s.layers.items())]
        for what, read in [*reads, ("z-vectors", lambda s=s: load_zs(store.objects, s))]:
            try:
                read()
            except CorruptRecordError as e:
                said = str(e).removesuffix("; run `memstore fsck`")
                out.append(f"commit {commit.id[:12]}: update set {i} {what}: {said}")
    return out


def _base_problems(commit: Commit, base: config.BaseRecord | None, at: str) -> list[str]:
    """A commit made on another base model, or writing a layer the base model lacks (use
    would refuse it; fsck says so ahead)."""
    if base is None:
        return []
    if commit.base != base.hash:
        return [f"{at}: made on another base model than this repository's"]
    n = base.info.get("n_layers")
    if not isinstance(n, int):
        return []
    return [f"{at}: update set {i} writes layer {l}, which the base model ({n} layers) lacks"
            for i, s in enumerate(commit.update_sets) for l in sorted(s.layers) if l >= n]


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


def _check_request_rows(store: Storage, commit: Commit) -> list[str]:
    got = [(r["set_index"], r["position"], r["subject"], r["prompt"], r["target_new"])
           for r in store.db.query("select * from requests where commit_id = ? "
                                   "order by set_index, position", [commit.id])]
    try:
        want = [(i, p, r.subject, r.prompt, r.target_new)
                for i, s in enumerate(commit.update_sets)
                for p, r in enumerate(load_requests(store.objects, s))]
    except MemstoreError as e:  # unhashed with --quick: a damaged request list is read here
        return [f"commit {commit.id[:12]}: {e}"]
    if got != want:
        return [(f"commit {commit.id[:12]}: request rows disagree with the record "
                 f"({len(got)} rows, {len(want)} requests); `memstore fsck --repair` "
                 "rebuilds them from it")]
    return []


def _dangling(name: str, symbolic: str) -> str:
    """fsck's line of a remote's HEAD (`name`) naming `symbolic`, a remote-tracking branch
    that is not here (git 2.39's fsck: 'refs/remotes/origin/HEAD: invalid sha1 pointer'),
    with the ways out. Not damage (not stuck: the snapshot holds the row as it is)."""
    remote = shell_word(name[len(REMOTES):-len("/HEAD")])
    return (f"ref {line_name(name)} names {line_name(symbolic)}, which is not here (dangling: "
            f"its branch was pruned or deleted); `memstore remote set-head {remote} -a` "
            "points it at the remote's HEAD again, `-d` deletes it")


def _check_refs(store: Storage, refs: Refs, rows: dict) -> list[str]:
    out = []
    current = [{"name": r["name"], "target": r["target"], "symbolic": r["symbolic"]}
               for r in store.db.query("select * from refs order by name")]
    on = next((r["symbolic"] for r in current if r["name"] == HEAD), None)
    # a row no command reads (Refs refuses it): the repair takes that ref's row from the
    # newest snapshot holding it (every ref move writes one), the others from the index
    repair = "; `memstore fsck --repair` takes its row from the newest snapshot"
    stuck = 0  # the refs on no commit here, each line with its one way out
    names = {r["name"] for r in current}
    # the refs a snapshot holds sound, read once for all the damaged rows (once a row, 20
    # rows beside 60 snapshots read 1,201 snapshots), and not at all where none is damaged
    held = functools.cache(lambda: held_sound(store.db, store.objects))
    for r in current:
        if r["symbolic"] is not None:
            if remote_head(r["name"], r["symbolic"]):  # origin/HEAD -> origin/main
                if r["symbolic"] not in names:  # its branch pruned or deleted: git's fsck
                    out.append(_dangling(r["name"], r["symbolic"]))  # 'invalid sha1 pointer'
                continue
            if r["name"] != HEAD or not names_branch(r["symbolic"]):
                stuck += 1  # no command reads it either: the same one way out
                way = repair
                if (r["name"] == HEAD or str(r["name"]).startswith((HEADS, TAGS, REMOTES))) \
                        and r["name"] not in held():
                    # the repair refuses then: set or deleted as one holding no commit id
                    way = "; no snapshot holds it sound: " + hand_set(store.db, r["name"])
                out.append(f"ref {line_name(r['name'])}: bad symbolic target "
                           f"{str(r['symbolic'])[:80]!r}" + way)
        elif not (isinstance(r["target"], str) and OBJECT_ID.fullmatch(r["target"])):
            stuck += 1
            way = repair
            if (r["name"] == HEAD or str(r["name"]).startswith((HEADS, TAGS, REMOTES))) and \
                    r["name"] not in held():
                # the repair refuses then: the branch is set by hand, as git's (a tag or
                # remote-tracking branch deleted, made again)
                way = "; no snapshot holds it sound: " + hand_set(store.db, r["name"])
            out.append(f"ref {line_name(r['name'])} holds {str(r['target'])[:80]!r}, not a "
                       "commit id" + way)
        elif r["target"] not in rows:
            stuck += 1
            out.append(f"ref {line_name(r['name'])} points to {r['target']}, which is not a "
                       "known commit" + _way_back(store, r["name"], r["target"], rows, on))
    clashes = _folder_clashes(current)
    stuck += len(clashes)  # its way (a rename or delete) writes the snapshot
    out += clashes
    if not list(store.db.query("select name from refs where name = ?", [HEAD])):
        out.append("HEAD is missing")
    newest = next(iter(store.db.query("select object from snapshots order by seq desc limit 1")),
                  None)
    snap = None
    if newest is not None and store.objects.contains(newest["object"]):
        try:
            snap = snapshots.parse(store.objects.get_bytes(newest["object"]))
        except CorruptObjectError:
            snap = None
    try:
        conf = config.rows(store.db)
    except MemstoreError:
        conf = None  # reported by _check_config
    # a stuck ref's line names its one way out; the snapshot is out of date with that
    # damage, and the way (a ref move, or the repair) writes it: no second line, no
    # second way
    if not stuck and (snap is None or snap["refs"] != current or snap["config"] != conf):
        out.append("the refs and config have no up-to-date snapshot in the object store "
                   "(`memstore fsck --repair` writes one)")
    return out


def _folder_clashes(rows: list[dict]) -> list[str]:
    """A line for each pair of branches one of which is the folder of the other ('side'
    and 'side/x': no command makes them, a hand edit or an older memstore can), which a
    remote, storing a branch as the file refs/heads/NAME, cannot hold (Refs refuses to
    make such a pair for that); tags too ('v' and 'v/x', which an older memstore's `tag`
    made and its `push --tags` refused)."""
    out = []
    for prefix in (HEADS, TAGS):
        out += _clashes_under(rows, prefix)
    return out


def _clashes_under(rows: list[dict], prefix: str) -> list[str]:
    kind, kinds = ("branch", "branches") if prefix == HEADS else ("tag", "tags")
    names = sorted({str(r["name"])[len(prefix):] for r in rows
                    if str(r["name"]).startswith(prefix)})
    # a tree of the names' components, a ref's end marked (None): each name is walked
    # once, where looking its every folder up (a slice each) took time in the square of
    # its depth (a name of 20,000 components, 4.7 s)
    tree: dict = {}
    for name in names:
        node = tree
        for part in name.split("/"):
            node = node.setdefault(part, {})
        node[None] = True
    out = []
    for name in names:
        parts, node = name.split("/"), tree
        for n in range(1, len(parts)):
            node = node[parts[n - 1]]
            if None in node:
                folder = "/".join(parts[:n])
                shown = shell_word(name)
                way = (f"`memstore branch -m {shown} NEW` renames one (`memstore branch -D "
                       f"{shown}` deletes it)" if prefix == HEADS else
                       f"`memstore tag -d {shown}` deletes one (`memstore tag NEW {shown}` "
                       "first keeps its commit under another name)")
                out.append(f"{kinds} {line_name(folder)} and {line_name(name)}: a remote "
                           f"stores a {kind} as a file, so one cannot be both a {kind} and "
                           f"the folder of another; {way}")
                break
    return out


def named_before(store: Storage, ref: str, target: str, rows) -> str | None:
    """The commit `ref` named last before `target`, as the ref snapshots tell (git's
    reflog), among `rows` (the commit ids the index holds) and whose record reads (one
    corrupt or missing too is passed over: no reset goes there); None if none does."""
    unreadable = set()
    for snap in store.db.query("select object from snapshots order by seq desc"):
        try:
            parsed = snapshots.parse(store.objects.get_bytes(snap["object"]))
        except MemstoreError:  # a missing or corrupt snapshot is named with the objects
            continue
        found = [r.get("target") for r in (parsed or {}).get("refs", [])
                 if isinstance(r, dict) and r.get("name") == ref]
        if found and found[0] != target and found[0] in rows and found[0] not in unreadable:
            try:
                store.commit(found[0])
            except (MemstoreError, KeyError, TypeError, ValueError):
                unreadable.add(found[0])
                continue
            return found[0]
    return None


def _way_back(store: Storage, ref: str, target: str, rows: dict, on: str | None) -> str:
    """How to move `ref`, which names `target`, a commit the index does not hold (its
    record corrupt or missing: `fsck --repair` leaves it out), back onto a commit here:
    the one it named last before, as the ref snapshots tell (git's reflog), and the command
    that moves it (a branch stuck on such a commit is otherwise left with no way back the
    user can find: `log` and `HEAD~1` cannot read past it)."""
    if ref.startswith("refs/remotes/"):
        return f"; `memstore fetch {shell_word(ref.split('/')[2])}` moves it to the remote's"
    before = named_before(store, ref, target, rows)
    before = before[:12] if before is not None else None
    to = before or "REV"
    if ref == HEAD and before is None:  # detached there when it was last on a branch
        how = "`memstore switch BRANCH` puts it back on a branch"
    elif ref == HEAD or ref == on:
        how = f"`memstore reset {to}` moves it back"
    elif ref.startswith(HEADS):
        name = shell_word(ref[len(HEADS):])
        problem = name_problem(ref[len(HEADS):])  # as `branch -f` checks it
        how = (f"`memstore branch -f {name} {to}` moves it back "
               f"(`memstore branch -D {name}` deletes it)" if problem is None else
               f"`memstore branch -D {name}` deletes it (no branch can be named so: "
               f"{problem})")
    elif ref.startswith("refs/tags/"):
        name = shell_word(ref[len("refs/tags/"):])
        problem = name_problem(ref[len("refs/tags/"):])  # as `tag` checks it
        how = (f"`memstore tag -d {name}` then `memstore tag {name} {to}` move it back"
               if problem is None else
               f"`memstore tag -d {name}` deletes it (no tag can be named so: {problem})")
    else:
        return ""
    return (f"; it named {before} before: {how}" if before
            else f"; no earlier snapshot shows it on a commit here: {how}")


def _check_config(store: Storage) -> list[str]:
    out = []
    for read in (config.read_base, config.read_settings, config.rows, upstreams.check,
                 previous_head.check):
        try:
            read(store.db)
        except MemstoreError as e:  # an unreadable row fails each read of it: said once
            if f"config: {e}" not in out:
                out.append(f"config: {e}")
    return out
