"""The solve weighted by each edited layer's Fisher information (solve.solve_layer_weighted,
fisher.output_fishers), against a dense solve of its objective and in the engine."""
import pytest
import torch
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for, stats_for

from memstore.editing import execute_memit, unapply_updates
from memstore.editing.fisher import fisher_matrix, output_fishers
from memstore.editing.keys import current_hidden
from memstore.editing.solve import output_weight, solve_layer_weighted
from memstore.errors import ValidationError

CHUNKS = [[(7 * i + 3 * j) % 300 + 5 for j in range(12)] for i in range(40)]


def dense_weighted(a, keys, residuals, metric):
    """ΔW with ΔW K Kᵀ + M ΔW A = R Kᵀ (the gradient of ‖ΔW K − R‖² + tr(M ΔW A ΔWᵀ) set to
    zero), solved as one linear system over vec(ΔW): (K Kᵀ ⊗ I + A ⊗ M) vec ΔW = vec(R Kᵀ)."""
    k, r = keys.T, residuals.T
    d_out, d_in = r.shape[0], k.shape[0]
    system = torch.kron(k @ k.T, torch.eye(d_out, dtype=a.dtype)) + torch.kron(a, metric)
    rhs = (r @ k.T).T.reshape(-1)  # column-major vec
    return torch.linalg.solve(system, rhs).reshape(d_in, d_out).T


def objective(dw, a, keys, residuals, metric):
    err = dw @ keys.T - residuals.T
    return float((err ** 2).sum() + torch.trace(metric @ dw @ a @ dw.T))


@pytest.mark.parametrize("d_in,d_out,n", [(9, 6, 4), (5, 7, 8), (12, 5, 12)])
def test_the_weighted_solve_is_the_minimum_of_its_objective(d_in, d_out, n):
    g = torch.Generator().manual_seed(d_in * 100 + n)
    c = torch.randn(d_in, 3 * d_in, generator=g, dtype=torch.float64)
    a = c @ c.T / (3 * d_in) * 2.5
    keys = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    residuals = torch.randn(n, d_out, generator=g, dtype=torch.float64)
    f = torch.randn(d_out, 2 * d_out, generator=g, dtype=torch.float64)
    f = f @ f.T
    q, w = output_weight(f, 1.0)
    metric = q @ torch.diag(w) @ q.T
    u, v = solve_layer_weighted(a, keys, residuals, (q, w))
    assert u.shape == (d_out, min(n, d_in)) and v.shape == (d_in, min(n, d_in))
    dw = u @ v.T
    expected = dense_weighted(a, keys, residuals, metric)
    assert torch.allclose(dw, expected, atol=1e-10 * float(expected.abs().max()))
    # the usual solve's update, measured in this metric, does worse
    plain = dense_weighted(a, keys, residuals, torch.eye(d_out, dtype=torch.float64))
    assert objective(dw, a, keys, residuals, metric) < objective(plain, a, keys, residuals, metric)
    # the metric: F's eigenvalues over their mean, floored, raised to γ
    values = torch.linalg.eigvalsh(f)
    assert torch.allclose(w, (values / values.mean()).clamp_min(0.05))
    assert torch.equal(output_weight(f, 0.0)[1], torch.ones(d_out, dtype=torch.float64))


def test_fisher_at_w_out_is_fisher_at_the_layer_output_where_the_stream_adds_it():
    model, _, ad = build("llama")
    # Llama adds W_out's output to the residual stream as it is: the two gradients agree
    at_proj = output_fishers(model, ad, CHUNKS, (1, 2), seed=3)
    for layer in (1, 2):
        at_layer = fisher_matrix(model, ad, CHUNKS, layer, seed=3)
        assert torch.allclose(at_proj[layer], at_layer, rtol=1e-4, atol=1e-10)
    assert (at_proj[1] - at_proj[2]).norm() > 0.1 * at_proj[2].norm()


def test_the_engine_solves_each_layer_in_its_metric():
    model, tok, ad = build("llama")
    s = settings_for(model, mom2_weight=30.0)  # passes 1, no context keys
    stats = stats_for(model, tok, ad, s.layers)
    fishers = output_fishers(model, ad, CHUNKS, s.layers, seed=0)
    weights = {l: output_weight(f, 2.0) for l, f in fishers.items()}
    h = current_hidden(model, tok, ad, s.last_layer, REQUESTS).double()
    plain = execute_memit(model, tok, REQUESTS, s, stats, templates=TEMPLATES, show_progress=False)
    unapply_updates(model, ad, plain.updates)
    same = execute_memit(model, tok, REQUESTS, s, stats, templates=TEMPLATES, zs=plain.zs,
                         show_progress=False,
                         output_weights={l: (torch.eye(len(w)), torch.ones(len(w)))
                                         for l, (_, w) in weights.items()})
    unapply_updates(model, ad, same.updates)
    weighted = execute_memit(model, tok, REQUESTS, s, stats, templates=TEMPLATES, zs=plain.zs,
                             show_progress=False, output_weights=weights)
    unapply_updates(model, ad, weighted.updates)
    first = s.layers[0]
    for layer in s.layers:  # the metric I is the usual solve
        assert torch.allclose(same.updates[layer].delta(), plain.updates[layer].delta(),
                              atol=1e-6)
    # the first layer's keys and residual are read on the unedited model in both: each
    # solve is the minimum of its own objective, and the two differ
    keys = weighted.updates[first].keys.double()
    assert torch.equal(keys, plain.updates[first].keys.double())
    residuals = (plain.zs.double() - h) / len(s.layers)
    a = stats[first].mom2 * s.lambda_for(len(REQUESTS))
    q, w = weights[first]
    metric = q @ torch.diag(w) @ q.T
    dw_w = weighted.updates[first].delta().double()
    dw_p = plain.updates[first].delta().double()
    assert (dw_w - dw_p).norm() > 0.05 * dw_p.norm()
    expected = dense_weighted(a, keys, residuals, metric)
    assert (dw_w - expected).norm() < 1e-4 * expected.norm()
    assert objective(dw_w, a, keys, residuals, metric) < objective(dw_p, a, keys, residuals, metric)
    identity = torch.eye(len(w), dtype=torch.float64)
    assert objective(dw_p, a, keys, residuals, identity) < objective(dw_w, a, keys, residuals, identity)


def test_the_weighted_solve_refuses_what_it_cannot_do():
    model, tok, ad = build("llama")
    s = settings_for(model)
    stats = stats_for(model, tok, ad, s.layers)
    one = {s.layers[0]: output_weight(torch.eye(model.config.hidden_size), 1.0)}
    with pytest.raises(ValidationError, match="no output weights for layers"):
        execute_memit(model, tok, REQUESTS, s, stats, templates=TEMPLATES, show_progress=False,
                      output_weights=one)
    all_ = {l: one[s.layers[0]] for l in s.layers}
    with pytest.raises(ValidationError, match="nullspace"):
        execute_memit(model, tok, REQUESTS, s.with_changes(history="nullspace"), stats,
                      templates=TEMPLATES, show_progress=False, output_weights=all_)
    small = {l: output_weight(torch.eye(4), 1.0) for l in s.layers}
    with pytest.raises(ValidationError, match="expected Q 32×32"):
        execute_memit(model, tok, REQUESTS, s, stats, templates=TEMPLATES, show_progress=False,
                      output_weights=small)
    with pytest.raises(ValidationError, match="needs some text"):
        output_fishers(model, ad, [], s.layers, seed=0)
