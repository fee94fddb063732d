import hashlib
import os
import stat

import pytest
import torch
from children import reap
from pids import dead_pid
from test_store_support import same_bits

from memstore.errors import ValidationError
from memstore.store.objects import (
    CorruptObjectError,
    DiskObjectStore,
    MemoryObjectStore,
    MissingObjectError,
    canonical_json,
    plain,
    tensors_from_bytes,
    tensors_to_bytes,
)


@pytest.fixture(params=["memory", "disk"])
def store(request, tmp_path):
    return MemoryObjectStore() if request.param == "memory" else DiskObjectStore(tmp_path / "o")


def test_id_is_sha256_of_the_bytes(store):
    oid = store.put_bytes(b"hello")
    assert oid == hashlib.sha256(b"hello").hexdigest()
    assert store.get_bytes(oid) == b"hello" and store.size(oid) == 5
    assert store.put_bytes(b"hello") == oid  # idempotent
    assert oid in store and list(store.iter()) == [oid]
    store.delete(oid)
    assert not store.contains(oid)
    with pytest.raises(MissingObjectError, match=oid):
        store.get_bytes(oid)


def test_bad_object_ids_are_refused(store):
    for bad in ["", "abc", "../" + "a" * 61, "A" * 64, "g" * 64, "a" * 64 + "\n"]:
        with pytest.raises(ValidationError, match="not an object id"):
            store.get_bytes(bad)


def test_disk_layout_and_atomic_write(tmp_path):
    store = DiskObjectStore(tmp_path / "objects")
    oid = store.put_bytes(b"x" * 1000)
    path = tmp_path / "objects" / oid[:2] / oid[2:]
    assert path.read_bytes() == b"x" * 1000
    assert not (path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    assert store.temp_files() == []  # the temporary file was renamed, not left behind
    assert list(os.listdir(path.parent)) == [oid[2:]]


def test_disk_write_fsyncs_file_and_directory_before_returning(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(len(renamed)), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append(b), real_replace(a, b)))
    DiskObjectStore(tmp_path / "o").put_bytes(b"data")
    # new fan-out dir synced, then the file before the rename, then its dir after it
    assert synced == [0, 0, 1] and len(renamed) == 1


def test_an_interrupted_write_leaves_no_object(tmp_path, monkeypatch):
    store = DiskObjectStore(tmp_path / "o")

    def crash(a, b):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.put_bytes(b"data")
    assert list(store.iter()) == [] and store.temp_files() == []


def test_corruption_is_detected_on_read(tmp_path):
    store = DiskObjectStore(tmp_path / "o")
    oid = store.put_bytes(b"precious weights")
    path = store.path(oid)
    path.chmod(0o644)
    path.write_bytes(b"precious weighty")
    with pytest.raises(CorruptObjectError, match=oid):
        store.get_bytes(oid)
    assert store.get_bytes(oid, verify=False) == b"precious weighty"


def test_storing_again_rewrites_a_damaged_copy(tmp_path):
    """A damaged object of the right size is not taken for the stored one: a new commit
    that writes the same bytes must not end up naming a corrupt object."""
    store = DiskObjectStore(tmp_path / "o")
    oid = store.put_bytes(b"the requests")
    p = store.path(oid)
    p.chmod(0o644)
    p.write_bytes(b"the requestZ")
    assert store.put_bytes(b"the requests") == oid
    assert store.get_bytes(oid) == b"the requests"
    p.unlink()
    p.mkdir()
    with pytest.raises(CorruptObjectError, match="is a directory"):
        store.put_bytes(b"the requests")


def test_safetensors_round_trip_is_bit_exact(store):
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-45, 3.4e38, float("nan")])
    nan_payload = torch.tensor([0x7FC00123], dtype=torch.int32).view(torch.float32)
    tensors = {
        "f32": torch.randn(5, 7, generator=torch.Generator().manual_seed(0)),
        "special": torch.cat([special, nan_payload]),
        "f64": torch.randn(3, dtype=torch.float64),
        "bf16": torch.randn(4).to(torch.bfloat16),
        "i64": torch.arange(6).reshape(2, 3),
        "strided": torch.randn(6, 4).T,  # non-contiguous input
    }
    back = store.get_tensors(store.put_tensors(tensors))
    assert sorted(back) == sorted(tensors)
    for k, t in tensors.items():
        assert same_bits(back[k], t.contiguous()), k


def test_tensor_bytes_are_deterministic():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 4, generator=g), torch.randn(2, generator=g)
    one = tensors_to_bytes({"a": a, "b": b})
    assert one == tensors_to_bytes({"b": b.clone(), "a": a.clone()})
    shared = torch.randn(4, 4)
    two = tensors_to_bytes({"x": shared[0], "y": shared[1]})  # views of one storage
    assert torch.equal(tensors_from_bytes(two)["y"], shared[1])
    assert one != tensors_to_bytes({"a": a, "b": b + 1})


def test_canonical_json():
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    with pytest.raises(ValidationError):
        canonical_json({"x": float("nan")})
    assert plain({1: torch.tensor(2.5), "t": (1, 2)}) == {"1": 2.5, "t": [1, 2]}
    assert plain({"es": float("nan"), "ps": [float("-inf")]}) == {"es": "nan", "ps": ["-inf"]}
    with pytest.raises(ValidationError, match=r"metrics\.x: cannot store a Tensor"):
        plain({"x": torch.ones(2)}, "metrics")


def test_json_objects(store):
    oid = store.put_json({"z": 1, "a": None})
    assert store.get_bytes(oid) == b'{"a":null,"z":1}'
    assert store.get_json(oid) == {"z": 1, "a": None}


def _same_fan(store, first: bytes) -> bytes:
    """Bytes whose object id starts as that of `first` (written into the same folder)."""
    fan = hashlib.sha256(first).hexdigest()[:2]
    return next(d for i in range(100_000) if hashlib.sha256(d := b"other %d" % i).hexdigest()
                [:2] == fan)


def test_a_write_removes_what_a_writer_killed_outright_left_in_its_folder(tmp_path):
    """kill -9 between an object's write and its rename leaves `.tmp-<host>-<pid>-<random>`
    beside it; the next write into that fan-out folder removes it once its process is dead
    (of this host), never a live process's, another host's, a link, a folder or another
    name; a write into another folder leaves it."""
    import signal

    from memstore import leftovers
    from memstore.store.objects import TEMP_PREFIX

    root = tmp_path / "o"
    data = b"half written when killed"
    pid = os.fork()
    if pid == 0:
        try:
            os.replace = lambda a, b: os.kill(os.getpid(), signal.SIGKILL)
            DiskObjectStore(root).put_bytes(data)
        finally:
            os._exit(3)
    [status] = reap([pid], timeout=120)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    fan = root / hashlib.sha256(data).hexdigest()[:2]
    [killed] = fan.iterdir()
    assert killed.name.startswith(f"{TEMP_PREFIX}{leftovers.HOST}-{pid}-")
    gone_pid = dead_pid()
    h = leftovers.HOST
    kept = [fan / f".tmp-{h}-{os.getppid()}-0123abcd",  # a live writer's
            fan / f".tmp-elsewhere-{gone_pid}-0123abcd",  # another host's
            fan / f".tmp-{h}-{gone_pid}-0123abcd.x", fan / f"tmp-{h}-{gone_pid}-0123abcd"]
    for k in kept:
        k.write_bytes(b"x")
    folder = fan / f".tmp-{h}-{gone_pid}-0123abce"
    folder.mkdir()
    link = fan / f".tmp-{h}-{gone_pid}-0123abcf"
    link.symlink_to(kept[0])
    store = DiskObjectStore(root)
    other = next(d for i in range(1000) if hashlib.sha256(d := b"%d" % i).hexdigest()[:2]
                 != fan.name)
    store.put_bytes(other)  # another folder: this one is not listed
    assert killed.is_file()
    oid = store.put_bytes(_same_fan(store, data))
    assert not killed.exists()
    assert sorted(fan.iterdir()) == sorted([*kept, folder, link, store.path(oid)])
    assert link.is_symlink() and all(k.read_bytes() == b"x" for k in kept)
    assert store.put_bytes(data) == hashlib.sha256(data).hexdigest()


def test_a_block_that_raises_takes_back_the_objects_it_stored_that_nothing_names():
    """Storage.taken_back_on_failure (a revert stores each set it replays as it goes): when
    the block raises, the objects it stored for the first time are deleted, but not those
    stored before it, nor those an index row names by then (statistics computed on the
    way, a commit written), nor any when the block ends normally."""
    from test_store_support import commit_on_head, memory_repo

    from memstore.editing.statistics import Statistics

    repo = memory_repo()
    old = repo.objects.put_json(["before"])
    with pytest.raises(RuntimeError), repo.store.taken_back_on_failure():
        assert repo.objects.put_json(["before"]) == old  # present already: not taken back
        loose = repo.objects.put_json(["loose"])
        rec = repo.put_statistics(Statistics(1, torch.eye(4, dtype=torch.float64), 9, "s"))
        c = commit_on_head(repo, seed=1)
        raise RuntimeError("refused part way")
    assert repo.objects.contains(old) and not repo.objects.contains(loose)
    assert all(repo.objects.contains(o) for o in (rec.object, rec.record, *c.object_ids()))
    with repo.store.taken_back_on_failure():
        kept = repo.objects.put_json(["kept"])
    assert repo.objects.contains(kept)


def test_a_disk_store_records_only_the_objects_it_writes_first(tmp_path):
    store = DiskObjectStore(tmp_path / "objects")
    old = store.put_bytes(b"old")
    damaged = store.put_bytes(b"damaged")
    path = store.path(damaged)
    path.chmod(0o644)
    path.write_bytes(b"DAMAGED")
    with store.recording_new() as outer:
        with store.recording_new() as inner:
            store.put_bytes(b"old")
            store.put_bytes(b"damaged")  # written again whole: it was there, not new
            new = store.put_bytes(b"new")
        store.put_bytes(b"new")
        assert inner == [new]
    assert outer == [new] and store.get_bytes(damaged) == b"damaged" and old in store
