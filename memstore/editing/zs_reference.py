"""The paper's z-vector procedure, kept as the baseline the batched path is measured and
tested against: one request at a time, full forward passes (all layers, all positions,
full logits) with δ added by a hook at layer L, torch.optim.Adam."""
from __future__ import annotations

import torch

from ..models.adapters import Adapter, hidden_of
from .requests import Request
from .settings import EditSettings
from .zs import build_rows, converged, eager_attention


def compute_z_reference(model, tokenizer, adapter: Adapter, request: Request, templates: list[str],
                        settings: EditSettings) -> tuple[torch.Tensor, int]:
    """z (d_model) for one request, and the number of optimisation steps taken."""
    L = settings.last_layer
    device = next(model.parameters()).device
    rows = build_rows(tokenizer, [request], templates)
    ids, mask = rows.input_ids.to(device), rows.attention_mask.to(device)
    pos = rows.subject_pos.to(device)
    d_model = model.config.hidden_size
    delta = torch.zeros(d_model, device=device, requires_grad=True)
    state = {"h": None}

    def hook(_m, _i, out):
        h = hidden_of(out)
        if state["h"] is None:
            state["h"] = h[0, pos[0]].detach().clone()  # the bare prompt's h^L
        h = h.clone()
        h[torch.arange(h.shape[0], device=device), pos] += delta
        return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h

    handle = adapter.layer(model, L).register_forward_hook(hook)
    opt = torch.optim.Adam([delta], lr=settings.z_lr)
    kl_row = int(torch.nonzero(rows.is_kl)[0])
    kl_pos = int(rows.attention_mask[kl_row].sum()) - 1
    with eager_attention(model):
        return _optimise(model, ids, mask, rows, delta, state, opt, kl_row, kl_pos, settings, handle)


def _optimise(model, ids, mask, rows, delta, state, opt, kl_row, kl_pos, settings, handle):
    kl_init = None
    steps = 0
    try:
        for it in range(settings.z_steps):
            opt.zero_grad()
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            cap = getattr(model.config, "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            lp = torch.log_softmax(logits, dim=-1)
            tok_lp = lp[rows.tgt_row, rows.tgt_pos].gather(1, rows.tgt_id.unsqueeze(1)).squeeze(1)
            nll = -(tok_lp * rows.tgt_weight).sum()
            kl_lp = lp[kl_row, kl_pos]
            if kl_init is None:
                kl_init = kl_lp.detach().clone()
            kl = (kl_init.exp() * (kl_init - kl_lp)).sum()
            h = state["h"]
            loss = nll + settings.kl_weight * kl + settings.weight_decay * delta.norm() / h.norm() ** 2
            steps = it
            if bool(converged(nll.detach(), settings)) or it == settings.z_steps - 1:
                break
            loss.backward()
            opt.step()
            with torch.no_grad():
                max_norm = settings.clamp * h.norm()
                if delta.norm() > max_norm:
                    delta.mul_(max_norm / delta.norm())
    finally:
        handle.remove()
    return (state["h"] + delta).detach(), steps
