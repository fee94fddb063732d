"""The remote group's housekeeping, as git's: `remote rename` (tracking branches and
upstreams follow), `remote get-url`, `remote prune` (fetch's prune without the fetch) and
`fetch --all`; and remotes whose names differ only where SQL's LIKE is loose (my_fork and
my-fork, origin and Origin), which saw each other's remote-tracking branches."""
from __future__ import annotations

import json
import sqlite3

from cli_support import copy_repo, error_line, history_template, ok, run, snapshot
from remote_support import remote_files, remove, tamper


def setup(base, tmp_path, remotes=("fork", "team")):
    """The three-commit repository, its main (C3) and topic (C2) pushed to each remote
    (folders); main's upstream fork/main."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("branch", "topic", "HEAD~1", cwd=repo)
    for r in remotes:
        ok("remote", "add", r, tmp_path / r, cwd=repo)
        ok("push", r, "main", cwd=repo)
        ok("push", r, "topic", cwd=repo)
    ok("branch", "--set-upstream-to", f"{remotes[0]}/main", cwd=repo)
    return repo, ids


def tracking(repo) -> dict[str, str]:
    return {b["name"]: b["commit"] for b in json.loads(ok("branch", "-r", "--json",
                                                           cwd=repo).stdout)}


def test_remote_rename_moves_tracking_branches_and_upstreams(base, tmp_path):
    repo, ids = setup(base, tmp_path)
    r = json.loads(ok("remote", "rename", "fork", "mine", "--json", cwd=repo).stdout)
    assert r == {"renamed": "fork", "to": "mine", "url": str(tmp_path / "fork"),
                 "tracking": ["mine/main", "mine/topic"], "upstreams": ["main"]}
    assert tracking(repo) == {"mine/main": ids[2], "mine/topic": ids[1],
                              "team/main": ids[2], "team/topic": ids[1]}
    assert json.loads(ok("remote", "--json", cwd=repo).stdout) == [
        {"name": "mine", "url": str(tmp_path / "fork")},
        {"name": "team", "url": str(tmp_path / "team")}]
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["upstream"]["name"] == "mine/main"
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"  # the snapshot records the rename
    assert "Renamed remote team to t2 (2 remote-tracking branches, 0 upstreams moved)" in \
        ok("remote", "rename", "team", "t2", cwd=repo).stdout
    assert "Everything up-to-date" in ok("push", cwd=repo).stdout  # to mine/main


def test_remote_rename_refused_changes_nothing(base, tmp_path):
    repo, ids = setup(base, tmp_path)
    before = snapshot(repo)
    error_line(run("remote", "rename", "fork", "team", cwd=repo), 2,
               "remote 'team' already exists")
    error_line(run("remote", "rename", "nope", "x", cwd=repo), 2,
               "no remote 'nope'; known: fork, team")
    error_line(run("remote", "rename", "fork", "a/b", cwd=repo), 2, "contains '/'")
    error_line(run("remote", "rename", "fork", "a..b", cwd=repo), 2, "invalid remote name")
    ok("branch", "x/y", cwd=repo)
    mid = snapshot(repo)
    error_line(run("remote", "rename", "fork", "x", cwd=repo), 2,
               "branch 'x/y' would hide its branch 'y'")
    assert snapshot(repo) == mid and mid != before
    con = sqlite3.connect(repo / ".memstore" / "index.db")  # left by damage, no remote ghost
    with con:
        con.execute("insert into refs values ('refs/remotes/ghost/x', ?, null)", (ids[0],))
    con.close()
    mid = snapshot(repo)
    error_line(run("remote", "rename", "fork", "ghost", cwd=repo), 2,
               "remote-tracking branch ghost/x is already here")
    assert snapshot(repo) == mid


def test_remote_get_url(base, tmp_path):
    repo, _ = setup(base, tmp_path)
    assert ok("remote", "get-url", "team", cwd=repo).stdout == f"{tmp_path / 'team'}\n"
    error_line(run("remote", "get-url", "nope", cwd=repo), 2, "no remote 'nope'")
    for args in (("get-url", "main"), ("prune", "main")):  # not push's "remote comes first"
        line = error_line(run("remote", *args, cwd=repo), 2, "no remote 'main'; known: fork, team")
        assert "is a branch" not in line


def test_remote_prune_removes_what_is_gone_there_and_fetches_nothing(base, tmp_path):
    repo, ids = setup(base, tmp_path)
    url = str(tmp_path / "fork")
    remove(url, "refs/heads/topic")  # deleted there by someone else
    main = remote_files(url)["refs/heads/main"]
    tamper(url, "refs/heads/main", main.replace(ids[2].encode(), ids[0].encode()))
    before = snapshot(repo)
    dry = ok("remote", "prune", "-n", "fork", cwd=repo).stdout
    assert f" * [would prune] fork/topic  (was {ids[1][:12]})" in dry
    assert snapshot(repo) == before
    r = json.loads(ok("remote", "prune", "fork", "team", "--json", cwd=repo).stdout)
    assert r == [{"remote": "fork", "url": url, "dry_run": False,
                  "pruned": [{"branch": "topic", "old": ids[1]}]},
                 {"remote": "team", "url": str(tmp_path / "team"), "dry_run": False,
                  "pruned": []}]
    # fork/main is as the last fetch saw it: prune moves no branch, fetches nothing
    assert tracking(repo) == {"fork/main": ids[2], "team/main": ids[2], "team/topic": ids[1]}
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    error_line(run("remote", "prune", "team", "nope", cwd=repo), 2, "no remote 'nope'")


def test_fetch_all_fetches_every_remote_past_one_that_fails(base, tmp_path):
    repo, ids = setup(base, tmp_path)
    ok("remote", "add", "gone", tmp_path / "nowhere", cwd=repo)
    for r in ("fork", "team"):
        remove(str(tmp_path / r), "refs/heads/topic")
    r = run("fetch", "--all", cwd=repo)
    error_line(r, 1, "could not fetch gone: ")
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("Fetching")] == [
        "Fetching fork", "Fetching gone", "Fetching team"]
    assert tracking(repo) == {"fork/main": ids[2], "team/main": ids[2]}  # both pruned
    ok("remote", "remove", "gone", cwd=repo)
    out = json.loads(ok("fetch", "--all", "--json", cwd=repo).stdout)
    assert [(f["remote"], f["error"], f["updates"]) for f in out] == [
        ("fork", None, []), ("team", None, [])]
    error_line(run("fetch", "--all", "team", cwd=repo), 2, "--all fetches every remote")


def test_remotes_named_alike_keep_their_own_tracking_branches(base, tmp_path):
    """refs.list used LIKE: my_fork's branches were my-fork's too (and origin's Origin's), so
    fetching my_fork, which lacks topic, was refused trying to prune my-fork/topic."""
    repo, ids = setup(base, tmp_path, remotes=("my-fork", "Origin"))
    ok("remote", "add", "my_fork", tmp_path / "my_fork", cwd=repo)
    ok("push", "my_fork", "main", cwd=repo)
    ok("fetch", "my_fork", cwd=repo)
    ok("remote", "rename", "my_fork", "origin2", cwd=repo)
    ok("remote", "add", "origin", tmp_path / "origin", cwd=repo)
    ok("remote", "remove", "origin", cwd=repo)  # Origin's were origin's to delete
    assert tracking(repo) == {"Origin/main": ids[2], "Origin/topic": ids[1],
                              "my-fork/main": ids[2], "my-fork/topic": ids[1],
                              "origin2/main": ids[2]}


def test_fetch_and_prune_refuse_a_remote_renamed_onto_their_name_meanwhile(base, tmp_path,
                                                                             monkeypatch):
    """git's fork workflow, `remote rename team old` then `remote rename fork team`, landing
    while `fetch team` (or `remote prune team`) read team's old store: the fetch wrote that
    store's branches as fork's (team/x) and pruned fork's topic, which fork still has,
    since it checked only that a remote named team was still there. Now it refuses,
    nothing changed."""
    from memstore.remote import fetch, remotes
    from memstore.store.repository import Repository

    repo, ids = setup(base, tmp_path)
    remove(str(tmp_path / "team"), "refs/heads/topic")  # gone from team's store, not fork's
    ok("fetch", "fork", cwd=repo)

    def swapped(r):  # as another process's two renames
        remotes.rename(r, "team", "old")
        remotes.rename(r, "fork", "team")

    new_commits, connect = fetch.new_commits, fetch.connect

    def swapped_first(r, *args, **kwargs):
        swapped(r)
        return new_commits(r, *args, **kwargs)

    monkeypatch.setattr(fetch, "new_commits", swapped_first)
    keep = copy_repo(repo, tmp_path / "keep")
    error_line(run("fetch", "team", cwd=repo), 1, "remote 'team' now names ")
    assert tracking(repo) == {"old/main": ids[2], "old/topic": ids[1],
                              "team/main": ids[2], "team/topic": ids[1]}
    monkeypatch.setattr(fetch, "new_commits", new_commits)

    def swapped_on_connect(url, *args, **kwargs):
        with Repository.open(keep) as r:
            swapped(r)
        return connect(url, *args, **kwargs)

    monkeypatch.setattr(fetch, "connect", swapped_on_connect)
    error_line(run("remote", "prune", "team", cwd=keep), 1, "remote 'team' now names ")
    assert tracking(keep) == {"old/main": ids[2], "old/topic": ids[1],
                              "team/main": ids[2], "team/topic": ids[1]}


def test_push_and_push_delete_leave_a_remote_renamed_onto_their_name_meanwhile(
        base, tmp_path, monkeypatch):
    """The same renames landing while `push team topic2` or `push --delete team topic` ran:
    the push moved team/topic2 here and the delete removed team/topic, which are now
    fork's (its store lacks topic2 and still has topic). The push lands on the store it
    read; the remote-tracking branches of the remote now named team are left as they are."""
    from memstore.remote import push, push_delete, remotes

    repo, ids = setup(base, tmp_path)
    ok("branch", "topic2", ids[0], cwd=repo)
    track, untrack = push._track, push_delete._untrack

    def swapped_first(write):
        def swapped(r, *args):  # as another process's two renames
            remotes.rename(r, "team", "old")
            remotes.rename(r, "fork", "team")
            write(r, *args)
        return swapped

    monkeypatch.setattr(push, "_track", swapped_first(track))
    keep = copy_repo(repo, tmp_path / "keep")
    ok("push", "team", "topic2", cwd=repo)
    assert tracking(repo) == {"old/main": ids[2], "old/topic": ids[1],
                              "team/main": ids[2], "team/topic": ids[1]}
    assert "refs/heads/topic2" in remote_files(str(tmp_path / "team"))  # the store read
    monkeypatch.setattr(push_delete, "_untrack", swapped_first(untrack))
    ok("push", "--delete", "team", "topic", cwd=keep)
    assert "refs/heads/topic" not in remote_files(str(tmp_path / "team"))
    assert tracking(keep) == {"old/main": ids[2], "old/topic": ids[1],
                              "team/main": ids[2], "team/topic": ids[1]}
