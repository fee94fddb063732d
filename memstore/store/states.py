"""States: the weights of a revision, built on the base model without writing a checkpoint.

A state is the base weights plus Σ U Vᵀ over the revision's update chain, applied in the
chain's fixed order in float32 (memstore.editing.apply.build_state), so every process
builds the same bits. The base model is loaded once per process (`open_base`); moving it
from one state to another restores the few edited weights from pristine copies and applies
the new chain, instead of reloading the model.

Statistics (E[k kᵀ] per edited layer) come from the repository's statistics store, keyed by
the sample's id and the layer (a repository has one base); missing ones come from the user's
statistics cache (shared by repositories on the same base) or are computed on the base
weights, and are stored."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..editing.apply import build_state
from ..editing.memory import statistics_block
from ..editing.progress import stage
from ..editing.requests import context_length
from ..editing.result import LayerUpdate
from ..editing.settings import EditSettings
from ..editing.statistics import (
    SEQ_LEN,
    Statistics,
    compute_statistics,
    describe_source,
    load_cached,
    model_dtype,
    sample_id,
    save_cached,
)
from ..errors import MemstoreError, ValidationError
from ..models.loading import Loaded, cache_dir, load_model
from ..models.runtime import Runtime
from .commits import UpdateSet
from .history import SetRef, chain_layers, chain_updates
from .repository import Repository, path_snapshot
from .revisions import (  # noqa: F401 - re-exported: where a state is used, it is named
    BASE,
    RUNTIME_KEY,
    runtime_from_flags,
    runtime_of,
    set_runtime_flags,
    state_commit,
)

STATS_SEQ_LEN = SEQ_LEN  # tokens per statistics sequence
_DIRTY = "(edited in place)"


@dataclass
class LoadedBase:
    """A base model held in memory and the state its weights are in (`state`: a commit id,
    BASE, or dirty after an in-place edit). Every change to its weights goes through
    `touch` first, which keeps a pristine copy to restore.

    `_sets` are the update sets the weights hold, base first, as (commit, index) (None:
    not known, after an in-place edit): a state whose chain goes on from them is built by
    applying only the rest (`set_sets`), as is one going on from the state kept by `hold`
    (bisect keeps its last good one): the same bits, since every update is rounded into
    the weights' dtype as it is added (memstore.editing.apply)."""

    loaded: Loaded
    state: str | None = BASE
    _pristine: dict[str, torch.Tensor] = field(default_factory=dict)
    _modified: set[str] = field(default_factory=set)
    _sets: tuple[tuple[str, int], ...] | None = ()
    _held: tuple[tuple[tuple[str, int], ...], str | None, dict[str, torch.Tensor]] | None = None

    @property
    def model(self):
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def adapter(self):
        return self.loaded.adapter

    def parameter(self, name: str) -> torch.nn.Parameter:
        """An edited weight, which must be held on a device: one a device map offloaded to
        disk is an empty (meta) tensor, which a state copied into unchanged and silently."""
        p = self.model.get_parameter(name)
        if p.device.type == "meta":
            raise ValidationError(f"{name.removesuffix('.weight')} is offloaded by the device "
                                  "map, and the history edits it; keep the edited layers' "
                                  "W_out on a device")
        return p

    def touch(self, names: list[str]) -> None:
        """Keep pristine copies of `names` before their weights change."""
        for name in names:
            if name not in self._pristine:  # never touched, so still the base weight
                self._pristine[name] = self.parameter(name).detach().clone()
            self._modified.add(name)

    def reset(self) -> None:
        """Back to the base weights."""
        with torch.no_grad():
            for name in sorted(self._modified):
                self.parameter(name).copy_(self._pristine[name])
        self._modified.clear()
        self.state = BASE
        self._sets = ()

    def pristine(self, names: list[str]) -> dict[str, torch.Tensor]:
        """The base weights of `names` (copies)."""
        for name in names:
            if name not in self._pristine:
                self._pristine[name] = self.parameter(name).detach().clone()
        return {n: self._pristine[n] for n in names}

    def set_chain(self, chain: Iterable[dict[int, LayerUpdate]], layers: Iterable[int],
                  label: str | None) -> None:
        """Puts the weights in the state `chain` builds from the base weights; `layers` are
        those its sets write (known from the records, so that `chain` can read each set's
        tensors only when it is applied)."""
        self._set(build_state(self.pristine(self._names(layers)), self.adapter, chain), label)

    def _names(self, layers: Iterable[int]) -> list[str]:
        """The weights the `layers` are edited in; a layer the model lacks is refused."""
        n = self.adapter.n_layers(self.model)
        beyond = sorted(l for l in set(layers) if l >= n)
        if beyond:
            raise MemstoreError(f"the history writes layer {beyond[0]}, which the model ({n} "
                                "layers) does not have (a damaged record? run `memstore fsck`)")
        return sorted({self.adapter.proj_weight_name(l) for l in set(layers)})

    def set_sets(self, chain: list[SetRef],
                 updates: Callable[[list[SetRef]], Iterable[dict[int, LayerUpdate]]],
                 label: str | None) -> None:
        """Puts the weights in the state of `chain` (root first; `updates` reads the ΔWs of
        the sets it is given), from the longest start of it held: the current state, the
        one `hold` kept, or the base weights."""
        keys = tuple((ref.commit, ref.index) for ref in chain)
        held = self._held if self._held is not None and _starts(self._held[0], keys) else None
        if self._sets is not None and _starts(self._sets, keys) and (
                held is None or len(self._sets) >= len(held[0])):
            pass  # on from the current state
        elif held is not None:
            self._set({n: w.clone() for n, w in held[2].items()}, held[1])
            self._sets = held[0]
        else:
            self.set_chain(updates(chain), chain_layers(chain), label)
            self._sets = keys
            return
        rest = chain[len(self._sets):]
        names = self._names(chain_layers(rest))
        current = {n: self.parameter(n).detach().clone() for n in names}
        self._set_more(build_state(current, self.adapter, updates(rest)), label)
        self._sets = keys

    def _set_more(self, weights: dict[str, torch.Tensor], label: str | None) -> None:
        """The current weights, with `weights` in place of theirs; labelled `label`."""
        self.touch(sorted(weights))
        with torch.no_grad():
            for name, w in weights.items():
                self.parameter(name).copy_(w)
        self.state = label

    def hold(self) -> None:
        """Keeps a copy of the current state (its edited weights), for `set_sets` to build
        on; one at a time, in place of the one held before. A state whose sets are not
        known (an in-place edit, which rebase labels with its commit) is not held, and the
        one held before stays: nothing can be built on it."""
        if self._sets is None:
            return
        self._held = (self._sets, self.state,
                      {n: self.parameter(n).detach().clone() for n in sorted(self._modified)})

    def release(self) -> None:
        self._held = None

    def _set(self, weights: dict[str, torch.Tensor], label: str | None) -> None:
        """The base weights, with `weights` in place of theirs; labelled `label`."""
        self.reset()
        self._set_more(weights, label)
        self._sets = None  # the caller says which sets they are, where it knows

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Whatever happens to the weights inside (statistics computed on the base weights),
        they are back in their current state, edited in place or not, afterwards."""
        saved = {n: self.parameter(n).detach().clone() for n in sorted(self._modified)}
        state, sets = self.state, self._sets
        try:
            yield
        finally:
            self._set(saved, state)
            self._sets = sets

    def editing(self, layers: tuple[int, ...]) -> None:
        """Called before an in-place edit of `layers` (execute_memit, apply_updates)."""
        self.touch([self.adapter.proj_weight_name(l) for l in layers])
        self.state = _DIRTY
        self._sets = None


# One loaded base per (path, size/mtime snapshot) for the life of the process: loading is
# the slow part of every command, and one process may build many states (tests, `ask
# --compare`, `diff --probe`). Keyed by the snapshot so that a changed file is reloaded.
_LOADED: dict[tuple, LoadedBase] = {}


def _key(path: str | Path, runtime: Runtime) -> tuple:
    snap = tuple(sorted(path_snapshot(path).items())) if Path(path).exists() else ()
    return (str(path), snap, runtime)


def load_base(spec: str, path: str | Path | None = None,
              runtime: Runtime | None = None) -> LoadedBase:
    """The model `spec` (loaded from `path` when given) in `runtime` (default: CPU,
    float32), once per process and runtime."""
    where = path if path is not None else spec
    runtime = runtime or Runtime()
    key = _key(where, runtime)
    base = _LOADED.get(key)
    if base is None:
        for other in [k for k in _LOADED if k[:2] == key[:2]]:  # one copy of a model in memory
            del _LOADED[other]
        with stage(f"loading the model {spec}"):  # seconds, and no count to show
            base = LoadedBase(load_model(str(where), runtime=runtime))
        _LOADED[key] = base
    return base


def _starts(head: tuple, keys: tuple) -> bool:
    return len(head) <= len(keys) and keys[:len(head)] == head


def forget_loaded() -> None:
    _LOADED.clear()


def check_base(repo: Repository) -> None:
    """The cheap check before any edit, export or state: the base file(s) still have the
    size and mtime recorded at init."""
    if repo.base_unchanged() is False:
        raise MemstoreError(f"base model changed on disk since init: {repo.base.path} "
                            "(run memstore verify --base)")


def open_base(repo: Repository, check: bool = True) -> LoadedBase:
    if check:
        check_base(repo)
    b = repo.base
    return load_base(b.spec, b.path, runtime_of(repo))


def load_state(repo: Repository, rev: str | None = None, *, check: bool = True) -> LoadedBase:
    """The base model with its weights in the state of `rev` (None: HEAD; 'base': the base
    weights), after the cheap check that the base did not change on disk."""
    commit = state_commit(repo, rev)
    if check:
        check_base(repo)
    return state_of(repo, commit)


def state_of(repo: Repository, commit: str | None) -> LoadedBase:
    """The base model in the state of `commit` (an id, or BASE), without the base check
    (for operations that made it already)."""
    base = open_base(repo, check=False)
    if commit is BASE:
        base.reset()
    elif base.state != commit:
        base.set_sets(repo.chain_sets(commit), lambda sets: chain_updates(repo.store, sets),
                      commit)
    return base


# -- statistics ------------------------------------------------------------------------------


def stats_seq_len(model) -> int:
    """Tokens per statistics sequence: STATS_SEQ_LEN, or the model's context where that is
    shorter (a GPT-2 position table of fewer rows failed with an IndexError)."""
    context = context_length(model)
    return min(STATS_SEQ_LEN, context) if context else STATS_SEQ_LEN


def statistics_id(settings: EditSettings, base: LoadedBase) -> str:
    """The id of the sample `settings` ask for on `base` as loaded (its context, its dtype)."""
    return sample_id(describe_source(settings.stats_source, settings.stats_tokens,
                                     settings.seed, stats_seq_len(base.model),
                                     dtype=model_dtype(base.model, base.adapter)))


def statistics_cache() -> Path | None:
    """Where statistics are shared between the repositories of one user, so that a second
    repository on the same base does not compute them again: $MEMSTORE_STATS_CACHE, else
    <memstore cache>/stats; 'off' disables it. Files are named as the engine's
    `cached_statistics` names them (base hash, layer, sample id, and the sha256 of the
    file, checked before use); each records the base and the dtype it was computed in."""
    where = os.environ.get("MEMSTORE_STATS_CACHE")
    if where == "off":
        return None
    return Path(where) if where else cache_dir() / "stats"


def statistics(repo: Repository, base: LoadedBase, settings: EditSettings,
               compute: bool = True,
               note: Callable[[str], None] | None = None,
               for_edit: bool = False) -> dict[int, Statistics]:
    """E[k kᵀ] of every edited layer of `settings`, keyed by (base hash, layer, sample): from
    the repository; else from the user's statistics cache; else computed on the base
    weights (all missing layers in one pass; not when `compute` is False; `note` hears of
    it first). What did not come from the repository is stored in it (and computed ones in
    the cache)."""
    sid = statistics_id(settings, base)
    have = {l: repo.get_statistics(sid, l) for l in settings.layers
            if repo.statistics_record(sid, l) is not None}
    missing = [l for l in settings.layers if l not in have]
    if for_edit:
        _check_enough_tokens(base, settings, have)
    if not missing:
        return have
    cache = statistics_cache()
    found: dict[int, Statistics] = {}
    dtype = model_dtype(base.model, base.adapter)
    if cache is not None:
        for l in missing:
            st, problems = load_cached(cache, repo.base.hash, l, sid,
                                       base.adapter.proj_dims(base.model, l)[1], dtype)
            for p in problems:
                if note is not None:
                    note(f"ignored cached statistics {p}")
            if st is not None:
                found[l] = st
    need = tuple(l for l in missing if l not in found)
    if need and not compute:
        raise MemstoreError(f"no statistics for layers {list(need)}; run `memstore stats`")
    if need:
        if note is not None:
            note(f"computing the statistics of layers {', '.join(map(str, need))} on "
                 f"{settings.stats_tokens} tokens (once per base model and sample)…")
        base.reset()
        # as many layers per pass over the sample as fit in the memory free now (the same
        # bits whatever the number): all of them, or blocks of consecutive layers
        block = max(1, statistics_block(base.model, base.adapter, need))
        if block < len(need) and note is not None:
            note(f"the statistics of {len(need)} layers do not fit at once: "
                 f"{block} layer(s) per pass over the sample")
        fresh = compute_statistics(base.model, base.tokenizer, base.adapter, need,
                                   settings.stats_source, settings.stats_tokens, settings.seed,
                                   stats_seq_len(base.model), block=block)
        for st in fresh.values():
            if cache is not None:
                try:
                    save_cached(st, cache, repo.base.hash, dtype)
                except OSError:  # the cache is a convenience; the repository has them
                    pass
        found.update(fresh)
    short = min((st.n_tokens for st in found.values()), default=settings.stats_tokens)
    if short < settings.stats_tokens and note is not None:  # told once: then the repository has them
        note(f"warning: the statistics sample {settings.stats_source!r} holds {short} of this "
             f"model's tokens, fewer than the {settings.stats_tokens} of stats_tokens; "
             "E[kkᵀ] is estimated from what there is (a larger corpus: `memstore config "
             "stats_source FILE`)")
    if for_edit:  # before they are stored: a refused commit leaves the repository as it was
        _check_enough_tokens(base, settings, found)
    for st in found.values():
        repo.put_statistics(st)
    have.update(found)
    return {l: have[l] for l in settings.layers}


def _check_enough_tokens(base: LoadedBase, settings: EditSettings,
                         stats: dict[int, Statistics]) -> None:
    """Refuses statistics of fewer tokens than their layer's key dimensions: E[kkᵀ] is then
    singular, and an edit solved against it wrote ΔW norms in the hundreds and thousands
    and broke the model (SmolLM2 answering "9 as I as Older"), reporting efficacy 1.000."""
    why = too_few_tokens(base, settings, stats)
    if why is not None:
        raise ValidationError(why)


def too_few_tokens(base: LoadedBase, settings: EditSettings,
                   stats: dict[int, Statistics]) -> str | None:
    """Why a commit refuses these statistics (the first layer's of fewer tokens than its key
    dimensions), or None where it takes them."""
    for layer, st in sorted(stats.items()):
        d_in = base.adapter.proj_dims(base.model, layer)[1]
        if st.n_tokens < d_in:
            return (f"the statistics of layer {layer} come from {st.n_tokens} tokens of "
                    f"{settings.stats_source!r}, fewer than its {d_in} key dimensions: E[kkᵀ] "
                    "would be singular and the edit would break the model; give a larger "
                    "corpus (`memstore config stats_source FILE`), more stats_tokens, or "
                    "`memstore config stats_source wikipedia`")
    return None


def statistics_of_set(repo: Repository, update_set: UpdateSet) -> dict[int, Statistics]:
    """The statistics an update set was solved with (for a replay). They are derived data:
    where this repository lacks them (a clone fetched without --with-stats) they are got as
    a commit gets them, from the set's own settings, with the model's current weights (a
    replay may be half done) put back afterwards."""
    missing = {l: sid for l, sid in update_set.stats.items()
               if repo.statistics_record(sid, l) is None}
    if missing:
        settings = update_set.edit_settings
        layer, sid = min(missing.items())
        why = ""
        base = open_base(repo, check=False)
        try:
            same = (statistics_id(settings, base) == sid
                    and set(missing) <= set(settings.layers))
        except MemstoreError as e:  # e.g. the statistics corpus is not on this machine
            same, why = False, f" ({e})"
        if not same or len(set(missing.values())) > 1:
            raise MemstoreError(
                f"statistics {sid} of layer {layer} are not in this repository and cannot be "
                f"recomputed here{why}; fetch them with `memstore fetch --with-stats`")
        with base.kept():
            statistics(repo, base, settings)
    return {l: repo.get_statistics(sid, l) for l, sid in sorted(update_set.stats.items())}
