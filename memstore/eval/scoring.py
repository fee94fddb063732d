"""Teacher-forced scoring of targets as continuations of prompts, batched by tokens.

A target is tokenized as `" " + target.strip()` after the prompt (no space when the prompt
ends with whitespace), as in ROME's evaluation, with no special tokens of its own; the prompt
gets the tokenizer's BOS only if the tokenizer adds one by itself.

Fast path (families whose adapter says `packed_scoring`): all targets that share a prompt go into ONE
sequence, `prompt + target_a[:-1] + target_b[:-1] + ...`, with a 4D attention mask that lets
each target see the prompt and itself only, and position ids that restart after the prompt,
so the prompt is computed once. Sequences are sorted by length, right padded and batched by
tokens. The base model returns hidden states; the LM head is applied at the scored positions
only. Other architectures take the plain path: one right-padded sequence per pair, full
logits from the model's own forward. (A custom 4D mask replaces sliding-window masks too:
fine while prompts are shorter than the window, thousands of tokens for Mistral/Gemma 2.)
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..editing.progress import progress
from ..errors import ValidationError
from ..models.adapters import Adapter, find_adapter

LM_HEAD_CHUNK = 512  # scored positions per LM-head call: bounds the (positions x vocab) logits

# Tokens per forward pass when not given. On CPU, SmolLM2-135M scores CounterFact fastest with
# 256-1024 (4096 is 1.5x and 16384 3.5x slower: activations fall out of cache).
CPU_BATCH_TOKENS = 1024
GPU_BATCH_TOKENS = 8192


@dataclass(frozen=True)
class TargetScores:
    """Per (prompt, target) pair: `nll`, the mean per-token negative log-likelihood of the
    target; `top1`, the share of target tokens that are the argmax prediction."""

    nll: torch.Tensor
    top1: torch.Tensor


# -- tokenization ------------------------------------------------------------------------------


def special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text by itself (e.g. Llama's BOS), else []."""
    text = "a b"
    with_special = tokenizer(text)["input_ids"]
    bare = tokenizer(text, add_special_tokens=False)["input_ids"]
    for i in range(len(with_special) - len(bare) + 1):
        if with_special[i : i + len(bare)] == bare:
            return list(with_special[:i])
    return []


def target_text(prompt: str, target: str) -> str:
    """The target as it continues the prompt: with a leading space unless the prompt ends
    with whitespace."""
    target = target.strip()
    return target if prompt[-1:].isspace() else " " + target


def encode_pairs(
    tokenizer, prompts: Sequence[str], targets: Sequence[str]
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, target ids) per pair. The target's ids are those that follow the prompt's
    when the two are tokenized together (robust to SentencePiece's prefix-space handling),
    or the target's own when the joint tokenization does not start with the prompt's."""
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    prefix = special_prefix(tokenizer)
    conts = [target_text(p, t) for p, t in zip(prompts, targets)]
    unique = list(dict.fromkeys(prompts))
    bare = dict(zip(unique, _ids(tokenizer, unique)))
    joint = _ids(tokenizer, [p + c for p, c in zip(prompts, conts)])
    alone = _ids(tokenizer, conts)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    out = []
    for p, t, j, a in zip(prompts, targets, joint, alone):
        p_ids = bare[p]
        t_ids = j[len(p_ids) :] if j[: len(p_ids)] == p_ids and len(j) > len(p_ids) else a
        full_prompt = prefix + p_ids
        if not full_prompt:  # nothing to condition the first target token on
            if bos is None:
                raise ValidationError("empty prompt and the tokenizer has no BOS/EOS token")
            full_prompt = [bos]
        if not t_ids or not t.strip():
            raise ValidationError(f"empty target for prompt {p!r}")
        out.append((full_prompt, list(t_ids)))
    return out


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


# -- scoring -------------------------------------------------------------------------------------


@contextmanager
def eval_mode(model) -> Iterator[None]:
    """Dropout off and no gradients while scoring; restores the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def score_targets(
    model,
    tokenizer,
    prompts: Sequence[str],
    targets: Sequence[str],
    batch_tokens: int | None = None,
    packed: bool | None = None,
) -> TargetScores:
    """Mean NLL and top-1 accuracy of each target after its prompt (see the module doc).

    `batch_tokens` bounds rows x padded length per forward pass (default: `CPU_BATCH_TOKENS`
    or `GPU_BATCH_TOKENS` by the model's device). `packed` forces the fast
    (True) or the plain (False) path; None picks the fast one where the family's adapter
    allows it."""
    pairs = encode_pairs(tokenizer, prompts, targets)
    n = len(pairs)
    nll = torch.zeros(n, dtype=torch.float64)
    hits = torch.zeros(n, dtype=torch.float64)
    if n == 0:
        return TargetScores(nll.float(), hits.float())
    adapter = find_adapter(getattr(model.config, "model_type", ""))
    if packed is None:
        packed = adapter is not None and adapter.packed_scoring
    if packed and (adapter is None or not adapter.packed_scoring):
        raise ValueError(f"no packed scoring for model type {model.config.model_type!r}")
    sequences = _pack(pairs) if packed else _singles(pairs)
    sequences.sort(key=lambda s: len(s.ids))
    if batch_tokens is None:
        cpu = _device(model).type == "cpu"
        batch_tokens = CPU_BATCH_TOKENS if cpu else GPU_BATCH_TOKENS
    with eval_mode(model), progress(total=sum(len(s.ids) for s in sequences), desc="scoring",
                                    unit="tok") as bar:
        for batch in _batches(sequences, batch_tokens):
            if packed:
                logits = _packed_logits(model, adapter, batch)
            else:
                logits = _plain_logits(model, batch)
            labels = torch.tensor([lab for s in batch for lab in s.labels], device=logits.device)
            logp = torch.log_softmax(logits.float(), dim=-1)
            token_nll = -logp.gather(1, labels[:, None])[:, 0]
            token_hit = (logits.argmax(-1) == labels).double()
            owner = torch.tensor([o for s in batch for o in s.owners])
            nll.index_add_(0, owner, token_nll.double().cpu())
            hits.index_add_(0, owner, token_hit.cpu())
            bar.update(sum(len(s.ids) for s in batch))
    lengths = torch.tensor([len(t) for _, t in pairs], dtype=torch.float64)
    return TargetScores((nll / lengths).float(), (hits / lengths).float())


def target_nll(
    model, tokenizer, prompts: Sequence[str], targets: Sequence[str], batch_tokens: int | None = None
) -> torch.Tensor:
    """Mean per-token NLL of each target as a continuation of its prompt, shape (n,)."""
    return score_targets(model, tokenizer, prompts, targets, batch_tokens).nll


def top1_accuracy(
    model, tokenizer, prompts: Sequence[str], targets: Sequence[str], batch_tokens: int | None = None
) -> torch.Tensor:
    """Per pair, the share of target tokens that are the model's argmax prediction under
    teacher forcing (zsRE's accuracy), shape (n,)."""
    return score_targets(model, tokenizer, prompts, targets, batch_tokens).top1


# -- sequences and batches ------------------------------------------------------------------------


@dataclass
class _Sequence:
    ids: list[int]
    positions: list[int]
    segments: list[int]  # 0: prompt, k > 0: the k-th target; attention stays within 0 and own
    scored: list[int]  # index in `ids` whose output predicts each label
    labels: list[int]
    owners: list[int]  # pair index of each label


def _pack(pairs: list[tuple[list[int], list[int]]]) -> list[_Sequence]:
    """One sequence per distinct prompt, holding all of its targets."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (p, _) in enumerate(pairs):
        groups.setdefault(tuple(p), []).append(i)
    out = []
    for prompt, members in groups.items():
        s = _Sequence(list(prompt), list(range(len(prompt))), [0] * len(prompt), [], [], [])
        for k, i in enumerate(members, start=1):
            target = pairs[i][1]
            start = len(s.ids)
            s.ids += target[:-1]
            s.positions += range(len(prompt), len(prompt) + len(target) - 1)
            s.segments += [k] * (len(target) - 1)
            s.scored += [len(prompt) - 1] + list(range(start, start + len(target) - 1))
            s.labels += target
            s.owners += [i] * len(target)
        out.append(s)
    return out


def _singles(pairs: list[tuple[list[int], list[int]]]) -> list[_Sequence]:
    out = []
    for i, (p, t) in enumerate(pairs):
        ids = p + t[:-1]
        scored = list(range(len(p) - 1, len(ids)))
        out.append(_Sequence(ids, list(range(len(ids))), [0] * len(ids), scored, t, [i] * len(t)))
    return out


def _batches(sequences: list[_Sequence], batch_tokens: int) -> Iterator[list[_Sequence]]:
    """Consecutive runs (sequences are sorted by length) with rows x max length bounded."""
    batch: list[_Sequence] = []
    for s in sequences:
        if batch and (len(batch) + 1) * len(s.ids) > batch_tokens:
            yield batch
            batch = []
        batch.append(s)
    if batch:
        yield batch


def _device(model) -> torch.device:
    return model.get_input_embeddings().weight.device


def _pad(batch: list[_Sequence], field: str, value: int, device) -> torch.Tensor:
    width = max(len(s.ids) for s in batch)
    rows = [getattr(s, field) + [value] * (width - len(s.ids)) for s in batch]
    return torch.tensor(rows, device=device)


def _flat_index(batch: list[_Sequence], width: int, device) -> torch.Tensor:
    """Row-major indices of the scored positions in the (rows x width) batch."""
    flat = [r * width + j for r, s in enumerate(batch) for j in s.scored]
    return torch.tensor(flat, device=device)


def _packed_logits(model, adapter: Adapter, batch: list[_Sequence]):
    device = _device(model)
    dtype = model.get_input_embeddings().weight.dtype
    ids = _pad(batch, "ids", 0, device)
    positions = _pad(batch, "positions", 0, device)
    segments = _pad(batch, "segments", -1, device)  # -1: padding
    width = ids.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    same = segments[:, :, None] == segments[:, None, :]
    allowed = causal & (same | (segments[:, None, :] == 0))
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    out = model.base_model(
        input_ids=ids, attention_mask=mask[:, None], position_ids=positions, use_cache=False
    )
    hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])
    where = _flat_index(batch, width, device)
    chunks = [where[i : i + LM_HEAD_CHUNK] for i in range(0, len(where), LM_HEAD_CHUNK)]
    return torch.cat([adapter.logits(model, hidden[c]) for c in chunks])


def _plain_logits(model, batch: list[_Sequence]):
    device = _device(model)
    ids = _pad(batch, "ids", 0, device)
    mask = torch.tensor(
        [[1] * len(s.ids) + [0] * (ids.shape[1] - len(s.ids)) for s in batch], device=device
    )
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    where = _flat_index(batch, ids.shape[1], device)
    return logits.reshape(-1, logits.shape[-1])[where]


__all__ = [
    "TargetScores",
    "encode_pairs",
    "eval_mode",
    "score_targets",
    "special_prefix",
    "target_nll",
    "target_text",
    "top1_accuracy",
]
