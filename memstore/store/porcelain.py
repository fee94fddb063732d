"""Porcelain: the operations behind the `memstore` commands, one function per command (as in
dulwich), taking a Repository and plain arguments and returning results. No click here.

Every writing operation holds the repository lock from its first read of HEAD to the ref
move, so a concurrent writer waits instead of losing an update, and validates everything it
can before any work.

This module holds init, stats and commit; config lives in `configuration`, history
rewrites (revert, squash, merge, cherry-pick) in `rewrite`, rebase (cherry-picks in a row)
in `rebase`, read-only operations in `queries`, checkpoints in `checkpoint`, and states
(the base model loaded once per process) in `states`. All are re-exported here, so that
`porcelain` is the one module a front end needs; importing it imports torch and
transformers (seconds), so the commands that never load the model (status, config, show,
diff) import `queries` and `configuration` instead, which import neither."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..editing.defaults import derive, outside_validated
from ..editing.memit import check_settings, execute_memit, templates_for
from ..editing.memory import estimate as estimate_memory
from ..editing.memory import longest as longest_tokens
from ..editing.progress import phase
from ..editing.requests import (
    Request,
    _short,
    check_edges,
    check_fits,
    context_length,
    fact_key,
    templated_texts,
    validate_requests,
)
from ..editing.settings import EditSettings
from ..editing.tokens import read_once
from ..editing.zs import check_compute_dtype, key_groups
from ..errors import MemstoreError, ValidationError
from ..models.hashing import model_hash, side_files, state_items
from ..models.loading import DEFAULT_MODEL, resolve
from .checkpoint import export, verify, verify_base
from .config import settings_json
from .configuration import config, derived_notes, parse_setting, runtime_values, setting
from .exports import export_as
from .history import LiveFact
from .lock import WaitCallback
from .queries import (
    ask,
    current_settings,
    diff,
    evaluate,
    evaluate_live,
    measure,
    probe,
    show,
    status,
    weight_diff,
)
from .rebase import Rebased, rebase
from .repair import RepairReport
from .repair import repair as rebuild_index
from .repository import DIRNAME, Repository, StatisticsRecord
from .retention import earlier_sample, recall, retention_metrics
from .rewrite import MergeConflictError, Report, cherry_pick, merge, revert, squash
from .running import earlier_keys_for
from .states import (
    LoadedBase,
    load_base,
    load_state,
    open_base,
    runtime_from_flags,
    state_of,
    statistics,
    statistics_id,
    too_few_tokens,
)

# -- init and config -------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseIdentity:
    """A base model as a repository records it: where it is, its content hash, a summary
    of its architecture and the architecture's default editor settings."""

    spec: str
    path: Path
    hash: str
    info: dict[str, Any]
    settings: EditSettings


def check_finite(model, spec: str) -> None:
    """A base whose weights hold NaN or ±inf is refused, naming the first such tensor: every
    edit of it would fail (non-finite z-vectors or solve) or spread them."""
    for name, t in state_items(model):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValidationError(f"model {spec!r}: its tensor {name} holds NaN or infinite "
                                  "values")


def identify_base(base_spec: str = DEFAULT_MODEL) -> BaseIdentity:
    """Loads the base model `base_spec` (a local Hugging Face directory, a .gguf file or
    'smollm2-135m') and hashes it (the identity recorded in every commit)."""
    where = resolve(base_spec)
    base = load_base(base_spec, where, runtime_from_flags())  # load_model: one line if damaged
    base.reset()
    base.adapter.check_editable()
    model = base.model
    check_finite(model, base_spec)
    derived = derive(model, base.adapter)
    runtime = base.loaded.runtime
    text = model.config.get_text_config()
    info = {"model_type": model.config.model_type, "family": base.adapter.name,
            "n_layers": base.adapter.n_layers(model),
            "context": context_length(model),  # tokens; config checks the templates fit
            "hidden_size": getattr(text, "hidden_size", None),
            "parameters": sum(p.numel() for p in model.parameters()),
            "hash_dtype": runtime.dtype,  # the weights were hashed as loaded in this dtype
            "side_files": side_files(where),  # the settings and tokenizer, by file
            # the settings derived from the model, and why (init and config print them)
            "derived": {"settings": settings_json(derived.settings),
                        "why": derived.why}}
    return BaseIdentity(base_spec, where, model_hash(model), info, derived.settings)


def check_base_editable(base: LoadedBase, settings: EditSettings) -> None:
    """The edit can run on this model as loaded: its layers exist and are not offloaded,
    and its z-vectors can be computed in the settings' compute_dtype."""
    base.adapter.check_editable()
    check_settings(base.model, base.adapter, settings)
    check_compute_dtype(base.model, base.adapter, settings)


def validation_warnings(repo: Repository, base: LoadedBase) -> list[str]:
    """How the current settings leave what was measured to work (editing.defaults)."""
    return outside_validated(base.model, base.adapter, current_settings(repo))


def init(path: str | Path = ".", base_spec: str = DEFAULT_MODEL, *,
         on_wait: WaitCallback | None = None) -> Repository:
    """Creates a repository in `path` on the base model `base_spec` and stores the
    architecture's default editor settings."""
    root = Path(path).resolve()
    if (root / DIRNAME).exists():
        raise MemstoreError(f"a memstore repository already exists in {root}")
    if DIRNAME in root.parts:
        raise ValidationError(f"{root} is inside a repository's {DIRNAME} folder; choose "
                              "another folder")
    b = identify_base(base_spec)
    model = Path(b.path).resolve()
    if root == model or model in root.parents:  # its .memstore would change the model
        raise ValidationError(f"{root} is or is inside the base model ({model}); choose "
                              "another folder")
    return Repository.init(root, b.spec, b.hash, b.info, b.settings, base_path=b.path,
                           on_wait=on_wait)


def stats(repo: Repository, compute: bool = True,
          note: Callable[[str], None] | None = None) -> list[StatisticsRecord]:
    """The statistics of the configured layers and sample, computed and stored if missing
    (with `compute`); returns every statistics record of the repository."""
    if compute:
        with repo.lock():
            base, settings = open_base(repo), current_settings(repo)
            got = statistics(repo, base, settings, note=note)
            why = too_few_tokens(base, settings, got)
            if why is not None and note is not None:  # stored: a commit refuses them
                note(f"warning: a commit refuses these statistics: {why}")
    return repo.statistics()


def repair(path: str | Path | None = None,
           note: Callable[[str], None] | None = None) -> RepairReport:
    """`fsck --repair`: rebuilds the index from the object store (store.repair), then
    recomputes the statistics that commits name but no record holds (from the base model,
    with the settings of the update set that used them) where those settings still give
    them: a corpus changed or gone since gives other statistics, which are not computed
    (`note` hears of them)."""
    root = Repository.find(path)
    report = rebuild_index(root, note)
    with Repository.open(root) as repo:
        needed: dict[str, EditSettings] = {}
        for c in repo.log_all():
            for s in c.update_sets:
                if any(repo.statistics_record(sid, l) is None for l, sid in s.stats.items()):
                    needed.setdefault(next(iter(s.stats.values())), s.edit_settings)
        if needed:
            with repo.lock():
                base = open_base(repo)
                for sid, settings in needed.items():
                    try:
                        why = "" if statistics_id(settings, base) == sid else \
                            f"its sample {settings.stats_source!r} changed since"
                    except MemstoreError as e:  # e.g. the corpus is not on this machine
                        why = str(e)
                    if not why:
                        statistics(repo, base, settings, note=note)
                    elif note is not None:
                        note(f"statistics {sid} cannot be recomputed here ({why}); fetch them "
                             "with `memstore fetch --with-stats`")
            report.statistics = len(repo.statistics())
    return report


# -- commit -----------------------------------------------------------------------------------


def check_against_live(live: list[LiveFact], requests: list[Request], supersede: bool,
                       where: list[str] | None = None) -> None:
    by_key = {fact_key(f.request): f for f in live}
    clashes = [(i, r, by_key[fact_key(r)]) for i, r in enumerate(requests)
               if fact_key(r) in by_key and by_key[fact_key(r)].request.target_new != r.target_new]
    if clashes and not supersede:
        i, r, f = clashes[0]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        at = f"{where[i]}: " if where else ""
        raise ValidationError(  # texts of thousands of characters cut: one readable line
            f"{at}{_short(r.subject, 200)} / {_short(r.prompt, 200)} -> "
            f"{_short(r.target_new, 200)} conflicts with {_short(f.request.target_new, 200)}, "
            f"live since commit {f.commit[:12]}{more}; use --supersede to replace it")


@read_once()  # its checks read the prompts the edit reads
def commit(repo: Repository, requests: list[Request], message: str, *,
           supersede: bool = False, info: dict[str, Any] | None = None,
           note: Callable[[str], None] | None = None,
           inform: Callable[[str], None] | None = None,
           where: list[str] | None = None) -> Report:
    """Writes `requests` as one MEMIT batch on HEAD: validates them (alone, against the
    tokenizer and against the facts live on the branch), loads HEAD's state, gets the
    statistics (stored or computed once), edits, measures efficacy on the requests right
    after the edit and how many of a sample of the earlier facts the model still recalls
    before and after it (memstore.store.retention), and writes the commit. `note` hears of
    long preparations (statistics) and warnings; `inform` hears the estimate of the peak
    memory, before any work. Off a terminal, each phase still running after 30 s says so
    on stderr, and when it is done (editing.progress.phase). `where` names each request's
    origin in the error messages ('facts.jsonl line 3'; default 'request N')."""
    t0 = time.perf_counter()
    requests = list(requests) if isinstance(requests, Iterator) else requests
    validate_requests(requests, where=where)
    where = list(where) if where is not None else [f"request {i + 1}"
                                                   for i in range(len(requests))]
    for r, at in zip(requests, where):  # new facts only: live ones are kept as written
        check_edges(r, at)
    first: dict[tuple[str, str, str], int] = {}
    for i, r in enumerate(requests):
        first.setdefault((r.subject, r.prompt, r.target_new), i)
    repeated = len(requests) - len(first)
    if repeated:  # one fact given twice would be written twice as hard
        kept = list(first.values())
        where = [where[i] for i in kept]
        requests = [requests[i] for i in kept]
    if not isinstance(message, str):
        raise ValidationError(f"the commit message must be text, not {type(message).__name__}")
    with repo.lock():
        parent = repo.head().commit
        live = repo.facts_at(parent) if parent is not None else []
        check_against_live(live, requests, supersede, where)
        settings = current_settings(repo)
        base = open_base(repo)
        validate_requests(requests, base.tokenizer, context_length(base.model), where)
        check_base_editable(base, settings)
        with phase("loading the state at HEAD"):
            state_of(repo, parent)
        # the prefix templates are sampled from HEAD's state; with one in front, a prompt
        # that fits alone may not (refused before the statistics are computed and stored)
        templates = templates_for(base.model, base.tokenizer, settings)
        prefixes = (f" (n_templates {settings.n_templates}, template_tokens "
                    f"{settings.template_tokens})")
        check_fits(base.tokenizer, (text for r, at in zip(requests, where)
                                    for text in templated_texts(r, templates, at, prefixes)),
                   context_length(base.model))
        need = estimate_memory(
            base.model, base.adapter, settings, len(requests), len(live),
            any(repo.statistics_record(statistics_id(settings, base), l) is None
                for l in settings.layers),
            max(len(g) for g in key_groups(requests, settings)),
            longest_tokens(base.tokenizer, requests, settings, templates))
        if not need.fits():
            raise MemstoreError(f"this commit will not fit: {need.line()}; use fewer requests "
                                "per commit (or a smaller z_chunk), a GPU, or a device map")
        if inform is not None:
            inform(need.line())
        if note is not None:
            if repeated:  # said once every check passed: a refused commit writes one line
                note(f"{repeated} repeated request(s) (the same subject, prompt and target) "
                     "written once")
            for line in validation_warnings(repo, base):
                note(f"warning: {line}")
        n = f"{len(requests)} fact{'s' if len(requests) != 1 else ''}"
        with phase("getting the statistics of the edited layers"):
            stats_ = statistics(repo, base, settings, note=note, for_edit=True)
        state_of(repo, parent)  # again where the statistics were computed on the base
        with phase(f"measuring the {n} before the edit"):
            before = measure(base, requests, quick=True)
        earlier_facts, n_live = earlier_sample(live, requests)
        with phase(f"checking {len(earlier_facts)} earlier facts before the edit"):
            recalled_before = (recall(base.model, base.tokenizer, earlier_facts)
                               if earlier_facts else None)
        with phase(f"reading the keys of the {len(live)} facts live on the branch"):
            earlier = (earlier_keys_for(repo.store, parent, [], requests)
                       if parent and settings.history != "plain" else None)
        base.editing(settings.layers)
        how = "its z-vector" if len(requests) == 1 else "their z-vectors"
        with phase(f"writing {n} ({how}, then the update)"):
            result = execute_memit(base.model, base.tokenizer, requests, settings, stats_,
                                   adapter=base.adapter, templates=templates,
                                   earlier=earlier or None)
        with phase(f"measuring the edit on the {n}"):
            metrics = measure(base, requests)
        metrics["p_new_before"] = before["p_new"]
        if recalled_before is not None:
            with phase(f"checking {len(earlier_facts)} earlier facts after the edit"):
                recalled_after = recall(base.model, base.tokenizer, earlier_facts)
            metrics["earlier"] = retention_metrics(recalled_before, recalled_after, n_live)
        with phase("storing the commit"):
            c = repo.write_commit([result], parents=[parent] if parent else [],
                                  basis=parent, message=message, metrics=metrics,
                                  operation="commit", info=info or {})
    return Report(c, c.id, metrics, {"info": result.info}, time.perf_counter() - t0)


__all__ = [
    "BaseIdentity", "MergeConflictError", "Rebased", "Report", "ask", "check_against_live",
    "cherry_pick", "commit",
    "config", "current_settings", "derived_notes", "diff", "evaluate", "evaluate_live", "export",
    "export_as", "identify_base", "init", "load_state", "measure", "merge", "parse_setting", "probe",
    "rebase", "repair", "revert", "runtime_values", "setting", "show", "squash", "stats", "status",
    "validation_warnings", "verify", "verify_base", "weight_diff",
]
