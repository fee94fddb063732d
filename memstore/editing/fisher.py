"""The Fisher information of a model's predictions with respect to the hidden state leaving
one layer, over ordinary text: F = E_t[g_t g_tᵀ], g_t = ∂ Σ_s log p(y_s) / ∂h_t, with every
y_s drawn from the model's own next-token distribution (seeded). ½ δᵀ F δ is, to second
order, the KL that adding δ to h_t at an ordinary token would cause over the predictions
from t on.

The z-vector objective can add β · ½ δᵀ F δ (`compute_zs(fisher=(F, β))`): the same answer
is then carried in directions that ordinary text reads less. An experiment, not a setting:
on zsRE it trades paraphrase for specificity on the same line as the clamp, with F from
8,192 or 65,536 tokens (benchmarks/README.md, "A δ that ordinary text reads less").

The same matrix at each edited layer's W_out (`output_fishers`) is the metric the solve
can measure its preservation term in (solve.solve_layer_weighted, execute_memit's
`output_weights`): another experiment (benchmarks/README.md, "The solve weighted by what
ordinary text reads")."""
from __future__ import annotations

import torch

from ..errors import ValidationError
from ..models.adapters import Adapter, hidden_of
from .progress import progress
from .tokens import pad_right


def fisher_matrix(model, adapter: Adapter, chunks: list[list[int]], layer: int, seed: int,
                  batch: int = 8) -> torch.Tensor:
    """F (d_model × d_model, float64, on the CPU) at the output of `layer`, averaged over
    every position of `chunks` (token sequences; each batch is right-padded, padding is
    neither sampled nor counted)."""
    return fisher_matrices(model, adapter, chunks, {layer: adapter.layer(model, layer)}, seed,
                           batch)[layer]


def output_fishers(model, adapter: Adapter, chunks: list[list[int]], layers: tuple[int, ...],
                   seed: int, batch: int = 8) -> dict[int, torch.Tensor]:
    """F_l (d_out × d_out, float64) at the output of each edited layer's W_out — where ΔW k
    enters the model — from one backward pass per batch for all `layers` (the metric of
    solve.solve_layer_weighted)."""
    return fisher_matrices(model, adapter, chunks,
                           {l: adapter.proj(model, l) for l in layers}, seed, batch)


def fisher_matrices(model, adapter: Adapter, chunks: list[list[int]], modules: dict, seed: int,
                    batch: int = 8) -> dict[int, torch.Tensor]:
    """F at the output of each of `modules` (key -> module), the same sampled y for all."""
    if not chunks:
        raise ValidationError("the Fisher information needs some text: no token sequences")
    device = adapter.embeddings(model).weight.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    box: dict = {}

    def leaf(key):
        def hook(_m, _i, out):  # output + e, e = 0: ∂/∂e is ∂/∂output, every path kept
            h = hidden_of(out)
            box[key] = e = torch.zeros_like(h, requires_grad=True)
            return (h + e, *out[1:]) if isinstance(out, tuple) else h + e
        return hook

    totals: dict = {}
    count = 0
    keys = list(modules)
    handles = [m.register_forward_hook(leaf(key)) for key, m in modules.items()]
    try:
        with progress(total=sum(map(len, chunks)), desc="Fisher information", unit="tok") as bar:
            for a in range(0, len(chunks), batch):
                part = chunks[a:a + batch]
                ids, mask = pad_right(0, part)  # the padding's id is never read: mask 0
                with torch.enable_grad():
                    logits = model(input_ids=ids.to(device),
                                   attention_mask=mask.to(device)).logits
                    logp = torch.log_softmax(logits.float(), -1)
                    probs = logp.detach().exp().cpu()
                    y = torch.zeros_like(ids)  # drawn per sequence, its own positions only
                    for i, c in enumerate(part):
                        y[i, :len(c)] = torch.multinomial(probs[i, :len(c)], 1,
                                                          generator=gen)[:, 0]
                    picked = logp.gather(-1, y.to(device).unsqueeze(-1)).squeeze(-1)
                    grads = torch.autograd.grad((picked * mask.to(device)).sum(),
                                                [box[key] for key in keys])
                for key, g in zip(keys, grads):
                    g = g.double().cpu()[mask.bool()]
                    totals[key] = totals[key] + g.T @ g if key in totals else g.T @ g
                count += int(mask.sum())
                bar.update(int(mask.sum()))
    finally:
        for handle in handles:
            handle.remove()
    return {key: t / max(count, 1) for key, t in totals.items()}


def fisher_penalty(delta: torch.Tensor, fisher: tuple[torch.Tensor, float] | None
                   ) -> torch.Tensor | float:
    """β · ½ δᵢᵀ F δᵢ per row of δ (n × d), or 0 without a Fisher matrix."""
    if fisher is None or fisher[1] == 0:
        return 0.0
    f, beta = fisher  # F on δ's device and in its dtype (compute_zs moves it once)
    return beta * 0.5 * ((delta @ f) * delta).sum(1)
