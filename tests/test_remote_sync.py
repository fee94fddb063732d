"""push and fetch through the library on repositories of fake commits (no model), on a
folder and on S3: what moves (only what is missing), what is refused (non-fast-forwards,
tampered or missing objects, a remote of another base or a newer layout) and that a
refusal leaves both sides as they were; remote-tracking branches as gc roots; remote fsck."""
from __future__ import annotations

import json

import pytest
from cli_support import snapshot
from remote_support import make_repo, remote_files, remove, tamper
from test_store_support import commit_on_head

from memstore.errors import MemstoreError
from memstore.remote import remotes
from memstore.remote.fetch import fetch
from memstore.remote.fsck import fsck_remote
from memstore.remote.layout import MARKER, RemoteFormatError, object_path
from memstore.remote.push import PushRejectedError, push
from memstore.remote.transfer import CorruptRemoteObjectError
from memstore.remote.transport import open_transport

pytest_plugins = ["remote_fixtures"]  # s3_server, remote_url, pair


def test_push_and_fetch_move_only_what_is_missing(pair):
    a, b, url = pair
    c1 = commit_on_head(a, seed=1)
    c2 = commit_on_head(a, seed=2)
    first = push(a)
    assert (first.old, first.new) == (None, c2.id)
    assert first.moved.commits == 2 and first.moved.objects == len(set(c1.object_ids())
                                                                  | set(c2.object_ids()))
    got = fetch(b)
    assert [(u.branch, u.old, u.new) for u in got.updates] == [("main", None, c2.id)]
    assert got.moved.commits == 2 and got.moved.objects == first.moved.objects
    assert b.resolve("origin/main") == c2.id and b.fsck() == []
    assert b.requests_of(c2.id) == a.requests_of(c2.id)
    # one more commit: only its objects move, both ways
    c3 = commit_on_head(a, seed=3)
    only_c3 = len(set(c3.object_ids()) - set(c2.object_ids()))
    assert push(a).moved.objects == only_c3
    assert fetch(b).moved.objects == only_c3 and b.resolve("origin/main") == c3.id
    assert fetch(b).moved.objects == 0 and fetch(b).updates == []
    assert push(a).up_to_date
    assert fsck_remote(url) == []


def test_non_fast_forward_is_refused_unless_forced(pair):
    a, b, url = pair
    commit_on_head(a, seed=1)
    push(a)
    fetch(b)
    b.update_ref("refs/heads/main", b.resolve("origin/main"), expected=None)
    theirs = commit_on_head(b, seed=2)
    push(b)
    ours = commit_on_head(a, seed=3)
    before = remote_files(url)
    with pytest.raises(PushRejectedError, match="is not here .*fetch first"):
        push(a)
    assert remote_files(url) == before
    fetch(a)  # now a has their commit, but it is not an ancestor of ours
    with pytest.raises(PushRejectedError, match="not a fast-forward.*fetch first"):
        push(a)
    assert remote_files(url) == before
    forced = push(a, force=True)
    assert forced.forced and (forced.old, forced.new) == (theirs.id, ours.id)
    assert fetch(b).updates[0].new == ours.id and fsck_remote(url) == []


def test_remote_tracking_branches_keep_commits_alive(pair):
    a, _, _ = pair
    c1 = commit_on_head(a, seed=1)
    c2 = commit_on_head(a, seed=2)
    push(a)
    a.update_ref("HEAD", c1.id, expected=c2.id)  # main moves back; c2 is on origin/main only
    a.gc()
    assert a.has_commit(c2.id) and a.resolve("origin/main") == c2.id and a.fsck() == []
    remotes.remove(a, "origin")
    # (main's and HEAD's reflog name it too: expired now)
    assert c2.id in a.gc(expire=0).commits and not a.has_commit(c2.id)


def test_a_tampered_object_is_refused_and_nothing_is_fetched(pair):
    a, b, url = pair
    c = commit_on_head(a, seed=1)
    push(a)
    victim = c.update_sets[0].zs
    tamper(url, object_path(victim), b"not the z-vectors")
    before = snapshot(b.root)
    with pytest.raises(CorruptRemoteObjectError, match=f"object {victim} from .* is corrupt"):
        fetch(b)
    assert snapshot(b.root) == before and b.refs.all() == {}
    assert f"object {victim} is corrupt (its content does not match its name)" in \
        fsck_remote(url)
    # a tampered commit object too: refused before anything is written
    tamper(url, object_path(c.id), b"{}")
    with pytest.raises(CorruptRemoteObjectError, match=f"object {c.id}"):
        fetch(b)
    assert snapshot(b.root) == before


def test_a_missing_object_is_refused_and_fsck_names_it(pair):
    a, b, url = pair
    c = commit_on_head(a, seed=1)
    push(a)
    gone = c.update_sets[0].requests
    files = remote_files(url)
    assert object_path(gone) in files
    remove(url, object_path(gone))
    before = snapshot(b.root)
    with pytest.raises(MemstoreError, match=f"lacks object {gone}"):
        fetch(b)
    assert snapshot(b.root) == before
    assert any(f"object {gone} of update set 0 is missing" in p for p in fsck_remote(url))


def test_remotes_of_another_base_or_a_newer_layout_are_refused(pair, tmp_path):
    a, _, url = pair
    commit_on_head(a, seed=1)
    push(a)
    other = make_repo(tmp_path / "other", url, base_hash="d" * 64)
    commit_on_head(other, seed=1)
    before = remote_files(url)
    for op in (fetch, push):
        with pytest.raises(MemstoreError, match="holds a repository of another base model"):
            op(other)
    assert remote_files(url) == before and other.refs.list("refs/remotes/") == {}
    marker = json.loads(before[MARKER])
    tamper(url, MARKER, json.dumps({**marker, "version": 2}).encode())
    for op in (fetch, push):
        with pytest.raises(RemoteFormatError, match="layout version 2, newer"):
            op(a)


def test_a_place_that_holds_something_else_is_not_a_remote(tmp_path):
    folder = tmp_path / "not-a-remote"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    repo = make_repo(tmp_path / "r", str(folder))
    commit_on_head(repo, seed=1)
    with pytest.raises(MemstoreError, match="is not a memstore remote: it is not empty"):
        push(repo)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert fsck_remote(str(folder)) == [f"{MARKER} is missing: {folder} is not a memstore remote"]


def test_fsck_of_a_remote_finds_damaged_refs_and_ignores_what_a_killed_push_leaves(pair):
    a, _, url = pair
    c = commit_on_head(a, seed=1)
    push(a)
    from memstore.remote.transport import open_transport

    t = open_transport(url)
    t.put(object_path("e" * 64), b"an orphan, as a killed push leaves")
    assert fsck_remote(url) == ["object " + "e" * 64 + " is corrupt (its content does not match "
                                "its name)"]
    t.put(object_path("e" * 64)[:-1] + "z", b"x")
    assert any("not an object name" in p for p in fsck_remote(url, verify=False))
    t.put("refs/heads/broken", b"garbage\n")
    t.put("refs/heads/lost", ("f" * 64 + "\n").encode())
    problems = fsck_remote(url, verify=False)
    assert any("branch broken does not hold a commit id" in p for p in problems)
    assert any(f"commit {'f' * 12} (reached from branch lost): its object is missing" in p
               for p in problems)
    assert c.id not in " ".join(problems)


def test_a_branch_gone_from_the_remote_is_gone_from_tracking(pair):
    a, b, url = pair
    commit_on_head(a, seed=1)
    push(a)
    a.create_branch("side")
    push(a, branch="side")
    assert sorted(u.branch for u in fetch(b).updates) == ["main", "side"]
    remove(url, "refs/heads/side")
    assert [(u.branch, u.new) for u in fetch(b).updates] == [("side", None)]
    assert set(remotes.tracking(b, "origin")) == {"main"}


def test_fsck_repair_of_a_remote_writes_back_what_it_lost_from_this_repository(pair):
    """A corrupt object of the remote's right size (a push trusts the listing and never
    rewrites it), a missing commit and a missing statistics-free object are written again
    from this repository's intact copies; a later fetch works; an object no local copy
    holds stays listed, and an object corrupt here too is not written."""
    from memstore.remote.repair import repair_remote

    a, b, url = pair
    c1 = commit_on_head(a, seed=1)
    c2 = commit_on_head(a, seed=2)
    push(a)
    zs = c2.update_sets[0].zs
    data = bytearray(a.objects.get_bytes(zs))
    data[-1] ^= 0xFF  # same size: push does not see it
    tamper(url, object_path(zs), bytes(data))
    remove(url, object_path(c1.id))
    gone = c1.update_sets[0].requests
    remove(url, object_path(gone))
    assert push(a).up_to_date and len(fsck_remote(url)) >= 3
    r = repair_remote(a, url)
    assert sorted(r.rewritten) == sorted({zs, c1.id, gone}) and r.corrupt_here == []
    assert r.bytes == sum(a.objects.size(o) for o in r.rewritten)
    assert fsck_remote(url) == []
    assert fetch(b).updates[0].new == c2.id and b.fsck() == []
    assert repair_remote(a, url).rewritten == []  # nothing left to do
    # what this repository cannot restore: a commit it never had, an object corrupt here too
    other = commit_on_head(b, seed=3)  # b's own main, pushed as the remote's branch side
    b.update_ref("refs/heads/side", other.id, expected=None)
    push(b, branch="side")
    only_b = other.update_sets[0].zs
    remove(url, object_path(only_b))
    remove(url, object_path(c1.update_sets[0].zs))
    local = a.objects.path(c1.update_sets[0].zs)
    local.write_bytes(local.read_bytes()[:-1] + b"x")
    r = repair_remote(a, url)
    assert r.rewritten == [] and r.corrupt_here == [c1.update_sets[0].zs]
    problems = fsck_remote(url)
    assert any(only_b in p for p in problems) and any(c1.update_sets[0].zs in p for p in problems)
    assert object_path(c1.update_sets[0].zs) not in remote_files(url)


def test_fsck_repair_refuses_a_remote_of_another_base(pair, tmp_path):
    from memstore.remote.repair import repair_remote

    a, _, url = pair
    commit_on_head(a, seed=1)
    push(a)
    other = make_repo(tmp_path / "other", url, base_hash="d" * 64)
    before = remote_files(url)
    with pytest.raises(MemstoreError, match="on another base model than this repository"):
        repair_remote(other, url)
    assert remote_files(url) == before


def test_a_branch_differing_from_a_remote_branch_only_by_case_is_not_pushed(pair):
    """On a case-insensitive disk (macOS, Windows, SMB) `refs/heads/Main` is the file of
    `main`: a push of Main compared and swapped main's commit and moved main. Refused for
    every remote, before anything is written."""
    a, b, url = pair
    c = commit_on_head(b, seed=1)
    push(b)  # the remote's main
    a.refs.set_symbolic("HEAD", "refs/heads/Main")  # a's first branch is Main
    commit_on_head(a, seed=2)
    before = remote_files(url)
    with pytest.raises(MemstoreError, match="has a branch 'main', which differs from 'Main' "
                                            "only by case"):
        push(a, branch="Main")
    assert remote_files(url) == before and fetch(b).updates == [] and \
        b.resolve("origin/main") == c.id


def test_a_remote_holding_both_case_twins_still_takes_pushes_of_each(pair):
    """A remote that lists both 'Main' and 'main' (pushed by a memstore of before 1956d98)
    stores them as two files (a case-insensitive disk cannot list both): every push of
    main was refused for good ('it has a branch Main'), and memstore cannot remove a
    remote's branch. Each is pushed on its own; a new twin is still refused."""
    a, b, url = pair
    c1 = commit_on_head(a, seed=1)
    push(a)
    tamper(url, "refs/heads/Main", remote_files(url)["refs/heads/main"])
    c2 = commit_on_head(a, seed=2)
    r = push(a)
    assert (r.old, r.new) == (c1.id, c2.id)
    assert remote_files(url)["refs/heads/main"].decode().strip() == c2.id
    assert remote_files(url)["refs/heads/Main"].decode().strip() == c1.id
    b.refs.set_symbolic("HEAD", "refs/heads/MAIN")
    commit_on_head(b, seed=3)
    with pytest.raises(MemstoreError, match="only by case"):
        push(b, branch="MAIN")


@pytest.mark.parametrize("first, second", [("topic", "topic/y"), ("topic/y", "topic")])
def test_a_branch_and_the_folder_of_another_are_not_both_pushed(pair, first, second):
    """'topic' beside 'topic/y': a remote stores a branch as the file refs/heads/NAME. A
    folder refused the second push after its objects were written, in a line that did not
    say why ('…/refs/heads/topic is not a regular file', or 'File exists'); S3 took both
    (which no folder and no repository can hold). Refused for every remote, before
    anything is written, naming the branch the remote has."""
    a, b, url = pair
    c = commit_on_head(a, seed=1)
    push(a, branch="main")
    a.update_ref(f"refs/heads/{first}", c.id, expected=None)
    push(a, branch=first)
    commit_on_head(b, seed=2)
    b.update_ref(f"refs/heads/{second}", b.head().commit, expected=None)
    before = remote_files(url)
    with pytest.raises(MemstoreError, match=f"has a branch '{first}', and a remote stores a "
                                            "branch as a file"):
        push(b, branch=second)
    assert remote_files(url) == before


def test_an_incremental_push_reads_and_lists_what_it_adds(pair, monkeypatch):
    """A push of one commit onto a pushed history read every commit record of the history
    (to walk it), asked the size of each of its objects and listed the remote's fan-out
    folders of them all (or all of objects/, past 64 folders): the cost of the history,
    not of what it sends (at 5,000 commits a push of one). Now it walks, sizes and lists
    only what the commits the remote branch lacks add."""
    a, b, url = pair
    for seed in range(20):
        commit_on_head(a, seed=seed)
    push(a)
    pushed = {o for commit in a.log("main") for o in commit.object_ids()}
    c = a.get_commit(commit_on_head(a, seed=100).id)
    read, sized, listed = [], [], []
    real_commit, real_size = a.get_commit, a.objects.size
    monkeypatch.setattr(a, "get_commit", lambda cid: read.append(cid) or real_commit(cid))
    monkeypatch.setattr(a.objects, "size", lambda o: sized.append(o) or real_size(o))
    kind = type(open_transport(url))
    real_list, real_list_many = kind.list, kind.list_many
    monkeypatch.setattr(kind, "list", lambda t, d: listed.append(d) or real_list(t, d))
    monkeypatch.setattr(kind, "list_many",
                        lambda t, ds: listed.extend(ds := list(ds)) or real_list_many(t, ds))
    r = push(a)
    assert r.new == c.id and r.moved.commits == 1
    assert read == [c.id] and not set(sized) & pushed and len(pushed) > 90
    parent = c.parents[0]  # the remote branch's commit: checked to be there
    assert set(listed) <= {"refs/heads/", "refs/heads/main/", f"objects/{parent[:2]}/"} | {
        f"objects/{o[:2]}/" for o in c.object_ids()}  # main/: no ref below the one moved
    fetch(b)
    assert b.resolve("origin/main") == c.id and b.fsck() == [] and fsck_remote(url) == []


def test_a_push_onto_a_branch_whose_commit_the_remote_lacks_writes_its_history(pair):
    """A remote whose branch names a commit it does not hold (lost, or the ref copied by
    hand) is not trusted to hold that commit's history: the push writes every object of
    the history the remote's listing lacks, and the remote is whole again."""
    a, b, url = pair
    c1 = commit_on_head(a, seed=1)
    push(a)
    remove(url, object_path(c1.id))
    assert fsck_remote(url) != []
    commit_on_head(a, seed=2)
    assert push(a).moved.commits == 2
    assert fsck_remote(url) == []
    fetch(b)
    assert b.resolve("origin/main") == a.head().commit and b.fsck() == []
