"""A branch's upstream, as git's branch.NAME.remote/.merge: recorded by `push -u` and
`branch --set-upstream-to`, forgotten by `branch --unset-upstream`, carried by `branch -m`,
dropped by `branch -d` and `remote remove`; `pull`, `push`, `fetch` and `status` with no
remote named use it; `clone` records its branch's, as git's does. A fork workflow: two
remotes, neither named origin."""
from __future__ import annotations

import json
import sqlite3

from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    history_template,
    model_dir,
    ok,
    run,
    snapshot,
)
from remote_support import remote_files

from memstore.store.repository import Repository


def setup(base, tmp_path, name="repo"):
    """A repository with three commits and two remotes, fork and team (folders)."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / name)
    for remote in ("fork", "team"):
        ok("remote", "add", remote, tmp_path / remote, cwd=repo)
    return repo, ids


def upstream(repo):
    return json.loads(ok("status", "--json", cwd=repo).stdout)["upstream"]


def head(repo) -> str:
    with Repository.open(repo) as r:
        return r.head().commit


def snapshotted(repo) -> bool:
    """fsck finds the refs and config in an up-to-date snapshot (the copy a lost index is
    rebuilt from), so each upstream write recorded one."""
    return ok("fsck", cwd=repo).stdout.strip() == "ok"


def recorded(repo):
    with Repository.open(repo) as r:
        return r.get_config("upstreams")


def sql(repo, statement: str, *args) -> None:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute(statement, args)
    con.close()


def test_push_u_records_the_upstream_that_pull_push_fetch_and_status_use(base, tmp_path):
    repo, ids = setup(base, tmp_path)
    assert upstream(repo) is None  # several remotes, none 'origin': no default
    error_line(run("push", cwd=repo), 2, "none is 'origin': name the remote")
    before = snapshot(repo)  # pull finds none as status and rebase do, and says it as rebase
    no_upstream = ("branch 'main' has no upstream: {}, or set one with `memstore branch "
                   "--set-upstream-to REMOTE/BRANCH`")
    error_line(run("pull", cwd=repo), 2, no_upstream.format(
        "name the remote and branch (`memstore pull REMOTE BRANCH`)"))
    error_line(run("rebase", cwd=repo), 2, no_upstream.format("name UPSTREAM"))
    assert snapshot(repo) == before
    out = ok("push", "-u", "team", cwd=repo).stdout
    assert "branch 'main' set up to track 'team/main'." in out
    assert recorded(repo) == {"main": {"remote": "team", "merge": "main"}} and snapshotted(repo)
    assert "up to date with 'team/main'" in ok("status", cwd=repo).stdout
    ok("reset", "HEAD~1", cwd=repo)
    assert (upstream(repo)["name"], upstream(repo)["behind"], upstream(repo)["gone"]) == \
        ("team/main", 1, False)
    assert f"From {tmp_path / 'team'}" in ok("fetch", cwd=repo).stdout
    ok("pull", cwd=repo)  # team's main, a fast-forward
    assert head(repo) == ids[2]
    out = ok("push", cwd=repo).stdout
    assert f"To {tmp_path / 'team'}" in out and "Everything up-to-date" in out
    assert not (tmp_path / "fork").exists()  # nothing went to the other remote
    # an explicit remote is used as before: the branch of the same name there
    assert "[new branch]" in ok("push", "fork", cwd=repo).stdout
    assert upstream(repo)["name"] == "team/main"
    d = json.loads(ok("push", "-u", "fork", "--json", cwd=repo).stdout)
    assert (d["remote"], d["upstream_set"]) == ("fork", True)
    assert upstream(repo)["name"] == "fork/main"


def test_a_refused_push_records_no_upstream(base, tmp_path):
    repo, _ = setup(base, tmp_path)
    other = copy_repo(repo, tmp_path / "other")
    ok("push", "team", cwd=repo)
    ok("reset", "HEAD~2", cwd=other)
    before = snapshot(other)
    r = run("push", "-u", "team", cwd=other)
    assert r.exit_code == 1 and "is behind team/main by 2 commit(s)" in r.stderr
    assert recorded(other) is None and snapshot(other) == before


def test_branch_set_upstream_to_and_unset_upstream(base, tmp_path):
    repo, _ = setup(base, tmp_path)
    ok("push", "team", cwd=repo)
    assert upstream(repo) is None
    before = snapshot(repo)
    for args, says in ((["team/nosuch"], ("the requested upstream branch 'team/nosuch' does "
                                          "not exist: fetch team first")),  # git's words, then
                       (["nosuch/main"], "no remote 'nosuch'"),
                       (["main"], "invalid upstream 'main': give REMOTE/BRANCH"),
                       (["team/main", "nosuch"], "no branch 'nosuch'")):
        error_line(run("branch", "--set-upstream-to", *args, cwd=repo), 2, says)
    error_line(run("branch", "-d", "main", "--set-upstream-to", "team/main", cwd=repo), 2,
               "take one branch NAME and no other option")
    error_line(run("branch", "--unset-upstream", cwd=repo), 2,
               "branch 'main' has no upstream information")  # git's "Branch 'main' has ..."
    assert snapshot(repo) == before
    d = json.loads(ok("branch", "--set-upstream-to", "team/main", "--json", cwd=repo).stdout)
    assert d == {"branch": "main", "upstream": "team/main"}
    assert upstream(repo)["ahead"] == 0 and snapshotted(repo)
    assert "has no upstream now" in ok("branch", "--unset-upstream", cwd=repo).stdout
    assert upstream(repo) is None and recorded(repo) == {}
    ok("branch", "side", cwd=repo)
    ok("branch", "--set-upstream-to=team/main", "side", cwd=repo)
    assert recorded(repo) == {"side": {"remote": "team", "merge": "main"}}


def test_set_upstream_to_on_a_branch_with_no_commits_is_refused_as_git_s(base, tmp_path):
    """git 2.39's `branch -u origin/x` on an unborn branch: 'fatal: No commit on branch
    'main' yet.' memstore recorded it, which `branch -vv` (--json too) and `status` then
    listed nowhere while `pull` used it. Once the branch has commits it is set."""
    repo, ids = setup(base, tmp_path)
    ok("push", "team", cwd=repo)
    empty = copy_repo(empty_template(base), tmp_path / "empty")
    ok("remote", "add", "team", tmp_path / "team", cwd=empty)
    ok("fetch", "team", cwd=empty)
    before = snapshot(empty)
    for args in (["-u", "team/main"], ["--set-upstream-to=team/main", "main"]):
        error_line(run("branch", *args, cwd=empty), 2, "no commit on branch 'main' yet: "
                   "commit, or start it from a remote's branch (`memstore pull REMOTE BRANCH`)")
    assert snapshot(empty) == before and recorded(empty) is None
    ok("pull", "team", "main", cwd=empty)
    ok("branch", "-u", "team/main", cwd=empty)
    row = json.loads(ok("branch", "-vv", "--json", cwd=empty).stdout)[0]
    assert (row["commit"], row["upstream"]) == (ids[2], "team/main")


def test_rename_carries_the_upstream_delete_and_remote_remove_drop_it(base, tmp_path):
    repo, ids = setup(base, tmp_path)
    ok("push", "-u", "team", cwd=repo)
    ok("branch", "-m", "work", cwd=repo)
    assert recorded(repo) == {"work": {"remote": "team", "merge": "main"}} and snapshotted(repo)
    assert upstream(repo)["name"] == "team/main"
    ok("reset", "HEAD~1", cwd=repo)
    ok("pull", cwd=repo)  # team/main, though the branch is named work now
    assert head(repo) == ids[2]
    before = remote_files(str(tmp_path / "team"))
    error_line(run("push", cwd=repo), 2, "the upstream of branch 'work' is 'team/main', "
                                         "another name")
    assert remote_files(str(tmp_path / "team")) == before
    ok("branch", "side", cwd=repo)
    ok("branch", "--set-upstream-to", "team/main", "side", cwd=repo)
    ok("branch", "-d", "side", cwd=repo)
    assert set(recorded(repo)) == {"work"} and snapshotted(repo)
    ok("branch", "side", cwd=repo)  # a new branch of that name has no upstream
    ok("remote", "remove", "team", cwd=repo)
    assert recorded(repo) == {} and snapshotted(repo)
    assert upstream(repo) is None


def test_push_u_while_the_remote_is_removed_records_no_upstream(base, tmp_path, monkeypatch):
    """`remote remove team` landing while `push -u team` ran: the push then recorded the
    tracking branch and the upstream of a remote that was no longer there (an upstream
    that push, pull and fetch refuse). Now neither is recorded, and push says so."""
    from memstore.remote import push, remotes

    repo, _ = setup(base, tmp_path)
    track = push._track

    def removed_first(r, name, *rest):  # as another process's `remote remove`
        remotes.remove(r, name)
        track(r, name, *rest)

    monkeypatch.setattr(push, "_track", removed_first)
    r = run("push", "-u", "team", cwd=repo)
    said, error = r.stderr.splitlines()  # the push made the remote: said before the error
    assert r.exit_code == 1 and said.startswith("created a new remote at "), r.stderr
    assert error.startswith("memstore: error: pushed main to team, but remote 'team' is gone "
                            "(removed while this command ran?): no upstream recorded"), error
    assert not recorded(repo)
    with Repository.open(repo) as r:
        assert r.refs.list("refs/remotes/") == {}
    assert snapshotted(repo)


def test_a_damaged_or_stale_upstream_is_one_line(base, tmp_path):
    repo, _ = setup(base, tmp_path)
    ok("push", "-u", "team", cwd=repo)
    # a remote gone from the config by hand: status says so, the commands refuse
    sql(repo, "update config set value = ? where key = 'upstreams'",
        json.dumps({"main": {"remote": "gone", "merge": "main"}}))
    before = snapshot(repo)
    assert upstream(repo) == {"name": "gone/main", "commit": None, "ahead": None,
                              "behind": None, "gone": True}
    assert "based on 'gone/main', but the upstream is gone" in ok("status", cwd=repo).stdout
    for command in ("push", "pull", "fetch", "rebase"):  # (rebase: not 'gone, fetch gone')
        error_line(run(command, cwd=repo), 1, "the upstream of branch 'main' is 'gone/main', "
                                              "but there is no remote 'gone'")
    assert snapshot(repo) == before
    # the remote-tracking branch gone
    ok("branch", "--set-upstream-to", "team/main", cwd=repo)
    sql(repo, "delete from refs where name = 'refs/remotes/team/main'")
    assert upstream(repo)["gone"] is True
    # malformed: an entry, then the whole row
    for value, says in (({"main": {"remote": 5, "merge": "main"}},
                         "the upstream of branch 'main' is malformed"),
                        ({"main": "team/main"}, "the upstream of branch 'main' is malformed"),
                        ([], "upstreams (config row 'upstreams') are malformed")):
        sql(repo, "update config set value = ? where key = 'upstreams'", json.dumps(value))
        r = ok("status", cwd=repo)
        assert r.stderr.strip() == f"warning: {error_line(run('push', cwd=repo), 1, says)}" \
            .replace("memstore: error: ", "")
        error_line(run("pull", cwd=repo), 1, says)
        r = run("fsck", cwd=repo)
        assert r.exit_code == 1 and any(line.startswith("config: ") and says in line
                                        for line in r.stdout.splitlines()), r.output
        ok("branch", "--unset-upstream", cwd=repo)
        assert upstream(repo) is None


def test_clone_records_the_upstream_of_the_branch_it_checks_out(base, tmp_path):
    repo, ids = setup(base, tmp_path)
    ok("push", "team", cwd=repo)
    ok("branch", "side", ids[0], cwd=repo)
    ok("push", "team", "side", cwd=repo)
    copy = tmp_path / "copy"
    ok("clone", tmp_path / "team", copy, "--base", model_dir(base))
    assert recorded(copy) == {"main": {"remote": "origin", "merge": "main"}} and snapshotted(copy)
    # the recorded setting, not the default rule: renamed, the branch still follows
    # origin/main (the rule would look for origin/work), and pull takes it from there
    ok("branch", "-m", "work", cwd=copy)
    ok("remote", "add", "fork", tmp_path / "fork", cwd=copy)
    assert upstream(copy) == {"name": "origin/main", "commit": ids[2], "ahead": 0,
                              "behind": 0, "gone": False}
    assert "up to date with 'origin/main'" in ok("status", cwd=copy).stdout
    ok("reset", "HEAD~2", cwd=copy)
    ok("pull", cwd=copy)
    assert head(copy) == ids[2]
    assert "has no upstream now" in ok("branch", "--unset-upstream", cwd=copy).stdout


def test_clone_of_a_remote_with_no_branch_records_the_upstream_as_git_does(base, tmp_path):
    """git's clone of an empty repository records branch.main.remote/.merge all the same:
    the branch, once born or pulled, follows origin/main."""
    repo, ids = setup(base, tmp_path)
    ok("tag", "v1", cwd=repo)
    ok("push", "--tags", "team", cwd=repo)  # the remote holds a tag and no branch
    copy = tmp_path / "copy"
    out = ok("clone", tmp_path / "team", copy, "--base", model_dir(base)).stdout
    assert "(no commits yet)" in out and "1 tag: v1" in out.splitlines()
    assert recorded(copy) == {"main": {"remote": "origin", "merge": "main"}} and snapshotted(copy)
    assert upstream(copy) is None  # no commits yet: none shown, as git's status
    # a pull before anyone pushed main: not 'deleted there', which it never was, and no
    # push of a branch with no commits
    error_line(run("pull", cwd=copy), 2, "(the upstream of 'main', origin/main, is not on the "
               "remote: deleted there, or never pushed there (a clone of a remote with no "
               "branches records it before the first push); `memstore branch "
               "--unset-upstream` forgets it)")
    ok("push", "team", cwd=repo)
    ok("pull", cwd=copy)  # the recorded upstream: origin/main
    assert head(copy) == ids[2]
    assert upstream(copy) == {"name": "origin/main", "commit": ids[2], "ahead": 0,
                              "behind": 0, "gone": False}


def test_a_pull_whose_upstream_was_deleted_there_names_a_push_that_restores_it(base, tmp_path):
    """A pull whose upstream (team/topic, of local branch work) a teammate deleted there
    suggested `push -u`, which pushes work as team/work: the line names that push and what
    it does. The remote-tracking branch still here says it was there."""
    repo, ids = setup(base, tmp_path)
    ok("push", "team", "main", cwd=repo)
    ok("branch", "topic", ids[1], cwd=repo)
    ok("push", "team", "topic", cwd=repo)
    ok("switch", "-c", "work", "topic", cwd=repo)
    ok("branch", "--set-upstream-to", "team/topic", cwd=repo)
    mate = copy_repo(repo, tmp_path / "mate")
    ok("push", "--delete", "team", "topic", cwd=mate)
    before = snapshot(repo)
    error_line(run("pull", cwd=repo), 2, "remote 'team' has no branch 'topic' (the upstream "
               "of 'work', team/topic, is not on the remote: deleted there since the last "
               "fetch or push; `memstore branch --unset-upstream` forgets it, `memstore push "
               "-u team work` pushes this branch as team/work and makes that its upstream)")
    assert snapshot(repo) == before
    ok("push", "-u", "team", "work", cwd=repo)  # the way it names does what it says
    assert upstream(repo)["name"] == "team/work"
    assert "Already up to date" in ok("pull", cwd=repo).stdout


def test_fetch_while_the_remote_is_removed_records_nothing(base, tmp_path, monkeypatch):
    """`remote remove team` landing while `fetch team` downloaded (before it took the
    lock): the fetch wrote team's tracking branches after the remote and its tracking
    branches were gone, left behind naming no remote. Now it records nothing and says so."""
    from memstore.remote import fetch, remotes

    repo, _ = setup(base, tmp_path)
    ok("push", "team", cwd=repo)
    new_commits = fetch.new_commits

    def removed_first(r, *args, **kwargs):  # as another process's `remote remove`
        remotes.remove(r, "team")
        return new_commits(r, *args, **kwargs)

    monkeypatch.setattr(fetch, "new_commits", removed_first)
    error_line(run("fetch", "team", cwd=repo), 1,
               "remote 'team' is gone (removed while this command ran?): nothing fetched")
    with Repository.open(repo) as r:
        assert r.refs.list("refs/remotes/") == {}


def test_set_url_keeps_the_tracking_branches_and_upstreams(base, tmp_path):
    """The shared folder moved: `remote set-url` (git's) records the new URL and keeps
    team/main and main's upstream, which `remote remove` + `add` would drop; `remote -v`,
    git's habit, lists as `remote` does."""
    repo, ids = setup(base, tmp_path)
    ok("push", "-u", "team", cwd=repo)
    (tmp_path / "team").rename(tmp_path / "moved")
    assert "no such folder" in run("fetch", cwd=repo).stderr
    out = ok("remote", "set-url", "team", "../moved", cwd=repo).stdout  # made absolute
    assert out == f"Remote team: {tmp_path / 'team'} -> {tmp_path / 'moved'}\n"
    assert recorded(repo) == {"main": {"remote": "team", "merge": "main"}} and snapshotted(repo)
    assert upstream(repo) == {"name": "team/main", "commit": ids[-1], "ahead": 0, "behind": 0,
                              "gone": False}
    assert ok("remote", "-v", cwd=repo).stdout == ok("remote", cwd=repo).stdout == \
        f"fork\t{tmp_path / 'fork'}\nteam\t{tmp_path / 'moved'}\n"
    assert "fetched 0 objects" in ok("fetch", cwd=repo).stdout
    before = snapshot(repo)
    error_line(run("remote", "set-url", "nope", "/x", cwd=repo), 2,
               "no remote 'nope'; known: fork, team")
    error_line(run("remote", "set-url", "team", "foo://x", cwd=repo), 2,
               "unknown URL scheme 'foo'")
    assert snapshot(repo) == before


def test_pull_of_the_upstreams_remote_alone_merges_the_upstreams_branch(tmp_path):
    """git's: `pull REMOTE`, no BRANCH, where REMOTE is the current branch's upstream's
    remote, merges the upstream's branch (branch.NAME.merge), as `pull` does; it merged
    REMOTE's branch of the current one's name, which it said it lacked. Another remote
    gives its branch of that name, as before."""
    from remote_support import make_repo
    from test_store_support import commit_on_head

    from memstore.remote import remotes
    from memstore.remote.fetch import fetch
    from memstore.remote.push import push

    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    try:
        commit_on_head(a, seed=1)
        a.create_branch("trunk")
        push(a, "origin", "trunk")
        remotes.set_upstream(a, "main", "origin/trunk")
        remotes.add(a, "other", url)  # the same store, under another name
        fetch(b)
        b.create_branch("trunk", "origin/trunk")
        b.switch("trunk")
        theirs = commit_on_head(b, seed=2).id
        push(b, "origin", "trunk")
    finally:
        a.close()
        b.close()
    here = tmp_path / "a"
    before = snapshot(here)
    error_line(run("pull", "other", cwd=here), 2, "remote 'other' has no branch 'main'")
    assert snapshot(here) == before
    assert "Fast-forward" in ok("pull", "origin", cwd=here).stdout
    assert head(here) == theirs



def test_pull_of_a_remote_the_upstream_is_not_on_ignores_an_upstream_on_a_gone_remote(
        tmp_path):
    """`pull REMOTE` reads the upstream for its branch only where the upstream is on REMOTE
    (else REMOTE's branch of the current one's name, the README's rule). An upstream left
    naming a remote that is gone (config written by hand) refused `pull origin` in one
    line, exit 1, as `pull` with no REMOTE refuses it, where `push origin` and `fetch
    origin` go on and git's pull would not look at it. A malformed one is still refused:
    it cannot say which remote it is on."""
    from remote_support import make_repo
    from test_store_support import commit_on_head

    from memstore.remote.push import push
    from memstore.store import upstreams

    url = str(tmp_path / "remote")
    a = make_repo(tmp_path / "a", url)
    try:
        commit_on_head(a, seed=1)
        push(a)
        a.set_config(upstreams.CONFIG_KEY, {"main": {"remote": "gone", "merge": "trunk"}})
    finally:
        a.close()
    here = tmp_path / "a"
    error_line(run("pull", cwd=here), 1, "is 'gone/trunk', but there is no remote 'gone'")
    assert "Already up to date." in ok("pull", "origin", cwd=here).stdout.splitlines()
    with Repository.open(here) as a:
        a.set_config(upstreams.CONFIG_KEY, {"main": {"remote": 5}})
    error_line(run("pull", "origin", cwd=here), 1, "the upstream of branch 'main' is malformed")
