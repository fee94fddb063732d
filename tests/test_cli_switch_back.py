"""git's `switch -` (where the last switch that moved HEAD came from: a branch, or a commit
detached), `switch -c NAME START --no-track` / `--track`, and which `switch x` wins where a
tag x and a remote's branch x both exist."""
from __future__ import annotations

import json
import sqlite3

import pytest
from cli_support import copy_repo, error_line, history_template, ok, run, snapshot


@pytest.fixture
def fetched(base, tmp_path):
    """The three-commit repository (C1..C3, main at C3) with branch topic at C2, both
    pushed to origin: remote-tracking branches origin/main and origin/topic."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("branch", "topic", ids[1], cwd=repo)
    for name in ("main", "topic"):
        ok("push", "origin", name, cwd=repo)
    return repo, ids


def switched(repo, *args: str) -> dict:
    return json.loads(ok("switch", *args, "--json", cwd=repo).stdout)


def test_switch_dash_goes_back_to_the_branch_or_commit_head_came_from(history):
    repo, (c1, c2, _) = history
    before = snapshot(repo)
    error_line(run("switch", "-", cwd=repo), 2, "no previous branch")  # as @{-1}'s: bad input
    error_line(run("switch", "@{-1}", cwd=repo), 2, "HEAD's reflog has 0 switches")
    assert snapshot(repo) == before
    ok("switch", "-c", "topic", c1, cwd=repo)
    assert ok("switch", "-", cwd=repo).stdout == "Switched to branch 'main'\n"
    assert ok("checkout", "-", cwd=repo).stdout == "Switched to branch 'topic'\n"
    # HEAD stays, and is logged as git's: `-` is where it stayed; git's wording
    assert ok("switch", "topic", cwd=repo).stdout == "Already on 'topic'\n"
    assert ok("switch", "-", cwd=repo).stdout == "Already on 'topic'\n"
    ok("switch", "main", cwd=repo)
    ok("switch", "--detach", c2, cwd=repo)
    assert switched(repo, "-")["branch"] == "main"
    d = switched(repo, "-")
    assert (d["branch"], d["commit"], d["detached"]) == (None, c2, True)
    assert switched(repo, "-")["branch"] == "main"
    ok("switch", "topic", cwd=repo)
    ok("switch", "main", cwd=repo)
    error_line(run("switch", "-c", "main", cwd=repo), 2, "already exists")  # records nothing
    assert switched(repo, "-")["branch"] == "topic"
    ok("switch", "-", cwd=repo)
    ok("branch", "-D", "topic", cwd=repo)
    before = snapshot(repo)
    error_line(run("switch", "-", cwd=repo), 2, "the previous branch, 'topic', has no "
               "commits here now")
    assert snapshot(repo) == before


def test_switch_dash_is_at_minus_1_as_git(history):
    """`switch -` is `switch @{-1}`, one rule read from HEAD's reflog, as git's (each case
    checked against git 2.39): a switch to the branch HEAD is on counts ("Already on"), a
    branch renamed since is gone under its old name, and expired entries are forgotten.
    (It was recorded apart and differed in all three.)"""
    repo, (c1, _, _) = history
    ok("switch", "-c", "topic", c1, cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("switch", "main", cwd=repo)  # logged: "checkout: moving from main to main"
    assert ok("switch", "-", cwd=repo).stdout == "Already on 'main'\n"
    ok("switch", "topic", cwd=repo)  # previous: main
    ok("branch", "-m", "main", "trunk", cwd=repo)
    before = snapshot(repo)
    error_line(run("switch", "-", cwd=repo), 2, "the previous branch, 'main', has no "
               "commits here now (deleted or renamed since")
    error_line(run("switch", "@{-1}", cwd=repo), 2, "it names branch 'main'")
    assert snapshot(repo) == before
    ok("switch", "trunk", cwd=repo)
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)
    before = snapshot(repo)
    error_line(run("switch", "-", cwd=repo), 2, "no previous branch")
    assert snapshot(repo) == before


def older_repository(repo, previous_head) -> None:
    """As an older memstore left it: the reflog empty (it kept none), the previous HEAD
    recorded apart in config row 'previous_head' as `previous_head` (JSON)."""
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("delete from reflog")
        con.execute("insert or replace into config (key, value) values ('previous_head', ?)",
                    [json.dumps(previous_head)])
    con.close()


def test_an_older_repositorys_record_is_read_until_a_switch_logs_one(history):
    """A repository from before the reflog: `switch -` reads its record while HEAD's log has
    no switch; the next switch deletes it, so an expired log does not bring it back."""
    repo, (c1, _, _) = history
    ok("branch", "topic", c1, cwd=repo)
    older_repository(repo, {"branch": "topic"})
    assert switched(repo, "-")["branch"] == "topic"
    assert sql_rows(repo, "select * from config where key = 'previous_head'") == []
    assert switched(repo, "-")["branch"] == "main"
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)
    error_line(run("switch", "-", cwd=repo), 2, "no previous branch")
    older_repository(repo, {"commit": c1})  # detached
    d = switched(repo, "-")
    assert (d["branch"], d["commit"], d["detached"]) == (None, c1, True)


def sql_rows(repo, statement: str) -> list:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    try:
        return con.execute(statement).fetchall()
    finally:
        con.close()


def test_switch_dash_to_the_branch_head_is_on_says_already_on(history):
    repo, (c1, _, _) = history
    ok("switch", "-c", "topic", c1, cwd=repo)  # previous: main
    ok("branch", "-D", "main", cwd=repo)
    ok("branch", "-m", "topic", "main", cwd=repo)  # HEAD on main, previous main
    assert ok("switch", "-", cwd=repo).stdout == "Already on 'main'\n"
    assert ok("switch", "main", cwd=repo).stdout == "Already on 'main'\n"
    assert ok("switch", "-c", "other", cwd=repo).stdout == "Switched to a new branch 'other'\n"


def malformed_previous_head(repo, c1: str) -> None:
    """On branch topic, an older repository's record of the previous HEAD set by hand to
    JSON that is no previous HEAD (a branch name git forbids)."""
    ok("switch", "-c", "topic", c1, cwd=repo)
    older_repository(repo, {"branch": "a..b"})


def test_a_damaged_previous_head_is_one_line_and_fsck_names_it(history):
    repo, (c1, _, _) = history
    malformed_previous_head(repo, c1)
    before = snapshot(repo)
    error_line(run("switch", "-", cwd=repo), 1, "the previous HEAD (config row "
               "'previous_head') is malformed")
    assert snapshot(repo) == before
    r = run("fsck", cwd=repo)
    assert r.exit_code != 0 and "config: the previous HEAD" in r.output
    ok("switch", "main", cwd=repo)  # a switch that moves HEAD records a sound one
    assert switched(repo, "-")["branch"] == "topic"


def test_switch_c_no_track_makes_no_upstream_and_track_needs_a_remote_branch(fetched):
    repo, (c1, _, c3) = fetched
    r = ok("switch", "-c", "loose", "--no-track", "origin/topic", cwd=repo)
    assert r.stdout == "Switched to a new branch 'loose'\n"
    d = switched(repo, "-c", "tracked", "--track", "origin/main")
    assert (d["commit"], d["upstream"]) == (c3, "origin/main")
    ups = {b["name"]: b["upstream"]
           for b in json.loads(ok("branch", "-vv", "--json", cwd=repo).stdout)}
    assert (ups["loose"], ups["tracked"]) == (None, "origin/main")
    before = snapshot(repo)
    error_line(run("switch", "-c", "x", "--track", c1, cwd=repo), 2, "--track needs a START "
               "that is a remote-tracking branch")
    error_line(run("switch", "--no-track", "main", cwd=repo), 2, "missing branch name; try -c")
    error_line(run("switch", "-c", "y", "--track", "--no-track", "origin/main", cwd=repo), 2,
               "cannot be used together")
    assert snapshot(repo) == before


def test_switch_track_origin_x_makes_x_tracking_it_as_git_checkout_track(fetched):
    """git 2.39's `switch --track origin/topic` (`checkout --track origin/topic`, a team's
    daily way onto a teammate's branch) makes topic at origin/topic tracking it and
    switches there; memstore refused it ('--track goes with -c'). A NAME that is no
    remote-tracking branch is refused in git's words, nothing changed; so is a branch
    that exists (git's 'a branch named ... already exists')."""
    repo, (c1, c2, _) = fetched
    ok("branch", "-D", "topic", cwd=repo)
    r = ok("switch", "--track", "origin/topic", cwd=repo)
    assert r.stdout.splitlines() == ["branch 'topic' set up to track 'origin/topic'.",
                                     "Switched to a new branch 'topic'"]
    ok("switch", "main", cwd=repo)
    ok("branch", "-D", "topic", cwd=repo)
    d = switched(repo, "--track", "remotes/origin/topic")  # as branch -a shows it
    assert (d["branch"], d["commit"], d["created"], d["upstream"]) == (
        "topic", c2, True, "origin/topic")
    ok("tag", "v1", c1, cwd=repo)
    before = snapshot(repo)
    for name in ("main", "v1", c1):
        error_line(run("switch", "--track", name, cwd=repo), 2, "missing branch name; try -c")
    error_line(run("switch", "--track", "origin/topic", cwd=repo), 2, "already exists")
    assert snapshot(repo) == before


def test_switch_track_names_the_branch_by_git_s_rule_not_by_what_name_resolves_to(fetched):
    """git 2.39.5 names the branch of `switch --track NAME` (and --no-track) by NAME's
    text, after refs/, remotes/ and the first '/': `--track origin` is 'missing branch
    name; try -c' and `--track origin/HEAD` "'HEAD' is not a valid branch name", where
    memstore made main at origin/main (origin/HEAD's branch); `--track origin/nope`, a
    branch origin lacks: 'invalid reference' (memstore: 'missing branch name'); and
    `--no-track origin/topic` makes topic with no upstream (memstore refused it)."""
    repo, (_, c2, _) = fetched
    ok("remote", "set-head", "origin", "main", cwd=repo)
    ok("branch", "-m", "main", "trunk", cwd=repo)  # no main: what origin/HEAD would make
    ok("branch", "-D", "topic", cwd=repo)
    before = snapshot(repo)
    error_line(run("switch", "--track", "origin", cwd=repo), 2, "missing branch name; try -c")
    error_line(run("switch", "--track", "origin/HEAD", cwd=repo), 2,
               "invalid branch name 'HEAD'")
    error_line(run("switch", "--track", "origin/nope", cwd=repo), 2,
               "the requested upstream branch 'origin/nope' does not exist: fetch origin first")
    error_line(run("switch", "--track", "nosuch/x", cwd=repo), 2,
               "cannot track 'nosuch/x': --track needs a START that is a remote-tracking")
    error_line(run("switch", "--no-track", "origin/nope", cwd=repo), 2,
               "unknown revision 'origin/nope'")
    assert snapshot(repo) == before
    d = switched(repo, "--no-track", "origin/topic")
    assert (d["branch"], d["commit"], d["created"], d["upstream"]) == ("topic", c2, True, None)
    ok("switch", "trunk", cwd=repo)
    d = switched(repo, "--track", "refs/remotes/origin/main")
    assert (d["branch"], d["created"], d["upstream"]) == ("main", True, "origin/main")


def test_a_tag_x_wins_over_a_remote_branch_x_as_git_checkout(fetched):
    """`switch topic` with tag topic and origin/topic, no branch topic: detached at the tag,
    as `git checkout topic` (the README's promise for a revision that is no branch; git's
    switch refuses the tag without --detach, and makes no branch from origin/topic)."""
    repo, (c1, _, _) = fetched
    ok("branch", "-D", "topic", cwd=repo)
    ok("tag", "topic", c1, cwd=repo)
    d = switched(repo, "topic")
    assert (d["branch"], d["commit"], d["created"]) == (None, c1, False)


def test_fsck_repair_drops_a_malformed_previous_head_and_says_so(history):
    """A previous_head row that is JSON but not a previous HEAD: fsck --repair copied it
    from the readable index as it was, and the fsck after it failed (exit 1, no way out
    but editing the row by hand). Repair drops it, saying `switch -` forgets."""
    repo, (c1, _, _) = history
    malformed_previous_head(repo, c1)
    refs = snapshot(repo)["rows"]["refs"]
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 0 and r.stdout == "ok\n", r.output
    said = [x for x in r.stderr.splitlines() if "previous_head" in x]
    assert len(said) == 1 and "dropped" in said[0] and "switch -" in said[0], r.stderr
    error_line(run("switch", "-", cwd=repo), 2, "no previous branch")
    assert ok("fsck", cwd=repo).stdout == "ok\n"
    assert snapshot(repo)["rows"]["refs"] == refs  # HEAD on topic, the branches kept
