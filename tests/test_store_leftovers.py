"""What a memstore process killed outright (kill -9, the out-of-memory killer) leaves — an
export's temporary folder or the previous export it had set aside, a dequantized copy being
written, a statistics file being written, a clone's repository — is removed (or put back)
by the next run that touches the same place, and only then: the leftovers of a live process
and of another host (a shared network folder) are kept, as is anything not named as
memstore names its temporaries, and a link.

A dead process is a child started and waited for (its pid is free until the system reuses
it); a killed one is a forked child that sends itself SIGKILL."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from children import reap
from pids import dead_pid

from memstore import leftovers
from memstore.store import export_target


def name_of(prefix: str, pid: int, host: str = leftovers.HOST, suffix: str = "") -> str:
    return f"{prefix}{host}-{pid}-0123abcd{suffix}"


def _previous_export(out: Path, text: str = "{}") -> dict[str, bytes]:
    out.mkdir()
    (out / "config.json").write_text(text)
    export_target.write_manifest(out, {"base": {"hash": "0" * 64}, "tensors": {}})
    return {f.name: f.read_bytes() for f in out.iterdir()}


def _folder_with(p: Path) -> Path:
    p.mkdir()
    (p / "model.safetensors").write_bytes(b"x" * 100)
    return p


def test_names_carry_the_host_and_the_pid(tmp_path):
    d = leftovers.make_temp_dir(tmp_path, ".out.memstore-tmp-")
    assert d.name.startswith(f".out.memstore-tmp-{leftovers.HOST}-{os.getpid()}-")
    assert leftovers.owner(d.name, r"\.out\.memstore-tmp-") == (leftovers.HOST, os.getpid())
    assert leftovers.dead_owner(d.name, r"\.out\.memstore-tmp-") is None  # this process lives
    assert leftovers.owner("a-b-c.tmp-my-host-2-12-0123abcd", r".+\.tmp-") == ("my-host-2", 12)
    assert not leftovers.pid_dead(os.getpid()) and not leftovers.pid_dead(1)
    assert leftovers.pid_dead(dead_pid())


def test_names_carry_the_pid_namespace(tmp_path):
    """Containers on one machine may share its host name (`--network host`) and a volume,
    each with pids of its own: a temporary named in another pid namespace (or by a version
    that wrote the host name alone) is never taken for a dead process of ours."""
    ns = os.stat("/proc/self/ns/pid").st_ino
    assert leftovers.HOST.endswith(f".pidns{ns}")
    bare = leftovers.HOST.removesuffix(f".pidns{ns}")
    pid = dead_pid()
    assert leftovers.dead_owner(name_of(".x-", pid), r"\.x-") == pid
    for host in (bare, f"{bare}.pidns{ns + 1}"):
        assert leftovers.dead_owner(name_of(".x-", pid, host), r"\.x-") is None
    made = leftovers.make_temp_dir(tmp_path, ".x-")
    assert leftovers.owner(made.name, r"\.x-") == (leftovers.HOST, os.getpid())


# -- export ---------------------------------------------------------------------------------


def test_an_export_removes_the_temporary_folder_of_a_dead_export(tmp_path):
    out, gone = tmp_path / "out", dead_pid()
    dead = _folder_with(tmp_path / name_of(".out.memstore-tmp-", gone))
    live = _folder_with(tmp_path / name_of(".out.memstore-tmp-", os.getppid()))
    other_host = _folder_with(tmp_path / name_of(".out.memstore-tmp-", gone, "elsewhere"))
    unnamed = _folder_with(tmp_path / ".out.memstore-tmp-abc12345")  # an older memstore's
    other_out = _folder_with(tmp_path / name_of(".out2.memstore-tmp-", gone))
    link = tmp_path / name_of(".out.memstore-tmp-", gone).replace("0123abcd", "0123abce")
    link.symlink_to(other_host)
    export_target.check_target(out, False, {})
    assert not dead.exists()
    for kept in (live, other_host, unnamed, other_out):
        assert (kept / "model.safetensors").read_bytes() == b"x" * 100
    assert link.is_symlink()


def test_a_forced_export_killed_between_its_renames_is_put_back_by_the_next(tmp_path, capfd):
    """kill -9 after the previous export is set aside and before the new one takes its
    place: OUT is missing. The next export to OUT puts the previous one back first (and
    says so), then replaces it as asked."""
    out = tmp_path / "out"
    before = _previous_export(out)
    pid = os.fork()
    if pid == 0:
        try:
            target = export_target.check_target(out, True, {})
            real = os.rename

            def rename(a, b):
                if Path(a).name.startswith(".out.memstore-tmp-"):
                    os.kill(os.getpid(), signal.SIGKILL)
                real(a, b)

            os.rename = rename
            with export_target.written_beside(target) as tmp:
                (tmp / "config.json").write_text('{"new": true}')
        finally:
            os._exit(3)
    [status] = reap([pid], timeout=120)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not out.exists()
    assert len(list(tmp_path.glob(f".out.memstore-old-{leftovers.HOST}-{pid}-*"))) == 1
    assert len(list(tmp_path.glob(f".out.memstore-tmp-{leftovers.HOST}-{pid}-*"))) == 1
    capfd.readouterr()
    target = export_target.check_target(out, True, {})
    assert f"put the previous export back from .out.memstore-old-{leftovers.HOST}-{pid}-" in \
        capfd.readouterr().err
    assert target.replaces is not None  # OUT is back, and --force replaces it as asked
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_missing_out_check_puts_the_previous_export_back_only_from_a_dead_process(tmp_path):
    out, gone = tmp_path / "out", dead_pid()
    live = tmp_path / name_of(".out.memstore-old-", os.getppid())
    _previous_export(live)
    other_host = tmp_path / name_of(".out.memstore-old-", gone, "elsewhere")
    _previous_export(other_host)
    export_target.check_target(out, True, {})
    assert not out.exists()  # neither is this process's to put back
    assert (live / export_target.MANIFEST).is_file()
    assert (other_host / export_target.MANIFEST).is_file()
    dead = tmp_path / name_of(".out.memstore-old-", gone)
    before = _previous_export(dead)
    with pytest.raises(Exception, match="not empty"):  # back, and not replaced without --force
        export_target.check_target(out, False, {})
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert not dead.exists()


def test_a_dead_exports_previous_export_is_removed_once_the_new_one_is_in_place(tmp_path):
    """Killed after the new export took OUT's place, before it removed the previous one:
    that one was to go; an empty set-aside name goes too; something else is kept."""
    out, gone = tmp_path / "out", dead_pid()
    now = _previous_export(out, '{"new": true}')
    old = tmp_path / name_of(".out.memstore-old-", gone)
    _previous_export(old)
    empty = tmp_path / name_of(".out.memstore-old-", gone).replace("0123abcd", "0123abce")
    empty.mkdir()
    strange = tmp_path / name_of(".out.memstore-old-", gone).replace("0123abcd", "0123abcf")
    _folder_with(strange)
    export_target.check_target(out, True, {})
    assert not old.exists() and not empty.exists()
    assert (strange / "model.safetensors").is_file()  # no manifest: not known to be an export
    assert {f.name: f.read_bytes() for f in out.iterdir()} == now
    json.loads((out / export_target.MANIFEST).read_text())


def test_an_out_name_near_the_file_name_limit(tmp_path, capfd):
    """An OUT named near the 255 bytes a file name may hold: the temporary beside it,
    `.OUT.memstore-tmp-<host>-<pid>-<random>`, was longer, and the export failed ('File
    name too long'). Such temporaries are named after a shortened OUT, and a dead export's
    are recognised by it as by the whole name."""
    name = "é" + "x" * 248  # 250 bytes
    out = tmp_path / name
    _previous_export(out)
    target = export_target.check_target(out, True, {})
    with export_target.written_beside(target) as tmp:  # --force: both temporaries
        (tmp / "config.json").write_text('{"new": true}')
        export_target.write_manifest(tmp, {"base": {"hash": "0" * 64}, "tensors": {}})
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert json.loads((out / "config.json").read_text()) == {"new": True}
    short = export_target.short_name(name)
    assert short.startswith("é" + "x" * 30 + "~") and len(short) == 32 + 17 - 1
    gone = dead_pid()
    dead = _folder_with(tmp_path / name_of(f".{short}.memstore-tmp-", gone))
    live = _folder_with(tmp_path / name_of(f".{short}.memstore-tmp-", os.getppid()))
    other = _folder_with(tmp_path / name_of(f".{export_target.short_name(name + 'y')}"
                                            ".memstore-tmp-", gone))
    export_target.check_target(out, True, {})
    assert not dead.exists() and live.exists() and other.exists()
    before = {f.name: f.read_bytes() for f in out.iterdir()}  # killed between the renames:
    os.rename(out, tmp_path / name_of(f".{short}.memstore-old-", gone))
    capfd.readouterr()
    export_target.check_target(out, True, {})  # put back
    assert "put the previous export back from" in capfd.readouterr().err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    old_name = tmp_path / name_of(".out.memstore-tmp-", gone)  # the whole name: as before
    _folder_with(old_name)
    export_target.check_target(tmp_path / "out", False, {})
    assert not old_name.exists()
