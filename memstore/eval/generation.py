"""Batched text generation (for fluency and for `memstore ask`) and ROME's n-gram entropy.

Generation left-pads prompts to batch them, so every row's last prompt token sits at the
end. Sampling is seeded: the same inputs, batch size and seed give the same texts.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from ..editing.progress import Steps, progress
from .scoring import eval_mode, special_prefix

WORD = re.compile(r"\w+|[^\w\s]")


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 50,
    top_k: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    with_prompt: bool = False,
    stop: Callable[[str], bool] | None = None,
    steps=None,
) -> list[str]:
    """The continuation of each prompt (without the prompt, as it reads after it: " Paris"
    after "is"), greedy when `top_k` is None, else sampled from the `top_k` most likely
    tokens with the recorded `seed`. Generation
    stops at the EOS token; special tokens are left out of the text. Each step reads all the
    weights, so larger batches are cheaper per text (SmolLM2 on one CPU thread: 64 rows take
    0.7x the time of 16).

    `with_prompt=True` returns the prompt's tokens and the continuation's decoded as one
    text, as ROME's `generate_fast` does. The prompt string plus the continuation decoded
    alone is not that text on SentencePiece tokenizers (Llama 2, Mistral), whose decoding
    drops the space before the first word: "is" + "Paris" came out as "isParis".

    `stop`: a row's generation ends before `max_new_tokens` once `stop` holds for its text
    so far (as it would be returned) and the next token only adds whole characters to that
    text (in NFC): decoding one more token may rewrite the end of a text (a combining
    accent after 'e', a character's later bytes), so a text is judged one token late
    (bisect's read-on, once TEXT is decided).

    `steps`: a progress bar (memstore.editing.progress) moved by one a generated token, in
    place of the bar that counts the texts (bisect's read-on: one long text)."""
    if not prompts:
        return []
    prefix = special_prefix(tokenizer)
    encoded = [prefix + ids for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    pad = _pad_id(tokenizer)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=top_k is not None,
        top_k=top_k,
        top_p=None,
        temperature=None,
        num_beams=1,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    device = model.get_input_embeddings().weight.device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    texts: dict[int, str] = {}
    devices = [device] if device.type == "cuda" else []
    with eval_mode(model), torch.random.fork_rng(devices=devices), \
            progress(steps is None, total=len(order), desc="generating", unit="text") as bar:
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.tensor(
                [[pad] * (width - len(encoded[i])) + encoded[i] for i in rows], device=device
            )
            mask = torch.tensor(
                [[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in rows],
                device=device,
            )
            until = None if stop is None else StoppingCriteriaList(
                [_Until(stop, tokenizer, [encoded[i] for i in rows], width, with_prompt)])
            counted = {} if steps is None or steps.disable else {"streamer": Steps(steps)}
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                 stopping_criteria=until, **counted)
            for i, row in zip(rows, out[:, width:].tolist()):
                texts[i] = _decode(tokenizer, encoded[i], row, with_prompt)
            bar.update(len(rows))
    return [texts[i] for i in range(len(encoded))]


class _Until(StoppingCriteria):
    """generate's `stop`: a row is done once its text one token back (decoded as returned)
    holds it and this token only added whole characters to it."""

    def __init__(self, stop: Callable[[str], bool], tokenizer, prompts: list[list[int]],
                 width: int, with_prompt: bool) -> None:
        self.stop, self.tokenizer, self.prompts = stop, tokenizer, prompts
        self.width, self.with_prompt = width, with_prompt
        self.before: list[str | None] = [None] * len(prompts)  # each row's text a token back

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = []
        for i, (prompt, row) in enumerate(zip(self.prompts, input_ids[:, self.width:].tolist())):
            text = _decode(self.tokenizer, prompt, row, self.with_prompt)
            before, self.before[i] = self.before[i], text
            done.append(before is not None and _extends(text, before) and self.stop(before))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _extends(text: str, before: str) -> bool:
    """`text` is `before` and more, in NFC, both ending at a whole character (no U+FFFD
    for bytes that may go on)."""
    text, before = unicodedata.normalize("NFC", text), unicodedata.normalize("NFC", before)
    return text.startswith(before) and not text.endswith("\ufffd") \
        and not before.endswith("\ufffd")


def _decode(tokenizer, prompt: list[int], row: list[int], with_prompt: bool) -> str:
    """The prompt's and the continuation's tokens decoded as one text, less the prompt's
    own text unless `with_prompt`: the continuation as it reads after the prompt (decoded
    alone, a SentencePiece continuation loses the space before its first word). Where the
    whole does not begin with the prompt's text (a character split between the two), the
    continuation decoded alone."""
    whole = tokenizer.decode(prompt + row, skip_special_tokens=True)
    if with_prompt:
        return whole
    head = tokenizer.decode(prompt, skip_special_tokens=True)
    if whole.startswith(head):
        return whole[len(head):]
    return tokenizer.decode(row, skip_special_tokens=True)


def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 50,
                    stop: Callable[[str], bool] | None = None, steps=None) -> list[str]:
    """The greedy continuation of each prompt (without the prompt); `stop` and `steps` as
    generate's."""
    return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, stop=stop,
                    steps=steps)


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id):
        if candidate is not None:
            return candidate
    return 0


def n_gram_entropy(text: str, ns: Sequence[int] = (2, 3), weights: Sequence[float] = (2 / 3, 4 / 3)) -> float:
    """ROME's `compute_n_gram_entropy`: the mean over n of weight_n x the entropy (bits) of
    the n-gram frequency distribution of the text's words. With the defaults:
    (2/3 H2 + 4/3 H3) / 2. Words come from a regex (runs of word characters, single
    punctuation marks) instead of nltk.word_tokenize. A text with no n-grams has entropy 0.

    This is ROME's code, whose value is half of the formula in docs/memit.md; ROME's tables
    (and the paper's GE 622.4) show it x 100."""
    words = WORD.findall(text)
    terms = []
    for n, w in zip(ns, weights):
        counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        total = sum(counts.values())
        entropy = -sum(c / total * math.log2(c / total) for c in counts.values())
        terms.append(w * entropy)
    return sum(terms) / len(terms)


def mean_n_gram_entropy(texts: Sequence[str]) -> float:
    """ROME's `n_gram_entropy` (arithmetic): the mean of `n_gram_entropy` over texts."""
    if not texts:
        return float("nan")
    return sum(n_gram_entropy(t) for t in texts) / len(texts)


__all__ = ["generate", "greedy_generate", "mean_n_gram_entropy", "n_gram_entropy"]
