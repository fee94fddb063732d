"""Child processes of the tests end in a time: one that hangs fails its test, its command
named, where a wait without a timeout held the suite until CI's global timeout with no test
named.

TIMEOUT is generous for a loaded 2-core machine (the tests' children take seconds)."""
from __future__ import annotations

import select
import subprocess
from typing import IO

TIMEOUT = 300


def run(args: list, *, check: bool, timeout: float = TIMEOUT,
        **kw) -> subprocess.CompletedProcess:
    """subprocess.run(args, check=check, **kw) within `timeout` seconds: past it the child is
    killed and subprocess.TimeoutExpired, which names the command, fails the test."""
    return subprocess.run(args, check=check, timeout=timeout, **kw)


def readline(proc: subprocess.Popen, stream: IO, timeout: float = TIMEOUT) -> str:
    """The next line `proc` writes on `stream` (a pipe of it not read from yet), waiting at
    most `timeout` seconds for it to begin; past it `proc` is killed and an AssertionError
    names its command."""
    if not select.select([stream], [], [], timeout)[0]:
        proc.kill()
        proc.wait(timeout)
        raise AssertionError(f"{proc.args} wrote nothing in {timeout} s (hung): killed")
    return stream.readline()
