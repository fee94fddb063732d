"""The paper's z-vector procedure (MEMIT §4 step 1, the authors' `compute_z`), transcribed
independently of the batched path in `zs.py`, which it is the test and speed baseline for:
one request at a time, full forward passes through the model's own forward (all layers,
all positions, the model's own logits), δ added by a hook on layer L's output,
torch.optim.Adam. It shares no code with `zs.py` or `tokens.py`: its own tokenization,
subject lookup (the reference's: the token count of the text up to the subject's end),
padding, loss, KL term and stopping.

One difference from the authors' code, on purpose and shared with memstore's engine
(README, "Differences on purpose"): a request stops once its target NLL — not its total
loss — is below `z_stop_loss`."""
from __future__ import annotations

import torch

from ..models.adapters import Adapter
from .requests import Request
from .settings import EditSettings

KL_PROMPT = "{} is a"


def _subject_end(tokenizer, text: str, end: int) -> int:
    """Index of the subject's last token: the number of tokens of the text up to the end of
    the subject, less one (the reference's `subject_last` lookup)."""
    return len(tokenizer(text[:end]).input_ids) - 1


def _rows(tokenizer, request: Request, templates: list[str]):
    tail = request.target_new if request.target_new.startswith(" ") else " " + request.target_new
    target = tokenizer(tail, add_special_tokens=False).input_ids
    seqs, lookups, targets = [], [], []
    for template in [*(t.format(request.prompt) for t in templates), KL_PROMPT]:
        text = template.replace("{}", request.subject, 1)
        ids = tokenizer(text).input_ids
        lookups.append(_subject_end(tokenizer, text, template.index("{}") + len(request.subject)))
        if template is KL_PROMPT:
            seqs.append(ids)
            targets.append([])
        else:
            seqs.append(ids + target[:-1])
            targets.append([(len(ids) - 1 + j, tok) for j, tok in enumerate(target)])
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    return input_ids, mask, lookups, targets, len(target)


def compute_z_reference(model, tokenizer, adapter: Adapter, request: Request, templates: list[str],
                        settings: EditSettings) -> tuple[torch.Tensor, int]:
    """z (d_model) for one request, and the number of optimisation steps taken."""
    device = next(model.parameters()).device
    input_ids, mask, lookups, targets, n_target = _rows(tokenizer, request, templates)
    input_ids, mask = input_ids.to(device), mask.to(device)
    n_rewrite = len(lookups) - 1
    delta = torch.zeros(model.config.get_text_config().hidden_size, device=device, requires_grad=True)
    target_init = {}

    def add_delta(_module, _inputs, output):
        hidden = output[0] if isinstance(output, (tuple, list)) else output
        if "h" not in target_init:
            target_init["h"] = hidden[0, lookups[0]].detach().clone()
        hidden = hidden.clone()
        for row, pos in enumerate(lookups):
            hidden[row, pos] = hidden[row, pos] + delta
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = adapter.layer(model, settings.last_layer).register_forward_hook(add_delta)
    opt = torch.optim.Adam([delta], lr=settings.z_lr)
    kl_init = None
    steps = 0
    try:
        for it in range(settings.z_steps):
            opt.zero_grad()
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            nll_each = torch.stack([
                -sum(log_probs[row, pos, tok] for pos, tok in targets[row]) / n_target
                for row in range(n_rewrite)])
            nll = nll_each.mean()
            kl_log_probs = log_probs[n_rewrite, lookups[n_rewrite]]
            if kl_init is None:
                kl_init = kl_log_probs.detach().clone()
            kl = torch.sum(kl_log_probs.exp() * (kl_log_probs - kl_init))  # KL(current ‖ init)
            h = target_init["h"]
            loss = nll + settings.kl_weight * kl + settings.weight_decay * delta.norm() / h.norm() ** 2
            steps = it
            if float(nll.detach()) < settings.z_stop_loss or it == settings.z_steps - 1:
                break
            loss.backward()
            opt.step()
            with torch.no_grad():
                max_norm = settings.clamp * h.norm()
                if delta.norm() > max_norm:
                    delta.mul_(max_norm / delta.norm())
    finally:
        handle.remove()
    return (target_init["h"] + delta).detach(), steps
