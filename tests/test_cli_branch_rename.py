"""`memstore branch -m`: a branch renamed keeps its commit, HEAD follows it, and every way it
cannot be done is one line with nothing changed."""
from __future__ import annotations

import json

import pytest
from cli_support import copy_repo, empty_template, error_line, history_template, ok, run, snapshot


@pytest.fixture
def repo(base, tmp_path):
    return copy_repo(history_template(base)[0], tmp_path / "repo")


def branches(repo) -> dict:
    return {b["name"]: b for b in json.loads(ok("branch", "--json", cwd=repo).stdout)}


def test_the_current_branch_renamed_keeps_its_commit_and_head_follows(repo):
    before = branches(repo)["main"]["commit"]
    ok("branch", "-m", "trunk", cwd=repo)
    got = branches(repo)
    assert "main" not in got and got["trunk"] == {"name": "trunk", "commit": before,
                                                  "remote": False, "current": True}
    status = json.loads(ok("status", "--json", cwd=repo).stdout)
    assert status["branch"] == "trunk"
    ok("log", "trunk", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_another_branch_renamed_and_only_its_case_or_into_a_folder(repo):
    ok("branch", "side", cwd=repo)
    ok("branch", "-m", "side", "Side", cwd=repo)  # only the case
    ok("branch", "-m", "Side", "Side/old", cwd=repo)  # the name becomes a folder
    got = branches(repo)
    assert set(got) == {"main", "Side/old"} and got["main"]["current"]
    assert got["Side/old"]["commit"] == got["main"]["commit"]


def test_an_unborn_current_branch_is_renamed(base, tmp_path):
    repo = copy_repo(empty_template(base), tmp_path / "empty")
    ok("branch", "-m", "trunk", cwd=repo)
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["branch"] == "trunk"


@pytest.mark.parametrize("args, code, says", [
    (("-m", "nope", "x"), 2, "no branch 'nope'"),
    (("-m", "main", "side"), 2, "branch 'side' already exists"),
    (("-m", "main", "bad..name"), 2, "invalid branch name"),
    (("-m", "main", "base"), 2, "invalid branch name 'base'"),
    (("-m", "main", "v1"), 2, "'v1' is already the name of a tag"),
    # NEW 'HEAD' read as no NEW given: the current branch was renamed to OLD ('feature'),
    # or said OLD already exists ('side')
    (("-m", "feature", "HEAD"), 2, "invalid branch name 'HEAD': 'HEAD' is reserved"),
    (("-m", "side", "HEAD"), 2, "invalid branch name 'HEAD': 'HEAD' is reserved"),
    (("-m",), 2, "branch -m needs the NEW name"),
    (("-m", "-d", "main", "x"), 2, "-m and -d/-D cannot be used together"),
])
def test_a_rename_that_cannot_be_done_is_one_line_and_changes_nothing(repo, args, code, says):
    ok("branch", "side", cwd=repo)
    ok("tag", "v1", cwd=repo)
    before = snapshot(repo)
    error_line(run("branch", *args, cwd=repo), code, says)
    assert snapshot(repo) == before


def test_a_detached_head_names_the_branch_to_rename(repo):
    ok("switch", "--detach", "HEAD~1", cwd=repo)
    before = snapshot(repo)
    error_line(run("branch", "-m", "x", cwd=repo), 2, "HEAD is detached")
    assert snapshot(repo) == before
    ok("branch", "-m", "main", "trunk", cwd=repo)
    assert "trunk" in branches(repo) and json.loads(
        ok("status", "--json", cwd=repo).stdout)["branch"] is None


def test_switch_c_on_a_branch_with_no_commits_yet_names_the_new_one(base, tmp_path):
    """As git: right after init, `switch -c dev` was refused (nothing for dev to point at);
    HEAD now names dev, still with no commits."""
    repo = copy_repo(empty_template(base), tmp_path / "empty")
    ok("switch", "-c", "dev", cwd=repo)
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["branch"] == "dev"
    before = snapshot(repo)
    error_line(run("switch", "-c", "base", cwd=repo), 2, "invalid branch name 'base'")
    assert snapshot(repo) == before
