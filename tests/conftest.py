import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fast_fsync  # noqa: F401 (os.fsync without the wait for the disk)
import fork_locks  # noqa: F401 (a forked child's tqdm lock is its own)
import pytest
import torch
from cli_support import copy_repo, history_template, ok
from engine_fixtures import RUNTIMES

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one process per core, one thread each
    torch.set_num_threads(1)


@pytest.fixture(params=RUNTIMES)
def runtime(request) -> str:
    """Every engine test that takes it runs once per device and dtype (engine_fixtures)."""
    return request.param


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Where the CLI tests' templates (tiny model, facts files, repositories) are built once
    per session (cli_support); a module that means another base defines its own."""
    return tmp_path_factory.getbasetemp()


@pytest.fixture
def history(base, tmp_path):
    """A copy of the three-commit template repository and its commit ids (C1..C3)."""
    template, ids = history_template(base)
    return copy_repo(template, tmp_path / "repo"), ids


@pytest.fixture
def pushed(base, tmp_path):
    """A copy of the three-commit repository, pushed with its statistics to a folder remote
    `origin`, and that remote's URL (a module that means another push defines its own)."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    url = str(tmp_path / "remote")
    ok("remote", "add", "origin", url, cwd=repo)
    ok("push", "--with-stats", cwd=repo)
    return repo, url
