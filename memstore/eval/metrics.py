"""CounterFact and zsRE metrics (MEMIT paper, appendix C; ROME's evaluation code).

Scale: every metric is on ROME's raw scale, a share in [0, 1] for ES/PS/NS/S and the raw
n-gram entropy for GE. The papers' tables multiply every one of them by 100 (ES 98.9 is
0.989 here, GE 622.4 is 6.224).

Probabilities of multi-token targets are compared through their mean per-token NLL after
the prompt (`scoring.target_nll`); P = exp(-mean NLL) for the magnitudes.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..editing.requests import Request
from .data import EvalRecord, ZsreRecord
from .generation import generate, mean_n_gram_entropy
from .scoring import score_targets

CounterfactItem = Request | EvalRecord


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean of the values that are not NaN (NaN if none); 0 if any value is 0."""
    present = [v for v in values if not math.isnan(v)]
    if not present:
        return float("nan")
    if min(present) <= 0:
        return 0.0
    return len(present) / sum(1 / v for v in present)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


GENERATION_TOKENS = 90  # new tokens per generation prompt for GE (ROME: 100)


def counterfact_metrics(
    model,
    tokenizer,
    records: Sequence[CounterfactItem],
    *,
    by_relation: bool = False,
    generation: bool = False,
    generation_tokens: int = GENERATION_TOKENS,
    generation_top_k: int | None = 5,
    seed: int = 0,
    batch_tokens: int | None = None,
) -> dict[str, Any]:
    """ES, PS, NS, S and their magnitudes over CounterFact requests (or `EvalRecord`s).

    - efficacy (ES): share of requests with NLL(new) < NLL(true) on the edit prompt.
    - paraphrase (PS): the same on each paraphrase, averaged per request, then over requests.
    - neighborhood (NS): share of neighbourhood prompts with NLL(true) < NLL(new), averaged
      per request, then over requests.
    - score (S): harmonic mean of the three (parts with no prompts are left out).
    - *_magnitude: mean of P(new) - P(true) (efficacy, paraphrase) and of P(true) - P(new)
      (neighborhood), averaged the same way; positive is good.

    Requests without `target_true`, or whose `target_true` is `target_new` (P(new) >
    P(true) could never hold), cannot be compared: they are left out and counted in
    `n_skipped`; `n` counts the requests scored. A part with no prompts at all is NaN.
    `by_relation=True` adds `by_relation`: {relation_id: metrics of its requests}.

    `generation=True` adds `generation_entropy` (GE, ROME's n-gram entropy, see
    `generation.n_gram_entropy`) over the prompt plus `generation_tokens` new tokens
    generated from each generation prompt (the request's text where a record has none),
    averaged per request, then over requests. ROME samples with top-k 5 and 100 tokens in
    all (about 90 new ones); `generation_top_k=None` generates greedily instead.
    """
    items = [r if isinstance(r, EvalRecord) else EvalRecord(r) for r in records]
    scored = [r for r in items if r.request.target_true not in (None, r.request.target_new)]
    prompts: list[str] = []
    targets: list[str] = []
    for item in scored:
        r = item.request
        for p in (r.text, *r.paraphrases, *r.neighborhood):
            prompts += [p, p]
            targets += [r.target_new, r.target_true]  # type: ignore[list-item]
    nll = score_targets(model, tokenizer, prompts, targets, batch_tokens).nll.tolist()

    per_request: list[dict[str, float]] = []
    at = 0
    for item in scored:
        r = item.request
        counts = (1, len(r.paraphrases), len(r.neighborhood))
        parts = []
        for count in counts:
            new = nll[at : at + 2 * count : 2]
            true = nll[at + 1 : at + 2 * count : 2]
            at += 2 * count
            parts.append((new, true))
        per_request.append(_request_scores(parts))

    result = _aggregate(per_request)
    result["n_skipped"] = len(items) - len(scored)
    if by_relation:
        groups: dict[str, list[dict[str, float]]] = defaultdict(list)
        for item, scores in zip(scored, per_request):
            groups[item.request.relation_id or "?"].append(scores)
        result["by_relation"] = {rel: _aggregate(s) for rel, s in sorted(groups.items())}
    if generation:
        result["generation_entropy"] = generation_entropy(
            model, tokenizer, items, generation_tokens, generation_top_k, seed
        )
    return result


def _request_scores(parts: list[tuple[list[float], list[float]]]) -> dict[str, float]:
    """Per-request ES/PS/NS and magnitudes from (NLL new, NLL true) lists per prompt kind."""
    out = {}
    names = ("efficacy", "paraphrase", "neighborhood")
    for name, (new, true) in zip(names, parts):
        if not new:
            out[name] = out[f"{name}_magnitude"] = float("nan")
            continue
        if name == "neighborhood":  # the true object should still win
            wins = [t < n for n, t in zip(new, true)]
            gaps = [math.exp(-t) - math.exp(-n) for n, t in zip(new, true)]
        else:
            wins = [n < t for n, t in zip(new, true)]
            gaps = [math.exp(-n) - math.exp(-t) for n, t in zip(new, true)]
        out[name] = _mean([float(w) for w in wins])
        out[f"{name}_magnitude"] = _mean(gaps)
    return out


def _aggregate(per_request: list[dict[str, float]]) -> dict[str, Any]:
    result: dict[str, Any] = {"n": len(per_request)}
    keys = ("efficacy", "paraphrase", "neighborhood")
    for key in keys + tuple(f"{k}_magnitude" for k in keys):
        result[key] = _mean([s[key] for s in per_request if not math.isnan(s[key])])
    result["score"] = harmonic_mean([result[k] for k in keys])
    return result


def generation_entropy(
    model,
    tokenizer,
    records: Sequence[CounterfactItem],
    max_new_tokens: int = 90,
    top_k: int | None = 5,
    seed: int = 0,
) -> float:
    """GE: per request, the mean n-gram entropy of prompt + generated text over its
    generation prompts; then the mean over requests. Greedy decoding (`top_k=None`) gives
    the same text for repeated prompts, so each distinct prompt is generated once."""
    items = [r if isinstance(r, EvalRecord) else EvalRecord(r) for r in records]
    prompt_lists = [list(r.generation_prompts) or [r.request.text] for r in items]
    flat = [p for ps in prompt_lists for p in ps]
    if not flat:
        return float("nan")
    unique = list(dict.fromkeys(flat)) if top_k is None else flat
    # ROME scores the prompt with the text: both decoded as one (see `generate`)
    texts = generate(model, tokenizer, unique, max_new_tokens, top_k=top_k, seed=seed,
                     with_prompt=True)
    if top_k is None:
        by_prompt = dict(zip(unique, texts))
        texts = [by_prompt[p] for p in flat]
    per_request = []
    at = 0
    for ps in prompt_lists:
        per_request.append(mean_n_gram_entropy(texts[at : at + len(ps)]))
        at += len(ps)
    return _mean(per_request)


def zsre_per_record(
    model, tokenizer, records: Sequence[ZsreRecord], batch_tokens: int | None = None
) -> dict[str, list[float]]:
    """zsRE as in ROME/MEMIT, per record: top-1 token accuracy (teacher forced) of the
    target after the question (efficacy), after its rephrasings (paraphrase, their mean;
    NaN without any), and of `loc_ans` after `loc + "?"` (specificity)."""
    prompts: list[str] = []
    targets: list[str] = []
    for rec in records:
        r = rec.request
        for p in (r.text, *r.paraphrases):
            prompts.append(p)
            targets.append(r.target_new)
        prompts.append(rec.loc + "?")
        targets.append(rec.loc_ans)
    top1 = score_targets(model, tokenizer, prompts, targets, batch_tokens).top1.tolist()
    out: dict[str, list[float]] = {"efficacy": [], "paraphrase": [], "specificity": []}
    at = 0
    for rec in records:
        k = len(rec.request.paraphrases)
        out["efficacy"].append(top1[at])
        out["paraphrase"].append(_mean(top1[at + 1 : at + 1 + k]) if k else float("nan"))
        out["specificity"].append(top1[at + 1 + k])
        at += k + 2
    return out


def zsre_metrics(
    model, tokenizer, records: Sequence[ZsreRecord], batch_tokens: int | None = None
) -> dict[str, Any]:
    """zsRE's efficacy, paraphrase and specificity (`zsre_per_record`), each averaged over
    records (paraphrase over those that have rephrasings)."""
    per = zsre_per_record(model, tokenizer, records, batch_tokens)
    return {
        "n": len(records),
        "efficacy": _mean(per["efficacy"]),
        "paraphrase": _mean([x for x in per["paraphrase"] if not math.isnan(x)]),
        "specificity": _mean(per["specificity"]),
    }


__all__ = [
    "counterfact_metrics",
    "generation_entropy",
    "harmonic_mean",
    "zsre_metrics",
    "zsre_per_record",
]
