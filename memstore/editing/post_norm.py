"""Post-norm layers (Gemma 2 and 3, OLMo 2): W_out's output y passes through an RMSNorm N
before it joins the residual stream, so a layer adds N(y) = g ⊙ y / rms(y), not y.

MEMIT asks edited layer l to add Δr_i (request i's share of z_i − h_i^L) to the residual
stream at the subject's last token. For a plain layer the value joins the stream as it is,
so the value residual the solve maps the keys to is Δr_i itself. Here the stream receives
N(y), so layer l must move the value to a y*_i with

    N(y*_i) = N(y_i) + Δr_i =: r*_i.

N is scale-invariant (N(a·y) = N(y) for a > 0, ignoring ε), and its image is the set
{v : rms(v / g) = 1}: every y along r*/g gives N(y) = r* / rms(r*/g), the point of that set
in the direction of r* — r* itself when rms(r*/g) = 1, which holds to first order when Δr
is small beside N(y). So we take the value along r*/g at y's own scale,

    y*_i = (r*_i / g) · rms(y_i) / rms(r*_i / g),

and solve MEMIT's least-squares update for the value residual R_i = y*_i − y_i (same keys,
same λ·E[k kᵀ]). A solve that maps k_i to R_i makes the layer add N(y*_i) exactly. What one
norm cannot reach (a Δr that would change the contribution's magnitude) the next edited
layers take up: the residual is measured again after each layer's update, as in MEMIT.
Here g is the norm's effective scale (Gemma: 1 + weight; OLMo 2: weight), read off the
module itself: g = N(1) · √(1 + ε)."""
from __future__ import annotations

import torch
from torch import nn


def norm_scale(norm: nn.Module, dim: int, device) -> torch.Tensor:
    """g of an RMSNorm module: its output on the all-ones vector, times √(1 + ε)."""
    eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 0.0)))
    with torch.no_grad():
        g = norm(torch.ones(1, dim, device=device)).float()[0] * (1.0 + eps) ** 0.5
    tiny = 1e-6
    return torch.where(g.abs() < tiny, torch.full_like(g, tiny) * torch.sign(g + tiny / 2), g)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).sqrt()


def value_residuals(norm: nn.Module, y: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
    """R (n × d_out): the change of W_out's output y (n × d_out, at each request's subject's
    last token) that makes the post-norm `norm` add `residuals` to the residual stream
    (see the module docstring)."""
    g = norm_scale(norm, y.shape[1], y.device)
    with torch.no_grad():
        r = norm(y.to(next(norm.parameters()).dtype)).float()
    u = (r + residuals.to(y.device)) / g
    y_star = u * (_rms(y) / _rms(u))
    return y_star - y
