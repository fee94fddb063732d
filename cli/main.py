"""The `memstore` command: the group, its global options, and error handling.

Every user mistake or refused operation ends as ONE line on stderr, `memstore: error: …`,
and a non-zero exit status: 2 for bad input (command-line usage, facts files, settings,
names, revisions: click's usage errors and memstore's ValidationError), 1 for operations
refused or failed (conflicts, a changed base, a locked or damaged repository, a failed
verification). MEMSTORE_DEBUG=1 shows the traceback instead."""
from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from typing import Any

import click

if not sys.stderr.isatty():  # bare tqdm bars (transformers' GGUF dequantization): tqdm
    os.environ.setdefault("TQDM_DISABLE", "1")  # reads this when imported (by torch, later)

try:  # no torch here: the commands import it, and transformers, where they load the model
    from .commands import bisect, edit, history, maintenance, model, refs, remote, setup
    from .commands import reflog as reflog_commands
    from .commands import signing as signing_commands
    from .context import TYPED
except KeyboardInterrupt:
    sys.stderr.write("memstore: interrupted\n")
    sys.exit(128 + signal.SIGINT)

ALIASES = {"checkout": "switch"}


def _quiet_transformers() -> None:
    """No transformers warnings; its progress bars only on a terminal."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not sys.stderr.isatty():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (e.g. in-process tests)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if not sys.stderr.isatty():
            hf_logging.disable_progress_bar()


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class Stopped(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP, raised where the command is, so that its cleanups run (an
    export's or a clone's half-written folder is removed, a transaction rolled back) and
    it ends as one line with 128 + the signal's number. A BaseException, as
    KeyboardInterrupt is: no `except Exception` swallows it, and click does not turn it
    into its "Aborted!" (exit 1, after a blank line)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


STOPPING = (signal.SIGTERM, signal.SIGHUP)  # (SIGINT raises KeyboardInterrupt already)


def _on_stop(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_DFL)  # the same signal again ends the cleanup too
    raise Stopped(signum)


def _handle_stops() -> dict[int, Any]:
    """Installs _on_stop for the signals that would end the process without cleanups, but
    not where they are ignored (nohup); returns the handlers to put back."""
    previous = {}
    for s in STOPPING:
        if signal.getsignal(s) == signal.SIG_DFL:
            previous[s] = signal.signal(s, _on_stop)
    return previous


class MemstoreGroup(click.Group):
    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(name, name))

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        typed = tuple(args)  # (before click parses them away)
        ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta[TYPED] = typed  # what the user wrote (context.open_repo: Refs.typed)
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Stopped(signal.SIGINT) from None

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        cwd = os.getcwd()
        main_thread = threading.current_thread() is threading.main_thread()
        previous = _handle_stops() if main_thread else {}
        try:
            _refuse_undecodable(sys.argv[1:] if args is None else args)
            code = super().main(args, prog_name or "memstore", complete_var,
                                standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except click.exceptions.Abort as e:  # Ctrl-C while click parsed the arguments
            code = _stopped(signal.SIGINT) if isinstance(e.__cause__, KeyboardInterrupt) \
                else _report(e)
        except Exception as e:  # noqa: BLE001 - user errors are turned into one line below
            code = _report(e)
        except KeyboardInterrupt:
            code = _stopped(signal.SIGINT)
        except Stopped as e:
            code = _stopped(e.signum)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            os.chdir(cwd)  # undo -C, for callers that run several commands in one process
        if standalone_mode:
            sys.exit(code)
        return code


def _stopped(signum: int) -> int:
    word = {signal.SIGINT: "interrupted", signal.SIGHUP: "hung up"}.get(signum, "terminated")
    try:
        click.echo(f"memstore: {word}", err=True)
    except OSError:  # the terminal that hung up
        pass
    return 128 + signum


# the commands that write commits, whose author is recorded (memstore.store.author)
_WRITERS = {"commit", "revert", "squash", "merge", "cherry-pick", "rebase", "pull"}
# the commands that talk to a remote before they move a ref here, whose reflog entry
# records the author: push writes the remote, then its remote-tracking branch here
_REMOTE_FIRST = {"push", "fetch", "clone"}


def _check_author(command: str | None) -> None:
    """An author that cannot be recorded (MEMSTORE_AUTHOR, else git's user.name and
    user.email, else the login and host) is refused before a command that writes commits
    runs, not when the commit is written at the end of its work; the others do not read
    it. A git config that git cannot read stops those that talk to a remote before they
    move a ref here too, before the remote is read or written (it stopped a push after
    the remote had moved, its remote-tracking branch here left behind)."""
    from memstore.store import author

    if command in _WRITERS:
        author.current()
    elif command in _REMOTE_FIRST:
        author.recorded()  # one that cannot be recorded: its reflog entries name none


def _refuse_undecodable(args: Any) -> None:
    """An argument that is not UTF-8 (Python hands its bytes on as lone surrogates) is
    refused before anything runs: memstore stores names, messages and prompts as UTF-8, so
    it would otherwise fail halfway, after the edit."""
    for a in args or ():
        if isinstance(a, str):
            try:
                a.encode("utf-8")
            except UnicodeEncodeError:
                shown = a.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                raise click.UsageError(f"argument '{shown}' is not valid UTF-8") from None


def _report(e: Exception) -> int:
    """Prints a user error as one line (plus any detail lines) and returns the exit status;
    re-raises anything that is a bug."""
    from memstore.errors import MemstoreError, ValidationError

    if os.environ.get("MEMSTORE_DEBUG"):
        raise e
    if isinstance(e, click.exceptions.NoArgsIsHelpError):
        click.echo(e.ctx.get_help())
        return 0
    if isinstance(e, click.UsageError):
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"memstore: error: {_one_line(e.format_message())}{hint}", err=True)
        return 2
    if isinstance(e, click.ClickException):
        click.echo(f"memstore: error: {_one_line(e.format_message())}", err=True)
        return e.exit_code
    if isinstance(e, click.exceptions.Abort):
        click.echo("memstore: aborted", err=True)
        return 1
    if isinstance(e, MemstoreError):
        for line in getattr(e, "details", ()):
            click.echo(line, err=True)
        click.echo(f"memstore: error: {_one_line(str(e))}", err=True)
        return 2 if isinstance(e, ValidationError) else 1
    import sqlite3

    if isinstance(e, sqlite3.Error):  # the index failed under a command (disk full, damage)
        click.echo(f"memstore: error: the repository index (.memstore/index.db) failed: "
                   f"{_one_line(str(e))}; run `memstore fsck`", err=True)
        return 1
    said = _out_of_memory(e)
    if said is not None:
        click.echo(f"memstore: error: out of memory ({said}), which memstore's estimate of "
                   "the peak did not foresee (README, 'Memory that scales'); use a GPU with "
                   "more memory, a device map, or fewer facts per commit", err=True)
        return 1
    if isinstance(e, BrokenPipeError):  # `memstore log | head`
        sys.stderr.close()
        return 141
    if isinstance(e, OSError) and e.filename is not None:
        click.echo(f"memstore: error: {e.strerror}: {e.filename}", err=True)
        return 1
    if isinstance(e, OSError) and e.errno in _ENVIRONMENT:  # the machine's, not a bug
        click.echo(f"memstore: error: {e.strerror or e}", err=True)
        return 1
    raise e


def _out_of_memory(e: Exception) -> str | None:
    """What an allocation that failed says, in one line (CUDA's first sentence, the CPU
    allocator's request); None for any other error. A wrong estimate on a machine shared
    with others, or a phase it does not count, is the machine's limit, not a bug."""
    torch = sys.modules.get("torch")  # not loaded: nothing of it ran out
    text = str(e).strip()
    if torch is not None and isinstance(e, torch.OutOfMemoryError):
        return _one_line(". ".join(text.split(". ")[:2])) or "CUDA out of memory"
    if isinstance(e, MemoryError):
        return "Python could not allocate memory"
    if isinstance(e, RuntimeError) and "DefaultCPUAllocator" in text and "memory" in text:
        return _one_line(text[text.index("DefaultCPUAllocator"):]).split(". Error code")[0]
    return None


# errors of the machine (space, quota, read-only, I/O, open files, memory) that reach the
# command line without a file name: one line, not a traceback
_ENVIRONMENT = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EMFILE,
                errno.ENFILE, errno.ENOMEM}


@click.group("memstore", cls=MemstoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "directory", metavar="PATH", type=click.Path(file_okay=False, exists=True),
              help="Run as if memstore was started in PATH.")
@click.version_option(package_name="memstore", prog_name="memstore")
def cli(directory: str | None) -> None:
    """Version control for the knowledge inside a language model.

    Each batch of facts written into the weights with MEMIT is a commit holding the
    requests, their z-vectors and a low-rank ΔW per edited layer. Commits can be logged,
    diffed, reverted, squashed, branched and merged, and any revision can be rebuilt bit
    for bit and exported as a Hugging Face checkpoint.

    The repository (.memstore/) is found from the current directory upwards. Exit status:
    0 on success, 1 when an operation is refused or fails, 2 for bad input.
    """
    _quiet_transformers()
    if directory is not None:
        os.chdir(directory)
    # where the commit is written: git's config there names its author
    _check_author(click.get_current_context().invoked_subcommand)


for module in (setup, edit, history, refs, model, bisect, maintenance, remote, signing_commands):
    for command in module.COMMANDS:
        cli.add_command(command)
for command in reflog_commands.COMMANDS:  # (a module of its own: `reflog` is a group)
    cli.add_command(command)


def main() -> None:
    cli.main()


if __name__ == "__main__":
    main()
