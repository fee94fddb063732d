"""How much memory a commit will need beyond the loaded model, estimated before any work,
so that a commit that cannot fit is refused at once instead of failing after an hour.

A commit runs in phases (PHASES), each freeing its memory before the next: collecting the
statistics, rebuilding a state (and applying ΔW), the z-vector optimisation, the solve. The
peak is what is held throughout — E[k kᵀ] of every edited layer (float64 d_in × d_in, by
the CPU), the keys, the pristine edited weights — plus the largest phase, not the sum of
the phases (which refused commits that fit). The big terms are the d_in × d_in float64
matrices, 1.6 GB each at Llama-3-8B's d_in of 14,336: the solve holds three at once
(λ·E[k kᵀ] with the running matrix added in place, its Cholesky factor, and
cholesky_solve's copy of the factor; where the facts reach d_in, A + K Kᵀ and its LU
factor beside A, and the keys and V of d_in × n each), the statistics phase a group's sum
per layer of a block beside the totals. ΔW = U Vᵀ is formed densely to be added (float64
then float32: 12 bytes an entry, on the CPU, where the factors are), beside the weights a
rebuild builds. The z-vector phase holds a chunk of `z_chunk` requests × (templates + the
KL prompt) rows through the layers after L, with their logits at the target tokens and the
whole next-token distribution of each KL prompt. With a device map each device's share is
checked against its own free memory.

Measured on the CPU (peak RSS per phase, /proc/self/clear_refs between phases; random
Llamas, 1–2 edited layers, 8–32 facts; the figures are in the commit messages): where the
d_in² matrices dominate (MLP width 2,048–4,096) the estimate is within −6% and +16% of the
measured peak of a commit: −6% to +6% of the RSS with the C library's default allocator
(its slack included), +5% to +16% of the live memory (a fixed malloc mmap threshold); the
sum of the phases said +24% to +60%. The solve alone is within 2% (three squares
measured, five on the dense path). The z-vector phase (the pass that fills the prefix
cache, then the steps: see `estimate`), measured alone with a fixed
malloc mmap threshold (runs then agree within 2%; 16–32 facts, 64–128 rows, hidden
256–1,024, MLP 512–2,048, 1–4 layers after L, ~4-token templates), within −22% and +12%
(the earlier model, +69% to +116% with four layers after L); with prefixes of 55 tokens
(long templates, read by `longest`) −0%, where PREFIX_TOKENS alone said −31%. At
Llama-3-8B's widths (22 layers after L, z_chunk 64, 100 facts) it is the largest phase
the estimate counts: 23 GB of steps and prefix cache (the earlier model
said 42 GB), beside 13 GB held (the statistics, by the CPU) — 36 GB where the sum of the
phases said 62. Not counted: the C library's slack (freed memory it keeps), about half a
float32 d_in × d_in during the solve at these widths. Estimates, not bounds: the printed
figure says which terms it counts. Not measured on a GPU."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..models.adapters import Adapter
from .settings import EditSettings

GiB = 1024 ** 3
PHASES = ("statistics", "ΔW", "z-vectors: full pass", "z-vectors", "solve")
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
    # the phase of each term that lives only during one phase (PHASES), or the phases of
    # one that lives through several; every phase frees its memory before the next, so the
    # peak is the terms held throughout plus the largest phase's, not the sum of all. A
    # term not named here is held throughout.
    phases: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    # with a device map, every other device the commit uses: its terms and its free bytes
    others: dict[str, tuple[dict[str, int], int | None]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return peak(self.terms, self.phases)

    def parts(self) -> list[tuple[str, dict[str, int], int | None]]:
        """(device, terms, free) of each device the estimate checks."""
        out = [(self.device, self.terms, self.available)]
        out += [(d, t, free) for d, (t, free) in self.others.items()]
        if self.host:
            out.append(("cpu", self.host, self.host_available))
        return out

    def fits(self) -> bool:
        return all(free is None or peak(terms, self.phases) <= free
                   for _, terms, free in self.parts())

    def line(self) -> str:
        return "estimated peak memory beyond the loaded model: " + ", and ".join(
            _part(terms, self.phases, free, device) for device, terms, free in self.parts())


def peak(terms: dict[str, int], phases: dict[str, str | tuple[str, ...]]) -> int:
    """The terms held throughout, plus the phase whose own terms are the largest."""
    return sum(_at_peak(terms, phases).values())


def _phases_of(phase: str | tuple[str, ...]) -> tuple[str, ...]:
    return (phase,) if isinstance(phase, str) else phase


def _at_peak(terms: dict[str, int], phases: dict[str, str | tuple[str, ...]]
             ) -> dict[str, int]:
    """The terms alive at the peak: those held throughout and the largest phase's."""
    by_phase: dict[str, int] = {}
    for k, v in terms.items():
        for p in _phases_of(phases.get(k, ())):
            by_phase[p] = by_phase.get(p, 0) + v
    top = max(by_phase, key=lambda p: (by_phase[p], p), default=None)
    return {k: v for k, v in terms.items()
            if k not in phases or top in _phases_of(phases[k])}


def _part(terms: dict[str, int], phases: dict[str, str | tuple[str, ...]], free: int | None,
          device: str) -> str:
    alive = _at_peak(terms, phases)
    big = ", ".join(f"{k} {v / GiB:.2f}" for k, v in alive.items() if v >= GiB // 100)
    room = f" of {free / GiB:.1f} GiB available" if free else ""
    shown = f" ({big} GiB)" if big else ""
    return f"{sum(alive.values()) / GiB:.2f} GiB{room} on {device}{shown}"


def available(device: torch.device) -> int | None:
    """Bytes free on `device`: CUDA's own count, with what this process's caching allocator
    holds unused (reserved, not allocated: the driver counts it as taken, and the commit's
    tensors reuse it), else the system's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] + max(
            0, torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
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


def _block_bytes(model, adapter: Adapter, block: tuple[int, ...],
                 device: torch.device | None = None) -> dict[torch.device, int]:
    """Bytes a pass of statistics.collect over one block of layers holds beyond the totals:
    each layer's float64 group sum where its keys are (float64_device of its W_out's),
    copied to the CPU when that is elsewhere; and on each such device a batch's float32 kᵀk
    and its keys, of the widest layer there (`device`: every layer's, where given)."""
    from ..models.runtime import float64_device

    cpu = torch.device("cpu")
    need: dict[torch.device, int] = {}
    widest: dict[torch.device, int] = {}
    for l in block:
        d = adapter.proj_dims(model, l)[1]
        dev = device or adapter.proj(model, l).weight.device
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


def longest(tokenizer, requests: list, settings: EditSettings,
            templates: list[str] | None = None) -> tuple[int, int, int]:
    """The longest suffix of `requests` (from the subject's last token to the target's last
    but one: what each z-vector step runs, every row padded to the longest), the longest
    target, and the longest prefix (the tokens before the subject's last, with each of
    `templates` in front where given: what the prefix cache holds, and the pass that fills
    it runs besides the suffix), in tokens."""
    from .tokens import target_ids
    from .zs import build_rows

    rows = build_rows(tokenizer, requests, ["{}"], rule=settings.token_rule)
    prefix = int(rows.subject_pos.max())
    if templates:
        prefix = max(prefix, int(build_rows(tokenizer, requests, list(templates),
                                            rule=settings.token_rule).subject_pos.max()))
    return (int((rows.attention_mask.sum(1) - rows.subject_pos).max()),
            max(len(target_ids(tokenizer, r.target_new)) for r in requests), prefix)


def _device(weight: torch.Tensor, fallback: torch.device) -> torch.device:
    return fallback if weight.device.type == "meta" else weight.device


def estimate(model, adapter: Adapter, settings: EditSettings, n_requests: int,
             n_earlier: int = 0, statistics_needed: bool = False,
             largest_group: int = 1, tokens: tuple[int, ...] | None = None,
             device: torch.device | None = None, optimise: bool = True) -> Estimate:
    """The peak memory of a commit of `n_requests` on `model` (`n_earlier` live facts on
    the branch; `statistics_needed`: E[k kᵀ] must be computed first; `largest_group`: the
    most requests that share one δ (zs.key_groups), optimised in one chunk however many;
    `tokens`: the requests' longest suffix, target and prefix (`longest`), where longer
    than SUFFIX_TOKENS, TARGET_TOKENS and PREFIX_TOKENS); `device`: where the edited layers
    run (default: each layer's W_out's: with a device map, every device that holds an
    edited layer, a layer after L or the head is checked for its own share); `optimise`
    False: a solve from cached z-vectors (revert, squash, merge), no z-vector steps. The
    peak is what is held throughout plus the largest phase (PHASES), each phase's memory
    being freed before the next."""
    from ..models.runtime import float64_device

    cpu = torch.device("cpu")
    cfg = model.config.get_text_config()
    weight = adapter.proj(model, settings.last_layer).weight
    itemsize = weight.element_size() if weight.device.type != "meta" else 4
    layers = settings.layers
    primary = device or _device(weight, cpu)
    # where each edited layer is solved and written, and where each layer runs
    runs = {l: device or _device(adapter.proj(model, l).weight, primary)
            for l in range(adapter.n_layers(model))}
    solved = {l: float64_device(runs[l]) for l in layers}
    dims = {l: adapter.proj_dims(model, l) for l in layers}  # (d_out, d_in)
    d_in = max(d for _, d in dims.values())
    d_out = max(d for d, _ in dims.values())
    hidden, vocab = cfg.hidden_size, cfg.vocab_size
    inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
    # a layer's keys (or values) per token: every head's where the config names no key/value
    # heads (GPT-2, GPT-J, GPT-NeoX), of head_dim where it gives one (Gemma's 16 × 256 at
    # hidden 3,072)
    heads = getattr(cfg, "num_attention_heads", None) or 1
    kv = (getattr(cfg, "num_key_value_heads", None) or heads) * (
        getattr(cfg, "head_dim", None) or hidden // heads)
    suffix, target, prefix = SUFFIX_TOKENS, TARGET_TOKENS, PREFIX_TOKENS
    if tokens is not None:
        suffix, target = max(suffix, tokens[0]), max(target, tokens[1])
        prefix = max(prefix, *tokens[2:3])
    chunk = max(min(settings.z_chunk, n_requests), largest_group)
    rows = chunk * (settings.n_templates + 2)
    need: dict[torch.device, dict[str, int]] = {primary: {}}
    phases: dict[str, str | tuple[str, ...]] = {}

    def add(dev: torch.device, name: str, n: int,
            phase: str | tuple[str, ...] | None = None) -> None:
        got = need.setdefault(dev, {})
        got[name] = got.get(name, 0) + n
        if phase is not None:
            phases[name] = phase

    # held throughout: the statistics of every edited layer (by the CPU, whatever the
    # device: each layer's is moved to its device for its own solve), the keys, the
    # pristine copies of the edited weights
    add(cpu, "statistics E[kkᵀ]", sum(d * d * 8 for _, d in dims.values()))
    if settings.history == "nullspace":  # each layer's projector, kept beside its statistics
        add(cpu, "null-space projectors", sum(d * d * 8 for _, d in dims.values()))
    add(primary, "keys and factors", (n_requests + n_earlier) * d_in * 4 * len(layers)
        + n_requests * (d_in + d_out) * 8 * 2 * settings.passes)
    for l in layers:  # passes > 1 also keeps the weights as they were before the first pass
        add(runs[l], "pristine edited weights",
            dims[l][0] * dims[l][1] * itemsize * (2 if settings.passes > 1 else 1))
    # the solve, one layer at a time on its device (float64, measured on the CPU: see the
    # module's docstring)
    for dev in dict.fromkeys(solved.values()):
        width = max(dims[l][1] for l in layers if solved[l] == dev)
        square = width * width * 8
        if settings.history == "nullspace":
            # K Kᵀ (+ the earlier keys'), P times it, the ridge's identity and their sum, then
            # the LU factor: four alive at once (measured: 4.02 squares at d_in 2,048;
            # solve.solve_layer_nullspace)
            add(dev, "solve (P·(KKᵀ + running) + ridge, LU)", 4 * square, "solve")
            if dev != cpu:  # each projector is computed by the CPU, which holds E[kkᵀ]: eigh's
                # eigenvectors and its workspace beside the projector (measured: 2.06 squares
                # at d_in 2,048, 2.11 at 1,024)
                add(cpu, "null-space projector (eigh)", 9 * square // 4, "solve")
        elif n_requests < width:
            # λ·E[kkᵀ] with the earlier keys added in place, its Cholesky factor and
            # cholesky_solve's copy of it; A⁻¹K beside K, and the n × n system
            add(dev, "solve (λC + running, Cholesky)",
                3 * square + n_requests * width * 8 + n_requests ** 2 * 8,
                "solve")
        else:  # n ≥ d_in: A, A + K Kᵀ and its LU factor (solve.solve_layer's dense path)
            add(dev, "solve (λC + running + KKᵀ, LU)", 3 * square, "solve")
    # the forward passes that read the keys and h^L (keys.SubjectRows: every request with
    # each template, and anchored), walked up the edited layers beside the solve
    add(primary, "keys read (forward passes)", n_requests * (settings.n_templates + 2)
        * (prefix + suffix) * inter * 4 * 2, "solve")
    # ΔW = U Vᵀ made dense to be added to W: formed in float64 and rounded to float32 by the
    # CPU (the factors are kept there), then W + ΔW in float32 on W's device; a state
    # rebuild (before the edit, and before each replay) holds every edited weight it builds
    widest = max(do * di for do, di in dims.values())
    for l in layers:
        add(runs[l], "ΔW (state rebuild, apply)", dims[l][0] * dims[l][1] * itemsize, "ΔW")
    where = {runs[l] for l in layers}
    add(cpu, "ΔW (state rebuild, apply)" if cpu in where else "ΔW formed", widest * 12, "ΔW")
    for dev in sorted(where - {cpu}, key=str):  # one layer's W + ΔW at a time
        add(dev, "ΔW (state rebuild, apply)",
            widest * (8 + (0 if itemsize == 4 else 4 + itemsize)), "ΔW")
    if optimise:
        # two steps, one after the other (measured on the CPU, float32, 64 rows of Llamas of
        # hidden 256–1,024 and MLP width 512–2,048): first the pass over the whole prompts
        # that fills the prefix cache (zs.full_pass, all layers, no gradient: a layer's
        # activations at a time, ~5 hidden-wide and 3 MLP-wide floats per row and token,
        # measured 26–176 MiB, counted 1.0–1.15× that); then the steps, where each layer
        # after L keeps ~4 hidden-wide and 2 MLP-wide floats per row and suffix token for the
        # backward pass (measured 11–16 MiB a layer, counted 20). The prefix cache of every
        # layer is held through both, the logits the loss reads through the steps.
        for dev in dict.fromkeys(runs.values()):
            add(dev, "z-vector full pass",
                rows * (prefix + suffix) * (5 * hidden + 3 * inter) * 4,
                "z-vectors: full pass")
        for l in range(settings.last_layer + 1, adapter.n_layers(model)):
            add(runs[l], "z-vector steps", rows * suffix * (4 * hidden + 2 * inter) * 4,
                "z-vectors")
        for l in range(adapter.n_layers(model)):
            add(runs[l], "z-vector prefix cache", rows * prefix * 2 * kv * itemsize,
                ("z-vectors: full pass", "z-vectors"))
        head = runs[adapter.n_layers(model) - 1]
        if device is None:
            head = _device(adapter.lm_head(model).weight, head)
        add(head, "z-vector steps", (rows * target + chunk * 4) * vocab * 4, "z-vectors")
    free = {dev: available(dev) for dev in need}
    free.setdefault(cpu, available(cpu))
    if statistics_needed:
        # statistics.collect sums a group of batches per layer of a block of consecutive
        # edited layers (float64, on the layer's device, copied to the CPU where that is
        # elsewhere) and adds it to the totals (held: counted above); then a batch's kᵀk in
        # float32 and the batch's activations. It takes as many layers per pass as fit
        # (statistics_block, asked again when they are computed): here the most that fit
        # beside what is held, all where they do (as one pass always did), one where not
        # even one does (refused: it cannot fit)
        def block_need(b: int) -> dict[torch.device, int]:
            out: dict[torch.device, int] = {}
            for i in range(0, len(layers), b):
                for dev, n in _block_bytes(model, adapter, layers[i:i + b],
                                           device).items():
                    out[dev] = max(out.get(dev, 0), n)
            return out

        def held(dev: torch.device) -> int:
            return sum(v for k, v in need.get(dev, {}).items() if k not in phases)

        block = next((b for b in range(len(layers), 0, -1)
                      if all(free.get(dev) is None or held(dev) + n <= free[dev]
                             for dev, n in block_need(b).items())), 1)
        for dev, n in block_need(block).items():
            add(dev, "statistics being computed" if dev == primary or dev.type != "cpu"
                else "statistics' group sums copied", n, "statistics")
    terms = need.pop(primary)
    host = need.pop(cpu, {}) if primary != cpu else {}
    others = {str(dev): (t, free[dev]) for dev, t in need.items()}
    if primary.type == "cpu":
        return Estimate(terms, free[primary], str(primary), phases=phases, others=others)
    return Estimate(terms, free[primary], str(primary), host, free[cpu], phases, others)
