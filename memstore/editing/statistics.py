"""Second-moment statistics C^l = E[k kᵀ] of the inputs to W_out at each edited layer.

One forward pass per batch collects every edited layer of a block of consecutive edited
layers (all of them, where their sums fit) and stops after the block's last. Each batch's
kᵀk is formed in float32 and added to a float64 accumulator (a batch holds at most
`batch_tokens` tokens, so the float32 partial sums stay small). The batches and their
groups do not depend on the layers, so a layer's sums are the same bits whatever block it
was collected in: a block costs one more pass over the sample."""
from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .. import leftovers
from ..data import WIKIPEDIA, wikipedia_paragraphs
from ..errors import NumericalError, ValidationError
from ..models.adapters import Adapter
from ..models.runtime import float64_device
from .distributed import in_order, owned, smallest
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


def pack_symmetric(m: torch.Tensor) -> torch.Tensor:
    """The upper triangle of a symmetric matrix, row by row, in float32: how statistics are
    stored (a quarter of the float64 matrix's bytes; sums are accumulated in float64)."""
    d = m.shape[0]
    out = torch.empty(d * (d + 1) // 2, dtype=torch.float32)
    at = 0
    for i in range(d):  # row by row: no full-size temporary
        out[at:at + d - i] = m[i, i:]
        at += d - i
    return out


def unpack_symmetric(packed: torch.Tensor, d: int) -> torch.Tensor:
    """The float64 symmetric matrix `pack_symmetric` stored."""
    if packed.ndim != 1 or packed.numel() != d * (d + 1) // 2:
        raise ValueError(f"{packed.numel()} values are not the upper triangle of {d}×{d}")
    m = torch.empty(d, d, dtype=torch.float64)
    at = 0
    for i in range(d):
        row = packed[at:at + d - i]
        m[i, i:] = row
        m[i:, i] = row
        at += d - i
    return m


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sample_id(description: str) -> str:
    return hashlib.sha256(description.encode()).hexdigest()[:16]


SOURCES = ("wikipedia", "self")  # built-in sources; anything else is a corpus file


def describe_source(source: str, n_tokens: int, seed: int, seq_len: int,
                    data: bytes | None = None, dtype: str = "float32") -> str:
    """What the sample is; a corpus by its name and the sha256 of `data`, its bytes as read
    for the statistics (read here when not given); the precision the model ran in, where it
    is not float32 (bfloat16's statistics differ from float32's by about 1%, and 'self'
    samples other text: another sample; float32's descriptions are as they always were)."""
    if source == "self":
        d = {"source": "self", "tokens": n_tokens, "seed": seed, "seq_len": seq_len}
    else:
        p = WIKIPEDIA if source == "wikipedia" else check_corpus(source)
        digest = hashlib.sha256(p.read_bytes() if data is None else data).hexdigest()[:16]
        d = {"source": "wikipedia" if source == "wikipedia" else p.name, "sha256": digest,
             "tokens": n_tokens, "seq_len": seq_len}
    if dtype != "float32":
        d["dtype"] = dtype
    return json.dumps(d, sort_keys=True)


CORPUS_SUFFIXES = (".txt", ".jsonl")


def check_corpus(path: str | Path) -> Path:
    """A statistics corpus must be a UTF-8 .txt or .jsonl file that yields some text;
    anything else is refused before any work, naming the file."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ValidationError(f"statistics corpus {str(path)!r} is a folder; give a .txt or "
                              ".jsonl file")
    if not p.is_file():
        raise ValidationError(f"statistics corpus {str(path)!r}: no such file (give "
                              "'wikipedia', the built-in sample, 'self' or a .txt / .jsonl "
                              "corpus)")
    if p.suffix not in CORPUS_SUFFIXES:
        raise ValidationError(f"statistics corpus {str(path)!r}: not a .txt or .jsonl file")
    try:
        next(iter(corpus_texts(str(p))))
    except StopIteration:
        raise ValidationError(f"statistics corpus {str(path)!r} holds no text") from None
    return p.resolve()


def corpus_texts(path: str, data: bytes | None = None) -> Iterator[str]:
    """Texts of a .txt file (one paragraph per line) or a .jsonl file with a "text" field
    (from `data`, its bytes, when given). Lines are split on newlines only (U+2028 and
    friends are text)."""
    p = Path(path)
    try:
        yield from _corpus_texts(p, data)
    except UnicodeDecodeError as e:
        raise ValidationError(f"statistics corpus {path!r} is not UTF-8 text ({e.reason} at "
                              f"byte {e.start})") from None


def _corpus_texts(p: Path, data: bytes | None) -> Iterator[str]:
    path = str(p)
    with (p.open(encoding="utf-8", newline="\n") if data is None
          else io.StringIO(data.decode("utf-8"), newline="\n")) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if p.suffix == ".jsonl":
                try:
                    text = json.loads(line)["text"]
                    if not isinstance(text, str):
                        raise TypeError("'text' is not a string")
                except (ValueError, KeyError, TypeError, RecursionError) as e:  # a number
                    # of more digits than Python reads is a ValueError, no JSONDecodeError
                    raise ValidationError(f"{path} line {i}: expected JSON with a 'text' "
                                          f"field ({str(e)[:100]})") from None
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


GROUPS = 8  # units of the reduction (distributed.py): fixed, whatever the number of processes


def plan_batches(chunks: list[list[int]], batch_tokens: int) -> list[list[int]]:
    """Chunk indices per forward pass, sorted by length and bounded by `batch_tokens`."""
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * len(chunks[i]) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def _group_sums(model, adapter: Adapter, chunks: list[list[int]], batches: list[list[int]],
                layers: tuple[int, ...], pad_id: int, bar) -> tuple[dict[int, torch.Tensor], int]:
    """Σ k kᵀ (float64) over the real tokens of `batches`, one forward pass each, stopping
    after the last layer. Each layer's keys become a float32 kᵀk in a hook on W_out and are
    dropped at once: no layer's activations outlive its own step."""
    device = adapter.embeddings(model).weight.device
    sums: dict[int, torch.Tensor] = {}
    keep: dict[str, torch.Tensor] = {}

    def hook(layer: int):
        def pre(_m, args):
            k = args[0].reshape(-1, args[0].shape[-1])[keep["mask"].to(args[0].device)].float()
            part = k.T @ k  # float32, added into the float64 sum in place
            if layer in sums:
                sums[layer].add_(part.to(sums[layer].device))
            else:  # Apple's MPS has no float64: the sum is kept on the CPU there
                sums[layer] = part.to(float64_device(part.device)).double()
        return pre

    handles = [adapter.proj(model, l).register_forward_pre_hook(hook(l)) for l in layers]
    count = 0
    try:
        for b in batches:
            ids, mask = pad_right(pad_id, [chunks[i] for i in b])
            keep["mask"] = mask.bool().reshape(-1)
            run_until(model, adapter, max(layers), [], input_ids=ids.to(device),
                      attention_mask=mask.to(device))
            n = int(mask.sum())
            count += n
            bar.update(n)
    finally:
        for h in handles:
            h.remove()
    return sums, count


@torch.no_grad()
def collect(model, adapter: Adapter, chunks: list[list[int]], layers: tuple[int, ...],
            pad_id: int, batch_tokens: int = 4096,
            block: int | None = None) -> tuple[dict[int, torch.Tensor], int]:
    """Σ k kᵀ (float64, on the CPU) over every real token of the chunks, in blocks of
    `block` consecutive layers (all at once when None): one pass per batch and block,
    stopping after the block's last layer. The batches form GROUPS fixed groups, each
    summed in batch order, and the group sums are added in group order; under
    torch.distributed each process computes its groups (distributed.py), so the bits do
    not depend on how many processes ran, nor on the block size (the processes agree on
    the smallest block any of them was given). Returns (sums, token count)."""
    batches = plan_batches(chunks, batch_tokens)
    groups = [batches[g * len(batches) // GROUPS:(g + 1) * len(batches) // GROUPS]
              for g in range(GROUPS)]
    dims = {l: adapter.proj_dims(model, l)[1] for l in layers}
    size = smallest(len(layers) if block is None else max(1, min(block, len(layers))))
    blocks = [tuple(layers[i:i + size]) for i in range(0, len(layers), size)]
    total = sum(len(chunks[i]) for g in owned(GROUPS) for b in groups[g] for i in b)
    out: dict[int, torch.Tensor] = {}
    count = 0
    with progress(total=total * len(blocks), desc="statistics", unit="tok") as bar:
        for n_block, these in enumerate(blocks):

            def group(g: int, these=these) -> list[torch.Tensor]:
                sums, n = _group_sums(model, adapter, chunks, groups[g], these, pad_id, bar)
                # a layer's zeros only where the group has no batch (pop's default would
                # make, and fill, a d_in × d_in float64 per layer for every group)
                return [(sums.pop(l) if l in sums else
                         torch.zeros(dims[l], dims[l], dtype=torch.float64)).cpu()
                        for l in these] + [torch.tensor([n], dtype=torch.float64)]

            shapes = [((dims[l], dims[l]), torch.float64) for l in these] + \
                [((1,), torch.float64)]
            for tensors in in_order(GROUPS, group, lambda g, shapes=shapes: shapes):
                for i, l in enumerate(these):
                    if l in out:
                        out[l].add_(tensors[i])
                    else:
                        out[l] = tensors[i]
                    tensors[i] = None  # a group's sum is freed once added: two d_in² at most
                if n_block == 0:  # every block counts the same tokens
                    count += int(tensors[-1].item())
                del tensors
    for l, s in out.items():
        if not torch.isfinite(s).all():
            raise NumericalError(f"statistics of layer {l} are not finite")
    return out, count


def compute_statistics(model, tokenizer, adapter: Adapter, layers: tuple[int, ...],
                       source: str = "self", n_tokens: int = 20000, seed: int = 0,
                       seq_len: int = SEQ_LEN,
                       block: int | None = None) -> dict[int, Statistics]:
    """E[k kᵀ] of `layers` over the sample `source` names, collected in blocks of `block`
    consecutive layers (all at once when None; the same bits whatever the block)."""
    # a corpus is read once: the statistics are of the bytes their description hashes,
    # whatever is written to the file meanwhile
    data = None if source in SOURCES else check_corpus(source).read_bytes()
    description = describe_source(source, n_tokens, seed, seq_len, data,
                                  model_dtype(model, adapter))
    if source == "self":
        chunks = self_sampled_chunks(model, tokenizer, n_tokens, seed, seq_len)
    elif source == "wikipedia":
        chunks = token_chunks(tokenizer, wikipedia_paragraphs(), n_tokens, seq_len)
    else:
        chunks = token_chunks(tokenizer, corpus_texts(source, data), n_tokens, seq_len)
    if not chunks:
        raise ValidationError(f"statistics sample {source!r} holds no text")
    sums, count = collect(model, adapter, chunks, layers, tokenizer.pad_token_id,
                          block=block)
    return {l: Statistics(l, sums[l].div_(count), count, description) for l in layers}


def _header(data: bytes) -> dict:
    """The JSON header of safetensors bytes."""
    n = int.from_bytes(data[:8], "little")
    if not 0 < n <= len(data) - 8:
        raise ValueError("not a safetensors file")
    return json.loads(data[8:8 + n])


def cache_prefix(model_id: str, layer: int, sid: str) -> str:
    """The start of the cache file names of (base model hash, layer, sample id)."""
    return f"{model_id[:16]}-L{layer}-{sid}-"


def clean_cache(directory: Path) -> list[Path]:
    """Removes the files that saves killed outright (kill -9, the out-of-memory killer) left
    in a statistics cache folder: `.NAME.safetensors.tmp-<host>-<pid>-<random>` of a dead
    process of this host (memstore/leftovers.py); returns those removed."""
    return leftovers.clean(directory, r"\..+\.safetensors\.tmp-")


def model_dtype(model, adapter: Adapter) -> str:
    """The precision the model runs in ("float32", "bfloat16", …): statistics computed in
    one are not those of another (bfloat16's differ from float32's by about 1%)."""
    return str(adapter.embeddings(model).weight.dtype).removeprefix("torch.")


def save_cached(stats: Statistics, directory: Path, model_id: str,
                dtype: str = "float32") -> Path:
    """Writes `stats`, computed on the model `model_id` in `dtype`, into a statistics cache
    folder under a name that ends with the sha256 of the file's bytes, the hash
    `load_cached` checks before use."""
    directory.mkdir(parents=True, exist_ok=True)
    data = save_safetensors({"mom2_triu": pack_symmetric(stats.mom2).contiguous()},
                            metadata={"layer": str(stats.layer), "n_tokens": str(stats.n_tokens),
                                      "description": stats.description,
                                      "dim": str(stats.mom2.shape[0]), "model": model_id,
                                      "dtype": dtype})
    path = directory / f"{cache_prefix(model_id, stats.layer, stats.id)}{sha256(data)}.safetensors"
    clean_cache(directory)
    tmp = directory / leftovers.temp_name(f".{path.name}.tmp-")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a partial file behind
        raise
    return path


def load_cached(directory: Path, model_id: str, layer: int, sid: str,
                d_in: int | None = None,
                dtype: str = "float32") -> tuple[Statistics | None, list[str]]:
    """Statistics of (base model hash, layer, sample id), computed in `dtype`, from a cache
    folder, and a line per cached file refused: one whose bytes no longer match the hash in
    its name (tampered or damaged), or whose content is not these statistics (model, layer,
    sample, shape, finite and symmetric). A refused file is never used; the caller
    recomputes. Files of another dtype, or that do not say theirs (written before it was
    recorded), are passed over."""
    problems = []
    for path in sorted(directory.glob(cache_prefix(model_id, layer, sid) + "*.safetensors")):
        if path.is_symlink() or not path.is_file():
            problems.append(f"{path}: not a regular file")
            continue
        data = path.read_bytes()
        if path.name[len(cache_prefix(model_id, layer, sid)):-len(".safetensors")] != sha256(data):
            problems.append(f"{path}: its content does not match its recorded hash")
            continue
        try:
            meta = _header(data).get("__metadata__", {})
            mom2 = unpack_symmetric(load_safetensors(data)["mom2_triu"], int(meta["dim"]))
            st = Statistics(int(meta["layer"]), mom2, int(meta["n_tokens"]), meta["description"])
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            problems.append(f"{path}: unreadable ({e})")
            continue
        if meta.get("dtype") != dtype:
            continue  # another precision's statistics (or an older memstore's: it says none)
        if meta.get("model") != model_id:
            problems.append(f"{path}: computed on another base model "
                            f"({meta.get('model')!s:.16})")
            continue
        square = mom2.ndim == 2 and mom2.shape[0] == mom2.shape[1] and \
            (d_in is None or mom2.shape[0] == d_in)
        if st.layer != layer or st.id != sid or not square or not torch.isfinite(mom2).all() \
                or not torch.equal(mom2, mom2.T):
            problems.append(f"{path}: not the statistics of layer {layer}, sample {sid}")
            continue
        return st, problems
    return None, problems


def cached_statistics(model, tokenizer, adapter: Adapter, layers: tuple[int, ...], model_id: str,
                      directory: Path, source: str = "self", n_tokens: int = 20000,
                      seed: int = 0, seq_len: int = SEQ_LEN) -> dict[int, Statistics]:
    """Statistics from `directory`, keyed by (model hash, layer, sample, dtype) and checked
    against their hash; missing (or refused) layers are computed, all in one pass, and
    saved."""
    dtype = model_dtype(model, adapter)
    sid = sample_id(describe_source(source, n_tokens, seed, seq_len, dtype=dtype))
    have = {}
    for l in layers:
        st, _ = load_cached(directory, model_id, l, sid, adapter.proj_dims(model, l)[1], dtype)
        if st is not None:
            have[l] = st
    missing = tuple(l for l in layers if l not in have)
    if missing:
        fresh = compute_statistics(model, tokenizer, adapter, missing, source, n_tokens, seed, seq_len)
        for l, st in fresh.items():
            save_cached(st, directory, model_id, dtype)
        have.update(fresh)
    return {l: have[l] for l in layers}
