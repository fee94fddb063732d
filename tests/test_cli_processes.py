"""`memstore` as processes: crash safety under SIGKILL, two writers at once, and
bit-identical rebuilds in separate processes.

Crash rounds fork the test process (which has the tiny model loaded) and run the CLI's
`main` in the child, so that a round costs a fraction of a second instead of an
interpreter start-up. 9 of the 14 kills come from the child itself at a named moment of a
commit (SELF_KILLS: one for each state a kill can leave a commit in, among the 51 durable
steps of one - before or after each fsync and rename, at SQLite's BEGIN, before and after
its COMMIT); the others come from outside at random times, one of them to a full
`python -m cli.main commit` process while it holds the repository lock (a fresh interpreter takes seconds to get
there: one such kill, not two). The two concurrent writers are forked the same way."""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import children
from children import ended_forks, reap
from cli_support import (
    FACTS,
    copy_repo,
    empty_template,
    facts_files,
    history_template,
    last_line,
    log_json,
    memstore_process,
    ok,
)
from crash_points import orphans, self_kill_at

from memstore.models.hashing import tensor_sha256
from memstore.store import porcelain
from memstore.store.repository import Repository

# One round per state a kill can leave a commit in, in this order, each after the
# commits that the rounds before it finished (a kill loses nothing the kernel holds: before
# and after an fsync leave the same files, so it is one of them): 25 rounds at the k-th
# durable step hit about 10 of these moments, at random (the random kills between them
# moved the count), some 5 times, and never the transaction's first two.
SELF_KILLS = [
    (("before fsync", 1), 0),  # the first object's new folder made, nothing in it
    (("before replace", 1), 0),  # an object's temporary file written, not renamed
    (("after replace", 1), 0),  # an object in place that nothing names
    (("transaction begun", 2), 1),  # (2: in the second commit; the first is whole)
    (("before fsync in transaction", 1), 1),  # the commit's object folder made (if new)
    (("before replace in transaction", 2), 2),  # (one object is written in the transaction)
    (("after replace in transaction", 2), 3),
    (("transaction written", 2), 4),  # rows written and the branch moved, not committed
    (("transaction committed", 2), 6),
]  # (the moment, the commits after the round)
NAMED_WITHIN = 3  # commits: each moment above comes in a round's first 2
RANDOM_KILLS = 4


def _committer(repo: Path, files: dict[str, Path], step: tuple[str, int] | int) -> None:
    """In a forked child: `memstore commit` of the facts files in turn until killed; one
    that kills itself at a named moment stops after NAMED_WITHIN commits without it (a
    moment misspelt or no longer taken fails its round at once, named, where the child
    committed on until reap's 120 s were out)."""
    from cli.main import cli

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    if step:
        self_kill_at(step)
    for i in range(NAMED_WITHIN if isinstance(step, tuple) else 1000):
        name = "abcde"[i % 5]
        cli.main(["-C", str(repo), "commit", str(files[name]), "-m", f"facts {name}"],
                 standalone_mode=False)


def _fork_committer(repo: Path, files: dict[str, Path], step: tuple[str, int] | int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            _committer(repo, files, step)
        finally:
            os._exit(3)
    return pid


def check(repo: Path) -> dict:
    """After a kill: fsck passes, and every commit is wholly there or wholly absent."""
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    log = log_json(repo)
    with Repository.open(repo) as r:
        indexed = {row["id"] for row in r.db.query("select id from commits")}
        assert {e["id"] for e in log} == indexed  # linear: no indexed commit off the branch
        for e in log:
            want = FACTS[e["message"].split()[1]]
            assert [(q.subject, q.prompt, q.target_new, q.target_true)
                    for q in r.requests_of(e["id"])] == want
            assert e["n_requests"] == len(want) and set(r.updates_of(e["id"])) == {1, 2}
        referenced = {o for c in r.log() for o in c.object_ids()}
        return {"commits": len(indexed),
                "orphans": orphans(r, referenced),
                "temp_files": len(r.objects.temp_files())}


def test_sigkill_at_many_moments_leaves_a_valid_repository(base, tmp_path):
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    files = facts_files(base)
    rng = random.Random(0)
    plan = [("self", moment) for moment, _ in SELF_KILLS]
    plan += [("random", 0)] * RANDOM_KILLS + [("process", 0)]
    seen = []
    for how, step in plan:
        if how == "process":  # a real `python -m cli.main commit`, killed mid-way
            proc = memstore_process("-C", repo, "commit", files["a"], "-m", "facts a")
            with children.ended(proc):  # killed and reaped, whatever fails here
                lock = repo / ".memstore" / "lock"
                deadline = time.monotonic() + 120
                while lock.read_text().strip() != str(proc.pid) and proc.poll() is None:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.3))  # it holds the lock: the commit is under way
                proc.kill()
                children.communicate(proc)
            seen.append(check(repo))
            continue
        pid, reaped = _fork_committer(repo, files, step), {}
        with ended_forks([pid], reaped):  # a round that fails leaves no committer running
            if how == "random":
                time.sleep(rng.uniform(0.0, 0.5))
                os.kill(pid, signal.SIGKILL)
            [status] = reap([pid], 120, reaped)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
            f"the committer ended by itself ({status}): no {step} in its {NAMED_WITHIN} " \
            "commits, or one failed" if how == "self" else status
        seen.append(check(repo))
    # the kills landed in every phase: between an object's write and its rename (temp
    # files), between the objects and the transaction (orphans), and after commits: each
    # commit a round finished is kept, the one it was killed in is not (until committed)
    assert any(s["temp_files"] for s in seen) and any(s["orphans"] for s in seen)
    assert [s["commits"] for s in seen[:len(SELF_KILLS)]] == [n for _, n in SELF_KILLS]
    assert seen[-1]["commits"] >= SELF_KILLS[-1][1]
    ok("gc", cwd=repo)
    assert check(repo) == {**seen[-1], "orphans": 0, "temp_files": 0}


def _waiting_committer(repo: Path, file: Path, name: str, pipe: tuple[int, int], out: Path,
                       err: Path) -> int:
    """A forked child that waits for a byte on the pipe `pipe` (read end, write end), then
    runs `memstore commit` (stdout to `out`, stderr to `err`) and exits with its status;
    the pipe closed with nothing written, it exits (status 3) without committing. Forked
    before the test takes the lock: a child forked while the test holds it would hold the
    test's flock too (the descriptor it inherits), and the lock would not drop when the
    test lets go."""
    pid = os.fork()
    if pid != 0:
        return pid
    code = 3
    try:
        from cli.main import cli

        go, start = pipe
        os.close(start)  # (its own copy of the write end would keep its read from ending)

        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        # pytest's capture replaced sys.stdout and sys.stderr: the files, line-buffered
        sys.stdout, sys.stderr = (open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115
                                  for fd in (1, 2))  # (until os._exit below)
        if not os.read(go, 1):
            raise RuntimeError("the test stopped before it let the child commit")
        cli.main(["-C", str(repo), "commit", str(file), "-m", f"facts {name}"],
                 standalone_mode=False)
        code = 0
    except BaseException:
        traceback.print_exc()
        raise  # (os._exit below: the status says it)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def test_two_concurrent_commits_lose_no_update(base, tmp_path):
    """Two `memstore commit` processes (forked from this one, which has the model loaded)
    start while the repository is locked: both say they wait, then both commit, one on
    the other."""
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    files = facts_files(base)
    first = last_line(ok("commit", files["a"], "-m", "facts a", cwd=repo))
    outs, errs = [tmp_path / "out1", tmp_path / "out2"], [tmp_path / "err1", tmp_path / "err2"]
    go, start = os.pipe()
    pids = [_waiting_committer(repo, files[k], k, (go, start), out, err)
            for k, out, err in zip("bc", outs, errs)]
    os.close(go)
    done: dict[int, int] = {}

    def running(pid: int) -> bool:
        if pid not in done and (found := os.waitpid(pid, os.WNOHANG))[0]:
            done[pid] = found[1]
        return pid not in done

    try:
        with Repository.open(repo) as holder, holder.lock():
            os.write(start, b"go")
            # both processes find the repository locked, say so, and wait
            deadline = time.monotonic() + 120
            while not all(e.exists() and "waiting for another memstore process" in
                          e.read_text() for e in errs):
                assert time.monotonic() < deadline, [e.read_text() for e in errs]
                assert all(running(p) for p in pids), [e.read_text() for e in errs]
                time.sleep(0.05)
    finally:
        os.close(start)
        statuses = reap(pids, timeout=120, done=done)  # one that hangs: killed, and fails
    assert [os.waitstatus_to_exitcode(s) for s in statuses] == [0, 0], \
        [e.read_text() for e in errs]
    ids = [o.read_text().strip().splitlines()[-1] for o in outs]
    log = log_json(repo)
    assert len(log) == 3 and log[-1]["id"] == first
    assert {e["id"] for e in log[:2]} == set(ids)
    assert log[1]["parents"] == [first] and log[0]["parents"] == [log[1]["id"]]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_rebuild_is_bit_identical_across_processes(base, tmp_path):
    template, (_, c2, _) = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    outs = [tmp_path / "out1", tmp_path / "out2"]
    # one export in a fresh interpreter, the other in this process meanwhile
    proc = memstore_process("-C", repo, "export", c2, outs[0])
    with children.ended(proc):
        ok("export", c2, str(outs[1]), cwd=repo)
        _, err = children.communicate(proc, timeout=300)
    assert proc.returncode == 0, err
    manifests = [json.loads((o / "memstore-manifest.json").read_text()) for o in outs]
    assert manifests[0]["tensors"] == manifests[1]["tensors"]
    assert manifests[0]["commit"] == c2
    for o in outs:
        assert (o / "model.safetensors").read_bytes() == (outs[0] / "model.safetensors").read_bytes()
    with Repository.open(repo) as r:
        hashes = {name: tensor_sha256(t)
                  for name, t in porcelain.load_state(r, c2).model.state_dict().items()}
        base_hashes = {name: tensor_sha256(t)
                       for name, t in porcelain.load_state(r, "base").model.state_dict().items()}
    assert all(hashes[name] == sha for name, sha in manifests[0]["tensors"].items())
    edited = {n for n in manifests[0]["tensors"] if hashes[n] != base_hashes[n]}
    assert edited == {f"model.layers.{l}.mlp.down_proj.weight" for l in (1, 2)}


def test_two_config_changes_at_once_keep_both(history, monkeypatch):
    """`config KEY VALUE` while another process changes another setting (each waiting for
    the other's lock): both changes are kept (the one that wrote second wrote the settings
    it had read before the lock, and undid the first change while saying both)."""
    repo, _ = history
    real, meanwhile = Repository.lock, []

    def lock(self, *a, **k):
        if meanwhile:  # this one has read the settings; another process's change lands
            ok("config", *meanwhile.pop(), cwd=repo)
        return real(self, *a, **k)

    monkeypatch.setattr(Repository, "lock", lock)
    for mine, theirs in [(("n_templates", "2"), ("z_steps", "7")),
                         (("dtype", "bfloat16"), ("device", "cuda"))]:  # not the defaults
        meanwhile.append(theirs)
        ok("config", *mine, cwd=repo)
        assert not meanwhile
    monkeypatch.undo()
    now = json.loads(ok("config", "--json", cwd=repo).stdout)
    assert (now["z_steps"], now["n_templates"]) == (7, 2)
    assert (now["device"], now["dtype"]) == ("cuda", "bfloat16")


def test_branch_commands_on_the_current_branch_act_on_the_one_current_when_they_write(
        history, tmp_path, monkeypatch):
    """`branch -m NEW`, `--set-upstream-to` and `--unset-upstream` without a NAME, while
    another process switches branches (each waiting for the other's lock): they act on the
    branch that is current when they write (they named the one current before the lock:
    main renamed while side was current, main's upstream set or forgotten)."""
    repo, ids = history
    ok("branch", "side", ids[1], cwd=repo)
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    real, meanwhile = Repository.lock, []

    def lock(self, *a, **k):
        if meanwhile:  # this one has read HEAD; another process's switch lands
            ok(*meanwhile.pop(), cwd=repo)
        return real(self, *a, **k)

    def upstreams():
        with Repository.open(repo) as r:
            return r.get_config("upstreams") or {}

    monkeypatch.setattr(Repository, "lock", lock)
    meanwhile.append(["switch", "side"])
    ok("branch", "--set-upstream-to", "origin/main", cwd=repo)
    assert upstreams() == {"side": {"remote": "origin", "merge": "main"}}
    ok("branch", "--set-upstream-to", "origin/main", "main", cwd=repo)
    meanwhile.append(["switch", "main"])
    ok("branch", "--unset-upstream", cwd=repo)
    assert upstreams() == {"side": {"remote": "origin", "merge": "main"}}
    meanwhile.append(["switch", "side"])
    ok("branch", "-m", "renamed", cwd=repo)
    monkeypatch.undo()
    branches = {b["name"]: b for b in json.loads(ok("branch", "--json", cwd=repo).stdout)}
    assert sorted(branches) == ["main", "renamed"] and branches["renamed"]["current"]
    assert branches["main"]["commit"] == ids[-1] and branches["renamed"]["commit"] == ids[1]


def test_reset_and_switch_leaving_commits_while_another_process_runs_gc(history, monkeypatch):
    """A gc in another process as soon as reset or switch has moved HEAD (its lock
    released) removes the commits they left: what they say of those is read before (the
    command exited 1, 'commit … is named but not in the index; run `memstore fsck`', its
    move made and nothing damaged)."""
    from memstore.store.lock import RepositoryLock

    repo, ids = history
    real, gc = RepositoryLock.release, []

    def release(self):
        real(self)
        if not self.held and not gc:  # the command's move is done: gc elsewhere
            gc.append(None)
            ok("reflog", "expire", "--expire=now", "--all", cwd=repo)  # it keeps them
            gc[0] = ok("gc", cwd=repo).stdout

    monkeypatch.setattr(RepositoryLock, "release", release)
    r = ok("reset", "HEAD~1", cwd=repo)
    assert gc[0].startswith("removed 1 commit,") and ids[2][:12] in r.stderr
    ok("reset", "HEAD~1", cwd=repo)  # keeps C2 ...
    ok("switch", "--detach", ids[1], cwd=repo)  # ... held by a detached HEAD only
    gc.clear()
    r = ok("switch", "main", cwd=repo)
    monkeypatch.undo()
    assert gc[0].startswith("removed 1 commit,") and ids[1][:12] in r.stderr
    assert [e["id"] for e in log_json(repo)] == ids[:1]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
