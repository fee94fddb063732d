"""Editor settings: a typed dataclass serialised into every commit, so that a commit says
exactly how it was made."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import ValidationError

HISTORY_METHODS = ("plain", "preserve", "nullspace")


@dataclass(frozen=True)
class EditSettings:
    layers: tuple[int, ...]  # edited layers R; L = max(R)
    mom2_weight: float  # λ, the weight of the preserved statistics E[k kᵀ]
    z_steps: int = 25  # Adam steps at most for each z-vector
    z_lr: float = 0.5
    z_stop_loss: float = 0.05  # a request leaves the batch once its NLL is below this
    clamp: float = 0.75  # ‖δ‖ ≤ clamp · ‖h‖
    kl_weight: float = 0.0625
    weight_decay: float = 0.5  # weight_decay · ‖δ‖ / ‖h‖²
    n_templates: int = 5  # sampled prefix templates (beside the bare "{}")
    template_tokens: int = 10
    seed: int = 0  # seeds template sampling and self-sampled statistics text
    stats_source: str = "self"  # "self" or a path to a .txt / .jsonl corpus
    stats_tokens: int = 20000
    history: str = "preserve"  # plain | preserve | nullspace: README, "Sequential commits"
    history_weight: float = 1.0  # weight of earlier commits' keys in the solve
    nullspace_threshold: float = 0.02  # eigenvalues of E[kkᵀ] below this span the null space
    nullspace_l2: float = 10.0  # ridge term of the null-space solve (AlphaEdit's L2)
    z_chunk: int = 64  # requests per optimisation chunk (bounds memory)
    compute_dtype: str = "float32"  # dtype of the z-vector forward/backward passes

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValidationError("settings: at least one edited layer is needed")
        if list(self.layers) != sorted(set(self.layers)) or min(self.layers) < 0:
            raise ValidationError(f"settings: layers must be distinct, ascending, >= 0: {self.layers}")
        if self.mom2_weight < 0:
            raise ValidationError("settings: mom2_weight (λ) must be >= 0")
        if self.history not in HISTORY_METHODS:
            raise ValidationError(f"settings: history must be one of {', '.join(HISTORY_METHODS)}")
        if self.compute_dtype not in ("float32", "bfloat16", "float64"):
            raise ValidationError("settings: compute_dtype must be float32, bfloat16 or float64")
        if self.z_steps < 1 or self.z_chunk < 1:
            raise ValidationError("settings: z_steps and z_chunk must be >= 1")

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
        d = dict(d)
        if "layers" in d:
            d["layers"] = tuple(int(x) for x in d["layers"])
        return cls(**d)

    def with_changes(self, **changes: Any) -> EditSettings:
        if "layers" in changes:
            changes["layers"] = tuple(changes["layers"])
        return replace(self, **changes)
