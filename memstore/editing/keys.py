"""Keys k (inputs of W_out at the subject's last token) and the current h^L."""
from __future__ import annotations

import torch

from ..models.adapters import Adapter
from .layers import run_until
from .requests import Request
from .tokens import pad_right, subject_last_token


@torch.no_grad()
def at_subject(model, tokenizer, adapter: Adapter, layer: int, kind: str, prompts: list[str],
               subjects: list[str], batch_rows: int = 256) -> torch.Tensor:
    """For each prompt (a template with "{}"), the key ("key") or the layer output ("out")
    of `layer` at the subject's last token. Rows × d, float32."""
    device = next(model.parameters()).device
    out = []
    for a in range(0, len(prompts), batch_rows):
        enc = [subject_last_token(tokenizer, p, s) for p, s in zip(prompts[a:a + batch_rows],
                                                                    subjects[a:a + batch_rows])]
        ids, mask = pad_right(tokenizer.pad_token_id, [e[0] for e in enc])
        got = run_until(model, adapter, layer, [(layer, kind)], input_ids=ids.to(device),
                        attention_mask=mask.to(device))[(layer, kind)]
        pos = torch.tensor([e[1] for e in enc], device=device)
        out.append(got[torch.arange(len(enc), device=device), pos].float())
    return torch.cat(out)


def compute_keys(model, tokenizer, adapter: Adapter, layer: int, requests: list[Request],
                 templates: list[str]) -> torch.Tensor:
    """K (n × d_in): each request's key averaged as in the reference: within the bare
    template group and within the sampled-prefix group, then across the groups."""
    prompts = [t.format(r.prompt) for r in requests for t in templates]
    subjects = [r.subject for r in requests for _ in templates]
    k = at_subject(model, tokenizer, adapter, layer, "key", prompts, subjects)
    k = k.reshape(len(requests), len(templates), -1)
    if len(templates) == 1:
        return k[:, 0]
    return (k[:, 0] + k[:, 1:].mean(1)) / 2


def current_hidden(model, tokenizer, adapter: Adapter, layer: int,
                   requests: list[Request]) -> torch.Tensor:
    """h^L (n × d): layer output at the subject's last token of each bare prompt."""
    return at_subject(model, tokenizer, adapter, layer, "out", [r.prompt for r in requests],
                      [r.subject for r in requests])
