"""The z-vectors' residuals aligned with the keys, after EAMET (Dai et al., "Robust massive
model editing via embedding alignment optimization", ICLR 2026): an experiment.

The solve writes δ_i = z_i − h_i^L at key k_i; two facts with near keys and far δ's cannot
both be written (the least-squares fit averages them). EAMET adds to each δ's loss a term
that makes the cosine similarities of δ_i to the other facts' δ's look like those of k_i to
their keys: KL(p ‖ q), p = softmax(cos(k_i, k_j) / τ), q = softmax(cos(δ_i, δ_j) / τ) over
the other facts j, plus a squared error between the two cosines on the `top` nearest keys,
weighted by p over those. The paper optimises requests one by one against the earlier
ones' final δ's; here a chunk's requests are optimised together, each against the other
δ's of its chunk as they stand (detached) and the final δ's of the chunks before."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .keys import SubjectRows, template_keys


@dataclass
class Alignment:
    keys: torch.Tensor  # n_requests × d_in: each request's key at the last edited layer
    kl_weight: float = 2.0  # EAMET's cs_factor (Llama-3-8B hparams)
    mse_weight: float = 8.0  # EAMET's mse_factor
    tau: float = 0.07
    top: int = 50


def last_layer_keys(model, tokenizer, adapter, requests, templates: list[str], settings
                    ) -> torch.Tensor:
    """Each request's key at the last edited layer on the model as it is (templates
    averaged as the solve's keys are)."""
    L = settings.last_layer
    walk = SubjectRows(model, tokenizer, adapter,
                       [t.format(r.prompt) for r in requests for t in templates],
                       [r.subject for r in requests for _ in templates], L,
                       rule=settings.token_rule)
    return template_keys(walk, L, len(requests), len(templates)).float().cpu()


def alignment_loss(delta: torch.Tensor, mine: list[int], fixed: torch.Tensor,
                   fixed_idx: list[int], align: Alignment) -> torch.Tensor:
    """Per δ (rows of `delta`, request `mine[i]`'s), the alignment term against the other
    δ's: this chunk's (detached) and `fixed` (requests `fixed_idx`)."""
    others = torch.cat([delta.detach(), fixed.to(delta)])
    idx = torch.tensor(mine + fixed_idx)
    if len(idx) < 2:
        return delta.new_zeros(delta.shape[0])
    own = torch.tensor(mine)[:, None] == idx[None, :]
    keys = F.normalize(align.keys.to(delta), dim=1)
    sim_k = (keys[torch.tensor(mine)] @ keys[idx].T).masked_fill(own, float("-inf"))
    sim_r = (F.normalize(delta, dim=1) @ F.normalize(others, dim=1).T).masked_fill(own, float("-inf"))
    p = torch.softmax(sim_k / align.tau, dim=1)
    log_q = torch.log_softmax(sim_r / align.tau, dim=1).masked_fill(own, 0.0)
    kl = (torch.special.xlogy(p, p) - p * log_q).sum(1)
    top = min(align.top, len(idx) - 1)
    k_top, where = sim_k.topk(top, dim=1)
    r_top = sim_r.gather(1, where)
    mse = (torch.softmax(k_top / align.tau, dim=1) * (k_top - r_top) ** 2).sum(1)
    return align.kl_weight * kl + align.mse_weight * mse
