"""The Fisher matrix of the predictions with respect to h^L (fisher.py), against the exact
one formed from the model's Jacobian, and what its penalty does to the z-vectors."""
import torch
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for

from memstore.editing.fisher import fisher_matrix
from memstore.editing.keys import current_hidden
from memstore.editing.zs import compute_zs

SEQ = [5, 17, 40, 99, 23, 250, 8]


def exact_fisher(model, ad, ids: list[int], layer: int) -> torch.Tensor:
    """Σ_s J_stᵀ (diag p_s − p_s p_sᵀ) J_st averaged over t, J_st = ∂logits_s / ∂h_t, with the
    Jacobian taken whole by torch.autograd.functional.jacobian."""
    x = torch.tensor([ids])
    seen = {}

    def capture(_m, _i, out):
        seen["h"] = (out[0] if isinstance(out, tuple) else out).detach().clone()

    handle = ad.layer(model, layer).register_forward_hook(capture)
    model(input_ids=x)
    handle.remove()

    def logits_of(h):
        def swap(_m, _i, out):
            return (h.unsqueeze(0), *out[1:]) if isinstance(out, tuple) else h.unsqueeze(0)
        hk = ad.layer(model, layer).register_forward_hook(swap)
        try:
            return model(input_ids=x).logits[0].float()
        finally:
            hk.remove()

    h0 = seen["h"][0]
    jac = torch.autograd.functional.jacobian(logits_of, h0).double()  # T × V × T × d
    p = torch.softmax(logits_of(h0).double(), -1)
    t_len, d = h0.shape
    total = torch.zeros(d, d, dtype=torch.float64)
    for t in range(t_len):
        for s in range(t_len):
            j = jac[s, :, t, :]  # V × d
            cov = torch.diag(p[s]) - torch.outer(p[s], p[s])
            total += j.T @ cov @ j
    return total / t_len


def test_the_sampled_fisher_approaches_the_exact_one():
    model, _, ad = build("llama")
    short = SEQ[:4]
    # every batch holds both lengths, so the short one is padded: padding neither sampled
    # into the gradient nor counted, the positions weigh alike
    exact = (exact_fisher(model, ad, SEQ, 1) * len(SEQ)
             + exact_fisher(model, ad, short, 1) * len(short)) / (len(SEQ) + len(short))
    est = fisher_matrix(model, ad, [SEQ, short] * 400, 1, seed=0)
    assert torch.allclose(est, est.T)
    assert (est - exact).norm() / exact.norm() < 0.1
    # padding changes nothing: the same draws alone and beside a longer sequence
    alone = fisher_matrix(model, ad, [short, SEQ], 1, seed=5, batch=1)
    together = fisher_matrix(model, ad, [short, SEQ], 1, seed=5, batch=2)
    assert torch.allclose(together, alone, rtol=1e-4, atol=1e-9)
    # another layer's is another matrix: the test can tell them apart
    other = exact_fisher(model, ad, SEQ, 2)
    assert (est - other).norm() / other.norm() > 0.3


def test_the_penalty_moves_delta_out_of_the_directions_text_reads():
    model, tok, ad = build("llama")
    s = settings_for(model, z_steps=12)
    chunks = [[(7 * i + 3 * j) % 300 + 5 for j in range(12)] for i in range(40)]
    f = fisher_matrix(model, ad, chunks, s.last_layer, seed=0)
    h = current_hidden(model, tok, ad, s.last_layer, REQUESTS).cpu()
    z0, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False)
    z_off, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, (f, 0.0))
    assert torch.equal(z0, z_off)  # β 0 is the paper's objective, bit for bit
    beta = 0.05 / float(f.trace())
    z1, i1 = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, (f, beta))
    _, start = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s.with_changes(z_steps=1), False)

    def read(z):  # ½ δᵀFδ: what adding δ to an ordinary token would cost its predictions
        d = (z - h).double()
        return 0.5 * ((d @ f) * d).sum(1)

    # the penalty is in the gradient: every δ reads less on ordinary text than without it,
    # and the target still drives it (its NLL below where δ = 0 left it)
    assert (read(z1) < read(z0)).all()
    assert all(a < b for a, b in zip(i1["z_loss"], start["z_loss"]))
