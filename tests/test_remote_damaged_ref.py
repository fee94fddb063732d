"""A remote ref that holds no commit id (garbage or empty: a bad copy, a hand edit) has a
way out through memstore, on a folder, on S3 (moto) and on fsspec's memory store: a push of
that branch or tag is refused naming it, and with --force replaces it by compare-and-swap
against the whole damaged content read."""
from __future__ import annotations

import pytest
from cli_support import error_line, ok, run
from remote_support import make_repo, remote_files
from test_store_support import commit_on_head

from memstore.errors import ValidationError
from memstore.remote.fetch import fetch, pull
from memstore.remote.fsck import fsck_remote
from memstore.remote.layout import RemoteFormatError
from memstore.remote.push import push
from memstore.remote.push_tags import push_tags
from memstore.remote.transport import open_transport
from memstore.store.refs import HEADS, TAGS

pytest_plugins = ["remote_fixtures"]  # s3_server


def test_a_damaged_branch_is_replaced_only_by_a_forced_push(any_pair):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    open_transport(url).put(HEADS + "main", b"junk\n")
    before = remote_files(url)
    with pytest.raises(ValidationError, match=r"its branch 'main' \(refs/heads/main\) holds 5 "
                                              r"bytes, not a commit id; `memstore push --delete --force "
                                              r"origin refs/heads/main` removes it, `push --force origin main`"):
        push(a)
    assert remote_files(url) == before
    got = push(a, force=True)
    assert (got.old, got.new, got.forced, got.damaged) == (None, c1, True, 5)
    assert remote_files(url)[HEADS + "main"] == c1.encode() + b"\n"
    assert fsck_remote(url) == [] and fetch(b).updates[0].new == c1


def test_a_damaged_tag_is_replaced_only_by_a_forced_push(any_pair):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    a.create_tag("v1")
    a.create_tag("v2")
    push_tags(a, only="v2")
    open_transport(url).put(TAGS + "v1", b"")
    before = remote_files(url)
    with pytest.raises(ValidationError, match=r"its tag 'v1' \(refs/tags/v1\) holds 0 bytes, "
                                              r"not a commit id; `memstore push --delete --force origin "
                                              r"refs/tags/v1` removes it, `push --tags --force origin`"):
        push_tags(a)
    assert remote_files(url) == before
    got = push_tags(a, force=True)
    assert [(t.tag, t.old, t.damaged, t.forced, t.refused) for t in got.tags] == [
        ("v1", None, 0, True, False), ("v2", c1, None, False, False)]
    assert remote_files(url)[TAGS + "v1"] == c1.encode() + b"\n"
    assert fsck_remote(url) == []
    fetch(b, all_tags=True)
    assert b.tags() == {"v1": c1, "v2": c1}


def test_a_damaged_ref_rewritten_meanwhile_is_not_replaced(any_pair, monkeypatch):
    a, _, url = any_pair
    commit_on_head(a, seed=1)
    push(a)
    a.create_tag("v1")
    there = open_transport(url)
    there.put(TAGS + "v1", b"junk\n")
    kind = type(there)
    real = kind.read_ref

    def read_then_someone_writes(t, path, damaged=False):
        got = real(t, path, damaged)
        if path == TAGS + "v1":
            there.put(TAGS + "v1", b"other junk\n")  # after the read, before the swap
        return got

    monkeypatch.setattr(kind, "read_ref", read_then_someone_writes)
    got = push_tags(a, force=True)
    monkeypatch.undo()
    assert [(t.tag, t.refused, t.old) for t in got.tags] == [("v1", True, "(damaged)")]
    assert remote_files(url)[TAGS + "v1"] == b"other junk\n"


def test_a_damaged_ref_replaced_on_the_command_line(tmp_path):
    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    try:
        c1 = commit_on_head(a, seed=1).id
        push(a)
        a.create_tag("v1")
    finally:
        a.close()
    there = open_transport(url)
    there.put(HEADS + "main", b"junk\n")
    there.put(TAGS + "v1", b"junk\n")
    where = tmp_path / "a"
    error_line(run("push", "origin", "main", cwd=where), 2,
               "holds 5 bytes, not a commit id; `memstore push --delete --force origin "
               "refs/heads/main` removes it, `push --force origin main` replaces it")
    out = ok("push", "--force", "origin", "main", cwd=where).stdout.splitlines()
    assert out[1].split() == ["(damaged)..." + c1[:12], "(forced", "update)", "main", "->",
                              "main"]
    assert out[2] == "replaced damaged branch main (it held 5 bytes, not a commit id)"
    error_line(run("push", "--tags", "origin", cwd=where), 2,
               "`memstore push --delete --force origin refs/tags/v1` removes it, "
               "`push --tags --force origin` replaces it")
    out = ok("push", "--tags", "--force", "origin", cwd=where).stdout.splitlines()
    assert "replaced damaged tag v1 (it held 5 bytes, not a commit id)" in out
    assert remote_files(url)[TAGS + "v1"] == c1.encode() + b"\n"


def test_the_refusals_of_a_damaged_ref_name_the_way_out(any_pair):
    a, b, url = any_pair
    commit_on_head(a, seed=1)
    push(a)
    a.create_tag("v1")
    push_tags(a)
    there = open_transport(url)
    there.put(TAGS + "v1", b"junk\n")
    def tag_out(remote):  # the remote's name where the caller knows it (it was REMOTE)
        return (f"`memstore push --delete --force {remote} refs/tags/v1` removes it, "
                f"`push --tags --force {remote}` replaces it")

    with pytest.raises(RemoteFormatError) as e:
        fetch(b, all_tags=True)
    assert str(e.value).endswith(
        f"refs/tags/v1 does not hold a commit id ('junk'); {tag_out('origin')}")
    assert fsck_remote(url) == [f"tag v1 does not hold a commit id ('junk'); {tag_out('REMOTE')}"]
    assert fsck_remote(url, name="up") == [
        f"tag v1 does not hold a commit id ('junk'); {tag_out('up')}"]
    there.put(HEADS + "main", b"")
    with pytest.raises(RemoteFormatError) as e:
        pull(b)
    assert str(e.value).endswith(
        "refs/heads/main does not hold a commit id (''); `memstore push --delete --force "
        "origin refs/heads/main` removes it, `push --force origin main` replaces it")


def test_a_ref_too_large_for_an_id_names_the_way_out_and_takes_it(any_pair):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    open_transport(url).put(HEADS + "main", b"x" * 5000)
    with pytest.raises(RemoteFormatError) as e:
        fetch(b)
    assert str(e.value).endswith(
        "refs/heads/main holds 5000 bytes, not a commit id; `memstore push --delete --force "
        "origin refs/heads/main` removes it, `push --force origin main` replaces it")
    assert [p.split("; ")[1] for p in fsck_remote(url) if "5000 bytes" in p] != []
    assert push(a, force=True).damaged == 5000
    assert fsck_remote(url) == [] and fetch(b).updates[0].new == c1


def test_a_large_file_at_a_ref_is_not_read_whole(any_pair, monkeypatch):
    """A ref was read whole by every reader but fetch and fsck (push, push --delete, push
    --tags, their compare-and-swap, fsck --repair): a 1 GB file named as a ref went into
    memory. Each reads the bytes a ref may hold, and one more, and the size; an empty ref
    (no byte to read from on S3) reads as before."""
    from memstore.remote.repair import repair_remote
    from memstore.remote.transport import MAX_REF_BYTES

    a, _, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    there = open_transport(url)
    there.put(HEADS + "main", b"x" * 300_000)
    got = open_transport(url).read_ref(HEADS + "main", damaged=True)
    assert (got.commit, got.size, len(got.damaged)) == (None, 300_000, MAX_REF_BYTES + 1)
    there.put("HEAD", b"ref: refs/heads/" + b"y" * 300_000)
    whole, read = [], type(there).read
    monkeypatch.setattr(type(there), "read", lambda t, path: whole.append(path) or read(t, path))
    assert repair_remote(a, url).rewritten == []
    said = [p for p in fsck_remote(url) if p.startswith("HEAD names no branch")]
    assert len(said) == 1 and len(said[0]) < 200, said
    assert not [p for p in whole if p in ("HEAD", HEADS + "main")], whole
    monkeypatch.undo()
    assert push(a, force=True).damaged == 300_000
    assert remote_files(url)[HEADS + "main"] == c1.encode() + b"\n"
    there.put(TAGS + "v1", b"")
    got = open_transport(url).read_ref(TAGS + "v1", damaged=True)
    assert (got.commit, got.size, got.damaged) == (None, 0, b"")


def test_a_tag_too_large_for_an_id_is_replaced_by_a_forced_tag_push(any_pair):
    """A remote tag of 5000 bytes: `push --tags --force`, the way out its refusal names,
    was refused as the plain push was (the listing's size checked before the force)."""
    a, _, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    a.create_tag("v1")
    push_tags(a)
    open_transport(url).put(TAGS + "v1", b"x" * 5000)
    with pytest.raises(ValidationError, match=r"its tag 'v1' \(refs/tags/v1\) holds 5000 "
                                              r"bytes, not a commit id; `memstore push"):
        push_tags(a)
    assert push_tags(a, force=True).tags[0].damaged == 5000
    assert remote_files(url)[TAGS + "v1"] == c1.encode() + b"\n"


def test_an_id_padded_past_a_ref_size_is_damaged_to_a_push_too(any_pair):
    """A commit id after 5000 spaces: a fetch refuses it (too large to be read for an id);
    a push took it for the id and said 'Everything up-to-date', leaving it there."""
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    open_transport(url).put(HEADS + "main", b" " * 5000 + c1.encode())
    with pytest.raises(ValidationError, match="holds 5064 bytes, not a commit id; `memstore push --delete"):
        push(a)
    got = push(a, force=True)
    assert (got.damaged, got.up_to_date) == (5064, False)
    assert remote_files(url)[HEADS + "main"] == c1.encode() + b"\n"
    assert fsck_remote(url) == [] and fetch(b).updates[0].new == c1


def test_a_damaged_ref_rewritten_with_the_same_first_bytes_and_size_is_kept(any_pair,
                                                                           monkeypatch):
    """The compare-and-swap of a damaged ref compared its first MAX_REF_BYTES + 1 bytes and
    its size: a forced push (or delete) that read one damaged ref replaced (removed)
    another written meanwhile that shares both, which it never saw. It compares the whole
    content (its hash; on S3 the ETag)."""
    from memstore.remote.push import PushRejectedError
    from memstore.remote.push_delete import push_delete
    from memstore.remote.transport import MAX_REF_BYTES

    a, _, url = any_pair
    commit_on_head(a, seed=1)
    push(a)
    there = open_transport(url)
    seen, other = b"x" * (2 * MAX_REF_BYTES) + b"seen", b"x" * (2 * MAX_REF_BYTES) + b"kept"
    kind = type(there)
    real = kind.read_ref

    def read_then_someone_writes(t, path, damaged=False):
        got = real(t, path, damaged)
        if path == HEADS + "main" and remote_files(url)[HEADS + "main"] == seen:
            there.put(HEADS + "main", other)  # after the read, before the swap
        return got

    monkeypatch.setattr(kind, "read_ref", read_then_someone_writes)
    there.put(HEADS + "main", seen)
    with pytest.raises(PushRejectedError, match=r"main there moved to \(damaged\)"):
        push(a, force=True)
    assert remote_files(url)[HEADS + "main"] == other
    there.put(HEADS + "main", seen)
    got = push_delete(a, "origin", ["main"], force=True).refs
    assert [(d.refused, d.now, d.damaged) for d in got] == [(True, "(damaged)", len(seen))]
    assert remote_files(url)[HEADS + "main"] == other


def test_a_ref_read_says_its_size(any_pair):
    """RefValue.size was 0 for a ref holding a commit id (set for a damaged one only)."""
    a, _, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    there = open_transport(url)
    got = there.read_ref(HEADS + "main")
    assert (got.commit, got.size) == (c1, len(c1) + 1)
    there.put(HEADS + "main", c1.encode())
    assert there.read_ref(HEADS + "main", damaged=True).size == len(c1)
