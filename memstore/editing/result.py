"""The result of one MEMIT batch: what a commit stores."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .requests import Request
from .settings import EditSettings

if TYPE_CHECKING:  # torch is not imported by the commands that only read the history
    import torch


@dataclass
class LayerUpdate:
    """ΔW for one edited layer, as factors: ΔW = U Vᵀ (d_out × d_in, the operator that maps
    a key k to a value change). `transposed` is True when the module stores its weight as
    (d_in × d_out) (GPT-2's Conv1D); `delta()` returns ΔW in the weight's own orientation.

    `keys` (n × d_in) are the keys K the solve wrote, kept for history-aware solves."""

    layer: int
    U: torch.Tensor  # d_out × n, float32
    V: torch.Tensor  # d_in × n, float32
    keys: torch.Tensor  # n × d_in, float32
    transposed: bool = False

    @property
    def rank(self) -> int:
        return self.U.shape[1]

    def delta(self) -> torch.Tensor:
        """ΔW shaped like the weight, float32."""
        d = self.U.float() @ self.V.float().T
        return d.T.contiguous() if self.transposed else d

    def factors_are_smaller(self) -> bool:
        d_out, n = self.U.shape
        d_in = self.V.shape[0]
        return n * (d_in + d_out) < d_in * d_out


@dataclass
class EditResult:
    requests: list[Request]
    settings: EditSettings
    templates: list[str]  # prefix templates, each with "{}" (the first is "{}")
    zs: torch.Tensor  # n × d_model: target hidden states at layer L (float32)
    updates: dict[int, LayerUpdate] = field(default_factory=dict)
    stats_ids: dict[int, str] = field(default_factory=dict)  # layer -> statistics id
    info: dict = field(default_factory=dict)  # timings, z steps, losses
    # whether the settings' token_rule decides where some request is read (a subject ending
    # in a byte-split character, an appended <eos>): recorded with the set only then, so
    # that memstore before the rule was recorded (c24c1f6) reads every other set
    rule_matters: bool = True

    @property
    def n(self) -> int:
        return len(self.requests)
