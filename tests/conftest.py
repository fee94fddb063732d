import os
import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
import torch
from cli_support import copy_repo, history_template
from engine_fixtures import RUNTIMES

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one process per core, one thread each
    torch.set_num_threads(1)


def _fsync_without_flush(fd) -> None:
    """os.fsync in the test processes: checks the descriptor as fsync does (not open:
    EBADF; a pipe or socket: fsync's own answer) and, for a file or folder, does not wait
    for the disk. The flush is what no test can observe (a SIGKILL loses nothing the kernel
    holds; no test cuts the power) and it was a quarter of the suite's time (~3-4 ms a call,
    thousands a test file). memstore still calls os.fsync at each of its moments: the tests
    that count them or kill the process at them see every call. The CLI's subprocesses and
    forkserver children sync for real; MEMSTORE_TEST_REAL_FSYNC=1 does here too."""
    mode = os.fstat(fd if isinstance(fd, int) else fd.fileno()).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        _REAL_FSYNC(fd)


_REAL_FSYNC = os.fsync
if not os.environ.get("MEMSTORE_TEST_REAL_FSYNC"):
    os.fsync = _fsync_without_flush


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
