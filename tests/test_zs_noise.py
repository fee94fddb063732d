"""compute_zs's `noise` (an experiment after NAMET, 2025): Gaussian noise beside δ at the
subject's last token of each rewriting row while the z-vectors are optimised."""
import torch
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for

from memstore.editing import zs as zs_module
from memstore.editing.zs import compute_zs


def test_zero_noise_gives_the_z_vectors_without_it_bit_for_bit():
    """σ 0 runs the whole noise path (draws, scaling, the sum beside δ): the same bits as
    the path without it, one δ per request and one per key."""
    model, tok, ad = build("llama")
    for groups in ("request", "key"):
        s = settings_for(model, z_steps=8, z_groups=groups)
        z_off, info_off = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False)
        z_zero, info_zero = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, noise=0.0)
        assert torch.equal(z_off, z_zero)
        assert info_off == info_zero


def test_the_noise_goes_on_the_rewriting_rows_only_at_its_scale(monkeypatch):
    """Each step's noise: zero on the KL prompt's rows, of norm ≈ σ‖h_i^L‖ on every rewriting
    row, drawn afresh each step and the same draws from the same seed."""
    model, tok, ad = build("llama")
    s = settings_for(model, z_steps=4, z_stop_loss=0.0)
    sigma = 0.5
    seen = []
    forward = zs_module._suffix_forward

    def spy(model_, adapter, rows, h_L, delta, settings, noise=None):
        seen.append((rows.is_kl.clone(), rows.request.clone(), noise))
        return forward(model_, adapter, rows, h_L, delta, settings, noise)

    monkeypatch.setattr(zs_module, "_suffix_forward", spy)
    z1, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, noise=sigma)
    first = seen[:]
    seen.clear()
    z2, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, noise=sigma)
    assert torch.equal(z1, z2)  # seeded: one run's draws are the next one's
    z0, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False)
    assert (z1 - z0).norm() > 1e-3 * z0.norm()  # and the optimisation saw them
    assert any(n is not None for _, _, n in first), "no step saw the noise"
    from memstore.editing.keys import current_hidden

    h = current_hidden(model, tok, ad, s.last_layer, REQUESTS).cpu().float()
    d = h.shape[1]
    ratios = []
    for is_kl, req, n in first:
        if n is None:  # the pass that reads the KL prompt before the first step
            continue
        assert torch.count_nonzero(n[is_kl]) == 0
        rewrite = n[~is_kl]
        assert (rewrite.norm(dim=1) > 0).all()
        ratios += (rewrite.norm(dim=1) / h[req[~is_kl]].norm(dim=1)).tolist()
    mean = sum(ratios) / len(ratios)
    assert abs(mean - sigma) < 0.15 * sigma, (mean, d)
    # afresh each step: the same rows (one bucket) draw other noise at the next step
    rows = [(req, n) for _, req, n in first if n is not None]
    again = next(k for k in range(1, len(rows)) if torch.equal(rows[k][0], rows[0][0]))
    assert not torch.equal(rows[0][1], rows[again][1])

