"""Where a write in a state came from.

A fact's write in an update set was made by a commit, or carried there by a rewrite: a
merge solves again what it brings in (or what both sides changed since the merge base), a
squash solves again the live facts of the commits it replaces, a revert copies or replays
the sets after the one it changed. Each carried write has one source, the write it was
solved from, in an older commit: following sources back ends at the commit that wrote the
fact. `revert` takes out the writes whose path passes through the reverted commit (for a
merge: through it or a commit of its merged side, and through none of its first parent's
history), so a fact another commit wrote too (on another branch, say) keeps that commit's
write. A squash records each write's path through the commits it replaced: gc, and a
clone, leave those out.

Where two sides of a merge both held the same fact (each by its own write), the merge kept
one side's write; the other side's is the fact's too: `fellows` finds such writes, and a
revert that takes out one of them writes the fact again from another's cached z-vector,
recording that write as the source of its copy (a revert's `sources`)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..editing.requests import Request
from ..errors import MemstoreError
from .commits import CorruptRecordError, load_requests
from .history import LiveFact, SetRef, chain_sets
from .objects import OBJECT_ID
from .repository import Repository

Fact = tuple[str, str, str]  # (subject, prompt, target_new)
Write = tuple[str, int, int]  # request `position` of set `index` of `commit`


def fact(r: Request) -> Fact:
    return (r.subject, r.prompt, r.target_new)


def _subsequence(part: list[Fact], whole: list[Fact]) -> list[int] | None:
    """Positions in `whole` of the items of `part`, in order, or None."""
    out, j = [], 0
    for f in part:
        while j < len(whole) and whole[j] != f:
            j += 1
        if j == len(whole):
            return None
        out.append(j)
        j += 1
    return out


class Provenance:
    """Sources of writes in one repository, cached for the life of one operation."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._facts: dict[tuple[str, int], list[Fact]] = {}
        self._live: dict[str, dict[tuple[str, str], tuple[SetRef, int, Fact]]] = {}
        self._replays: dict[str, dict[int, tuple[SetRef, list[int]]]] = {}
        self._picks: dict[tuple[str, int], list[Write]] = {}
        self._lines: dict[Write, list[Write]] = {}
        self._held: dict[tuple[str, Fact], list[tuple[str, Write]]] = {}
        # the state graph (basis) of the commits whose holders were asked for, each commit
        # read once: depth and ancestors 2^j bases up, and every write by (subject, prompt)
        self._depth: dict[str, int] = {}
        self._up: dict[str, list[str]] = {}
        self._writers: dict[tuple[str, str], list[tuple[int, Write, Fact]]] = {}

    def holds(self, commit: str) -> bool:
        """Whether the repository holds `commit`, decided on its record: gc, and a clone,
        leave out the commits a squash replaced (their rows and records both), where a
        writer's line ends at the oldest write still held. A commit whose commits row alone
        is gone (deleted by hand; fsck names it) is held where the history still names it
        (a ref, or a row's parents or basis): on the rows, blame named a newer commit (the
        squash) as the writer of a fact it carried. A record nothing names is not held: gc
        deletes the rows of what no ref reaches before their files (and a gc stopped in
        between leaves those files until the next), so blame named a commit `show` does
        not know, or read a file that gc was deleting. A row whose record is missing is
        held too, its read then naming the damage; a record naming no object id
        (squashed, picked) names nothing held, as on the rows."""
        if self.repo.has_commit(commit):
            return True
        if not (isinstance(commit, str) and OBJECT_ID.match(commit) is not None
                and self.repo.objects.contains(commit)):
            return False
        return commit in self.repo.refs.all().values() or bool(self.repo.db.execute(
            "select 1 from commits where basis = ? or instr(parents, ?) > 0 limit 1",
            [commit, commit]).fetchone())

    def facts(self, ref: SetRef) -> list[Fact]:
        k = (ref.commit, ref.index)
        if k not in self._facts:
            self._facts[k] = [fact(r) for r in load_requests(self.repo.objects, ref.update_set)]
        return self._facts[k]

    def _live_at(self, commit: str) -> dict[tuple[str, str], tuple[SetRef, int, Fact]]:
        """Per (subject, prompt), the write live at `commit` (facts_at, from the sets'
        requests read once per operation however many states share them)."""
        if commit not in self._live:
            live: dict[tuple[str, str], tuple[SetRef, int, Fact]] = {}
            for ref in chain_sets(self.repo.store, commit):  # (an id: no revision resolved)
                for p, f in enumerate(self.facts(ref)):
                    live[f[:2]] = (ref, p, f)
            self._live[commit] = live
        return self._live[commit]

    def squash_sources(self, facts: list[LiveFact], squashed: set[str]) -> dict:
        """For a squash of the commits `squashed` that solves `facts` (live at the HEAD it
        replaces) again: per fact, the writes it carries on, newest first, through the
        squashed commits and up to the first write of a commit outside them. Recorded in the
        squash (gc, and a clone, leave the squashed commits out), each write as three
        numbers: its commit's place in `commits`, its set and its position."""
        commits: dict[str, int] = {}
        paths = []
        for f in facts:
            path: list[int] = []
            for c, i, p in self._writes((f.commit, f.set_index, f.position)):
                path += [commits.setdefault(c, len(commits)), i, p]
                if c not in squashed:
                    break
            paths.append(path)
        return {"commits": list(commits), "paths": paths}

    def _writes(self, start: Write) -> Iterator[Write]:
        """`start` and the writes it was carried from, newest first, as far as the commits
        holding them are in the repository."""
        todo = [start]
        while todo:
            w = todo.pop(0)
            yield w
            if not todo and self.holds(w[0]):  # a source, or a recorded path's last
                todo = self._sources(w)

    def _sources(self, w: Write) -> list[Write]:
        """The write `w` was solved from (a squash's recorded writes: the path to it)."""
        c = self.repo.get_commit(w[0])
        if c.operation == "revert":  # a write it made again from another write's z-vector
            for s, p, *source in c.info.get("sources", ()):
                if (s, p) == (w[1], w[2]):
                    return self._recorded(c.id, [(source[0], source[1], source[2])])
        if c.operation == "squash" and "sources" in c.info:
            ids, path = c.info["sources"]["commits"], c.info["sources"]["paths"][w[2]]
            return self._recorded(c.id, [(ids[path[k]], path[k + 1], path[k + 2])
                                         for k in range(0, len(path), 3)])
        at = self.source(SetRef(c.id, w[1], c.update_sets[w[1]]), w[2])
        return [] if at is None else [(at[0].commit, at[0].index, at[1])]

    def _recorded(self, by: str, writes: list[Write]) -> list[Write]:
        """`writes`, recorded by commit `by` as sources: each in its commit, where the
        repository holds that commit (the record is checked alone when read: commits.py)."""
        for c, i, p in writes:
            sets = self.repo.get_commit(c).update_sets if self.holds(c) else None
            if sets is not None and not (i < len(sets) and p < sets[i].n):
                raise CorruptRecordError(f"object {by}: its record names request {p} of set "
                                         f"{i} of commit {c[:12]} as a source, which that "
                                         "commit has not; run `memstore fsck`")
        return writes

    def _live_write(self, commit: str, written: Fact) -> tuple[SetRef, int] | None:
        at = self._live_at(commit).get(written[:2])
        if at is None or at[2] != written:
            return None
        return at[0], at[1]

    def _replayed(self, commit: str) -> dict[int, tuple[SetRef, list[int]]]:
        """A revert's sets matched to the sets of its parent's chain they copy or replay
        (the same requests, less the reverted ones, in the same order), matched from the
        newest back; not the set of the facts a revert of a merge put back (info
        `restored`, its index: it replays no set, its writes' sources are recorded)."""
        if commit not in self._replays:
            c = self.repo.get_commit(commit)
            parent = chain_sets(self.repo.store, c.parents[0])
            out: dict[int, tuple[SetRef, list[int]]] = {}
            p = len(parent) - 1
            for i in range(len(c.update_sets) - 1, -1, -1):
                if i == c.info.get("restored"):
                    continue
                mine = self.facts(SetRef(c.id, i, c.update_sets[i]))
                while p >= 0:
                    pos = _subsequence(mine, self.facts(parent[p]))
                    p -= 1
                    if pos is not None:
                        out[i] = (parent[p + 1], pos)
                        break
            self._replays[commit] = out
        return self._replays[commit]

    def source(self, ref: SetRef, position: int) -> tuple[SetRef, int] | None:
        """The write that request `position` of `ref` was solved from; None for a write the
        commit made itself (or whose source cannot be told)."""
        c = self.repo.get_commit(ref.commit)
        written = self.facts(ref)[position]
        if c.operation == "merge":  # from our side when it holds the same write, else theirs
            return next((w for w in (self._live_write(p, written) for p in c.parents)
                         if w is not None), None)
        if c.operation == "squash":
            squashed = c.info.get("squashed") or []
            if not all(self.holds(s) for s in squashed):
                return None  # gone (gc, a clone) from a squash that records no sources
            inner = {p for s in squashed for p in self.repo.get_commit(s).parents}
            head = next((s for s in squashed if s not in inner), None)
            return self._live_write(head, written) if head is not None else None
        if c.operation == "revert" and c.parents:
            match = self._replayed(c.id).get(ref.index)
            return (match[0], match[1][position]) if match is not None else None
        return None

    def picked_from(self, w: Write) -> Write | None:
        """For a write of a cherry-pick: the write of the picked commit (info `picked`) it
        was solved from, the pick's requests being those of the picked commit it did not
        hold already, in their order; None for another commit's write, or where the picked
        commit is not in the repository (gc, a clone); an error where it is and its requests
        are not the pick's. Not a source (`line` stops at the pick): the pick's writes are
        its own, which a revert of the picked commit leaves."""
        c = self.repo.get_commit(w[0])
        picked = c.info.get("picked") if c.operation == "cherry-pick" else None
        if not isinstance(picked, str) or not self.holds(picked):
            return None
        if (c.id, w[1]) not in self._picks:  # matched once per set, not once per write
            refs = [SetRef(picked, i, s)
                    for i, s in enumerate(self.repo.get_commit(picked).update_sets)]
            writes = [(picked, r.index, p) for r in refs for p in range(len(self.facts(r)))]
            at = _subsequence(self.facts(SetRef(c.id, w[1], c.update_sets[w[1]])),
                              [f for r in refs for f in self.facts(r)])
            if at is None:  # every pick's are (cherry_pick): a forged or damaged record
                raise CorruptRecordError(f"object {c.id}: a cherry-pick of {picked[:12]} "
                                         f"whose set {w[1]} holds requests that commit has "
                                         "not; run `memstore fsck`")
            self._picks[c.id, w[1]] = [writes[i] for i in at]
        return self._picks[c.id, w[1]][w[2]]

    def line(self, w: Write) -> list[Write]:
        """`w` and the writes it was carried from, newest first (cached)."""
        if w not in self._lines:
            self._lines[w] = list(self._writes(w))
        return self._lines[w]

    def holding(self, commit: str, written: Fact) -> list[Write]:
        """The writes by which `commit`'s state holds `written` (the same subject, prompt
        and target): the live one and those of the same target before it in its chain with
        none of another target between (a revert of the later leaves the earlier), oldest
        first. From the writes of that (subject, prompt) in the commits of its basis chain:
        each commit is read once per operation, however many states are asked about (a
        chain walk per merge parent made a revert over many merges quadratic)."""
        self._index_chain(commit)
        run: list[Write] = []
        mine = sorted((d, w, f) for d, w, f in self._writers.get(written[:2], ())
                      if self._in_chain(w[0], d, commit))
        for _, w, f in reversed(mine):  # the last writes, back to one of another target
            if f != mine[-1][2]:
                break
            run.append(w)
        return run[::-1] if mine and mine[-1][2] == written else []

    def _index_chain(self, commit: str) -> None:
        """Reads the commits of `commit`'s basis chain not read yet (chain_sets' order)."""
        todo, seen, cur = [], set(), commit
        while cur is not None and cur not in self._depth:
            if cur in seen:
                raise MemstoreError(f"commit {cur[:12]}: its basis chain loops; run "
                                    "`memstore fsck`")
            seen.add(cur)
            todo.append(self.repo.store.commit(cur))
            cur = todo[-1].basis
        for c in reversed(todo):
            up = [c.basis] if c.basis is not None else []
            while up and len(self._up[up[-1]]) >= len(up):
                up.append(self._up[up[-1]][len(up) - 1])
            self._up[c.id] = up
            self._depth[c.id] = d = self._depth[c.basis] + 1 if c.basis is not None else 0
            for i, s in enumerate(c.update_sets):
                for p, f in enumerate(self.facts(SetRef(c.id, i, s))):
                    self._writers.setdefault(f[:2], []).append((d, (c.id, i, p), f))

    def _in_chain(self, c: str, depth: int, commit: str) -> bool:
        """Whether commit `c` (at `depth`) is `commit` or a commit of its basis chain."""
        up = self._depth[commit] - depth
        if up < 0:
            return False
        j = 0
        while up:
            if up & 1:
                commit = self._up[commit][j]
            up >>= 1
            j += 1
        return commit == c

    def held(self, merge: str, written: Fact) -> list[tuple[str, Write]]:
        """The parents of `merge` that held `written` (the same subject, prompt and target),
        each with each write it held it by (holding), in parent order."""
        k = (merge, written)
        if k not in self._held:
            self._held[k] = [(p, w) for p in self.repo.get_commit(merge).parents
                             for w in self.holding(p, written)]
        return self._held[k]

    def fellows(self, start: Write, written: Fact, merges: Sequence[str],
                above: Callable[[str], set[str]]) -> list[Write]:
        """`start` (a write of `written`) first, then the writes of the same fact that a merge
        of `merges` met it with: both parents held it, one by `start` or a write it was
        carried from, the other by a write of its own: one carried from no write in the
        history of the first (a squash's copy of it, or a write both sides had before they
        parted, is no other write); or the merge kept `start`'s line (its merge base's
        write) where each parent held the fact by a write of its own, both having written
        it again since they parted: each such write, carried from no write in the history
        of another parent; and so on from those. `above(c)`: the commits in the history of
        commit `c`."""
        found, k = [start], 0
        while k < len(found):
            line = set(self.line(found[k]))
            commits = {w[0] for w in line}
            k += 1
            for m in merges:
                if commits.isdisjoint(above(m)):
                    continue  # no write of this line is older than the merge
                held = self.held(m, written)
                by = {p for p, _ in held}
                if len(by) < 2 or not any(w in line for _, w in held) and line.isdisjoint(
                        self.holding(m, written)):
                    continue  # this line met no other write here
                # (neither parent holding it by this line, the merge kept it, its merge
                # base's write: both sides wrote it again since they parted)
                found += [w for p, w in held if w not in found and line.isdisjoint(
                    self.line(w)) and all(x[0] not in above(q) for x in self.line(w)
                                          for q in by - {p})]
        return found
