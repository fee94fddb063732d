"""Target vectors z_i: what the residual stream at layer L, at each subject's last token,
must become for the model to say the new object (paper §4, step 1).

All requests are optimised together: one padded batch of requests × prefix templates plus
one KL prompt per request. δ_i only changes layer L's output at the subject's last token,
so the hidden states leaving layer L are computed once, and each step runs layers L+1..
only (layers 0..L are stood in for by the cached states + δ). Logits are formed only at
the positions the loss reads. A request whose loss falls below `z_stop_loss` leaves the
batch; Adam is kept per request so that leaving does not move anyone else."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import NumericalError
from ..models.adapters import Adapter
from .layers import replaced_layers, run_until
from .progress import progress
from .requests import Request
from .settings import EditSettings
from .tokens import subject_last_token, target_ids

KL_PROMPT = "{} is a"


@dataclass
class Rows:
    """A padded batch of prompts with the bookkeeping the loss needs."""

    input_ids: torch.Tensor  # R × T
    attention_mask: torch.Tensor  # R × T
    subject_pos: torch.Tensor  # R: index of the subject's last token
    request: torch.Tensor  # R: which request a row belongs to (local index)
    is_kl: torch.Tensor  # R: bool, the KL prompt of its request
    tgt_row: torch.Tensor  # N: row of each target token
    tgt_pos: torch.Tensor  # N: position whose logits predict it
    tgt_id: torch.Tensor  # N: the token
    tgt_weight: torch.Tensor  # N: 1 / (target length · rewriting prompts of its request)

    def select(self, rows: torch.Tensor) -> "Rows":
        """The sub-batch made of `rows` (target tokens follow their rows)."""
        remap = torch.full((self.input_ids.shape[0],), -1, dtype=torch.long)
        remap[rows] = torch.arange(len(rows))
        keep = remap[self.tgt_row] >= 0
        return Rows(self.input_ids[rows], self.attention_mask[rows], self.subject_pos[rows],
                    self.request[rows], self.is_kl[rows], remap[self.tgt_row[keep]],
                    self.tgt_pos[keep], self.tgt_id[keep], self.tgt_weight[keep])


def build_rows(tokenizer, requests: list[Request], templates: list[str]) -> Rows:
    seqs, spos, req, kl, trow, tpos, tid, tw = [], [], [], [], [], [], [], []
    for i, r in enumerate(requests):
        target = target_ids(tokenizer, r.target_new)
        for t in templates:
            ids, s = subject_last_token(tokenizer, t.format(r.prompt), r.subject, r.describe())
            row = len(seqs)
            for j, tok in enumerate(target):
                trow.append(row)
                tpos.append(len(ids) - 1 + j)
                tid.append(tok)
                tw.append(1.0 / (len(target) * len(templates)))
            seqs.append(ids + target[:-1])
            spos.append(s)
            req.append(i)
            kl.append(False)
        ids, s = subject_last_token(tokenizer, KL_PROMPT, r.subject, r.describe())
        seqs.append(ids)
        spos.append(s)
        req.append(i)
        kl.append(True)
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for k, s in enumerate(seqs):
        input_ids[k, : len(s)] = torch.tensor(s)
        mask[k, : len(s)] = 1
    t = torch.tensor
    return Rows(input_ids, mask, t(spos), t(req), t(kl), t(trow), t(tpos), t(tid),
                t(tw, dtype=torch.float32))


class RowAdam:
    """torch.optim.Adam's arithmetic, with state per request so that requests can leave."""

    def __init__(self, shape: tuple[int, int], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = torch.zeros(shape)
        self.v = torch.zeros(shape)
        self.steps = torch.zeros(shape[0], dtype=torch.long)

    def step(self, param: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor) -> None:
        self.steps[rows] += 1
        m = self.m[rows].lerp_(grad, 1 - self.b1)
        v = self.v[rows].mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        self.m[rows], self.v[rows] = m, v
        t = self.steps[rows].to(torch.float64)
        bc1 = (1 - self.b1 ** t).to(param.dtype).unsqueeze(1)
        bc2_sqrt = ((1 - self.b2 ** t) ** 0.5).to(param.dtype).unsqueeze(1)
        denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
        param[rows] = param[rows] - (self.lr / bc1) * m / denom


def _autocast(settings: EditSettings):
    if settings.compute_dtype == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def _scatter_delta(h: torch.Tensor, rows: Rows, delta_rows: torch.Tensor) -> torch.Tensor:
    """h (R × T × d) with delta_rows (R × d) added at each row's subject position."""
    onehot = F.one_hot(rows.subject_pos, h.shape[1]).to(h.dtype).unsqueeze(-1)
    return h + onehot * delta_rows.unsqueeze(1)


def _logprobs_at(model, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1)


def request_losses(model, adapter: Adapter, rows: Rows, h_L: torch.Tensor, delta: torch.Tensor,
                   kl_init: torch.Tensor | None, h_norm: torch.Tensor, settings: EditSettings,
                   n_requests: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-request loss (NLL + KL + weight decay) for δ (n_requests × d). `rows` and
    `h_L` (the hidden states leaving layer L for those rows) may hold a subset of the
    requests. Returns (loss per request, KL-prompt log-probabilities per KL row)."""
    L = settings.last_layer
    device = h_L.device
    start_h = _scatter_delta(h_L, rows, delta[rows.request])
    with replaced_layers(model, adapter, L + 1, lambda: start_h), _autocast(settings):
        out = model.base_model(input_ids=rows.input_ids.to(device),
                               attention_mask=rows.attention_mask.to(device),
                               use_cache=False).last_hidden_state
    lp = _logprobs_at(model, out[rows.tgt_row, rows.tgt_pos])
    tok_lp = lp.gather(1, rows.tgt_id.unsqueeze(1).to(device)).squeeze(1)
    req_of_tok = rows.request[rows.tgt_row].to(device)
    nll = torch.zeros(n_requests, device=device).index_add(
        0, req_of_tok, -tok_lp * rows.tgt_weight.to(device))
    kl_rows = torch.nonzero(rows.is_kl).squeeze(1)
    kl_lp = _logprobs_at(model, out[kl_rows, rows.attention_mask[kl_rows].sum(1) - 1])
    loss = nll
    if kl_init is not None and settings.kl_weight:
        kl_req = rows.request[kl_rows].to(device)
        kl = (kl_init.exp() * (kl_init - kl_lp)).sum(-1)
        loss = loss + settings.kl_weight * torch.zeros(n_requests, device=device).index_add(0, kl_req, kl)
    loss = loss + settings.weight_decay * delta.norm(dim=1) / h_norm ** 2
    return loss, kl_lp


def compute_zs(model, tokenizer, adapter: Adapter, requests: list[Request], templates: list[str],
               settings: EditSettings, show_progress: bool = True) -> tuple[torch.Tensor, dict]:
    """z-vectors (n × d_model, float32) for all requests, and per-request details
    (steps taken, final NLL)."""
    zs, steps, losses = [], [], []
    chunk = settings.z_chunk
    with progress(show_progress, total=len(requests), desc="z-vectors", unit="req") as bar:
        for a in range(0, len(requests), chunk):
            z, info = _compute_chunk(model, tokenizer, adapter, requests[a:a + chunk], templates, settings)
            zs.append(z)
            steps += info["steps"]
            losses += info["loss"]
            bar.update(len(requests[a:a + chunk]))
    z = torch.cat(zs)
    if not torch.isfinite(z).all():
        bad = [requests[i].describe() for i in range(len(requests)) if not torch.isfinite(z[i]).all()]
        raise NumericalError(f"z-vector is not finite for {bad[0]}")
    return z, {"z_steps": steps, "z_loss": losses}


def _compute_chunk(model, tokenizer, adapter, requests, templates, settings):
    L = settings.last_layer
    n = len(requests)
    device = next(model.parameters()).device
    rows = build_rows(tokenizer, requests, templates)
    with torch.no_grad():
        h_L = run_until(model, adapter, L, [(L, "out")],
                        input_ids=rows.input_ids.to(device),
                        attention_mask=rows.attention_mask.to(device))[(L, "out")].float()
    bare = torch.tensor([int(torch.nonzero(rows.request == i)[0]) for i in range(n)])
    h_init = h_L[bare, rows.subject_pos[bare]]  # h_i^L on the bare prompt
    h_norm = h_init.norm(dim=1)
    delta = torch.zeros_like(h_init)
    adam = RowAdam(tuple(delta.shape), settings.z_lr)
    with torch.no_grad():
        _, kl_init = request_losses(model, adapter, rows, h_L, delta, None, h_norm, settings, n)
    active = torch.arange(n)
    steps = [0] * n
    final = [0.0] * n
    for it in range(settings.z_steps):
        row_sel = torch.nonzero(torch.isin(rows.request, active)).squeeze(1)
        sub = rows.select(row_sel)
        d = delta.clone().requires_grad_(True)
        kl_sub = kl_init[sub.request[sub.is_kl]]  # KL rows were built in request order
        loss, _ = request_losses(model, adapter, sub, h_L[row_sel], d, kl_sub, h_norm, settings, n)
        if not torch.isfinite(loss[active]).all():
            raise NumericalError("z-vector optimisation diverged (loss is not finite)")
        cur = loss[active].detach()
        for k, i in enumerate(active.tolist()):
            steps[i] = it
            final[i] = float(cur[k])
        done = cur < settings.z_stop_loss
        if it == settings.z_steps - 1:
            break
        stay = active[~done]
        if len(stay) == 0:
            break
        loss[stay].sum().backward()
        with torch.no_grad():
            adam.step(delta, d.grad[stay], stay)
            max_norm = settings.clamp * h_norm[stay]
            norms = delta[stay].norm(dim=1)
            scale = torch.where(norms > max_norm, max_norm / norms, torch.ones_like(norms))
            delta[stay] = delta[stay] * scale.unsqueeze(1)
        active = stay
    return (h_init + delta).detach(), {"steps": steps, "loss": final}
