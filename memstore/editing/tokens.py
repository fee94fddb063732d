"""Token positions: where the subject's last token sits in a prompt, and target tokens."""
from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from ..errors import ValidationError
from .requests import _short


def pad_right(pad_id: int, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences as a right-padded batch: (ids, attention mask)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for k, s in enumerate(seqs):
        ids[k, : len(s)] = torch.tensor(s)
        mask[k, : len(s)] = 1
    return ids, mask


def target_ids(tokenizer, target: str) -> list[int]:
    """Target tokens as a continuation: a leading space (BPE), never special tokens."""
    text = target if target.startswith(" ") else " " + target
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise ValidationError(f"target {target!r} tokenizes to nothing")
    return ids


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text).input_ids


def subject_start(template: str) -> int:
    """Where the subject begins in `template.format(subject)`: the length of the text before
    the '{}' field once formatted (an escaped '{{' or '}}' before it is one character)."""
    at = 0
    for literal, field_name, _spec, _conversion in string.Formatter().parse(template):
        at += len(literal)
        if field_name is not None:
            return at
    raise ValidationError(f"no '{{}}' where the subject goes in {template!r}")


# the texts read within one operation (read_once): (id of the tokenizer, text) -> the
# tokenizer (held, so that its id is not another's while the operation lasts), ids, offsets
_READ: ContextVar[dict | None] = ContextVar("memstore_tokens_read", default=None)


@contextmanager
def read_once() -> Iterator[None]:
    """Within it (one operation: a solve, a merge), each text is tokenized once per
    tokenizer for subject_last_token, which a solve asks of each prompt several times (its
    check, its z-vectors, its keys, both token rules); nested, the outer one holds. What
    was read goes with it: a tokenizer changed between operations is read afresh."""
    if _READ.get() is not None:
        yield
        return
    held = _READ.set({})
    try:
        yield
    finally:
        _READ.reset(held)


def _ids_and_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """`text`'s token ids and character offsets, read once within read_once."""
    memo = _READ.get()
    got = memo.get((id(tokenizer), text)) if memo is not None else None
    if got is None or got[0] is not tokenizer:
        enc = tokenizer(text, return_offsets_mapping=True)
        got = (tokenizer, tuple(enc.input_ids), tuple(tuple(o) for o in enc["offset_mapping"]))
        if memo is not None:
            memo[(id(tokenizer), text)] = got
    return list(got[1]), list(got[2])


def subject_last_token(tokenizer, template: str, subject: str, context: str = "",
                       rule: int = 2) -> tuple[list[int], int]:
    """Token ids of `template.format(subject)` and the index of the subject's last token.

    The subject must end on a token boundary, or its last token may run on into punctuation
    or spaces only ("tronc, Inc." before ", whose": the tokenizer merges ".,"); a subject
    whose last token runs on into a word ("Micha" in "Michael") cannot be located, and is
    an error.

    `rule` is the settings' token_rule: 1 reads a prompt as memstore did before 5 Dec 2026
    (an appended <eos> kept, the first byte token of a byte-split last character), so that
    the commits written then replay their keys where they were read."""
    where = f" ({context})" if context else ""
    start = subject_start(template)
    text = template.format(subject)
    end_char = start + len(subject)  # one past the subject's last character
    ids, offsets = _ids_and_offsets(tokenizer, text)
    # a tokenizer that ends every text with EOS (add_eos_token): the target follows the
    # prompt, never an end of text (scoring reads it so too: eval.scoring.special_prefix)
    specials = set(getattr(tokenizer, "all_special_ids", ())) if rule >= 2 else set()
    while ids and ids[-1] in specials and offsets[-1][0] == offsets[-1][1]:
        ids.pop()
        offsets.pop()
    # the last token holding the subject's last character: a byte-level tokenizer may spell
    # one character ('é', '京', an emoji) with several tokens, each given its whole span
    holding = [i for i, (a, b) in enumerate(offsets) if a < end_char <= b and b > a]
    last = holding[-1:] if rule >= 2 else holding[:1]
    for i in last:
        b = offsets[i][1]
        if any(c.isalnum() for c in text[end_char:b]):
            raise ValidationError(
                f"cannot locate the subject {subject!r} in the tokens of {_short(text, 200)}: "
                f"its last token runs on past it{where}")
        return ids, i
    raise ValidationError(f"cannot locate the subject {subject!r} in the tokens of {_short(text, 200)}{where}")


def read_alike(tokenizer, templates: list[str], prompt: str, subject: str) -> bool:
    """Whether token rules 1 and 2 read `prompt` in every template the same: the same ids,
    the subject's last token at the same place (false only for a subject that ends in a
    character spelt with several byte tokens, or a tokenizer that appends <eos>)."""
    return all(subject_last_token(tokenizer, t.format(prompt), subject, rule=1)
               == subject_last_token(tokenizer, t.format(prompt), subject, rule=2)
               for t in templates)
