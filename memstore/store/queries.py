"""Read-only operations behind `memstore status/show/diff/ask/eval`: they build states in
memory (memstore.store.states) and never write to the repository. status and diff read
records only; torch (show's norms) and the model (states) are imported where they are used."""
from __future__ import annotations

import dataclasses
import math
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..editing.requests import Request, check_fits, context_length, fact_key, request_texts
from ..editing.settings import EditSettings
from ..errors import MemstoreError, ValidationError
from . import chain_facts
from .blame import writer
from .commits import Commit, load_requests
from .history import LiveFact, ancestors_of, chain_layers, chain_updates, checked_graph
from .index import BY_KEY, introduced_size
from .provenance import Provenance
from .repository import Repository
from .revisions import BASE, state_commit
from .schema import not_indexed

if TYPE_CHECKING:
    from .states import LoadedBase


def finite(value: Any) -> Any:
    """`value` with NaN/inf floats replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def measure(base: LoadedBase, requests: list[Request], quick: bool = False) -> dict[str, Any]:
    """Editing metrics of `requests` in the model's current state: CounterFact ES/PS/NS/S over
    the requests having target_true (memstore.eval.metrics.counterfact_metrics), and for all
    requests the mean P(new) = exp(-NLL) and mean NLL of target_new after the prompt, which
    mean something without target_true. `quick`: P(new) and NLL only."""
    import torch

    from ..eval.metrics import counterfact_metrics
    from ..eval.scoring import target_nll

    if not requests:
        return {}
    nll = target_nll(base.model, base.tokenizer, [r.text for r in requests],
                     [r.target_new for r in requests]).double()
    out: dict[str, Any] = {"p_new": float(torch.exp(-nll).mean()), "nll_new": float(nll.mean())}
    if not quick:
        out = {**counterfact_metrics(base.model, base.tokenizer, requests), **out}
    return finite(out)


def _fact_row(repo: Repository, prov: Provenance, f: LiveFact) -> dict[str, Any]:
    """A fact with the commit that wrote it and the commit carrying that write, as blame
    names them (`commit` was the carrier: a merge that brought the fact in, where blame
    named the commit that wrote it)."""
    wrote, carried_by = writer(repo, prov, f)
    return {**f.request.to_dict(), "commit": wrote, "carried_by": carried_by}


def live_facts(repo: Repository, commit: str | None) -> list[LiveFact]:
    return repo.facts_at(commit) if commit is not BASE else []


def current_settings(repo: Repository) -> EditSettings:
    """The editor settings future commits use; every repository `init` or `clone` made has
    them, so a missing row is damage, named in one line (not a status without them)."""
    s = repo.settings
    if s is None:
        raise MemstoreError("the repository has no editor settings; run `memstore fsck`")
    return s


def status(repo: Repository, *, g: dict[str, tuple[tuple[str, ...], float]] | None = None,
           note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The branch, HEAD's commit, its numbers of commits and of live facts, the base and the
    settings. The numbers are counted on the records (history.checked_graph, `g` where the
    caller has one: the walk that counted ahead/behind read them; chain_facts.chain_depths),
    each compared with its index row: a row damaged to name other parents or another basis
    gave a wrong count silently. With `note`, such damage (the error's message) is said
    through it and the number it would have miscounted is None, the rest shown; else it is
    raised."""
    head = repo.head()
    b = repo.base
    s = current_settings(repo)

    def counted(count: Callable[[], int]) -> int | None:
        try:
            return count() if head.commit else 0
        except MemstoreError as e:
            if note is None:
                raise
            note(str(e))
            return None

    walked = checked_graph(repo.store, unreadable=True) if g is None else g
    if head.commit and head.commit not in walked:  # nothing to count from: fsck names the way back
        raise not_indexed(head.commit)

    return {
        "branch": head.branch, "detached": head.ref is None, "head": head.commit,
        "message": repo.get_commit(head.commit).message if head.commit else None,
        # a parent the index does not hold (its row deleted; fsck names it) is damage, not
        # the end of the history (history.ancestors took it so: 2 commits of 3)
        "n_commits": counted(lambda: len(ancestors_of(walked, [head.commit], indexed=True))),
        "n_facts": counted(lambda: chain_facts.n_live(repo.store, head.commit)),
        "base": {"spec": b.spec, "hash": b.hash, "path": b.path, "info": b.info,
                 "unchanged": repo.base_unchanged()},
        "settings": s.to_dict(),
    }


def show(repo: Repository, rev: str = "HEAD") -> dict[str, Any]:
    """A commit's record: requests, per update set and edited layer the Frobenius norm and
    rank of ΔW, the metrics measured at commit time, and the bytes it added: its objects
    beyond its parents', counted off the records and the object store as its index row's
    size was when written (not read off that row: a damaged size, which fsck does not
    check, was shown as it stood)."""
    from ..editing.apply import delta, single_thread  # the norms: torch, not the model

    cid = repo.resolve(rev)
    c = repo.get_commit(cid)  # (a record that is no commit is named as such first)
    if not repo.has_commit(cid):  # a sound record whose commits row is gone: damage
        raise not_indexed(cid)
    sets = []
    for i, s in enumerate(c.update_sets):
        updates = repo.updates_of(cid, i)
        with single_thread():
            layers = [{"layer": l, "rank": u.rank, "form": s.layers[l].form,
                       "norm": float(delta(u).double().norm())} for l, u in updates.items()]
        sets.append({"requests": [r.to_dict() for r in repo.requests_of(cid, i)],
                     "layers": layers, "settings": s.settings, "templates": list(s.templates),
                     "stats": {str(k): v for k, v in s.stats.items()}, "info": s.info})
    # what the commit did to the live facts: its state against its first parent's (the
    # base's for a root). The requests above are what its solves wrote, which for a revert
    # are the replayed sets and for a merge or squash may hold facts already live before
    facts = _diff_states(repo, c.parents[0] if c.parents else BASE, cid)
    return finite({"id": cid, "parents": list(c.parents), "basis": c.basis, "time": c.time,
                   "author_time": c.authored, "author": c.author, "committer": c.committer,
                   "operation": c.operation,
                   "message": c.message, "n_requests": c.n_requests,
                   "metrics": c.metrics, "info": c.info, "bytes": introduced_size(repo.store, c),
                   "facts": facts, "update_sets": sets})


def diff(repo: Repository, rev1: str, rev2: str) -> dict[str, list[dict[str, Any]]]:
    """Facts added, removed and changed (same subject and prompt, another target) from the
    state of `rev1` to that of `rev2`."""
    return _diff_states(repo, state_commit(repo, rev1), state_commit(repo, rev2))


def facts_touched(repo: Repository, c: Commit,
                  target: Callable[[str], bool] | None = None) -> list[Request]:
    """The facts commit `c` wrote or took out (`log --fact`): what `show` lists, the facts
    its state added, removed or retargeted against its first parent's, each target, old
    and new. A commit whose state is its first parent's (the base's for a root) plus its
    own writes (a commit, a cherry-pick, a rebase): the requests it wrote, read off its own
    sets, and the first parent's version of each it retargeted (--supersede), looked up
    (the parent's chain read) only for a fact some request row of the index gives a
    target that `target` takes (None: any), so that a log whose pattern no old target
    matches reads no history; any other (a revert, a merge, a squash): the two states
    compared."""
    parent = c.parents[0] if c.parents else BASE
    if c.basis == parent:
        written = [r for s in c.update_sets for r in load_requests(repo.objects, s)]
        now = {fact_key(r): r.target_new for r in written}  # the last write of each
        keys = [k for k in now if parent is not BASE and any(
            t != now[k] and (target is None or target(t)) for (t,) in repo.db.execute(
                "select target_new from requests where " + BY_KEY, list(k)))]
        before = chain_facts.live_writes(repo.store, parent, keys) if keys else {}
        return written + [f.request for k, f in before.items()
                          if f.request.target_new != now[k]]
    a, b = _fact_states(repo, parent, c.id)
    return ([f.request for k, f in a.items()
             if k not in b or b[k].request.target_new != f.request.target_new]
            + [f.request for k, f in b.items()
               if k not in a or a[k].request.target_new != f.request.target_new])


def _fact_states(repo: Repository, c1: str | None, c2: str | None
                 ) -> tuple[dict[tuple[str, str], LiveFact], dict[tuple[str, str], LiveFact]]:
    """The live facts of `c1`'s state and of `c2`'s, by key; where c2's state is c1's with
    the writes between on top, only the keys those writes touch."""
    between = chain_facts.commits_between(repo.store, c1, c2) if c2 is not BASE else None
    if between is not None:  # c2's state is c1's with the writes between on top
        b = chain_facts.written(repo.store, between)
        a = chain_facts.live_writes(repo.store, c1, list(b)) if c1 is not BASE else {}
    else:
        a = {fact_key(f.request): f for f in live_facts(repo, c1)}
        b = {fact_key(f.request): f for f in live_facts(repo, c2)}
    return a, b


def _diff_states(repo: Repository, c1: str | None,
                 c2: str | None) -> dict[str, list[dict[str, Any]]]:
    a, b = _fact_states(repo, c1, c2)
    prov = Provenance(repo)
    added = [_fact_row(repo, prov, f) for k, f in b.items() if k not in a]
    removed = [_fact_row(repo, prov, f) for k, f in a.items() if k not in b]
    changed = []
    for k, f in b.items():
        if k in a and a[k].request.target_new != f.request.target_new:
            old, new = writer(repo, prov, a[k]), writer(repo, prov, f)
            changed.append({"subject": k[0], "prompt": k[1], "old": a[k].request.target_new,
                            "new": f.request.target_new, "old_commit": old[0],
                            "old_carried_by": old[1], "new_commit": new[0],
                            "new_carried_by": new[1]})
    return {"added": added, "removed": removed, "changed": changed}


def weight_diff(repo: Repository, rev1: str, rev2: str) -> dict[int, float]:
    """Per edited layer, ‖W(rev2) − W(rev1)‖_F (float64), from states built in memory."""
    from ..editing.apply import build_state
    from .states import open_base

    base = open_base(repo)
    chains = []
    for rev in (rev1, rev2):
        commit = state_commit(repo, rev)
        chains.append(repo.chain_sets(commit) if commit is not BASE else [])
    layers = sorted(chain_layers(chains[0]) | chain_layers(chains[1]))
    names = {l: base.adapter.proj_weight_name(l) for l in layers}
    pristine = base.pristine(list(names.values()))
    built = [build_state(pristine, base.adapter, chain_updates(repo.store, chain))
             for chain in chains]  # each set's tensors read as it is applied
    out = {}
    for l, name in names.items():
        w1, w2 = (b.get(name, pristine[name]) for b in built)
        out[l] = float((w2.double() - w1.double()).norm())
    return out


def probe(repo: Repository, prompts: list[str], revs: list[str | None],
          max_tokens: int = 20) -> list[dict[str, Any]]:
    """Greedy completions of `prompts` under the state of each revision (None: HEAD), read
    in Unicode NFC as facts are (a decomposed 'José' is other tokens than the fact's)."""
    from ..eval.generation import greedy_generate
    from .states import load_state, open_base

    prompts = [unicodedata.normalize("NFC", p) for p in prompts]
    check_prompts(open_base(repo), prompts, max_tokens)
    out = []
    for rev in revs:
        commit = state_commit(repo, rev)
        base = load_state(repo, rev)
        texts = greedy_generate(base.model, base.tokenizer, prompts, max_new_tokens=max_tokens)
        out.append({"rev": rev or "HEAD", "commit": commit, "completions": texts})
    return out


def check_prompts(base: LoadedBase, prompts: list[str], max_tokens: int) -> None:
    """Each prompt is non-empty and, with `max_tokens` more, fits the model's context."""
    for p in prompts:
        if not p.strip():
            raise ValidationError("the prompt is empty")
    context = context_length(base.model)
    if context is not None:
        if max_tokens >= context:
            raise ValidationError(f"--max-tokens {max_tokens}: the model's context is {context} "
                                  "tokens")
        check_fits(base.tokenizer, [(f"prompt {p[:40]!r}", p) for p in prompts],
                   context - max_tokens, f"the {context}-token context less --max-tokens "
                   f"{max_tokens}, a room")


def ask(repo: Repository, prompt: str, rev: str | None = None, compare: str | None = None,
        max_tokens: int = 20) -> list[dict[str, Any]]:
    """The greedy completion of `prompt` at `rev`, and at `compare` ('base' or a revision)."""
    from .states import open_base

    check_prompts(open_base(repo), [prompt], max_tokens)
    revs = [rev] + ([compare] if compare is not None else [])
    return [{"rev": p["rev"], "commit": p["commit"], "completion": p["completions"][0]}
            for p in probe(repo, [prompt], revs, max_tokens)]


def evaluate_live(repo: Repository, rev: str | None = None, *, by_relation: bool = False,
                  generation: bool = False) -> dict[str, Any]:
    """The facts live in the state of `rev` (None: HEAD), measured in that state on their
    edit prompts (one pass each; `evaluate` on a file gives paraphrases and neighbours):
    CounterFact's ES over those with target_true, and over all of them the share the model
    recalls (memstore.store.retention: every target token its top choice), with the facts
    it does not recall (and the commit that wrote each) under `not_recalled`."""
    from ..eval.metrics import counterfact_metrics
    from .retention import recall
    from .states import load_state

    commit = state_commit(repo, rev)
    facts = live_facts(repo, commit)
    if not facts:
        raise ValidationError(f"no facts are live at {rev or 'HEAD'}: nothing to measure")
    base = load_state(repo, rev)
    requests = [dataclasses.replace(f.request, paraphrases=(), neighborhood=()) for f in facts]
    m = counterfact_metrics(base.model, base.tokenizer, requests, by_relation=by_relation,
                            generation=generation)
    r = recall(base.model, base.tokenizer, requests)
    prov = Provenance(repo)
    missed = [{**_fact_row(repo, prov, f), "p_new": float(p)}
              for f, held, p in zip(facts, r.recalled.tolist(), r.p_new.tolist()) if not held]
    return finite({"kind": "live", "rev": rev or "HEAD", "commit": commit, **m,
                   "n_live": len(facts), "recalled": float(r.recalled.double().mean()),
                   "not_recalled": missed})


def evaluate(repo: Repository, path: str | Path, rev: str | None = None, *,
             by_relation: bool = False, generation: bool = False) -> dict[str, Any]:
    """CounterFact metrics (ES, PS, NS, S; GE with `generation`) or, for a zsRE file
    (detected by its fields), zsRE top-1 accuracies, of the state of `rev` (None: HEAD;
    the base weights when there are no commits). zsRE's specificity is also reported as
    `neighborhood`, and `score` is the harmonic mean of the three."""
    from ..eval.data import load_records, parse_counterfact_record, parse_zsre, source_name
    from ..eval.metrics import (
        GENERATION_TOKENS,
        counterfact_metrics,
        harmonic_mean,
        zsre_metrics,
    )
    from .states import load_state

    raw = load_records(path)  # read once: standard input ('-') cannot be read twice
    if not raw:
        raise ValidationError(f"{source_name(path)}: no records")
    zsre = any("src" in r and "answers" in r for _, r in raw)  # parse_zsre names the rest
    if zsre and (by_relation or generation):
        raise ValidationError(f"{source_name(path)} is a zsRE file: --by-relation and "
                              "--generation measure CounterFact files only")
    parse = parse_zsre if zsre else parse_counterfact_record
    records = [parse(r, where) for where, r in raw]
    commit = state_commit(repo, rev)
    base = load_state(repo, rev)
    context = context_length(base.model)
    room = None if context is None else context - GENERATION_TOKENS
    if generation and room is not None and room < 1:
        raise ValidationError(f"--generation writes {GENERATION_TOKENS} tokens after each "
                              f"prompt: the model's context is {context} tokens")
    for rec in records:
        where = rec.where
        check_fits(base.tokenizer, request_texts(rec.request, where), context)
        if zsre:
            check_fits(base.tokenizer, [(f"{where} loc", f"{rec.loc}? {rec.loc_ans}")], context)
        elif generation:  # each prompt is continued by GENERATION_TOKENS tokens
            check_fits(base.tokenizer, [(f"{where} generation prompt", p) for p in
                                        rec.generation_prompts or (rec.request.text,)],
                       room, f"the {context}-token context less the {GENERATION_TOKENS} "
                       "tokens --generation writes, a room")
    if zsre:
        m = zsre_metrics(base.model, base.tokenizer, records)
        m["neighborhood"] = m["specificity"]
        m["score"] = harmonic_mean([m["efficacy"], m["paraphrase"], m["specificity"]])
    else:
        m = counterfact_metrics(base.model, base.tokenizer, records, by_relation=by_relation,
                                generation=generation)
    return finite({"kind": "zsre" if zsre else "counterfact", "rev": rev or "HEAD",
                   "commit": commit, **m})
