"""Editor settings: a typed dataclass serialised into every commit, so that a commit says
exactly how it was made."""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

from ..errors import ValidationError

HISTORY_METHODS = ("plain", "preserve", "nullspace")
COMPUTE_DTYPES = ("float32", "bfloat16", "float64")
_INT_MAX = 2**63 - 1
# name -> (lowest, highest, whether the lowest is allowed)
_FLOATS = {"mom2_weight": (0.0, 1e12, False), "mom2_growth": (0.0, 4.0, True),
           "mom2_shrink": (0.0, 1e6, True), "z_lr": (0.0, 1e3, False),
           "z_stop_loss": (0.0, 1e12, True), "clamp": (0.0, 1e3, False),
           "kl_weight": (0.0, 1e6, True), "weight_decay": (0.0, 1e6, True),
           "history_weight": (0.0, 1e12, True), "context_weight": (0.0, 1e12, True),
           "nullspace_threshold": (0.0, 1e12, True),
           "nullspace_l2": (0.0, 1e12, False), "sink_ratio": (0.0, 1e6, True)}
_INTS = {"z_steps": (1, 100_000), "n_templates": (0, 1_000), "template_tokens": (1, 1_000),
         "seed": (0, _INT_MAX), "stats_tokens": (1, 10**10), "z_chunk": (1, 1_000_000),
         "passes": (1, 10), "mom2_growth_facts": (1, 10**9), "token_rule": (1, 2)}
Z_GROUPS = ("request", "key", "subject")
_CHOICES = {"history": HISTORY_METHODS, "compute_dtype": COMPUTE_DTYPES, "z_groups": Z_GROUPS}


def _check(name: str, value: Any) -> None:
    if name == "layers":
        if not isinstance(value, (tuple, list)) or not value:
            raise ValidationError("settings: layers must be a non-empty list of layer numbers")
        for x in value:
            if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < 100_000:
                raise ValidationError(f"settings: layers must be layer numbers >= 0, not {x!r}")
    elif name in _FLOATS:
        lo, hi, lo_ok = _FLOATS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"settings: {name} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ValidationError(f"settings: {name} must be finite, not {value}")
        if value < lo or (value == lo and not lo_ok) or value > hi:
            low = ">=" if lo_ok else ">"
            raise ValidationError(f"settings: {name} must be {low} {lo:g} and <= {hi:g}, "
                                  f"not {value:g}")
    elif name in _INTS:
        lo, hi = _INTS[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"settings: {name} must be a whole number, not {value!r}")
        if not lo <= value <= hi:
            raise ValidationError(f"settings: {name} must be between {lo} and {hi}, not {value}")
    elif name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValidationError(f"settings: {name} must be one of "
                                  f"{', '.join(_CHOICES[name])}, not {value!r}")
    elif name == "stats_source" and (not isinstance(value, str) or not value or "\0" in value):
        raise ValidationError("settings: stats_source must be 'self' or a file path")


@dataclass(frozen=True)
class EditSettings:
    layers: tuple[int, ...]  # edited layers R; L = max(R)
    mom2_weight: float  # λ, the weight of the preserved statistics E[k kᵀ]
    # λ grows with the facts in a solve: README, "Sequential commits" (lambda_for)
    mom2_growth: float = 1.0
    mom2_growth_facts: int = 100
    # E[k kᵀ] shrunk toward its mean eigenvalue: E[k kᵀ] + mom2_shrink · tr(E[k kᵀ])/d_in · I,
    # a floor under directions the statistics' sample saw too little of (solve.covariance_term)
    mom2_shrink: float = 0.0
    z_steps: int = 25  # Adam steps at most for each z-vector
    z_lr: float = 2.0  # the reference's 0.5 takes 2.4× the steps (README, "Differences on purpose")
    z_stop_loss: float = 0.1  # a request leaves the batch once its NLL is below this
    clamp: float = 0.65  # ‖δ‖ ≤ clamp · ‖h‖; the reference: 0.75 (README, "Differences on purpose")
    kl_weight: float = 0.0625
    weight_decay: float = 0.5  # weight_decay · ‖δ‖ / ‖h‖²
    n_templates: int = 3  # sampled prefix templates (beside the bare "{}"); the reference: 5
    template_tokens: int = 5  # tokens sampled per template; the reference: 10
    seed: int = 0  # seeds template sampling and self-sampled statistics text
    stats_source: str = "wikipedia"  # "wikipedia" (built in), "self" or a .txt / .jsonl file
    stats_tokens: int = 20000
    history: str = "preserve"  # plain | preserve | nullspace: README, "Sequential commits"
    history_weight: float = 1.0  # weight of earlier commits' keys in the solve
    # weight of the context keys (the prompt after the subject, the target's tokens), which
    # the update then leaves alone; 0 (the default) leaves them out: README, "Questions and
    # exact answers"
    context_weight: float = 0.0
    nullspace_threshold: float = 0.02  # eigenvalues of E[kkᵀ] below this span the null space
    nullspace_l2: float = 10.0  # ridge term of the null-space solve (AlphaEdit's L2)
    z_chunk: int = 64  # requests per optimisation chunk (bounds memory)
    passes: int = 1  # times z − h^L is measured again and spread over the layers (README)
    compute_dtype: str = "float32"  # dtype of the z-vector forward/backward passes
    # one δ per fact in a batch: the requests of one key, or of one subject and target
    # (zs.key_groups); "key": per key only; the paper: "request"
    z_groups: str = "subject"
    # a bare prompt whose ‖h^L‖ at the subject exceeds sink_ratio × its templated rows'
    # median is an attention sink, and the first template anchors z (keys.anchor_rows); 0: off
    sink_ratio: float = 10.0
    # how a prompt is read into tokens (tokens.subject_last_token): 2, the subject's key at
    # the last of the byte tokens that spell its last character, and an <eos> the tokenizer
    # appends dropped; 1, at the first of them, <eos> kept (memstore before 5 Dec 2026)
    token_rule: int = 2

    def __post_init__(self) -> None:
        """Refuses, with a message naming the setting, anything that cannot work: a wrong
        type, NaN or inf, a value out of range. (That the layers fit the model is checked
        where the model is known: memit.check_settings.)"""
        for f in fields(self):
            _check(f.name, getattr(self, f.name))
        if list(self.layers) != sorted(set(self.layers)):
            raise ValidationError(f"settings: layers must be distinct and ascending: "
                                  f"{list(self.layers)}")
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.history == "nullspace" and self.mom2_shrink > 0:
            raise ValidationError("settings: mom2_shrink applies to history 'plain' or 'preserve', "
                                  "not 'nullspace' (whose solve does not use λ·E[k kᵀ])")
        for name in _FLOATS:
            object.__setattr__(self, name, float(getattr(self, name)))

    def lambda_for(self, n_facts: int) -> float:
        """λ for a solve over `n_facts` facts (the new ones and, for history preserve, the
        earlier live ones): mom2_weight · max(1, n_facts / mom2_growth_facts) ^ mom2_growth.
        The facts' squared errors are summed while λ·E[k kᵀ] is not, so with λ fixed, each
        fact more weighs the statistics — the rest of the model — a little less."""
        scale = max(1.0, n_facts / self.mom2_growth_facts) ** self.mom2_growth
        return self.mom2_weight * scale

    @property
    def last_layer(self) -> int:
        return max(self.layers)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EditSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValidationError(f"settings: unknown keys {sorted(unknown)}")
        missing = {f.name for f in fields(cls) if f.default is MISSING} - set(d)
        if missing:
            raise ValidationError(f"settings: missing keys {sorted(missing)}")
        d = dict(d)
        # settings recorded before λ grew with the facts solved: they were made with λ fixed
        d.setdefault("mom2_growth", 0.0)
        # and before the statistics could be shrunk: made without
        d.setdefault("mom2_shrink", 0.0)
        # and before the context keys could be kept: made without them, whatever the default
        d.setdefault("context_weight", 0.0)
        # and before requests of one key could share a δ: one per request
        d.setdefault("z_groups", "request")
        # and before attention sinks were recognised: every z anchored at the bare prompt
        d.setdefault("sink_ratio", 0.0)
        # and before a byte-split last character was read at its last byte: rule 1
        d.setdefault("token_rule", 1)
        if isinstance(d.get("layers"), list):
            d["layers"] = tuple(d["layers"])
        return cls(**d)

    def with_changes(self, **changes: Any) -> EditSettings:
        if "layers" in changes:
            changes["layers"] = tuple(changes["layers"])
        return replace(self, **changes)


def check_layers(layers: tuple[int, ...], n_layers: int) -> None:
    """The edited layers exist in a model of `n_layers` and leave a later layer to carry the
    z-vector (checked by `config` from the recorded number of layers, without the model)."""
    if max(layers) >= n_layers:
        raise ValidationError(f"settings: layer {max(layers)} out of range (the model has "
                              f"{n_layers} layers, 0..{n_layers - 1})")
    if max(layers) >= n_layers - 1:
        raise ValidationError(f"settings: the last edited layer must be below {n_layers - 1}, "
                              "the model's last layer: no later layer would carry the "
                              "z-vector to the target, and every edit would be empty")
