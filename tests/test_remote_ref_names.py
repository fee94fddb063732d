"""What a remote stores at a ref's name, besides the ref: a folder a push or a delete killed
outright left (empty, or holding a dead push's temporary). A leftover never keeps a later
ref from being written; anything else at its name refuses the push with one line, writing
no ref. A ref's temporary is written in refs/heads/ (refs/tags/) itself, never in a
folder below, whose name a ref may need. And the names every kind of remote must hold
alike: a ref beside the folder of another ('a', 'a/b'), a path component over 255 bytes,
names differing only by Unicode normalization.

The kills are those of tests/test_remote_crash_refs.py: a process forked from a
forkserver SIGKILLs itself at a chosen step (crash_points.self_kill_at)."""
from __future__ import annotations

import datetime
import os
import signal

import pytest
from crash_points import forkserver_context, run_round, self_kill_at
from pids import dead_pid
from remote_support import make_repo, remote_files
from test_store_support import commit_on_head, fake_result

from memstore import leftovers
from memstore.errors import ValidationError
from memstore.remote.push import push
from memstore.remote.push_delete import push_delete
from memstore.remote.push_tags import push_tags
from memstore.remote.transport import RefValue, RemoteError, open_transport
from memstore.store import refs
from memstore.store.objects import TEMP_PREFIX
from memstore.store.refs import HEADS
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # s3_server, any_pair


@pytest.fixture(scope="module")
def forkserver():
    return forkserver_context(__name__)


def killed_delete(path: str, env: dict, kind: str, step: int, seed: int, ready) -> None:
    """push --delete of branch topic/x, killed before its first rmdir (after the unlink)."""
    repo = Repository.open(path)
    self_kill_at(step, ("rmdir",))
    ready.set()
    push_delete(repo, "origin", ["topic/x"])


def killed_push(path: str, env: dict, kind: str, step: int, seed: int, ready) -> None:
    """push of branch topic/x, killed just before its ref's temporary is renamed into
    place."""
    repo = Repository.open(path)
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith("refs/heads/topic/x"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)

    os.replace = replace
    ready.set()
    push(repo, branch="topic/x")


def pushed_topic_x(tmp_path, url):
    """A repository whose main and topic/x are pushed to `url`; then topic/x is deleted
    here (a teammate may now push a branch 'topic')."""
    repo = make_repo(tmp_path / "local", url)
    commit_on_head(repo, fake_result(1))
    push(repo)
    repo.create_branch("topic/x", "main")
    push(repo, branch="topic/x")
    return repo


def push_topic_after(tmp_path, url: str) -> None:
    """After the kill (topic/x gone from the remote): branch `topic` made here and pushed,
    where the dead command's leftover stood."""
    transport = open_transport(url)
    assert set(transport.branches()) == {"main"}
    with Repository.open(tmp_path / "local") as repo:
        repo.delete_branch("topic/x", force=True)
        repo.create_branch("topic", "main")
        push(repo, branch="topic")
        assert transport.branches() == {"main": repo.resolve("main"),
                                        "topic": repo.resolve("main")}


def test_a_killed_delete_s_empty_folder_does_not_block_a_branch(tmp_path, forkserver):
    url = str(tmp_path / "remote")
    repo = pushed_topic_x(tmp_path, url)
    repo.close()
    run_round(forkserver, killed_delete, tmp_path / "local", {}, "file", "self", 1, 1, 0,
              None)
    left = tmp_path / "remote" / "refs" / "heads" / "topic"
    assert left.is_dir() and not any(left.iterdir())  # the kill came between the two
    push_topic_after(tmp_path, url)
    assert (tmp_path / "remote" / "refs" / "heads" / "topic").is_file()


def test_a_folder_holding_a_link_at_a_ref_s_name_refuses_the_push(tmp_path):
    """A folder at the ref's name that holds a symbolic link (which no listing shows as a
    branch) is neither followed nor removed: the push is refused, one line naming the link,
    and no ref is written."""
    url = str(tmp_path / "remote")
    repo = pushed_topic_x(tmp_path, url)
    repo.delete_branch("topic/x", force=True)
    push_delete(repo, "origin", ["topic/x"])
    outside = tmp_path / "outside"
    (outside / "empty").mkdir(parents=True)
    link = tmp_path / "remote" / "refs" / "heads" / "topic" / "link"
    link.parent.mkdir()
    link.symlink_to(outside)
    repo.create_branch("topic", "main")
    with pytest.raises(RemoteError) as e:
        push(repo, branch="topic")
    assert "refs/heads/topic/link" in str(e.value) and "\n" not in str(e.value)
    assert link.is_symlink() and (outside / "empty").is_dir()
    assert set(open_transport(url).branches()) == {"main"}
    repo.close()


def test_a_killed_push_s_temporary_does_not_block_a_branch(tmp_path, forkserver):
    """A push of topic/x killed before its ref's rename left its temporary in
    refs/heads/topic/, and every later push of a branch 'topic' was refused
    ('…/refs/heads/topic is not a regular file'). The temporary is now in refs/heads/, and
    the push of 'topic' goes through."""
    url = str(tmp_path / "remote")
    repo = make_repo(tmp_path / "local", url)
    commit_on_head(repo, fake_result(1))
    push(repo)
    repo.create_branch("topic/x", "main")
    repo.close()
    run_round(forkserver, killed_push, tmp_path / "local", {}, "file", "self", 0, 1, 0, None)
    heads = tmp_path / "remote" / "refs" / "heads"
    temps = [p.name for p in heads.rglob(f"{TEMP_PREFIX}*")]
    assert [p.parent for p in heads.rglob(f"{TEMP_PREFIX}*")] == [heads], temps
    push_topic_after(tmp_path, url)
    assert not list(heads.rglob(f"{TEMP_PREFIX}*"))  # the dead push's, removed


def test_an_earlier_push_s_dead_temporary_at_a_ref_s_name_is_removed(tmp_path):
    """A folder remote where an earlier memstore's push of topic/x was killed: its
    temporary (a dead process of this host) in refs/heads/topic/ is removed by the push
    of 'topic'; another host's younger than a day (a push that may be running) is not,
    and refuses the push in one line naming it."""
    url = str(tmp_path / "remote")
    repo = pushed_topic_x(tmp_path, url)
    repo.delete_branch("topic/x", force=True)
    push_delete(repo, "origin", ["topic/x"])
    folder = tmp_path / "remote" / "refs" / "heads" / "topic"
    folder.mkdir()
    other = folder / f"{TEMP_PREFIX}other-host-4242-0123abcd"
    other.write_bytes(b"0" * 64 + b"\n")
    dead = folder / f"{TEMP_PREFIX}{leftovers.HOST}-{dead_pid()}-0123abcd"
    dead.write_bytes(b"0" * 64 + b"\n")
    repo.create_branch("topic", "main")
    with pytest.raises(RemoteError) as e:
        push(repo, branch="topic")
    assert other.name in str(e.value) and "\n" not in str(e.value)
    assert os.listdir(folder) == [other.name]
    old = leftovers.now() - 2 * leftovers.STALE_AFTER
    os.utime(other, (old, old))  # now a day old: surely dead
    push(repo, branch="topic")
    assert open_transport(url).branches()["topic"] == repo.resolve("main")
    repo.close()


def stamped(name: str, age: float, host: str = "other-host", pid: int = 4242) -> str:
    """A temporary name for `name` as a push on `host` would have made it `age` s ago."""
    made = datetime.datetime.fromtimestamp(leftovers.now() - age, datetime.UTC)
    return f"{TEMP_PREFIX}{host}-{pid}-0123abcd-{made:%Y%m%dT%H%M%SZ}-{name}"


def test_an_fsspec_store_writes_a_ref_s_temporary_in_refs_heads(tmp_path):
    """memory://: the temporary of ref topic/x is written in refs/heads/, not beside it."""
    url = "memory://ref-names-1/repo"
    repo = make_repo(tmp_path / "local", url)
    commit_on_head(repo, fake_result(1))
    push(repo)
    repo.create_branch("topic/x", "main")
    t = open_transport(url)
    written = []
    real = type(t.fs).pipe_file
    type(t.fs).pipe_file = lambda fs, path, data, **kw: (written.append(path),
                                                          real(fs, path, data, **kw))
    try:
        push(repo, branch="topic/x")
    finally:
        type(t.fs).pipe_file = real
    refs = [p for p in written if "/refs/" in p]
    assert len(refs) == 1 and refs[0].rsplit("/", 1)[0] == t.full("refs/heads")
    repo.close()


def test_an_fsspec_store_s_dead_temporary_at_a_ref_s_name_is_removed(tmp_path):
    """memory://: an earlier memstore's push of topic/x, killed, left its temporary in
    refs/heads/topic/, and a push of 'topic' was moved into that folder and refused as if
    the branch had been deleted meanwhile. A dead process's of this host and one older than
    a day are removed; another host's younger one refuses the push, one line naming it."""
    url = "memory://ref-names-2/repo"
    repo = make_repo(tmp_path / "local", url)
    commit_on_head(repo, fake_result(1))
    push(repo)
    t = open_transport(url)
    young = stamped("x", 600)
    for name in (stamped("x", 600, leftovers.HOST, dead_pid()), stamped("y", 3 * 24 * 3600),
                 young):
        t.fs.pipe_file(t.full(f"refs/heads/topic/{name}"), b"0" * 64 + b"\n")
    repo.create_branch("topic", "main")
    with pytest.raises(RemoteError) as e:
        push(repo, branch="topic")
    assert young in str(e.value) and "\n" not in str(e.value)
    assert [p.rsplit("/", 1)[-1] for p in t.fs.find(t.full("refs/heads/topic"))] == [young]
    t.fs.rm_file(t.full(f"refs/heads/topic/{young}"))  # as a day later
    push(repo, branch="topic")
    assert t.branches() == {"main": repo.resolve("main"), "topic": repo.resolve("main")}
    repo.close()


def test_a_ref_no_remote_of_every_kind_can_store_is_refused(any_pair, monkeypatch):
    """A tag with a path component over 255 bytes: made here, it was pushed to S3 and
    memory://, and refused by a folder remote in a line about a temporary file's rename
    ('File name too long'). It is refused when made, as a branch is; a tag or a branch made
    before the rule is refused by push on every kind of remote, before anything is
    written."""
    a, _, url = any_pair
    commit_on_head(a, fake_result(1))
    push(a)
    long = "v/" + "é" * 128  # 256 bytes
    with pytest.raises(ValidationError, match="longer than 255 bytes"):
        a.create_tag(long)
    a.create_tag("v/" + "é" * 127)
    monkeypatch.setattr(refs, "check_storable", lambda name, kind="branch": None)
    commit_on_head(a, fake_result(2))
    a.create_tag(long)  # as an older memstore made them
    a.create_branch("b" + long[1:])
    monkeypatch.undo()
    before = remote_files(url)
    with pytest.raises(ValidationError) as e:
        push_tags(a)
    assert str(e.value).startswith(f"push to origin refused: invalid tag name '{long[:60]}")
    assert "longer than 255 bytes" in str(e.value) and remote_files(url) == before
    with pytest.raises(ValidationError) as e:
        push(a, branch="b" + long[1:])
    assert str(e.value).startswith(f"push to origin refused: invalid branch name 'b{long[1:60]}")
    assert "longer than 255 bytes" in str(e.value) and remote_files(url) == before


def test_a_ref_whose_s3_key_would_pass_1024_bytes_is_refused_before_anything_is_written(
        tmp_path, s3_server):
    """S3 takes keys of at most 1,024 bytes (moto does not hold to it): a branch or tag of
    four 253-byte components, valid here and on a folder remote, would have its objects
    written and then its ref refused by S3 in a botocore error. The push refuses it first,
    in one line, writing nothing."""
    url = f"s3://{s3_server.new_bucket()}/repo"
    a = make_repo(tmp_path / "a", url)
    commit_on_head(a, fake_result(1))
    push(a)
    long, tag = ("/".join(c * 253 for c in "wxyz"), "/".join(c * 253 for c in "tuvw"))
    a.create_branch(long)
    a.create_tag(tag)
    a.create_tag("v1")
    before = remote_files(url)
    for run in (lambda: push(a, branch=long), lambda: push_tags(a)):
        with pytest.raises(RemoteError) as e:
            run()
        assert "its key would be 1" in str(e.value) and "S3 takes at most 1024" in str(e.value)
        assert remote_files(url) == before
    a.delete_tag(tag)
    push_tags(a)  # a short name goes
    assert "refs/tags/v1" in remote_files(url)
    a.close()


def test_names_differing_only_by_unicode_normalization_are_twins(any_pair):
    """'café' with é as one character (NFC) and as e and a combining accent (NFD) are two
    names here, on Linux disks and on S3, and one file name on a macOS disk, which ignores
    normalization as it ignores case: they were both made here and both pushed, and on
    such a remote the push of one moved the other. They are now refused as case twins
    are: here when made, at a push when the remote has the other."""
    a, b, url = any_pair
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    commit_on_head(a, fake_result(1))
    a.create_branch(composed)
    with pytest.raises(ValidationError, match="only by Unicode normalization"):
        a.create_branch(decomposed)
    push(a, branch=composed)
    a.create_tag(f"v-{composed}")
    push_tags(a)
    commit_on_head(b, fake_result(2))
    b.create_branch(decomposed)
    b.create_tag(f"v-{decomposed}")
    before = remote_files(url)
    with pytest.raises(ValidationError, match="only by Unicode normalization"):
        push(b, branch=decomposed)
    with pytest.raises(ValidationError, match="only by Unicode normalization"):
        push_tags(b)
    assert remote_files(url) == before


@pytest.mark.parametrize("first, second", [("a", "a/b"), ("a/b", "a"), ("a", "a/b/c")])
def test_a_ref_beside_the_folder_of_another_is_refused_by_every_store(transport, first,
                                                                      second):
    """A push refuses 'a/b' where the remote has 'a' (and the reverse) before writing
    anything; one that lands meanwhile was caught by no store: the folder refused the ref
    in a line that did not say why (''…/refs/heads/a is not a regular file', 'File
    exists'), memory:// too ('File exists', or the ref moved into the folder and the push
    told the branch had been deleted meanwhile), S3 stored both. Every store now refuses
    the ref's write in one line naming the other, writing nothing."""
    commit = "ab" * 32
    transport.swap_ref(HEADS + first, commit, RefValue(None))
    before = transport.list(HEADS)
    with pytest.raises(RemoteError) as e:
        transport.swap_ref(HEADS + second, commit, RefValue(None))
    assert str(e.value) == (f"remote {transport.url}: cannot write {HEADS}{second}: there is "
                            f"{HEADS}{first}, and a ref cannot be both a file and the folder "
                            "of another (pushed meanwhile?); rename one")
    assert transport.list(HEADS) == before == {first: 65}


def test_a_ref_beside_names_that_only_start_with_its_own_is_written(transport):
    """'main' beside 'main2' and 'main-x/y': no folder of the other's (a store listing by
    prefix would find them under 'refs/heads/main')."""
    commit = "ab" * 32
    for name in ("main2", "main-x/y", "main"):
        transport.swap_ref(HEADS + name, commit, RefValue(None))
    assert transport.list(HEADS) == {"main": 65, "main-x/y": 65, "main2": 65}
