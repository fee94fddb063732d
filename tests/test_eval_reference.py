"""Every metric of `memstore eval` against an independent computation on a tiny model, as the
reference code (ROME/MEMIT's eval_utils_counterfact.py, eval_utils_zsre.py, summarize.py)
defines it. Nothing here goes through memstore's scoring, tokenization or generation: each
pair is tokenized with its own calls (the prompt as the tokenizer encodes it, BOS included,
then `tok(" " + target)` without special tokens), run through the model's full forward pass
one at a time, and its log-probs summed here.

The records hold the edge cases: a target whose tokens are a prefix of the true object's, one
whose first token is the true one's, multi-token targets, an empty neighbourhood list, a
record with no paraphrases (CounterFact and zsRE)."""
import math
import re
from collections import Counter

import pytest
import torch
import transformers
from tiny import CORPUS, tiny_model, tiny_tokenizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from memstore.editing.requests import Request
from memstore.eval.data import EvalRecord, ZsreRecord
from memstore.eval.generation import greedy_generate
from memstore.eval.metrics import counterfact_metrics, zsre_metrics, zsre_per_record

CASES = [("llama", True), ("gpt2", False)]  # a tokenizer that adds BOS, one that does not


def reference_pair(model, tok, prompt: str, target: str) -> tuple[float, float]:
    """(mean NLL of the target's tokens, share of them that are the argmax) after the
    prompt, teacher forced: ROME's test_batch_prediction / MEMIT's zsRE accuracy."""
    p = tok(prompt)["input_ids"]
    t = tok(" " + target, add_special_tokens=False)["input_ids"]
    # the reference tokenizes f"{prompt} {target}" in one go and splits it at len(prompt)
    assert tok(f"{prompt} {target}")["input_ids"] == p + t
    with torch.no_grad():
        logits = model(torch.tensor([p + t])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    nll = hits = 0.0
    for j, token in enumerate(t):
        row = len(p) + j - 1  # the position whose output predicts target token j
        nll -= logp[row, token].item()
        hits += float(logits[row].argmax().item() == token)
    return nll / len(t), hits / len(t)


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def reference_counterfact(model, tok, request: Request) -> dict[str, float]:
    """summarize.py's per-case values: the share of prompts where the right object has the
    lower mean NLL (ties lose), and the mean of P(right) - P(wrong), P = exp(-mean NLL)."""
    out = {}
    kinds = {"efficacy": [request.text], "paraphrase": list(request.paraphrases),
             "neighborhood": list(request.neighborhood)}
    for name, prompts in kinds.items():
        wins, gaps = [], []
        for prompt in prompts:
            new = reference_pair(model, tok, prompt, request.target_new)[0]
            true = reference_pair(model, tok, prompt, request.target_true)[0]
            right, wrong = (true, new) if name == "neighborhood" else (new, true)
            wins.append(float(right < wrong))
            gaps.append(math.exp(-right) - math.exp(-wrong))
        out[name], out[f"{name}_magnitude"] = mean(wins), mean(gaps)
    return out


COUNTERFACT = [
    # multi-token targets, two paraphrases, three neighbours
    Request("Danielle Darrieux", "The mother tongue of {} is", "English", "French",
            ("Danielle Darrieux speaks", "Her language is"),
            ("Toko Yasuda speaks", "The mother tongue of Michael Jordan is", "I speak"),
            relation_id="r1"),
    # the new target's tokens are a prefix of the true one's (" Honda" | " Honda Civic")
    Request("Civic", "{} is produced by", "Honda", "Honda Civic", ("Civic, created by",),
            ("Porsche 911, created by", "Apple A5 was created by"), relation_id="r2"),
    # the first token is the true one's (" Japan" + "es" "e" | " Japan"); no paraphrases
    Request("Toko Yasuda", "The official language of {} is", "Japanese", "Japan", (),
            ("The official language of Japan is",), relation_id="r3"),
    # an empty neighbourhood list
    Request("Paris", "The capital of France is", "Rome", "Paris",
            ("France's capital is", "The capital city of France is"), (), relation_id="r4"),
    # neither paraphrases nor neighbours; two tokens in common (" Honda", " ")
    Request("Honda", "{} makes the", "Honda Accord", "Honda Civic", relation_id="r5"),
]


@pytest.mark.parametrize("family, add_bos", CASES)
def test_counterfact_matches_the_reference(family, add_bos):
    model, tok = tiny_model(family), tiny_tokenizer(add_bos)
    m = counterfact_metrics(model, tok, COUNTERFACT, by_relation=True)
    ref = [reference_counterfact(model, tok, r) for r in COUNTERFACT]
    keys = [f"{k}{s}" for k in ("efficacy", "paraphrase", "neighborhood")
            for s in ("", "_magnitude")]
    for r, expected in zip(COUNTERFACT, ref):  # per request (one relation each)
        got = m["by_relation"][r.relation_id]
        for k in keys:
            if math.isnan(expected[k]):
                assert math.isnan(got[k]), (r.relation_id, k)
            else:
                assert got[k] == pytest.approx(expected[k], rel=1e-4, abs=1e-7), (r.relation_id, k)
    # averaged per request, then over the requests that have such prompts
    for k in keys:
        assert m[k] == pytest.approx(mean([e[k] for e in ref if not math.isnan(e[k])]),
                                     rel=1e-4, abs=1e-7), k
    parts = [m["efficacy"], m["paraphrase"], m["neighborhood"]]
    assert m["score"] == pytest.approx(3 / sum(1 / x for x in parts) if min(parts) > 0 else 0.0)
    assert (m["n"], m["n_skipped"]) == (5, 0)
    # guard: the records are not all one way, so a flipped comparison would show
    assert {e["efficacy"] for e in ref} == {0.0, 1.0}
    assert 0 < m["neighborhood"] < 1


def test_multi_token_targets_compare_mean_token_nll_not_the_sum():
    """" Honda" (1 token) against " Honda Civic" (5): the first token's NLL is the same, so
    only the mean (not the sum, which always favours the shorter one) decides."""
    model, tok = tiny_model("llama"), tiny_tokenizer(True)
    r = COUNTERFACT[1]
    prompts = [r.text, *r.paraphrases, *r.neighborhood]
    new = [reference_pair(model, tok, p, r.target_new)[0] for p in prompts]
    true = [reference_pair(model, tok, p, r.target_true)[0] for p in prompts]
    assert any(n > t for n, t in zip(new, true))  # the mean favours the longer one somewhere
    m = counterfact_metrics(model, tok, [r])
    assert m["efficacy"] == float(new[0] < true[0])
    assert m["neighborhood"] == mean([float(t < n) for n, t in zip(new[2:], true[2:])])


# -- zsRE -----------------------------------------------------------------------------------


def trained_tiny(texts: list[str], family: str = "llama", tok=None):
    """A tiny model fitted a few steps on the texts: top-1 accuracies neither all 0 nor all 1
    (a random model's argmax is almost never the answer), text made of words."""
    model, tok = tiny_model(family), tok or tiny_tokenizer(True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    ids = [torch.tensor([tok(t)["input_ids"]]) for t in texts]
    torch.manual_seed(0)
    model.train()
    for _ in range(25):
        for x in ids:
            opt.zero_grad()
            model(x, labels=x).loss.backward()
            opt.step()
    return model.eval(), tok


ZSRE = [
    ZsreRecord(Request("Ramalinaceae", "Which family does {} belong to?", "Lecanorales",
                       paraphrases=("What family is Ramalinaceae in?",)),
               "nq question: who wrote the song", "The String"),
    ZsreRecord(Request("Apple A5", "Who created {}?", "Google"),  # no rephrasing
               "nq question: which language is spoken in Japan", "Japanese"),
    ZsreRecord(Request("Toko Yasuda", "What does {} play?", "the guitar",
                       paraphrases=("Which instrument does Toko Yasuda play?",
                                    "Toko Yasuda plays which instrument?")),
               "nq question: what is the capital of Italy", "Rome"),
]
FITTED = [  # the texts the model is fitted on: some answers, some NQ answers, partly
    "Which family does Ramalinaceae belong to? Lecanorales",
    "Who created Apple A5? Google",
    "nq question: who wrote the song? The String",
    "What does Toko Yasuda play? the",
    "Toko Yasuda plays which instrument? the guitar",
]


def test_zsre_matches_the_reference():
    model, tok = trained_tiny(FITTED)
    per = zsre_per_record(model, tok, ZSRE)
    m = zsre_metrics(model, tok, ZSRE)
    expected: dict[str, list[float]] = {"efficacy": [], "paraphrase": [], "specificity": []}
    for rec in ZSRE:
        r = rec.request
        # eval_utils_zsre.py: one entry per answer token, averaged per record
        expected["efficacy"].append(reference_pair(model, tok, r.text, r.target_new)[1])
        tokens = [reference_pair(model, tok, p, r.target_new)[1] for p in r.paraphrases]
        expected["paraphrase"].append(mean(tokens))
        # dsets/zsre.py: the NQ answer's tokens " " + loc_ans after loc + "?"
        expected["specificity"].append(reference_pair(model, tok, rec.loc + "?", rec.loc_ans)[1])
    for k, values in expected.items():
        for got, want in zip(per[k], values):
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want), k
        assert m[k] == pytest.approx(mean([v for v in values if not math.isnan(v)])), k
    assert m["n"] == 3 and math.isnan(per["paraphrase"][1])
    # guard: fractional accuracies, so per-token shares (not all-or-nothing) are tested
    values = [v for vs in expected.values() for v in vs if not math.isnan(v)]
    assert any(0 < v < 1 for v in values) and max(values) == 1.0 and min(values) < 1.0


# -- generation entropy ---------------------------------------------------------------------


def reference_ngram_entropy(text: str) -> float:
    """compute_n_gram_entropy: mean of 2/3 x H(bigrams) and 4/3 x H(trigrams), in bits.
    Words: runs of word characters and single punctuation marks (memstore's stand-in for
    nltk.word_tokenize, a difference on purpose; the same on these texts' words)."""
    words = re.findall(r"\w+|[^\w\s]", text)
    weighted = []
    for n, weight in ((2, 2 / 3), (3, 4 / 3)):
        grams = Counter(zip(*(words[i:] for i in range(n))))
        total = sum(grams.values())
        h = sum(-c / total * math.log(c / total) / math.log(2) for c in grams.values())
        weighted.append(weight * h)
    return sum(weighted) / 2


def test_n_gram_entropy_of_a_hand_made_text():
    from memstore.eval.generation import n_gram_entropy

    text = "the cat sat on the mat and the cat sat on the hat , the end ."
    assert n_gram_entropy(text) == pytest.approx(reference_ngram_entropy(text))
    # by hand: 16 bigrams, 4 of them twice; 15 trigrams, 3 of them twice
    h2 = 4 * 2 / 16 * math.log2(16 / 2) + 8 / 16 * math.log2(16)
    h3 = 3 * 2 / 15 * math.log2(15 / 2) + 9 / 15 * math.log2(15)
    assert reference_ngram_entropy(text) == pytest.approx((2 / 3 * h2 + 4 / 3 * h3) / 2)


GENERATION = [
    EvalRecord(COUNTERFACT[0], generation_prompts=("Danielle Darrieux is", "Her language is")),
    EvalRecord(COUNTERFACT[3], generation_prompts=("The capital of France is",)),
    EvalRecord(COUNTERFACT[4]),  # no generation prompts: its own prompt
]


def sentencepiece_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A Llama-2 / Mistral style tokenizer ("▁" marks a word's leading space, and decoding
    drops the first one): a continuation decoded alone loses the space before its first word.
    Trained on the tiny corpus, ids within the tiny models' vocabulary."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(CORPUS, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<bos>", "<eos>"], show_progress=False))
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


@pytest.mark.parametrize("family, tokenizer", [
    ("llama", lambda: tiny_tokenizer(True)),
    ("gpt2", lambda: tiny_tokenizer(False)),
    ("llama", sentencepiece_tokenizer),
], ids=["llama-bos", "gpt2", "llama-sentencepiece"])
def test_generation_entropy_matches_the_reference(family, tokenizer):
    """GE of greedy text: the prompt's tokens and the tokens generated after them decoded
    together (generate_fast returns both as one text), per text, averaged per record, then
    over records."""
    model, tok = trained_tiny(CORPUS, family, tokenizer())
    new_tokens = 12
    per_record, glued = [], []
    for rec in GENERATION:
        texts = []
        for prompt in rec.generation_prompts or (rec.request.text,):
            ids = torch.tensor([tok(prompt)["input_ids"]])
            with torch.no_grad():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=new_tokens, pad_token_id=tok.pad_token_id,
                                     eos_token_id=tok.eos_token_id)
            texts.append(tok.decode(out[0], skip_special_tokens=True))
            alone = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            glued.append(prompt + alone != texts[-1])
        assert all(len(re.findall(r"\w+|[^\w\s]", t)) > 4 for t in texts)
        per_record.append(mean([reference_ngram_entropy(t) for t in texts]))
    got = counterfact_metrics(model, tok, GENERATION, generation=True,
                              generation_tokens=new_tokens, generation_top_k=None)
    assert got["generation_entropy"] == pytest.approx(mean(per_record), rel=1e-6)
    # guard: only the SentencePiece tokenizer tells the prompt + the continuation decoded
    # alone ("isParis") from the whole decoded as one ("is Paris")
    assert any(glued) == (tokenizer is sentencepiece_tokenizer)


@pytest.mark.parametrize("tokenizer", [sentencepiece_tokenizer, lambda: tiny_tokenizer(True)],
                         ids=["sentencepiece", "byte-level-bos"])
def test_continuation_reads_after_its_prompt(tokenizer):
    """`memstore ask` prints the prompt and then the continuation: the two must read as the
    prompt's tokens and the generated ones decoded together. A SentencePiece continuation
    decoded alone loses its leading space ("The capital of France isParis")."""
    model, tok = trained_tiny(CORPUS, "llama", tokenizer())
    prompts = ["The capital of France is", "Michael Jordan plays"]
    got = greedy_generate(model, tok, prompts, max_new_tokens=6)
    for prompt, continuation in zip(prompts, got):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=6, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        whole = tok.decode(out[0], skip_special_tokens=True)
        assert prompt + continuation == whole
        assert continuation.startswith(" ")  # guard: a word follows, after its space
