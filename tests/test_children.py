"""tests/children.py: a child that hangs fails its test in the time given, its command named,
and is killed (where a wait without a timeout held the suite)."""
from __future__ import annotations

import subprocess
import sys
import time

import children
import pytest

SILENT = [sys.executable, "-c", "import time; time.sleep(60); print('late')"]


def test_run_of_a_child_that_hangs_fails_in_its_time_naming_it():
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired, match="time.sleep.60") as e:
        children.run(SILENT, check=False, capture_output=True, timeout=1)
    assert time.monotonic() - t0 < 20 and e.value.timeout == 1


def test_readline_of_a_child_that_says_nothing_fails_in_its_time_and_kills_it():
    proc = subprocess.Popen(SILENT, stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="time.sleep.60.*wrote nothing in 1 s"):
            children.readline(proc, proc.stdout, timeout=1)
        assert time.monotonic() - t0 < 20 and proc.returncode is not None  # killed, reaped
    finally:
        proc.kill()
        proc.wait(10)


def test_readline_returns_the_line_a_child_writes():
    proc = subprocess.Popen([sys.executable, "-c", "print('ready', flush=True)"],
                            stdout=subprocess.PIPE, text=True)
    assert children.readline(proc, proc.stdout, timeout=60) == "ready\n"
    assert proc.wait(60) == 0
