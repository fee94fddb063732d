"""How much memory a commit will need beyond the loaded model, estimated before any work,
so that a commit that cannot fit is refused at once instead of failing after an hour.

The big terms are the d_in × d_in float64 matrices of the solve — per edited layer E[k kᵀ]
(held for every edited layer), and for the layer being solved λ·E[k kᵀ] with the running
matrix added in place, and its Cholesky factor — which at Llama-3-8B's d_in of 14,336 are 1.6 GB each,
and the z-vector optimisation's activations: a chunk of `z_chunk` requests × (templates +
the KL prompt) rows through the layers after L, with their logits at the target tokens and
the whole next-token distribution of each KL prompt. Estimates, not bounds: the printed
figure says which terms it counts."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..models.adapters import Adapter
from .settings import EditSettings

GiB = 1024 ** 3
SUFFIX_TOKENS = 16  # a prompt's tokens from the subject's last on, and the target's (at least)
TARGET_TOKENS = 4  # a target's tokens (at least)
PREFIX_TOKENS = 24  # a template's tokens before the subject's last


@dataclass(frozen=True)
class Estimate:
    terms: dict[str, int]  # bytes per term
    available: int | None  # bytes free on the device that holds them (None: unknown)
    device: str
    # what a model on an accelerator keeps in the CPU's memory (the statistics), and its free
    host: dict[str, int] = field(default_factory=dict)
    host_available: int | None = None

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    def fits(self) -> bool:
        host = sum(self.host.values())
        return (self.available is None or self.total <= self.available) and \
            (self.host_available is None or host <= self.host_available)

    def line(self) -> str:
        out = "estimated peak memory beyond the loaded model: " + _part(
            self.terms, self.available, self.device)
        if self.host:
            out += ", and " + _part(self.host, self.host_available, "cpu")
        return out


def _part(terms: dict[str, int], free: int | None, device: str) -> str:
    big = ", ".join(f"{k} {v / GiB:.2f}" for k, v in terms.items() if v >= GiB // 100)
    room = f" of {free / GiB:.1f} GiB available" if free else ""
    shown = f" ({big} GiB)" if big else ""
    return f"{sum(terms.values()) / GiB:.2f} GiB{room} on {device}{shown}"


def available(device: torch.device) -> int | None:
    """Bytes free on `device`: CUDA's own count, else the system's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


STATS_BATCH_TOKENS = 4096  # statistics.collect's batch_tokens


def _block_bytes(model, adapter: Adapter, block: tuple[int, ...]) -> dict[torch.device, int]:
    """Bytes a pass of statistics.collect over one block of layers holds beyond the totals:
    each layer's float64 group sum where its keys are (float64_device of its W_out's),
    copied to the CPU when that is elsewhere; and on each such device a batch's float32 kᵀk
    and its keys, of the widest layer there."""
    from ..models.runtime import float64_device

    cpu = torch.device("cpu")
    need: dict[torch.device, int] = {}
    widest: dict[torch.device, int] = {}
    for l in block:
        d = adapter.proj_dims(model, l)[1]
        dev = adapter.proj(model, l).weight.device
        dev = float64_device(cpu if dev.type == "meta" else dev)
        need[dev] = need.get(dev, 0) + d * d * 8
        if dev != cpu:  # the group's sums are brought to the CPU (all of the block's at once)
            need[cpu] = need.get(cpu, 0) + d * d * 8
        widest[dev] = max(widest.get(dev, 0), d)
    for dev, d in widest.items():
        need[dev] += d * d * 4 + STATS_BATCH_TOKENS * d * 4 * 2
    return need


def statistics_block(model, adapter: Adapter, layers: tuple[int, ...],
                     free: Callable[[torch.device], int | None] | None = None) -> int:
    """How many consecutive edited layers statistics.collect takes in one pass: the most, b,
    for which every block layers[i:i + b] fits the memory `free` reports on each device it
    uses, beside the float64 totals of all `layers` on the CPU (held to the end); all of
    them where they fit (or nothing can be measured), 0 where not even one layer fits. The
    statistics are the same bits whatever the block: only the passes over the sample, one
    per block, depend on it. Each device's free memory (`available` unless given) is asked
    once."""
    cpu = torch.device("cpu")
    free = free or available
    seen: dict[torch.device, int | None] = {}

    def room(dev: torch.device) -> int | None:
        if dev not in seen:
            seen[dev] = free(dev)
        return seen[dev]

    totals = sum(adapter.proj_dims(model, l)[1] ** 2 * 8 for l in layers)
    for b in range(len(layers), 0, -1):
        if all(room(dev) is None or need + (totals if dev == cpu else 0) <= room(dev)
               for i in range(0, len(layers), b)
               for dev, need in _block_bytes(model, adapter, layers[i:i + b]).items()):
            return b
    return 0


def longest(tokenizer, requests: list, settings: EditSettings) -> tuple[int, int]:
    """The longest suffix of `requests` (from the subject's last token to the target's last
    but one: what each z-vector step runs, every row padded to the longest) and the longest
    target, in tokens."""
    from .tokens import target_ids
    from .zs import build_rows

    rows = build_rows(tokenizer, requests, ["{}"], rule=settings.token_rule)
    return (int((rows.attention_mask.sum(1) - rows.subject_pos).max()),
            max(len(target_ids(tokenizer, r.target_new)) for r in requests))


def estimate(model, adapter: Adapter, settings: EditSettings, n_requests: int,
             n_earlier: int = 0, statistics_needed: bool = False,
             largest_group: int = 1, tokens: tuple[int, int] | None = None,
             device: torch.device | None = None, optimise: bool = True) -> Estimate:
    """The peak memory of a commit of `n_requests` on `model` (`n_earlier` live facts on
    the branch; `statistics_needed`: E[k kᵀ] must be computed first; `largest_group`: the
    most requests that share one δ (zs.key_groups), optimised in one chunk however many;
    `tokens`: the requests' longest suffix and target (`longest`), where longer than
    SUFFIX_TOKENS and TARGET_TOKENS); `device`: where the edited layers run (default: the
    last one's W_out's); `optimise` False: a solve from cached z-vectors (revert, squash,
    merge), no z-vector steps."""
    cfg = model.config.get_text_config()
    weight = adapter.proj(model, settings.last_layer).weight
    itemsize = weight.element_size() if weight.device.type != "meta" else 4
    layers = settings.layers
    d_in = max(adapter.proj_dims(model, l)[1] for l in layers)
    d_out = max(adapter.proj_dims(model, l)[0] for l in layers)
    hidden, vocab = cfg.hidden_size, cfg.vocab_size
    inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
    n_after = adapter.n_layers(model) - settings.last_layer - 1
    # a layer's keys (or values) per token: every head's where the config names no key/value
    # heads (GPT-2, GPT-J, GPT-NeoX), of head_dim where it gives one (Gemma's 16 × 256 at
    # hidden 3,072)
    heads = getattr(cfg, "num_attention_heads", None) or 1
    kv = (getattr(cfg, "num_key_value_heads", None) or heads) * (
        getattr(cfg, "head_dim", None) or hidden // heads)
    square = d_in * d_in * 8
    suffix, target = SUFFIX_TOKENS, TARGET_TOKENS
    if tokens is not None:
        suffix, target = max(suffix, tokens[0]), max(target, tokens[1])
    chunk = max(min(settings.z_chunk, n_requests), largest_group)
    rows = chunk * (settings.n_templates + 2)
    terms = {
        "statistics E[kkᵀ]": len(layers) * square,
        # λ·E[kkᵀ] with the earlier keys added in place, and its Cholesky factor
        "solve (λC + running, Cholesky)": 2 * square,
        "keys and factors": (n_requests + n_earlier) * d_in * 4 * len(layers)
        + n_requests * (d_in + d_out) * 8 * 2 * settings.passes,
        # passes > 1 also keeps the weights as they were before the first pass
        "pristine edited weights": len(layers) * d_in * d_out * itemsize
        * (2 if settings.passes > 1 else 1),
        # activations kept for the backward pass through the layers after L, in float32
        "z-vector steps": rows * suffix * n_after * (10 * hidden + 3 * inter) * 4
        # the prefix cache of every layer and the logits the loss reads
        + rows * PREFIX_TOKENS * adapter.n_layers(model) * 2 * kv * itemsize
        + (rows * target + chunk * 4) * vocab * 4,
    }
    if not optimise:
        del terms["z-vector steps"]
    device = device or (weight.device if weight.device.type != "meta" else torch.device("cpu"))
    free = available(device)
    if settings.history == "nullspace":
        # each edited layer's projector, kept beside its statistics once computed, and the
        # solve's K Kᵀ (+ the earlier keys'), P times it, the ridge, their sum and its LU
        # factor (solve.solve_layer_nullspace) in place of λC and its Cholesky factor
        terms["null-space projectors"] = len(layers) * square
        del terms["solve (λC + running, Cholesky)"]
        terms["solve (P·(KKᵀ + running) + ridge, LU)"] = 5 * square
    # on an accelerator the statistics (and null-space projectors) are held by the CPU and
    # moved to the device one layer at a time for its solve (counted there), and the group
    # sums of a block are copied to the CPU beside the totals
    host = {} if device.type == "cpu" else {
        k: terms.pop(k) for k in ("statistics E[kkᵀ]", "null-space projectors") if k in terms}
    if statistics_needed:
        # statistics.collect sums a group of batches per layer of a block of consecutive
        # edited layers (float64, on the layer's device) and adds it to the totals (on the
        # CPU, counted above); then a batch's kᵀk in float32 and the batch's activations.
        # It takes as many layers per pass as fit (statistics_block, asked again when they
        # are computed): here the most that fit beside the other terms, all where they do
        # (as one pass always did), one where not even one does (refused: it cannot fit)
        batch = d_in * d_in * 4 + STATS_BATCH_TOKENS * d_in * 4 * 2
        block = len(layers) if free is None else \
            max(1, min(len(layers), (free - sum(terms.values()) - batch) // square))
        terms["statistics being computed"] = block * square + batch
    if device.type == "cpu":
        return Estimate(terms, free, str(device))
    if statistics_needed:
        host["statistics' group sums copied"] = block * square
    return Estimate(terms, free, str(device), host, available(torch.device("cpu")))
