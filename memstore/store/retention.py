"""Retention: whether a commit keeps the facts written before it.

A long history fades from its earliest facts (benchmarks/README.md, "Sequential commits at
2,000 facts"), and other editing tools are reported to collapse after a few hundred edits
without saying so. `commit` therefore checks a seeded sample of the facts live before it,
once on the state before the edit and once after, and records in the commit's metrics how
many the model still recalls: every token of the fact's target is the model's top-1 choice
after its prompt (teacher forced), which is what `memstore ask` would answer, and needs no
target_true. A merge does the same for the facts of its basis's state that it does not solve
again. The CLI warns when a commit loses a noticeable share of the earlier facts it recalled.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from ..editing.requests import Request, fact_key
from .history import LiveFact

SAMPLE = 256  # earlier facts checked per commit: ~2 × 256 short prompts of forward passes
SEED = 0
LOST_WARNING = 0.05  # warn when a commit loses this share of the sampled facts it recalled


@dataclass(frozen=True)
class Recall:
    """Per fact: recalled (every target token top-1) and P(new) = exp(−mean NLL)."""

    recalled: torch.Tensor  # bool, (n,)
    p_new: torch.Tensor  # float64, (n,)


def earlier_sample(live: list[LiveFact], requests: list[Request], limit: int = SAMPLE,
                   seed: int = SEED) -> tuple[list[Request], int]:
    """Up to `limit` of the facts live before a commit, drawn with `seed` (in the order they
    are live), leaving out those the commit supersedes; and how many there were to draw from."""
    replaced = {fact_key(r) for r in requests}
    pool = [f.request for f in live if fact_key(f.request) not in replaced]
    if len(pool) <= limit:
        return pool, len(pool)
    chosen = sorted(random.Random(seed).sample(range(len(pool)), limit))
    return [pool[i] for i in chosen], len(pool)


def recall(model, tokenizer, requests: list[Request]) -> Recall:
    """Whether the model (in its current state) recalls each request's target_new."""
    from ..eval.scoring import score_targets

    scores = score_targets(model, tokenizer, [r.text for r in requests],
                           [r.target_new for r in requests])
    return Recall(scores.top1.double() >= 1.0 - 1e-9, torch.exp(-scores.nll.double()))


def retention_metrics(before: Recall, after: Recall, n_live: int,
                      seed: int = SEED) -> dict[str, Any]:
    """The commit's `earlier` metrics: the sample (n of `n_live`, its seed), the share
    recalled and the mean P(new) before and after the edit, and how many it lost."""
    lost = int((before.recalled & ~after.recalled).sum())
    return {"n": int(before.recalled.numel()), "live": n_live, "seed": seed,
            "recalled_before": float(before.recalled.double().mean()),
            "recalled": float(after.recalled.double().mean()),
            "p_new_before": float(before.p_new.mean()), "p_new": float(after.p_new.mean()),
            "lost": lost, "held_before": int(before.recalled.sum())}


def retention_warning(earlier: dict[str, Any]) -> str | None:
    """One line when the commit lost at least LOST_WARNING of the sampled earlier facts the
    model recalled before it (and at least two of them), else None."""
    lost, held = earlier.get("lost", 0), earlier.get("held_before", 0)
    if held == 0 or lost < max(2, LOST_WARNING * held):
        return None
    return (f"this commit lost {lost} of the {held} earlier facts it checked that the model "
            f"recalled before it ({earlier['n']} sampled of {earlier['live']} live; recalled "
            f"{earlier['recalled_before']:.3f} -> {earlier['recalled']:.3f}): the history is "
            "fading (`memstore eval --live` lists the facts it no longer recalls)")
