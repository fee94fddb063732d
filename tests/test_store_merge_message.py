"""pull's merge message in git 2.39's words (its FETCH_HEAD line: `Merge branch 'main' of
URL`, the URL without trailing slashes and a `.git` ending), checked against git's own pull
from a repository of the same path spelled each way."""
from __future__ import annotations

import os
import shutil

import children

from memstore.store.merge_message import pull_message


def test_pulls_message_names_the_remotes_branch_and_url_as_gits(tmp_path):
    assert shutil.which("git"), "git is needed here (CI clones with it)"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": os.environ["PATH"]}

    def git(*args: str, cwd=tmp_path) -> str:
        return children.run(["git", *args], cwd=cwd, env=env, check=True,
                            capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "main", "up.git")
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=tmp_path / "up.git")
    for i, url in enumerate([f"file://{tmp_path}/up.git/", f"{tmp_path}/up.git/.git",
                             f"{tmp_path}/up.git//"]):
        here = tmp_path / f"clone{i}"
        git("clone", "-q", url, str(here))
        for where, message in ((here, "mine"), (tmp_path / "up.git", f"theirs {i}")):
            git("commit", "-q", "--allow-empty", "-m", message, cwd=where)
        for branch in ("main", "side"):  # (side: git's ` into side`)
            git("switch", "-q", "-C", branch, "HEAD", cwd=here)
            git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main", cwd=here)
            said = git("log", "-1", "--format=%s", cwd=here)
            assert pull_message("main", url, branch) == said, (url, branch)
            git("reset", "-q", "--hard", "HEAD~1", cwd=here)
