"""Retention at commit time (memstore.store.retention): the seeded sample of earlier facts,
the warning rule, and the recall recorded by `memstore commit`, checked against greedy
generation on the exported checkpoints before and after the commit."""
from __future__ import annotations

import json

import pytest
import torch
import transformers
from cli_support import (
    FACTS,
    copy_repo,
    empty_template,
    facts_files,
    history_template,
    last_line,
    model_dir,
    ok,
    write_facts,
)

from memstore.editing.requests import Request
from memstore.store import retention
from memstore.store.history import LiveFact


def live(n: int) -> list[LiveFact]:
    return [LiveFact(Request(f"S{i}", "{} is", f"t{i}"), f"c{i // 3}", 0, i % 3)
            for i in range(n)]


def test_the_sample_is_seeded_bounded_in_live_order_and_skips_superseded_facts():
    facts = live(40)
    new = [Request("S7", "{} is", "other"), Request("new", "{} is", "x")]
    picked, n_live = retention.earlier_sample(facts, new, limit=10, seed=3)
    assert n_live == 39 and len(picked) == 10
    assert picked == retention.earlier_sample(facts, new, limit=10, seed=3)[0]
    assert picked != retention.earlier_sample(facts, new, limit=10, seed=4)[0]
    order = [int(r.subject[1:]) for r in picked]
    assert order == sorted(order) and 7 not in order
    everything, n = retention.earlier_sample(facts, new, limit=100)
    assert n == 39 and [r.subject for r in everything] == [f"S{i}" for i in range(40) if i != 7]


@pytest.mark.parametrize("held, lost, warns", [
    (100, 5, True), (100, 4, False), (10, 2, True), (10, 1, False), (1, 1, False),
    (0, 0, False), (300, 20, True)])
def test_a_commit_warns_when_it_loses_five_percent_of_the_recalled_facts(held, lost, warns):
    earlier = {"n": 300, "live": 900, "lost": lost, "held_before": held,
               "recalled_before": held / 300, "recalled": (held - lost) / 300}
    line = retention.retention_warning(earlier)
    assert (line is not None) == warns
    if warns:
        assert f"lost {lost} of the {held}" in line and "300 sampled of 900" in line


def test_the_metrics_count_losses_only_among_facts_recalled_before():
    before = retention.Recall(torch.tensor([True, True, False, False]),
                              torch.tensor([0.9, 0.8, 0.1, 0.2], dtype=torch.float64))
    after = retention.Recall(torch.tensor([False, True, True, False]),
                             torch.tensor([0.3, 0.8, 0.6, 0.2], dtype=torch.float64))
    m = retention.retention_metrics(before, after, n_live=10)
    assert m["lost"] == 1 and m["held_before"] == 2 and m["n"] == 4 and m["live"] == 10
    assert m["recalled_before"] == 0.5 and m["recalled"] == 0.5
    assert m["p_new_before"] == pytest.approx(0.5) and m["p_new"] == pytest.approx(0.475)


def greedy_recalls(checkpoint, facts) -> list[bool]:
    """Reference: does greedy decoding of the checkpoint continue each prompt with exactly
    the target's tokens (the target as tokenized after the prompt and a space)?"""
    tok = transformers.AutoTokenizer.from_pretrained(checkpoint)
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    out = []
    for subject, prompt, target in facts:
        text = prompt.format(subject)
        p = tok(text, add_special_tokens=False)["input_ids"]
        joint = tok(text + " " + target, add_special_tokens=False)["input_ids"]
        assert joint[: len(p)] == p
        want = joint[len(p):]
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            got = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=len(want), min_new_tokens=len(want),
                                 pad_token_id=0)
        out.append(got[0, ids.shape[1]:].tolist() == want)
    return out


def own_predictions(checkpoint) -> list[tuple[str, str, str, str]]:
    """Facts the tiny model already states: (subject, prompt) pairs whose greedy next token
    is a whole word, that word as the target (so they are recalled before any edit)."""
    tok = transformers.AutoTokenizer.from_pretrained(checkpoint)
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    prompts = sorted({p for facts in FACTS.values() for _, p, _, _ in facts} | {"{} is a"})
    out = []
    for subject in sorted({s for facts in FACTS.values() for s, _, _, _ in facts}):
        for prompt in prompts:
            text = prompt.format(subject)
            with torch.no_grad():
                nxt = int(model(torch.tensor([tok(text)["input_ids"]])).logits[0, -1].argmax())
            word = tok.decode([nxt])
            ids = tok(text, add_special_tokens=False)["input_ids"]
            if (word.startswith(" ") and word.strip().isalpha() and
                    tok(text + word, add_special_tokens=False)["input_ids"] == ids + [nxt]):
                out.append((subject, prompt, word.strip(), "nothing"))
    return out


def test_commit_records_how_many_earlier_facts_it_sampled(base, tmp_path):
    template, ids = history_template(base)
    first = json.loads(ok("show", ids[0], "--json", cwd=template).stdout)["metrics"]
    assert "earlier" not in first  # nothing before the first commit
    for cid, n in zip(ids[1:], (2, 3)):  # C2 after a's 2 facts, C3 after a's and b's 3
        m = json.loads(ok("show", cid, "--json", cwd=template).stdout)["metrics"]["earlier"]
        assert (m["n"], m["live"], m["seed"]) == (n, n, retention.SEED)


def damaged_history(base, tmp_path):
    """The model's own predictions committed first (so recalled), then a commit with a λ
    far below the measured range that writes hard over them (shared subject: shared keys).
    Returns the repository, those facts, both commit ids and the second commit's result."""
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    own = own_predictions(model_dir(base))
    assert len(own) >= 4, own
    first = last_line(ok("commit", write_facts(tmp_path / "own.jsonl", own), cwd=repo))
    for key, value in {"mom2_weight": "0.1", "clamp": "4", "z_steps": "40"}.items():
        ok("config", key, value, cwd=repo)
    r = ok("commit", facts_files(base)["c"], cwd=repo)
    return repo, own, first, last_line(r), r


def test_a_commit_that_loses_earlier_facts_records_it_and_warns(base, tmp_path):
    """What the commit records matches greedy decoding of the exported checkpoints before
    and after it, and it warns."""
    repo, own, first, second, r = damaged_history(base, tmp_path)
    m = json.loads(ok("show", second, "--json", cwd=repo).stdout)["metrics"]["earlier"]
    n = len(own)
    assert (m["n"], m["live"]) == (n, n)

    earlier = [f[:3] for f in own]
    ok("export", first, tmp_path / "before", cwd=repo)
    ok("export", second, tmp_path / "after", cwd=repo)
    before = greedy_recalls(tmp_path / "before", earlier)
    after = greedy_recalls(tmp_path / "after", earlier)
    lost = sum(b and not a for b, a in zip(before, after))
    assert sum(before) >= n - 1 and lost >= 2, (before, after)
    assert m["held_before"] == sum(before) and m["lost"] == lost
    assert m["recalled_before"] == pytest.approx(sum(before) / n)
    assert m["recalled"] == pytest.approx(sum(after) / n)
    assert f"warning: this commit lost {lost} of the {sum(before)} earlier facts" in r.stderr
    assert f"earlier facts recalled {sum(before) / n:.3f}" in r.stdout


def test_a_merge_records_the_recall_of_the_facts_it_does_not_solve_again(base, tmp_path):
    """A merge solves both sides' additions on the merge base's state: the facts that state
    carries are its earlier facts, measured on it before and on the merge after."""
    repo, own, first, _, _ = damaged_history(base, tmp_path)
    ok("branch", "side", first, cwd=repo)
    ok("switch", "side", cwd=repo)
    ok("commit", facts_files(base)["d"], cwd=repo)
    ok("switch", "main", cwd=repo)
    r = ok("merge", "side", cwd=repo)
    merged = last_line(r)
    m = json.loads(ok("show", merged, "--json", cwd=repo).stdout)["metrics"]["earlier"]
    assert (m["n"], m["live"]) == (len(own), len(own))
    ok("export", first, tmp_path / "base", cwd=repo)
    ok("export", merged, tmp_path / "merged", cwd=repo)
    before = greedy_recalls(tmp_path / "base", [f[:3] for f in own])
    after = greedy_recalls(tmp_path / "merged", [f[:3] for f in own])
    assert m["recalled_before"] == pytest.approx(sum(before) / len(own))
    assert m["recalled"] == pytest.approx(sum(after) / len(own)) and before != after
    assert m["lost"] == sum(b and not a for b, a in zip(before, after))
    assert ("warning: this commit lost" in r.stderr) == (retention.retention_warning(m) is not None)


def test_eval_live_lists_the_facts_the_model_does_not_recall(base, tmp_path):
    repo, own, first, second, _ = damaged_history(base, tmp_path)
    live = [(f[:3], first) for f in own] + [((s, p, t), second) for s, p, t, _ in FACTS["c"]]
    ok("export", second, tmp_path / "head", cwd=repo)
    held = greedy_recalls(tmp_path / "head", [f for f, _ in live])
    m = json.loads(ok("eval", "--live", "--json", cwd=repo).stdout)
    assert m["kind"] == "live" and m["n_live"] == len(live) and m["n"] == len(live)
    assert m["recalled"] == pytest.approx(sum(held) / len(live)) and not all(held)
    assert [(x["subject"], x["prompt"], x["target_new"], x["commit"]) for x in m["not_recalled"]] \
        == [(*f, c) for (f, c), h in zip(live, held) if not h]
    text = ok("eval", "--live", cwd=repo).stdout
    assert f"not recalled ({len(live) - sum(held)};" in text and second[:12] in text
    earlier = json.loads(ok("eval", "--live", "--json", "--rev", first, cwd=repo).stdout)
    assert earlier["n_live"] == len(own) and earlier["commit"] == first
    ok("export", first, tmp_path / "first", cwd=repo)
    held_then = greedy_recalls(tmp_path / "first", [f[:3] for f in own])
    assert earlier["recalled"] == pytest.approx(sum(held_then) / len(own))
    assert held_then != held[:len(own)]  # the second commit lost some of them


def test_a_fact_is_recalled_only_when_every_target_token_is_the_top_choice(base):
    """The model's own one-word predictions are recalled; the same first word followed by
    a word it does not predict next (half of the target right) is not."""
    checkpoint = model_dir(base)
    tok = transformers.AutoTokenizer.from_pretrained(checkpoint)
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    facts = []
    for subject, prompt, word, _ in own_predictions(checkpoint):
        ids = torch.tensor([tok(prompt.format(subject) + " " + word)["input_ids"]])
        with torch.no_grad():
            nxt = tok.decode([int(model(ids).logits[0, -1].argmax())])
        facts += [(subject, prompt, word),
                  (subject, prompt, word + (" plays" if nxt != " plays" else " soccer"))]
    scores = retention.recall(model, tok, [Request(*f) for f in facts])
    want = greedy_recalls(checkpoint, facts)
    assert scores.recalled.tolist() == want and want[0::2] == [True] * (len(facts) // 2)
    assert not any(want[1::2])
