"""`tag -d` and `branch -d`/`-D` of several names: all are deleted or none (a name that is
none, the current branch, an unmerged one refuses them all, with nothing changed; the old
code deleted the first and ignored the others); `tag -l` and `branch --list` with glob
patterns, as git's."""
from __future__ import annotations

import json

import pytest
from cli_support import copy_repo, error_line, history_template, ok, run, snapshot


@pytest.fixture
def repo(base, tmp_path):
    """main at C3 (C1..C3), tags v1.0 at C1, v1.1 at C2, v2/rc at C3."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    for name, commit in zip(("v1.0", "v1.1", "v2/rc"), ids):
        ok("tag", name, commit, cwd=repo)
    return repo, ids


def names(repo, command: str, *args) -> list[str]:
    return [r["name"] for r in json.loads(ok(command, *args, "--json", cwd=repo).stdout)]


@pytest.mark.parametrize("args, code, says", [
    (("tag", "-d", "v1.0", "v9"), 2, "no tag 'v9'; none of the 2 named was deleted"),
    (("tag", "-d", "v8", "v1.0", "v9"), 2, "no tags 'v8', 'v9'; none of the 3 named"),
    (("branch", "-d", "x1", "x9"), 2, "no branch 'x9'; none of the 2 named was deleted"),
    (("branch", "-D", "x1", "main"), 1,
     "cannot delete the current branch 'main'; switch to another one first; none of the 2"),
    (("tag", "-d", "-l", "v1.0"), 2, "-d and -l cannot be used together"),
    (("tag", "v3", "HEAD", "extra"), 2, "unexpected extra argument 'extra'"),
    (("branch", "x3", "HEAD", "extra"), 2, "unexpected extra argument 'extra'"),
    (("branch", "--list", "-D", "x1"), 2, "--list lists branches: no -d"),
])
def test_a_delete_of_several_that_cannot_all_go_deletes_none(repo, args, code, says):
    repo, _ = repo
    ok("branch", "x1", cwd=repo)
    before = snapshot(repo)
    error_line(run(*args, cwd=repo), code, says)
    assert snapshot(repo) == before


def test_several_tags_and_branches_are_deleted_each_said(repo):
    repo, (c1, c2, c3) = repo
    out = ok("tag", "-d", "v1.0", "v1.1", cwd=repo).stdout
    assert out == f"Deleted tag 'v1.0' (was {c1[:12]})\nDeleted tag 'v1.1' (was {c2[:12]})\n"
    assert json.loads(ok("tag", "-d", "v2/rc", "v2/rc", "--json", cwd=repo).stdout) == {
        "deleted": "v2/rc", "commit": c3}  # one name, given twice: one object, as for one
    ok("branch", "x1", c3, cwd=repo)
    ok("branch", "x2", c3, cwd=repo)
    assert json.loads(ok("branch", "-d", "x1", "x2", "--json", cwd=repo).stdout) == [
        {"deleted": "x1", "commit": c3}, {"deleted": "x2", "commit": c3}]
    assert names(repo, "tag") == [] and names(repo, "branch") == ["main"]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_d_counts_only_the_branches_that_stay(repo):
    """a (C2) is merged into b (C3) alone once main is reset to C1: `branch -d a` goes, but
    `branch -d a b` would lose both, and is refused naming a; -D deletes both."""
    repo, (c1, c2, c3) = repo
    ok("tag", "-d", "v1.1", "v2/rc", cwd=repo)
    ok("branch", "a", c2, cwd=repo)
    ok("branch", "b", c3, cwd=repo)
    ok("reset", c1, cwd=repo)
    before = snapshot(repo)
    error_line(run("branch", "-d", "a", "b", cwd=repo), 1,
               "branch 'a' is not merged into any other branch or tag (the others named "
               "are deleted with it); `branch -D` deletes it anyway; none of the 2 named "
               "was deleted")
    assert snapshot(repo) == before
    out = ok("branch", "-D", "a", "b", cwd=repo).stdout  # git 2.39's lines, with their period
    assert out == f"Deleted branch a (was {c2[:12]}).\nDeleted branch b (was {c3[:12]}).\n"
    assert names(repo, "branch") == ["main"]


def test_tag_l_and_branch_list_match_glob_patterns(repo):
    repo, (_, _, c3) = repo
    assert names(repo, "tag", "-l") == names(repo, "tag") == ["v1.0", "v1.1", "v2/rc"]
    assert names(repo, "tag", "--list", "v1.*") == ["v1.0", "v1.1"]
    assert names(repo, "tag", "-l", "v*rc", "v1.[1-9]") == ["v1.1", "v2/rc"]  # '*' takes '/'
    assert ok("tag", "-l", "v2*", cwd=repo).stdout.split()[:2] == ["v2/rc", c3[:12]]
    assert ok("tag", "-l", "nothing*", cwd=repo).stdout == ""
    ok("branch", "feat/a", cwd=repo)
    ok("branch", "fix", cwd=repo)
    assert names(repo, "branch", "--list") == ["feat/a", "fix", "main"]
    assert names(repo, "branch", "-l", "f*") == ["feat/a", "fix"]
    assert ok("branch", "--list", "m*", "-vv", cwd=repo).stdout.startswith("* main ")
    ok("switch", "--detach", "HEAD", cwd=repo)  # git's: the detached HEAD matches no pattern
    assert ok("branch", "-l", "fi?", cwd=repo).stdout.split()[:2] == ["fix", c3[:12]]
