"""What a git user types first, with a teammate sharing a remote: `switch -c NAME START`
(`checkout -b`), `branch -vv`, `log A..B`, and push's words for a remote it creates and for
a branch that is behind its remote's."""
from __future__ import annotations

import json

import pytest
from cli_support import copy_repo, error_line, history_template, ok, run, snapshot


@pytest.fixture
def shared(base, tmp_path):
    """A three-commit repository (ids C1..C3, main at C3) pushed to origin (a folder)."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    return repo, ids


def head(repo) -> dict:
    return json.loads(ok("status", "--json", cwd=repo).stdout)


def test_switch_c_creates_the_branch_at_start_and_switches_to_it(history):
    repo, (c1, c2, c3) = history
    out = ok("switch", "-c", "topic", "HEAD~2", cwd=repo).stdout
    assert out == "Switched to a new branch 'topic'\n"
    branches = json.loads(ok("branch", "--json", cwd=repo).stdout)
    assert [(b["name"], b["commit"], b["current"]) for b in branches] == [
        ("main", c3, False), ("topic", c1, True)]
    d = json.loads(ok("checkout", "-b", "fix", "main~1", "--json", cwd=repo).stdout)
    assert (d["branch"], d["commit"], d["created"]) == ("fix", c2, True)
    assert json.loads(ok("switch", "-c", "here", "--json", cwd=repo).stdout)["commit"] == c2


@pytest.mark.parametrize("args, code, says", [
    (("switch", "-c", "main", "HEAD~1"), 2, "branch 'main' already exists"),
    (("switch", "-c", "new", "nope"), 2, "unknown revision 'nope'"),
    (("switch", "-c", "a..b", "HEAD~1"), 2, "invalid branch name 'a..b'"),
    (("checkout", "-b", "new", "HEAD~9"), 2, "HEAD~9"),
    (("switch", "new", "HEAD~1"), 2, "START ('HEAD~1') is where -c creates the branch"),
])
def test_switch_c_refused_changes_nothing(history, args, code, says):
    repo, _ = history
    before = snapshot(repo)
    error_line(run(*args, cwd=repo), code, says)
    assert snapshot(repo) == before
