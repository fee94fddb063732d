"""CounterFact and zsRE metrics on controlled scores, GE on fixed text, and end to end on a
tiny model."""
import math

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from memstore.editing.requests import Request
from memstore.eval import metrics
from memstore.eval.data import EvalRecord, ZsreRecord
from memstore.eval.generation import mean_n_gram_entropy, n_gram_entropy
from memstore.eval.metrics import counterfact_metrics, harmonic_mean, zsre_metrics
from memstore.eval.scoring import TargetScores, target_nll


def fake_scores(monkeypatch, nll: dict, top1: dict | None = None):
    """score_targets returning chosen values per (prompt, target)."""

    def score_targets(model, tokenizer, prompts, targets, batch_tokens=None):
        pairs = list(zip(prompts, targets))
        return TargetScores(
            torch.tensor([nll.get(p, 0.0) for p in pairs]),
            torch.tensor([(top1 or {}).get(p, 0.0) for p in pairs]),
        )

    monkeypatch.setattr(metrics, "score_targets", score_targets)


A = Request("A", "{} is in", "NEW", "TRUE", ("pa1", "pa2"), ("na1", "na2"), relation_id="P1")
B = Request("B", "{} is in", "NEW", "TRUE", ("pb1",), ("nb1", "nb2", "nb3"), relation_id="P2")
C = Request("C", "{} is in", "NEW")  # no true object: cannot be compared
D = Request("D", "{} is in", "NEW", "NEW")  # the same object: P(new) > P(true) never holds
NLL = {  # (prompt, target): mean NLL
    ("A is in", "NEW"): 1.0, ("A is in", "TRUE"): 2.0,  # ES 1
    ("pa1", "NEW"): 3.0, ("pa1", "TRUE"): 1.0,  # lost
    ("pa2", "NEW"): 0.5, ("pa2", "TRUE"): 0.7,  # won: PS 1/2
    ("na1", "NEW"): 2.0, ("na1", "TRUE"): 1.0,  # kept
    ("na2", "NEW"): 1.0, ("na2", "TRUE"): 2.0,  # lost: NS 1/2
    ("B is in", "NEW"): 2.0, ("B is in", "TRUE"): 1.0,  # ES 0
    ("pb1", "NEW"): 1.0, ("pb1", "TRUE"): 1.0,  # a tie is not a win: PS 0
    ("nb1", "NEW"): 2.0, ("nb1", "TRUE"): 1.0,
    ("nb2", "NEW"): 3.0, ("nb2", "TRUE"): 1.0,
    ("nb3", "NEW"): 4.0, ("nb3", "TRUE"): 0.0,  # NS 1
}


def p(x):
    return math.exp(-x)


def test_counterfact_known_answer(monkeypatch):
    fake_scores(monkeypatch, NLL)
    m = counterfact_metrics(None, None, [A, B, C, D], by_relation=True)
    assert (m["n"], m["n_skipped"]) == (2, 2)
    assert m["efficacy"] == pytest.approx(0.5)
    assert m["paraphrase"] == pytest.approx(0.25)
    assert m["neighborhood"] == pytest.approx(0.75)
    assert m["score"] == pytest.approx(3 / (1 / 0.5 + 1 / 0.25 + 1 / 0.75))
    assert m["efficacy_magnitude"] == pytest.approx(((p(1) - p(2)) + (p(2) - p(1))) / 2)
    pa = ((p(3) - p(1)) + (p(0.5) - p(0.7))) / 2
    assert m["paraphrase_magnitude"] == pytest.approx((pa + 0.0) / 2)
    na = ((p(1) - p(2)) + (p(2) - p(1))) / 2
    nb = ((p(1) - p(2)) + (p(1) - p(3)) + (p(0) - p(4))) / 3
    assert m["neighborhood_magnitude"] == pytest.approx((na + nb) / 2)
    p1, p2 = m["by_relation"]["P1"], m["by_relation"]["P2"]
    assert (p1["n"], p1["efficacy"], p1["paraphrase"], p1["neighborhood"]) == (1, 1.0, 0.5, 0.5)
    assert p1["score"] == pytest.approx(3 / (1 + 2 + 2))
    assert (p2["efficacy"], p2["neighborhood"], p2["score"]) == (0.0, 1.0, 0.0)


def test_missing_parts_are_left_out(monkeypatch):
    fake_scores(monkeypatch, NLL)
    bare_a = Request("A", "{} is in", "NEW", "TRUE", (), ("na1", "na2"))
    m = counterfact_metrics(None, None, [bare_a])
    assert math.isnan(m["paraphrase"])
    assert m["score"] == pytest.approx(2 / (1 / 1.0 + 1 / 0.5))  # ES and NS only


def test_harmonic_mean():
    assert harmonic_mean([0.5, 1.0, float("nan")]) == pytest.approx(2 / 3)
    assert harmonic_mean([0.0, 1.0]) == 0.0
    assert math.isnan(harmonic_mean([]))


def test_zsre_known_answer(monkeypatch):
    r1 = ZsreRecord(Request("X", "Who made {}?", "Ann", paraphrases=("Maker of X?",)), "nq question: q1", "yes")
    r2 = ZsreRecord(Request("Y", "Who made {}?", "Bob", paraphrases=("Maker of Y?",)), "nq question: q2", "no")
    top1 = {
        ("Who made X?", "Ann"): 1.0, ("Maker of X?", "Ann"): 0.5, ("nq question: q1?", "yes"): 1.0,
        ("Who made Y?", "Bob"): 0.0, ("Maker of Y?", "Bob"): 0.0, ("nq question: q2?", "no"): 0.5,
    }
    fake_scores(monkeypatch, {}, top1)
    assert zsre_metrics(None, None, [r1, r2]) == {
        "n": 2, "efficacy": 0.5, "paraphrase": 0.25, "specificity": 0.75
    }


def test_n_gram_entropy_by_hand():
    # words: the cat . the cat .
    # bigrams (5): (the cat) x2, (cat .) x2, (. the) x1
    # trigrams (4): (the cat .) x2, (cat . the) x1, (. the cat) x1
    h2 = -(2 * 0.4 * math.log2(0.4) + 0.2 * math.log2(0.2))
    h3 = -(0.5 * math.log2(0.5) + 2 * 0.25 * math.log2(0.25))
    assert n_gram_entropy("the cat. the cat.") == pytest.approx((2 / 3 * h2 + 4 / 3 * h3) / 2)
    assert n_gram_entropy("baseball baseball baseball baseball") == 0.0
    assert n_gram_entropy("one") == 0.0
    assert mean_n_gram_entropy(["the cat. the cat.", "a a a"]) == pytest.approx(
        (2 / 3 * h2 + 4 / 3 * h3) / 4
    )


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("llama"), tiny_tokenizer(add_bos=True)


RECORDS = [
    EvalRecord(
        Request("Danielle Darrieux", "The mother tongue of {} is", "English", "French",
                ("Danielle Darrieux speaks", "Her language is"),
                ("Toko Yasuda speaks", "The mother tongue of Michael Jordan is", "I speak"),
                relation_id="P103"),
        generation_prompts=("Danielle Darrieux is", "Danielle Darrieux is", "Where is Paris?"),
    ),
    EvalRecord(
        Request("Porsche 911", "{}, created by", "Honda", "Porsche", ("Porsche 911 is made by",),
                ("Honda Civic is produced by",), relation_id="P176"),
    ),
]


def test_counterfact_on_a_tiny_model_agrees_with_target_nll(tiny):
    model, tok = tiny
    m = counterfact_metrics(model, tok, RECORDS, by_relation=True)

    def wins(r, prompts, new_first=True):
        new = target_nll(model, tok, list(prompts), [r.target_new] * len(prompts))
        true = target_nll(model, tok, list(prompts), [r.target_true] * len(prompts))
        return ((new < true) if new_first else (true < new)).float().mean().item()

    es, ps, ns = [], [], []
    for rec in RECORDS:
        r = rec.request
        es.append(wins(r, [r.text]))
        ps.append(wins(r, r.paraphrases))
        ns.append(wins(r, r.neighborhood, new_first=False))
    assert m["efficacy"] == pytest.approx(sum(es) / 2)
    assert m["paraphrase"] == pytest.approx(sum(ps) / 2)
    assert m["neighborhood"] == pytest.approx(sum(ns) / 2)
    assert m["by_relation"]["P176"]["efficacy"] == es[1]


def test_generation_entropy_on_a_tiny_model(tiny):
    model, tok = tiny
    greedy = counterfact_metrics(model, tok, RECORDS, generation=True, generation_tokens=6,
                                 generation_top_k=None)
    sampled = [
        counterfact_metrics(model, tok, RECORDS, generation=True, generation_tokens=6, seed=s)
        for s in (0, 0, 1)
    ]
    assert 0 < greedy["generation_entropy"] < 10
    assert sampled[0]["generation_entropy"] == sampled[1]["generation_entropy"]
    assert sampled[0]["generation_entropy"] != sampled[2]["generation_entropy"]
