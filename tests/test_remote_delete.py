"""push --delete, through the library on repositories of fake commits (no model), on a
folder, on S3 (moto) and on fsspec's memory store: branches and tags are deleted there by
compare-and-swap against what was read, never one another push moved meanwhile; the
remote's HEAD branch only when forced; a name the remote lacks refuses the whole command;
the deleted branch's remote-tracking branch goes here, and a later fetch elsewhere drops
its own (status: the upstream is gone); the objects stay."""
from __future__ import annotations

import json

import pytest
from cli_support import error_line, ok, run
from remote_support import make_repo, remote_files
from test_store_support import commit_on_head

from memstore.errors import ValidationError
from memstore.remote import push_delete as push_delete_module
from memstore.remote import remotes
from memstore.remote.fetch import fetch, pull
from memstore.remote.fsck import fsck_remote
from memstore.remote.push import push
from memstore.remote.push_delete import push_delete
from memstore.remote.push_tags import push_tags
from memstore.remote.transport import open_transport
from memstore.store.refs import HEADS, TAGS

pytest_plugins = ["remote_fixtures"]  # s3_server


def refs_there(url: str) -> dict[str, str]:
    return {p: d.decode().strip() for p, d in remote_files(url).items()
            if p.startswith(("refs/heads/", "refs/tags/"))}


def shared(a):
    """main and topic/x pushed, tag v1 at topic/x's commit pushed: (main's, topic's)."""
    c1 = commit_on_head(a, seed=1)
    push(a)
    a.create_branch("topic/x")
    a.switch("topic/x")
    c2 = commit_on_head(a, seed=2)
    push(a, set_upstream=True)
    a.create_tag("v1")
    push_tags(a)
    a.switch("main")
    return c1.id, c2.id


def test_a_merged_topic_and_a_mistaken_tag_are_deleted_and_the_objects_stay(any_pair):
    a, b, url = any_pair
    c1, c2 = shared(a)
    fetch(b, all_tags=True)
    b.create_branch("topic/x", "origin/topic/x")
    remotes.set_upstream(b, "topic/x", "origin/topic/x")
    objects = {p for p in remote_files(url) if p.startswith("objects/")}
    got = push_delete(a, "origin", ["topic/x", "v1"])
    assert [(r.ref, r.old, r.refused) for r in got.refs] == [
        ("refs/heads/topic/x", c2, False), ("refs/tags/v1", c2, False)]
    assert refs_there(url) == {"refs/heads/main": c1}
    assert {p for p in remote_files(url) if p.startswith("objects/")} == objects
    assert fsck_remote(url) == []
    # here: origin/topic/x is gone, and the branch whose upstream it was says so
    assert remotes.tracking(a, "origin") == {"main": c1}
    a.switch("topic/x")
    assert remotes.upstream(a)["gone"] is True
    # the local branch and tag stay, as git's
    assert a.refs.read(HEADS + "topic/x") == c2 and a.tags() == {"v1": c2}
    # elsewhere: the next fetch drops the remote-tracking branch ('[deleted]'); b's tag stays
    fetched = fetch(b)
    assert [(u.branch, u.old, u.new) for u in fetched.updates] == [("topic/x", c2, None)]
    assert remotes.tracking(b, "origin") == {"main": c1} and b.tags() == {"v1": c2}
    b.switch("topic/x")
    assert remotes.upstream(b)["gone"] is True and b.fsck() == []
    with pytest.raises(ValidationError, match=r"^remote 'origin' has no branch 'topic/x' \(the "
                       r"upstream of 'topic/x', origin/topic/x, is not on the remote: deleted "
                       r"there, or never pushed there .*; `memstore branch --unset-upstream` "
                       r"forgets it, `memstore push -u origin topic/x` pushes this branch "
                       r"there again\)$"):
        pull(b)  # said so, not only that the remote lacks it
    with pytest.raises(ValidationError, match=r"^remote 'origin' has no branch 'nope'$"):
        pull(b, "origin", "nope")  # no upstream named: the plain line
    # a branch of the deleted one's folder name can be pushed now
    a.switch("main")
    a.delete_branch("topic/x", force=True)
    a.create_branch("topic", c1)
    push(a, branch="topic")
    assert refs_there(url) == {"refs/heads/main": c1, "refs/heads/topic": c1}


def test_names_resolve_as_a_push_resolves_them(any_pair):
    a, _, url = any_pair
    c1 = commit_on_head(a, seed=1).id
    push(a)
    a.create_tag("v1")
    push_tags(a)
    # a branch 'v1' there beside the tag (another memstore's push): a bare name is ambiguous
    open_transport(url).put(HEADS + "v1", c1.encode() + b"\n")
    before = refs_there(url)
    with pytest.raises(ValidationError, match="'v1' is both a branch and a tag there: say "
                                              "refs/heads/v1 or refs/tags/v1"):
        push_delete(a, "origin", ["v1"])
    assert refs_there(url) == before
    assert [r.ref for r in push_delete(a, "origin", ["refs/tags/v1"]).refs] == [TAGS + "v1"]
    assert [r.ref for r in push_delete(a, "origin", ["v1"]).refs] == [HEADS + "v1"]
    assert refs_there(url) == {HEADS + "main": c1}


def test_a_name_the_remote_lacks_refuses_every_delete(any_pair):
    a, _, url = any_pair
    shared(a)
    before, tracking = refs_there(url), remotes.tracking(a, "origin")
    for names, says in ((["topic/x", "nope"], "it has no branch or tag 'nope'"),
                        (["refs/tags/topic/x"], "it has no tag 'topic/x'"),
                        (["refs/heads/v1"], "it has no branch 'v1'"),
                        (["../HEAD"], "invalid branch name"),
                        ([], "name the branches or tags")):
        with pytest.raises(ValidationError, match=says):
            push_delete(a, "origin", names)
    assert refs_there(url) == before and remotes.tracking(a, "origin") == tracking


def test_the_remote_head_branch_is_deleted_only_when_forced(any_pair):
    a, _, url = any_pair
    _, c2 = shared(a)
    with pytest.raises(ValidationError, match="'main' is the branch the remote's HEAD names"):
        push_delete(a, "origin", ["v1", "main"])
    assert len(refs_there(url)) == 3  # v1 was not deleted either
    got = push_delete(a, "origin", ["main"], force=True)
    assert [(r.ref, r.refused) for r in got.refs] == [("refs/heads/main", False)]
    assert refs_there(url) == {HEADS + "topic/x": c2, TAGS + "v1": c2}
    # HEAD names what a clone checks out now (no main: the first branch)
    assert remote_files(url)["HEAD"] == b"ref: refs/heads/topic/x\n"
    assert fsck_remote(url) == []
    # the last branch: HEAD goes, and the next branch pushed is the default, as the first was
    push_delete(a, "origin", ["topic/x"], force=True)
    assert refs_there(url) == {TAGS + "v1": c2} and "HEAD" not in remote_files(url)
    assert fsck_remote(url) == []
    a.create_branch("next", c2)
    push(a, branch="next")
    assert remote_files(url)["HEAD"] == b"ref: refs/heads/next\n" and fsck_remote(url) == []


def test_a_ref_another_push_moved_meanwhile_is_kept(any_pair, monkeypatch):
    a, b, url = any_pair
    c1, c2 = shared(a)
    fetch(b)
    b.create_branch("topic/x", "origin/topic/x")
    b.switch("topic/x")
    c3 = commit_on_head(b, seed=3).id
    real = push_delete_module._resolve

    def read_then_someone_pushes(transport, remote, given):
        got = real(transport, remote, given)
        if given == "topic/x":
            push(b)  # lands after the read, before the delete
        return got

    monkeypatch.setattr(push_delete_module, "_resolve", read_then_someone_pushes)
    got = push_delete(a, "origin", ["topic/x", "v1"])
    assert [(r.ref, r.old, r.refused, r.now) for r in got.refs] == [
        ("refs/heads/topic/x", c2, True, c3), ("refs/tags/v1", c2, False, None)]
    assert refs_there(url) == {HEADS + "main": c1, HEADS + "topic/x": c3}
    assert remotes.tracking(a, "origin") == {"main": c1, "topic/x": c2}  # kept: not deleted
    assert fsck_remote(url) == []


def test_push_delete_on_the_command_line(tmp_path):
    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        c1, c2 = shared(a)
        fetch(b)
    finally:
        a.close()
        b.close()
    where = tmp_path / "a"
    before = refs_there(url)
    error_line(run("push", "--delete", "origin", "main", cwd=where), 2,
               "'main' is the branch the remote's HEAD names")
    error_line(run("push", "--delete", "origin", "topic/x", "nope", cwd=where), 2,
               "it has no branch or tag 'nope'")
    error_line(run("push", "--delete", "origin", cwd=where), 2, "give REMOTE and the branches")
    error_line(run("push", "--delete", "--tags", "origin", "v1", cwd=where), 2,
               "--delete takes no --tags")
    error_line(run("push", "origin", "main", "v1", cwd=where), 2, "unexpected extra argument")
    assert refs_there(url) == before
    out = ok("push", "--delete", "origin", "topic/x", "refs/tags/v1", cwd=where).stdout
    assert out.splitlines() == [f"To {url}", f" - {'[deleted]':<26} topic/x",
                                f" - {'[deleted]':<26} v1"]
    # another clone's fetch removes its origin/topic/x, and says so
    fetched = ok("fetch", cwd=tmp_path / "b").stdout.splitlines()
    assert f" - {'[deleted]':<26} origin/topic/x  (was {c2[:12]})" in fetched
    assert json.loads(ok("fetch", "--json", cwd=tmp_path / "b").stdout)["updates"] == []
    got = json.loads(ok("push", "-d", "-f", "--json", "origin", "main", cwd=where).stdout)
    assert [(d["ref"], d["kind"], d["old"], d["refused"]) for d in got["deleted"]] == [
        ("refs/heads/main", "branch", c1, False)]
    assert refs_there(url) == {} and "HEAD" not in remote_files(url)
    assert json.loads(ok("fetch", "--json", cwd=tmp_path / "b").stdout)["updates"] == [
        {"branch": "main", "old": c1, "new": None, "forced": False}]
    assert json.loads(ok("tag", "--json", cwd=tmp_path / "b").stdout) == [
        {"name": "v1", "commit": c2}]


def test_the_refusal_line_of_push_delete():
    from cli.commands.remote import show_deleted
    from memstore.remote.push import PushRejectedError
    from memstore.remote.push_delete import DeleteResult, RefDeletion

    c1, c2 = "1" * 64, "2" * 64
    one = ("push --delete to origin rejected: refs/heads/topic moved there while this ran "
           "(to 222222222222), so it was kept; fetch first")
    two = ("push --delete to origin rejected: refs/heads/topic, refs/tags/v2 moved there "
           "while this ran (other pushes landed), so they were kept; fetch first")
    cases = [([RefDeletion(HEADS, "topic", c1, True, c2)], one),
             ([RefDeletion(HEADS, "topic", c1, True, c2), RefDeletion(TAGS, "v1", c1),
               RefDeletion(TAGS, "v2", c2, True, c1)], two)]
    for refs, says in cases:
        with pytest.raises(PushRejectedError) as e:
            show_deleted(DeleteResult("origin", "/x", refs), as_json=True)
        assert str(e.value) == says


def test_a_damaged_ref_is_deleted_only_when_forced(any_pair):
    a, _, url = any_pair
    c1, _ = shared(a)
    there = open_transport(url)
    there.put(TAGS + "v1", b"junk\n")  # a bad copy, a hand edit
    there.put(HEADS + "topic/x", b"")
    before = refs_there(url)
    tag_says = (r"its tag 'v1' \(refs/tags/v1\) holds 5 bytes, not a commit id; "
                "push --delete --force removes it")
    for names, says in ((["v1"], tag_says),
                        (["refs/heads/topic/x"], "its branch 'topic/x' .* holds 0 bytes")):
        with pytest.raises(ValidationError, match=says):
            push_delete(a, "origin", names)
    assert refs_there(url) == before
    got = push_delete(a, "origin", ["v1", "topic/x"], force=True)
    assert [(r.ref, r.old, r.damaged, r.refused) for r in got.refs] == [
        (TAGS + "v1", None, 5, False), (HEADS + "topic/x", None, 0, False)]
    assert refs_there(url) == {HEADS + "main": c1}
    assert remote_files(url)["HEAD"] == b"ref: refs/heads/main\n"
    assert remotes.tracking(a, "origin") == {"main": c1} and fsck_remote(url) == []


def test_a_damaged_ref_rewritten_meanwhile_is_kept(any_pair, monkeypatch):
    a, _, url = any_pair
    shared(a)
    there = open_transport(url)
    there.put(TAGS + "v1", b"junk\n")
    real = push_delete_module._resolve

    def read_then_someone_writes(transport, remote, given):
        got = real(transport, remote, given)
        there.put(TAGS + "v1", b"other junk\n")  # after the read, before the delete
        return got

    monkeypatch.setattr(push_delete_module, "_resolve", read_then_someone_writes)
    got = push_delete(a, "origin", ["v1"], force=True)
    assert [(r.ref, r.refused, r.now) for r in got.refs] == [(TAGS + "v1", True, "(damaged)")]
    assert refs_there(url)[TAGS + "v1"] == "other junk"


def test_a_damaged_ref_on_the_command_line(tmp_path):
    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    try:
        c1, c2 = shared(a)
    finally:
        a.close()
    open_transport(url).put(TAGS + "v1", b"junk\n")
    where = tmp_path / "a"
    error_line(run("push", "--delete", "origin", "v1", cwd=where), 2,
               "holds 5 bytes, not a commit id; push --delete --force removes it")
    out = ok("push", "--delete", "--force", "origin", "v1", cwd=where).stdout
    assert out.splitlines() == [f"To {url}", f" - {'[deleted]':<26} v1",
                                "deleted damaged tag v1 (it held 5 bytes, not a commit id)"]
    assert refs_there(url) == {HEADS + "main": c1, HEADS + "topic/x": c2}


def test_a_damaged_head_branch_is_deleted_when_forced(any_pair):
    a, _, url = any_pair
    _, c2 = shared(a)
    open_transport(url).put(HEADS + "main", b"junk\n")
    got = push_delete(a, "origin", ["main"], force=True)
    assert [(r.ref, r.damaged, r.refused) for r in got.refs] == [(HEADS + "main", 5, False)]
    assert refs_there(url) == {HEADS + "topic/x": c2, TAGS + "v1": c2}
    assert remote_files(url)["HEAD"] == b"ref: refs/heads/topic/x\n" and fsck_remote(url) == []
