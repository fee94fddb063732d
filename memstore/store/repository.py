"""The repository: `.memstore/` = objects/ + index.db + lock, composed behind one class.

`Repository` opens and creates repositories, holds the writer lock, and composes the
store's modules, each of which takes only what it needs (`Storage`: the index and the
object store): config (base record, settings), stats_records, writer (commits), index
(request search), refs, history, running (running matrices), maintenance (fsck, gc).

Every write method takes the repository lock (reentrant), so gc can never delete objects a
writer is about to reference; a CLI command may hold the lock around its whole run with
`repo.lock()`."""
from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from .. import leftovers
from ..editing.requests import Request
from ..editing.settings import EditSettings
from ..errors import MemstoreError, ValidationError
from . import author as authors
from . import (
    config,
    history,
    index,
    maintenance,
    previous_head,
    ref_marks,
    reflog,
    signing,
    snapshots,
    stats_records,
    upstreams,
    writer,
)
from .commits import Commit, StoredSet, load_requests, load_updates, load_zs
from .config import BaseRecord, path_snapshot
from .lock import RepositoryLock, WaitCallback
from .objects import DiskObjectStore, MemoryObjectStore, fsync_dir, refuse_link
from .refs import (
    HEAD,
    HEADS,
    SHOWN,
    TAGS,
    Head,
    RefConflictError,
    Refs,
    branch_ref,
    name_problem,
    no_such,
    none_deleted,
    shell_word,
    tag_ref,
)
from .schema import DamagedIndexError, open_index, size_of, transaction
from .stats_records import StatisticsRecord
from .storage import Storage

if TYPE_CHECKING:  # torch and the editing code are not imported by the light commands
    from typing import Self

    import torch

    from ..editing.result import EditResult, LayerUpdate
    from ..editing.statistics import Statistics

DIRNAME = ".memstore"
INIT_PREFIX = DIRNAME + "-init-"  # the repository being built, renamed to DIRNAME when whole
INDEX = "index.db"
DEFAULT_BRANCH = "main"
_FROM_PARENTS: Any = object()  # write_commit's default `expected`: the first parent

__all__ = [
    "DIRNAME",
    "BaseRecord",
    "NotARepositoryError",
    "Repository",
    "StatisticsRecord",
    "path_snapshot",
]


class NotARepositoryError(MemstoreError):
    pass


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Repository:
    def __init__(self, objects, db: Database, root: Path | None = None,
                 on_wait: WaitCallback | None = None) -> None:
        self.root = root  # the directory holding .memstore; None for in-memory
        self.store = Storage(db, objects)
        self.refs = Refs(db, objects)
        self._lock = RepositoryLock(self.dir / "lock" if self.dir else None, on_wait)
        self._index: tuple[int, int] | None = None  # (device, inode) of the index opened
        self._pinned = False  # a read transaction held since `pin`
        # whether the commits written through this object are signed: None as the config's
        # commit.gpgsign says, True (-S), a key (-SKEY: that key) or False (--no-gpg-sign)
        # as a command decides
        self.signing: bool | str | None = None

    @property
    def db(self) -> Database:
        return self.store.db

    @property
    def objects(self):
        return self.store.objects

    # -- creating and opening -------------------------------------------------------------

    @property
    def dir(self) -> Path | None:
        return self.root / DIRNAME if self.root is not None else None

    @classmethod
    def init(cls, path: str | Path, base_spec: str, base_hash: str,
             base_info: dict[str, Any] | None = None, settings: EditSettings | None = None,
             *, base_path: str | Path | None = None, branch: str = DEFAULT_BRANCH,
             on_wait: WaitCallback | None = None) -> Repository:
        """Creates `path/.memstore`, refusing an existing one. Built in a temporary
        directory `.memstore-init-<host>-<pid>-<random>` and renamed into place, so a crash
        never leaves half a repository; what an init killed outright left so (a dead
        process of this host: memstore/leftovers.py) is removed here first."""
        root = Path(path).resolve()
        target = root / DIRNAME
        if target.exists() or target.is_symlink():
            raise MemstoreError(f"a memstore repository already exists in {root}")
        root.mkdir(parents=True, exist_ok=True)
        leftovers.clean(root, re.escape(INIT_PREFIX))
        tmp = leftovers.make_temp_dir(root, INIT_PREFIX)  # its owner's host and pid
        try:
            (tmp / "objects").mkdir()
            (tmp / "lock").touch()
            db = open_index(tmp / INDEX, create=True)
            try:
                _setup(Storage(db, DiskObjectStore(tmp / "objects")), base_spec, base_hash,
                       base_info, settings, base_path, branch)
            finally:
                db.close()
            try:
                os.rename(tmp, target)
            except OSError as e:  # created meanwhile by someone else
                raise MemstoreError(f"a memstore repository already exists in {root}") from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(root)
        return cls.open(root, on_wait=on_wait)

    @classmethod
    def memory(cls, base_spec: str = "test", base_hash: str = "0" * 64,
               base_info: dict[str, Any] | None = None, settings: EditSettings | None = None,
               *, branch: str = DEFAULT_BRANCH) -> Repository:
        """A repository held in memory (MemoryObjectStore, in-memory index), for tests."""
        db = open_index(None)
        objects = MemoryObjectStore()
        _setup(Storage(db, objects), base_spec, base_hash, base_info, settings, None, branch)
        return cls(objects, db)

    @staticmethod
    def find(path: str | Path | None = None) -> Path:
        """The directory holding `.memstore`, from `path` (default: cwd) upwards."""
        start = Path(path if path is not None else os.getcwd()).resolve()
        for d in (start, *start.parents):
            here = d / DIRNAME
            if not os.path.lexists(here):
                continue
            refuse_link(here)  # never written through, nor skipped for a repository above
            if not here.is_dir() or not (here / "objects").is_dir():
                raise MemstoreError(f"{here} is damaged: it holds no objects folder (memstore "
                                    "will not look past it for a repository above)")
            return d
        raise NotARepositoryError(f"not a memstore repository (or any parent): {start}")

    @classmethod
    def open(cls, path: str | Path | None = None, *,
             on_wait: WaitCallback | None = None) -> Repository:
        root = cls.find(path)
        d = root / DIRNAME
        for p in (d / "objects", d / "lock"):
            refuse_link(p)
        index = _file_identity(d / INDEX)  # before opening: a replacement in between is
        db = open_index(d / INDEX)          # refused at the lock, never missed
        repo = cls(DiskObjectStore(d / "objects"), db, root, on_wait)
        repo._index = index
        return repo

    def pin(self) -> None:
        """Reads one state of the index from now on, whatever other processes commit, until
        the writer lock is first taken or the repository closed: one read transaction (WAL),
        which gc waits for before deleting the files of the rows it removed. A command that
        only reads (log, show, export, …) sees one history, and the objects it names."""
        if self._pinned or self.db.conn.in_transaction:
            return
        self.db.execute("BEGIN")
        self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts
        self._pinned = True

    def _unpin(self) -> None:
        if self._pinned:
            self._pinned = False
            if self.db.conn.in_transaction:
                self.db.conn.rollback()  # a read: nothing to lose

    def close(self) -> None:
        self._unpin()
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self, wait: bool = True, on_wait: WaitCallback | None = None,
             timeout: float | None = None, *,
             mending: str | None = None,
             passing: bool = False) -> AbstractContextManager[None]:
        """The writer lock. Waiting calls `on_wait` (or the repository's) with a message
        naming the holder's pid; `wait=False` raises LockedError instead. Every config row
        and ref row is read once it is held: a write ends by recording them all (a ref
        snapshot), so a damaged one refuses the write before any work, not after its objects
        (but `mending`'s, a branch row the write sets: `mend_branch`; `passing`: a write
        that sets no ref passes over the rows holding no commit id, `Refs.check`). A
        repository opened read-only (its folder cannot be written) refuses here."""
        if getattr(self.db, "read_only", False):
            raise MemstoreError(f"{self.dir} cannot be written (read-only here): only commands "
                                "that read the repository can run")
        self._unpin()  # before waiting: a gc holding the lock may wait for this read to end
        return self._checked(self._lock(wait, on_wait, timeout), mending, passing)

    @contextmanager
    def _checked(self, held: AbstractContextManager[None],
                 mending: str | None = None, passing: bool = False) -> Iterator[None]:
        taking = not self._lock.held
        with held:
            if taking:
                self._check_same_index()
            config.rows(self.db)
            self.refs.check(mending, passing=passing)
            yield

    def _check_same_index(self) -> None:
        """The index this repository opened is still `.memstore/index.db`: `fsck --repair`
        renames a rebuilt one into place under the lock, and a write through the old one,
        opened before, would land in a file no longer there (a commit reported and lost)."""
        if self._index is None or self.dir is None:
            return
        if _file_identity(self.dir / INDEX) != self._index:
            raise MemstoreError(f"{self.dir / INDEX} was rebuilt by another memstore process "
                                "(fsck --repair) while this one waited; nothing was written: "
                                "run the command again")

    def forget_cached(self) -> None:
        self.store.forget_cached()

    # -- config, base, statistics ---------------------------------------------------------

    def get_config(self, key: str, default: Any = None) -> Any:
        return config.get(self.db, key, default)

    def set_config(self, key: str, value: Any) -> None:
        with self.lock(), transaction(self.db):
            config.put(self.db, key, value)
            snapshots.record(self.db, self.objects)

    @property
    def settings(self) -> EditSettings | None:
        """The editor settings future commits use."""
        return config.read_settings(self.db)

    def set_settings(self, settings: EditSettings) -> None:
        self.set_config(config.SETTINGS, config.settings_json(settings))

    @property
    def base(self) -> BaseRecord:
        return config.read_base(self.db)

    def set_base_path(self, path: str | Path) -> None:
        """Records where the base weights are now (after the caller checked their hash)."""
        b = self.base
        self.set_config(config.BASE, config.base_json(b.spec, b.hash, path, b.info))

    def base_unchanged(self) -> bool | None:
        """True when the base path still has the recorded size and mtime (so its hash need
        not be recomputed), False when it changed or is gone; None when no path is recorded."""
        b = self.base
        if b.path is None or b.snapshot is None:
            return None
        return Path(b.path).exists() and path_snapshot(b.path) == b.snapshot

    def put_statistics(self, stats: Statistics) -> StatisticsRecord:
        """Stores E[k kᵀ] of one layer (kept first if the same id and layer exist)."""
        with self.lock():
            return stats_records.put(self.store, stats)

    def statistics_record(self, stats_id: str, layer: int) -> StatisticsRecord | None:
        return stats_records.find(self.store, stats_id, layer)

    def statistics(self) -> list[StatisticsRecord]:
        return stats_records.all_records(self.store)

    def get_statistics(self, stats_id: str, layer: int) -> Statistics:
        return stats_records.load(self.store, stats_id, layer)

    # -- refs -----------------------------------------------------------------------------

    def head(self) -> Head:
        return self.refs.head()

    def resolve(self, rev: str) -> str:
        return self.refs.resolve(rev)

    def branches(self) -> dict[str, str]:
        return self.refs.list(HEADS)

    def tags(self) -> dict[str, str]:
        return self.refs.list(TAGS)

    def create_branch(self, name: str, rev: str = HEAD, *, force: bool = False) -> str:
        self._not_a_remote_branch(name, "branch")
        return self._create_ref(branch_ref(name), "branch", rev, force)

    def create_tag(self, name: str, rev: str = HEAD, *, force: bool = False) -> str:
        self._not_a_remote_branch(name, "tag")
        return self._create_ref(tag_ref(name), "tag", rev, force)

    def check_new_tag(self, name: str, going: Collection[str] = ()) -> None:
        """ValidationError unless `name` can be a new tag here (a fetched one): what
        `create_tag` checks of its name (the ref it would be not yet looked at), and not
        the name of the current branch before its first commit (a clone's, say); `going`:
        tags the same write deletes (`fetch --prune-tags`)."""
        self._not_a_remote_branch(name, "tag")
        self.refs.check_new_name(tag_ref(name), going=[tag_ref(t) for t in going])
        if name == self.head().branch:
            raise ValidationError(f"{name!r} is already the name of a branch (the current "
                                  "one, which has no commits yet); choose another name")

    def _not_the_base(self, name: str, kind: str) -> None:
        """'base' names the base model's state (diff, squash, export, ask, eval): a branch or
        tag of that name would be found first and take its place."""
        if name == "base":
            raise ValidationError(f"invalid {kind} name 'base': it names the base model "
                                  "(`diff base`, `squash base`, `export base`)")

    def _not_a_remote_branch(self, name: str, kind: str) -> None:
        """REMOTE/B names remote REMOTE's branch B (after a fetch), and so does
        remotes/REMOTE/B, as `branch -a` shows it; a branch or tag of either name would be
        found first and hide it (`branch -a` listed two lines of one name, and `log
        remotes/origin/main` read the local one)."""
        self._not_the_base(name, kind)
        known = self.get_config("remotes") or {}
        for prefix, how in (("", ""), ("remotes/", " (as `branch -a` shows it)")):
            rest = name[len(prefix):] if name.startswith(prefix) else ""
            remote, slash, branch = rest.partition("/")
            if slash and remote in known:
                raise ValidationError(f"invalid {kind} name {name!r}: it would read as the "
                                      f"branch {branch!r} of remote {remote!r}{how}")

    def _create_ref(self, ref: str, kind: str, rev: str, force: bool) -> str:
        with self.lock(), transaction(self.db):
            commit = self.refs.branch_start(rev) if kind == "branch" else self.resolve(rev)
            old = self.refs.read(ref)
            if old is not None and not force:
                raise ValidationError(f"{kind} {ref.split('/', 2)[2]!r} already exists")
            doing = "move" if old is not None else "create"
            self.check_held(commit, rev, f"{doing} {kind} {ref.split('/', 2)[2]!r}")
            how = "Reset to" if old is not None else "Created from"
            with self.refs.reason(f"branch: {how} {rev}"):  # git's words
                self.refs.update(ref, commit, expected=old)
        return commit

    def mend_branch(self, name: str, rev: str) -> tuple[str, str]:
        """Sets branch `name`, whose row holds no commit id, to the commit `rev` names
        (`branch -f NAME REV`, current branch or not): the one way out where no snapshot
        holds the branch sound, for `fsck --repair` then has nothing to take its row from.
        Every other row is checked as for any write (but branch rows of the same damage,
        each set by its own `branch -f`); `rev`'s commit must be indexed and its record
        read. Returns (the commit, what the row held)."""
        ref = HEADS + name
        problem = name_problem(name, unseen=False)
        if problem is not None:  # its reflog could hold no entry of the move
            raise ValidationError(f"branch {name[:SHOWN]!r} cannot be set: no branch can be "
                                  f"named so ({problem}); `memstore branch -D "
                                  f"{shell_word(name)}` deletes it")
        with self.lock(mending=ref), transaction(self.db):
            held = self.refs.damaged(ref)
            commit = self.resolve(rev)
            self.check_held(commit, rev, f"set branch {name!r}")
            self.get_commit(commit)  # its record read (hash-checked) before a ref names it
            with self.refs.reason(f"branch: Reset to {rev}"):  # git's words for -f
                self.refs.mend(ref, commit)
        return commit, str(held)

    def check_held(self, commit: str, rev: str, doing: str) -> None:
        """DamagedIndexError unless the index holds `commit`, which `rev` named, before a
        ref is made or moved onto it (`doing` that): a ref (a remote-tracking one damaged or
        written by hand, say) can name a commit that is not here, and a branch, tag or
        detached HEAD made from it would name a commit nothing can read."""
        if not self.has_commit(commit):
            shown = rev if len(rev) <= SHOWN else rev[:SHOWN] + "…"
            raise DamagedIndexError(f"cannot {doing}: {shown!r} names commit {commit[:12]}, "
                                    "which is not in the index; run `memstore fsck`")

    def _named(self, prefix: str, name: str, kind: str) -> str:
        """The ref of branch or tag `name`: one that exists as named (made before a rule on
        names was added: it can still be deleted), else a valid name's."""
        if isinstance(name, str) and name and self.refs.read(prefix + name) is not None:
            return prefix + name
        return branch_ref(name) if kind == "branch" else tag_ref(name)

    def _all_named(self, refs: dict[str, str], kind: str,
                   damaged: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
        """Name → the commit of each of `refs` (name → ref) that a delete names, all or none:
        a name that is no `kind` refuses them all, naming every such name; those of
        `damaged` (rows holding no commit id) → None."""
        commits = {n: None if n in damaged else self.refs.read(r) for n, r in refs.items()}
        missing = [n for n, c in commits.items() if c is None and n not in damaged]
        if missing:
            raise ValidationError(no_such(kind, missing) + none_deleted(list(refs)))
        return commits

    def delete_branch(self, name: str, *, force: bool = False) -> str:
        return self.delete_branches([name], force=force)[name]

    def delete_branches(self, names: list[str], *, force: bool = False) -> dict[str, str]:
        """Deletes branches `names` (each merged into a branch or tag this delete keeps;
        `force`: even unmerged), all or none: every name is checked before any ref moves.
        Name → the commit it named (None for one whose row held no commit id, deleted so
        with `force`: the way out fsck names for a branch no branch can be named as)."""
        names = list(dict.fromkeys(names))
        damaged = [n for n in names if isinstance(n, str) and n
                   and self.refs.damaged(HEADS + n) is not None]
        refs = {n: HEADS + n if n in damaged else self._named(HEADS, n, "branch")
                for n in names}
        with self.lock(mending=HEADS + damaged[0] if damaged else None), \
                transaction(self.db):
            commits = self._all_named(refs, "branch", damaged)
            on = self.head().ref
            current = [n for n, r in refs.items() if r == on]
            if current:
                raise MemstoreError(f"cannot delete the current branch {current[0]!r}; "
                                    f"switch to another one first{none_deleted(names)}")
            if not force and damaged:  # as git's -d of a broken ref: what it held is
                # unknown, so whether it is merged cannot be read; -D deletes it
                n = damaged[0]
                raise MemstoreError(
                    f"branch {n!r} holds {self.refs.damaged(HEADS + n)}, not a "
                    "commit id: whether it is merged cannot be read; `memstore branch -D "
                    f"{shell_word(n)}` deletes it{none_deleted(names)}")
            if not force:  # merged into what stays: not into another one deleted with it
                gone = set(refs.values())
                kept = history.ancestors_of(  # the records decide
                    history.checked_graph(self.store),
                    [c for r, c in self.refs.all().items() if r not in gone])
                lost = [n for n in names if commits[n] not in kept]
                if lost:
                    with_it = " (the others named are deleted with it)" if len(names) > 1 else ""
                    raise MemstoreError(
                        f"branch {lost[0]!r} is not merged into any other branch or tag"
                        f"{with_it}; `branch -D` deletes it anyway{none_deleted(names)}")
            for n, r in refs.items():
                upstreams.dropped(self.db, branch=n)  # before the ref: its move snapshots both
                if n in damaged:  # its row held no commit id: deleted so (fsck names it)
                    self.refs.drop(r)
                else:
                    self.refs.update(r, None, expected=commits[n])
        return commits

    def rename_branch(self, old: str, new: str) -> str | None:
        """Renames branch `old` to `new`; HEAD follows when it is on `old` (an unborn current
        branch is renamed too). The commit it names (None: unborn). The old name is removed
        first, so a rename may change only its case or make it a folder ('a' to 'a/b')."""
        src = self._named(HEADS, old, "branch")
        self._not_a_remote_branch(new, "branch")
        dst = branch_ref(new)
        with self.lock(), transaction(self.db):
            commit = self.refs.read(src)
            on_it = self.head().ref == src
            if commit is None and not on_it:
                raise ValidationError(f"no branch {old!r}")
            if dst != src and self.refs.read(dst) is not None:
                raise ValidationError(f"branch {new!r} already exists")
            self.refs.check_new_name(dst, ignoring=src)  # before anything moves
            upstreams.renamed(self.db, old, new)  # before the refs: their moves snapshot it
            with self.refs.reason(f"Branch: renamed {src} to {dst}"):  # git's words
                if commit is not None:
                    self.refs.update(src, None, expected=commit, keep_log=True)
                    reflog.renamed(self.db, src, dst)  # the entry below is its newest
                    if on_it:  # HEAD on dst first, so dst's entry is HEAD's too: git
                        # logs the rename in HEAD's log as two entries, to a null id and from
                        # it; a null `new` is no entry here, so one, the commit on both sides
                        self.refs.set_symbolic(HEAD, dst, log=False)
                    self.refs.update(dst, commit, expected=None, renamed=True)
                else:  # unborn: no entry, HEAD's neither (git's)
                    reflog.renamed(self.db, src, dst)
                    if on_it:
                        self.refs.set_symbolic(HEAD, dst, log=False)
        return commit

    def delete_tag(self, name: str) -> str:
        return self.delete_tags([name])[name]

    def delete_tags(self, names: list[str]) -> dict[str, str]:
        """Deletes tags `names`, all or none (a name that is no tag refuses them all).
        Name → the commit it named (None for one whose row held no commit id: deleted
        so, `Refs.drop`, as fsck says where no snapshot holds it sound)."""
        names = list(dict.fromkeys(names))
        damaged = [n for n in names if isinstance(n, str) and n
                   and self.refs.damaged(TAGS + n) is not None]
        refs = {n: TAGS + n if n in damaged else self._named(TAGS, n, "tag") for n in names}
        with self.lock(mending=TAGS + damaged[0] if damaged else None), \
                transaction(self.db):
            commits = self._all_named(refs, "tag", damaged)
            for n, r in refs.items():
                if n in damaged:
                    self.refs.drop(r)
                else:
                    self.refs.update(r, None, expected=commits[n])
        return commits

    def switch(self, target: str, *, create: bool = False, detach: bool = False,
               start: str | None = None) -> Head:
        """Points HEAD at branch `target` (created at `start`, default HEAD, first with
        `create`: in one transaction, a refused switch creates nothing), or, with
        `detach` or when `target` is no branch, at the commit `target` names ("HEAD" without
        `detach` leaves HEAD as it is). Its entry in HEAD's reflog ("checkout: moving from
        A to B") is where `switch -` and `@{-1}` go back to (previous_head)."""
        if self.refs.damaged(HEAD) is not None:
            return self.mend_head(target, create=create, detach=detach)
        with self.lock(), transaction(self.db):
            head = self.head()
            with self.refs.reason(f"checkout: moving from {head.branch or head.commit} to "
                                  f"{target}"):  # git's words
                return self._switch(head, target, create, detach, start)

    def _switch(self, head: Head, target: str, create: bool, detach: bool,
                start: str | None) -> Head:
        if create and start is None and head.commit is None and head.ref is not None:
            # on a branch with no commits yet, as git: HEAD names the new one instead
            self._not_a_remote_branch(target, "branch")
            ref = branch_ref(target)
            if self.refs.read(ref) is not None:
                raise ValidationError(f"branch {target!r} already exists")
            self.refs.check_new_name(ref)
            previous_head.forget(self.db)  # before the move snapshots it
            self.refs.set_symbolic(HEAD, ref)
            return self.head()
        if create:
            dest = self.refs.branch_start(HEAD if start is None else start)
        elif target == HEAD and not detach:
            return head  # as `git checkout HEAD`: HEAD stays where it is, on its branch
        else:  # a branch's name is the branch (--detach: its commit), as git's checkout
            onto = self.refs.read(HEADS + target)  # takes it (a tag v1 beside it, warned)
            if onto is not None:
                self.refs.name_warnings(target, note=False)
            dest = onto if onto is not None else self.resolve(target)
            if (onto is None or detach) and dest != head.commit:  # HEAD detached onto it
                self.check_held(dest, target, "detach HEAD")
        if head.ref is None and head.commit is not None and dest != head.commit:
            # what a detached HEAD leaves is read (and warned about) after the switch,
            # less what `dest` keeps: damaged rows there refuse it before anything
            # moves, as reset's
            self.held_by_no_ref(head.commit)
            self.reached(dest)
        if create:
            self.create_branch(target, HEAD if start is None else start)
        ref = HEADS + target
        if not detach and self.refs.read(ref) is not None:
            previous_head.forget(self.db)  # before the move snapshots it
            self.refs.set_symbolic(HEAD, ref)
        else:
            previous_head.forget(self.db)
            self.refs.set_detached(HEAD, dest)
        return self.head()

    def mend_head(self, target: str, *, create: bool = False, detach: bool = False) -> Head:
        """Sets HEAD, whose row holds no commit id or names no branch (`Refs.damaged`), on
        branch `target`, or detached at the commit `target` names (with `detach`, or where
        it is no branch): the one way out where no snapshot holds HEAD sound, as git's
        `switch` off a HEAD on a commit it lacks. Every other row is checked as for any
        write (but rows of the same damage, each with its own way); the commit must be
        indexed and its record read. Its reflog entry says what the row held and names no
        previous HEAD (a "checkout: moving from" entry would give `switch -` one)."""
        with self.lock(mending=HEAD), transaction(self.db):
            held = self.refs.damaged(HEAD)
            if held is None:
                raise RefConflictError("HEAD was set while this operation ran (another "
                                       "memstore process?); nothing was changed - run it again")
            if create:
                raise ValidationError(f"HEAD holds {held}, not a commit id or a branch: "
                                      f"`memstore switch BRANCH` or `memstore switch --detach "
                                      "REV` sets it first")
            ref = None if detach else HEADS + target
            commit = self.refs.read(ref) if ref is not None else None
            if commit is None and ref is not None and \
                    not any(self.db.query("select 1 from commits limit 1")):
                # no commit here (damaged before the first): no branch nor revision to set
                # it to, so on branch `target`, unborn, as `init` leaves it
                branch_ref(target)  # a name a branch can have
                with self.refs.reason(f"checkout: HEAD held {held}, set to {target}"):
                    self.refs.mend_head(ref, None)
                return self.head()
            if commit is None:
                ref = None
                commit = self.resolve(target)
            self.check_held(commit, target, "set HEAD")
            self.get_commit(commit)  # its record read (hash-checked) before HEAD names it
            with self.refs.reason(f"checkout: HEAD held {held}, set to {target}"):
                self.refs.mend_head(ref, commit)
        return self.head()

    def held_by_no_ref(self, commit: str) -> list[str]:
        """`commit` and its ancestors that no ref but HEAD reaches (what a detached HEAD
        leaves behind when it moves: gc removes them), newest first. Nothing ([]) for a commit
        the index does not hold (its record corrupt or missing, left out by `fsck --repair`):
        what it leaves cannot be read, and moving off it needs nothing of it. Walked on the
        records (history.checked_graph): a row naming other parents than its record is
        refused in one line, not a count it would make wrong; a record that cannot be read
        is walked on its row (the warning names it, fsck too)."""
        if not self.has_commit(commit):
            return []
        g = history.checked_graph(self.store, unreadable=True)
        held = history.ancestors_of(g, [target for name, target in self.refs.all().items()
                                        if name != HEAD])
        # a parent with no row is refused (log's walk), unless its record cannot be read
        # either: `fsck --repair` dropped it (corrupt) and cannot bring it back, and a reset
        # off the commits above it (C1 from C3, C2 dropped) is the way out (it was refused)
        return [c for c in history.log_ids(self.db, commit, g=g, gone=self._unreadable)
                if c not in held]

    def _unreadable(self, commit: str) -> bool:
        try:
            self.store.commit(commit)
        except MemstoreError:
            return True
        return False

    def reached(self, commit: str) -> set[str]:
        """`commit` and its ancestors, walked on the records as held_by_no_ref's (a row
        naming other parents than its record refused, a record that cannot be read walked
        on its row): what a detached HEAD on `commit` holds, which a move onto it does not
        leave behind."""
        return history.ancestors(history.checked_graph(self.store, unreadable=True), commit)

    def update_ref(self, ref: str, new: str, *, expected: str | None,
                   reason: str = "update by memstore") -> None:
        """Compare-and-swap a ref (HEAD: whatever HEAD points to) to commit `new`; for
        fast-forwards and resets. RefConflictError if it no longer points to `expected`.
        `reason`: its reflog entry's message ("merge topic: Fast-forward")."""
        with self.lock(), transaction(self.db), self.refs.reason(reason):
            self._get_commit_row(new)
            self.refs.update(self._ref_to_move(ref), new, expected)

    def reset(self, new: str, *, was: Head, rev: str | None = None) -> None:
        """Compare-and-swap what HEAD pointed to when `was` was read to commit `new`: its
        branch, or HEAD itself when it was detached. RefConflictError if that moved, or if
        HEAD, detached then, was switched onto a branch since (that branch is not the one
        to move, whatever its commit). The record of `new` is read first (checked against
        its hash): a commit whose object is missing or damaged is refused, not moved to; so
        are damaged rows of the history it leaves and of `new`'s, which keeps some of it (read
        again by held_by_no_ref and reached, after). `rev`: how the user named `new`, which
        its reflog entry says ("reset: moving to HEAD~3")."""
        with self.lock(), transaction(self.db), \
                self.refs.reason(f"reset: moving to {new if rev is None else rev}"):
            self._get_commit_row(new)
            self.get_commit(new)
            if self.refs.read(was.ref or HEAD) == new == was.commit:
                # onto where it is (`reset` with no REV): nothing moves, and only HEAD's
                # log says it, on a branch, as git's
                self.refs.log_unmoved(was.ref or HEAD, new)
                return
            if was.commit is not None and was.commit != new:
                self.held_by_no_ref(was.commit)
                self.reached(new)
            self.refs.update(was.ref or HEAD, new, was.commit)

    def _ref_to_move(self, ref: str) -> str:
        if ref == HEAD:
            return self.head().ref or HEAD
        return ref

    # -- commits --------------------------------------------------------------------------

    def write_commit(self, update_sets: Sequence[EditResult | StoredSet], *,
                     parents: Sequence[str], basis: str | None, message: str,
                     metrics: dict[str, Any] | None = None, operation: str = "commit",
                     info: dict[str, Any] | None = None,
                     time: float | None = None, ref: str | None = HEAD,
                     expected: str | None = _FROM_PARENTS,
                     author: str | authors.Unknown | None = None,
                     author_time: float | None = None) -> Commit:
        """Records a commit whose state is `basis`'s state (None: the base weights) plus
        `update_sets` (one EditResult per solve, applied in order, or its StoredSet where
        its objects are written already), and moves `ref` to it. `author`: who wrote it
        (None: this process's user, store.author.current()); where that is someone else (a
        cherry-pick, rebase or squash of their commit), this process's user is recorded as
        its committer, as git records the one who picked; authors.UNKNOWN: none recorded
        (written again from a commit that recorded none), this process's user its
        committer. `author_time`: when its author
        wrote it (None: now, the commit's time); a commit written again from another keeps
        the original's (Commit.authored), as git's author date.

        `ref` HEAD moves the current branch (or a detached HEAD); None moves nothing.
        `expected` is where `ref` must still point (default: the first parent, i.e. where
        the operation started); if it moved meanwhile, RefConflictError and no change."""
        parents = list(parents)
        if expected is _FROM_PARENTS:
            expected = parents[0] if parents else None
        runner = authors.current()
        if author is authors.UNKNOWN:  # written again from a commit that recorded none
            author = None
        else:
            author = runner if author is None else authors.check(author, "author")
        sign = signing.signer(self.db, self.signing)  # no key: refused before any write
        with self.lock():
            return writer.write_commit(
                self.store, self.refs, self.base.hash, update_sets, parents=parents,
                basis=basis, message=message, metrics=metrics, operation=operation, info=info,
                time=time, ref=None if ref is None else self._ref_to_move(ref),
                expected=expected, author=author,
                committer=runner if runner != author else None, author_time=author_time,
                sign=sign)

    def add_commits(self, commits: Sequence[Commit],
                    refs: dict[str, tuple[str | None, str | None]] | None = None,
                    reindexed: Sequence[tuple[Commit, int]] = ()) -> None:
        """Indexes commits that arrived from elsewhere (a fetch) and moves `refs` (name →
        (expected, new); new None deletes) by compare-and-swap, in one transaction
        (writer.add_commits; the reflog message: the caller's `refs.reason`); the request
        rows of the update sets of `reindexed` written again (a refetch's)."""
        with self.lock():
            writer.add_commits(self.store, self.refs, self.base.hash, commits, refs or {},
                               reindexed)

    def _get_commit_row(self, commit_id: str) -> dict[str, Any]:
        row = index.commit_row(self.store, commit_id)
        if row is None:
            raise ValidationError(f"unknown commit {commit_id!r}")
        return row

    def has_commit(self, commit_id: str) -> bool:
        return self.store.has_commit(commit_id)

    def get_commit(self, commit_id: str) -> Commit:
        return self.store.commit(commit_id)

    def commit_size(self, rev: str) -> int:
        """Bytes of the objects a commit introduces (not already held by its parents)."""
        return size_of(self._get_commit_row(self.resolve(rev)))

    def requests_of(self, commit_id: str, set_index: int = 0) -> list[Request]:
        return load_requests(self.objects, self.get_commit(commit_id).update_sets[set_index])

    def zs_of_set(self, commit_id: str, set_index: int = 0) -> torch.Tensor:
        return load_zs(self.objects, self.get_commit(commit_id).update_sets[set_index])

    def updates_of(self, commit_id: str, set_index: int = 0) -> dict[int, LayerUpdate]:
        return load_updates(self.objects, self.get_commit(commit_id).update_sets[set_index])

    def find_requests(self, *, subject: str | None = None, prompt: str | None = None,
                      contains: str | None = None) -> list[dict[str, Any]]:
        return index.find_requests(self.store, subject=subject, prompt=prompt,
                                   contains=contains)

    # -- history (memstore.store.history) -------------------------------------------------

    def log(self, rev: str = HEAD, *, first_parent: bool = False,
            limit: int | None = None, exclude: Sequence[str] = ()) -> list[Commit]:
        """Commits reachable from `rev`, newest first; [] on an unborn HEAD. `exclude`:
        revisions whose commits and ancestors are left out (`log A..B` is B excluding A)."""
        if rev == HEAD and self.head().commit is None:
            return []
        g = history.graph(self.db)
        start = self.resolve(rev)
        walked = g
        if exclude:
            walked = history.excluded(self.store, g, [self.resolve(r) for r in exclude])
            if start not in walked and start in g:  # B is A or one of its ancestors
                return []
        return self._listed(g, history.log_ids(self.db, start, first_parent, limit, walked))

    def log_sides(self, left: str, right: str, *,
                  limit: int | None = None) -> tuple[list[Commit], set[str]]:
        """`log A...B` (git's symmetric difference): the commits `left` or `right` reaches
        that the other does not, newest first over both, and the ids of those `left`
        reaches (git's `<` side; the others are `>`). Both histories are walked on the
        records (history.symmetric)."""
        g = history.graph(self.db)
        a, b = self.resolve(left), self.resolve(right)
        walked, lefts = history.symmetric(self.store, g, a, b)
        tips = [c for c in (a, b) if c in walked]  # a tip the other reaches lists nothing
        listed = history.log_ids(self.db, tips, limit=limit, g=walked) if tips else []
        return self._listed(g, listed), lefts

    def _listed(self, g, ids: list[str]) -> list[Commit]:
        """The records of `ids`: each is read to be listed, which checks its row for free."""
        commits = [self.get_commit(c) for c in ids]
        for c in commits:
            if g[c.id] != (c.parents, c.time):
                raise DamagedIndexError(f"commit {c.id[:12]}: index row disagrees with the "
                                        "record (parents or time); run `memstore fsck "
                                        "--repair`")
        return commits

    def log_all(self) -> list[Commit]:
        """Every indexed commit, oldest first (reachable or not)."""
        return [self.get_commit(r["id"])
                for r in self.db.query("select id from commits order by time, id")]

    def merge_base(self, a: str, b: str) -> str | None:
        bases = history.merge_bases(self.store, self.resolve(a), self.resolve(b))
        return bases[0] if bases else None

    def is_ancestor(self, ancestor: str, rev: str) -> bool:
        return history.is_ancestor(self.store, self.resolve(ancestor), self.resolve(rev))

    def chain_sets(self, rev: str) -> list[history.SetRef]:
        return history.chain_sets(self.store, self.resolve(rev))

    def update_chain(self, rev: str) -> list[dict[int, LayerUpdate]]:
        """The update sets that build `rev`'s state from the base weights, root first."""
        return history.update_chain(self.store, self.resolve(rev))

    def chain_keys(self, rev: str) -> dict[int, torch.Tensor]:
        return history.chain_keys(self.store, self.resolve(rev))

    def facts_at(self, rev: str) -> list[history.LiveFact]:
        return history.facts_at(self.store, self.resolve(rev))

    def zs_of(self, facts: list[history.LiveFact]) -> torch.Tensor:
        return history.zs_of(self.store, facts)

    # -- maintenance (memstore.store.maintenance) -----------------------------------------

    def fsck(self, verify: bool = True) -> list[str]:
        return self._file_problems() + maintenance.fsck(self.store, self.refs, verify)

    def _file_problems(self) -> list[str]:
        """The lock not a regular file (a folder there makes every write fail; SQLite's
        side files are checked when the index is opened)."""
        path = self.dir / "lock" if self.dir is not None else None
        if path is None or not os.path.lexists(path) or stat.S_ISREG(os.lstat(path).st_mode):
            return []  # the lock is made when first taken
        kind = "a folder" if path.is_dir() and not path.is_symlink() else "not a regular file"
        return [(f"{path} is {kind}, not the lock file writers take (every write fails); "
                 "remove it")]

    def gc(self, dry_run: bool = False, *, expire: float = reflog.EXPIRE,
           expire_unreachable: float = reflog.EXPIRE_UNREACHABLE) -> maintenance.GcReport:
        return maintenance.gc(self.store, self.refs, self.lock, dry_run, self._lock.on_wait,
                              expire, expire_unreachable)

    # -- the reflog (memstore.store.reflog) -----------------------------------------------

    def reflog_of(self, name: str = HEAD, *, strict: bool = False
                  ) -> tuple[str, list[reflog.Entry]]:
        """(the ref `name` names, as `REF@{N}` takes it, and its reflog, newest first);
        `strict`: a `name` that names no ref here and no log (a typo) is a ValidationError,
        as git's `reflog show`/`expire` refuse it; a tag's (`v1` where no branch or
        remote-tracking branch is so named, `refs/tags/v1`), reflog.TagHasNoLog."""
        ref = self.refs.log_ref(name)
        log = reflog.entries(self.db, ref)
        if not strict or log or ref == HEAD:
            return ref, log
        tag = ref if ref.startswith(TAGS) else None
        if tag is None and self.refs.read(ref) is None and name and "@{" not in name \
                and not name.startswith("refs/"):
            tag = TAGS + name  # `v1`, where no branch or remote-tracking branch is
        if tag is not None and self.refs.read(tag) is not None:
            raise reflog.TagHasNoLog(name, tag)
        if self.refs.read(ref) is None:
            raise ValidationError(f"no reflog for {name[:SHOWN]!r}: it names no branch, "
                                  "remote-tracking branch or HEAD here")
        return ref, log

    def reflog_expire(self, names: Sequence[str] | None, *, expire: float,
                      expire_unreachable: float, now: float,
                      dry_run: bool = False,
                      on_passed: Callable[[str, bool], None] | None = None
                      ) -> list[reflog.Entry]:
        """git's `reflog expire`: deletes the entries of the refs `names` (None: every ref
        with a log) older than `expire` seconds before `now`, or than `expire_unreachable`
        and naming a commit the ref's tip does not reach (HEAD's: no ref), as git's; the
        entries deleted (or that would be). Every ref (`names` None) beside a branch, tag
        or remote-tracking row holding no commit id: as git's `--all` beside a bad ref, that
        row's log is kept (and HEAD's, HEAD on it), the others' expired, and `on_passed`
        told fsck's line for each such row with a log kept (and whether HEAD's is one; a
        row with none, a tag's, git's passes over in silence); a name of such a row, or a
        damaged HEAD row, refuses as before."""
        with self.lock(passing=names is None), transaction(self.db):
            refs = None if names is None else [self.reflog_of(n, strict=True)[0]
                                               for n in names]
            passed = self.refs.unreadable() if names is None else {}
            head_branch = self.refs.head_branch()
            kept = set(passed) | ({HEAD} if head_branch in passed else set())
            g = history.checked_graph(self.store, unreadable=True)
            reaches = reflog.reaching(self.refs.all(passed),
                                      lambda tips: history.ancestors_of(g, tips))
            gone = [e for e in reflog.expired(self.db, now, reaches, expire,
                                              expire_unreachable, refs) if e.ref not in kept]
            if not dry_run:
                reflog.delete(self.db, [e.id for e in gone])
            head_too = head_branch in passed and bool(reflog.entries(self.db, HEAD))
            said = [(line, head_too and name == head_branch) for name, line in passed.items()
                    if reflog.entries(self.db, name) or (head_too and name == head_branch)]
        for line, head_too in said if on_passed is not None else ():
            on_passed(line, head_too)
        return gone

    def reflog_delete(self, selectors: Sequence[str]) -> list[reflog.Entry]:
        """git's `reflog delete REF@{N}...`: those entries, all or none (one that names no
        entry refuses them all, before any goes)."""
        with self.lock(), transaction(self.db):
            chosen = []
            for sel in selectors:
                at = ref_marks.entry_at(self.refs, sel, warn=False) if isinstance(sel, str) else None
                if at is None:
                    raise ValidationError(f"{str(sel)[:SHOWN]!r} names no reflog entry: give "
                                          "REF@{N} or REF@{DATE} (`memstore reflog REF` "
                                          "lists them)")
                _, log = self.reflog_of(at[0], strict=bool(at[0]))  # `nope@{0}`, `v1@{0}`
                if at[1] >= len(log):
                    shown = at[0] or (self.head().branch or HEAD)
                    raise ValidationError(
                        f"{sel[:SHOWN]!r} names no reflog entry: log for {shown[:SHOWN]!r} "
                        + (f"only has {len(log)} entr{'y' if len(log) == 1 else 'ies'}"
                           if reflog.split(sel) or not log else
                           "has none that old"))
                chosen.append(log[at[1]])
            reflog.delete(self.db, {e.id for e in chosen})
        return list({e.id: e for e in chosen}.values())  # one named twice went once


def _setup(store: Storage, base_spec: str, base_hash: str, base_info: dict[str, Any] | None,
           settings: EditSettings | None, base_path: str | Path | None, branch: str) -> None:
    if not isinstance(base_hash, str) or not base_hash:
        raise ValidationError("init: the base model's content hash is required")
    ref = branch_ref(branch)
    with transaction(store.db):
        config.put(store.db, config.BASE, config.base_json(base_spec, base_hash, base_path,
                                                           base_info))
        if settings is not None:
            config.put(store.db, config.SETTINGS, config.settings_json(settings))
        Refs(store.db, store.objects).set_symbolic(HEAD, ref)
