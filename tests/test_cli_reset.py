"""`memstore reset REV`: the current branch (or a detached HEAD) moves to REV; the commits
it leaves that nothing else holds are warned about with the way back (gc removes them
once no reflog entry names them: tests/test_cli_reflog.py);
what cannot be done is one line with nothing changed."""
from __future__ import annotations

import json

from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    history_template,
    log_json,
    ok,
    run,
    snapshot,
)


def test_reset_moves_the_branch_and_says_how_to_go_back(base, tmp_path):
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1, c2, c3 = history_template(base)[1]
    ok("tag", "v2", c2, cwd=repo)
    r = ok("reset", "HEAD~2", "--json", cwd=repo)
    d = json.loads(r.stdout)
    assert (d["branch"], d["commit"], d["was"]) == ("main", c1, c3)
    assert d["left_behind"] == [c3]  # c2 is held by the tag
    assert f"`memstore reset {c3[:12]}` goes back" in r.stderr
    assert [e["id"] for e in log_json(repo)] == [c1]
    facts = json.loads(ok("blame", "--json", cwd=repo).stdout)
    assert sorted(f["subject"] for f in facts) == ["Danielle Darrieux", "Porsche 911"]
    assert ok("reset", c3, cwd=repo).stdout.startswith(f"HEAD is now at {c3[:12]} facts c")
    assert [e["id"] for e in log_json(repo)] == [c3, c2, c1]  # back, nothing lost
    ok("reset", c1, cwd=repo)
    assert "removed 0 commits" in ok("gc", cwd=repo).stdout  # the reflog keeps c3, as git's
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)
    assert "removed 1 commit" in ok("gc", cwd=repo).stdout  # c3; c2 is tagged
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    ok("switch", "--detach", "v2", cwd=repo)  # a detached HEAD moves too
    assert json.loads(ok("reset", c1, "--json", cwd=repo).stdout)["branch"] is None
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["head"] == c1


def test_what_reset_cannot_do_is_one_line_and_changes_nothing(base, tmp_path):
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    before = snapshot(repo)
    error_line(run("reset", "nosuch", cwd=repo), 2, "nosuch")
    # the base model's state is no commit: a branch cannot point to it
    error_line(run("reset", "base", cwd=repo), 2, "'base' names the base model's weights, "
               "not a commit")
    assert snapshot(repo) == before
    empty = copy_repo(empty_template(base), tmp_path / "empty")
    error_line(run("reset", "HEAD", cwd=empty), 2, "nothing to reset")


def test_status_says_where_the_branch_stands_against_its_remote_tracking_branch(base,
                                                                                  tmp_path):
    """As of the last fetch or push: up to date, ahead, behind (after a reset), diverged;
    nothing said without a remote or on a detached HEAD."""
    from cli_support import facts_files

    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1 = history_template(base)[1][0]

    def status():
        return json.loads(ok("status", "--json", cwd=repo).stdout)["upstream"]

    assert status() is None  # no remote
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    assert status() is None  # nothing fetched or pushed yet
    ok("push", cwd=repo)
    assert "Your branch is up to date with 'origin/main'." in ok("status", cwd=repo).stdout
    ok("commit", facts_files(base)["d"], cwd=repo)
    assert (status()["ahead"], status()["behind"]) == (1, 0)
    assert "ahead of 'origin/main' by 1 commit." in ok("status", cwd=repo).stdout
    ok("reset", c1, cwd=repo)
    assert (status()["ahead"], status()["behind"]) == (0, 2)
    assert "behind 'origin/main' by 2 commits (pull" in ok("status", cwd=repo).stdout
    ok("commit", facts_files(base)["e"], cwd=repo)
    assert (status()["ahead"], status()["behind"]) == (1, 2)
    assert "have diverged: 1 and 2 commits each" in ok("status", cwd=repo).stdout
    ok("switch", "--detach", "HEAD", cwd=repo)
    assert status() is None


def test_a_switch_while_reset_runs_moves_no_other_branch(base, tmp_path, monkeypatch):
    """Another process switching HEAD to a branch at the same commit between reset reading
    HEAD and moving it: reset moved that other branch (the compare-and-swap saw the commit
    it expected) and left the one it was run on."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1, c2, c3 = history_template(base)[1]
    _switch_to_a_new_branch_once_reset_resolves(repo, monkeypatch)
    d = json.loads(ok("reset", c2, "--json", cwd=repo).stdout)
    assert (d["branch"], d["commit"], d["was"]) == ("main", c2, c3)
    branches = {b["name"]: b["commit"] for b in json.loads(ok("branch", "--json",
                                                              cwd=repo).stdout)}
    assert branches == {"main": c2, "topic": c3}
    assert c1 in [e["id"] for e in log_json(repo)]


def test_a_switch_while_reset_runs_on_a_detached_head_moves_no_branch(base, tmp_path,
                                                                       monkeypatch):
    """HEAD detached when reset read it, and switched meanwhile by another process onto a
    branch at the same commit: reset moved that branch (it followed HEAD when it swapped).
    It is refused now, HEAD and every branch as the other process left them."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1, _, c3 = history_template(base)[1]
    ok("switch", "--detach", "HEAD", cwd=repo)
    _switch_to_a_new_branch_once_reset_resolves(repo, monkeypatch)
    error_line(run("reset", c1, cwd=repo), 1, "HEAD moved")
    branches = {b["name"]: b["commit"] for b in json.loads(ok("branch", "--json",
                                                              cwd=repo).stdout)}
    assert branches == {"main": c3, "topic": c3}
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["branch"] == "topic"


def test_an_unknown_revision_of_thousands_of_characters_is_quoted_short(base, tmp_path):
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    for rev in ("x" * 5000, "HEAD" + "~" * 5000, "a" * 4999 + "~2"):
        line = error_line(run("show", rev, cwd=repo), 2, "unknown revision")
        assert len(line) < 200 and "…" in line, line


def _switch_to_a_new_branch_once_reset_resolves(repo, monkeypatch) -> None:
    """As another process would: the first revision reset resolves, HEAD is switched onto
    a new branch `topic` at HEAD's commit before the answer comes back."""
    from memstore.store.repository import Repository

    resolve = Repository.resolve

    def switched_meanwhile(self, rev):
        monkeypatch.setattr(Repository, "resolve", resolve)  # once
        with Repository.open(repo) as other:
            other.create_branch("topic", "HEAD")
            other.switch("topic")
        return resolve(self, rev)

    monkeypatch.setattr(Repository, "resolve", switched_meanwhile)


def test_git_modes_are_accepted_and_move_the_branch_alike(base, tmp_path):
    """reset --help says git's --soft, --mixed and --hard are the same here (no working
    copy), but each was 'No such option', the first thing a git user types."""
    c1, c2, c3 = history_template(base)[1]
    for mode in ("--soft", "--mixed", "--hard"):
        repo = copy_repo(history_template(base)[0], tmp_path / mode.strip("-"))
        d = json.loads(ok("reset", mode, "HEAD~1", "--json", cwd=repo).stdout)
        assert (d["branch"], d["commit"], d["was"], d["left_behind"]) == ("main", c2, c3, [c3])
        assert [e["id"] for e in log_json(repo)] == [c2, c1]


def test_a_detached_head_moved_back_does_not_count_the_commit_it_is_on_as_left(base, tmp_path):
    """A detached HEAD moved to an older commit no branch or tag holds (main deleted)
    warned of it as left behind (`leaving 3 commit(s)` for C3, C2 and C1, HEAD on C1):
    what the new HEAD reaches is held, gc keeps it."""
    c1, c2, c3 = history_template(base)[1]
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    ok("switch", "--detach", "HEAD", cwd=repo)
    ok("branch", "-D", "main", cwd=repo)
    d = json.loads(ok("reset", "--json", c1, cwd=repo).stdout)
    assert (d["commit"], d["left_behind"]) == (c1, [c3, c2]), d
    assert d["warning"].startswith("leaving 2 commit(s)"), d["warning"]
    ok("reset", c3, cwd=repo)
    d = json.loads(ok("switch", "--json", "--detach", c1, cwd=repo).stdout)
    assert (d["commit"], d["left_behind"]) == (c1, [c3, c2]), d


def test_reset_with_no_rev_is_a_move_to_head_as_gits(base, tmp_path):
    """`reset --hard` (and --soft, --mixed, or no mode), git's habit after a slip, said
    "Missing argument 'REV'": REV defaults to HEAD, which moves nothing (on a branch or
    detached), as git's, and writes only HEAD's reflog entry, on a branch, as git's; an
    unborn branch still has nothing to reset."""
    c1, _, c3 = history_template(base)[1]
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    before = snapshot(repo)
    for args in ([], ["--hard"], ["--soft"], ["--mixed"]):
        d = json.loads(ok("reset", *args, "--json", cwd=repo).stdout)
        assert (d["branch"], d["commit"], d["was"], d["left_behind"]) == ("main", c3, c3, [])
    assert ok("reset", "--hard", cwd=repo).stdout.startswith(f"HEAD is now at {c3[:12]}")
    after = snapshot(repo)
    logged = set(after["rows"].pop("reflog")) - set(before["rows"].pop("reflog"))
    assert after == before and len(logged) == 5
    assert all("'HEAD'" in r and "reset: moving to HEAD" in r for r in logged), logged
    ok("switch", "--detach", c1, cwd=repo)
    d = json.loads(ok("reset", "--hard", "--json", cwd=repo).stdout)
    assert (d["branch"], d["commit"], d["was"]) == (None, c1, c1)
    empty = copy_repo(empty_template(base), tmp_path / "empty")
    error_line(run("reset", "--hard", cwd=empty), 2, "nothing to reset")
