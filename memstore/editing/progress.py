"""Progress bars on long work; quiet when stderr is not a terminal, where a long phase
says instead, in plain lines, what it is doing and when it is done (`phase`). A long step
with nothing to count (loading a model) is a `stage`: one line on a terminal."""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

PHASE_AFTER = 30.0  # seconds a phase runs, off a terminal, before it says what it is doing


def on_terminal() -> bool:
    """Whether bars are drawn: stderr is a terminal and MEMSTORE_QUIET is unset."""
    return sys.stderr.isatty() and not os.environ.get("MEMSTORE_QUIET")


def progress(enabled: bool = True, **kwargs) -> tqdm:
    return tqdm(disable=not (enabled and on_terminal()), leave=False, dynamic_ncols=True,
                **kwargs)


class Steps:
    """A transformers generate() streamer that only counts: `put` is given the prompt,
    then each step's new tokens (one per sequence); `bar` moves by one a step."""

    def __init__(self, bar: tqdm) -> None:
        self.bar, self.prompt = bar, True

    def put(self, value) -> None:
        if self.prompt:
            self.prompt = False
        else:
            self.bar.update()

    def end(self) -> None:
        pass


def _elapsed(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else \
        f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{seconds:.1f} s"


@contextmanager
def phase(what: str) -> Iterator[None]:
    """Off a terminal (a log file, a pipe, a batch job), where no bar is drawn: when the
    work inside has run PHASE_AFTER seconds, one line on stderr, `memstore: WHAT…`, and
    when it ends, `memstore: WHAT: done in T`. A phase that ends sooner says nothing, and
    nothing is said on a terminal or under MEMSTORE_QUIET."""
    if sys.stderr.isatty() or os.environ.get("MEMSTORE_QUIET"):
        yield
        return
    t0 = time.monotonic()
    said = threading.Event()

    def say() -> None:
        print(f"memstore: {what}… (running for {_elapsed(time.monotonic() - t0)})",
              file=sys.stderr, flush=True)
        said.set()

    timer = threading.Timer(PHASE_AFTER, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()  # a line being printed now is printed whole, before any other
    if said.is_set():  # (not when the work raised: its error is the next line)
        print(f"memstore: {what}: done in {_elapsed(time.monotonic() - t0)}",
              file=sys.stderr, flush=True)


STAGE_TICK = 1.0  # seconds between redraws of a stage's clock


@contextmanager
def stage(what: str) -> Iterator[None]:
    """A long step with nothing to count (loading a model, whose own library's bar is
    silenced): on a terminal one line, `WHAT… 0:05`, its clock redrawn each STAGE_TICK and
    the line erased when the step ends, as a bar is; off a terminal, a `phase`."""
    if not on_terminal():
        with phase(what):
            yield
        return
    bar = tqdm(total=None, desc=what, bar_format="{desc}… {elapsed}", leave=False,
               dynamic_ncols=True)
    done = threading.Event()

    def tick() -> None:
        while not done.wait(STAGE_TICK):
            bar.refresh()

    clock = threading.Thread(target=tick, daemon=True)
    clock.start()
    try:
        yield
    finally:
        done.set()
        clock.join()  # no redraw after the line is erased
        bar.close()
