"""Sharing a repository through a remote, end to end through the CLI, on a folder and on
S3 (moto's server on 127.0.0.1, through s3fs): clone, commit, push, fetch, pull (fast-
forward and fact-level merge), remote-tracking branches as revisions, statistics moved
only with --with-stats and recomputed otherwise; two clones export bit-identical
checkpoints."""
from __future__ import annotations

import hashlib
import json

import pytest
from cli_support import (
    copy_repo,
    error_line,
    facts_files,
    history_template,
    last_line,
    model_dir,
    ok,
    run,
    snapshot,
    write_facts,
)
from remote_support import remote_files, tamper

from memstore.remote.layout import object_path
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # s3_server, remote_url


@pytest.fixture
def origin(base, tmp_path, remote_url):
    """A repository with three commits, pushed to a new remote (a folder as a file:// URL)."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "origin")
    url = f"file://{remote_url}" if remote_url.startswith("/") else remote_url
    ok("remote", "add", "origin", url, cwd=repo)
    out = ok("push", cwd=repo).stdout
    assert "[new branch]" in out and "pushed 3 commits" in out
    return repo, url, ids


@pytest.fixture
def clones(base, tmp_path, origin):
    """Two clones of the origin's remote: a and b."""
    _, url, _ = origin
    a, b = tmp_path / "a", tmp_path / "b"
    clone(base, url, a)
    clone(base, url, b)
    return a, b


def clone(base, url, target, *extra):
    return ok("clone", url, target, "--base", model_dir(base), *extra)


def checkpoint(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.safetensors"))}


def head(repo) -> str:
    with Repository.open(repo) as r:
        return r.head().commit


def test_clone_commit_push_pull_give_identical_checkpoints(base, tmp_path, origin, clones):
    repo, url, ids = origin
    files = facts_files(base)
    a, b = clones
    assert head(a) == head(b) == ids[-1]
    assert ok("fsck", cwd=a).stdout.strip() == "ok"  # no statistics: not damage
    with Repository.open(a) as r:
        assert r.statistics() == []
        assert r.settings.z_steps == 5  # the settings of the newest update set
    # a commits and pushes; b pulls: a fast-forward
    new = last_line(ok("commit", files["d"], cwd=a))
    pushed = ok("push", cwd=a).stdout
    assert f"{ids[-1][:12]}..{new[:12]}" in pushed and "pushed 1 commit," in pushed
    assert ok("push", cwd=a).stdout.splitlines()[-1] == "Everything up-to-date"
    pulled = ok("pull", cwd=b).stdout
    assert "Fast-forward" in pulled and head(b) == new and "fetched 1 commit, 5 objects" in pulled
    # only what is missing moves: a second fetch moves nothing
    assert "fetched 0 objects" in ok("fetch", cwd=b).stdout
    ok("export", "HEAD", tmp_path / "ca", cwd=a)
    ok("export", "HEAD", tmp_path / "cb", cwd=b)
    assert checkpoint(tmp_path / "ca") == checkpoint(tmp_path / "cb")
    assert len(checkpoint(tmp_path / "ca")) >= 1
    # and both are the origin's state plus the new facts, rebuilt from the shared history
    ok("pull", cwd=repo)
    ok("export", "HEAD", tmp_path / "co", cwd=repo)
    assert checkpoint(tmp_path / "co") == checkpoint(tmp_path / "ca")
    assert ok("fsck", url).stdout.strip() == "ok"


def test_diverged_push_is_refused_then_pull_merges(base, tmp_path, origin, clones):
    _, url, _ = origin
    files = facts_files(base)
    a, b = clones
    da = last_line(ok("commit", files["d"], cwd=a))
    eb = last_line(ok("commit", files["e"], cwd=b))
    ok("push", cwd=a)
    before = remote_files(url)
    r = run("push", cwd=b)
    assert r.exit_code == 1 and "fetch first" in r.stderr and r.stderr.count("\n") == 1
    assert remote_files(url) == before  # refused before writing anything
    # REMOTE/BRANCH is a revision once fetched
    ok("fetch", cwd=b)
    assert json.loads(ok("log", "--json", "-n", "1", "origin/main", cwd=b).stdout)[0]["id"] == da
    merge = last_line(ok("pull", cwd=b))
    with Repository.open(b) as r:
        assert list(r.get_commit(merge).parents) == [eb, da]
        live = {f.request.target_new for f in r.facts_at(merge)}
    assert {"Apple", "Microsoft"} <= live  # both sides' facts
    ok("push", cwd=b)
    assert "Fast-forward" in ok("pull", cwd=a).stdout
    for d in (a, b):
        ok("export", "HEAD", tmp_path / f"x{d.name}", cwd=d)
    assert checkpoint(tmp_path / "xa") == checkpoint(tmp_path / "xb")
    assert ok("fsck", url).stdout.strip() == "ok"


def test_pull_lists_conflicts_and_writes_nothing(tmp_path, clones):
    a, b = clones
    fa = write_facts(tmp_path / "fa.jsonl", [("Honda Civic", "{} is produced by", "Apple",
                                              "Honda")])
    fb = write_facts(tmp_path / "fb.jsonl", [("Honda Civic", "{} is produced by", "Sony",
                                              "Honda")])
    pushed = last_line(ok("commit", fa, cwd=a))
    ok("push", cwd=a)
    mine = last_line(ok("commit", fb, cwd=b))
    r = run("pull", cwd=b)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(err) == 2 and "Traceback" not in r.output
    # the fetch landed, and is said as a fetch says it (it was not: only the conflict was)
    assert "main         -> origin/main" in r.stdout and "fetched 1 commit," in r.stdout
    assert json.loads(ok("log", "--json", "-n", "1", "origin/main", cwd=b).stdout)[0]["id"] \
        == pushed
    # the remote branch named as the user names it, not refs/remotes/origin/main
    assert err[0] == "CONFLICT 'Honda Civic' / '{} is produced by': 'Sony' here, 'Apple' on " \
        "origin/main"
    assert err[1].startswith("memstore: error: merge of origin/main refused: 1 conflicting "
                             "fact(s); nothing was written, origin/main is fetched")
    assert "commit FILE --supersede" in err[1] and "Settling a conflict" in err[1]
    assert "refs/remotes" not in r.stderr and head(b) == mine
    before = snapshot(b)
    r = run("pull", cwd=b)
    assert r.exit_code == 1 and "'Apple' on origin/main" in r.stderr
    assert snapshot(b) == before
    # the README's two ways out (Settling a conflict): take origin/main's target here ...
    theirs = copy_repo(b, tmp_path / "theirs")
    ok("commit", fa, "--supersede", cwd=theirs)
    merged = last_line(ok("pull", cwd=theirs))
    with Repository.open(theirs) as r:
        assert r.get_commit(merged).parents[1] == pushed
        assert {f.request.target_new for f in r.facts_at(merged)} >= {"Apple"}
        assert "Sony" not in {f.request.target_new for f in r.facts_at(merged)}
    # ... or keep this side's: written on a branch made at origin/main, merged, pushed
    ok("branch", "settle", "origin/main", cwd=b)
    ok("switch", "settle", cwd=b)
    ok("commit", fb, "--supersede", cwd=b)
    ok("switch", "main", cwd=b)
    ok("merge", "settle", cwd=b)
    ok("push", cwd=b)
    assert "Fast-forward" in ok("pull", cwd=a).stdout
    with Repository.open(a) as r:
        live = {f.request.target_new for f in r.facts_at(r.head().commit)}
    assert "Sony" in live and "Apple" not in live


def test_a_fetch_marks_a_branch_rewritten_there_as_forced(origin, clones):
    """A teammate's push --force (a reset, a squash) reaches the others' fetch as git shows
    it, '+ OLD...NEW (forced update)', not as 'OLD..NEW', which reads as a fast-forward and
    invites a pull that merges the dropped commits back."""
    _, _, ids = origin
    a, b = clones
    ok("reset", "HEAD~1", cwd=a)
    ok("push", "--force", cwd=a)
    out = ok("fetch", cwd=b).stdout.splitlines()
    assert f" + {ids[2][:12] + '...' + ids[1][:12]:<26} {'main':<12} -> origin/main  " \
           "(forced update)" in out
    ok("reset", ids[2], cwd=a)  # back: a fast-forward there, 'OLD..NEW' as before
    ok("push", cwd=a)
    assert f"   {ids[1][:12] + '..' + ids[2][:12]:<26} {'main':<12} -> origin/main" in \
        ok("fetch", cwd=b).stdout.splitlines()
    ok("reset", "HEAD~2", cwd=a)
    ok("push", "--force", cwd=a)
    d = json.loads(ok("fetch", "--json", cwd=b).stdout)
    assert d["updates"] == [{"branch": "main", "old": ids[2], "new": ids[0], "forced": True}]


def test_a_pull_onto_a_new_repository_takes_the_settings_a_clone_takes(base, tmp_path,
                                                                      origin):
    """init, remote add, pull (git's other way to start from a remote) kept init's settings
    for the architecture: the next commit edited other layers with another λ than the
    team's history, silently. It now takes those a clone takes, and says so."""
    _, url, ids = origin
    fresh, cloned = tmp_path / "fresh", tmp_path / "cloned"
    ok("init", fresh, "--base", model_dir(base))
    ok("remote", "add", "origin", url, cwd=fresh)
    clone(base, url, cloned)
    with Repository.open(fresh) as f, Repository.open(cloned) as c:
        assert f.settings != c.settings and c.settings.mom2_weight == 20
    out = ok("pull", cwd=fresh).stdout.splitlines()
    assert f"editor settings taken from {ids[-1][:12]}, the newest update set pulled, as a " \
           "clone takes them (`memstore config` shows them)" in out and out[-1] == ids[-1]
    with Repository.open(fresh) as f, Repository.open(cloned) as c:
        assert f.settings == c.settings
    # a branch with commits keeps its own settings, as a fetch or a merge does
    ok("config", "mom2_weight", "30", cwd=cloned)
    assert json.loads(ok("pull", "--json", cwd=cloned).stdout)["settings_from"] is None
    with Repository.open(cloned) as c:
        assert c.settings.mom2_weight == 30


def test_statistics_move_only_with_with_stats(base, tmp_path, origin, monkeypatch):
    repo, url, _ = origin
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", "off")  # a clone computes what it lacks
    files_before = set(remote_files(url))
    assert not any(p.startswith("statistics/") for p in files_before)
    assert "Everything up-to-date" in ok("push", cwd=repo).stdout  # not asked: nothing moves
    assert set(remote_files(url)) == files_before
    said = ok("push", "--with-stats", cwd=repo).stdout  # the branch is up to date; its
    assert "Everything" not in said and "up-to-date; pushed the statistics: 2 objects" in said
    records = [p for p in remote_files(url) if p.startswith("statistics/")]  # statistics go
    assert len(records) == 2  # layers 1 and 2 of the one sample
    ok("commit", facts_files(base)["d"], cwd=repo)
    ok("push", "--with-stats", cwd=repo)
    assert [p for p in remote_files(url) if p.startswith("statistics/")] == records
    with Repository.open(repo) as r:
        want = {(s.id, s.layer, s.object) for s in r.statistics()}
    plain, full = tmp_path / "plain", tmp_path / "full"
    clone(base, url, plain)
    clone(base, url, full, "--with-stats")
    with Repository.open(full) as r:
        assert {(s.id, s.layer, s.object) for s in r.statistics()} == want
    with Repository.open(plain) as r:
        assert r.statistics() == []
    # a replay on the clone without statistics recomputes them (on the base weights, in the
    # middle of the replay), and gets the same weights as the clone that fetched them
    ok("revert", "HEAD~1", cwd=plain)
    ok("revert", "HEAD~1", cwd=full)
    with Repository.open(plain) as r:
        assert {(s.id, s.layer) for s in r.statistics()} == {(i, l) for i, l, _ in want}
    ok("export", "HEAD", tmp_path / "ep", cwd=plain)
    ok("export", "HEAD", tmp_path / "ef", cwd=full)
    assert checkpoint(tmp_path / "ep") == checkpoint(tmp_path / "ef")
    assert ok("fsck", cwd=plain).stdout.strip() == "ok"
    # a statistics tensor is verified on arrival like any object
    victim = min(want)[2]
    tamper(url, object_path(victim), b"not E[kk^T]")
    r = run("clone", url, tmp_path / "bad", "--base", model_dir(base), "--with-stats")
    assert r.exit_code == 1 and f"object {victim} from remote 'origin'" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_remote_commands_and_tracking_branches(base, tmp_path, origin):
    repo, url, _ = origin
    url = url.removeprefix("file://")  # recorded as an absolute path
    listed = ok("remote", "list", cwd=repo).stdout
    assert listed.split() == ["origin", url]
    assert json.loads(ok("remote", "--json", cwd=repo).stdout) == [{"name": "origin", "url": url}]
    for args in (("remote", "--json", "list"), ("remote", "list", "--json")):
        assert json.loads(ok(*args, cwd=repo).stdout) == [{"name": "origin", "url": url}]
    assert ok("fsck", "origin", cwd=repo).stdout.strip() == "ok"
    # the tracking branch is a root for gc, and a revision
    ok("branch", "side", cwd=repo)
    assert ok("log", "--oneline", "origin/main", cwd=repo).stdout.count("\n") == 3
    assert "(HEAD -> main, side, origin/main)" in ok("log", "--oneline", cwd=repo).stdout
    ok("remote", "add", "mirror", tmp_path / "mirror", cwd=repo)
    assert "pushed 3 commits" in ok("push", "mirror", "side", cwd=repo).stdout
    assert ok("log", "--oneline", "mirror/side", cwd=repo).stdout.count("\n") == 3
    ok("remote", "remove", "mirror", cwd=repo)
    # a store without compare-and-swap: the push says the remote is single-writer
    ok("remote", "add", "scratch", f"memory://{tmp_path.name}/shared", cwd=repo)
    assert "is single-writer" in ok("push", "scratch", cwd=repo).stderr
    r = run("log", "mirror/side", cwd=repo)
    assert r.exit_code == 2 and "unknown revision 'mirror/side'" in r.stderr
    assert ok("remote", cwd=repo).stdout.split() == ["origin", url, "scratch",
                                                     f"memory://{tmp_path.name}/shared"]


def test_a_team_shares_the_tag_it_serves(base, tmp_path, origin):
    """push --tags, push REMOTE TAG, fetch and clone bring tags, as git's; a remote tag at
    another commit is refused in one line (exit 1) unless --force, and a fetch never
    clobbers a tag here (one warning line)."""
    repo, url, ids = origin
    ok("tag", "v1", ids[1], cwd=repo)
    out = ok("push", "--tags", cwd=repo).stdout
    assert f" {'* [new tag]':<28} {'v1':<12} -> v1" in out.splitlines()
    assert ok("push", "--tags", cwd=repo).stdout.splitlines()[-1] == "Everything up-to-date"
    a = tmp_path / "a"
    cloned = json.loads(clone(base, url, a, "--json").stdout)
    assert cloned["tags"] == [{"tag": "v1", "new": ids[1], "refused": None, "here": None}]
    assert json.loads(ok("tag", "--json", cwd=a).stdout) == [{"name": "v1", "commit": ids[1]}]
    # a tag pushed by its name (no branch has it); pull's fetch lists it as it lists a branch
    ok("tag", "v2", cwd=repo)
    assert "* [new tag]" in ok("push", "origin", "v2", cwd=repo).stdout
    fetched = ok("pull", cwd=a).stdout
    assert f" * {'[new tag]':<26} {'v2':<12} -> v2" in fetched.splitlines()
    # v1 moved here: the remote's is another commit, refused for that tag alone
    ok("tag", "-d", "v1", cwd=repo)
    ok("tag", "v1", ids[2], cwd=repo)
    ok("tag", "v3", ids[0], cwd=repo)
    before = remote_files(url)
    r = run("push", "--tags", cwd=repo)
    error_line(r, 1, f"tag 'v1' already exists on origin naming {ids[1][:12]} (a tag does not "
                     "move: push --tags --force replaces it there; `memstore tag -d v1` and "
                     "`memstore fetch --tags` take the remote's here)")
    assert "* [new tag]" in r.stdout and "v3" in r.stdout  # the others are pushed
    assert set(remote_files(url)) - set(before) == {"refs/tags/v3"}
    pushed = json.loads(ok("push", "--tags", "--force", "--json", cwd=repo).stdout)
    assert [(t["tag"], t["old"], t["forced"]) for t in pushed["tags"] if not t["up_to_date"]] \
        == [("v1", ids[1], True)]
    # a's v1 names ids[1]: kept, one warning line; v3 is fetched
    got = ok("fetch", "--json", cwd=a)
    assert got.stderr.strip() == (f"warning: tag 'v1' of origin not fetched: would clobber "
                                  f"existing tag (it names {ids[1][:12]} here, {ids[2][:12]} "
                                  "there; `memstore fetch origin --tags --force` takes the "
                                  "remote's)")
    # ... and the way out it names takes the remote's v1
    assert " t [tag update]" in ok("fetch", "origin", "--tags", "--force", cwd=a).stdout
    assert json.loads(ok("tag", "--json", cwd=a).stdout)[0] == {"name": "v1", "commit": ids[2]}
    assert [(t["tag"], t["refused"]) for t in json.loads(got.stdout)["tags"]] == [
        ("v1", "would clobber existing tag"), ("v3", None)]
    assert ok("fsck", url).stdout.strip() == "ok"
    error_line(run("push", "--tags", "origin", "main", cwd=repo), 2, "--tags pushes every tag")
    error_line(run("push", "-u", "origin", "v2", cwd=repo), 2, "'v2' is a tag")
