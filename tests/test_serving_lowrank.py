"""The balanced factorisation of U Vᵀ, checked against ΔW formed densely and numpy's SVD of it
(the test never calls the code it checks for its reference)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from memstore.serving.lowrank import balanced


def factors(d_out: int, d_in: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # MEMIT-like scales: large residuals, tiny key-side factors
    return torch.randn(d_out, n, generator=g) * 30, torch.randn(d_in, n, generator=g) * 1e-3


def dense(U: torch.Tensor, V: torch.Tensor) -> np.ndarray:
    return U.double().numpy() @ V.double().numpy().T


def test_exact_and_balanced():
    U, V = factors(40, 70, 9)
    f = balanced(U, V)
    assert f.rank == f.numerical_rank == 9 and f.error == 0
    assert np.abs(f.B.numpy() @ f.A.numpy() - dense(U, V)).max() < 1e-12 * np.abs(dense(U, V)).max()
    # the scale is split evenly: column i of B has the norm of row i of A (= sqrt(sigma_i))
    np.testing.assert_allclose(f.B.norm(dim=0).numpy(), f.A.norm(dim=1).numpy(), rtol=1e-10)
    assert f.B.abs().max() < 10 * U.abs().max() * 1e-3 ** 0.5  # no longer 30x vs 1e-3


@pytest.mark.parametrize("k", [1, 4, 8])
def test_truncation_matches_a_dense_svd(k):
    U, V = factors(40, 70, 9, seed=1)
    W = dense(U, V)
    s = np.linalg.svd(W, compute_uv=False)
    expected = np.sqrt((s[k:] ** 2).sum() / (s ** 2).sum())
    f = balanced(U, V, max_rank=k)
    assert f.rank == k and f.numerical_rank == 9 and f.truncated
    assert abs(f.error - expected) < 1e-10
    u, sv, vt = np.linalg.svd(W)
    best = (u[:, :k] * sv[:k]) @ vt[:k]  # Eckart-Young: the best rank-k approximation
    assert np.abs(f.B.numpy() @ f.A.numpy() - best).max() < 1e-10 * np.abs(W).max()
    rel = np.linalg.norm(f.B.numpy() @ f.A.numpy() - W) / np.linalg.norm(W)
    assert abs(rel - expected) < 1e-10


def test_rank_above_the_data_and_identity_factors():
    """A dense ΔW stored with identity factors (U = I) has the rank of ΔW, not d_out; more
    columns than dimensions (a long history) work as well."""
    U, V = factors(12, 30, 3, seed=2)
    W = torch.from_numpy(dense(U, V))
    f = balanced(torch.eye(12, dtype=torch.float64), W.T.contiguous())
    assert f.numerical_rank == 3 and f.rank == 3
    assert np.abs(f.B.numpy() @ f.A.numpy() - W.numpy()).max() < 1e-12 * W.abs().max().item()
    U2, V2 = factors(12, 30, 50, seed=3)
    g = balanced(U2, V2)
    assert g.rank == 12
    assert np.abs(g.B.numpy() @ g.A.numpy() - dense(U2, V2)).max() < 1e-11 * np.abs(dense(U2, V2)).max()


def test_a_difference_that_cancels_has_rank_zero():
    U, V = factors(20, 30, 4, seed=4)
    f = balanced(torch.cat([U, -U], dim=1), torch.cat([V, V], dim=1))
    assert f.rank == 0 and f.error == 0
    g = balanced(torch.cat([U, -U[:, :1]], dim=1), torch.cat([V, V[:, :1]], dim=1))
    assert g.rank == 3  # what is left: the other three columns


def test_refuses_mismatched_factors():
    with pytest.raises(ValueError):
        balanced(torch.zeros(4, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError):
        balanced(torch.zeros(4, 2), torch.zeros(5, 2), max_rank=0)
