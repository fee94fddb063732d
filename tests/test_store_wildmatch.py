"""Glob patterns of `branch --list` and `tag -l`, as git's wildmatch reads them (no
WM_PATHNAME): each case below is what `git tag -l PATTERN` listed (git 2.x), and the
last test asks the git installed here again; fnmatch, which memstore used, differs on
`[^a]`, `\\`, POSIX classes and unclosed sets."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import children
import pytest
from cli_support import ok
from remote_support import make_repo
from test_store_support import commit_on_head

from memstore.store.wildmatch import wildmatch

NAMES = ["abc", "a.b", "a-c", "a!b", "Ab", "bcd", "feat/x", "feat/y/z", "v1.0", "v1.x", "x]y"]
CASES = [  # pattern, the NAMES git's `tag -l PATTERN` lists
    ("a*", ["abc", "a.b", "a-c", "a!b"]),
    ("[^a]*", ["Ab", "bcd", "feat/x", "feat/y/z", "v1.0", "v1.x", "x]y"]),
    ("[!a]*", ["Ab", "bcd", "feat/x", "feat/y/z", "v1.0", "v1.x", "x]y"]),
    ("feat*", ["feat/x", "feat/y/z"]),  # '*' crosses '/'
    ("*z", ["feat/y/z"]),
    ("?eat/x", ["feat/x"]),
    ("feat?x", ["feat/x"]),  # so does '?'
    ("feat/**", ["feat/x", "feat/y/z"]),
    ("**", NAMES),
    ("[[:upper:]]*", ["Ab"]),
    ("[[:alpha:]]b*", ["abc", "Ab"]),
    ("*[[:punct:]]*", ["a.b", "a-c", "a!b", "feat/x", "feat/y/z", "v1.0", "v1.x", "x]y"]),
    ("[[:digit:]]*", []),
    ("[[:foo:]]*", []),  # an unknown class matches nothing
    ("v1\\.0", ["v1.0"]),  # '\' escapes
    ("v1\\.*", ["v1.0", "v1.x"]),
    ("a\\", []),
    ("[a", []),  # an unclosed set matches nothing
    ("x[]]y", ["x]y"]),  # ']' first in a set is itself
    ("[a-b]*", ["abc", "a.b", "a-c", "a!b", "bcd"]),
    ("a[!-]c", ["abc"]),
    ("a[^!]b", ["a.b"]),
    ("a[[:x]b", []),  # '[:' with no ':]': '[' itself
    ("x[\\]]y", ["x]y"]),  # '\' in a set escapes
    ("a[\\-]c", ["a-c"]),
    ("a[+-\\.]b", ["a.b"]),  # and a range's end
]


@pytest.mark.parametrize("pattern, listed", CASES)
def test_patterns_match_as_gits_wildmatch(pattern, listed):
    assert [n for n in NAMES if wildmatch(pattern, n)] == listed


def test_a_long_name_against_many_stars_is_quick():
    """git's ABORT_ALL: once the text runs out under a `*`, no shorter match is tried."""
    assert not wildmatch("*a*a*a*a*a*a*a*a*a*b", "a" * 2000)
    assert wildmatch("*a*a*a*a*a*a*a*a*a*b", "a" * 2000 + "b")


def test_tag_and_branch_list_read_patterns_as_git(tmp_path):
    repo = make_repo(tmp_path / "r", str(tmp_path / "remote"))
    try:
        commit_on_head(repo, seed=1)
        for tag, branch in (("abc", "axe"), ("bcd", "box"), ("v1.0", "v2.0")):
            repo.create_tag(tag)
            repo.create_branch(branch)
    finally:
        repo.close()
    where = tmp_path / "r"
    def names(*args: str) -> list[str]:  # each line's name (branch: after the mark)
        skip = 2 if args[0] == "branch" else 0
        return [line[skip:].split()[0] for line in ok(*args, cwd=where).stdout.splitlines()]

    assert names("tag", "-l", "[^a]*") == ["bcd", "v1.0"]
    assert names("tag", "-l", "v1\\.0", "[[:alpha:]]b*") == ["abc", "v1.0"]
    assert names("branch", "--list", "[^a]*") == ["box", "main", "v2.0"]


def git_repo(path) -> Callable[..., str]:
    """git in a new repository at `path` with one commit (its branch: trunk), run alone
    (no user config), its output returned."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args: str) -> str:
        return children.run(["git", "-C", str(path), *args], env=env, check=True,
                            capture_output=True, text=True).stdout

    git("init", "-q", "-b", "trunk")
    git("commit", "-q", "--allow-empty", "-m", "x")
    return git


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_cases_are_what_git_lists(tmp_path):
    git = git_repo(tmp_path)
    for n in NAMES:
        git("tag", n)
    for pattern, listed in CASES:
        assert sorted(git("tag", "-l", "--", pattern).split()) == sorted(listed), pattern


def test_more_stars_than_pythons_recursion_limit_match_as_git():
    """A name of ~1500 characters (six 250-byte parts: names allow it) against 1000 stars
    (`*a` repeated) raised RecursionError, a traceback out of `branch --list`, where git
    lists the name: each `*` was one recursive call."""
    name = "/".join(["a" * 250] * 6)
    assert wildmatch("*a" * 1000, name)
    assert not wildmatch("*a" * 1000 + "b", name)
    assert wildmatch("?*" * 1200, name) and not wildmatch("?*" * 1600, name)


UTF8_NAMES = ["caf", "cafe", "café"]
UTF8_CASES = [  # pattern, the UTF8_NAMES git's `branch --list PATTERN` lists: bytes matched
    ("caf?", ["cafe"]),  # 'é' is two bytes of UTF-8: one '?' leaves one
    ("caf??", ["café"]),
    ("caf*", UTF8_NAMES),
    ("caf[é]", []),  # a set takes one byte
    ("caf[^e]", []),
    ("caf[!e]?", ["café"]),
    ("caf[[:alpha:]]*", ["cafe"]),  # classes are ASCII
    ("caf[à-ê]", []),
    ("caf\\é", ["café"]),  # '\' escapes one byte, the next is matched as itself
]


@pytest.mark.parametrize("pattern, listed", UTF8_CASES)
def test_a_name_s_utf8_is_matched_byte_by_byte_as_git_does(pattern, listed):
    """`?` was one character here: `caf?` listed `café`, which git's byte-based wildmatch
    does not."""
    assert [n for n in UTF8_NAMES if wildmatch(pattern, n)] == listed


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_utf8_cases_are_what_git_lists(tmp_path):
    git = git_repo(tmp_path)
    for n in UTF8_NAMES:
        git("branch", n)
    for pattern, listed in UTF8_CASES:
        assert sorted(git("branch", "--format=%(refname:short)", "--list", "--",
                          pattern).split()) == sorted(listed), pattern


def test_branch_list_matches_a_name_s_bytes(tmp_path):
    repo = make_repo(tmp_path / "r", str(tmp_path / "remote"))
    try:
        commit_on_head(repo, seed=1)
        for n in UTF8_NAMES:
            repo.create_branch(n)
    finally:
        repo.close()
    where = tmp_path / "r"

    def listed(pattern: str) -> list[str]:  # each line's name, after the mark
        return [line[2:].split()[0]
                for line in ok("branch", "--list", pattern, cwd=where).stdout.splitlines()]

    assert listed("caf?") == ["cafe"]
    assert listed("caf??") == ["café"]
