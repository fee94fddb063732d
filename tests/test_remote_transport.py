"""The transports' contract on each kind of store (a folder, S3 through moto's server, and
fsspec's memory:// as any other store): files appear whole, `create` is exclusive, and a
branch moves only by compare-and-swap against what was read."""
from __future__ import annotations

import itertools

import pytest

from memstore.remote.layout import Marker, RemoteFormatError, ref_bytes
from memstore.remote.s3 import check_conditional_writes
from memstore.remote.transport import RefValue, RemoteError, StaleRefError, open_transport

pytest_plugins = ["remote_fixtures"]  # s3_server, remote_url, transport

A, B, C = "a" * 64, "b" * 64, "c" * 64
_MEMORY = itertools.count()


def test_swap_ref_is_a_compare_and_swap(transport):
    path = "refs/heads/main"
    absent = transport.read_ref(path)
    assert absent.commit is None
    transport.swap_ref(path, A, absent)
    with pytest.raises(StaleRefError) as e:  # a new branch only where there is none
        transport.swap_ref(path, B, absent)
    assert e.value.now == A
    at_a = transport.read_ref(path)
    assert at_a.commit == A
    transport.swap_ref(path, B, at_a)
    with pytest.raises(StaleRefError) as e:  # what was read is no longer there
        transport.swap_ref(path, C, at_a)
    assert e.value.now == B and transport.read_ref(path).commit == B
    assert transport.branches() == {"main": B}


def test_delete_ref_is_a_compare_and_delete(transport):
    """A ref is deleted only while it holds what was read: moved since, it stays; removed
    since, the delete says so (now None)."""
    path = "refs/heads/topic/x"
    transport.swap_ref(path, A, transport.read_ref(path))
    at_a = transport.read_ref(path)
    transport.swap_ref(path, B, at_a)
    with pytest.raises(StaleRefError) as e:  # another push moved it after our read
        transport.delete_ref(path, at_a)
    assert e.value.now == B and transport.read_ref(path).commit == B
    at_b = transport.read_ref(path)
    transport.delete_ref(path, at_b)
    assert transport.read_ref(path).commit is None and transport.branches() == {}
    with pytest.raises(StaleRefError) as e:
        transport.delete_ref(path, at_b)
    assert e.value.now is None
    # no folder 'topic' is left behind to keep a branch of that name from being pushed
    transport.swap_ref("refs/heads/topic", C, transport.read_ref("refs/heads/topic"))
    assert transport.branches() == {"topic": C}


def test_files_and_exclusive_create(transport):
    assert transport.list("") == {} and not transport.exists()
    transport.put_many({"objects/ab/cd": b"one", "objects/ef/gh": b"three"})
    assert transport.create("HEAD", b"first")
    assert not transport.create("HEAD", b"second")
    assert transport.read("HEAD") == b"first" and transport.read("nothing") is None
    assert transport.list("objects/") == {"ab/cd": 3, "ef/gh": 5}
    assert transport.list_many(["objects/ab/", "objects/zz/"]) == {
        "objects/ab/": {"cd": 3}, "objects/zz/": {}}
    assert transport.read_many(["objects/ab/cd", "objects/xx/yy"]) == {"objects/ab/cd": b"one"}
    assert transport.exists()


def test_a_ref_that_is_not_a_commit_id_is_refused(transport):
    transport.put("refs/heads/main", b"not a commit\n")
    with pytest.raises(RemoteFormatError, match="does not hold a commit id"):
        transport.read_ref("refs/heads/main")


def test_guarantee_per_kind_of_store(tmp_path, s3_server):
    assert open_transport(str(tmp_path)).guarantee.startswith("compare-and-swap")
    assert open_transport(f"s3://{s3_server.new_bucket()}/r").guarantee.startswith(
        "compare-and-swap")
    assert open_transport("memory://g/r").guarantee.startswith("single-writer")


def test_marker_versions():
    m = Marker(1, "h" * 64, "tiny", {"n_layers": 4})
    assert Marker.parse(m.to_bytes(), "x") == m
    newer = m.to_bytes().replace(b'"version":1', b'"version":2')
    with pytest.raises(RemoteFormatError, match="layout version 2, newer than this memstore"):
        Marker.parse(newer, "x")
    with pytest.raises(RemoteFormatError, match="damaged"):
        Marker.parse(b'{"format": "something else"}', "x")


def test_botocore_without_conditional_writes_is_refused(monkeypatch):
    """s3fs silently drops parameters its botocore does not know: a compare-and-swap would
    become a plain overwrite. That botocore is refused instead."""
    import botocore.session

    class Model:
        members = ("Bucket", "Key", "Body")

    class Session:
        def get_service_model(self, name):
            return self

        def operation_model(self, name):
            return type("Op", (), {"input_shape": Model})()

    monkeypatch.setattr(botocore.session, "get_session", Session)
    with pytest.raises(RemoteError, match="cannot send conditional writes"):
        check_conditional_writes.__wrapped__()
    monkeypatch.undo()
    check_conditional_writes.__wrapped__()  # this environment's botocore has them


def test_symbolic_links_inside_a_folder_remote_are_not_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    remote = tmp_path / "remote"
    (remote / "objects").mkdir(parents=True)
    (remote / "objects" / "ab").symlink_to(outside)
    with pytest.raises(RemoteError, match="is a symbolic link"):
        open_transport(str(remote)).put("objects/ab/cd", b"x")
    assert list(outside.iterdir()) == []


def test_a_single_writer_store_refuses_a_concurrent_push_it_sees(monkeypatch):
    """Without a compare-and-swap, the branch is read again after the write: another push
    that replaced ours right after is seen, and ours is refused rather than reported."""
    t = open_transport(f"memory://transport-{next(_MEMORY)}/repo")
    path = "refs/heads/main"
    t.swap_ref(path, A, t.read_ref(path))
    real_put = t.put

    def put_then_overwritten(p, data):
        real_put(p, data)
        if p == path:
            real_put(p, ref_bytes(C))  # another push, just after ours

    monkeypatch.setattr(t, "put", put_then_overwritten)
    with pytest.raises(StaleRefError) as e:
        t.swap_ref(path, B, t.read_ref(path))
    assert e.value.now == C


def test_an_s3_store_without_conditional_writes_is_single_writer(s3_server, monkeypatch):
    """A store that answers If-Match / If-None-Match with 501 Not Implemented gets the
    single-writer protocol, and says so."""
    t = open_transport(f"s3://{s3_server.new_bucket()}/repo")
    real = t.fs.call_s3

    def no_conditions(method, **kwargs):
        if "IfMatch" in kwargs or "IfNoneMatch" in kwargs:
            error = OSError("not implemented")
            error.response = {"Error": {"Code": "NotImplemented"}}
            raise error
        return real(method, **kwargs)

    monkeypatch.setattr(t.fs, "call_s3", no_conditions)
    path = "refs/heads/main"
    t.swap_ref(path, A, t.read_ref(path))
    assert t.guarantee.startswith("single-writer") and t.read_ref(path).commit == A
    with pytest.raises(StaleRefError):
        t.swap_ref(path, B, RefValue(None))
    assert t.create("HEAD", b"x") and not t.create("HEAD", b"y")


def test_an_s3_store_without_conditional_deletes_deletes_as_a_single_writer(s3_server,
                                                                           monkeypatch):
    """A store that answers DeleteObject's If-Match with 501 (or a botocore that cannot
    send it) gets read, compare, remove, and says it is single-writer."""
    t = open_transport(f"s3://{s3_server.new_bucket()}/repo")
    path = "refs/tags/v1"
    t.swap_ref(path, A, t.read_ref(path))
    read = t.read_ref(path)
    real = t.fs.call_s3

    def no_conditional_delete(method, **kwargs):
        if method == "delete_object" and "IfMatch" in kwargs:
            error = OSError("not implemented")
            error.response = {"Error": {"Code": "NotImplemented"}}
            raise error
        return real(method, **kwargs)

    monkeypatch.setattr(t.fs, "call_s3", no_conditional_delete)
    t.swap_ref(path, B, read)
    with pytest.raises(StaleRefError) as e:  # the read before the removal sees the move
        t.delete_ref(path, read)
    assert e.value.now == B and t.guarantee.startswith("single-writer")
    t.delete_ref(path, t.read_ref(path))
    assert t.read_ref(path).commit is None


def test_an_s3_delete_sends_if_match(s3_server, monkeypatch):
    """The S3 delete of a ref is one DeleteObject conditional on the ETag read."""
    t = open_transport(f"s3://{s3_server.new_bucket()}/repo")
    path = "refs/heads/main"
    t.swap_ref(path, A, t.read_ref(path))
    read = t.read_ref(path)
    sent = []
    real = t.fs.call_s3
    monkeypatch.setattr(t.fs, "call_s3",
                        lambda method, **kwargs: sent.append((method, kwargs)) or
                        real(method, **kwargs))
    t.delete_ref(path, read)
    assert [(m, k.get("IfMatch")) for m, k in sent] == [("delete_object", read.token)]
    assert t.guarantee.startswith("compare-and-swap") and t.read_ref(path).commit is None


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_a_folder_remote_gets_the_modes_the_umask_allows(tmp_path, umask, mode):
    """A folder remote is shared (a team's /mnt/shared): its files are readable as the
    umask allows, not 0600 as a temporary file is made (other users could not fetch), and
    writable by the group under umask 002, the lock file too: a teammate's push opens it
    for writing (made 0644, it refused every push but that of the user who made it)."""
    import os
    import stat
    old = os.umask(umask)
    try:
        t = open_transport(str(tmp_path / "r"))
        t.put("objects/ab/cd", b"one")
        t.put_stream("objects/ef/gh", iter([b"two"]))
        t.swap_ref("refs/heads/main", A, t.read_ref("refs/heads/main"))
        assert t.create("HEAD", b"ref: refs/heads/main\n")
        for name in ("objects/ab/cd", "objects/ef/gh", "refs/heads/main", "HEAD", "lock"):
            assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == mode, name
    finally:
        os.umask(old)


def test_a_lock_file_a_teammate_cannot_open_is_one_remote_error(tmp_path, monkeypatch):
    """A lock file made unwritable for this user (by an older memstore, 0644, in a group's
    shared folder): the push is refused as a remote's error naming the remote, the lock
    and the reason, not as an OSError of an unnamed file."""
    import errno

    import memstore.store.lock as lock_module

    real = lock_module.os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith("/r/lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    t = open_transport(str(tmp_path / "r"))
    monkeypatch.setattr(lock_module.os, "open", denied)
    with pytest.raises(RemoteError, match=r"remote .*/r: cannot lock the remote \(lock\): "
                                          "access denied"):
        t.swap_ref("refs/heads/main", A, t.read_ref("refs/heads/main"))
    assert t.read_ref("refs/heads/main").commit is None
