"""Output helpers shared by the commands: the --json option, JSON printing, number and id
formatting, and messages on stderr."""
from __future__ import annotations

import datetime
import json
import math
import unicodedata
from collections.abc import Callable
from typing import Any

import click


def json_option(f: Callable) -> Callable:
    """Adds `--json` (machine-readable output), passed to the command as `as_json`."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON instead of text.")(f)


def no_empty_path(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A path argument given as '' (a script's unset variable) is refused by name; it was
    taken as the current folder, and messages then named '.' or nothing at all."""
    if value == "":
        raise click.BadParameter("an empty path", ctx=ctx, param=param)
    return value


def no_empty_message(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """-m '' (or only spaces) is refused, as git aborts on an empty message: a commit whose
    log line is blank is one nobody can find again."""
    if value is not None and not value.strip():
        raise click.BadParameter("an empty message", ctx=ctx, param=param)
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def print_json(value: Any) -> None:
    """Strict JSON on stdout (NaN and inf become null)."""
    click.echo(json.dumps(_finite(value), indent=2, ensure_ascii=False, allow_nan=False))


def warn(message: str) -> None:
    """A note on stderr (also the repository lock's on_wait callback)."""
    click.echo(message, err=True)


def short(commit: str | None) -> str:
    return commit[:12] if commit else "(base)"


def num(value: Any, digits: int = 3) -> str:
    """A metric for a table: '-' when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def counted(n: int, noun: str) -> str:
    """`1 fact`, `2 facts`: a count and its noun, singular for one."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def when(t: float, form: str = "%Y-%m-%d %H:%M:%S %z") -> str:
    """A time as a date (strftime's `form`), or as the number it is where no date holds it
    (a record's time is any finite number)."""
    try:
        return datetime.datetime.fromtimestamp(t).astimezone().strftime(form)
    except (OverflowError, OSError, ValueError):
        return f"{t!r} (seconds since 1970, past any date)"


# bidirectional overrides and isolates: a line that reads otherwise than it is
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str, keep: str = "\t") -> str:
    """`text` for a terminal (a commit message from anyone's push, a model's completion):
    control characters (an escape sequence moves the cursor, recolours or rewrites what was
    printed) and bidirectional overrides written as escapes (`\\x1b`), but those in
    `keep`."""
    return "".join(ascii(c)[1:-1] if c not in keep and (unicodedata.category(c) == "Cc"
                                                       or c in _BIDI) else c for c in text)


def shown_name(name: str) -> str:
    """A branch, tag or remote name for a terminal: the characters names may no longer hold
    (memstore.store.refs: controls, format characters, other spaces, line separators), which
    a name made by an older memstore may, written as escapes, so that it reads as it is."""
    from memstore.store.refs import UNSEEN

    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in UNSEEN and c != " " else c
                   for c in name)


def message_lines(message: str) -> list[str]:
    """A commit message's lines for a terminal (a message may come from anyone's push)."""
    return [printable(line) for line in message.strip().splitlines()]


def first_line(message: str) -> str:
    lines = message_lines(message)
    return lines[0] if lines else ""


def taken_out(m: dict[str, Any]) -> str | None:
    """'5 facts taken out' from a revert's metrics (its 'reverted': the facts it took out,
    each measured after it); None for another commit's. The one wording of the count:
    `log`'s views and `show` take it from here."""
    r = m.get("reverted") if isinstance(m, dict) else None
    if not isinstance(r, dict):
        return None
    n = sum(v for k in ("n", "n_skipped") if isinstance(v := r.get(k), int))
    return f"{counted(n, 'fact')} taken out"


def commit_facts(n_requests: int, m: dict[str, Any]) -> str:
    """`log --oneline`'s count: '2 facts' (the requests its update sets solve); a revert's
    '5 facts taken out', with ', 2 replayed' where it solved later commits' facts again."""
    out = taken_out(m)
    if out is None:
        return counted(n_requests, "fact")
    return f"{out}, {n_requests} replayed" if n_requests else out


def metrics_line(m: dict[str, Any]) -> str:
    """'efficacy 1.000 (3 with target_true), P(new) 0.012 -> 0.870' from commit metrics; a
    revert's adds the facts it took out ('5 facts taken out: P(new) 0.044, still preferred
    0.000 (ES over 5 with target_true)': how many still beat target_true after it)."""
    if not m:
        return "no metrics"
    parts = []
    if m.get("n"):
        parts.append(f"efficacy {num(m.get('efficacy'))} (ES over {m['n']} with target_true)")
        for k in ("paraphrase", "neighborhood"):
            if m.get(k) is not None:
                parts.append(f"{k} {num(m[k])}")
    if m.get("p_new") is not None:
        before = m.get("p_new_before")
        arrow = f"{num(before)} -> " if before is not None else ""
        parts.append(f"P(new) {arrow}{num(m['p_new'])}")
    r, out = m.get("reverted"), taken_out(m)  # a revert's: the facts it took out
    if out is not None and r.get("p_new") is not None:
        part = f"{out}: P(new) {num(r['p_new'])}"
        if r.get("n"):
            part += (f", still preferred {num(r.get('efficacy'))} "
                     f"(ES over {r['n']} with target_true)")
        parts.append(part)
    e = m.get("earlier")
    if isinstance(e, dict) and e.get("n"):
        parts.append(f"earlier facts recalled {num(e.get('recalled_before'))} -> "
                     f"{num(e.get('recalled'))} ({e['n']} of {e.get('live', e['n'])} checked)")
    return ", ".join(parts) or "no metrics"


def layers_text(layers: Any) -> str:
    return ",".join(str(x) for x in layers)


def runtime_options(f: Callable) -> Callable:
    """Adds --device, --dtype and --device-map (where the model runs) to a command that
    loads the base model; they win over MEMSTORE_DEVICE/_DTYPE/_DEVICE_MAP and the
    repository's `memstore config device …` (memstore.models.runtime)."""
    import functools

    @functools.wraps(f)
    def wrapper(*args: Any, device: str | None, dtype: str | None, device_map: str | None,
                **kwargs: Any) -> Any:
        from memstore.store.revisions import set_runtime_flags

        set_runtime_flags(device=device, dtype=dtype, device_map=device_map)
        try:
            return f(*args, **kwargs)
        finally:
            set_runtime_flags()

    wrapper = click.option("--device-map", metavar="MAP", default=None,
                           help="Spread the model with accelerate: auto, balanced, "
                                "sequential, or a .json file of module -> device.")(wrapper)
    wrapper = click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
                           default=None, help="The model weights' dtype (default float32).")(wrapper)
    return click.option("--device", metavar="DEVICE", default=None,
                        help="cpu, cuda, cuda:N, mps or auto (default cpu).")(wrapper)
