"""Tags on remotes, through the library on repositories of fake commits (no model), on a
folder, on S3 (moto) and on fsspec's memory store: `push --tags` writes the history first
and creates each tag by compare-and-swap against absent; a remote tag at another commit is
refused unless forced; fetch follows the tags whose commits it has, clone (all_tags) takes
every one; a local tag is never clobbered; fsck and fsck --repair of a remote cover tags;
a damaged tag is one error and changes nothing here."""
from __future__ import annotations

import json

import pytest
from cli_support import snapshot
from remote_support import make_repo, new_remote, remote_files, remove
from test_store_support import commit_on_head

from memstore.errors import MemstoreError, ValidationError
from memstore.remote import push_tags as push_tags_module
from memstore.remote.fetch import fetch
from memstore.remote.fsck import fsck_remote
from memstore.remote.layout import RemoteFormatError, object_path
from memstore.remote.push import push
from memstore.remote.push_tags import push_tags, pushed_ref
from memstore.remote.repair import repair_remote
from memstore.remote.transport import RemoteError, open_transport
from memstore.store.refs import HEADS, TAGS
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # s3_server


def remote_tags(url: str) -> dict[str, bytes]:
    return {p[len(TAGS):]: d for p, d in remote_files(url).items() if p.startswith(TAGS)}


def test_push_tags_creates_each_tag_after_its_history_and_fetch_follows_them(any_pair):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1)
    a.create_tag("v1")
    c2 = commit_on_head(a, seed=2)
    a.create_tag("v2")
    push(a)
    got = push_tags(a)
    assert [(t.tag, t.old, t.new, t.refused) for t in got.tags] == [
        ("v1", None, c1.id, False), ("v2", None, c2.id, False)]
    assert got.moved.objects == 0  # the branch's push wrote their history already
    assert remote_tags(url) == {"v1": c1.id.encode() + b"\n", "v2": c2.id.encode() + b"\n"}
    again = push_tags(a)
    assert all(t.up_to_date for t in again.tags) and again.moved.objects == 0
    fetched = fetch(b)
    assert [(t.tag, t.new, t.refused) for t in fetched.tags] == [("v1", c1.id, None),
                                                                 ("v2", c2.id, None)]
    assert b.tags() == {"v1": c1.id, "v2": c2.id} and b.fsck() == []
    assert fetch(b).tags == []  # the same commit here: nothing to do
    assert fsck_remote(url) == []


def test_a_tag_off_every_branch_is_pushed_with_its_history_and_cloned(any_pair):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1)
    a.create_tag("v1")
    push_tags(a)  # no branch pushed: the tag alone makes its history reachable
    assert fsck_remote(url) == []
    assert fetch(b).tags == [] and b.tags() == {}  # a fetch follows tags into its history
    got = fetch(b, all_tags=True)  # a clone takes every tag
    assert [(t.tag, t.new) for t in got.tags] == [("v1", c1.id)]
    assert got.moved.commits == 1 and b.requests_of(c1.id) == a.requests_of(c1.id)
    assert b.fsck() == []


def test_a_remote_tag_at_another_commit_is_refused_unless_forced(any_pair):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1)
    a.create_tag("v1")
    push(a)
    push_tags(a)
    c2 = commit_on_head(b, seed=2)
    b.create_tag("v1")
    b.create_tag("v2")
    before = remote_tags(url)
    got = push_tags(b)
    assert [(t.tag, t.old, t.refused) for t in got.tags] == [("v1", c1.id, True),
                                                             ("v2", None, False)]
    assert remote_tags(url) == before | {"v2": c2.id.encode() + b"\n"}  # v2 still pushed
    assert fsck_remote(url) == []
    forced = push_tags(b, force=True)
    v1 = forced.tags[0]
    assert (v1.old, v1.new, v1.forced, v1.refused) == (c1.id, c2.id, True, False)
    assert remote_tags(url)["v1"] == c2.id.encode() + b"\n"
    # a's v1 names c1: a fetch keeps it (git's "would clobber existing tag")
    fetched = fetch(a, all_tags=True)
    kept = {t.tag: t for t in fetched.tags}["v1"]
    assert (kept.new, kept.here, kept.refused) == (c2.id, c1.id, "would clobber existing tag")
    assert a.tags() == {"v1": c1.id, "v2": c2.id}


def test_push_of_one_tag_by_name(any_pair):
    a, _, url = any_pair
    commit_on_head(a, seed=1)
    a.create_tag("v1")
    c2 = commit_on_head(a, seed=2)
    a.create_tag("v2")
    assert pushed_ref(a, "v2") == (TAGS, "v2") and pushed_ref(a, "main") == (HEADS, "main")
    assert pushed_ref(a, "refs/tags/v1") == (TAGS, "v1")
    assert [t.tag for t in push_tags(a, only="v2").tags] == ["v2"]
    assert remote_tags(url) == {"v2": c2.id.encode() + b"\n"}
    with pytest.raises(ValidationError, match="no tag 'v3'"):
        push_tags(a, only="v3")


def test_a_name_both_branch_and_tag_must_say_which(any_pair):
    a, _, _ = any_pair
    c1 = commit_on_head(a, seed=1)
    a.create_tag("v1")
    a.db["refs"].insert({"name": "refs/heads/v1", "target": c1.id, "symbolic": None})  # older
    with pytest.raises(ValidationError, match="both a branch and a tag.*refs/heads/v1"):
        pushed_ref(a, "v1")
    assert pushed_ref(a, "refs/heads/v1") == (HEADS, "v1")


def test_a_tag_created_on_the_remote_meanwhile_is_not_replaced(any_pair, monkeypatch):
    a, b, url = any_pair
    commit_on_head(a, seed=1)
    a.create_tag("v1")
    theirs = commit_on_head(b, seed=2)
    push(b)
    real = push_tags_module.upload

    def upload_then_someone_tags(*args, **kwargs):
        moved = real(*args, **kwargs)
        open_transport(url).put("refs/tags/v1", theirs.id.encode() + b"\n")  # after the read
        return moved

    monkeypatch.setattr(push_tags_module, "upload", upload_then_someone_tags)
    got = push_tags(a)
    assert [(t.old, t.refused) for t in got.tags] == [(theirs.id, True)]
    assert remote_tags(url) == {"v1": theirs.id.encode() + b"\n"}
    # --force replaces the commit it read, never a tag removed there meanwhile
    monkeypatch.setattr(push_tags_module, "upload",
                        lambda *args, **kwargs: remove(url, "refs/tags/v1") or real(*args,
                                                                                     **kwargs))
    got = push_tags(a, force=True)
    assert [(t.old, t.refused) for t in got.tags] == [(None, True)] and remote_tags(url) == {}


def test_a_push_stopped_before_its_tag_leaves_no_tag(any_pair, monkeypatch):
    a, _, url = any_pair
    commit_on_head(a, seed=1)
    a.create_tag("v1")
    real = push_tags_module.upload

    def upload_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(push_tags_module, "upload", upload_then_stop)
    with pytest.raises(KeyboardInterrupt):
        push_tags(a)
    assert remote_tags(url) == {} and fsck_remote(url) == []  # objects only: harmless
    monkeypatch.undo()
    assert not push_tags(a).tags[0].refused and fsck_remote(url) == []


def test_a_fetched_tag_never_takes_a_branch_name_here(any_pair):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1)
    a.create_tag("v1")
    push(a)
    push_tags(a)
    open_transport(url).put("refs/tags/main", c1.id.encode() + b"\n")  # a teammate's
    taken = "is already the name of a branch"
    # b before its first commit, as a clone's repository is: main is its branch already
    unborn = f"'main' {taken} (the current one, which has no commits yet); choose another name"
    got = fetch(b)
    assert [(t.tag, t.refused) for t in got.tags] == [("main", unborn), ("v1", None)]
    b.update_ref("refs/heads/main", c1.id, expected=None)  # what a clone does next
    b.delete_tag("v1")
    b.create_branch("v1")
    got = fetch(b)
    assert [(t.tag, t.refused) for t in got.tags] == [
        ("main", f"'main' {taken}; choose another name"),
        ("v1", f"'v1' {taken}; choose another name")]
    assert b.tags() == {} and b.resolve("origin/main") == c1.id and b.fsck() == []


def test_fsck_of_a_remote_checks_each_tag_and_repair_restores_its_history(any_pair):
    a, _, url = any_pair
    commit_on_head(a, seed=1)
    push(a)
    c2 = commit_on_head(a, seed=2)
    a.create_tag("v2")  # off the remote's branch: only the tag reaches c2
    push_tags(a)
    remove(url, object_path(c2.id))
    problems = fsck_remote(url)
    assert problems == [f"commit {c2.id[:12]} (reached from tag v2): its object is missing"]
    fixed = repair_remote(a, url)
    assert c2.id in fixed.rewritten and fsck_remote(url) == []


@pytest.mark.parametrize("path, data, says, fsck_says", [
    ("refs/tags/v1", b"not an id\n", "does not hold a commit id",
     "tag v1 does not hold a commit id ('not an id')"),
    ("refs/tags/bad name", None, "the tag name 'bad name' is not valid",
     "the tag name 'bad name' is not valid (it contains a space)"),
    ("refs/tags/v1", "missing", "names commit",
     "commit cccccccccccc (reached from tag v1): its object is missing"),
])
def test_a_damaged_remote_tag_is_one_error_and_changes_nothing_here(any_pair, path, data, says,
                                                                    fsck_says):
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1)
    push(a)
    if data is None:
        data = c1.id.encode() + b"\n"
    elif data == "missing":  # a tag naming a commit the remote lacks
        data = b"c" * 64 + b"\n"
    open_transport(url).put(path, data)
    before = snapshot(b.root)
    with pytest.raises(MemstoreError, match=says) as e:
        fetch(b, all_tags=True)
    assert "\n" not in str(e.value) and snapshot(b.root) == before
    if says != "names commit":  # a fetch follows tags into its history only: passed by
        with pytest.raises((RemoteFormatError, RemoteError), match=says):
            fetch(b)
    assert [p for p in fsck_remote(url) if fsck_says in p] != []


@pytest.mark.parametrize("first, second", [("v1", "V1"), ("v1", "v1/rc")])
def test_tags_a_remote_cannot_store_side_by_side_are_refused(any_pair, first, second):
    a, b, url = any_pair
    commit_on_head(a, seed=1)
    a.create_tag(first)
    push_tags(a)
    commit_on_head(b, seed=2)
    b.create_tag(second)
    before = remote_files(url)
    with pytest.raises(ValidationError, match=f"tag '{second}' .* tag '{first}' of the remote"):
        push_tags(b)
    assert remote_files(url) == before


def test_a_tag_onto_a_pushed_history_walks_and_lists_what_it_adds(any_pair, monkeypatch):
    """As a branch's push: the history the remote's branches and tags reach is not read,
    sized nor listed again (it walked and listed all of it)."""
    a, b, url = any_pair
    for seed in range(20):
        commit_on_head(a, seed=seed)
    push(a)
    tip = a.head().commit
    a.create_tag("v1")
    c = a.get_commit(commit_on_head(a, seed=100).id)  # not pushed: only v2 reaches it
    a.create_tag("v2")
    read, listed = [], []
    real_commit = a.get_commit
    monkeypatch.setattr(a, "get_commit", lambda cid: read.append(cid) or real_commit(cid))
    kind = type(open_transport(url))
    real_list, real_list_many = kind.list, kind.list_many
    monkeypatch.setattr(kind, "list", lambda t, d: listed.append(d) or real_list(t, d))
    monkeypatch.setattr(kind, "list_many",
                        lambda t, ds: listed.extend(ds := list(ds)) or real_list_many(t, ds))
    got = push_tags(a)
    assert [t.refused for t in got.tags] == [False, False] and got.moved.commits == 1
    assert read == [c.id]
    below = {"refs/tags/v1/", "refs/tags/v2/"}  # no ref below a tag written
    assert set(listed) <= {"refs/heads/", "refs/tags/", f"objects/{tip[:2]}/"} | below | {
        f"objects/{o[:2]}/" for o in c.object_ids()}
    assert fetch(b, all_tags=True).tags[1].new == c.id and fsck_remote(url) == []


def test_a_damaged_remote_branch_does_not_stop_a_tag_push(any_pair):
    """The remote's branches only spare the walk: with one that is no commit id, the push
    trusts none of them and writes whatever the tag's history lacks there."""
    a, _, url = any_pair
    c1 = commit_on_head(a, seed=1)
    push(a)
    open_transport(url).put("refs/heads/main", b"not an id\n")
    remove(url, object_path(c1.id))
    a.create_tag("v1")
    assert not push_tags(a).tags[0].refused
    damaged = ("branch main does not hold a commit id ('not an id'); `memstore push --delete "
               "--force REMOTE refs/heads/main` removes it, `push --force REMOTE main` replaces it")
    assert fsck_remote(url) == [damaged,
                                "HEAD names no branch of the remote ('ref: refs/heads/main\\n')"]


def test_a_tag_an_older_memstore_named_is_passed_over(any_pair):
    """A name git accepts but memstore no longer does (a character that does not show as
    itself) is left out of a fetch in one line, as such a branch is, not a refusal."""
    a, b, url = any_pair
    c1 = commit_on_head(a, seed=1)
    a.create_tag("v1")
    push(a)
    push_tags(a)
    open_transport(url).put("refs/tags/v\u200b1", c1.id.encode() + b"\n")
    got = fetch(b)
    assert [t.tag for t in got.tags] == ["v1"] and b.tags() == {"v1": c1.id}
    assert len(got.passed_over) == 1 and "tag 'v\\u200b1' passed over" in got.passed_over[0]
    assert "under refs/tags/" in got.passed_over[0]


def test_the_refusal_lines_of_push_tags():
    """One error line however many tags are refused, naming what the remote holds."""
    from cli.commands.remote import show_tags
    from memstore.remote.push import PushRejectedError
    from memstore.remote.push_tags import TagsPushResult, TagUpdate

    c1, c2 = "1" * 64, "2" * 64
    no_move = ("(a tag does not move: push --tags --force replaces it there; `memstore tag -d "
               "{}` and `memstore fetch --tags` take the remote's here)")
    both = "push to origin: tags 'v1', 'v2' already exist on origin naming other commits"
    cases = [([TagUpdate("v1", c1, c2, refused=True)],
              "push to origin: tag 'v1' already exists on origin naming 111111111111 "
              + no_move.format("v1")),
             ([TagUpdate("v1", c1, c2, refused=True), TagUpdate("v2", c2, c1, refused=True)],
              f"{both} {no_move.format('NAME')}"),
             ([TagUpdate("v1", None, c2, refused=True)],
              "push to origin: tag 'v1' was removed there while this push ran; push again")]
    for tags, says in cases:
        with pytest.raises(PushRejectedError) as e:
            show_tags(TagsPushResult("origin", "/x", tags), as_json=True)
        assert str(e.value) == says


def test_fetch_tags_brings_a_tag_on_no_branch_with_its_history(tmp_path):
    """`fetch --tags` (git's): every remote tag, with the history it needs, where a plain
    fetch follows only the tags whose commits it has."""
    from cli_support import ok

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        main = commit_on_head(a, seed=1).id
        push(a)
        a.create_branch("side")
        a.switch("side")
        off = commit_on_head(a, seed=2).id
        a.create_tag("v1")
        push_tags(a)  # v1 is on no remote branch
    finally:
        a.close()
        b.close()
    where = tmp_path / "b"
    assert "[new tag]" not in ok("fetch", cwd=where).stdout
    assert json.loads(ok("tag", "--json", cwd=where).stdout) == []
    out = ok("fetch", "--tags", cwd=where).stdout.splitlines()
    assert f" * {'[new tag]':<26} {'v1':<12} -> v1" in out
    assert json.loads(ok("tag", "--json", cwd=where).stdout) == [{"name": "v1", "commit": off}]
    assert json.loads(ok("log", "--json", "v1", cwd=where).stdout)[-1]["id"] == main
    assert ok("fsck", cwd=where).stdout.strip() == "ok"
    got = json.loads(ok("fetch", "--tags", "--json", cwd=where).stdout)
    assert got["tags"] == [] and got["commits"] == 0


def test_fetch_prune_tags_deletes_the_tags_the_remote_has_not(tmp_path):
    """`fetch --prune-tags` (git's, with --prune, memstore's default): each tag here that
    the remote has no tag of goes, one deleted there and one never pushed alike, in the
    fetch's transaction; a tag the remote has, at any commit, stays. Without it, with
    --no-prune or --all, no tag here is deleted."""
    from cli_support import error_line, ok, run

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        c1 = commit_on_head(a, seed=1).id
        for tag in ("v1", "v2", "v3"):
            a.create_tag(tag)
        push(a)
        push_tags(a)
        commit_on_head(b, seed=2)
        b.create_tag("v3")  # another commit than the remote's v3: kept, as a fetch keeps it
        fetch(b)
        b.create_tag("mine")  # never pushed
        mine = b.tags()["mine"]
    finally:
        a.close()
        b.close()
    where = tmp_path / "b"
    ok("push", "--delete", "origin", "tag", "v2", cwd=tmp_path / "a")
    assert [t["name"] for t in json.loads(ok("tag", "--json", cwd=where).stdout)] == [
        "mine", "v1", "v2", "v3"]
    before = snapshot(where)
    error_line(run("fetch", "--no-prune", "--prune-tags", cwd=where), 2, "not with --no-prune")
    error_line(run("fetch", "--all", "-P", cwd=where), 2, "fetch one REMOTE")
    assert snapshot(where) == before
    ok("fetch", cwd=where)  # a plain fetch deletes no tag here
    assert len(json.loads(ok("tag", "--json", cwd=where).stdout)) == 4
    # v3 here at another commit: rejected as git's `fetch -p -P` rejects it (exit 1), the
    # prune done
    r = run("fetch", "--prune-tags", cwd=where)
    error_line(r, 1, "fetch from origin rejected tag 'v3': it would clobber existing tag")
    out = r.stdout.splitlines()
    assert f" ! {'[rejected]':<26} {'v3':<12} -> v3  (would clobber existing tag)" in out
    assert f" - {'[deleted]':<26} {'(none)':<12} -> mine  (was {mine[:12]})" in out
    assert f" - {'[deleted]':<26} {'(none)':<12} -> v2  (was {c1[:12]})" in out
    tags = {t["name"]: t["commit"] for t in json.loads(ok("tag", "--json", cwd=where).stdout)}
    assert list(tags) == ["v1", "v3"] and tags["v1"] == c1 and tags["v3"] != c1
    assert ok("fsck", cwd=where).stdout.strip() == "ok"
    got = json.loads(run("fetch", "-P", "--json", cwd=where).stdout)
    assert got["pruned_tags"] == []
    ok("tag", "v4", cwd=where)
    got = json.loads(ok("fetch", "-p", "-P", "--force", "--json", cwd=where).stdout)
    assert [t["tag"] for t in got["pruned_tags"]] == ["v4"]
    assert [(t["tag"], t["here"], t["refused"]) for t in got["tags"]] == [
        ("v3", tags["v3"], None)]


def test_push_follow_tags_pushes_the_tags_of_the_branch_history(tmp_path):
    """`push --follow-tags` (git's): after the branch, each tag of a commit in its history
    that the remote has no tag of is created there; a tag off that history stays here,
    one the remote has (at any commit) is left as it is, not refused. A tag the remote
    cannot store beside its own is said after the branch's push, which landed."""
    from cli_support import error_line, ok, run

    from memstore.store.repository import Repository

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        theirs = commit_on_head(b, seed=9).id
        b.create_tag("v2")
        b.create_tag("V5")
        push_tags(b)  # the remote's v2 and V5, at b's commit
        c1 = commit_on_head(a, seed=1).id
        a.create_tag("v1")
        c2 = commit_on_head(a, seed=2).id
        a.create_tag("v2")  # the remote has a v2: left as it is
        a.create_branch("side")
        a.switch("side")
        commit_on_head(a, seed=3)
        a.create_tag("v3")  # off main's history
        a.switch("main")
    finally:
        a.close()
        b.close()
    here = tmp_path / "a"
    before = remote_files(url)
    error_line(run("push", "--follow-tags", "origin", "v1", cwd=here), 2, "'v1' is a tag")
    error_line(run("push", "-d", "--follow-tags", "origin", "main", cwd=here), 2,
               "--delete takes no --tags, --follow-tags")
    assert remote_files(url) == before
    out = ok("push", "--follow-tags", cwd=here).stdout.splitlines()
    assert out[1:3] == [f" {'* [new branch]':<28} {'main':<12} -> main",
                        f" {'* [new tag]':<28} {'v1':<12} -> v1"]
    want = {"v1": c1.encode() + b"\n", "v2": theirs.encode() + b"\n",
            "V5": theirs.encode() + b"\n"}
    assert remote_tags(url) == want and fsck_remote(url) == []
    assert ok("push", "--follow-tags", cwd=here).stdout.splitlines()[1] == \
        "Everything up-to-date"
    ok("tag", "v1b", c1, cwd=here)
    d = json.loads(ok("push", "--follow-tags", "--json", cwd=here).stdout)
    assert d["up_to_date"] and [(t["tag"], t["old"], t["new"], t["refused"])
                                for t in d["tags"]] == [("v1b", None, c1, False)]
    assert remote_tags(url) == want | {"v1b": c1.encode() + b"\n"}
    assert json.loads(ok("push", "--json", cwd=here).stdout)["tags"] == []
    with Repository.open(here) as a:
        c4 = commit_on_head(a, seed=4).id
        a.create_tag("v5")  # beside the remote's V5: one file on some disks
    r = run("push", "--follow-tags", cwd=here)
    error_line(r, 1, "tag 'v5' differs only by case")
    moved = f" {c2[:12] + '..' + c4[:12]:<28} {'main':<12} -> main"
    assert r.stdout.splitlines()[:2] == [f"To {url}", moved]
    assert remote_files(url)["refs/heads/main"] == c4.encode() + b"\n"  # the branch landed
    assert "v5" not in remote_tags(url)
    r = run("push", "--follow-tags", cwd=here)  # the branch up to date: not said to be all
    error_line(r, 1, "tag 'v5' differs only by case")
    assert r.stdout.splitlines() == [f"To {url}"]


def test_push_follow_tags_whose_branch_is_rejected_pushes_its_tags_as_git_s(tmp_path):
    """git 2.39's push is not atomic: `push --follow-tags` whose branch is rejected (fetch
    first) still creates the tags of the history it pushed, one on a commit the remote
    has and one on the commit it refused (its history written first: fsck of the remote
    finds nothing missing), then says the rejection (exit 1). memstore pushed none of them:
    the rejection was raised before --follow-tags ran. The branch there stays as it was."""
    from cli_support import error_line, ok, run

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        c1 = commit_on_head(a, seed=1).id
        a.create_tag("shared")
        push(a)
    finally:
        b.close()
    ok("pull", cwd=tmp_path / "b")
    with Repository.open(tmp_path / "b") as b:
        theirs = commit_on_head(b, seed=9).id
        push(b)
    try:
        c2 = commit_on_head(a, seed=2).id
        a.create_tag("mine")
        commit_on_head(a, seed=3, message="no tag here")
    finally:
        a.close()
    r = run("push", "--follow-tags", cwd=tmp_path / "a")
    line = error_line(r, 1, "push to origin rejected: main there is at")
    assert line.endswith("; --follow-tags pushed the tags of its history all the same, as "
                         "git's: mine, shared")
    assert r.stdout.splitlines() == [f"To {url}", f" {'* [new tag]':<28} {'mine':<12} -> mine",
                                     f" {'* [new tag]':<28} {'shared':<12} -> shared"]
    assert remote_tags(url) == {"mine": c2.encode() + b"\n", "shared": c1.encode() + b"\n"}
    assert remote_files(url)["refs/heads/main"] == theirs.encode() + b"\n"
    assert fsck_remote(url) == []
    r = run("push", "--follow-tags", cwd=tmp_path / "a")  # nothing left to follow
    assert error_line(r, 1, "rejected").endswith("or push --force to replace it")
    assert r.stdout == ""
    with Repository.open(tmp_path / "a") as a:  # theirs here now: not a fast-forward
        fetch(a)
        c4 = commit_on_head(a, seed=4).id
        a.create_tag("v4")
    r = run("push", "--follow-tags", cwd=tmp_path / "a")
    assert error_line(r, 1, "(not a fast-forward)").endswith("all the same, as git's: v4")
    assert remote_tags(url)["v4"] == c4.encode() + b"\n"
    assert remote_files(url)["refs/heads/main"] == theirs.encode() + b"\n"


def test_push_follow_tags_with_stats_whose_branch_is_rejected_pushes_their_statistics(
        history, tmp_path):
    """`push --follow-tags --with-stats` whose branch is rejected (behind, after a reset
    here) pushes the tags of its history all the same (5f5d510), and with them the
    statistics their history was solved with, as the branch's push would have: they went
    without (--with-stats was not passed on to the tags' push)."""
    from cli_support import error_line, ok, run

    repo, (c1, _, _) = history
    url = str(tmp_path / "remote")
    ok("remote", "add", "origin", url, cwd=repo)
    ok("push", cwd=repo)  # the history, without its statistics

    def statistics() -> list[str]:
        return [p for p in remote_files(url) if p.startswith("statistics/")]

    assert statistics() == []
    ok("reset", c1, cwd=repo)
    ok("tag", "v1", cwd=repo)
    r = run("push", "--follow-tags", "--with-stats", cwd=repo)
    assert error_line(r, 1, "rejected").endswith("all the same, as git's: v1")
    assert remote_tags(url) == {"v1": c1.encode() + b"\n"}
    assert statistics() != [] and fsck_remote(url) == []


def test_push_follow_tags_keeps_a_tag_created_there_meanwhile(tmp_path, monkeypatch):
    """A tag of the name created on the remote while `push --follow-tags` ran (after its
    listing) is kept there: said in one line after the branch's push and the tags that
    went, exit status 1."""
    from cli_support import error_line, run

    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    try:
        commit_on_head(a, seed=1)
        a.create_tag("v1")
        c2 = commit_on_head(a, seed=2).id
        a.create_tag("v2")
        push(a)  # the branch there already: its push is up to date
    finally:
        a.close()
    real = push_tags_module.upload

    def upload_then_someone_tags(*args, **kwargs):
        moved = real(*args, **kwargs)
        open_transport(url).put("refs/tags/v1", c2.encode() + b"\n")
        return moved

    monkeypatch.setattr(push_tags_module, "upload", upload_then_someone_tags)
    r = run("push", "--follow-tags", cwd=tmp_path / "a")
    error_line(r, 1, "push to origin: tag 'v1' was created or removed there while this push "
                     "ran, and kept; fetch, then push --follow-tags again")
    assert r.stdout.splitlines() == [f"To {url}", f" {'* [new tag]':<28} {'v2':<12} -> v2"]
    assert remote_tags(url) == {"v1": c2.encode() + b"\n", "v2": c2.encode() + b"\n"}


def test_push_follow_tags_to_a_single_writer_store_says_so(tmp_path):
    """A tag --follow-tags wrote on a store with no compare-and-swap (fsspec's memory
    store) gets the note a push of it gets, the branch up to date too."""
    from cli_support import ok

    url = "memory://follow-tags/repo"
    a = make_repo(tmp_path / "a", url)
    try:
        commit_on_head(a, seed=1)
        push(a)
        a.create_tag("v1")
    finally:
        a.close()
    r = ok("push", "--follow-tags", cwd=tmp_path / "a")
    assert r.stdout.splitlines()[1] == f" {'* [new tag]':<28} {'v1':<12} -> v1"
    assert r.stderr.startswith(f"note: {url} is single-writer")


def test_fetch_prune_tags_also_fetches_every_remote_tag(tmp_path):
    """git's -P is its tag refspec (refs/tags/*:refs/tags/*) with --prune: a tag the remote
    has on no branch comes with its history, as --tags brings it, so that the tags here
    become the remote's; it pruned only, and the remote's tag stayed off this list."""
    from cli_support import ok

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        commit_on_head(a, seed=1)
        push(a)
        fetch(b)
        a.create_branch("side")
        a.switch("side")
        off = commit_on_head(a, seed=2).id
        a.create_tag("off")
        push_tags(a)  # on no remote branch
        b.create_tag("mine", "origin/main")  # never pushed
        mine = b.tags()["mine"]
    finally:
        a.close()
        b.close()
    where = tmp_path / "b"
    out = ok("fetch", "-P", cwd=where).stdout.splitlines()
    assert f" * {'[new tag]':<26} {'off':<12} -> off" in out
    assert f" - {'[deleted]':<26} {'(none)':<12} -> mine  (was {mine[:12]})" in out
    assert json.loads(ok("tag", "--json", cwd=where).stdout) == [{"name": "off", "commit": off}]
    assert ok("fsck", cwd=where).stdout.strip() == "ok"
    got = json.loads(ok("fetch", "-P", "--json", cwd=where).stdout)
    assert got["tags"] == [] and got["pruned_tags"] == [] and got["commits"] == 0


def test_fetch_prune_tags_mirrors_one_listing_of_the_remotes_tags(tmp_path, monkeypatch):
    """A tag deleted on the remote while `fetch -P` runs, between its read of the tags and
    its listing of their names for the prune, was created here all the same (the first
    read had it, the second did not): the fetch mirrored neither. Only the tags both
    reads found are fetched."""
    from memstore.remote import transport as transport_module

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        c1 = commit_on_head(a, seed=1).id
        a.create_tag("v1")
        a.create_tag("v2")
        push(a)
        push_tags(a)
        real = transport_module.Transport.tags

        def tags_then_one_is_deleted(self, *args, **kwargs):
            got = real(self, *args, **kwargs)
            remove(url, "refs/tags/v2")  # a teammate's push --delete origin tag v2
            return got

        monkeypatch.setattr(transport_module.Transport, "tags", tags_then_one_is_deleted)
        got = fetch(b, prune_tags=True)
        assert [t.tag for t in got.tags] == ["v1"] and b.tags() == {"v1": c1}
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("kind", ["s3", "memory"])
@pytest.mark.parametrize("all_tags", [False, True])  # followed, or a clone's every tag
def test_a_tag_and_a_tag_in_it_on_the_remote_fetch_the_first(tmp_path, request, kind,
                                                               all_tags):
    """Tags 'v' and 'v/x' on a remote that holds both (S3 and fsspec's stores keep the keys
    apart; a hand or an older memstore put them there): the fetch checked each against the
    tags here only, so it took both, and the write, which refuses the pair, refused the
    whole fetch (the branch too: ValidationError 'invalid tag name 'v/x''). The second is
    passed over with its reason, as git's fetch ("cannot lock ref 'refs/tags/v/x':
    'refs/tags/v' exists"), the rest fetched."""
    url = (new_remote(kind, tmp_path, request)[0] if kind == "s3"
           else f"memory://tag-pair-{all_tags}/repo")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    c1 = commit_on_head(a, seed=1)
    push(a)
    for name in ("v", "v/x", "v/x/y", "w-1"):
        open_transport(url).put(TAGS + name, c1.id.encode() + b"\n")
    got = fetch(b, all_tags=all_tags)
    said = ("tag 'v' of the remote is fetched with it, and a remote stores a tag as a file, "
            "so one cannot be both a tag and the folder of another")
    assert [(t.tag, t.refused) for t in got.tags] == [
        ("v", None), ("v/x", said), ("v/x/y", said), ("w-1", None)]
    assert b.tags() == {"v": c1.id, "w-1": c1.id} and b.resolve("origin/main") == c1.id
    assert b.fsck() == []
    a.close()
    b.close()


def test_a_tag_pair_the_remote_holds_does_not_stop_pushing_other_tags(tmp_path):
    """Tag 'v' pushed, then 'v/x' put beside it on a remote that can hold both (fsspec's
    memory store, as S3): every later `push --tags` was refused ("tag 'v' cannot be stored
    beside tag 'v/x' of the remote ...; rename one"), 'v' being there already and the new
    tag fitting. The pair is the remote's (its fsck's to name); a new tag is checked
    against it as before."""
    url = "memory://pushed-pair/repo"
    a = make_repo(tmp_path / "a", url)
    c1 = commit_on_head(a, seed=1)
    push(a)
    a.create_tag("v")
    push_tags(a)
    open_transport(url).put(TAGS + "v/x", c1.id.encode() + b"\n")
    commit_on_head(a, seed=2)
    a.create_tag("z")
    got = push_tags(a)
    assert [(t.tag, t.refused, t.up_to_date) for t in got.tags] == [
        ("v", False, True), ("z", False, False)]
    assert set(remote_tags(url)) == {"v", "v/x", "z"}
    a.delete_tag("v")
    a.create_tag("v/x/y")  # in the remote's 'v' and 'v/x': refused as before
    before = remote_files(url)
    with pytest.raises(ValidationError, match="tag 'v/x/y' cannot be stored beside tag 'v' "
                                              "of the remote"):
        push_tags(a)
    assert remote_files(url) == before
    a.close()


@pytest.mark.parametrize("here, there", [("v", "v/x"), ("v/x", "v")])
def test_fetch_prune_tags_makes_room_for_a_tag_where_it_prunes_one(tmp_path, here, there):
    """Tag 'v' here, only 'v/x' on the remote (or the other way round): `fetch -P` pruned
    'v' and refused 'v/x' ("tag 'v' exists", checked before the prune), leaving neither;
    git's `fetch --prune --prune-tags` deletes 'v' and makes 'v/x'. The pruned tags go
    first in the write, and are no obstacle to the tags it makes."""
    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    c1 = commit_on_head(a, seed=1).id
    push(a)
    fetch(b)
    b.update_ref("refs/heads/main", c1, expected=None)
    b.create_tag(here)
    open_transport(url).put(TAGS + there, c1.encode() + b"\n")
    got = fetch(b, prune=True, prune_tags=True)
    assert [(t.tag, t.refused) for t in got.tags] == [(there, None)]
    assert got.pruned_tags == {here: c1} and b.tags() == {there: c1} and b.fsck() == []
    a.close()
    b.close()


def test_a_tag_it_cannot_store_beside_another_fails_fetch_pull_and_clone(base, pushed):
    """A remote holding tags 'v' and 'v/x' (fsspec's memory store, as S3): git 2.39's fetch,
    fetch --all, pull and clone each stop on a ref they cannot lock ("error: cannot lock ref
    'refs/tags/v/x': 'refs/tags/v' exists", exit 1; clone: 128, nothing left), the rest
    updated, pull merging nothing. memstore's passed 'v/x' over with a warning, exit 0
    (0adbcab). Now one error line naming it, exit 1, the rest fetched, nothing merged; the
    clone is kept (see the README)."""
    from cli_support import error_line, history_template, model_dir, ok, run

    repo, _ = pushed
    ids = history_template(base)[1]
    url = "memory://h120-tag-pair/repo"
    ok("remote", "add", "m", url, cwd=repo)
    ok("push", "--with-stats", "m", "main", cwd=repo)
    remote = open_transport(url)
    for name, commit in (("v", ids[0]), ("v/x", ids[0]), ("w", ids[2])):
        remote.put(TAGS + name, commit.encode() + b"\n")
    a = repo.parent / "a"
    r = run("clone", url, str(a), "--base", str(model_dir(base)))
    error_line(r, 1, "fetch from origin did not create tag 'v/x' (beside tag 'v', fetched "
               "with it): one tag cannot be the folder of another, as each is stored as a "
               "file; the rest was fetched (the clone is made: ")
    assert "warning" not in r.stderr
    tags = {t["name"]: t["commit"] for t in json.loads(ok("tag", "--json", cwd=a).stdout)}
    assert tags == {"v": ids[0], "w": ids[2]}
    assert ok("fsck", cwd=a).stdout.strip().endswith("ok")
    # fetch: 'v' here now; a new pair, the rest fetched
    for name in ("u", "u/y", "t"):
        remote.put(TAGS + name, ids[1].encode() + b"\n")
    said = ("fetch from origin did not create tags 'u/y' (beside tag 'u', fetched with it), "
            "'v/x' (beside tag 'v' here): one tag cannot be the folder of another")
    r = run("fetch", cwd=a)
    error_line(r, 1, said)
    assert f" ! {'[new tag]':<26} {'u/y':<12} -> u/y  (beside tag 'u')" in r.stdout
    assert f" * {'[new tag]':<26} {'t':<12} -> t" in r.stdout
    tags = {t["name"] for t in json.loads(ok("tag", "--json", cwd=a).stdout)}
    assert tags == {"t", "u", "v", "w"}
    said = ("fetch from origin did not create tags 'u/y' (beside tag 'u' here), 'v/x' "
            "(beside tag 'v' here)")
    error_line(run("fetch", "--tags", cwd=a), 1, said)
    r = run("fetch", "--all", cwd=a)
    error_line(r, 1, said)
    # pull: the fetch kept, nothing merged (main set back two commits first)
    ok("reset", "--hard", ids[0], cwd=a)
    r = run("pull", cwd=a)
    error_line(r, 1, said)
    assert json.loads(ok("log", "-n", "1", "--json", cwd=a).stdout)[0]["id"] == ids[0]
