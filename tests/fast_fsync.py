"""os.fsync without the wait for the disk, in the test processes (installed on import: by
conftest, and by test_store_support, which every forkserver of the crash and race tests
preloads): the descriptor is checked as fsync checks it (not open: EBADF; a pipe or a
socket: fsync's own answer) and, for a file or folder, the flush is left out.

The flush is what no test can observe (a SIGKILL loses nothing the kernel holds; no test
cuts the power) and it was a quarter of the suite's time (~3-4 ms a call, thousands a test
file). memstore still calls os.fsync at each of its moments: the tests that count them or
kill the process at them see every call. The CLI's subprocesses sync for real;
MEMSTORE_TEST_REAL_FSYNC=1 makes every process do so."""
import os
import stat

REAL_FSYNC = os.fsync


def fsync_without_flush(fd) -> None:
    mode = os.fstat(fd if isinstance(fd, int) else fd.fileno()).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        REAL_FSYNC(fd)


if not os.environ.get("MEMSTORE_TEST_REAL_FSYNC"):
    os.fsync = fsync_without_flush
