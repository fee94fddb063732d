"""Ref names as git's revisions spell them (`git help revisions`, <refname>): `heads/main`,
`tags/v1`, `remotes/origin/main`, `refs/heads/main`, with any suffix, in every command that
takes a REV; and which ref wins where two rules match, checked against git itself on a git
repository of the same shape."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import children
import pytest
from cli_support import error_line, ok, run

# what each revision names, as an index into (C1, C2, C3); the repository: main at C3,
# tag v1 at C2, branch topic at C1, origin/main at C3 (a folder remote)
REVS = ["heads/main", "refs/heads/main", "tags/v1", "refs/tags/v1", "heads/topic",
        "remotes/origin/main", "refs/remotes/origin/main", "heads/main~2", "tags/v1^",
        "heads/main^1~1", "heads/main@{1}", "tags/v1~0"]


def git_repo(where) -> callable:
    """A git repository of the history's shape (three empty commits on main, tag v1 at the
    second, branch topic at the first, origin/main at the third); its git(ARGS)."""
    assert shutil.which("git"), "git is needed here (CI clones with it)"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(where), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": os.environ["PATH"]}
    where.mkdir()

    def git(*args: str, ok_only: bool = True) -> subprocess.CompletedProcess:
        return children.run(["git", *args], cwd=where, env=env, check=ok_only,
                            capture_output=True, text=True)

    git("init", "-q", "-b", "main")
    for m in ("facts a", "facts b", "facts c"):
        git("commit", "-q", "--allow-empty", "-m", m)
    git("tag", "v1", "HEAD~1")
    git("branch", "topic", "HEAD~2")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    return git


@pytest.fixture
def both(history, tmp_path):
    repo, ids = history
    ok("tag", "v1", "HEAD~1", cwd=repo)
    ok("branch", "topic", "HEAD~2", cwd=repo)
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    git = git_repo(tmp_path / "git")
    shas = git("rev-list", "--reverse", "main").stdout.split()
    return repo, ids, git, shas


def named(repo, rev: str) -> str:
    return json.loads(ok("log", "--json", "-n", "1", rev, cwd=repo).stdout)[0]["id"]


def test_ref_names_resolve_as_gits(both):
    repo, ids, git, shas = both
    for rev in REVS:
        want = shas.index(git("rev-parse", "--verify", "-q", rev).stdout.strip())
        assert ids.index(named(repo, rev)) == want, rev


def test_the_ambiguous_name_takes_gits_first_rule_with_its_warning(both):
    """A branch 'tags/v1' beside tag v1: `tags/v1` is refs/tags/v1 (git's refs/NAME before
    refs/heads/NAME), warned about in git's words; `heads/tags/v1` the branch (and so for a
    branch 'heads/main')."""
    repo, ids, git, shas = both
    for name in ("tags/v1", "heads/main"):  # heads/main: refs/heads/main before the branch
        ok("branch", name, "HEAD~2", cwd=repo)
        git("branch", name, "HEAD~2")
    for rev in ("tags/v1", "heads/tags/v1", "refs/heads/tags/v1", "tags/v1~1", "heads/main",
                "heads/heads/main", "heads/main^", "tags/v1@{0}", "heads/main@{0}"):  # the first with a log
        g = git("rev-parse", rev)
        r = ok("log", "--json", "-n", "1", rev, cwd=repo)
        assert ids.index(json.loads(r.stdout)[0]["id"]) == shas.index(g.stdout.strip()), rev
        assert r.stderr == g.stderr, rev
    assert "refname 'tags/v1' is ambiguous." in git("rev-parse", "tags/v1").stderr


def test_every_command_taking_a_rev_takes_them(both):
    repo, (c1, c2, c3), git, _ = both
    assert json.loads(ok("show", "--json", "tags/v1", cwd=repo).stdout)["id"] == c2
    assert run("diff", "tags/v1", "heads/main", cwd=repo).exit_code == 0
    assert run("merge", "tags/v1", cwd=repo).exit_code == 0  # an ancestor: up to date
    # `reflog show tags/v1`: a tag has no log, nothing listed, exit 0, as git's
    g = git("reflog", "show", "tags/v1")
    r = run("reflog", "show", "tags/v1", cwd=repo)
    assert (r.exit_code, r.stdout, g.returncode, g.stdout) == (0, "", 0, "")
    mine = ok("reflog", "show", "heads/main", cwd=repo).stdout  # named as typed, as git's
    assert mine.split()[1] == git("reflog", "show", "heads/main").stdout.split()[1]
    assert mine.replace("heads/main@", "main@") == ok("reflog", "show", "main", cwd=repo).stdout
    ok("reset", "heads/main~1", cwd=repo)
    assert named(repo, "HEAD") == c2
    ok("switch", "--detach", "tags/v1~1", cwd=repo)
    assert named(repo, "HEAD") == c1
    ok("switch", "main", cwd=repo)
    assert named(repo, "heads/main@{1}") == c3 and named(repo, "@{-1}") == c1


@pytest.mark.parametrize("rev, says", [
    ("tags/nope", "unknown revision"), ("heads/v1", "unknown revision"),
    ("tags/main", "unknown revision"), ("heads/main@{9}", "only has"),
    ("heads/main@{u}", "no such branch: 'heads/main'")])  # git's words: @{u} takes a branch
def test_a_rule_naming_nothing_is_refused_as_in_git(both, rev, says):
    repo, _, git, _ = both
    g = git("log", "-1", rev, ok_only=False)
    assert g.returncode != 0 and says in g.stderr, g.stderr
    error_line(run("log", "-n", "1", rev, cwd=repo), 2, says)
