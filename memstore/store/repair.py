"""`memstore fsck --repair`: rebuild the index (`index.db`) from the object store.

Everything in the index but the refs and the config rows is derived from objects: commit
rows and request rows from commit records, statistics rows from statistics records, object
rows from the objects themselves; running matrices are dropped (rebuilt when next needed).
The refs and config come from the index when it can still be read; where only ref rows
are damaged (no commit id, a bad symbolic target), each such row from the newest snapshot
holding it sound, the others from the index; else all from the newest ref snapshot whose
refs all name commits in the store (a branch row holding no commit id that no snapshot
holds is set by hand, `branch -f NAME REV`, a tag's or remote-tracking branch's deleted,
`tag -d`, `branch -d -r`, which the refusal names). The new index is built beside the
old one and renamed into place under the repository lock; a damaged index is kept as
`index.db.damaged-<time>` for inspection, never overwritten in place."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from ..errors import MemstoreError
from . import config, previous_head, reflog, snapshots, stats_records
from .commits import FORMAT, Commit, load_requests
from .index import index_commit, index_objects
from .lock import RepositoryLock
from .objects import (
    CorruptObjectError,
    DiskObjectStore,
    MissingObjectError,
    folder_message,
    fsync_dir,
    refuse_link,
)
from .refs import Refs, _sound, hand_set, names_branch, remote_head
from .schema import SIDE_FILES, open_index, transaction
from .storage import Storage


@dataclass
class RepairReport:
    source: str  # where the refs and config came from: "index" or "snapshot N"
    commits: int = 0
    statistics: int = 0
    refs: int = 0
    skipped: list[str] = field(default_factory=list)  # corrupt or unreadable objects
    folders: list[str] = field(default_factory=list)  # a line for each folder at an object's path
    unreadable: list[str] = field(default_factory=list)  # request lists left unindexed
    refused: list[str] = field(default_factory=list)  # commit records left out, in words
    kept_as: str | None = None  # where the damaged index was moved


@dataclass
class _Scan:
    commits: dict[str, Commit] = field(default_factory=dict)
    # (object, its seq and time): the refs and config are read again from the one used,
    # not kept for all (snapshots hold every ref: many refs and writes since the last gc
    # would hold the product in memory)
    snapshots: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stats: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # commit records that do not parse
    # the objects here that cannot be read (corrupt, or a folder): a commit among them may
    # come back whole (`fetch --refetch`, the folder removed), so what names it is kept
    damaged: set[str] = field(default_factory=set)


def _scan(objects: DiskObjectStore) -> _Scan:
    """Every JSON object, classified; corrupt ones are skipped (and named), and so are
    folders at an object's path (named apart: the user removes them, memstore deletes no
    folder)."""
    out = _Scan()
    for oid in objects.iter():
        if objects.is_folder(oid):
            out.folders.append(folder_message(oid, objects.path(oid)))
            out.damaged.add(oid)
            continue
        try:
            if objects.head(oid, 1) != b"{":
                continue  # tensors (safetensors) and request lists (JSON arrays)
            data = objects.get_bytes(oid)
        except CorruptObjectError:
            out.skipped.append(oid)
            out.damaged.add(oid)
            continue
        if (snap := snapshots.parse(data)) is not None:
            out.snapshots.append((oid, {"seq": snap["seq"], "time": snap.get("time", 0.0)}))
        elif (rec := stats_records.parse_record(data)) is not None:
            out.stats.append((oid, rec))
        else:
            try:
                record = json.loads(data)
                out.commits[oid] = Commit.from_json(oid, record)
            except MemstoreError as e:
                if isinstance(record, dict) and record.get("format") == FORMAT:
                    # a commit record that is not one memstore writes (malformed, or in
                    # other bytes than its canonical JSON): left out, said as fsck says it
                    out.refused.append(_what(e))
            except (ValueError, KeyError, TypeError, RecursionError):
                pass  # some other JSON object
    return out


def _read_old(path: Path) -> tuple[list[dict], dict[str, Any], list[dict]] | str:
    """The refs and config rows of the old index, if it can still be read and they are
    sound (a damaged ref row, or a malformed base or settings row, is not copied into the
    new index: the snapshot has it), and
    its statistics rows that name no record object (written before statistics records
    were: the object store alone cannot say what their matrices are); else what is wrong
    with it, in words (the way out its error gave left off: that way out is this repair)."""
    try:
        db = open_index(path)
    except MemstoreError as e:
        return _what(e)
    try:
        Refs(db).check()
        Refs(db).head()
        refs = [{"name": r["name"], "target": r["target"], "symbolic": r["symbolic"]}
                for r in db.query("select * from refs order by name")]
        unrecorded = [dict(r) for r in db.query("select * from statistics order by id, layer")
                      if r.get("record") is None]
        config.read_base(db)  # a malformed base or settings row: no command can write it
        config.read_settings(db)  # again (`config` reads it first), the snapshot has it
        return refs, config.rows(db), unrecorded
    except MemstoreError as e:
        return _what(e)
    except Exception as e:  # noqa: BLE001 - any failure here means: use the snapshots instead
        return f"the index cannot be read ({type(e).__name__}: {str(e)[:200]})"
    finally:
        db.close()


def _logged(path: Path) -> list[dict]:
    """The reflog rows of the old index, checked once the commits are known, wherever its
    reflog table reads: a damaged ref or config row sends the refs and config to a
    snapshot, which holds no reflog (store.reflog), and must not take the log with it; a
    table that cannot be read is a reflog lost."""
    try:
        db = open_index(path)
    except Exception:  # noqa: BLE001 - no index that opens: no reflog to keep
        return []
    try:
        return reflog.rows(db)
    except Exception:  # noqa: BLE001
        return []
    finally:
        db.close()


def _ref_sound(row: Any) -> bool:
    """Whether a ref row (of the index or a snapshot) is one Refs reads: its target a
    commit id, or HEAD naming a branch."""
    try:
        _sound(row)
    except (MemstoreError, AttributeError, TypeError):
        return False
    return row.get("symbolic") is None or names_branch(row["symbolic"]) or \
        remote_head(row.get("name"), row["symbolic"])


def _mended(path: Path, objects: DiskObjectStore, scan: _Scan
            ) -> tuple[list[dict], dict[str, Any], list[dict], str] | None:
    """Where the old index reads but for some ref rows: its refs, config and unrecorded
    statistics rows, each damaged ref row replaced by that ref's row in the newest
    snapshot holding it sound (on a commit here or not: fsck names one that is not, with
    its way back), and where they came from, in words. The newest snapshot whose refs all
    name commits here may be older than refs the index holds soundly (a branch or tag made
    since, a head whose record is damaged): taken whole, it dropped them. None where
    anything else is damaged, or a damaged row is in no snapshot (the whole snapshot
    then)."""
    try:
        db = open_index(path)
    except Exception:  # noqa: BLE001 - no index that opens: the snapshot
        return None
    try:
        rows = [{"name": r["name"], "target": r["target"], "symbolic": r["symbolic"]}
                for r in db.query("select * from refs order by name")]
        damaged = [r["name"] for r in rows if not _ref_sound(r)]
        if not damaged or not all(isinstance(n, str) for n in damaged):
            return None
        unrecorded = [dict(r) for r in db.query("select * from statistics order by id, layer")
                      if r.get("record") is None]
        config.read_base(db)
        config.read_settings(db)
        conf = config.rows(db)
    except Exception:  # noqa: BLE001 - the config or another table damaged too
        return None
    finally:
        db.close()
    taken: dict[str, tuple[dict, int]] = {}
    for oid, _ in sorted(scan.snapshots, key=lambda s: (s[1]["seq"], s[1].get("time", 0)),
                         reverse=True):
        try:
            snap = snapshots.parse(objects.get_bytes(oid))
        except (CorruptObjectError, MissingObjectError):
            snap = None
        for r in (snap or {}).get("refs", []):
            if isinstance(r, dict) and isinstance(r.get("name"), str) and \
                    r["name"] in damaged and \
                    r["name"] not in taken and _ref_sound(r):
                taken[r["name"]] = ({"name": r["name"], "target": r.get("target"),
                                     "symbolic": r.get("symbolic")}, snap["seq"])
    if len(taken) < len(damaged):
        return None
    refs = [taken[r["name"]][0] if r["name"] in taken else r for r in rows]
    said = ", ".join(f"{n} from the snapshot {taken[n][1]}" for n in damaged)
    return refs, conf, unrecorded, f"index; {said}"


def _corrupt(objects: DiskObjectStore, oids: set[str]) -> set[str]:
    """Those of `oids` here that do not hash to their names: the scan reads as a record
    only an object whose first byte opens one, so a record damaged there is no `damaged`
    of it, and the reflog entries naming it would go where those of a record damaged
    further on stay."""
    out = set()
    for oid in oids:
        try:
            for _ in objects.chunks(oid):
                pass
        except MissingObjectError:
            continue
        except CorruptObjectError:
            out.add(oid)
    return out


def _what(e: MemstoreError) -> str:
    """An error's account of the damage, without the way out it ends on."""
    return str(e).split("; run `memstore", 1)[0]


def _by_hand(path: Path) -> str:
    """Where the old index's damaged ref rows are all branches holding no commit id, the
    way to set each by hand (`branch -f NAME REV`, which writes over such a row), for the
    refusal of a repair no snapshot can mend them from; else ''."""
    try:
        db = open_index(path)
    except Exception:  # noqa: BLE001 - no index that opens: no row to set
        return ""
    try:
        refs = Refs(db)
        names = [r["name"] for r in db.query("select name, target, symbolic from refs")
                 if not _ref_sound(r)]
        if not names or not all(isinstance(n, str) and refs.damaged(n) for n in names):
            return ""
        return ": " + "; ".join(hand_set(db, n) for n in names)
    except Exception:  # noqa: BLE001 - the index damaged further: the refusal as it was
        return ""
    finally:
        db.close()


def _from_snapshot(objects: DiskObjectStore, scan: _Scan, why: str,
                   way: str = "") -> tuple[list[dict], dict[str, Any], int]:
    """The refs and config of the newest sound snapshot; `why` is what is wrong with the
    index's own (the error's words when there is none); `way`, what the refusal adds
    where there is none (`_by_hand`)."""
    for oid, _ in sorted(scan.snapshots, key=lambda s: (s[1]["seq"], s[1].get("time", 0)),
                         reverse=True):
        try:
            snap = snapshots.parse(objects.get_bytes(oid))
        except (CorruptObjectError, MissingObjectError):  # changed since the scan
            snap = None
        if snap is None:
            continue
        targets = [r.get("target") for r in snap["refs"] if r.get("target")]
        if all(t in scan.commits for t in targets):
            return snap["refs"], snap["config"], snap["seq"]
    raise MemstoreError(f"{why}, and the object store holds no usable snapshot of the refs "
                        f"and config to repair it from; nothing was changed{way}")


def repair(root: Path, note: Callable[[str], None] | None = None) -> RepairReport:
    """Rebuilds `root/.memstore/index.db` from the objects (see the module docstring)."""
    d = root / ".memstore"
    for p in (d, d / "objects", d / "lock"):
        refuse_link(p)
    path = d / "index.db"
    with RepositoryLock(d / "lock", on_wait=note)():  # waits, and says so, as writers do
        objects = DiskObjectStore(d / "objects")
        old = _read_old(path) if path.exists() else f"{path} is missing"
        scan = _scan(objects)
        unrecorded: list[dict] = []
        logged = _logged(path) if path.exists() else []  # not in the snapshots (store.reflog)
        mended = _mended(path, objects, scan) if isinstance(old, str) else None
        if not isinstance(old, str):
            refs, conf, unrecorded = old
            report = RepairReport("index")
        elif mended is not None:
            refs, conf, unrecorded, source = mended
            report = RepairReport(source)
        else:
            refs, conf, seq = _from_snapshot(objects, scan, old,
                                             _by_hand(path) if path.exists() else "")
            report = RepairReport(f"snapshot {seq}")
        dropped = previous_head.dropped_if_malformed(conf)
        if note is not None and dropped is not None:
            note(dropped)
        # an entry naming a commit whose record is here damaged, or that a ref still names
        # (fsck names the ref, with its way out), is kept: the commit may come back whole
        # (`fetch --refetch`); gc drops the entry once the index lacks it
        named = {r.get("target") for r in refs}
        damaged = scan.damaged | _corrupt(objects, {
            r.get("new") for r in logged if reflog.malformed(r) is None
            and r["new"] not in scan.commits and r["new"] not in scan.damaged})
        logged, dropped = reflog.sound_rows(
            logged, lambda c: c in scan.commits or c in damaged or c in named)
        if note is not None and dropped is not None:
            note(dropped)
        if note is not None:
            note(f"rebuilding the index from {len(scan.commits)} commit records "
                 f"(refs and config from the {report.source})…")
        tmp = d / f"index.db.repair-{os.getpid()}"
        # this one's, and those of repairs killed before their rename (the lock is held:
        # no other repair runs), which nothing else would remove
        for p in {tmp, *(tmp.with_name(tmp.name + s) for s in SIDE_FILES),
                  *d.glob("index.db.repair-*")}:
            refuse_link(p)
            p.unlink(missing_ok=True)
        try:
            _build(tmp, objects, scan, refs, conf, report, unrecorded, logged)
        except BaseException:
            for p in [tmp, *(tmp.with_name(tmp.name + s) for s in SIDE_FILES)]:
                p.unlink(missing_ok=True)
            raise
        report.skipped, report.folders = scan.skipped, scan.folders
        report.refused = scan.refused
        if isinstance(old, str) and path.exists():
            report.kept_as = f"index.db.damaged-{int(time.time())}"
            for s in ("", *SIDE_FILES):
                p = d / ("index.db" + s)
                if p.exists():
                    os.rename(p, d / (report.kept_as + s))
        else:
            for s in SIDE_FILES:
                (d / ("index.db" + s)).unlink(missing_ok=True)
        os.replace(tmp, path)
        fsync_dir(d)
    return report


def _build(tmp: Path, objects: DiskObjectStore, scan: _Scan, refs: list[dict],
           conf: dict[str, Any], report: RepairReport,
           unrecorded: list[dict] | None = None, logged: list[dict] | None = None) -> None:
    db = open_index(tmp, create=True)
    store = Storage(db, objects)
    try:
        with transaction(db):
            for key, value in conf.items():
                config.put(db, key, value)
            db["refs"].insert_all(refs, pk="name", replace=True)
            if logged:
                db[reflog.TABLE].insert_all(logged, pk="id")
            for commit in sorted(scan.commits.values(), key=lambda c: (c.time, c.id)):
                index_commit(store, commit, [_requests(objects, s, report)
                                             for s in commit.update_sets])
                store.remember(commit)
            for rid, rec in [*scan.stats, *_records_of(objects, unrecorded or [])]:
                if objects.contains(rec["object"]) and _holds_layer(objects, rec):
                    db["statistics"].insert(
                        {k: rec[k] for k in ("id", "layer", "n_tokens", "description", "object")}
                        | {"created": rec.get("created", 0.0), "record": rid}, ignore=True)
                    index_objects(store, {rec["object"]: stats_records.KIND,
                                          rid: stats_records.RECORD_KIND})
            for oid, snap in scan.snapshots:
                db["snapshots"].insert({"seq": snap["seq"], "object": oid,
                                        "time": snap.get("time", 0.0)}, replace=True)
                index_objects(store, {oid: snapshots.KIND})
            snapshots.record(db, objects)
        report.commits = len(scan.commits)
        report.statistics = db["statistics"].count
        report.refs = len(refs)
    finally:
        db.close()


def _holds_layer(objects: DiskObjectStore, rec: dict[str, Any]) -> bool:
    """Whether a statistics record's object holds its layer's matrix (or does not say): a
    record naming another layer's, or an object corrupt, is left out, and the statistics
    computed again (from the base, where the sample still gives them: no other copy needed)."""
    try:
        held = stats_records.layer_of(objects.get_tensors(rec["object"]))
    except CorruptObjectError:
        return False
    except (MemstoreError, SafetensorError):
        return True  # damage that fsck names with the objects
    return held in (None, rec["layer"])


def _records_of(objects: DiskObjectStore,
                rows: list[dict]) -> list[tuple[str, dict[str, Any]]]:
    """A statistics record object, written now, for each statistics row of an index made
    before such records were (a rebuild would otherwise drop the statistics a repository
    was solved with, and compute others, or none where their sample changed since); a
    row that is damaged, or whose object holds no square matrix, is left out."""
    out = []
    for row in rows:
        try:
            r = stats_records.row_record(row)
            mom2 = stats_records.matrix_of(objects.get_tensors(r.object))
        except (MemstoreError, ValueError, KeyError, TypeError, SafetensorError):
            continue
        if mom2 is None:
            continue
        rec = {"type": stats_records.TYPE, "id": r.id, "layer": r.layer,
               "n_tokens": r.n_tokens, "description": r.description, "object": r.object,
               "created": r.created if r.created is not None else 0.0,
               "dim": int(mom2.shape[0])}
        out.append((objects.put_json(rec), rec))
    return out


def _requests(objects: DiskObjectStore, update_set, report: RepairReport) -> list:
    """The update set's requests, or none when their object is missing or damaged (the
    commit is still indexed; fsck goes on naming the object)."""
    try:
        return load_requests(objects, update_set)
    except MemstoreError as e:
        report.unreadable.append(f"{update_set.requests}: {e}")
        return []

