"""Seeded property test of team workflows through a folder remote, against a model.

A person commits on a copy of the empty template repository (tiny model, few z steps) and
pushes, which creates a folder remote; two more people clone it. Random sequences then run,
each in one person's clone, through the CLI in this process: commit (random facts from a
small pool of (subject, prompt) keys with two targets each, sometimes --supersede), revert,
squash (a local rewrite of history), push (with and without --force), fetch, pull, branch
and switch. A model written here, sharing no code with memstore, keeps every commit's
parents and live facts, the remote's branches and, per person, the branches, the current
one, the remote-tracking branches and the commits held, and predicts from the README:

- push: lands iff the remote branch is missing or an ancestor of what is pushed (up to date
  when it is the same commit); otherwise refused with exit 1 and one line saying `fetch
  first`, nothing changed here or on the remote; `--force` replaces it; a push that lands
  (or is up to date) sets REMOTE/BRANCH here;
- fetch: every REMOTE/BRANCH is the remote's branch (one deleted there is deleted here);
- pull: fetch, then a fast-forward when possible, else a fact-level three-way merge whose
  live facts are predicted from those of the merge base, ours and theirs (a side that
  changed a (subject, prompt) against the merge base wins over one that did not; both
  changing it differently is a conflict: exit 1, the CONFLICT lines and one error line,
  no commit written); refused too, as documented (tests/test_cli_rewrite.py), when each
  side reverted facts of the merge base that the other keeps; the facts compared with are
  the merge base's, or after criss-cross merges those of the best common ancestors merged
  with each other (git's recursive merge base);
- commit: adds its facts; one contradicting a live fact is refused (exit 2) unless
  --supersede; revert of HEAD (a commit or a squash): its parent's live facts, refused
  (nothing to take out) for a squash that wrote nothing; revert of a revert: refused; revert of an older commit: whatever memstore writes is accepted if it
  keeps the refusal rules (exit 1 and nothing changed), its live facts then recorded;
  squash R: HEAD's live facts in one commit whose parent is R (none for `base`), refused
  when a fact live at R is not live at HEAD.

After every operation: the outcome and exit status, a refusal changing nothing here nor on
the remote, every person's branches, current branch, remote-tracking branches and live
facts at HEAD, `log` of HEAD holding exactly the model's ancestors, the same commit id
having the same live facts in every clone, `fsck --quick` here and `fsck origin` (the
remote) ok. At the end: `fsck` in every clone, and an export of the same commit in two
clones is byte-identical and verifies.

MEMSTORE_TEAM_SEEDS=N runs N seeds (default 5, ~30 s), MEMSTORE_TEAM_STEPS=M up to M
operations each (default 16); MEMSTORE_TEAM_COUNTS=1 prints (with -s) how many operations
of each kind and outcome ran."""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_support import copy_repo, empty_template, model_dir, ok, run, snapshot, write_facts

from memstore.store.repository import Repository

SEEDS = int(os.environ.get("MEMSTORE_TEAM_SEEDS", "5"))
STEPS = int(os.environ.get("MEMSTORE_TEAM_STEPS", "16"))  # operations per seed, at most

# (subject, prompt) keys with two targets each: few keys, so that the people collide
SUBJECTS = ["Danielle Darrieux", "Porsche", "Honda Civic", "Michael Jordan", "Lionel Messi",
            "Toko Yasuda"]
PROMPTS = [("The mother tongue of {} is", ("English", "French")),
           ("{} plays", ("soccer", "basketball"))]
POOL = [(s, p, targets) for s in SUBJECTS for p, targets in PROMPTS]

Key = tuple[str, str]


# -- the model -------------------------------------------------------------------------------


@dataclass
class Node:
    id: str
    parents: tuple[str, ...]
    live: dict[Key, str]
    kind: str  # commit, revert, squash, merge
    time: float


@dataclass
class Person:
    name: str
    path: Path
    branches: dict[str, str]
    current: str
    tracking: dict[str, str]  # origin/BRANCH

    @property
    def head(self) -> str:
        return self.branches[self.current]


@dataclass
class Refused:
    code: int
    says: str
    conflicts: int = 0  # CONFLICT lines before the error line


@dataclass
class World:
    nodes: dict[str, Node] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)  # the remote's branches
    people: list[Person] = field(default_factory=list)
    criss_cross: int = 0  # merges with several best merge bases

    def live(self, c: str | None) -> dict[Key, str]:
        return dict(self.nodes[c].live) if c is not None else {}

    def ancestors(self, c: str | None) -> set[str]:
        seen: set[str] = set()
        stack = [c] if c is not None else []
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                stack.extend(self.nodes[x].parents)
        return seen

    def held(self, p: Person) -> set[str]:
        """The commits a person has: what its branches and remote-tracking branches reach
        (and nothing it lost is asked of it)."""
        out: set[str] = set()
        for c in [*p.branches.values(), *p.tracking.values()]:
            out |= self.ancestors(c)
        return out

    def bases(self, left: list[str], right: list[str]) -> list[str]:
        """The best common ancestors, newest first."""
        common = set().union(*map(self.ancestors, left)) & set().union(*map(self.ancestors, right))
        best = {c for c in common if not any(c in self.ancestors(o) - {o} for o in common)}
        return sorted(best, key=lambda c: (-self.nodes[c].time, c))

    def merge_base(self, a: str, b: str) -> str | None:
        best = self.bases([a], [b])
        return best[0] if best else None

    def compared_with(self, left: list[str], right: list[str]) -> dict:
        """The live facts a merge compares both sides with: of the one best base, or of all
        of them merged pairwise against their own bases (git's recursive strategy), a fact
        they conflict on held as an object equal to no target."""
        found = self.bases(left, right)
        if not found:
            return {}
        acc, of = self.live(found[0]), [found[0]]
        for other in found[1:]:
            below, theirs, nxt = self.compared_with(of, [other]), self.live(other), {}
            for k in set(acc) | set(theirs):
                o, t, b = acc.get(k), theirs.get(k), below.get(k)
                v = o if o == t or t == b else t if o == b else object()
                if v is not None:
                    nxt[k] = v
            acc, of = nxt, [*of, other]
        return acc

    # each predict_* returns a Refused, or a function of the CLI's JSON that updates the model
    def predict_commit(self, p: Person, facts: list[tuple[Key, str]], supersede: bool):
        live = self.live(p.head)
        if not supersede and any(k in live and live[k] != t for k, t in facts):
            return Refused(2, "use --supersede to replace it")
        live.update(facts)
        return self.writes(p, (p.head,), live, "commit")

    def writes(self, p: Person, parents: tuple[str, ...], live: dict[Key, str] | None,
               kind: str):
        """A new commit on p's current branch: its live facts `live` (None: as memstore
        says, for a revert the model does not predict)."""
        def record(out: dict) -> None:
            cid = out["commit"]
            entry = log_entry(p.path, cid)
            assert tuple(entry["parents"]) == parents, (entry["parents"], parents)
            assert cid not in self.nodes, "a new commit with an id already known"
            got = facts_at(p.path, cid)
            if live is not None:
                assert got == live, f"memstore {sorted(got.items())}\nmodel {sorted(live.items())}"
            self.nodes[cid] = Node(cid, parents, got, kind, entry["time"])
            p.branches[p.current] = cid
        return record

    def predict_revert(self, p: Person, r: str):
        node = self.nodes[r]
        if node.kind == "revert":
            return Refused(1, "is itself a revert")
        if r == p.head and node.kind == "squash" and node.live == self.live(
                node.parents[0] if node.parents else None):
            return Refused(1, "has no facts in the current state")  # it wrote nothing
        if r == p.head and node.kind in ("commit", "squash"):
            return self.writes(p, (p.head,), self.live(node.parents[0]) if node.parents
                               else {}, "revert")
        return ("either", self.writes(p, (p.head,), None, "revert"))

    def predict_squash(self, p: Person, onto: str):
        live = self.live(p.head)
        at_onto = self.live(onto) if onto != "base" else {}
        if set(at_onto) - set(live):
            return Refused(1, "were reverted after it")
        return self.writes(p, (onto,) if onto != "base" else (), live, "squash")

    def predict_push(self, p: Person, force: bool, branch: str):
        tip, there = p.branches[branch], self.remote.get(branch)
        if there is not None and there != tip and there not in self.ancestors(tip) \
                and not force:
            return Refused(1, "fetch first")

        def landed(out: dict) -> None:
            assert out["old"] == there and out["new"] == tip, out
            assert out["up_to_date"] == (there == tip), out
            assert out["forced"] == (there is not None and there != tip
                                     and there not in self.ancestors(tip)), out
            self.remote[branch] = tip
            p.tracking[branch] = tip
        return landed

    def fetch(self, p: Person, out: dict) -> None:
        want = {b: (p.tracking.get(b), c) for b, c in self.remote.items()
                if p.tracking.get(b) != c}
        want |= {b: (c, None) for b, c in p.tracking.items() if b not in self.remote}
        got = {u["branch"]: (u["old"], u["new"]) for u in out["updates"]}
        assert got == want, (got, want)
        p.tracking = dict(self.remote)

    def predict_merge(self, p: Person, theirs: str, name: str):
        ours = p.head
        if ours == theirs or theirs in self.ancestors(ours):
            def up_to_date(out: dict) -> None:
                assert out["kind"] == "up-to-date" and out["commit"] is None, out
            return up_to_date
        if ours in self.ancestors(theirs):
            def forward(out: dict) -> None:
                assert out["kind"] == "fast-forward" and out["head"] == theirs, out
                p.branches[p.current] = theirs
            return forward
        mb = self.merge_base(ours, theirs)
        common = self.ancestors(ours) & self.ancestors(theirs)
        if sum(not any(c in self.ancestors(o) - {o} for o in common) for c in common) > 1:
            self.criss_cross += 1
        b, o, t = self.compared_with([ours], [theirs]), self.live(ours), self.live(theirs)
        merged: dict[Key, str] = {}
        conflicts = 0
        for k in set(o) | set(t):
            if o.get(k) == t.get(k) or t.get(k) == b.get(k):
                pick = o.get(k)
            elif o.get(k) == b.get(k):
                pick = t.get(k)
            else:
                conflicts += 1
                continue
            if pick is not None:
                merged[k] = pick
        if conflicts:
            return Refused(1, "conflicting fact(s); nothing was written", conflicts)
        if merged != o and not set(self.live(mb)) <= set(merged) and not set(o) <= set(merged) \
                and not set(t) <= set(merged):
            return Refused(1, "each side reverted facts of the merge base")
        record = self.writes(p, (ours, theirs), merged, "merge")

        def merge(out: dict) -> None:
            assert out["kind"] == "merge" and out["merge_base"] == mb, (out, mb)
            record(out)
        return merge


# -- reading what memstore holds -------------------------------------------------------------


def facts_at(repo_dir: Path, rev: str) -> dict[Key, str]:
    with Repository.open(repo_dir) as repo:
        return {(f.request.subject, f.request.prompt): f.request.target_new
                for f in repo.facts_at(rev)}


def log_entry(repo_dir: Path, rev: str) -> dict:
    return json.loads(ok("log", "--json", "-n", "1", rev, cwd=repo_dir).stdout)[0]


def refs_of(repo_dir: Path) -> tuple[dict[str, str], str | None, dict[str, str]]:
    """Branches, the current branch and origin's remote-tracking branches."""
    with Repository.open(repo_dir) as repo:
        return (repo.refs.list("refs/heads/"), repo.head().branch,
                repo.refs.list("refs/remotes/origin/"))


def remote_branches(remote: Path) -> dict[str, str]:
    d = remote / "refs" / "heads"
    return {str(f.relative_to(d)): f.read_text().strip() for f in d.rglob("*") if f.is_file()}


def remote_snapshot(remote: Path) -> dict[str, str]:
    return {str(f.relative_to(remote)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(remote.rglob("*")) if f.is_file() and f.name != "lock"}


# -- drawing and running operations ----------------------------------------------------------


def draw(rng: random.Random, world: World) -> tuple:
    i = rng.randrange(len(world.people))
    p = world.people[i]
    kind = rng.choice(["commit"] * 5 + ["revert"] * 2 + ["squash"] + ["push"] * 4
                      + ["fetch"] + ["pull"] * 4 + ["branch"] + ["switch"] + ["gc"])
    there = world.remote.get(p.current)
    if kind == "pull" and there is not None and there in world.ancestors(p.head) \
            and rng.random() < 0.7:
        kind = "commit"  # mostly a pull that brings something
    if kind == "push" and there == p.head and rng.random() < 0.7:
        kind = "commit"  # mostly a push of something new
    if kind == "commit":
        known = sorted({k for c in world.nodes for k in world.live(c)})
        pool = [x for x in POOL if x[:2] in known] if known and rng.random() < 0.5 else POOL
        picked = rng.sample(pool, min(len(pool), rng.randint(1, 2)))
        return (i, "commit", [((s, q), rng.choice(ts)) for s, q, ts in picked],
                rng.random() < 0.6)
    if kind == "revert":
        anc = sorted(world.ancestors(p.head), key=lambda c: world.nodes[c].time)
        return (i, "revert", p.head if rng.random() < 0.6 else rng.choice(anc))
    if kind == "squash":
        anc = sorted(world.ancestors(p.head) - {p.head}, key=lambda c: world.nodes[c].time)
        return (i, "squash", rng.choice(anc + ["base"]))
    if kind == "push":
        others = sorted(b for b in p.branches if b != p.current)
        return (i, "push", rng.random() < 0.25,
                rng.choice(others) if others and rng.random() < 0.2 else None)
    if kind == "branch":
        if len(p.branches) >= 3:
            kind = "switch"
        else:
            return (i, "branch", f"b{len(p.branches)}", rng.random() < 0.6)
    if kind == "switch" and len(p.branches) > 1:
        return (i, "switch", rng.choice(sorted(b for b in p.branches if b != p.current)))
    if kind == "pull":
        others = sorted(b for b in world.remote if b != p.current)
        return (i, "pull", rng.choice(others) if others and rng.random() < 0.3 else None)
    return (i, kind if kind in ("fetch", "gc") else "fetch")


def apply(op: tuple, world: World, tmp: Path, step: int):
    """Runs `op` through the CLI; returns (prediction, CLI result)."""
    p, kind = world.people[op[0]], op[1]
    if kind == "commit":
        facts, supersede = op[2], op[3]
        path = write_facts(tmp / f"f{step}.jsonl", [(s, q, t, "x") for (s, q), t in facts])
        args = ["commit", path, "-m", f"{p.name} step {step}", "--json"] + (
            ["--supersede"] if supersede else [])
        return world.predict_commit(p, facts, supersede), run(*args, cwd=p.path)
    if kind == "revert":
        return world.predict_revert(p, op[2]), run("revert", op[2], "--json", cwd=p.path)
    if kind == "squash":
        return world.predict_squash(p, op[2]), run("squash", op[2], "--json", cwd=p.path)
    if kind == "push":
        args = ["push", "--json"] + (["--force"] if op[2] else []) + (
            ["origin", op[3]] if op[3] else [])
        return world.predict_push(p, op[2], op[3] or p.current), run(*args, cwd=p.path)
    if kind == "gc":  # what no ref reaches goes; every check below still holds
        return (lambda out: None), run("gc", "--json", cwd=p.path)
    if kind == "fetch":
        return (lambda out: world.fetch(p, out)), run("fetch", "--json", cwd=p.path)
    if kind == "pull":  # of the branch of the same name, or of op[2]
        r = run("pull", "--json", *(["origin", op[2]] if op[2] else []), cwd=p.path)
        # the fetch happens whatever the merge does, not when the remote lacks the branch
        branch = op[2] or p.current
        if branch not in world.remote:
            return Refused(2, f"has no branch {branch!r}"), r
        if r.exit_code == 0:
            world.fetch(p, json.loads(r.stdout)["fetched"])
        else:
            p.tracking = dict(world.remote)
        return world.predict_merge(p, world.remote[branch], branch), r
    if kind == "branch":  # created at HEAD, switched to (switch -c) or not (branch)
        def create(_):
            p.branches[op[2]] = p.head
            p.current = op[2] if op[3] else p.current
        args = ("switch", "-c", op[2]) if op[3] else ("branch", op[2])
        return create, run(*args, cwd=p.path)

    def switch(_):
        p.current = op[2]
    return switch, run("switch", op[2], cwd=p.path)


def outcome(op: tuple, predicted, r) -> str:
    """What happened, for the counts the test prints (MEMSTORE_TEAM_COUNTS=1)."""
    if isinstance(predicted, Refused):
        return "refused: " + (f"{predicted.conflicts} conflict(s)" if predicted.conflicts
                              else predicted.says or "as memstore decided")
    if op[1] == "push":
        out = json.loads(r.stdout)
        return ("named " if op[3] else "") + ("up to date" if out["up_to_date"] else "forced" if out["forced"]
                else "new branch" if out["old"] is None else "fast-forward") + \
            (" (--force)" if op[2] else "")
    if op[1] == "pull":
        return ("named " if op[2] else "") + json.loads(r.stdout)["kind"]
    if op[1] in ("commit", "revert", "squash"):
        return "written"
    return "ok"


def check_person(world: World, p: Person, where: str, seen: dict[tuple[str, str], bool]) -> None:
    heads, current, tracking = refs_of(p.path)
    assert (heads, current, tracking) == (p.branches, p.current, p.tracking), \
        f"{where}\nmemstore {heads} {current} {tracking}\n" \
        f"model {p.branches} {p.current} {p.tracking}"
    ids = {e["id"] for e in json.loads(ok("log", "--json", cwd=p.path).stdout)}
    assert ids == world.ancestors(p.head), f"{where}: log of HEAD"
    # the same commit id has the same live facts in every clone (once checked, it stays)
    for c in {*heads.values(), *tracking.values()}:
        if (p.name, c) not in seen:
            got = facts_at(p.path, c)
            assert got == world.nodes[c].live, \
                f"{where}: {c[:12]} in {p.name}\nmemstore {sorted(got.items())}\n" \
                f"model {sorted(world.nodes[c].live.items())}"
            seen[(p.name, c)] = True


def check_sequence(seed: int, base: Path, tmp: Path) -> dict[str, int]:
    rng = random.Random(seed)
    remote = tmp / f"remote-{seed}"
    world = World()
    first = copy_repo(empty_template(base), tmp / f"p0-{seed}")
    ok("remote", "add", "origin", remote, cwd=first)
    key, targets = POOL[seed % len(POOL)][:2], POOL[seed % len(POOL)][2]
    path = write_facts(tmp / "f-first.jsonl", [(*key, targets[0], "x")])
    c0 = json.loads(ok("commit", path, "-m", "first", "--json", cwd=first).stdout)["commit"]
    world.nodes[c0] = Node(c0, (), {key: targets[0]}, "commit", log_entry(first, c0)["time"])
    assert facts_at(first, c0) == world.nodes[c0].live
    out = json.loads(ok("push", "--json", cwd=first).stdout)
    assert out["old"] is None and out["new"] == c0
    world.remote = {"main": c0}
    world.people.append(Person("p0", first, {"main": c0}, "main", {"main": c0}))
    for n in range(1, rng.choice([2, 3])):
        target = tmp / f"p{n}-{seed}"
        ok("clone", remote, target, "--base", model_dir(base))
        world.people.append(Person(f"p{n}", target, {"main": c0}, "main", {"main": c0}))
    counts: dict[str, int] = {}
    seen: dict[tuple[str, str], bool] = {}
    done: list[tuple] = []
    for step in range(rng.randint(STEPS * 3 // 4, STEPS)):
        op = draw(rng, world)
        p = world.people[op[0]]
        where = f"seed {seed}, step {step}: {op}\nafter {done}"
        before, remote_before = snapshot(p.path), remote_snapshot(remote)
        heads_before = refs_of(p.path)[0]
        predicted, r = apply(op, world, tmp, step)
        done.append(op)
        either = isinstance(predicted, tuple)
        if either:
            predicted = predicted[1] if r.exit_code == 0 else Refused(1, "")
        label = f"{op[1]} {outcome(op, predicted, r)}"
        counts[label] = counts.get(label, 0) + 1
        if isinstance(predicted, Refused):
            err = r.stderr.strip().splitlines()
            assert r.exit_code == predicted.code, f"{where}\n{r.output}"
            assert len(err) == 1 + predicted.conflicts, f"{where}\n{r.stderr}"
            assert all(x.startswith("CONFLICT ") for x in err[:-1]), f"{where}\n{r.stderr}"
            assert err[-1].startswith("memstore: error: ") and predicted.says in err[-1], \
                f"{where}\n{r.stderr}"
            assert remote_snapshot(remote) == remote_before, f"{where}: the remote changed"
            if op[1] == "pull":  # its fetch is kept; no branch moved, no commit written
                assert refs_of(p.path)[0] == heads_before, where
            else:
                assert snapshot(p.path) == before, f"{where}: a refusal changed the clone"
        else:
            assert r.exit_code == 0, f"{where}\n{r.output}"
            predicted(json.loads(r.stdout) if op[1] not in ("branch", "switch") else None)
        if op[1] in ("fetch", "pull"):
            assert p.tracking == world.remote, where
        assert remote_branches(remote) == world.remote, where
        assert facts_at(p.path, "HEAD") == world.live(p.head), where
        for q in world.people:
            check_person(world, q, where, seen)
        assert ok("fsck", "--quick", cwd=p.path).stdout.strip() == "ok", where
        if op[1] == "push":
            assert ok("fsck", "origin", cwd=p.path).stdout.strip() == "ok", where
    # the end: everyone fetches; the remote's main exported in two clones is the same bytes
    for q in world.people:
        world.fetch(q, json.loads(ok("fetch", "--json", cwd=q.path).stdout))
        assert ok("fsck", cwd=q.path).stdout.strip() == "ok"
        check_person(world, q, f"seed {seed}: the final fetch", seen)
    assert ok("fsck", remote).stdout.strip() == "ok"
    exported = []
    out_dir = tmp / f"export-{seed}"  # the same place (the model card names it)
    for q in world.people[:2]:
        ok("export", "origin/main", out_dir, "--force", cwd=q.path)
        ok("verify", out_dir, cwd=q.path)
        exported.append({str(f.relative_to(out_dir)): f.read_bytes()
                         for f in sorted(out_dir.rglob("*")) if f.is_file()})
    assert exported[0] == exported[1], \
        [k for k in exported[0] if exported[0][k] != exported[1].get(k)]
    counts["(merges with several merge bases)"] = world.criss_cross
    return counts


COUNTS: dict[str, int] = {}


@pytest.mark.parametrize("seed", range(SEEDS))
def test_team_workflows_match_the_model(seed, base, tmp_path):
    for k, v in check_sequence(seed, base, tmp_path).items():
        COUNTS[k] = COUNTS.get(k, 0) + v
    if os.environ.get("MEMSTORE_TEAM_COUNTS"):
        print(json.dumps(dict(sorted(COUNTS.items()))))


def test_a_revert_survives_a_pull_after_criss_cross_merges(base, tmp_path):
    """p1 writes Porsche on b1 while p0 writes Honda on main; each pulls the other's branch
    (two merges, criss-cross: both commits are best merge bases of the next merge); p0
    reverts p1's Porsche commit on main, p1 commits something unrelated on b1; p0 pulls b1.
    b1 did not touch Porsche since its commit, main reverted it: it must stay reverted (as
    it does against the merge base p1's commit). memstore took the newer merge base, p0's
    Honda commit, where Porsche is not live, read b1 as having added it, and brought it
    back (with the two commits' times the other way round it would not); the two bases
    merged into a virtual one hold both facts."""
    remote, p0, p1 = tmp_path / "remote", tmp_path / "p0", tmp_path / "p1"
    copy_repo(empty_template(base), p0)
    ok("remote", "add", "origin", remote, cwd=p0)
    tongue, plays = "The mother tongue of {} is", "{} plays"

    def commit(who: Path, name: str, *facts) -> str:
        path = write_facts(tmp_path / f"{name}.jsonl", [(*f, "x") for f in facts])
        return json.loads(ok("commit", path, "--json", cwd=who).stdout)["commit"]

    commit(p0, "first", ("Danielle Darrieux", plays, "soccer"))
    ok("push", cwd=p0)
    ok("clone", remote, p1, "--base", model_dir(base))
    ok("switch", "-c", "b1", cwd=p1)
    porsche = commit(p1, "porsche", ("Porsche", tongue, "English"))
    ok("push", cwd=p1)
    commit(p0, "honda", ("Honda Civic", tongue, "French"))
    ok("push", cwd=p0)
    ok("pull", "origin", "b1", cwd=p0)
    ok("pull", "origin", "main", cwd=p1)
    ok("push", cwd=p0)
    ok("push", cwd=p1)
    ok("revert", porsche, cwd=p0)
    commit(p1, "soccer", ("Honda Civic", plays, "soccer"))
    ok("push", cwd=p1)
    ok("pull", "origin", "b1", cwd=p0)
    assert facts_at(p0, "HEAD") == {("Danielle Darrieux", plays): "soccer",
                                    ("Honda Civic", tongue): "French",
                                    ("Honda Civic", plays): "soccer"}
