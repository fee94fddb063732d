"""The machine, not the user, in the way: a full disk, a read-only repository, caches that
are missing or damaged, environment variables with odd values. Each ends as one line
naming the path and the problem, leaves nothing half-written behind, and keeps the
repository consistent (`fsck` clean)."""
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
from pathlib import Path

import children
import pytest
from children import reap
from cli_support import copy_repo, error_line, facts_files, history_template, ok, run, snapshot
from pids import dead_pid


def _full(fd: int) -> io.BufferedWriter:
    """A file object on `fd` whose writes fail as on a full disk."""

    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            if not self.closed:
                os.close(fd)
            super().close()

    return io.BufferedWriter(Full())


def test_disk_full_while_writing_objects_is_one_line(base, tmp_path, monkeypatch):
    """A commit whose object write hits ENOSPC (a plain write error carries no file name)
    says so in one line naming the object file; no temporary file stays, fsck is clean."""
    from memstore.store import objects

    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    before = snapshot(repo)
    real = os.fdopen
    monkeypatch.setattr(objects.os, "fdopen",
                        lambda fd, mode="r", *a, **k: _full(fd) if "w" in mode
                        else real(fd, mode, *a, **k))
    r = run("commit", facts_files(base)["d"], "-m", "d", cwd=repo)
    monkeypatch.undo()
    line = error_line(r, 1, os.strerror(errno.ENOSPC))
    assert str(repo / ".memstore" / "objects") in line
    assert snapshot(repo) == before
    assert not list((repo / ".memstore" / "objects").rglob(".tmp-*"))
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def _no_space_in_weights(monkeypatch) -> None:
    """safetensors' writer on a full disk: part of the file, then its own error."""
    import transformers.modeling_utils as mu
    from safetensors import SafetensorError

    def save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")

    monkeypatch.setattr(mu, "safe_save_file", save)


def _no_space_in_manifest(monkeypatch) -> None:
    """A plain write on a full disk: an OSError that names no file."""
    from memstore.store import checkpoint

    def write(folder, manifest):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "write_manifest", write)


@pytest.mark.parametrize("fail", [_no_space_in_weights, _no_space_in_manifest],
                         ids=["weights", "manifest"])
def test_disk_full_while_exporting_is_one_line(fail, base, tmp_path, monkeypatch):
    """An export that runs out of space says so in one line naming OUT_DIR and leaves
    neither OUT_DIR nor its temporary folder behind, nor the folders above OUT_DIR it
    created (those that were there stay)."""
    template = history_template(base)[0]
    out = tmp_path / "exports" / "new" / "deeper" / "out"
    (tmp_path / "exports").mkdir()
    fail(monkeypatch)
    r = run("export", "HEAD", out, cwd=template)
    monkeypatch.undo()
    line = error_line(r, 1, str(out))
    assert "No space left on device" in line
    assert list((tmp_path / "exports").iterdir()) == []


def test_statistics_cache_on_a_full_disk_keeps_no_partial_file(tmp_path, monkeypatch):
    """Saving statistics into the shared cache on a full disk leaves no partial temporary
    file there (one per process and layer, as large as the statistics)."""
    import torch

    from memstore.editing.statistics import Statistics, save_cached

    def partial(self, data):
        with open(self, "wb") as f:
            f.write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", partial)
    st = Statistics(1, torch.eye(4), 10, "test")
    with pytest.raises(OSError):
        save_cached(st, tmp_path / "stats", "0" * 64)
    monkeypatch.undo()
    assert list((tmp_path / "stats").iterdir()) == []


def test_the_next_save_of_statistics_removes_what_a_killed_save_left(tmp_path):
    """kill -9 while statistics are written into the shared cache: the partial temporary
    file (as large as the statistics) goes with the next save there; those of a live
    process, of another host, named otherwise (an older memstore's) and links stay."""
    import signal

    import torch

    from memstore import leftovers
    from memstore.editing.statistics import Statistics, load_cached, save_cached

    stats, st = tmp_path / "stats", Statistics(1, torch.eye(4), 10, "test")
    pid = os.fork()
    if pid == 0:  # killed after the file is written, before it is renamed into place
        try:
            def replace(self, other):
                os.kill(os.getpid(), signal.SIGKILL)

            Path.replace = replace
            save_cached(st, stats, "0" * 64)
        finally:
            os._exit(3)
    [status] = reap([pid], timeout=120)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    [killed] = stats.iterdir()
    assert killed.name.startswith(".") and f".safetensors.tmp-{leftovers.HOST}-{pid}-" in killed.name
    p_pid = dead_pid()
    name = f".{'1' * 16}-L2-abc-{'2' * 64}.safetensors.tmp-"
    kept = [stats / f"{name}{leftovers.HOST}-{os.getppid()}-0123abcd",  # alive
            stats / f"{name}elsewhere-{p_pid}-0123abcd", stats / f"{name}{p_pid}"]
    for k in kept:
        k.write_bytes(b"x")
    link = stats / f"{name}{leftovers.HOST}-{p_pid}-0123abce"
    link.symlink_to(kept[0])
    path = save_cached(st, stats, "0" * 64)
    assert not killed.exists()
    assert sorted(x.name for x in stats.iterdir()) == sorted([path.name, link.name,
                                                              *(k.name for k in kept)])
    assert load_cached(stats, "0" * 64, 1, st.id)[0] is not None


def test_disk_full_while_dequantizing_a_gguf_leaves_no_partial_copy(tmp_path, monkeypatch):
    """A GGUF base whose dequantized copy cannot be written into the cache: one line naming
    the copy's place, no partial copy (as large as the model) left in the cache, no
    repository."""
    from gguf_support import write_tiny_gguf

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    _no_space_in_weights(monkeypatch)
    r = run("init", tmp_path / "repo", "--base", gguf)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    line = r.stderr.strip().splitlines()[-1]  # after the dequantization's progress bar
    assert line.startswith("memstore: error: ") and "No space left on device" in line, line
    assert str(tmp_path / "cache" / "models") in line
    assert list((tmp_path / "cache" / "models").iterdir()) == []
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("xdg", ["", "relative/cache"])
def test_empty_or_relative_xdg_cache_home_is_ignored(xdg, tmp_path, monkeypatch):
    """XDG_CACHE_HOME empty or relative is ignored (the XDG specification): the cache is not
    made in the folder memstore runs in (a repository's working folder)."""
    from memstore.models.loading import cache_dir
    from memstore.store.states import statistics_cache

    monkeypatch.delenv("MEMSTORE_CACHE", raising=False)
    monkeypatch.delenv("MEMSTORE_STATS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert cache_dir() == tmp_path / "home" / ".cache" / "memstore"
    assert statistics_cache() == tmp_path / "home" / ".cache" / "memstore" / "stats"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "memstore"


@contextlib.contextmanager
def _unwritable(folder: Path):
    """`folder` made unwritable, for root too (chattr +i; skipped where it cannot be)."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    if shutil.which("chattr") is None or children.run(
            ["chattr", "+i", str(folder)], check=False, capture_output=True).returncode:
        pytest.skip("cannot make a folder unwritable for root here (chattr +i)")
    try:
        yield
    finally:
        children.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_repository_reads_and_refuses_writes_in_one_line(base, tmp_path):
    """A repository whose .memstore cannot be written (a read-only mount, another user's):
    log, show, status, fsck, an export elsewhere and its verify work; a write is refused in
    one line, not reported as a damaged index (`fsck --repair` would not help)."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    before = snapshot(repo)
    with _unwritable(repo / ".memstore"):
        for args in (["log", "--oneline"], ["show", "HEAD"], ["status"], ["diff", "HEAD~1"]):
            ok(*args, cwd=repo)
        assert ok("fsck", cwd=repo).stdout.strip() == "ok"
        ok("export", "HEAD", tmp_path / "out", cwd=repo)
        ok("verify", tmp_path / "out", cwd=repo)
        for args in (["tag", "v1"], ["commit", facts_files(base)["d"]], ["gc"]):
            line = error_line(run(*args, cwd=repo), 1, "cannot be written")
            assert "damaged" not in line, line
    assert snapshot(repo) == before
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_index_on_a_full_disk_is_not_called_damaged(base, tmp_path, monkeypatch):
    """SQLite failing to open the index for want of space (its -shm file) is not damage:
    the line says so, instead of sending the user to `fsck --repair`."""
    import sqlite3

    from memstore.store import schema

    repo = copy_repo(history_template(base)[0], tmp_path / "repo")

    def connect(*a, **k):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema.sqlite3, "connect", connect)
    line = error_line(run("log", cwd=repo), 1, "disk I/O error")
    assert "free space" in line and "--repair" not in line, line


def test_damaged_dequantized_copy_is_named_not_the_gguf(tmp_path, monkeypatch):
    """A truncated file in the cached dequantized copy of a GGUF base: the line names the
    copy in the cache (removing it makes memstore dequantize again), not the GGUF file,
    which is sound."""
    from gguf_support import write_tiny_gguf

    from memstore.models.loading import cache_dir
    from memstore.store.states import forget_loaded

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    ok("init", tmp_path / "repo", "--base", gguf)
    (copy,) = (cache_dir() / "models").iterdir()
    weights = copy / "model.safetensors"
    head = weights.read_bytes()[:1000]
    weights.unlink()  # not truncated in place: this process may still map the file
    weights.write_bytes(head)
    forget_loaded()  # as a new process finds it
    r = run("ask", "hello", cwd=tmp_path / "repo")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("memstore: error: ") and f"copy {copy} is damaged" in line, line


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EIO, errno.ENOMEM])
def test_a_machine_error_naming_no_file_is_one_line(code, base, tmp_path, monkeypatch):
    """Wherever one comes from (a library's write, a mapping), an error of the machine that
    names no file ends as one line with its reason, not a traceback."""
    from memstore.store.repository import Repository

    repo = copy_repo(history_template(base)[0], tmp_path / "repo")

    def fails(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Repository, "log", fails)
    error_line(run("log", cwd=repo), 1, os.strerror(code))
