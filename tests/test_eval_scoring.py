"""Batched scoring against a naive one-pair-at-a-time computation, tokenization rules, and
batched generation."""
from dataclasses import replace

import pytest
import torch
from tiny import FAMILIES, tiny_config, tiny_model, tiny_tokenizer
from tokenizers import processors

from memstore.eval import scoring
from memstore.eval.generation import generate, greedy_generate
from memstore.eval.scoring import encode_pairs, score_targets, special_prefix, target_nll
from memstore.models.adapters import find_adapter

# Mixed lengths (1 to ~15 tokens of prompt, 1 to ~12 of target), shared prompts, a prompt
# ending in whitespace: padding-heavy batches.
PROMPTS = [
    "The capital of France is",
    "The capital of France is",
    "Michael Jordan plays",
    "Which family does Ramalinaceae belong to? It belongs to the family of",
    "Which family does Ramalinaceae belong to? It belongs to the family of",
    "Which family does Ramalinaceae belong to? It belongs to the family of",
    "Q: ",
    "I",
]
TARGETS = ["Paris", "Rome", "basketball in Barcelona", "Lecanorales", "Honda", "x",
           "English", "Microsoft makes Windows and Xbox"]


def naive(model, tokenizer, prompts, targets):
    """Full logits of prompt + target, one pair at a time."""
    nll, top1 = [], []
    with torch.no_grad():
        for p, t in encode_pairs(tokenizer, prompts, targets):
            logits = model(torch.tensor([p + t])).logits[0, len(p) - 1 : -1].float()
            logp = torch.log_softmax(logits, -1)
            nll.append(-logp[torch.arange(len(t)), t].mean())
            top1.append((logits.argmax(-1) == torch.tensor(t)).float().mean())
    return torch.stack(nll), torch.stack(top1)


@pytest.mark.parametrize("add_bos", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_batched_scores_match_naive(family, add_bos):
    model, tok = tiny_model(family), tiny_tokenizer(add_bos)
    ref_nll, ref_top1 = naive(model, tok, PROMPTS, TARGETS)
    assert ref_nll.std() > 0.1  # the scores depend on the context: a mask error would show
    packs = find_adapter(model.config.model_type).packed_scoring
    if not packs:  # the plain path only (Qwen 3.5: test_packing_is_off_where_it_would_be_wrong)
        with pytest.raises(ValueError, match="no packed scoring"):
            score_targets(model, tok, PROMPTS, TARGETS, packed=True)
    for packed in (True, False)[not packs:]:
        for batch_tokens in (24, 4096):  # one sequence per batch / everything in one batch
            got = score_targets(model, tok, PROMPTS, TARGETS, batch_tokens, packed=packed)
            torch.testing.assert_close(got.nll, ref_nll, atol=1e-5, rtol=0)
            assert torch.equal(got.top1, ref_top1)


@pytest.mark.parametrize("family", [f for f in FAMILIES
                                    if not find_adapter(tiny_config(f, 8).model_type).packed_scoring])
def test_packing_is_off_where_it_would_be_wrong(family, monkeypatch):
    """Qwen 3.5's Gated DeltaNet layers take no attention mask (padding's only): targets
    packed behind one prompt would read the targets before them. Packing forced on scores
    them wrong; the adapter's packed_scoring=False is why they are scored one by one."""
    model, tok = tiny_model(family), tiny_tokenizer()
    ref_nll, _ = naive(model, tok, PROMPTS, TARGETS)
    adapter = replace(find_adapter(model.config.model_type), packed_scoring=True)
    monkeypatch.setattr(scoring, "find_adapter", lambda _: adapter)
    got = score_targets(model, tok, PROMPTS, TARGETS, 4096, packed=True)
    assert (got.nll - ref_nll).abs().max() > 1e-2


def test_target_nll_depends_on_the_prompt():
    model, tok = tiny_model("llama"), tiny_tokenizer()
    a, b = target_nll(model, tok, ["The capital of France is", "Michael Jordan plays"], ["Paris", "Paris"])
    assert abs(a - b) > 1e-3


def test_scoring_uses_eval_mode_and_restores_training():
    model, tok = tiny_model("gpt2"), tiny_tokenizer()  # GPT-2 has dropout 0.1
    expected = target_nll(model, tok, PROMPTS, TARGETS)
    model.train()
    assert torch.equal(target_nll(model, tok, PROMPTS, TARGETS), expected)
    assert model.training


def test_target_tokens_have_a_leading_space_and_no_specials():
    tok = tiny_tokenizer(add_bos=True)
    (p1, t1), (_, t2) = encode_pairs(tok, ["The capital of France is", "Answer: "], ["Paris ", " Paris"])
    bos = tok.bos_token_id
    assert p1[0] == bos and p1[1:] == tok("The capital of France is", add_special_tokens=False).input_ids
    assert t1 == tok(" Paris", add_special_tokens=False).input_ids
    assert t2 == tok("Paris", add_special_tokens=False).input_ids  # the prompt ends with a space
    assert bos not in t1 + t2


def test_prompt_gets_only_the_leading_special_tokens():
    tok = tiny_tokenizer()
    assert special_prefix(tok) == []
    bos, eos = tok.bos_token_id, tok.eos_token_id
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)]
    )
    assert special_prefix(tok) == [bos]
    [(prompt, _)] = encode_pairs(tok, ["Michael Jordan plays"], ["golf"])
    assert prompt[0] == bos and eos not in prompt


def test_empty_prompt_is_conditioned_on_bos():
    tok = tiny_tokenizer()
    [(prompt, _)] = encode_pairs(tok, [""], ["Paris"])
    assert prompt == [tok.bos_token_id]


@pytest.mark.parametrize("family, add_bos", [("gpt2", False), ("llama", True),
                                             ("qwen3_5_text", True)])
def test_batched_greedy_generation_matches_one_at_a_time(family, add_bos):
    model, tok = tiny_model(family), tiny_tokenizer(add_bos)
    prompts = ["The capital of France is", "I", "Which family does Ramalinaceae belong to?"]
    batched = greedy_generate(model, tok, prompts, max_new_tokens=6)
    assert batched == [greedy_generate(model, tok, [p], max_new_tokens=6)[0] for p in prompts]
    assert len(set(batched)) == len(prompts)  # not one row's text copied to all


def test_sampling_is_seeded():
    model, tok = tiny_model("gpt_neox"), tiny_tokenizer()
    prompts = ["The capital of France is", "Michael Jordan plays"]
    a = generate(model, tok, prompts, max_new_tokens=8, top_k=50, seed=1)
    assert a == generate(model, tok, prompts, max_new_tokens=8, top_k=50, seed=1)
    assert a != generate(model, tok, prompts, max_new_tokens=8, top_k=50, seed=2)
