"""The Fisher information of a model's predictions with respect to the hidden state leaving
one layer, over ordinary text: F = E_t[g_t g_tᵀ], g_t = ∂ Σ_s log p(y_s) / ∂h_t, with every
y_s drawn from the model's own next-token distribution (seeded). ½ δᵀ F δ is, to second
order, the KL that adding δ to h_t at an ordinary token would cause over the predictions
from t on.

The z-vector objective can add β · ½ δᵀ F δ (`compute_zs(fisher=(F, β))`): the same answer
is then carried in directions that ordinary text reads less. An experiment, not a setting:
on zsRE it trades paraphrase for specificity on the same line as the clamp, with F from
8,192 or 65,536 tokens (benchmarks/README.md, "A δ that ordinary text reads less")."""
from __future__ import annotations

import torch

from ..models.adapters import Adapter, hidden_of
from .tokens import pad_right


def fisher_matrix(model, adapter: Adapter, chunks: list[list[int]], layer: int, seed: int,
                  batch: int = 8) -> torch.Tensor:
    """F (d_model × d_model, float64, on the CPU) at the output of `layer`, averaged over
    every position of `chunks` (token sequences; each batch is right-padded, padding is
    neither sampled nor counted)."""
    device = adapter.embeddings(model).weight.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    box: dict[str, torch.Tensor] = {}

    def leaf(_m, _i, out):  # h becomes a leaf the gradient is taken against
        h = hidden_of(out).detach().requires_grad_(True)
        box["h"] = h
        return (h, *out[1:]) if isinstance(out, tuple) else h

    d = adapter.embeddings(model).weight.shape[1]
    total = torch.zeros(d, d, dtype=torch.float64)
    count = 0
    handle = adapter.layer(model, layer).register_forward_hook(leaf)
    try:
        for a in range(0, len(chunks), batch):
            part = chunks[a:a + batch]
            ids, mask = pad_right(0, part)  # the padding's id is never read: mask 0
            with torch.enable_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                logp = torch.log_softmax(logits.float(), -1)
                probs = logp.detach().exp().cpu()
                y = torch.zeros_like(ids)  # drawn per sequence, its own positions only
                for i, c in enumerate(part):
                    y[i, :len(c)] = torch.multinomial(probs[i, :len(c)], 1, generator=gen)[:, 0]
                picked = logp.gather(-1, y.to(device).unsqueeze(-1)).squeeze(-1)
                (g,) = torch.autograd.grad((picked * mask.to(device)).sum(), box["h"])
            g = g.double().cpu()[mask.bool()]
            total += g.T @ g
            count += g.shape[0]
    finally:
        handle.remove()
    return total / max(count, 1)


def fisher_penalty(delta: torch.Tensor, fisher: tuple[torch.Tensor, float] | None
                   ) -> torch.Tensor | float:
    """β · ½ δᵢᵀ F δᵢ per row of δ (n × d), or 0 without a Fisher matrix."""
    if fisher is None or fisher[1] == 0:
        return 0.0
    f, beta = fisher  # F on δ's device and in its dtype (compute_zs moves it once)
    return beta * 0.5 * ((delta @ f) * delta).sum(1)
