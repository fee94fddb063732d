"""SPHERE's projection (Liu et al., 2025, "Energy-regularized sequential model editing on
hyperspheres") measured in bench_sequential.py's history: each commit's ΔW kept off the
principal input directions of the edited weight's normalised rows, ΔW ← ΔW (I − α U Uᵀ), U
the top eigenvectors of Ŵ₀ᵀŴ₀ / d_out that hold `--beta` of its energy (Ŵ₀: W₀, each row
scaled to unit norm; the base model's weights, computed once per layer). An experiment, not a
setting: the engine is wrapped, not changed (every layer update the solve returns has its V
replaced by (I − α U Uᵀ) V before it is applied and kept, so ΔW = U Vᵀ is projected on its
input side). The method appears in the results as preserve-sphere<beta>-<alpha>; the other
arguments are bench_sequential.py's (its --methods is set here).

    python benchmarks/bench_sphere.py --beta 0.5 --alpha 0.5 --commits 10 --size 100 \\
        --zs base --final-sample 400
Writes what bench_sequential.py writes, under the method's name."""
from __future__ import annotations

import argparse
import sys

import bench_sequential
import torch
from common import command

from memstore.editing import memit
from memstore.editing.result import LayerUpdate
from memstore.models.adapters import get_adapter


def sphere_projector(w0: torch.Tensor, beta: float, alpha: float) -> torch.Tensor:
    """I − α U Uᵀ (d_in × d_in, float64) for a weight stored d_out × d_in."""
    rows = w0.double()
    rows = rows / (rows.norm(dim=1, keepdim=True) + 1e-8)
    values, vectors = torch.linalg.eigh(rows.T @ rows / rows.shape[0])
    share = torch.cumsum(values.flip(0), 0) / values.sum()
    r = int((share <= beta).sum()) + 1
    u = vectors[:, -r:]
    print(f"sphere: {r} of {len(values)} input directions hold {beta:g} of the energy", flush=True)
    return torch.eye(len(values), dtype=torch.float64) - alpha * (u @ u.T)


def main() -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--beta", type=float, default=0.5, help="energy share of the kept-off directions")
    ap.add_argument("--alpha", type=float, default=0.5, help="1: fully orthogonal, 0: no projection")
    args, rest = ap.parse_known_args()
    shown = command()
    name = f"preserve-sphere{args.beta:g}-{args.alpha:g}"
    bench_sequential.METHODS[name] = {"history": "preserve"}
    projectors: dict[int, torch.Tensor] = {}
    execute = bench_sequential.execute_memit

    def execute_projected(model, tok, requests, settings, stats, **kw):
        adapter = get_adapter(model)
        if adapter.transposed:
            raise SystemExit("bench_sphere: weights stored d_in × d_out are not handled")
        for layer in settings.layers:
            if layer not in projectors:  # the first call sees the base model's weights
                projectors[layer] = sphere_projector(adapter.proj(model, layer).weight.detach(),
                                                     args.beta, args.alpha)
        return execute(model, tok, requests, settings, stats, **kw)

    def projected_update(layer, u, v, keys, transposed):
        return LayerUpdate(layer, u, (projectors[layer] @ v.double()).float(), keys, transposed)

    bench_sequential.execute_memit = execute_projected
    bench_sequential.command = lambda: shown  # the results name this script, not its host
    memit.LayerUpdate = projected_update  # write_layers builds every layer's update with it
    sys.argv = ["bench_sequential.py", *rest, "--methods", name]
    bench_sequential.main()


if __name__ == "__main__":
    main()
