"""compute_zs's `align` (an experiment after EAMET, 2026): each δ's loss adds the alignment of
its cosine similarities to the other δ's with its key's to the other keys."""
import math

import torch
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for

from memstore.editing.alignment import Alignment, alignment_loss, last_layer_keys
from memstore.editing.keys import SubjectRows
from memstore.editing.zs import compute_zs


def _by_hand(delta, keys, mine, others, tau, top, w_kl, w_mse):
    """The term for one δ written out with loops (no shared code)."""
    out = []
    for a, i in enumerate(mine):
        js = [j for j in range(len(others)) if others[j][0] != i]
        ck = [float(torch.dot(keys[i], keys[others[j][0]]) / keys[i].norm() / keys[others[j][0]].norm())
              for j in js]
        cr = [float(torch.dot(delta[a], others[j][1]) / delta[a].norm() / others[j][1].norm())
              for j in js]
        zp = sum(math.exp(c / tau) for c in ck)
        zq = sum(math.exp(c / tau) for c in cr)
        p = [math.exp(c / tau) / zp for c in ck]
        q = [math.exp(c / tau) / zq for c in cr]
        kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        order = sorted(range(len(js)), key=lambda t: -ck[t])[:top]
        zt = sum(math.exp(ck[t] / tau) for t in order)
        mse = sum(math.exp(ck[t] / tau) / zt * (ck[t] - cr[t]) ** 2 for t in order)
        out.append(w_kl * kl + w_mse * mse)
    return out


def test_alignment_term_matches_its_definition():
    torch.manual_seed(0)
    keys = torch.randn(7, 5, dtype=torch.float64)
    delta = torch.randn(3, 4, dtype=torch.float64)  # requests 4, 1, 6 in this chunk
    fixed = torch.randn(3, 4, dtype=torch.float64)  # requests 0, 2, 5 done before
    align = Alignment(keys, kl_weight=2.0, mse_weight=8.0, tau=0.5, top=3)
    got = alignment_loss(delta, [4, 1, 6], fixed, [0, 2, 5], align)
    others = list(zip([4, 1, 6], delta)) + list(zip([0, 2, 5], fixed))
    want = _by_hand(delta, keys, [4, 1, 6], others, 0.5, 3, 2.0, 8.0)
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=1e-9, atol=1e-12)


def test_aligned_deltas_agree_with_their_keys_better_and_gradients_stay_finite():
    """The term pulls each δ's similarities toward its key's; it is zero-free at δ = 0
    (the first step adds nothing) and the z-vectors stay finite."""
    model, tok, ad = build("llama")
    s = settings_for(model, z_steps=8, z_stop_loss=0.0, z_chunk=2, sink_ratio=0.0)
    keys = last_layer_keys(model, tok, ad, REQUESTS, TEMPLATES, s)
    assert keys.shape[0] == len(REQUESTS)
    z0, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False)
    strong = Alignment(keys, kl_weight=50.0, mse_weight=200.0, tau=0.5)
    z1, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, align=strong)
    assert torch.isfinite(z1).all() and not torch.equal(z0, z1)
    # δ = z − h^L at the bare prompt (sink_ratio 0), the same h in both runs
    h = SubjectRows(model, tok, ad, [r.prompt for r in REQUESTS], [r.subject for r in REQUESTS],
                    s.last_layer, rule=s.token_rule).at(s.last_layer, "out")
    d0, d1 = z0 - h, z1 - h
    idx = list(range(len(REQUESTS)))
    none = torch.zeros(0, d0.shape[1])
    gap0 = alignment_loss(d0, idx, none, [], strong).sum()
    gap1 = alignment_loss(d1, idx, none, [], strong).sum()
    assert gap1 < gap0

