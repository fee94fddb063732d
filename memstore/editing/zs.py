"""Target vectors z_i: what the residual stream at layer L, at each subject's last token,
must become for the model to say the new object (paper §4, step 1).

All requests are optimised together: one padded batch of requests × prefix templates plus
one KL prompt per request. δ_i only changes layer L's output at the subject's last token,
so one full pass computes what δ cannot change: the hidden states leaving layer L, and the
keys/values of every position before the subject's last token (a prefix KV cache). Each
step then runs layers L+1.. on the suffix tokens only (layers 0..L are stood in for by
the cached states + δ), suffixes bucketed by length, and logits are formed only where
the loss reads them. A request whose target NLL falls below `z_stop_loss` leaves the
batch; Adam is kept per request so that leaving does not move anyone else."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import NumericalError, ValidationError
from ..models.adapters import Adapter, hidden_of
from ..models.runtime import float64_device
from .distributed import in_order, owned
from .fisher import fisher_penalty
from .keys import anchor_rows
from .layers import replaced_layers
from .progress import progress
from .requests import Request
from .settings import EditSettings
from .tokens import pad_right, subject_last_token, subject_start, target_ids

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
    last_pos: torch.Tensor  # R: index of each row's last real token
    # Set when the rows hold only the suffix (from the subject's last token on): the
    # positions of the suffix tokens, and the keys/values of the prefix at every layer.
    # attention_mask then covers prefix + suffix.
    position_ids: torch.Tensor | None = None
    past: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def select(self, rows: torch.Tensor) -> Rows:
        """The sub-batch made of `rows` (target tokens follow their rows)."""
        remap = torch.full((self.input_ids.shape[0],), -1, dtype=torch.long)
        remap[rows] = torch.arange(len(rows))
        keep = remap[self.tgt_row] >= 0
        return Rows(self.input_ids[rows], self.attention_mask[rows], self.subject_pos[rows],
                    self.request[rows], self.is_kl[rows], remap[self.tgt_row[keep]],
                    self.tgt_pos[keep], self.tgt_id[keep], self.tgt_weight[keep],
                    self.last_pos[rows],
                    None if self.position_ids is None else self.position_ids[rows],
                    None if self.past is None else [(k[rows], v[rows]) for k, v in self.past])


def build_rows(tokenizer, requests: list[Request], templates: list[str],
               with_kl: list[bool] | None = None, rule: int = 2) -> Rows:
    """Each request's rows: one per template, then its KL prompt (unless `with_kl` says
    not: the other requests of one key share the first one's); `rule`: the settings'
    token_rule."""
    seqs, spos, req, kl, trow, tpos, tid, tw = [], [], [], [], [], [], [], []
    for i, r in enumerate(requests):
        target = target_ids(tokenizer, r.target_new)
        for t in templates:
            ids, s = subject_last_token(tokenizer, t.format(r.prompt), r.subject, r.describe(),
                                        rule)
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
        if with_kl is not None and not with_kl[i]:
            continue
        ids, s = subject_last_token(tokenizer, KL_PROMPT, r.subject, r.describe(), rule)
        seqs.append(ids)
        spos.append(s)
        req.append(i)
        kl.append(True)
    input_ids, mask = pad_right(tokenizer.pad_token_id, seqs)
    t = torch.tensor
    return Rows(input_ids, mask, t(spos), t(req), t(kl), t(trow), t(tpos), t(tid),
                t(tw, dtype=torch.float32), mask.sum(1) - 1)


def _cache_kwarg(model) -> str:
    import inspect

    params = inspect.signature(model.base_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))


def _make_cache(past: list[tuple[torch.Tensor, torch.Tensor]]):
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=past)


@torch.no_grad()
def full_pass(model, adapter: Adapter, rows: Rows, layer: int) -> tuple[torch.Tensor, list | None]:
    """One forward over the whole rows: the hidden states leaving `layer`, and every
    layer's keys/values (the prefix cache; None where the adapter says its layers keep no
    such cache: Adapter.prefix_cache)."""
    device = next(model.parameters()).device
    got = {}

    def hook(_m, _i, out):
        got["h"] = hidden_of(out)

    handle = adapter.layer(model, layer).register_forward_hook(hook)
    try:
        out = model.base_model(input_ids=rows.input_ids.to(device),
                               attention_mask=rows.attention_mask.to(device),
                               use_cache=adapter.prefix_cache)
    finally:
        handle.remove()
    if not adapter.prefix_cache:
        return got["h"].float(), None
    cache = out[_cache_kwarg(model)] if _cache_kwarg(model) in out else out[1]
    return got["h"].float(), _cache_tensors(cache)


def to_suffix(rows: Rows, h_L: torch.Tensor, past: list | None, keep: torch.Tensor
              ) -> tuple[Rows, torch.Tensor]:
    """Rows `keep`, cut at each subject's last token. Positions before it are unchanged by
    δ at every layer: their keys/values (from `past`, the full pass) are moved into a
    left-padded prefix cache, and each optimisation step runs only the suffix. Without
    `past` (a recurrent layer's state is no per-position cache) the rows are kept whole.
    Returns the suffix rows and h_L at the suffix positions."""
    device = h_L.device
    rows = rows.select(keep)
    lens = rows.attention_mask.sum(1)
    s = rows.subject_pos if past is not None else torch.zeros_like(rows.subject_pos)
    P, S = int(s.max()), int((lens - s).max())
    slot = torch.arange(P).unsqueeze(0) - (P - s).unsqueeze(1)  # prefix slot -> position
    pre_mask = (slot >= 0).long()
    suf_mask = (torch.arange(S).unsqueeze(0) < (lens - s).unsqueeze(1)).long()
    pos = s.unsqueeze(1) + torch.arange(S)  # positions of the suffix tokens
    suf_ids = rows.input_ids.gather(1, pos.clamp(max=rows.input_ids.shape[1] - 1))
    prefix = None
    if P:
        idx = slot.clamp(min=0).to(device)[:, None, :, None]
        keep_d = keep.to(device)
        prefix = []
        for k, v in past:
            k, v = k[keep_d], v[keep_d]
            i = idx.expand(-1, k.shape[1], -1, k.shape[3])
            prefix.append((k.gather(2, i), v.gather(2, i)))
    h = h_L[keep.to(device)]
    h_suffix = h.gather(1, pos.clamp(max=h.shape[1] - 1).to(device).unsqueeze(-1).expand(-1, -1, h.shape[2]))
    suffix = Rows(suf_ids, torch.cat([pre_mask, suf_mask], 1), rows.subject_pos - s, rows.request,
                  rows.is_kl, rows.tgt_row, rows.tgt_pos - s[rows.tgt_row], rows.tgt_id,
                  rows.tgt_weight, lens - 1 - s, pos, prefix)
    return suffix, h_suffix


def buckets(rows: Rows) -> list[torch.Tensor]:
    """Rows grouped by suffix length (at most two groups), to cut padding."""
    sfx = rows.attention_mask.sum(1) - rows.subject_pos
    order = torch.argsort(sfx, stable=True)
    lengths = sfx[order]
    n = len(order)
    best, cut = n * int(lengths[-1]), n
    for k in range(1, n):
        area = k * int(lengths[k - 1]) + (n - k) * int(lengths[-1])
        if area < best:
            best, cut = area, k
    if cut == n or best > 0.85 * n * int(lengths[-1]):
        return [torch.arange(n)]
    return [torch.sort(order[:cut]).values, torch.sort(order[cut:]).values]


class RowAdam:
    """torch.optim.Adam's arithmetic, with state per request so that requests can leave."""

    def __init__(self, shape: tuple[int, int], lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 device: torch.device | str = "cpu"):
        """State (moments, step counts) in float32 on `device`, δ's device."""
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = torch.zeros(shape, device=device)
        self.v = torch.zeros(shape, device=device)
        self.steps = torch.zeros(shape[0], dtype=torch.long, device=device)

    def step(self, param: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor) -> None:
        rows = rows.to(param.device)
        self.steps[rows] += 1
        m = self.m[rows].lerp_(grad, 1 - self.b1)
        v = self.v[rows].mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        self.m[rows], self.v[rows] = m, v
        t = self.steps[rows].to(float64_device(param.device), torch.float64)  # not on MPS
        bc1 = (1 - self.b1 ** t).to(param.device, param.dtype).unsqueeze(1)
        bc2_sqrt = ((1 - self.b2 ** t) ** 0.5).to(param.device, param.dtype).unsqueeze(1)
        denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
        param[rows] = param[rows] - (self.lr / bc1) * m / denom


def check_compute_dtype(model, adapter: Adapter, settings: EditSettings) -> None:
    """compute_dtype bfloat16 runs the z-vector passes of float32 (or bfloat16) weights in
    bfloat16; float16 weights under bfloat16 autocast mix the two half types, which
    autocast refuses halfway through the first step (a RuntimeError traceback). float64
    has no autocast: the passes ran in the weights' dtype, and the commit recorded float64."""
    if settings.compute_dtype == "float64":
        raise ValidationError("compute_dtype float64 is not implemented: the z-vector passes "
                              "run in the weights' dtype (or bfloat16); set `memstore config "
                              "compute_dtype float32`")
    dtype = adapter.embeddings(model).weight.dtype
    if settings.compute_dtype == "bfloat16" and dtype == torch.float16:
        raise ValidationError("compute_dtype bfloat16 cannot run a model loaded in float16; "
                              "load it in float32 or bfloat16 (--dtype), or set "
                              "`memstore config compute_dtype float32`")


def _autocast(settings: EditSettings, device: torch.device):
    """bfloat16 matmuls where the settings ask for them, on the model's device type."""
    if settings.compute_dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _scatter_delta(h: torch.Tensor, rows: Rows, delta_rows: torch.Tensor) -> torch.Tensor:
    """h (R × T × d) with delta_rows (R × d) added at each row's subject position."""
    onehot = F.one_hot(rows.subject_pos, h.shape[1]).to(h.device, h.dtype).unsqueeze(-1)
    return h + onehot * delta_rows.unsqueeze(1)


def _logprobs_at(model, adapter: Adapter, hidden: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(adapter.logits(model, hidden).float(), dim=-1)


def request_losses(model, adapter: Adapter, parts: list[tuple[Rows, torch.Tensor]],
                   delta: torch.Tensor, kl_init: torch.Tensor | None, h_norm: torch.Tensor,
                   settings: EditSettings, fisher: tuple[torch.Tensor, float] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-request loss (NLL + KL + weight decay + `fisher`'s penalty, fisher.py) for δ
    (n × d), from row groups `parts` = [(rows, h_L of those rows)] which may hold a subset
    of the requests. `kl_init` (n × vocab) is each request's KL-prompt distribution before
    the edit.
    Returns (loss per request, target NLL per request, KL-prompt log-probabilities per
    request)."""
    n = delta.shape[0]
    device = delta.device
    nll = torch.zeros(n, device=device)
    reg = settings.weight_decay * delta.norm(dim=1) / h_norm ** 2 + fisher_penalty(delta, fisher)
    kl_lp_all = None
    for rows, h_L in parts:
        out = _suffix_forward(model, adapter, rows, h_L, delta, settings)
        lp = _logprobs_at(model, adapter, out[rows.tgt_row, rows.tgt_pos])
        tok_lp = lp.gather(1, rows.tgt_id.unsqueeze(1).to(device)).squeeze(1)
        req_of_tok = rows.request[rows.tgt_row].to(device)
        nll = nll.index_add(0, req_of_tok, -tok_lp * rows.tgt_weight.to(device))
        kl_rows = torch.nonzero(rows.is_kl).squeeze(1)
        if len(kl_rows) == 0:
            continue
        kl_req = rows.request[kl_rows].to(device)
        # as the reference (ROME's Eqn. 4): KL(current ‖ initial) of the next-token
        # distribution at the subject's last token of "{subject} is a"
        kl_lp = _logprobs_at(model, adapter, out[kl_rows, rows.subject_pos[kl_rows].to(device)])
        if kl_lp_all is None:
            kl_lp_all = torch.zeros(n, kl_lp.shape[1], device=device)
        kl_lp_all = kl_lp_all.index_copy(0, kl_req, kl_lp)
        if kl_init is not None and settings.kl_weight:
            kl = (kl_lp.exp() * (kl_lp - kl_init[kl_req])).sum(-1)
            reg = reg.index_add(0, kl_req, settings.kl_weight * kl)
    return nll + reg, nll, kl_lp_all


def _suffix_forward(model, adapter, rows: Rows, h_L: torch.Tensor, delta: torch.Tensor,
                    settings: EditSettings) -> torch.Tensor:
    """Final hidden states of `rows` with δ added at layer L (layers 0..L not run)."""
    device = h_L.device
    weights_dtype = adapter.embeddings(model).weight.dtype
    start_h = _scatter_delta(h_L, rows, delta[rows.request.to(delta.device)]).to(weights_dtype)
    kwargs = {"use_cache": False}
    if rows.past is not None:
        kwargs = {_cache_kwarg(model): _make_cache(rows.past), "use_cache": True}
    if rows.position_ids is not None:
        kwargs["position_ids"] = rows.position_ids.to(device)
    with replaced_layers(model, adapter, settings.last_layer + 1, lambda: start_h), \
            _autocast(settings, device):
        return model.base_model(input_ids=rows.input_ids.to(device),
                                attention_mask=rows.attention_mask.to(device),
                                **kwargs).last_hidden_state


@contextmanager
def eager_attention(model) -> Iterator[None]:
    """Plain (eager) attention while optimising: for these short suffixes on CPU it runs
    ~1.5× faster than SDPA, forward and backward (benchmarks/bench_commit.py)."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch and next(model.parameters()).device.type == "cpu":
        model.set_attn_implementation("eager")
    else:
        switch = False
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def converged(nll: torch.Tensor, settings: EditSettings) -> torch.Tensor:
    """A request has converged once the model says its target: mean target NLL below
    z_stop_loss. (The reference tests the total loss, whose KL term alone often stays above
    0.05, so most requests ran to the step cap with their target already written.)"""
    return nll < settings.z_stop_loss


def key_groups(requests: list[Request], settings: EditSettings) -> list[list[int]]:
    """The requests that share one δ, in order of first appearance: each request alone
    (`z_groups request`, the paper); (`z_groups key`) all the requests that read the same
    key — one subject after the same words (the prompt up to the subject; the templates in
    front are the same for all). The solve can write only one vector at one key: with a δ
    each, the mean of theirs, which none was optimised for; one δ optimised for all their
    targets at once is what can be written. (`z_groups subject`) also the requests that ask
    one subject for the same target in other words: one fact, one δ that says it after
    each wording."""
    if settings.z_groups == "request":
        return [[i] for i in range(len(requests))]
    parent = list(range(len(requests)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple, int] = {}
    for i, r in enumerate(requests):
        names = [("key", r.subject, r.text[:subject_start(r.prompt)])]
        if settings.z_groups == "subject":
            names.append(("target", r.subject, r.target_new))
        for name in names:
            j = first.setdefault(name, i)
            a, b = root(i), root(j)
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(requests)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def chunks(groups: list[list[int]], size: int) -> list[list[int]]:
    """Whole groups packed in order into chunks of at most `size` requests (a larger group
    alone); with single requests, the runs of `size` consecutive requests."""
    out: list[list[int]] = []
    for g in groups:
        if not out or len(out[-1]) + len(g) > size:
            out.append([])
        out[-1].extend(g)
    return out


def compute_zs(model, tokenizer, adapter: Adapter, requests: list[Request], templates: list[str],
               settings: EditSettings, show_progress: bool = True,
               fisher: tuple[torch.Tensor, float] | None = None) -> tuple[torch.Tensor, dict]:
    """z-vectors (n × d_model, float32, on the CPU) for all requests, and per-request
    details (optimisation steps taken, final target NLL). `fisher` (F, β): each δ's loss
    adds β · ½ δᵀ F δ (fisher.py). Requests are optimised in chunks
    of `z_chunk` (the requests of one key in one chunk, `key_groups`); under
    torch.distributed each process takes its chunks and every process receives all of them
    in order (distributed.py), the same bits as one process."""
    check_compute_dtype(model, adapter, settings)
    if fisher is not None:  # once, not at every step: δ is float32 beside the model
        device = adapter.embeddings(model).weight.device
        fisher = (fisher[0].to(device=device, dtype=torch.float32), fisher[1])
    groups = key_groups(requests, settings)
    parts_of = chunks(groups, settings.z_chunk)
    group_of = {i: k for k, g in enumerate(groups) for i in g}
    d_model = adapter.embeddings(model).weight.shape[1]
    total = sum(len(parts_of[c]) for c in owned(len(parts_of)))
    with progress(show_progress, total=total, desc="z-vectors", unit="req") as bar, \
            eager_attention(model):

        def unit(c: int) -> list[torch.Tensor]:
            idx = parts_of[c]
            local: dict[int, int] = {}
            shared = [local.setdefault(group_of[i], len(local)) for i in idx]
            z, info = _compute_chunk(model, tokenizer, adapter, [requests[i] for i in idx],
                                     templates, settings, shared, fisher)
            bar.update(len(idx))
            return [z.float().cpu(), torch.tensor(info["steps"], dtype=torch.float64),
                    torch.tensor(info["loss"], dtype=torch.float64)]

        def shapes(c: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
            n = len(parts_of[c])
            return [((n, d_model), torch.float32), ((n,), torch.float64), ((n,), torch.float64)]

        parts = list(in_order(len(parts_of), unit, shapes))
    order = torch.tensor([i for idx in parts_of for i in idx])
    where = torch.empty_like(order)
    where[order] = torch.arange(len(order))  # request -> its row in the chunks' output
    z = torch.cat([p[0] for p in parts])[where]
    steps = [int(x) for x in torch.cat([p[1] for p in parts])[where].tolist()]
    losses = [float(x) for x in torch.cat([p[2] for p in parts])[where].tolist()]
    if not torch.isfinite(z).all():
        bad = [requests[i].describe() for i in range(len(requests)) if not torch.isfinite(z[i]).all()]
        raise NumericalError(f"z-vector is not finite for {bad[0]}")
    return z, {"z_steps": steps, "z_loss": losses}


def _compute_chunk(model, tokenizer, adapter, requests, templates, settings, shared=None,
                   fisher=None):
    """z-vectors of `requests`; `shared[i]` (0, 1, … in order of first appearance) names the
    δ request i shares with others (default: one δ each). Rows, targets and the KL prompt
    are then counted per δ: its NLL is the mean over its requests', and z_i = h_i^L + δ."""
    L = settings.last_layer
    n_req = len(requests)
    shared = list(range(n_req)) if shared is None else shared
    first = [shared.index(k) == i for i, k in enumerate(shared)]
    rows = build_rows(tokenizer, requests, templates, first, settings.token_rule)
    h_L, past = full_pass(model, adapter, rows, L)
    bare = torch.tensor([int(torch.nonzero(rows.request == i)[0]) for i in range(n_req)])
    # each request's template rows follow its bare prompt's: h^L's norms there pick the row
    # that anchors z (the bare prompt unless it is an attention sink: keys.anchor_rows)
    tmpl = bare[:, None] + torch.arange(len(templates))
    at_subject = h_L[tmpl, rows.subject_pos[tmpl]]
    anchor = anchor_rows(at_subject.norm(dim=-1).float().cpu(), settings.sink_ratio)
    h_req = at_subject[torch.arange(n_req), anchor.to(at_subject.device)]  # h_i^L at the anchor
    del at_subject
    share = torch.tensor(shared)
    n = int(share.max()) + 1
    if n < n_req:  # rows speak for their δ; each request's targets weigh 1 / its group's size
        size = torch.bincount(share, minlength=n)
        rows.tgt_weight = rows.tgt_weight / size[share[rows.request[rows.tgt_row]]]
        rows.request = share[rows.request]
    h_init = h_req[torch.tensor([shared.index(k) for k in range(n)])]  # sets each δ's clamp
    groups = [to_suffix(rows, h_L, past, keep) for keep in buckets(rows)]
    del past, h_L
    h_norm = h_init.norm(dim=1)
    delta = torch.zeros_like(h_init)
    adam = RowAdam(tuple(delta.shape), settings.z_lr, device=delta.device)
    with torch.no_grad():
        _, _, kl_init = request_losses(model, adapter, groups, delta, None, h_norm, settings)
    active = torch.arange(n)
    steps = [0] * n
    final = [0.0] * n
    for it in range(settings.z_steps):
        parts = []
        for g, h in groups:
            sel = torch.nonzero(torch.isin(g.request, active)).squeeze(1)
            if len(sel):
                parts.append((g.select(sel), h[sel.to(h.device)]))
        d = delta.clone().requires_grad_(True)
        loss, nll, _ = request_losses(model, adapter, parts, d, kl_init, h_norm, settings, fisher)
        if not torch.isfinite(loss[active]).all():
            raise NumericalError("z-vector optimisation diverged (loss is not finite)")
        cur = nll[active].detach()
        for k, i in enumerate(active.tolist()):
            steps[i] = it
            final[i] = float(cur[k])
        done = converged(cur, settings).cpu()  # indexes `active`, which stays on the CPU
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
    return ((h_req + delta[share]).detach(),
            {"steps": [steps[k] for k in shared], "loss": [final[k] for k in shared]})
