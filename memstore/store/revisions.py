"""What a command's model state will be, decided before any model is loaded: the commit a
revision names (BASE: the base weights) and the runtime (device, dtype, device map) the
model runs in. No torch here: `show`, `diff` and `blame` use these without a model, and
`memstore.store.states` builds the weights from them."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ValidationError
from ..models.runtime import Runtime
from ..models.runtime import resolve as resolve_runtime
from .refs import HEADS, TAGS

if TYPE_CHECKING:
    from .repository import Repository

RUNTIME_KEY = "runtime"  # config row: the repository's device, dtype and device map
BASE = None  # the state of no commit: the base weights
# The command line's --device/--dtype/--device-map for this process (None: not given);
# they win over the environment and the repository's `memstore config device …`.
_FLAGS: dict[str, str | None] = {}


def set_runtime_flags(**flags: str | None) -> None:
    """The command line's choices of device, dtype and device map for this process."""
    _FLAGS.clear()
    _FLAGS.update({k: v for k, v in flags.items() if v is not None})


def runtime_from_flags() -> Runtime:
    """The runtime of a command run outside a repository (init, clone): its flags, else the
    environment, else CPU and float32."""
    return resolve_runtime(_FLAGS, None)


def runtime_of(repo: Repository) -> Runtime:
    """The command line's choice, else the environment's, else the repository's, else
    CPU and float32 (memstore.models.runtime)."""
    stored = repo.get_config(RUNTIME_KEY)
    return resolve_runtime(_FLAGS, stored if isinstance(stored, dict) else None)


def state_commit(repo: Repository, rev: str | None) -> str | None:
    """The commit whose state `rev` names. None (a REV left out) is the current state:
    HEAD's commit, or BASE on a branch with no commits yet. 'base' is BASE (no branch or
    tag may be named so). A revision written out names a commit, HEAD too, as git's
    revisions do: on a branch with no commits yet `HEAD` is an unknown revision here as in
    show, tag and reset (`export HEAD` exported the base while `show HEAD` refused it)."""
    if rev is None:
        head = repo.head().commit
        return BASE if head is None else head
    if rev == "base":  # a branch or tag so named by an older memstore: never pick one
        if any(repo.refs.read(p + rev) is not None for p in (HEADS, TAGS)):
            raise ValidationError("revision 'base' is ambiguous: the base model, and a branch "
                                  "or tag an older memstore let be named so; say "
                                  "refs/heads/base or refs/tags/base for that one, or delete "
                                  "it")
        return BASE
    if rev.split("~")[0].split("^")[0] in ("HEAD", "@") and repo.head().commit is None:
        shown = rev if len(rev) <= 100 else rev[:100] + "…"
        raise ValidationError(f"unknown revision {shown!r}: the current branch has no "
                              "commits yet (its state is the base model's: name it 'base', "
                              "or give no revision)")
    return repo.resolve(rev)
