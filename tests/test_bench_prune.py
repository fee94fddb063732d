"""PRUNE's restraint in the sequential benchmark (benchmarks/bench_sequential.py, `restrain`):
the accumulated update's singular values above τ·σ_max(W₀) become ln σ + t − ln t, the others
and the singular vectors stay, and a layer whose update stays below the threshold is left
bit for bit."""
import math
import sys
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


class Names:
    def proj_weight_name(self, layer: int) -> str:
        return f"l{layer}.weight"


def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_sequential
    finally:
        sys.path.remove(str(BENCH))
    return bench_sequential


def test_restrain_compresses_only_the_singular_values_above_the_threshold():
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({f"l{l}": torch.nn.Linear(12, 5, bias=False) for l in (0, 1)})
    base = {k: v.clone() for k, v in model.state_dict().items()}
    w0 = base["l0.weight"].double().numpy()
    top = np.linalg.svd(w0, compute_uv=False)[0]
    rng = np.random.default_rng(0)
    left, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    right, _ = np.linalg.qr(rng.standard_normal((12, 5)))
    with torch.no_grad():  # an update with two directions past the threshold, three below
        model["l0"].weight += torch.from_numpy(left * (top * np.array([8, 3, 0.3, 0.2, 0.1])) @ right.T).float()
        model["l1"].weight += 0.01 * torch.randn(5, 12)
    untouched = model["l1"].weight.clone()
    delta = model["l0"].weight.detach().double().numpy() - w0
    t = 0.5 * top
    u, sv, vh = np.linalg.svd(delta, full_matrices=False)
    expected_sv = np.array([math.log(s) + t - math.log(t) if s > t else s for s in sv])
    assert (sv > t).sum() >= 2 and (sv <= t).sum() >= 1  # the case exercises both branches

    counts = bench().restrain(model, Names(), base, (0, 1), 0.5)

    assert counts == {0: int((sv > t).sum()), 1: 0}
    after = model["l0"].weight.detach().double().numpy() - w0
    np.testing.assert_allclose(after, (u * expected_sv) @ vh, atol=1e-5)
    assert torch.equal(model["l1"].weight, untouched)
