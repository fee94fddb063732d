"""Keys k (inputs of W_out at the subject's last token) and the current h^L."""
from __future__ import annotations

import torch

from ..models.adapters import Adapter
from .layers import replaced_layers, run_until
from .requests import Request
from .tokens import pad_right, subject_last_token, target_ids


@torch.no_grad()
def at_subject(model, tokenizer, adapter: Adapter, layer: int, kind: str, prompts: list[str],
               subjects: list[str], batch_rows: int = 256, rule: int = 2) -> torch.Tensor:
    """For each prompt (a template with "{}"), the key ("key") or the layer output ("out")
    of `layer` at the subject's last token (`rule`: tokens.subject_last_token). Rows × d,
    float32."""
    device = next(model.parameters()).device
    out = []
    for a in range(0, len(prompts), batch_rows):
        enc = [subject_last_token(tokenizer, p, s, rule=rule)
               for p, s in zip(prompts[a:a + batch_rows], subjects[a:a + batch_rows])]
        ids, mask = pad_right(tokenizer.pad_token_id, [e[0] for e in enc])
        got = run_until(model, adapter, layer, [(layer, kind)], input_ids=ids.to(device),
                        attention_mask=mask.to(device))[(layer, kind)]
        pos = torch.tensor([e[1] for e in enc], device=device)
        out.append(got[torch.arange(len(enc), device=device), pos].float())
    return torch.cat(out)


def compute_keys(model, tokenizer, adapter: Adapter, layer: int, requests: list[Request],
                 templates: list[str], rule: int = 2) -> torch.Tensor:
    """K (n × d_in): each request's key averaged as in the reference: within the bare
    template group and within the sampled-prefix group, then across the groups."""
    prompts = [t.format(r.prompt) for r in requests for t in templates]
    subjects = [r.subject for r in requests for _ in templates]
    k = at_subject(model, tokenizer, adapter, layer, "key", prompts, subjects, rule=rule)
    k = k.reshape(len(requests), len(templates), -1)
    if len(templates) == 1:
        return k[:, 0]
    return (k[:, 0] + k[:, 1:].mean(1)) / 2


def current_hidden(model, tokenizer, adapter: Adapter, layer: int,
                   requests: list[Request], rule: int = 2) -> torch.Tensor:
    """h^L (n × d): layer output at the subject's last token of each bare prompt."""
    return at_subject(model, tokenizer, adapter, layer, "out", [r.prompt for r in requests],
                      [r.subject for r in requests], rule=rule)


class TokenRows:
    """Token sequences walked through the model one edited layer at a time, read at chosen
    positions (each sequence's own list).

    MEMIT edits the layers in ascending order and needs, at each layer l, the keys at l and
    h^L, both with the layers below l already edited. Recomputing them from the embeddings
    costs l + 1 (and L + 1) layers per edited layer; instead this keeps the hidden states
    entering layer l for every sequence and resumes there (the layers below are stood in
    for, the model's own forward does the rest), and after layer l is edited advances them
    through layer l only. The same operations on the same inputs: the same bits."""

    def __init__(self, model, adapter: Adapter, pad_id: int, seqs: list[list[int]],
                 positions: list[list[int]], first: int, batch_rows: int = 256) -> None:
        self.model, self.adapter, self.layer = model, adapter, first
        self.device = adapter.embeddings(model).weight.device
        self.batches = []
        for a in range(0, len(seqs), batch_rows):
            ids, mask = pad_right(pad_id, seqs[a:a + batch_rows])
            picks = [(i, p) for i, ps in enumerate(positions[a:a + batch_rows]) for p in ps]
            rows = torch.tensor([i for i, _ in picks], dtype=torch.long)
            cols = torch.tensor([p for _, p in picks], dtype=torch.long)
            self.batches.append({"ids": ids, "mask": mask, "rows": rows, "cols": cols, "h": None})
        if first > 0:
            with torch.no_grad():
                for b in self.batches:
                    b["h"] = self._run(b, first - 1, [(first - 1, "out")])[(first - 1, "out")]

    def _run(self, b: dict, stop: int, capture: list[tuple[int, str]]) -> dict:
        kwargs = {"input_ids": b["ids"].to(self.device),
                  "attention_mask": b["mask"].to(self.device)}
        if b["h"] is None:
            return run_until(self.model, self.adapter, stop, capture, **kwargs)
        h = b["h"]
        with replaced_layers(self.model, self.adapter, self.layer, lambda: h):
            return run_until(self.model, self.adapter, stop, capture, **kwargs)

    @torch.no_grad()
    def at(self, layer: int, kind: str) -> torch.Tensor:
        """`kind` ("key", "value", "out") at `layer` >= the current one, at the chosen
        positions, sequence by sequence: rows × d, float32."""
        out = []
        for b in self.batches:
            got = self._run(b, layer, [(layer, kind)])[(layer, kind)]
            out.append(got[b["rows"].to(got.device), b["cols"].to(got.device)].float())
        return torch.cat(out)

    @torch.no_grad()
    def advance(self) -> None:
        """Past the current layer (as it is now, edited): the walk moves one layer up."""
        for b in self.batches:
            b["h"] = self._run(b, self.layer, [(self.layer, "out")])[(self.layer, "out")]
        self.layer += 1


class SubjectRows(TokenRows):
    """Prompts (with their subjects) read at the subject's last token."""

    def __init__(self, model, tokenizer, adapter: Adapter, prompts: list[str],
                 subjects: list[str], first: int, batch_rows: int = 256, rule: int = 2) -> None:
        enc = [subject_last_token(tokenizer, p, s, rule=rule) for p, s in zip(prompts, subjects)]
        super().__init__(model, adapter, tokenizer.pad_token_id, [e[0] for e in enc],
                         [[e[1]] for e in enc], first, batch_rows)


def context_rows(model, tokenizer, adapter: Adapter, requests: list[Request],
                 first: int, rule: int = 2) -> TokenRows:
    """Each request's bare prompt followed by its new target, read at every position after
    the subject's last token but the last: the rest of the prompt and the target's tokens,
    whose hidden states carry the answer out (their keys are what the edit should leave
    alone: README, "Questions and exact answers")."""
    seqs, positions = [], []
    for r in requests:
        ids, pos = subject_last_token(tokenizer, r.prompt, r.subject, rule=rule)
        full = ids + target_ids(tokenizer, r.target_new)
        seqs.append(full)
        positions.append(list(range(pos + 1, len(full) - 1)))
    return TokenRows(model, adapter, tokenizer.pad_token_id, seqs, positions, first)


def template_keys(rows: SubjectRows, layer: int, n_requests: int, n_templates: int,
                  anchor: torch.Tensor | None = None) -> torch.Tensor:
    """K (n × d_in) from a walk over requests × templates, averaged as compute_keys does;
    a request anchored past its bare prompt (`anchor` > 0: anchor_rows) takes the mean of
    its sampled-prefix keys alone, its bare prompt's being an attention sink's."""
    k = rows.at(layer, "key").reshape(n_requests, n_templates, -1)
    if n_templates == 1:
        return k[:, 0]
    out = (k[:, 0] + k[:, 1:].mean(1)) / 2
    if anchor is not None and bool((anchor > 0).any()):
        sink = (anchor > 0).to(out.device)
        out[sink] = k[sink, 1:].mean(1)
    return out


def anchor_rows(norms: torch.Tensor, sink_ratio: float) -> torch.Tensor:
    """Per request, the template whose row anchors its z-vector and residual: 0, the bare
    prompt, unless ‖h^L‖ at its subject exceeds `sink_ratio` × the median over the request's
    sampled-prefix rows — then 1, the first of those. `norms`: n_requests × n_templates.

    A subject whose last token opens the bare prompt ("{} is created by" with a one-token
    subject, and no BOS in front) sits at the model's attention sink: its hidden state is not
    the subject's (on Qwen2.5-Coder-0.5B 54–132× its templated prompts' at layer 6), so a δ
    clamped to a share of it, and a residual read there, are out of all proportion to the
    other facts' (benchmarks/README.md, "Qwen's collapse: single facts at the attention
    sink"). 0 turns the check off (every request anchored at its bare prompt, as in the
    paper)."""
    n, t = norms.shape
    anchor = torch.zeros(n, dtype=torch.long)
    if sink_ratio <= 0 or t < 2:
        return anchor
    usual = norms[:, 1:].median(dim=1).values
    anchor[norms[:, 0] > sink_ratio * usual] = 1
    return anchor
