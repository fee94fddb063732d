"""Seeded text sampling from the model itself: prefix templates and statistics text."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .progress import Steps, progress
from .requests import context_length

# Prefix templates as in the reference: texts sampled after these words, then ". {}".
TEMPLATE_STARTS = ("The", "Therefore", "Because", "I", "You")
# Openings for self-sampled statistics text (varied, so the sample covers many contexts).
TEXT_STARTS = ("The", "In", "A", "It", "He", "She", "This", "When", "After", "On", "My",
               "We", "There", "According to", "One", "Many", "His", "Her", "During", "As")


@torch.no_grad()
def sample(model, tokenizer, starts: list[str], max_new_tokens: int, seed: int,
           top_k: int = 0, bar: tqdm | None = None) -> list[str]:
    """Sampled continuations of `starts` (start text included), reproducible from `seed`;
    `bar` counts the tokens drawn (one for every start at each step)."""
    from transformers import GenerationConfig

    texts = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            enc = tokenizer(list(starts), return_tensors="pt", padding=True)
        finally:
            tokenizer.padding_side = side
        context = context_length(model)
        if context:  # never past the model's positions (tiny test models have 128)
            max_new_tokens = max(1, min(max_new_tokens, context - enc.input_ids.shape[1]))
        if bar is not None:
            bar.reset(total=max_new_tokens)
        cfg = GenerationConfig(
            do_sample=True, top_k=top_k or None, top_p=None, temperature=1.0,
            max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=None)
        device = next(model.parameters()).device
        out = model.generate(**{k: v.to(device) for k, v in enc.items()}, generation_config=cfg,
                             streamer=Steps(bar) if bar is not None else None)
        for row in out:
            texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts


def sample_templates(model, tokenizer, n: int, n_tokens: int, seed: int) -> list[str]:
    """["{}"] + n prefix templates "<sampled text>. {}" (braces in sampled text removed)."""
    if n <= 0:
        return ["{}"]
    starts = [TEMPLATE_STARTS[i % len(TEMPLATE_STARTS)] for i in range(n)]
    # seconds on a real model (its first forward passes, its weights read in from disk)
    with progress(total=n_tokens, desc="sampling the templates", unit="tok") as bar:
        texts = sample(model, tokenizer, starts, n_tokens, seed, top_k=5, bar=bar)
    return ["{}"] + [t.replace("{", " ").replace("}", " ").strip() + ". {}" for t in texts]
