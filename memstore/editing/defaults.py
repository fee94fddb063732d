"""Default editor settings from the model, not from one checkpoint.

**λ (mom2_weight) = d_in / 4, a quarter of the MLP width.** For one request, the solve
writes a fraction of the residual r along its key k:  ΔW k = r · s / (1 + s),
s = kᵀ (λC)⁻¹ k,  C = E[k kᵀ]. For keys distributed as the statistics sample,
E[kᵀ C⁻¹ k] = tr(C⁻¹ E[k kᵀ]) = tr(I) = d_in, so λ = d_in / 4 makes s ≈ 4 for a typical
key — it is written four fifths of the way — whatever the width and the scale of the
activations. Measured (benchmarks/bench_lambda.py, the same z-vectors solved again, 100
counterfact-dev records): with C from 25·d_in tokens, λ = d_in wrote too weakly for
Qwen2.5-0.5B's paraphrases (PS 0.755; 0.81 at d_in/2, 0.845 at d_in/4) while NS moved by
0.003 at most on Qwen and SmolLM2 alike. (A C estimated from few tokens per dimension
underestimates the spread of keys it has not seen, writes them harder, and made λ = d_in
look right before: PS 0.835 with 20,000 tokens.)

**Edited layers: the band at relative depth 0.10–0.27**, the one causal tracing points to
(GPT-J 3–8 of 28, Llama-3-8B 4–8 of 32 in later work, SmolLM2 3–8 of 30), never reaching the
last layer: L = max(layers) needs a later layer to carry δ to the target.

**Statistics: the built-in Wikipedia sample** (as the paper's Wikipedia statistics, one
forward pass that stops after the last edited layer: no text is generated, so the cost
does not grow with the vocabulary), max(20,000, 25·d_in) tokens so that C is estimated from
many samples per dimension (on SmolLM2, NS rose from 0.706 at 13·d_in to 0.716 at 26·d_in
and stayed there at 52 and 130·d_in: benchmarks/README.md); the sample holds about
300,000 tokens, which caps it for the widest models.

The z-vector settings are the same for every family: the reference's steps, KL and decay
weights, with a larger step size, an earlier stop and fewer, shorter templates, measured to
halve a commit's time, and a tighter clamp (0.65 instead of 0.75), measured to spare the
neighbours of an edited subject while Qwen2.5-0.5B's paraphrases hold (README, "Differences
on purpose")."""
from __future__ import annotations

from dataclasses import dataclass

from ..models.adapters import Adapter
from .settings import EditSettings

BAND = (0.10, 0.27)
STATS_TOKENS_MIN, STATS_TOKENS_PER_DIM = 20_000, 25
# adapter families whose defaults were measured on real models (benchmarks/bench_models.py)
VALIDATED = {"llama": "SmolLM2-135M (llama) and Qwen2.5-Coder-0.5B (qwen2)"}
LAMBDA_PER_DIM = (0.2, 1.0)  # λ / d_in measured to work (benchmarks/bench_lambda.py)
# with passes 2 or more (the second pass writes what the first left): the question-answer
# recipe's solve (its 285,000-token statistics) held efficacy ≥ 0.955 and paraphrase ≥ 0.816
# from λ 768 to 4096 on SmolLM2 (d_in 1536), 0.927 / 0.791 at 6144 (benchmarks/README.md,
# "One δ per fact")
LAMBDA_PER_DIM_PASSES = (0.2, 2.67)
LAMBDA_FRACTION = 4  # λ = d_in / LAMBDA_FRACTION


def band(n_layers: int) -> tuple[int, ...]:
    """The edited layers of a model with `n_layers` layers (see the module docstring)."""
    if n_layers < 2:
        return ()
    last = n_layers - 2  # the latest layer L may be
    lo = min(last, round(BAND[0] * n_layers))
    hi = min(last, max(lo, round(BAND[1] * n_layers)))
    return tuple(range(lo, hi + 1))


def mlp_width(model, adapter: Adapter, layers: tuple[int, ...]) -> int:
    return max(adapter.proj_dims(model, l)[1] for l in layers)


@dataclass(frozen=True)
class Derived:
    settings: EditSettings
    why: dict[str, str]  # setting -> one line saying how it was chosen


def derive(model, adapter: Adapter) -> Derived:
    n = adapter.n_layers(model)
    layers = band(n)
    if not layers:
        from ..errors import ValidationError

        raise ValidationError(f"the model has {n} layer(s); editing needs at least 2")
    d_in = mlp_width(model, adapter, layers)
    tokens = max(STATS_TOKENS_MIN, -(-STATS_TOKENS_PER_DIM * d_in // 1000) * 1000)
    settings = EditSettings(layers=layers, mom2_weight=d_in / LAMBDA_FRACTION,
                            stats_source="wikipedia",
                            stats_tokens=tokens)
    why = {
        "layers": (f"layers {layers[0]}-{layers[-1]}: relative depth {BAND[0]:.2f}-{BAND[1]:.2f} "
                   f"of {n} layers, below the last"),
        "mom2_weight": f"λ {d_in / LAMBDA_FRACTION:g}: a quarter of the MLP width d_in, so a "
                       "typical key is written four fifths of the way (kᵀ(λC)⁻¹k ≈ 4)",
        "mom2_growth": (f"λ grows with the facts n in a solve (earlier live ones included), "
                        f"λ·max(1, n/{settings.mom2_growth_facts})^{settings.mom2_growth:g}: the "
                        "facts' errors are summed, λ·E[kkᵀ] is not (long histories, README)"),
        "stats_source": f"statistics: {tokens} tokens of the built-in Wikipedia sample "
                        f"(max(20000, 25·d_in)), one pass, no generation",
    }
    return Derived(settings, why)


def outside_validated(model, adapter: Adapter, settings: EditSettings) -> list[str]:
    """One line per way `settings` leave what was measured to work: the family's defaults
    not measured on a real model, λ far from d_in (farther with passes 2 or more), layers
    outside the band."""
    out = []
    if adapter.name not in VALIDATED:
        out.append(f"the default settings were validated on real models of the "
                   f"{', '.join(VALIDATED)} family ({'; '.join(VALIDATED.values())}), on "
                   f"{adapter.name} models only on tiny random ones: check your edits with "
                   "`memstore eval`")
    d_in = mlp_width(model, adapter, settings.layers)
    ratio = settings.mom2_weight / d_in
    several = settings.passes >= 2
    lo, hi = LAMBDA_PER_DIM_PASSES if several else LAMBDA_PER_DIM
    if not lo <= ratio <= hi:
        # the wider band is SmolLM2's only (Qwen's one-pass PS falls faster with λ: README)
        how = "with passes 2 or more on SmolLM2" if several else "in one pass"
        out.append(f"λ {settings.mom2_weight:g} is {ratio:.3g}×d_in; {lo:g}–{hi:g}×d_in was "
                   f"measured to work {how} (lower writes harder and disturbs more, higher "
                   "writes weakly)")
    n = adapter.n_layers(model)
    depth = settings.last_layer / n
    if depth > 0.5:
        out.append(f"the last edited layer {settings.last_layer} is past half the depth ({n} "
                   "layers); edits were measured in the band 0.10–0.27")
    return out
