"""Second-moment statistics C^l = E[k kᵀ] of the inputs to W_out at each edited layer.

One forward pass per batch collects every edited layer at once and stops after the last
one. Each batch's kᵀk is formed in float32 and added to a float64 accumulator (a batch
holds at most `batch_tokens` tokens, so the float32 partial sums stay small)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import NumericalError, ValidationError
from ..models.adapters import Adapter
from .layers import run_until
from .progress import progress
from .sampling import TEXT_STARTS, sample
from .tokens import pad_right

SEQ_LEN = 128  # tokens per statistics sequence


@dataclass
class Statistics:
    layer: int
    mom2: torch.Tensor  # d_in × d_in, float64: E[k kᵀ]
    n_tokens: int
    description: str  # what the sample was

    @property
    def id(self) -> str:
        return sample_id(self.description)

    def projector(self, threshold: float) -> torch.Tensor:
        """The null-space projector of these statistics (computed once per threshold)."""
        from .solve import nullspace_projector

        cache = self.__dict__.setdefault("_projectors", {})
        if threshold not in cache:
            cache[threshold] = nullspace_projector(self.mom2, threshold)
        return cache[threshold]


def sample_id(description: str) -> str:
    return hashlib.sha256(description.encode()).hexdigest()[:16]


def describe_source(source: str, n_tokens: int, seed: int, seq_len: int) -> str:
    if source == "self":
        return json.dumps({"source": "self", "tokens": n_tokens, "seed": seed, "seq_len": seq_len},
                          sort_keys=True)
    p = Path(source)
    if not p.is_file():
        raise ValidationError(f"statistics corpus {source!r} not found")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    return json.dumps({"source": p.name, "sha256": digest, "tokens": n_tokens, "seq_len": seq_len},
                      sort_keys=True)


def corpus_texts(path: str) -> Iterator[str]:
    """Texts of a .txt file (one paragraph per line) or a .jsonl file with a "text" field."""
    p = Path(path)
    with p.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if p.suffix == ".jsonl":
                try:
                    text = json.loads(line)["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise ValidationError(f"{path} line {i}: expected JSON with a 'text' field ({e})")
                for para in text.split("\n"):
                    if para.strip():
                        yield para
            else:
                yield line


def token_chunks(tokenizer, texts: Iterable[str], n_tokens: int, seq_len: int) -> list[list[int]]:
    """Token sequences of at most seq_len, n_tokens in all (texts packed end to end)."""
    chunks, buf, total = [], [], 0
    for text in texts:
        buf.extend(tokenizer(text).input_ids)
        while len(buf) >= seq_len and total < n_tokens:
            take = min(seq_len, n_tokens - total)
            chunks.append(buf[:take])
            buf, total = buf[seq_len:], total + take
        if total >= n_tokens:
            return chunks
    if buf and total < n_tokens:
        chunks.append(buf[: n_tokens - total])
    return chunks


def self_sampled_chunks(model, tokenizer, n_tokens: int, seed: int, seq_len: int,
                        batch: int = 32) -> list[list[int]]:
    chunks: list[list[int]] = []
    total, round_ = 0, 0
    with progress(total=n_tokens, desc="sampling statistics text", unit="tok") as bar:
        while total < n_tokens:
            starts = [TEXT_STARTS[(round_ * batch + i) % len(TEXT_STARTS)] for i in range(batch)]
            texts = sample(model, tokenizer, starts, seq_len, seed=seed * 1_000_003 + round_)
            for t in texts:
                ids = tokenizer(t).input_ids[:seq_len][: n_tokens - total]
                if ids:
                    chunks.append(ids)
                    total += len(ids)
                    bar.update(len(ids))
                if total >= n_tokens:
                    break
            round_ += 1
    return chunks


@torch.no_grad()
def collect(model, adapter: Adapter, chunks: list[list[int]], layers: tuple[int, ...],
            pad_id: int, batch_tokens: int = 4096) -> tuple[dict[int, torch.Tensor], int]:
    """Σ k kᵀ (float64) over every real token of the chunks, for all layers in one pass
    per batch, stopping after the last layer. Returns (sums, token count)."""
    device = next(model.parameters()).device
    sums: dict[int, torch.Tensor] = {}
    count = 0
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * len(chunks[i]) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    total = sum(len(c) for c in chunks)
    with progress(total=total, desc="statistics", unit="tok") as bar:
        for b in batches:
            ids, mask = pad_right(pad_id, [chunks[i] for i in b])
            got = run_until(model, adapter, max(layers), [(l, "key") for l in layers],
                            input_ids=ids.to(device), attention_mask=mask.to(device))
            keep = mask.bool().reshape(-1).to(device)
            for l in layers:
                k = got[(l, "key")].reshape(-1, got[(l, "key")].shape[-1])[keep].float()
                part = (k.T @ k).double()
                sums[l] = part if l not in sums else sums[l] + part
            n = int(keep.sum())
            count += n
            bar.update(n)
    for l, s in sums.items():
        if not torch.isfinite(s).all():
            raise NumericalError(f"statistics of layer {l} are not finite")
    return sums, count


def compute_statistics(model, tokenizer, adapter: Adapter, layers: tuple[int, ...],
                       source: str = "self", n_tokens: int = 20000, seed: int = 0,
                       seq_len: int = SEQ_LEN) -> dict[int, Statistics]:
    description = describe_source(source, n_tokens, seed, seq_len)
    if source == "self":
        chunks = self_sampled_chunks(model, tokenizer, n_tokens, seed, seq_len)
    else:
        chunks = token_chunks(tokenizer, corpus_texts(source), n_tokens, seq_len)
    if not chunks:
        raise ValidationError(f"statistics sample {source!r} holds no text")
    sums, count = collect(model, adapter, chunks, layers, tokenizer.pad_token_id)
    return {l: Statistics(l, sums[l] / count, count, description) for l in layers}


def save_statistics(stats: Statistics, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"mom2": stats.mom2.contiguous()}, str(tmp),
              metadata={"layer": str(stats.layer), "n_tokens": str(stats.n_tokens),
                        "description": stats.description})
    tmp.replace(path)


def load_statistics(path: Path) -> Statistics:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    t = load_file(str(path))["mom2"]
    return Statistics(int(meta["layer"]), t, int(meta["n_tokens"]), meta["description"])


def cache_path(directory: Path, model_id: str, layer: int, sid: str) -> Path:
    """Where the statistics of (base model hash, layer, sample id) live in a cache folder."""
    return directory / f"{model_id[:16]}-L{layer}-{sid}.safetensors"


def cached_statistics(model, tokenizer, adapter: Adapter, layers: tuple[int, ...], model_id: str,
                      directory: Path, source: str = "self", n_tokens: int = 20000,
                      seed: int = 0, seq_len: int = SEQ_LEN) -> dict[int, Statistics]:
    """Statistics from `directory`, keyed by (model hash, layer, sample); missing layers
    are computed (all of them in one pass) and saved."""
    sid = sample_id(describe_source(source, n_tokens, seed, seq_len))

    def path(l: int) -> Path:
        return cache_path(directory, model_id, l, sid)

    have = {l: load_statistics(path(l)) for l in layers if path(l).is_file()}
    missing = tuple(l for l in layers if l not in have)
    if missing:
        fresh = compute_statistics(model, tokenizer, adapter, missing, source, n_tokens, seed, seq_len)
        for l, s in fresh.items():
            save_statistics(s, path(l))
        have.update(fresh)
    return {l: have[l] for l in layers}
