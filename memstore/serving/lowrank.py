"""Balanced (and optionally truncated) factors of ΔW = U Vᵀ, without forming ΔW.

A serving stack receives ΔW as two factors, B (d_out × r) and A (r × d_in), and computes
x ↦ B (A x) in its own dtype. MEMIT's factors are badly scaled for that: U holds the
residuals (large), V = C⁻¹K-like columns (tiny), so in float16 U may overflow and V
underflow. The SVD puts the scale where it belongs:

    U = Q_u R_u,  V = Q_v R_v            (thin QR, O(d r²))
    R_u R_vᵀ = P S Hᵀ                    (SVD of the small core, r × r at most)
    ΔW = (Q_u P) S (Q_v H)ᵀ
    B = Q_u P √S,  A = √S (Q_v H)ᵀ       (every column of B has the norm of its row of A)

Singular values at the level of rounding are dropped: σ ≤ ε · max(d_out, d_in, n) · ‖U‖_F ‖V‖_F
(numpy.linalg.matrix_rank's tolerance, scaled by the factors rather than by σ_max, so that a
difference that cancels completely has rank 0). They are noise: where a difference of two
states cancels, or in a dense ΔW stored with identity factors. Keeping the largest
`max_rank` values is the best rank-k approximation in the Frobenius norm (Eckart–Young), with
relative error √(Σ_{i>k} σᵢ²) / √(Σ σᵢ²) (over the singular values above the tolerance),
computed from the singular values.

Everything runs in float64 on one thread, so that rebuilding an export gives the same bits."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..editing.apply import single_thread


@dataclass(frozen=True)
class LowRank:
    """ΔW ≈ B A, float64. `singular_values` are all of ΔW's, largest first (before the
    numerical-rank cut and the truncation); `error` the relative Frobenius error of B A."""

    B: torch.Tensor  # d_out × rank
    A: torch.Tensor  # rank × d_in
    singular_values: torch.Tensor
    numerical_rank: int
    error: float

    @property
    def rank(self) -> int:
        return self.B.shape[1]

    @property
    def truncated(self) -> bool:
        return self.rank < self.numerical_rank


def balanced(U: torch.Tensor, V: torch.Tensor, max_rank: int | None = None) -> LowRank:
    """Balanced factors of U Vᵀ (U: d_out × n, V: d_in × n), keeping at most `max_rank`
    singular values."""
    if U.ndim != 2 or V.ndim != 2 or U.shape[1] != V.shape[1]:
        raise ValueError(f"U {tuple(U.shape)} and V {tuple(V.shape)} are not factors of one ΔW")
    if max_rank is not None and max_rank < 1:
        raise ValueError(f"max_rank must be at least 1, not {max_rank}")
    d_out, d_in = U.shape[0], V.shape[0]
    with single_thread():
        qu, ru = torch.linalg.qr(U.double())
        qv, rv = torch.linalg.qr(V.double())
        p, s, ht = torch.linalg.svd(ru @ rv.T, full_matrices=False)
        scale = float(U.double().norm() * V.double().norm())
        tol = scale * max(d_out, d_in, U.shape[1]) * torch.finfo(torch.float64).eps
        numerical = int((s > tol).sum())
        k = numerical if max_rank is None else min(numerical, max_rank)
        root = s[:k].sqrt()
        B = (qu @ p[:, :k]) * root
        A = root[:, None] * (ht[:k] @ qv.T)
    total = float(s[:numerical].square().sum())
    lost = float(s[k:numerical].square().sum())
    error = math.sqrt(lost / total) if total > 0 else 0.0
    return LowRank(B.contiguous(), A.contiguous(), s, numerical, error)
