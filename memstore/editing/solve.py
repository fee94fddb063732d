"""The closed-form update of one layer (paper Eqn. 14), kept as factors:

    ΔW = R Kᵀ (A + K Kᵀ)⁻¹ = U Vᵀ,   U = R (d_out × n),   V = (A + K Kᵀ)⁻¹ K (d_in × n)

with A = λ·E[k kᵀ] (+ the running matrix: Σ k kᵀ of earlier commits' keys, and the
context keys' Σ k kᵀ). Keys are columns here; the API takes them as rows (n × d_in).
Everything is float64; no explicit inverse. When n < d_in, the solve goes through A's
Cholesky factor and the Woodbury identity, (A + K Kᵀ)⁻¹ K = A⁻¹K (I + Kᵀ A⁻¹ K)⁻¹, which
costs O(d_in²·n) instead of O(d_in³)."""
from __future__ import annotations

import torch

from ..errors import NumericalError


def covariance_term(mom2: torch.Tensor, mom2_weight: float,
                    *preserved: tuple[torch.Tensor | None, float], shrink: float = 0.0
                    ) -> torch.Tensor:
    """A = λ·(E[k kᵀ] + shrink·m·I) + Σ wᵢ Kᵢᵀ Kᵢ over the `preserved` (rows, weight) pairs —
    the running matrix of the earlier keys with `history_weight`, the context keys with
    `context_weight` — float64, with m = tr(E[k kᵀ]) / d_in, E[k kᵀ]'s mean eigenvalue
    (`shrink` 0: the paper's A). Each is added in place, never formed alone: one d_in × d_in
    matrix beside the statistics."""
    a = mom2.double() * mom2_weight  # a new matrix: the statistics are not modified
    if shrink > 0:
        a.diagonal().add_(mom2_weight * shrink * float(mom2.double().diagonal().mean()))
    for rows, weight in preserved:
        if rows is not None and len(rows) and weight > 0:
            k = rows.double()
            a.addmm_(k.T, k, alpha=weight)
    return a


def cholesky_or_none(a: torch.Tensor) -> torch.Tensor | None:
    factor, info = torch.linalg.cholesky_ex(a)
    return factor if int(info) == 0 else None


def solve_layer(a: torch.Tensor, keys: torch.Tensor, residuals: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """U (d_out × n) and V (d_in × n), float64. `keys` n × d_in, `residuals` n × d_out."""
    k = keys.double().T  # d_in × n
    n, d_in = keys.shape
    factor = cholesky_or_none(a) if n < d_in else None
    if factor is not None and n < d_in:
        x = torch.cholesky_solve(k, factor)  # A⁻¹ K
        m = torch.eye(n, dtype=torch.float64, device=k.device) + k.T @ x
        v = torch.linalg.solve(m, x.T).T  # m is symmetric
    else:
        v = torch.linalg.solve(a + k @ k.T, k)
    u = residuals.double().T
    if not (torch.isfinite(u).all() and torch.isfinite(v).all()):
        raise NumericalError("the layer solve produced non-finite values")
    return u, v


def output_weight(fisher: torch.Tensor, gamma: float, floor: float = 0.05
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """F̃ = Q diag(w) Qᵀ (both float64) from F (d_out × d_out, symmetric): F's eigenvalues
    divided by their mean, floored at `floor` (a direction ordinary text never reads still
    keeps some weight) and raised to `gamma`; gamma 0 gives w = 1, the usual solve."""
    values, q = torch.linalg.eigh(fisher.double())
    w = (values / values.mean().clamp_min(1e-300)).clamp_min(floor) ** gamma
    return q, w


def solve_layer_weighted(a: torch.Tensor, keys: torch.Tensor, residuals: torch.Tensor,
                         weight: tuple[torch.Tensor, torch.Tensor]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """U (d_out × r) and V (d_in × r), float64, r = min(n, d_in), that minimise
    Σᵢ ‖ΔW kᵢ − rᵢ‖² + tr(F̃ ΔW A ΔWᵀ) — the preservation term measured in the metric
    F̃ = Q diag(w) Qᵀ (output_weight) instead of ‖·‖², so that an output direction the
    model's predictions read more is kept more. In Q's basis each output direction u has
    its own matrix w_u A + K Kᵀ; with A = L Lᵀ and L⁻¹K = Z Σ Yᵀ (thin SVD), all of them
    are inverted at once: ΔW = Q [(Qᵀ R Y Σ) ⊙ 1/(w_u + σ_j²)] (L⁻ᵀ Z)ᵀ — still of rank
    n. With w = 1 it is solve_layer's update."""
    q, w = (t.double() for t in weight)
    k = keys.double().T  # d_in × n
    factor = cholesky_or_none(a)
    if factor is None:
        raise NumericalError("the preserved statistics are not positive definite")
    b = torch.linalg.solve_triangular(factor, k, upper=False)  # L⁻¹ K
    z, sigma, yt = torch.linalg.svd(b, full_matrices=False)
    v = torch.linalg.solve_triangular(factor.T, z, upper=True)  # L⁻ᵀ Z
    s = q.T @ (residuals.double().T @ (yt.T * sigma))  # Qᵀ R Y Σ, d_out × r
    u = q @ (s / (w[:, None] + sigma[None, :] ** 2))
    if not (torch.isfinite(u).all() and torch.isfinite(v).all()):
        raise NumericalError("the weighted layer solve produced non-finite values")
    return u, v


def nullspace_projector(mom2: torch.Tensor, threshold: float) -> torch.Tensor:
    """P (d_in × d_in, float64): the projector onto the span of E[k kᵀ]'s eigenvectors with
    eigenvalue below `threshold` — directions ordinary text hardly uses (AlphaEdit)."""
    values, vectors = torch.linalg.eigh(mom2.double())
    small = vectors[:, values < threshold]
    return small @ small.T


def solve_layer_nullspace(projector: torch.Tensor, keys: torch.Tensor, residuals: torch.Tensor,
                          l2: float, *preserved: tuple[torch.Tensor | None, float]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """AlphaEdit's update (Fang et al., ICLR 2025): ΔW = R Kᵀ P (P (K Kᵀ + Σ wᵢ Kᵢᵀ Kᵢ) + l2·I)⁻ᵀ,
    as U = R (d_out × n), V = (P (K Kᵀ + Σ wᵢ Kᵢᵀ Kᵢ) + l2·I)⁻¹ P K (d_in × n), the
    `preserved` (rows, weight) pairs as in covariance_term. ΔW x = 0 exactly for x outside
    P's range (the span ordinary text uses: Aᵀ x = l2 x there), and the preserved rows
    (earlier commits' keys, context keys) are kept too."""
    k = keys.double().T
    d_in = k.shape[0]
    m = covariance_term(k @ k.T, 1.0, *preserved)
    a = projector @ m + l2 * torch.eye(d_in, dtype=torch.float64, device=k.device)
    v = torch.linalg.solve(a, projector @ k)
    u = residuals.double().T
    if not (torch.isfinite(u).all() and torch.isfinite(v).all()):
        raise NumericalError("the null-space solve produced non-finite values")
    return u, v
