"""A process id no process holds, for the temporary names of a 'dead' owner.

A finished child's pid was used before; with pid_max 32,768 (these machines) another
process may take it before the code under test looks, which then keeps a 'dead' owner's
files (a test failed so under load). Linux never hands out a pid above PID_MAX_LIMIT, 2**22."""
from __future__ import annotations

from memstore import leftovers

DEAD_PID = 2**22 + 1


def dead_pid() -> int:
    assert leftovers.pid_dead(DEAD_PID)
    return DEAD_PID
