"""A team's flow through one remote, on repositories of fake commits (no model): fetch's
pruning of remote-tracking branches and its flags (git's --prune / -p, and --no-prune), the
tags a fetch follows, and the push that creates a remote, exactly one of two at once
saying so."""
from __future__ import annotations

import json
import threading

import children
import pytest
from cli_support import error_line, ok, run
from remote_support import make_repo, remote_files, remove
from test_store_support import commit_on_head

from memstore.errors import MemstoreError
from memstore.remote import remotes
from memstore.remote.fetch import fetch, pull
from memstore.remote.fsck import fsck_remote
from memstore.remote.push import push
from memstore.remote.push_tags import push_tags
from memstore.store.upstreams import Upstream

pytest_plugins = ["remote_fixtures"]  # s3_server

# b's main has no commits yet: its upstream recorded as a clone of an empty remote records
# it (git's too); `branch --set-upstream-to` refuses a branch with no commits, as git's
UNBORN_UPSTREAM = Upstream("origin", "main")


def test_no_prune_keeps_a_remote_tracking_branch_whose_branch_is_gone(tmp_path):
    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    c1 = commit_on_head(a, seed=1)
    push(a)
    a.create_branch("side")
    push(a, branch="side")
    fetch(b)
    remotes.record_upstream(b, "main", UNBORN_UPSTREAM)
    remove(url, "refs/heads/side")
    assert fetch(b, prune=False).updates == []
    assert remotes.tracking(b, "origin") == {"main": c1.id, "side": c1.id}
    fetched, _ = pull(b, prune=False)
    assert fetched.updates == [] and "side" in remotes.tracking(b, "origin")
    assert [(u.branch, u.old, u.new) for u in fetch(b).updates] == [("side", c1.id, None)]
    assert remotes.tracking(b, "origin") == {"main": c1.id}


def test_fetch_and_pull_take_gits_prune_flags(tmp_path):
    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        c1 = commit_on_head(a, seed=1).id
        push(a)
        for name in ("side", "other"):
            a.create_branch(name)
            push(a, branch=name)
        fetch(b)
        remotes.record_upstream(b, "main", UNBORN_UPSTREAM)
    finally:
        a.close()
        b.close()
    here = tmp_path / "b"
    ok("push", "--delete", "origin", "side", "other", cwd=tmp_path / "a")
    for kept in (["fetch", "--no-prune"], ["pull", "--no-prune"]):
        out = ok(*kept, "--json", cwd=here).stdout
        got = json.loads(out)
        assert (got.get("fetched") or got)["updates"] == [], kept
        assert json.loads(ok("branch", "-r", "--json", cwd=here).stdout) == [
            {"name": f"origin/{n}", "commit": c1, "remote": True, "current": False}
            for n in ("main", "other", "side")]
    out = ok("fetch", "-p", cwd=here).stdout.splitlines()
    # each with the commit it named, which `branch NAME ID` would keep here
    assert f" - {'[deleted]':<26} origin/other  (was {c1[:12]})" in out
    assert f" - {'[deleted]':<26} origin/side  (was {c1[:12]})" in out
    assert [b["name"] for b in json.loads(ok("branch", "-r", "--json", cwd=here).stdout)] == [
        "origin/main"]
    assert json.loads(ok("fetch", "--prune", "--json", cwd=here).stdout)["updates"] == []
    for command in ("fetch", "pull"):  # the default named as the flag is (it said 'p')
        assert "[default: prune]" in " ".join(ok(command, "--help", cwd=here).stdout.split())


def test_of_two_pushes_creating_a_remote_at_once_exactly_one_says_created(tmp_path, monkeypatch):
    """Both look, find no remote there, then both write its marker: a create that reads,
    then writes, told both pushes they made it (the CLI's 'created a new remote', twice).
    fsspec's memory store creates exclusively, as a conditional write does (its check
    made atomic here, as a store's is)."""
    from fsspec.implementations.memory import MemoryFileSystem

    from memstore.remote.fsspec_store import FsspecTransport
    from memstore.remote.layout import MARKER
    from memstore.store.repository import Repository

    url = f"memory://created-once-{tmp_path.name}/repo"
    for name in "ab":
        repo = make_repo(tmp_path / name, url)
        commit_on_head(repo, seed=1)
        repo.close()
    both_looked = threading.Barrier(2)
    read, pipe_file, atomic = FsspecTransport.read, MemoryFileSystem.pipe_file, threading.Lock()

    def look(self, path):
        got = read(self, path)
        if path == MARKER and got is None:
            # neither writes before the other found nothing; a loaded machine can take its
            # time to bring the other thread here (the join below allows 120 s)
            both_looked.wait(timeout=90)
        return got

    def exclusive(self, path, value, mode="overwrite", **kw):
        with atomic:
            return pipe_file(self, path, value, mode=mode, **kw)

    monkeypatch.setattr(FsspecTransport, "read", look)
    monkeypatch.setattr(MemoryFileSystem, "pipe_file", exclusive)
    said = {}

    def run(name):
        repo = Repository.open(tmp_path / name)
        try:
            said[name] = push(repo).created
        except MemstoreError as e:  # the loser's branch: the winner's landed first
            said[name] = getattr(e, "created_url", None) is not None
        finally:
            repo.close()

    threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in "ab"]
    for t in threads:
        t.start()
    children.join_threads(threads, timeout=120)
    assert sorted(said.values()) == [False, True]
    assert fsck_remote(url) == []


def test_a_tag_is_followed_by_a_fetch_that_moves_no_branch_and_not_off_every_branch(tmp_path):
    """git's following of tags, as the README promises it for fetch and pull: a tag pushed
    onto a commit the other clone has already comes with a fetch that moves no branch; a
    tag on no branch the remote has comes only with --tags, fetch's or pull's (clone takes
    every tag)."""
    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    c1 = commit_on_head(a, seed=1).id
    push(a)
    fetch(b)
    remotes.record_upstream(b, "main", UNBORN_UPSTREAM)
    a.create_tag("v1")
    push_tags(a)
    got = fetch(b)
    assert got.updates == [] and [(t.tag, t.new) for t in got.tags] == [("v1", c1)]
    a.create_branch("side")
    a.switch("side")
    c2 = commit_on_head(a, seed=2).id
    a.create_tag("v2")  # side is never pushed: v2 is on no branch there
    push_tags(a)
    a.create_tag("v3", c1)
    push_tags(a)
    fetched, _ = pull(b)
    assert [(t.tag, t.new) for t in fetched.tags] == [("v3", c1)]
    assert b.tags() == {"v1": c1, "v3": c1}
    fetched, _ = pull(b, all_tags=True)  # git's pull --tags, as fetch --tags
    assert [(t.tag, t.new) for t in fetched.tags] == [("v2", c2)]
    assert b.tags() == {"v1": c1, "v2": c2, "v3": c1} and b.fsck() == []


def test_push_takes_gits_tag_and_colon_spellings(tmp_path):
    """`push origin tag v1` pushes tag v1 (it was 'unexpected extra argument'),
    `push origin HEAD:topic` on topic pushes it, and `push origin :topic :v1` deletes both
    there (these were 'invalid branch name ...: it contains ':'')."""
    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    try:
        commit_on_head(a, seed=1)
        push(a)
        a.create_branch("topic")
        a.switch("topic")
        a.create_tag("v1")
    finally:
        a.close()
    here = tmp_path / "a"
    assert ok("push", "origin", "tag", "v1", cwd=here).stdout.splitlines()[1] == \
        f" {'* [new tag]':<28} {'v1':<12} -> v1"
    assert "refs/tags/v1" in remote_files(url)
    # git's SRC:DST onto SRC's own name; under another name, one line and nothing pushed
    assert ok("push", "origin", "HEAD:topic", cwd=here).stdout.splitlines()[1] == \
        f" {'* [new branch]':<28} {'topic':<12} -> topic"
    assert "refs/heads/topic" in remote_files(url)
    # DST written out in full is SRC's own name too (git's CI spelling HEAD:refs/heads/NAME)
    for spelled in ("HEAD:refs/heads/topic", "topic:refs/heads/topic", "v1:refs/tags/v1"):
        assert ok("push", "origin", spelled, cwd=here).stdout.splitlines()[1] == \
            "Everything up-to-date", spelled
    before = remote_files(url)
    error_line(run("push", "origin", "topic:refs/tags/topic", cwd=here), 2,
               "'topic' is a branch here")
    error_line(run("push", "origin", "HEAD:refs/heads/other", cwd=here), 2,
               "HEAD is branch 'topic'")
    error_line(run("push", "origin", "main:other", cwd=here), 2, "under its own name")
    error_line(run("push", "origin", "HEAD:other", cwd=here), 2, "HEAD is branch 'topic'")
    assert remote_files(url) == before
    out = ok("push", "origin", ":topic", ":v1", cwd=here).stdout
    assert out.splitlines() == [f"To {url}", f" - {'[deleted]':<26} topic",
                                f" - {'[deleted]':<26} v1"]
    assert {p for p in remote_files(url) if p.startswith("refs/")} == {"refs/heads/main"}
    assert [b["name"] for b in json.loads(ok("branch", "-r", "--json", cwd=here).stdout)] == [
        "origin/main"]



def test_push_delete_takes_gits_tag_name_and_keeps_a_branch_named_tag(tmp_path):
    """git's `push --delete origin tag v1` deletes tag v1 there and nothing else; memstore
    read 'tag' as one more name and deleted the remote's branch named tag too (a branch
    `push origin tag` pushes, 2a738b1), its remote-tracking branch with it, exit 0.
    `tag NAME` is refs/tags/NAME in a delete too (a last 'tag' alone is refused, as git's:
    test_cli_branch_remotes); `:tag :v1` (git's colon spelling) still deletes both."""
    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    try:
        commit_on_head(a, seed=1)
        push(a)
        a.create_branch("tag")
        a.create_tag("v1")
    finally:
        a.close()
    here = tmp_path / "a"
    ok("push", "origin", "refs/heads/tag", cwd=here)
    ok("push", "origin", "tag", "v1", cwd=here)
    out = ok("push", "--delete", "origin", "tag", "v1", cwd=here).stdout
    assert out.splitlines() == [f"To {url}", f" - {'[deleted]':<26} v1"]
    assert {p for p in remote_files(url) if p.startswith("refs/")} == {
        "refs/heads/main", "refs/heads/tag"}
    assert [b["name"] for b in json.loads(ok("branch", "-r", "--json", cwd=here).stdout)] == [
        "origin/main", "origin/tag"]
    ok("push", "origin", "tag", "v1", cwd=here)
    ok("push", "origin", ":tag", ":v1", cwd=here)
    assert {p for p in remote_files(url) if p.startswith("refs/")} == {"refs/heads/main"}
    ok("push", "origin", "refs/heads/tag", cwd=here)
    ok("push", "--delete", "origin", "refs/heads/tag", cwd=here)
    assert {p for p in remote_files(url) if p.startswith("refs/")} == {"refs/heads/main"}

def test_an_exclusive_create_refused_otherwise_than_by_file_exists_reads_the_file(
        monkeypatch, tmp_path):
    """A backend whose conditional write answers 'it exists' with an error of its own (a
    412) still gets False for a file there (the remote's HEAD, written on every push that
    moves a branch, would refuse every push after the first); a failure with nothing
    there stays an error."""
    from memstore.remote.transport import RemoteError, open_transport

    t = open_transport(f"memory://exists-{tmp_path.name}/repo")
    assert t.create("HEAD", b"ref: refs/heads/main\n")
    pipe_file = type(t.fs).pipe_file

    def precondition_failed(self, path, value, mode="overwrite", **kw):
        if mode == "create":
            raise OSError("412 Precondition Failed")
        return pipe_file(self, path, value, mode=mode, **kw)

    monkeypatch.setattr(type(t.fs), "pipe_file", precondition_failed)
    assert t.create("HEAD", b"ref: refs/heads/other\n") is False
    assert t.read("HEAD") == b"ref: refs/heads/main\n"
    with pytest.raises(RemoteError, match="cannot write memstore-remote.json: OSError: 412"):
        t.create("memstore-remote.json", b"{}")


def test_a_backend_whose_pipe_file_takes_a_mode_it_ignores_is_not_taken_for_exclusive():
    """fsspec's HTTP backend takes pipe_file(mode=...) and PUTs whatever it is: taken for an
    exclusive create, a remote's HEAD there (created on every push that moves a branch)
    was overwritten and the create said it made it. It is read first, as any backend
    without a create of its own (an HTTP store cannot move a file, so nothing more is
    written there: one error line, not a file replaced)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from memstore.remote.transport import open_transport

    files = {"/repo/HEAD": b"ref: refs/heads/main\n"}

    class PutServer(BaseHTTPRequestHandler):  # GET, HEAD and PUT, as a WebDAV-ish store
        def log_message(self, *args):
            pass

        def _head(self, code: int, size: int = 0) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(size))
            self.end_headers()

        def do_HEAD(self):
            self._head(200, len(files[self.path])) if self.path in files else self._head(404)

        def do_GET(self):
            self.do_HEAD()
            if self.path in files:
                self.wfile.write(files[self.path])

        def do_PUT(self):
            files[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
            self._head(201)

    server = ThreadingHTTPServer(("127.0.0.1", 0), PutServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        t = open_transport(f"http://127.0.0.1:{server.server_port}/repo")
        assert t.create("HEAD", b"ref: refs/heads/other\n") is False
        assert files == {"/repo/HEAD": b"ref: refs/heads/main\n"}
    finally:
        server.shutdown()
        server.server_close()


def test_fsck_of_a_remote_while_teammates_push_and_delete_finds_no_problem(tmp_path, monkeypatch):
    """A teammate's push lands just after fsck lists the remote's objects, and another
    deletes a branch just after fsck lists the branches: neither is a problem of the
    remote. fsck listed the objects before it read the refs, so it took the pushed
    commit, whose objects came after the listing, for one whose object is missing; and it
    read the deleted branch's file as an empty ref (not a commit id)."""
    from memstore.remote.folder import FolderTransport
    from memstore.remote.layout import OBJECTS
    from memstore.remote.push_delete import push_delete
    from memstore.store.refs import HEADS

    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    commit_on_head(a, seed=1)
    push(a)
    a.create_branch("topic")
    push(a, branch="topic")
    listing = FolderTransport.list
    landed: dict[str, str] = {}

    def teammates_land(self, directory):
        got = listing(self, directory)
        if directory == OBJECTS and "main" not in landed:
            landed["main"] = commit_on_head(a, seed=2).id
            push(a)  # its objects after the listing, its ref before fsck reads it (old order)
        if directory == HEADS and "topic" in got and "topic" not in landed:
            landed["topic"] = "deleted"
            push_delete(a, "origin", ["topic"])  # after the listing, before the read
        return got

    monkeypatch.setattr(FolderTransport, "list", teammates_land)
    assert fsck_remote(url) == []
    assert set(landed) == {"main", "topic"}
    assert remotes.tracking(a, "origin") == {"main": landed["main"]}
    monkeypatch.undo()
    assert fsck_remote(url) == []
    a.close()


def test_fsck_of_a_remote_while_a_first_push_lands_finds_no_problem(tmp_path, monkeypatch):
    """Every branch deleted (no HEAD), a teammate's push lands while fsck hashes the
    objects: its branch, then HEAD naming it. fsck read HEAD after the objects, long after
    the branches, and said "HEAD names no branch of the remote ('ref: refs/heads/main')".
    A HEAD that names no branch and stays so is still one (tests/test_remote_damaged_ref)."""
    from memstore.remote.folder import FolderTransport
    from memstore.remote.layout import OBJECTS
    from memstore.remote.push_delete import push_delete
    from memstore.store.refs import HEADS

    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    commit_on_head(a, seed=1)
    push(a)
    listing = FolderTransport.list
    for when in (OBJECTS, HEADS):  # while it hashes the objects; right after the branches
        push_delete(a, "origin", ["main"], force=True)  # the last branch: HEAD removed
        landed: list[str] = []

        def first_push_lands(self, directory, when=when, landed=landed):
            got = listing(self, directory)
            if directory == when and not landed:
                landed.append("pushing")  # (the push lists the branches too)
                landed[:] = [push(a).branch]  # after fsck listed the branches
            return got

        monkeypatch.setattr(FolderTransport, "list", first_push_lands)
        assert fsck_remote(url) == [], when
        assert landed == ["main"]
        monkeypatch.undo()
        assert fsck_remote(url) == []
    a.close()


def test_a_fetch_while_a_teammate_deletes_a_branch_fetches_the_others(tmp_path, monkeypatch):
    """`push --delete` removes a branch's file after a fetch's listing of the folder found
    it and before the listing read its size: the fetch brought the others (git's fetch
    does); it was refused, 'cannot list refs/heads/: not found'. Likewise `remote prune`."""
    import os

    from memstore.remote import folder
    from memstore.remote.fetch import prune
    from memstore.remote.push_delete import push_delete

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    c1 = commit_on_head(a, seed=1).id
    push(a)
    walk, deleted = os.walk, []

    def deleted_meanwhile(top, *args, **kw):
        for dirpath, dirnames, filenames in walk(top, *args, **kw):
            gone = sorted(n for n in filenames if n.startswith("topic") and n not in deleted)
            if gone:  # one per listing
                deleted.append(gone[0])
                push_delete(a, "origin", gone[:1])  # listed, then removed before its stat
            yield dirpath, dirnames, filenames

    for topic in ("topic1", "topic2"):
        a.create_branch(topic)
        push(a, branch=topic)
    fetch(b, prune=False)
    assert set(remotes.tracking(b, "origin")) == {"main", "topic1", "topic2"}
    monkeypatch.setattr(folder.os, "walk", deleted_meanwhile)
    assert [(u.branch, u.new) for u in prune(b, "origin").pruned] == [("topic1", None)]
    assert [(u.branch, u.new) for u in fetch(b).updates] == [("topic2", None)]
    assert deleted == ["topic1", "topic2"] and remotes.tracking(b, "origin") == {"main": c1}
    (tmp_path / "remote" / "refs" / "heads" / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(MemstoreError, match="cannot list refs/heads/: not found"):
        fetch(b)  # a dangling link is no branch deleted meanwhile: refused, as before
    a.close()
    b.close()
