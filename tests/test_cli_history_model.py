"""Seeded property test of the history operations against a reference model.

Random sequences of commit (with and without --supersede), revert, merge, squash (onto a
commit or `base`), cherry-pick, branch and switch run through the CLI in this process on a copy of the
empty template repository (tiny model, few z steps). A reference model written here, sharing
no code with memstore, keeps every commit's parents and live facts and predicts, from the
documented semantics, each operation's outcome and the live facts at HEAD:

- commit: adds its facts; a fact whose (subject, prompt) is live with another target is
  refused (exit 2, one error line, nothing written) unless --supersede, which replaces it;
- revert R: a new commit without R's writes. The reference keeps each state as the list
  of writes that make it (a fact's newest write is the live one), each write owned by the
  commit that wrote it, by a merge that brought it in from the other side and by a squash
  that rewrote it; a revert drops R's writes, so a fact R superseded is live again and a
  fact written again since (same target or another) keeps the later write (README). It is
  refused (exit 1) when R is a revert, was already reverted on this branch, or none of its
  writes is left; R not in HEAD's history is bad input (exit 2). (A git-like reference that
  undid R's diff instead diverged where a later commit wrote R's fact again with the same
  target: memstore keeps it, as its code intends, and the README now says so.) A fact both
  sides of a merge hold with the same target is held by each side's writes of it (those
  of the same target at the top of that side's log), all kept in the merged state, so a
  revert of either writer leaves it to the other's and a revert of all takes it out; the
  revert of a writer whose write the merge left out (its solve kept the other's) is a
  commit that changes no facts, not a refusal. A write one side had before they parted
  (its owners in the other side's history) is no second holder, nor is one a revert in
  either side's history took out (a state built on the merge base's or the other side's
  may hold it again: it leaves the fact to the other holders) (README's revert row). A
  revert of a merge takes out the writes it owns and every write its merged side made
  (by a commit in the history of its second parent, not of its first, written or
  rewritten by a squash there), of a fact its first parent held too (both sides wrote
  it) among them: that fact stays while a write of the first parent's side holds it and
  goes with the last, whichever of the merge and that side's writer is reverted first
  (this reference, as memstore, once took out only the writes the merge owned, of facts
  its first parent lacked: a fact both sides wrote stayed after both reverts). It puts
  back what the merge took out (facts its first parent held that its merged side
  reverted), where the state left holds nothing of that (subject, prompt), as git's
  revert of a merge does: each a write of the revert's own, of the first parent's write's
  origin, which the reverts its merged side made do not take out (this reference, as
  memstore, once left such facts out, and refused a revert of a merge that only took out);
- merge B: fast-forward / up to date as git; otherwise per (subject, prompt) a side that
  changed it against the merge base (after criss-cross merges: the best common ancestors
  merged with each other, as git's recursive strategy does) wins over a side that did not, both changing it to
  different targets is a conflict (exit 1, the CONFLICT lines and one error line, nothing
  written); refused too when each side reverted facts of the merge base the other keeps
  (tests/test_cli_rewrite.py);
- squash R / squash base: the same live facts in one commit whose parent is R (none for
  base), a fact held at HEAD by a write not among those holding it at R (written again
  after R, with the same target too, or by the other side of a merge), or by another
  than R's newest (a revert took that out), the squash's write; refused when a fact live
  at R was reverted after it. A write at R that a revert it keeps took out (one of two
  holders of a fact, the fact staying) stays out, as memstore records it (the squash's
  `reverted`): this reference once carried it on from R's state, so that a revert of the
  other holder after the squash left the fact live where memstore took it out;
- cherry-pick R: R's requests (a commit's; a cherry-pick's: the facts it wrote) written on
  HEAD as the pick's own writes: a fact HEAD holds already is left out, one whose
  (subject, prompt) HEAD holds with the target R's parent held is written over, one HEAD
  holds with yet another target is a conflict (exit 1, the CONFLICT lines and one error
  line); refused (exit 1) for a merge, revert or squash, for a commit in HEAD's history,
  and where nothing is left to write. A revert of the pick takes its writes out; one of R
  (merged in since) leaves them, as another commit's writes of the same facts (README's
  cherry-pick row).

After every operation: the outcome and exit status, nothing changed by a refusal (a
snapshot of objects and index rows), the live facts at HEAD and every branch's head as the
reference says, `fsck` ok; and the read commands (--json), against the reference, not
memstore's code: `status` names the branch, HEAD, its number of commits and live facts;
`log` lists exactly HEAD's ancestors, each before its parents, with the parents and
operation the reference recorded; `blame` lists the live facts, each named by a commit
that wrote that fact with that target in a state of HEAD's history (or of one a squash
there replaced), past a cherry-pick to the commit it picked (which, where several wrote it,
the writes merges and squashes kept tell: not checked). After an operation that wrote a
commit: `show HEAD` has the parents, operation and message the writing command printed,
the reverted commit / the squashed commits (those after REV) / a best merge base / the
picked commit, a commit's requests are the file's facts (a pick's the facts it wrote), and
its `facts` are exactly the diff of the live facts against its first parent (the
base for a root); `diff PARENT HEAD` for each parent, and now and then `diff` between two
random known commits or the base, lists exactly the facts added, removed and changed
(another target) by (subject, prompt). After each sequence: `export` + `verify` pass and a second export
of the same commit is byte-identical.

The generator often commits facts live on some branch with their targets (on the same
branch: a fact written again; on another: one a merge then meets on both sides), merges a
branch that holds such a fact, and reverts a writer of a fact another write holds too: a
merge meets a second holder in about one sequence in four (9 of the 30 default seeds; one
in 25 before). It picks mostly a commit of another branch that writes something here, so
that a merge then often meets the picked commit's writes and the pick's on both sides
(about one pick written per five sequences: 4 in the 30 default seeds).
Scripted sequences run the cases README's revert and cherry-pick rows name through the
same checks.

MEMSTORE_HISTORY_SEEDS=N runs N seeds (default 30, ~30 s)."""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_support import copy_repo, empty_template, ok, run, snapshot, write_facts

from memstore.store.repository import Repository

SEEDS = int(os.environ.get("MEMSTORE_HISTORY_SEEDS", "30"))

# (subject, prompt) keys with two targets each: 10 subjects x 2 prompts
SUBJECTS = ["Danielle Darrieux", "Porsche", "Honda Civic", "Michael Jordan", "Lionel Messi",
            "Toko Yasuda", "Apple", "Microsoft", "Japan", "France"]
PROMPTS = [("The mother tongue of {} is", ("English", "French")),
           ("{} plays", ("soccer", "basketball"))]
POOL = [(s, p, targets) for s in SUBJECTS for p, targets in PROMPTS]

Key = tuple[str, str]


# -- the reference model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One write of a fact into a state: the commit that wrote it (`origin`, which stays
    with the copies merges and squashes make of it), and the commits it belongs to, its
    owners: that commit, a merge that brought it in from the other side, a squash that
    rewrote it."""

    key: Key
    target: str
    owners: frozenset[str]
    origin: str = "new"

    def owned(self, *more: str) -> Write:
        return Write(self.key, self.target, self.owners | set(more), self.origin)


@dataclass
class Node:
    id: str
    parents: tuple[str, ...]
    log: list[Write]  # the writes that make the state, oldest first
    kind: str
    seq: int
    reverted: str | None = None
    squashed_head: str | None = None  # for a squash: the HEAD it replaced
    gone: frozenset[str] = frozenset()  # commits a revert in its history took out
    requests: tuple[tuple[Key, str], ...] = ()  # a commit's or cherry-pick's, in order
    picked: str | None = None  # for a cherry-pick: the commit it picked


def fold(log: list[Write]) -> dict[Key, str]:
    """The live facts: per (subject, prompt), the newest write."""
    return {w.key: w.target for w in log}


def newest(log: list[Write]) -> dict[Key, Write]:
    return {w.key: w for w in log}


def holders(log: list[Write]) -> dict[Key, list[Write]]:
    """Per live (subject, prompt), the writes that hold its live target: the newest and
    the writes of the same target just before it (none of another target between), oldest
    first. Reverting all but one of them leaves the fact live."""
    out: dict[Key, list[Write]] = {}
    for w in log:
        run = out.get(w.key)
        out[w.key] = run + [w] if run and run[0].target == w.target else [w]
    return out


@dataclass
class Refused:
    code: int
    says: str
    conflicts: int = 0  # CONFLICT lines before the error line


@dataclass
class Reference:
    nodes: dict[str, Node] = field(default_factory=dict)
    branches: dict[str, str | None] = field(default_factory=lambda: {"main": None})
    current: str = "main"
    holders_met: int = 0  # merges that kept a second holder of a fact (generator's reach)

    @property
    def head(self) -> str | None:
        return self.branches[self.current]

    def log(self, c: str | None) -> list[Write]:
        return list(self.nodes[c].log) if c is not None else []

    def live(self, c: str | None) -> dict[Key, str]:
        return fold(self.log(c))

    def gone(self, c: str | None) -> frozenset[str]:
        return self.nodes[c].gone if c is not None else frozenset()

    def ancestors(self, c: str | None) -> set[str]:
        seen: set[str] = set()
        stack = [c] if c is not None else []
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                stack.extend(self.nodes[x].parents)
        return seen

    def add(self, cid: str, parents: tuple[str, ...], log: list[Write], kind: str,
            reverted: str | None = None, owned: bool = False,
            squashed_head: str | None = None, gone: frozenset[str] = frozenset(),
            requests: tuple[tuple[Key, str], ...] = (), picked: str | None = None) -> None:
        if owned:  # the writes new in this commit are its own (the id is known only now)
            log = [Write(w.key, w.target, w.owners - {"new"} | ({cid} if "new" in w.owners
                                                               else set()),
                         cid if w.origin == "new" else w.origin) for w in log]
        self.nodes[cid] = Node(cid, parents, log, kind, len(self.nodes), reverted,
                               squashed_head, gone, requests, picked)
        self.branches[self.current] = cid

    # each predict_* returns a Refused, or a function that records the new commit id
    def predict_commit(self, facts: list[tuple[Key, str]], supersede: bool):
        head, live = self.head, self.live(self.head)
        if not supersede and any(k in live and live[k] != t for k, t in facts):
            return Refused(2, "use --supersede to replace it")
        log = self.log(head) + [Write(k, t, frozenset({"new"})) for k, t in facts]
        return lambda cid: self.add(cid, (head,) if head else (), log, "commit", owned=True,
                                    gone=self.gone(head), requests=tuple(facts))

    def predict_revert(self, r: str):
        """Takes out R's writes (and their copies, which R owns too); a fact another write
        holds as well, on a side merged since, say, stays (README's revert row)."""
        head = self.head
        anc = self.ancestors(head)
        if r not in anc:
            return Refused(2, "is not in the history of HEAD")
        if self.nodes[r].kind == "revert":
            return Refused(1, "is itself a revert")
        if any(self.nodes[x].kind == "revert" and self.nodes[x].reverted == r for x in anc):
            return Refused(1, "was already reverted by")
        log = [w for w in self.log(head) if not self.takes(r, w)]
        back = self.back(r, fold(log))
        if len(log) == len(self.log(head)) and not back:
            return Refused(1, "has no facts in the current state")
        return lambda cid: self.add(cid, (head,), log + back, "revert", reverted=r,
                                    owned=True, gone=self.gone(head) | {r})

    def back(self, r: str, left: dict[Key, str]) -> list[Write]:
        """What a revert of R puts back: for a merge, the facts its first parent held and it
        did not (its merged side reverted them), as git's revert of a merge (mainline 1)
        gives back what the merge removed, where the state left holds nothing of that
        (subject, prompt); each a write of the revert's own, copied from the write that held
        it there (the same origin)."""
        node = self.nodes[r]
        if node.kind != "merge":
            return []
        had, kept = newest(self.log(node.parents[0])), self.live(r)
        return [Write(k, w.target, frozenset({"new"}), w.origin) for k, w in had.items()
                if k not in kept and k not in left]

    def takes(self, r: str, w: Write) -> bool:
        """Whether a revert of R takes write `w` out: one R owns; for a merge, also one its
        merged side made, a fact its first parent held too among them: written, or
        rewritten by a squash, by a commit in the history of its second parent and not of
        its first, and by none in the first's (a copy the merged side made of that side's
        write is that side's)."""
        if r in w.owners:
            return True
        node = self.nodes[r]
        if node.kind != "merge":
            return False
        ours = self.ancestors(node.parents[0])
        made = w.owners | {w.origin}
        return bool(made & self.ancestors(node.parents[1]) - ours) and not made & ours

    def taken(self, gone: frozenset[str], w: Write) -> bool:
        """Whether a revert of one of the commits `gone` took `w` out."""
        return any(self.takes(g, w) for g in gone)

    def best_bases(self, left: list[str], right: list[str]) -> list[str]:
        """Best common ancestors, newest first."""
        common = set().union(*map(self.ancestors, left)) & set().union(*map(self.ancestors, right))
        best = {c for c in common
                if not any(c in self.ancestors(o) - {o} for o in common)}
        return sorted(best, key=lambda c: -self.nodes[c].seq)

    def merge_base(self, a: str, b: str) -> str | None:
        """The commit a merge builds its solve on: the newest best common ancestor."""
        best = self.best_bases([a], [b])
        return best[0] if best else None

    def base_targets(self, left: list[str], right: list[str]) -> dict:
        """What a merge compares both sides with: the best bases merged into one, pairwise
        against their own bases (git's recursive merge base); a fact they conflict on is
        an object equal to no target."""
        bases = self.best_bases(left, right)
        if not bases:
            return {}
        acc, of = self.live(bases[0]), [bases[0]]
        for other in bases[1:]:
            below, theirs, nxt = self.base_targets(of, [other]), self.live(other), {}
            for k in set(acc) | set(theirs):
                o, t, b = acc.get(k), theirs.get(k), below.get(k)
                v = o if o == t or t == b else t if o == b else object()
                if v is not None:
                    nxt[k] = v
            acc = nxt
            of.append(other)
        return acc

    def predict_merge(self, branch: str):
        ours, theirs = self.head, self.branches[branch]
        assert theirs is not None
        if ours == theirs or (ours is not None and theirs in self.ancestors(ours)):
            return "up-to-date"
        if ours is None or ours in self.ancestors(theirs):
            def forward(_):
                self.branches[self.current] = theirs
            return forward
        mb = self.merge_base(ours, theirs)
        b, o, t = self.base_targets([ours], [theirs]), self.live(ours), self.live(theirs)
        at_mb = self.live(mb)
        wo, wt = newest(self.log(ours)), newest(self.log(theirs))
        merged: dict[Key, Write] = {}
        conflicts = 0
        for k in set(o) | set(t):
            if o.get(k) == t.get(k) or t.get(k) == b.get(k):
                pick = wo.get(k)
            elif o.get(k) == b.get(k):  # brought in from their side: the merge's own
                pick = wt[k].owned("new") if k in t else None
            else:
                conflicts += 1
                continue
            if pick is not None:
                merged[k] = pick
        if conflicts:
            return Refused(1, "conflicting fact(s); nothing was written", conflicts)
        if fold(list(merged.values())) == o:
            log = self.log(ours)
        elif set(at_mb) <= set(merged):  # one solve on the merge base for what changed since
            log = self.log(mb) + [w for k, w in merged.items() if at_mb.get(k) != w.target]
        elif set(o) <= set(merged) or set(t) <= set(merged):  # on the side that keeps all
            side = ours if set(o) <= set(merged) else theirs
            s = self.live(side)
            log = self.log(side) + [w for k, w in merged.items() if s.get(k) != w.target]
            if side == theirs:  # their writes it brings in, as they are, are the merge's too
                mine = self.ancestors(ours)
                log = [w.owned("new") if w.owners - mine and o.get(w.key) != w.target else w
                       for w in log]
        else:
            return Refused(1, "each side reverted facts of the merge base")
        # a fact both sides hold with the same target is held by each side's writes of it:
        # a revert of one leaves it to the other's (README's revert row). A write one side
        # had before they parted (in its history) is no second holder: the other side wrote
        # it again, or superseded it; nor is one a revert on either side took out, which a
        # state built on the other side's, or the merge base's, may hold again
        gone = self.gone(ours) | self.gone(theirs)
        have = {(w.key, w.origin) for w in log}
        sides = ((holders(self.log(ours)), self.ancestors(theirs)),
                 (holders(self.log(theirs)), self.ancestors(ours)))
        for k, w in merged.items():
            if o.get(k) != w.target or t.get(k) != w.target:
                continue
            for held, other in sides:
                for x in held[k]:
                    if (k, x.origin) not in have and not x.owners & other \
                            and not self.taken(gone, x):
                        log.append(x)
                        have.add((k, x.origin))
                        self.holders_met += 1
            out = {x.origin for x in holders(log)[k] if self.taken(gone, x)}
            if len(out) < len(holders(log)[k]):
                log = [x for x in log if x.key != k or x.origin not in out]
        return lambda cid: self.add(cid, (ours, theirs), log, "merge", owned=True, gone=gone)

    def writer(self, c: str) -> str:
        """The commit `blame` names for a write whose origin is `c`: past a cherry-pick to
        the commit it picked, and so on (README's blame row)."""
        while self.nodes[c].kind == "cherry-pick":
            c = self.nodes[c].picked
        return c

    def predict_cherry_pick(self, r: str):
        """R's requests (a commit's, or a cherry-pick's: the facts it wrote) written on HEAD
        as the pick's own writes: one HEAD holds already is left out, one whose (subject,
        prompt) HEAD holds with the target R's parent held is written over, one HEAD holds
        with yet another target is a conflict (README's cherry-pick row)."""
        head, node = self.head, self.nodes[r]
        if head is None:
            return Refused(2, "nothing to cherry-pick onto")
        if node.kind not in ("commit", "cherry-pick"):
            return Refused(1, "only a commit of facts can be cherry-picked")
        if r in self.ancestors(head):
            return Refused(1, "is in the history of HEAD already")
        before = self.live(node.parents[0] if node.parents else None)
        here = self.live(head)
        picked = [(k, t) for k, t in node.requests if here.get(k) != t]
        conflicts = sum(k in here and here[k] != before.get(k) for k, _ in picked)
        if conflicts:
            return Refused(1, "conflicting fact(s); nothing was written", conflicts)
        if not picked:
            return Refused(1, "nothing to cherry-pick")
        log = self.log(head) + [Write(k, t, frozenset({"new"})) for k, t in picked]
        return lambda cid: self.add(cid, (head,), log, "cherry-pick", owned=True,
                                    gone=self.gone(head), requests=tuple(picked), picked=r)

    def predict_squash(self, onto: str):
        head = self.head
        if head is None or onto == head:
            return Refused(2, "nothing to squash")
        if onto != "base" and onto not in self.ancestors(head):
            return Refused(2, "is not in the history of HEAD")
        at_onto = self.live(onto) if onto != "base" else {}
        if set(at_onto) - set(self.live(head)):
            return Refused(1, "were reverted after it")
        # what reverts took out of commits it keeps (not of those it squashed) stays out:
        # a write at R that a revert since took out (one of two holders of a fact, say)
        below = onto if onto != "base" else None
        gone = self.gone(below) | self.gone(head) & self.ancestors(below)
        base_log = [w for w in self.log(below) if not self.taken(gone, w)]
        # a fact live at HEAD by a write that is not one of those holding it at R (written
        # again since, with the same target too, or held by another side's write) is the
        # squash's, copied from the newest such write; so is one whose newest write at R
        # that no revert took out is not the one that holds it at HEAD (copied from that)
        was = holders(base_log)
        log = list(base_log)
        for k, held in holders(self.log(head)).items():
            at_r = [x for x in was.get(k, []) if x.target == held[-1].target]
            new = [x for x in held if x.origin not in {y.origin for y in at_r}]
            if new or held[-1].origin != at_r[-1].origin:
                log.append((new or held)[-1].owned("new"))
        return lambda cid: self.add(cid, (below,) if below else (), log, "squash", owned=True,
                                    squashed_head=head, gone=gone)


# -- driving the CLI -------------------------------------------------------------------------


def live_at_head(repo_dir: Path) -> dict[Key, str]:
    with Repository.open(repo_dir) as repo:
        if repo.head().commit is None:
            return {}
        return {(f.request.subject, f.request.prompt): f.request.target_new
                for f in repo.facts_at("HEAD")}


def heads(repo_dir: Path) -> dict[str, str | None]:
    out = json.loads(ok("branch", "--json", cwd=repo_dir).stdout)
    rows = out["branches"] if isinstance(out, dict) else out
    return {b["name"]: b.get("commit") for b in rows}


def as_json(*args: str, cwd: Path) -> dict | list:
    return json.loads(ok(*args, "--json", cwd=cwd).stdout)


def fact_diff(a: dict[Key, str], b: dict[Key, str]) -> dict[str, set]:
    """The README's diff from live facts `a` to `b`, by (subject, prompt)."""
    return {"added": {(*k, t) for k, t in b.items() if k not in a},
            "removed": {(*k, t) for k, t in a.items() if k not in b},
            "changed": {(*k, a[k], t) for k, t in b.items() if k in a and a[k] != t}}


def got_diff(d: dict) -> dict[str, set]:
    rows = {"added": {(f["subject"], f["prompt"], f["target_new"]) for f in d["added"]},
            "removed": {(f["subject"], f["prompt"], f["target_new"]) for f in d["removed"]},
            "changed": {(f["subject"], f["prompt"], f["old"], f["new"]) for f in d["changed"]}}
    assert sum(map(len, rows.values())) == sum(len(d[k]) for k in rows), d  # no row twice
    return rows


def check_diff(ref: Reference, repo_dir: Path, rev1: str | None, rev2: str | None,
               where: str) -> None:
    """`diff REV1 REV2 --json` against the reference's live facts (None: the base)."""
    d = as_json("diff", rev1 or "base", rev2 or "base", cwd=repo_dir)
    want = fact_diff(ref.live(rev1), ref.live(rev2))
    assert got_diff(d) == want, f"{where}\ndiff {rev1} {rev2}: {d}\nreference {want}"
    # each row names the commit whose update set holds the write, in the history of its
    # side: the writer itself, or the carrier (a merge, squash, revert or pick) blame names
    # beside it; the writer, past a carrier, may be out of that history (a squashed or a
    # picked commit)
    for rows, rev in ((d["added"], rev2), (d["removed"], rev1)):
        assert all((f["carried_by"] or f["commit"]) in ref.ancestors(rev) for f in rows), \
            f"{where}\n{d}"
    for f in d["changed"]:
        assert (f["old_carried_by"] or f["old_commit"]) in ref.ancestors(rev1), f"{where}\n{d}"
        assert (f["new_carried_by"] or f["new_commit"]) in ref.ancestors(rev2), f"{where}\n{d}"


def check_read_commands(rng: random.Random, ref: Reference, repo_dir: Path,
                        written: dict | None, op: tuple, where: str) -> None:
    """status and log after every operation; after one that wrote a commit (`written`: its
    --json output), show HEAD and diff against its parents (and now and then between two
    random known commits)."""
    head = ref.head
    st = as_json("status", cwd=repo_dir)
    assert (st["branch"], st["detached"], st["head"]) == (ref.current, False, head), \
        f"{where}\n{st}"
    assert st["n_facts"] == len(ref.live(head)), f"{where}\n{st}"
    assert st["n_commits"] == len(ref.ancestors(head)), f"{where}\n{st}"
    log = as_json("log", cwd=repo_dir)
    ids = [e["id"] for e in log]
    assert len(ids) == len(set(ids)) and set(ids) == ref.ancestors(head), \
        f"{where}\nlog {ids}\nreference {ref.ancestors(head)}"
    pos = {c: i for i, c in enumerate(ids)}
    for e in log:  # every commit before its parents, with the parents the reference knows
        assert tuple(e["parents"]) == ref.nodes[e["id"]].parents, f"{where}\n{e}"
        assert e["operation"] == ref.nodes[e["id"]].kind, f"{where}\n{e}"
        assert all(pos[e["id"]] < pos[p] for p in e["parents"]), f"{where}\nlog {ids}"
    if log and rng.random() < 0.3:  # -n N: the first N of the same order
        n = rng.randint(1, len(log))
        assert as_json("log", "-n", str(n), cwd=repo_dir) == log[:n], where
    if rng.random() < 0.3:  # another branch's history
        other = rng.choice(sorted(b for b, c in ref.branches.items() if c is not None))
        got = [e["id"] for e in as_json("log", other, cwd=repo_dir)]
        assert sorted(got) == sorted(ref.ancestors(ref.branches[other])), where
    # blame: each live fact, named by the commit that wrote it (past a cherry-pick to the
    # commit it picked): one whose write of that target a state in HEAD's history holds, or
    # in that of a HEAD a squash there replaced (which, where several wrote it, the write
    # the merges and squashes kept tells)
    rows = as_json("blame", cwd=repo_dir) if head is not None else []
    assert {(r["subject"], r["prompt"]): r["target_new"] for r in rows} == ref.live(head) \
        and len(rows) == len(ref.live(head)), f"{where}\n{rows}"
    seen, todo = set(), [head] if head is not None else []
    while todo:
        c = todo.pop()
        if c not in seen:
            seen.add(c)
            todo += [*ref.nodes[c].parents, *filter(None, [ref.nodes[c].squashed_head])]
    wrote = {(w.key, w.target, ref.writer(w.origin)) for c in seen for w in ref.nodes[c].log}
    for r in rows:
        assert ((r["subject"], r["prompt"]), r["target_new"], r["commit"]) in wrote, \
            f"{where}\nblame {r}"
    if written is None:
        return
    node = ref.nodes[head]
    first = node.parents[0] if node.parents else None
    shown = as_json("show", "HEAD", cwd=repo_dir)
    assert shown["id"] == head and tuple(shown["parents"]) == node.parents, \
        f"{where}\n{shown}"
    assert shown["operation"] == node.kind, f"{where}\n{shown}"
    # the same commit as the command that wrote it and as log says
    assert (written["commit"], written["parents"], written["operation"], written["message"],
            written["n_facts"]) == (shown["id"], shown["parents"], shown["operation"],
                                    shown["message"], shown["n_requests"]), where
    assert log[0] == {k: shown[k] for k in log[0]}, f"{where}\n{log[0]}\n{shown}"
    # the facts it changed against its first parent: what a commit wrote, a revert took
    # out, a merge brought in, a squash holds (README)
    want = fact_diff(ref.live(first), ref.live(head))
    assert got_diff(shown["facts"]) == want, f"{where}\n{shown['facts']}\nreference {want}"
    requests = [r for s in shown["update_sets"] for r in s["requests"]]
    assert shown["n_requests"] == len(requests), f"{where}\n{shown}"
    if node.kind == "commit":  # its requests: the facts of the file
        assert {(r["subject"], r["prompt"], r["target_new"]) for r in requests} == \
            {(*k, t) for k, t in op[1]}, f"{where}\n{shown}"
    elif node.kind == "revert":
        assert shown["info"]["reverted"] == node.reverted, f"{where}\n{shown}"
    elif node.kind == "merge":
        bases = ref.best_bases([node.parents[0]], [node.parents[1]])
        assert shown["info"]["merge_base"] in (bases or [None]), f"{where}\n{shown}"
    elif node.kind == "squash":  # everything after REV
        assert set(shown["info"]["squashed"]) == \
            ref.ancestors(ref.nodes[head].squashed_head) - ref.ancestors(first), where
    elif node.kind == "cherry-pick":  # its requests: the facts of the picked commit it wrote
        assert shown["info"]["picked"] == node.picked == written["picked"], where
        assert shown["message"].endswith(f"(cherry picked from commit {node.picked})"), where
        assert [(r["subject"], r["prompt"], r["target_new"]) for r in requests] == \
            [(*k, t) for k, t in node.requests], f"{where}\n{shown}"
    check_diff(ref, repo_dir, first, head, where)
    for p in node.parents[1:]:
        check_diff(ref, repo_dir, p, head, where)
    if rng.random() < 0.3:  # two known commits (or the base), either way round
        known = sorted(ref.nodes, key=lambda c: ref.nodes[c].seq) + [None]
        check_diff(ref, repo_dir, rng.choice(known), rng.choice(known), where)


def draw(rng: random.Random, ref: Reference, n_branch: int) -> tuple:
    """One random operation, drawn so that refusals, conflicts and rewrites all happen, and
    facts that both sides of a merge wrote."""
    head = ref.head
    anc = ref.ancestors(head)
    kinds = ["commit"] * 4
    if head is not None:
        kinds += ["revert"] * 2 + ["squash"] + (["branch"] * 2 if n_branch < 3 else [])
    if len(ref.branches) > 1:  # more merges where a branch parted from this one, and
        # more switches to one this one is ahead of (to commit there: it parts)
        tips = [c for b, c in ref.branches.items() if b != ref.current]
        parted = any(c is not None and c not in anc and head not in ref.ancestors(c)
                     for c in tips)
        behind = any(c in anc and c != head for c in tips)
        kinds += ["merge"] * (6 if parted else 3) + ["switch"] * (4 if behind else 2)
    # a commit of another branch's (or one a rewrite left behind) to pick, mostly one that
    # writes something here
    pickable = sorted((c for c in ref.nodes if c not in anc
                       and ref.nodes[c].kind in ("commit", "cherry-pick")),
                      key=lambda c: ref.nodes[c].seq)
    writes = [c for c in pickable if head is not None
              and not isinstance(ref.predict_cherry_pick(c), Refused)]
    if head is not None and pickable:
        kinds += ["cherry-pick"] * (10 if writes else 1)
    # a branch that parted from this one and holds a fact with the same target as here,
    # by another write: a merge with it often comes next
    live, mine = ref.live(head), {(w.key, w.origin) for w in ref.log(head)}
    meets = sorted(b for b, c in ref.branches.items()
                   if c is not None and c not in anc and head not in ref.ancestors(c)
                   and any(live.get(k) == w.target and (k, w.origin) not in mine
                           for k, w in newest(ref.log(c)).items()))
    if meets and rng.random() < 0.7:
        return ("merge", rng.choice(meets))
    kind = rng.choice(kinds)
    if kind == "commit":
        # often facts live on another branch (or this one), with their targets: written
        # again here, so that a merge meets a fact both sides wrote
        parted = [c for c in ref.branches.values()
                  if c is not None and c not in anc and head not in ref.ancestors(c)]
        there = sorted({(k, t) for c in parted for k, t in ref.live(c).items()})
        elsewhere = sorted({(k, t) for c in ref.branches.values() for k, t in ref.live(c).items()})
        if elsewhere and rng.random() < 0.5:
            live = there if there and rng.random() < 0.8 else elsewhere
            picked = dict(rng.sample(live, min(len(live), rng.randint(1, 2))))
            return ("commit", sorted(picked.items()), rng.random() < 0.5)
        known = sorted({k for b in ref.branches.values() for k in ref.live(b)})
        pool = [x for x in POOL if x[:2] in known] if known and rng.random() < 0.5 else POOL
        picked = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
        return ("commit", [((s, p), rng.choice(ts)) for s, p, ts in picked],
                rng.random() < 0.5)
    if kind == "revert":
        order = sorted(anc, key=lambda c: ref.nodes[c].seq)
        others = [c for c in ref.nodes if c not in anc]
        if others and rng.random() < 0.1:
            return ("revert", rng.choice(others))
        # often a writer of a fact that another write holds too, or a merge that brought
        # such a write in
        held = [w for ws in holders(ref.log(head)).values() if len(ws) > 1 for w in ws]
        merges = [m for m in order if ref.nodes[m].kind == "merge"]
        shared = sorted({o for w in held for o in w.owners if o in anc}
                        | {m for m in merges if any(ref.takes(m, w) for w in held)})
        if shared and rng.random() < 0.5:
            return ("revert", rng.choice(shared))
        return ("revert", rng.choice(order))
    if kind == "squash":
        order = sorted(anc, key=lambda c: ref.nodes[c].seq)
        return ("squash", rng.choice(order + ["base"]))
    if kind == "cherry-pick":  # now and then one refused: a merge, revert or squash, or
        # one in HEAD's history
        if rng.random() < 0.15:
            return ("cherry-pick", rng.choice(sorted(ref.nodes, key=lambda c: ref.nodes[c].seq)))
        return ("cherry-pick", rng.choice(writes if writes and rng.random() < 0.85
                                          else pickable))
    if kind == "branch":
        return ("branch", f"b{n_branch}", rng.random() < 0.5)
    others = sorted(b for b in ref.branches if b != ref.current)
    if kind == "merge":  # mostly a branch with commits of its own
        ahead = [b for b in others if ref.branches[b] not in anc]
        if not ahead and rng.random() < 0.8:
            kind = "switch"
        others = ahead if ahead and rng.random() < 0.9 else others
    return (kind, rng.choice(others))


def apply(op: tuple, ref: Reference, repo_dir: Path, tmp: Path, step: int):
    """Runs `op` through the CLI; returns (prediction, CLI result)."""
    kind = op[0]
    if kind == "commit":
        facts, supersede = op[1], op[2]
        path = write_facts(tmp / f"f{step}.jsonl", [(s, p, t, "x") for (s, p), t in facts])
        args = ["commit", path, "-m", f"step {step}", "--json"] + (["--supersede"]
                                                                   if supersede else [])
        return ref.predict_commit(facts, supersede), run(*args, cwd=repo_dir)
    if kind == "revert":
        return ref.predict_revert(op[1]), run("revert", op[1], "--json", cwd=repo_dir)
    if kind == "squash":
        return ref.predict_squash(op[1]), run("squash", op[1], "--json", cwd=repo_dir)
    if kind == "merge":
        return ref.predict_merge(op[1]), run("merge", op[1], "--json", cwd=repo_dir)
    if kind == "cherry-pick":
        return ref.predict_cherry_pick(op[1]), run("cherry-pick", op[1], "--json",
                                                   cwd=repo_dir)
    if kind == "branch":  # created at HEAD, switched to (switch -c) or not (branch)
        def create(_):
            ref.branches[op[1]] = ref.head
            ref.current = op[1] if op[2] else ref.current
        args = ("switch", "-c", op[1]) if op[2] else ("branch", op[1])
        return create, run(*args, cwd=repo_dir)

    def switch(_):
        ref.current = op[1]
    return switch, run("switch", op[1], cwd=repo_dir)


def check_sequence(seed: int, template: Path, tmp: Path, script: list | None = None) -> None:
    """`script`: these operations instead of drawn ones (a revert or squash of step N's
    commit given as ("revert", N))."""
    rng = random.Random(seed)
    reads = random.Random(f"reads {seed}")  # the sequences stay those of earlier runs
    repo_dir = copy_repo(template, tmp / f"repo-{seed}")
    ref = Reference()
    n_ops, n_branch, done = rng.randint(8, 12), 1, []
    made: dict[int, str | None] = {}  # the commit each step wrote
    for step in range(len(script) if script else n_ops):
        op = script[step] if script else draw(rng, ref, n_branch) if step > 1 else [
            ("commit", [(POOL[seed % len(POOL)][:2], "French")], False),
            ("branch", "b1", False)][step]
        if op[0] in ("revert", "squash", "cherry-pick") and isinstance(op[1], int):
            op = (op[0], made[op[1]])
        if op[0] == "branch":
            n_branch += 1
        where = f"seed {seed}, step {step}: {op}\nafter {done}"
        before = snapshot(repo_dir)
        predicted, r = apply(op, ref, repo_dir, tmp, step)
        done.append(op)
        written = None  # the --json output of a command that wrote a commit
        if isinstance(predicted, Refused):
            err = r.stderr.strip().splitlines()
            assert r.exit_code == predicted.code, f"{where}\n{r.output}"
            assert len(err) == 1 + predicted.conflicts, f"{where}\n{r.stderr}"
            assert all(x.startswith("CONFLICT ") for x in err[:-1]), f"{where}\n{r.stderr}"
            assert err[-1].startswith("memstore: error: ") and predicted.says in err[-1], \
                f"{where}\n{r.stderr}"
            assert snapshot(repo_dir) == before, f"{where}: a refusal changed the repository"
        else:
            assert r.exit_code == 0, f"{where}\n{r.output}"
            if predicted == "up-to-date":
                assert json.loads(r.stdout)["kind"] == "up-to-date", where
            else:
                new = json.loads(r.stdout).get("commit") if op[0] not in (
                    "branch", "switch") else None
                if op[0] == "merge":
                    d = json.loads(r.stdout)
                    assert d["kind"] == ("merge" if new else "fast-forward"), where
                predicted(new)
                written = json.loads(r.stdout) if new is not None else None
                made[step] = new
        assert live_at_head(repo_dir) == ref.live(ref.head), \
            f"{where}\nmemstore {sorted(live_at_head(repo_dir).items())}\n" \
            f"reference {sorted(ref.live(ref.head).items())}"
        assert heads(repo_dir) == ref.branches, where
        assert ok("fsck", "--quick", cwd=repo_dir).stdout.strip() == "ok", where
        check_read_commands(reads, ref, repo_dir, written, op, where)
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"
    if ref.head is None:
        return
    out = tmp / f"export-{seed}"
    ok("export", "HEAD", out, cwd=repo_dir)
    ok("verify", out, cwd=repo_dir)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    ok("export", "HEAD", out, "--force", cwd=repo_dir)  # the same commit, the same place
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first


@pytest.mark.parametrize("seed", range(SEEDS))
def test_history_operations_match_the_reference_model(seed, base, tmp_path):
    check_sequence(seed, empty_template(base), tmp_path)


JORDAN, MESSI = (("Michael Jordan", "{} plays"), "soccer"), (("Lionel Messi", "{} plays"), "soccer")
YASUDA = (("Toko Yasuda", "The mother tongue of {} is"), "French")
# both sides of a merge write the same fact (JORDAN), each by its own commit (steps 2, 4)
BOTH_WROTE = [("commit", [YASUDA], False), ("branch", "b1", False),
              ("commit", [JORDAN], False), ("switch", "b1"), ("commit", [JORDAN, MESSI], False),
              ("switch", "main"), ("merge", "b1")]
# the fact of step 0 written again on main (step 2) after b1 parted, which commits another
AGAIN = [("commit", [YASUDA], False), ("branch", "b1", False),
         ("commit", [YASUDA], False), ("switch", "b1"), ("commit", [MESSI], False),
         ("switch", "main"), ("merge", "b1")]
# ... and on b1 too (step 4): the merge, solved on step 0's state, holds it by neither's
BOTH_AGAIN = AGAIN[:4] + [("commit", [YASUDA, MESSI], False)] + AGAIN[5:]
# ... theirs (step 4) writing JORDAN alone: the merge (step 6) brings nothing new
ONLY_JORDAN = BOTH_WROTE[:4] + [("commit", [JORDAN], False)] + BOTH_WROTE[5:]
# b1 reverts main's step 0 (and commits JORDAN): the merge (step 7) takes YASUDA out
TOOK_OUT = [("commit", [YASUDA], False), ("branch", "b1", False), ("commit", [MESSI], False),
            ("switch", "b1"), ("revert", 0), ("commit", [JORDAN], False), ("switch", "main"),
            ("merge", "b1")]
# ... and b2, from step 0, writes YASUDA again after main's revert of the merge (step 9)
MET_AGAIN = TOOK_OUT[:1] + [("branch", "b1", False), ("branch", "b2", False)] + [
    ("commit", [MESSI], False), ("switch", "b1"), ("revert", 0), ("commit", [JORDAN], False),
    ("switch", "main"), ("merge", "b1"), ("revert", 8), ("switch", "b2"),
    ("commit", [YASUDA], False), ("switch", "main"), ("merge", "b2")]
# main picks b1's step 3 (JORDAN, MESSI: step 5), then merges b1 (step 6): both hold them
PICKED = [("commit", [YASUDA], False), ("branch", "b1", False), ("switch", "b1"),
          ("commit", [JORDAN, MESSI], False), ("switch", "main"), ("cherry-pick", 3),
          ("merge", "b1")]
# b1 supersedes YASUDA (step 3), which main, holding the target it replaced, picks
SUPERSEDED = PICKED[:3] + [("commit", [(YASUDA[0], "English")], True)] + PICKED[4:]
SCRIPTS = {  # the cases the README's revert and cherry-pick rows name, through the same checks
    "ours, then theirs": BOTH_WROTE + [("revert", 2), ("revert", 4)],
    "theirs, then ours": ONLY_JORDAN + [("revert", 4), ("revert", 2), ("revert", 2)],
    "merge, then ours": ONLY_JORDAN + [("revert", 6), ("revert", 2)],
    "ours, then merge": BOTH_WROTE + [("revert", 2), ("revert", 6)],
    "theirs, then merge": ONLY_JORDAN + [("revert", 4), ("revert", 6), ("revert", 2)],
    "theirs, squashed, then ours": ONLY_JORDAN + [("revert", 4), ("squash", 6), ("revert", 2)],
    "merge, squashed, then ours": ONLY_JORDAN + [("revert", 6), ("squash", 6), ("revert", 2)],
    "theirs squashed, ours, then merge": BOTH_WROTE[:5] + [("squash", 0)] + BOTH_WROTE[5:]
    + [("revert", 2), ("revert", 7)],
    "theirs squashed, merge, then ours": BOTH_WROTE[:5] + [("squash", 0)] + BOTH_WROTE[5:]
    + [("revert", 7), ("revert", 2)],
    "written again, then first": AGAIN + [("revert", 2), ("revert", 0)],
    "first, then written again": AGAIN + [("revert", 0), ("revert", 2)],
    "first, then both written again": BOTH_AGAIN + [("revert", 0), ("revert", 2), ("revert", 4)],
    "a merge that took a fact out": TOOK_OUT + [("revert", 7), ("squash", 0)],
    "a merge that only took a fact out": TOOK_OUT[:5] + TOOK_OUT[6:] + [("revert", 6)],
    "a merge that took out a fact written since": TOOK_OUT + [
        ("commit", [(YASUDA[0], "English")], False), ("revert", 7)],
    "a fact put back, met again": MET_AGAIN + [("revert", 11), ("squash", 0)],
    "a fact put back, squashed, met again": MET_AGAIN[:10] + [("squash", 0)] + MET_AGAIN[10:]
    + [("revert", 12)],
    # C0's fact written again, C0 reverted (the fact stays), both squashed onto C0: a revert
    # of the squash took out its write and left C0's, reverted, live
    "written again, first reverted, squashed onto it, then the squash": [
        ("commit", [YASUDA], False), ("commit", [YASUDA], True), ("revert", 0), ("squash", 0),
        ("revert", 3)],
    # seed 740: ... the later write reverted (the fact stays, C0's), squashed onto it: the
    # squash wrote the fact as its own (C0's is older), and a revert of it was no refusal
    "written again, then reverted, squashed onto it, then the squash": [
        ("commit", [YASUDA], False), ("commit", [YASUDA], True), ("revert", 1), ("squash", 1),
        ("revert", 3)],
    "picked, merged, then the picked": PICKED + [("revert", 3), ("revert", 5)],
    "picked, merged, then the pick": PICKED + [("revert", 5), ("revert", 3)],
    "picked, merged, then the merge": PICKED + [("revert", 6), ("revert", 5)],
    "a pick of a pick": PICKED[:2] + [("branch", "b2", False)] + PICKED[2:5] + [
        ("cherry-pick", 4), ("switch", "b2"), ("cherry-pick", 6), ("cherry-pick", 4),
        ("merge", "main"), ("revert", 6), ("revert", 8)],
    "picked over the target it replaced": SUPERSEDED + [("revert", 5), ("revert", 3)],
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_fact_both_sides_wrote_matches_the_reference_model(name, base, tmp_path):
    """A merge meets a fact both sides wrote (same target) since they parted: a revert of
    either writer keeps it, a revert of both takes it out; the side whose write the merge
    left out is reverted in a commit that changes no facts, not refused. A revert of the
    merge takes out the merged side's write of it: with ours', in either order, the fact.
    A cherry-pick's writes are the fact's too, beside the picked commit's (merged in
    later): a revert of one leaves it to the other."""
    check_sequence(0, empty_template(base), tmp_path, SCRIPTS[name])


def test_revert_takes_out_its_own_writes_only(base, tmp_path):
    """The rule the README states: a fact the reverted commit superseded is live again; a
    fact a later commit wrote again (here with the same target) keeps that later write."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    key = ("Apple", "The mother tongue of {} is")

    def commit(target: str, *flags: str) -> str:
        path = write_facts(tmp_path / f"{target}.jsonl", [(*key, target, "x")])
        return json.loads(ok("commit", path, "--json", *flags, cwd=repo_dir).stdout)["commit"]

    first = commit("French")
    changed = commit("English", "--supersede")
    ok("revert", changed, cwd=repo_dir)
    assert live_at_head(repo_dir) == {key: "French"}  # what it superseded is back
    commit("French")  # the same fact written again
    ok("revert", first, cwd=repo_dir)
    assert live_at_head(repo_dir) == {key: "French"}  # the later write stays



def test_revert_of_a_merged_commit_keeps_the_same_fact_written_on_this_branch(base, tmp_path):
    """Seed 193: main and b1 both write ("Japan", tongue) = French; b1 merges main. Reverting
    main's commit takes out what it brought (Messi) and leaves b1's own write of the shared
    fact; it used to take the fact out of b1's commit, where it was first written."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    tongue = "The mother tongue of {} is"
    ok("commit", write_facts(tmp_path / "a.jsonl", [("Apple", "{} plays", "soccer", "x")]),
       cwd=repo_dir)
    ok("branch", "b1", cwd=repo_dir)
    theirs = json.loads(ok("commit", write_facts(tmp_path / "m.jsonl", [
        ("Japan", tongue, "French", "x"), ("Lionel Messi", tongue, "English", "x")]),
        "--json", cwd=repo_dir).stdout)["commit"]
    ok("switch", "b1", cwd=repo_dir)
    ok("commit", write_facts(tmp_path / "b.jsonl", [("Japan", tongue, "French", "x")]),
       cwd=repo_dir)
    ok("merge", "main", cwd=repo_dir)
    ok("revert", theirs, cwd=repo_dir)
    assert live_at_head(repo_dir) == {("Apple", "{} plays"): "soccer",
                                      ("Japan", tongue): "French"}
    ok("fsck", cwd=repo_dir)


def test_revert_after_merging_a_squash_root_of_the_same_fact(base, tmp_path):
    """Seeds 130 and 171: main's only commit C is squashed onto the base (S, the same fact,
    a second root) and merged into b1, still at C (nothing new). S's write is not in b1's
    state, so `revert S` is refused, nothing changed; C's own write is, so `revert C` takes
    the fact out. On main, where b1 (at C) is merged into S, S carries C's write: `revert
    C` takes the fact out there too."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    key = ("Toko Yasuda", "The mother tongue of {} is")
    c = json.loads(ok("commit", write_facts(tmp_path / "c.jsonl", [(*key, "French", "x")]),
                      "--json", cwd=repo_dir).stdout)["commit"]
    ok("branch", "b1", cwd=repo_dir)
    squashed = json.loads(ok("squash", "base", "--json", cwd=repo_dir).stdout)["commit"]
    ok("switch", "b1", cwd=repo_dir)
    ok("merge", "main", cwd=repo_dir)
    before = snapshot(repo_dir)
    r = run("revert", squashed, cwd=repo_dir)
    assert r.exit_code == 1 and "has no facts in the current state" in r.stderr, r.output
    assert snapshot(repo_dir) == before
    ok("revert", c, cwd=repo_dir)
    assert live_at_head(repo_dir) == {}
    ok("switch", "main", cwd=repo_dir)
    assert json.loads(ok("merge", c, "--json", cwd=repo_dir).stdout)["kind"] == "merge"
    ok("revert", c, cwd=repo_dir)
    assert live_at_head(repo_dir) == {}


def test_a_merge_after_criss_cross_merges_compares_with_both_bases(base, tmp_path):
    """main and b1 each write one fact (H, P) and merge the other's (criss-cross: H and P
    are both best merge bases of the next merge); then b1 changes H's fact and main P's.
    Against either base alone one of the two changes looks like a conflict (the base lacks
    the fact); against both merged (git's recursive merge base) each side changed one fact
    the other kept, and the merge takes both changes, whichever of H and P is newer."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    tongue = "The mother tongue of {} is"
    honda, porsche = ("Honda Civic", tongue), ("Porsche", tongue)

    def commit(name: str, fact, *flags: str) -> str:
        path = write_facts(tmp_path / f"{name}.jsonl", [(*fact, "x")])
        return json.loads(ok("commit", path, "--json", *flags, cwd=repo_dir).stdout)["commit"]

    commit("first", ("Apple", "{} plays", "soccer"))
    ok("branch", "b1", cwd=repo_dir)
    ok("switch", "b1", cwd=repo_dir)
    p = commit("porsche", (*porsche, "English"))
    ok("switch", "main", cwd=repo_dir)
    h = commit("honda", (*honda, "French"))
    ok("merge", p, cwd=repo_dir)
    ok("switch", "b1", cwd=repo_dir)
    ok("merge", h, cwd=repo_dir)
    commit("honda2", (*honda, "English"), "--supersede")
    ok("switch", "main", cwd=repo_dir)
    commit("porsche2", (*porsche, "French"), "--supersede")
    ok("merge", "b1", cwd=repo_dir)
    assert live_at_head(repo_dir) == {("Apple", "{} plays"): "soccer", honda: "English",
                                      porsche: "French"}
    ok("fsck", cwd=repo_dir)


def test_show_gives_the_facts_a_commit_changed(base, tmp_path):
    """`show` lists the facts a commit added, removed and changed against its first parent
    (the base for a root): for a revert what it took out, not the later facts it replayed
    (its requests); for a merge what it brought in, not the facts its solve wrote again.
    It used to give only the requests of the update sets."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    tongue = "The mother tongue of {} is"

    def commit(name: str, facts, *flags: str) -> str:
        path = write_facts(tmp_path / f"{name}.jsonl", [(*f, "x") for f in facts])
        return json.loads(ok("commit", path, "--json", *flags, cwd=repo_dir).stdout)["commit"]

    def facts(rev: str = "HEAD") -> dict[str, set]:
        return got_diff(as_json("show", rev, cwd=repo_dir)["facts"])

    first = commit("a", [("Apple", tongue, "French"), ("Japan", tongue, "English")])
    ok("branch", "b1", cwd=repo_dir)
    changed = commit("b", [("Apple", tongue, "English")], "--supersede")
    commit("c", [("France", tongue, "English")])
    ok("revert", changed, cwd=repo_dir)  # replays c: its requests are France's
    assert facts() == {"added": set(), "removed": set(),
                       "changed": {("Apple", tongue, "English", "French")}}
    assert "~ 'Apple' / 'The mother tongue of {} is': 'English' -> 'French'" in \
        ok("show", cwd=repo_dir).stdout
    assert facts(changed) == {"added": set(), "removed": set(),
                              "changed": {("Apple", tongue, "French", "English")}}
    assert facts(first) == {"added": {("Apple", tongue, "French"), ("Japan", tongue, "English")},
                            "removed": set(), "changed": set()}
    ok("switch", "b1", cwd=repo_dir)
    commit("d", [("Porsche", tongue, "French")])
    ok("merge", "main", cwd=repo_dir)  # one solve on `first` for Porsche and France
    assert facts() == {"added": {("France", tongue, "English")}, "removed": set(),
                       "changed": set()}
    ok("squash", "base", cwd=repo_dir)
    assert facts()["added"] == {("Apple", tongue, "French"), ("Japan", tongue, "English"),
                                ("France", tongue, "English"), ("Porsche", tongue, "French")}
