"""MEMIT (Meng et al. 2023): z-vectors, then the update spread over the edited layers."""
from __future__ import annotations

import time

import torch

from ..errors import ValidationError
from ..models.adapters import Adapter, get_adapter
from ..models.runtime import float64_device
from .apply import apply_update
from .keys import SubjectRows, anchor_rows, context_rows, template_keys
from .post_norm import value_residuals
from .requests import Request, check_fits, context_length, templated_texts, validate_requests
from .result import EditResult, LayerUpdate
from .sampling import sample_templates
from .settings import EditSettings, check_layers
from .solve import covariance_term, solve_layer, solve_layer_nullspace, solve_layer_weighted
from .statistics import Statistics
from .tokens import read_alike, read_once
from .zs import compute_zs


def default_settings(model, adapter: Adapter | None = None, **changes) -> EditSettings:
    """The settings derived from the model (memstore.editing.defaults), with `changes`."""
    from .defaults import derive

    s = derive(model, adapter or get_adapter(model)).settings
    return s.with_changes(**changes) if changes else s


def check_settings(model, adapter: Adapter, settings: EditSettings) -> None:
    """The edited layers must fit the model, and at least one layer must follow the
    z-vector layer L = max(layers): δ is added at the subject's last token, and only the
    attention of later layers carries it to the positions that predict the target — with
    L the last layer, every z-vector would stay at h and every ΔW at 0."""
    check_layers(settings.layers, adapter.n_layers(model))
    for l in settings.layers:
        if adapter.proj(model, l).weight.device.type == "meta":
            raise ValidationError(f"layer {l}'s W_out is offloaded by the device map; keep the "
                                  f"edited layers ({', '.join(map(str, settings.layers))}) on a "
                                  "device")


def templates_for(model, tokenizer, settings: EditSettings) -> list[str]:
    return sample_templates(model, tokenizer, settings.n_templates, settings.template_tokens,
                            settings.seed)


def _check_inputs(model, adapter: Adapter, requests: list[Request], settings: EditSettings,
                  stats: dict[int, Statistics], zs: torch.Tensor | None,
                  templates: list[str] | None) -> None:
    """What the solve would otherwise fail on halfway, after the first layers are written:
    each layer's statistics its own and of its width, the cached z-vectors one per request
    of the model's width, the templates texts with one '{}'."""
    for l in settings.layers:
        st, d_in = stats[l], adapter.proj_dims(model, l)[1]
        if not isinstance(st, Statistics) or st.layer != l or tuple(st.mom2.shape) != (d_in, d_in):
            got = (f"layer {st.layer}'s, {tuple(st.mom2.shape)}" if isinstance(st, Statistics)
                   else type(st).__name__)
            raise ValidationError(f"statistics for layer {l}: expected layer {l}'s E[kkᵀ] of "
                                  f"{d_in}×{d_in}, got {got}")
    if zs is not None:
        d_model = adapter.proj_dims(model, settings.layers[-1])[0]
        if not isinstance(zs, torch.Tensor) or zs.ndim != 2 or zs.shape[1] != d_model:
            got = tuple(zs.shape) if isinstance(zs, torch.Tensor) else type(zs).__name__
            raise ValidationError(f"cached z-vectors: expected a tensor of n × {d_model}, got "
                                  f"{got}")
    if templates is not None and not (
            isinstance(templates, (list, tuple)) and templates
            and all(isinstance(t, str) and t.count("{}") == 1 for t in templates)):
        raise ValidationError("templates: expected a non-empty list of texts, each with one "
                              "'{}' where the prompt goes")


@read_once()
def execute_memit(model, tokenizer, requests: list[Request], settings: EditSettings,
                  stats: dict[int, Statistics], *, adapter: Adapter | None = None,
                  zs: torch.Tensor | None = None, templates: list[str] | None = None,
                  earlier: dict[int, torch.Tensor] | None = None,
                  show_progress: bool = True,
                  fisher: tuple[torch.Tensor, float] | None = None,
                  output_weights: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
                  ) -> EditResult:
    """Writes `requests` into `model` (in place) and returns what was written.

    `zs` given: a replay from cached z-vectors (no optimisation). `earlier`: per layer, the
    keys (n_earlier × d_in) of the earlier facts live on the branch, whose running matrix
    Σ K_prev K_prevᵀ is added to λ·E[k kᵀ] with `history_weight` (history "preserve"), or
    kept with the same weight alongside the null-space projection (history "nullspace");
    ignored by "plain". It is added straight into the solve's matrix, never formed alone.
    `fisher` (F, β): the z-vectors' loss adds β · ½ δᵀ F δ (fisher.py; an experiment).
    `output_weights`: per edited layer, (Q, w) from solve.output_weight — each layer's
    preservation term measured in the metric F̃ (solve.solve_layer_weighted; an experiment,
    not with history "nullspace")."""
    adapter = adapter or get_adapter(model)
    adapter.check_editable()
    validate_requests(requests, tokenizer, context_length(model))
    check_settings(model, adapter, settings)
    missing = [l for l in settings.layers if l not in stats]
    if missing:
        raise ValidationError(f"no statistics for layers {missing}")
    _check_inputs(model, adapter, requests, settings, stats, zs, templates)
    if output_weights is not None:
        if settings.history == "nullspace":
            raise ValidationError("the weighted solve does not apply to history 'nullspace'")
        if any(l not in output_weights for l in settings.layers):
            raise ValidationError(f"no output weights for layers "
                                  f"{[l for l in settings.layers if l not in output_weights]}")
        for l in settings.layers:
            d_out = adapter.proj_dims(model, l)[0]
            q, w = output_weights[l]
            if tuple(q.shape) != (d_out, d_out) or tuple(w.shape) != (d_out,):
                raise ValidationError(f"output weights of layer {l}: expected Q {d_out}×{d_out} "
                                      f"and w of {d_out}, not {tuple(q.shape)} and "
                                      f"{tuple(w.shape)}")
    info: dict = {}
    t0 = time.perf_counter()
    if templates is None:
        templates = templates_for(model, tokenizer, settings)
    if zs is None:  # the prefixes lengthen the prompts: each must still fit the context
        check_fits(tokenizer, (text for i, r in enumerate(requests)
                               for text in templated_texts(r, templates, f"request {i + 1}")),
                   context_length(model))
        zs, zinfo = compute_zs(model, tokenizer, adapter, requests, templates, settings,
                               show_progress, fisher)
        info.update(zinfo)
    elif zs.shape[0] != len(requests):
        raise ValidationError(f"{zs.shape[0]} cached z-vectors for {len(requests)} requests")
    t1 = time.perf_counter()
    info["time_zs"] = t1 - t0
    originals = ({l: adapter.proj(model, l).weight.detach().clone() for l in settings.layers}
                 if settings.passes > 1 else {})
    lambdas: dict[int, float] = {}  # per layer, the λ the solve used (settings.lambda_for)
    passes = [write_layers(model, tokenizer, adapter, requests, templates, settings, stats, zs,
                           earlier, lambdas, output_weights) for _ in range(settings.passes)]
    updates = {l: joined(l, [p[l] for p in passes]) for l in settings.layers}
    if originals:  # the weights as a rebuild forms them: one rounding per layer
        with torch.no_grad():
            for l, w in originals.items():
                adapter.proj(model, l).weight.copy_(w)
        for l in settings.layers:
            apply_update(model, adapter, updates[l])
    if lambdas:  # the same for every layer unless the earlier facts were edited at other layers
        info["lambda"] = max(lambdas.values())
    info["time_solve"] = time.perf_counter() - t1
    return EditResult(list(requests), settings, list(templates), zs.float().detach(), updates,
                      {l: stats[l].id for l in settings.layers}, info,
                      rule_matters=not all(read_alike(tokenizer, list(templates), r.prompt,
                                                      r.subject) for r in requests))


def write_layers(model, tokenizer, adapter: Adapter, requests: list[Request],
                 templates: list[str], settings: EditSettings, stats: dict[int, Statistics],
                 zs: torch.Tensor, earlier: dict[int, torch.Tensor] | None,
                 lambdas: dict[int, float] | None = None,
                 output_weights: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
                 ) -> dict[int, LayerUpdate]:
    """One pass of MEMIT's layer loop: the residual z − h^L, measured on the model as it is,
    spread over the edited layers from the first up, each layer's update applied in place
    before the next layer's keys and residual are read. `lambdas` receives each layer's λ;
    `output_weights` (execute_memit) selects the weighted solve."""
    updates: dict[int, LayerUpdate] = {}
    L = settings.last_layer
    first = settings.layers[0]
    # keys at each edited layer and h^L, walked up layer by layer (keys.SubjectRows)
    tmpl = SubjectRows(model, tokenizer, adapter,
                       [t.format(r.prompt) for r in requests for t in templates],
                       [r.subject for r in requests for _ in templates], first,
                       rule=settings.token_rule)
    # z − h^L is read where z was anchored (keys.anchor_rows: the bare prompt unless an
    # attention sink), decided from h^L's norms on the model as it is
    anchor = torch.zeros(len(requests), dtype=torch.long)
    if settings.sink_ratio > 0 and len(templates) > 1:
        norms = tmpl.at(L, "out").norm(dim=1).reshape(len(requests), len(templates))
        anchor = anchor_rows(norms.cpu(), settings.sink_ratio)
    anchored = SubjectRows(model, tokenizer, adapter,
                           [templates[int(a)].format(r.prompt) if a else r.prompt
                            for r, a in zip(requests, anchor)],
                           [r.subject for r in requests], first, rule=settings.token_rule)
    context_walk = (context_rows(model, tokenizer, adapter, requests, first, settings.token_rule)
                    if settings.context_weight > 0 else None)
    walks = [w for w in (tmpl, anchored, context_walk) if w is not None]
    for i, layer in enumerate(settings.layers):
        for walk in walks:
            while walk.layer < layer:
                walk.advance()
        keys = template_keys(tmpl, layer, len(requests), len(templates), anchor)
        cur = anchored.at(L, "out")
        residuals = (zs.float().to(cur.device) - cur) / (len(settings.layers) - i)
        # the stream receives m · N(W k): the change of N(W k) is Δr / m (m: the family's
        # residual multiplier, 1 for most), and of W k what makes N move by it
        residuals = residuals / adapter.residual_scale(model)
        if adapter.post_norm_path is not None:  # N, the post-norm: post_norm.py
            residuals = value_residuals(adapter.post_norm(model, layer),
                                        anchored.at(layer, "value"), residuals)
        # the solve in float64 on the edited weight's device where it has float64
        where = float64_device(adapter.proj(model, layer).weight.device)
        keys, residuals = keys.to(where), residuals.to(where)
        prev = None if settings.history == "plain" else (earlier or {}).get(layer)
        prev = prev.to(where) if prev is not None and len(prev) else None
        context = (context_walk.at(layer, "key").to(where) if context_walk is not None
                   else None)
        preserved = ((prev, settings.history_weight), (context, settings.context_weight))
        if settings.history == "nullspace":
            u, v = solve_layer_nullspace(
                stats[layer].projector(settings.nullspace_threshold).to(where), keys, residuals,
                settings.nullspace_l2, *preserved)
        else:
            lam = settings.lambda_for(len(requests) + (0 if prev is None else prev.shape[0]))
            if lambdas is not None:
                lambdas[layer] = lam
            a = covariance_term(stats[layer].mom2.to(where), lam, *preserved,
                                shrink=settings.mom2_shrink)
            if output_weights is None:
                u, v = solve_layer(a, keys, residuals)
            else:
                u, v = solve_layer_weighted(a, keys, residuals,
                                            tuple(t.to(where) for t in output_weights[layer]))
            del a
        # stored as factors in float32 on the CPU, whatever the device and dtype
        update = LayerUpdate(layer, u.float().cpu(), v.float().cpu(), keys.float().cpu(),
                             adapter.transposed)
        apply_update(model, adapter, update)
        updates[layer] = update
    return updates


def joined(layer: int, updates: list[LayerUpdate]) -> LayerUpdate:
    """The passes' updates of one layer as one: U = [U₁ U₂ …], V = [V₁ V₂ …], so that
    U Vᵀ = Σ Uᵢ Vᵢᵀ; the keys are the last pass's (read on the model the earlier passes
    edited)."""
    if len(updates) == 1:
        return updates[0]
    return LayerUpdate(layer, torch.cat([u.U for u in updates], 1),
                       torch.cat([u.V for u in updates], 1), updates[-1].keys,
                       updates[-1].transposed)


def add_keys(matrix: dict[int, torch.Tensor], keys: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """matrix + K Kᵀ per layer, in float64 (a new dict; `matrix`'s tensors are not modified)."""
    out = dict(matrix)
    for layer, k in sorted(keys.items()):
        kk = k.double().T @ k.double()
        out[layer] = kk if layer not in out else out[layer] + kk
    return out


def stacked_keys(keys_per_commit: list[dict[int, torch.Tensor]]) -> dict[int, torch.Tensor]:
    """Per layer, the keys of earlier commits stacked in order (what `earlier` takes)."""
    out: dict[int, list[torch.Tensor]] = {}
    for keys in keys_per_commit:
        for layer, k in sorted(keys.items()):
            out.setdefault(layer, []).append(k)
    return {l: torch.cat(ks) for l, ks in sorted(out.items())}


def running_matrix(keys_per_commit: list[dict[int, torch.Tensor]]) -> dict[int, torch.Tensor]:
    """Σ K Kᵀ (d_in × d_in, float64) per layer over earlier commits' keys (n × d_in each),
    added in the order given (the store keeps this sum per state: store.running)."""
    out: dict[int, torch.Tensor] = {}
    for keys in keys_per_commit:
        out = add_keys(out, keys)
    return out
