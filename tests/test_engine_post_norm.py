"""Post-norm families (Gemma 2/3, OLMo 2): W_out's output passes through an RMSNorm before it
joins the residual stream. The derivation in memstore/editing/post_norm.py says which value
to write so that the stream receives the requested residual; these tests check it against
the model's own modules, and that one request with default settings is then predicted."""
import dataclasses

import pytest
import torch
from engine_fixtures import REQUESTS, build, settings_for, stats_for, tolerance
from tiny import POST_NORM_FAMILIES

from memstore.editing import Request, default_settings, execute_memit
from memstore.editing.keys import current_hidden
from memstore.editing.statistics import compute_statistics
from memstore.editing.tokens import target_ids

REQUEST = REQUESTS[0]
# δ is added at the subject's last token; these tiny random models carry little of it to
# later positions, so the prompt ends with the subject and the target is one token
PREDICTED = Request("Honda Civic", "The maker of {}", "Honda", "Paris")


def effective_scale(family: str, norm) -> torch.Tensor:
    """g of the family's RMSNorm, from its definition (Gemma: x̂·(1 + w); OLMo 2: x̂·w)."""
    w = norm.weight.detach().double().cpu()
    return 1.0 + w if family.startswith("gemma") else w


def subject_value(model, tok, ad, layer: int) -> torch.Tensor:
    """W_out's output at the subject's last token of the bare prompt, read with a hook."""
    got = {}
    h = ad.proj(model, layer).register_forward_hook(lambda m, i, o: got.setdefault("v", o))
    ids = tok(REQUEST.text).input_ids
    pos = len(tok(REQUEST.text[:REQUEST.prompt.index("{}") + len(REQUEST.subject)]).input_ids) - 1
    try:
        model(torch.tensor([ids], device=model.device))
    finally:
        h.remove()
    return got["v"][0, pos].double()


@pytest.mark.parametrize("family", POST_NORM_FAMILIES)
def test_the_edited_layer_adds_the_requested_residual(family, runtime):
    """One edited layer L, λ → 0, the bare template: the layer's contribution N(y) moves to
    the point of N's image in the direction of N(y) + (z − h) — computed here from the norm's
    weights — so h^L lands there; without the post-norm step (the plain value residual) it
    misses by far more."""
    def run(adapter_change: dict) -> tuple[torch.Tensor, ...]:
        model, tok, ad = build(family, runtime=runtime)
        g = torch.Generator().manual_seed(1)
        for layer in range(ad.n_layers(model)):  # norms that are not the identity's scale
            w = ad.post_norm(model, layer).weight
            w.data = w.data + 0.5 * torch.randn(w.shape, generator=g).to(w)
        ad = dataclasses.replace(ad, **adapter_change)
        s = settings_for(model, layers=(2,), mom2_weight=1e-6, z_steps=20, clamp=0.3)
        stats = stats_for(model, tok, ad, s.layers)
        h = current_hidden(model, tok, ad, 2, [REQUEST])[0].double().cpu()
        y = subject_value(model, tok, ad, 2).cpu()
        norm = ad.post_norm(model, 2) if ad.post_norm_path else None
        res = execute_memit(model, tok, [REQUEST], s, stats, adapter=ad, templates=["{}"],
                            show_progress=False)
        after = current_hidden(model, tok, ad, 2, [REQUEST])[0].double().cpu()
        return h, y, norm, res.zs[0].double().cpu(), after

    h, y, norm, z, after = run({})
    g = effective_scale(family, norm)
    r = g * y / y.pow(2).mean().add(norm.eps if hasattr(norm, "eps") else
                                    norm.variance_epsilon).sqrt()
    target = r + (z - h)
    reachable = h - r + target / (target / g).pow(2).mean().sqrt()
    missing = (z - h).norm()
    # exactly where the derivation says (up to bfloat16's rounding of the weights)
    assert (after - reachable).norm() < tolerance(runtime, 1e-3, 3e-2) * missing
    assert (after - h).norm() > 0.5 * missing  # and most of the way to z
    h2, _, _, z2, after_plain = run({"post_norm_path": None})
    assert torch.allclose(z2, z) and torch.allclose(h2, h)
    assert (after_plain - reachable).norm() > 20 * (after - reachable).norm()  # plain misses it


def nll(model, tok, prompt: str, target: str) -> float:
    ids = tok(prompt).input_ids
    t = target_ids(tok, target)
    lp = torch.log_softmax(model(torch.tensor([ids + t], device=model.device)).logits[0].double(), -1)
    return float(-sum(lp[len(ids) - 1 + j, tok_] for j, tok_ in enumerate(t)) / len(t))


@pytest.mark.parametrize("family", POST_NORM_FAMILIES)
def test_one_request_with_default_settings_is_predicted(family, runtime):
    """Default settings (derived from the model): after one edit the new target is more
    probable than the true one (CounterFact's efficacy) and its NLL fell by over a nat."""
    model, tok, ad = build(family, runtime=runtime)
    s = default_settings(model)  # layers from the depth, λ = d_in, the Wikipedia sample
    stats = compute_statistics(model, tok, ad, s.layers, s.stats_source, s.stats_tokens, s.seed)
    r = PREDICTED
    before = nll(model, tok, r.text, r.target_new)
    execute_memit(model, tok, [r], s, stats, show_progress=False)
    new, true = nll(model, tok, r.text, r.target_new), nll(model, tok, r.text, r.target_true)
    assert new < true and new < before - 1.0, (before, new, true)
