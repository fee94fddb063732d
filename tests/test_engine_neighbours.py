"""The z-vectors' neighbour rows (zs.build_rows, request_losses): each request's prompt about
other subjects of the batch, run with β·δ at their subject's last token, and the penalty on
how far that moves their next-token distribution (an experiment: benchmarks/bench_neighbours.py)."""
import torch
import torch.nn.functional as F
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for

from memstore.editing.keys import current_hidden
from memstore.editing.zs import build_rows, compute_zs


def test_neighbour_rows_put_the_other_subjects_in_each_prompt():
    _, tok, _ = build("llama")
    rows = build_rows(tok, REQUESTS, TEMPLATES, neighbours=2)
    plain = build_rows(tok, REQUESTS, TEMPLATES)
    nb = torch.nonzero(rows.neighbour >= 0).squeeze(1)
    assert rows.neighbour[nb].tolist() == list(range(2 * len(REQUESTS)))
    assert len(rows.input_ids) == len(plain.input_ids) + len(nb)
    assert torch.equal(rows.tgt_id, plain.tgt_id)  # neighbour rows carry no targets
    assert not rows.is_kl[nb].any()
    for k, row in enumerate(nb.tolist()):
        i = int(rows.request[row])
        j = (i + 1 + k % 2) % len(REQUESTS)  # the next two subjects, wrapping around
        text = REQUESTS[i].prompt.format(REQUESTS[j].subject)
        ids = rows.input_ids[row, : int(rows.last_pos[row]) + 1].tolist()
        assert ids == tok(text).input_ids
        upto = tok(text[: text.index(REQUESTS[j].subject) + len(REQUESTS[j].subject)]).input_ids
        assert int(rows.subject_pos[row]) == len(upto) - 1


def _neighbour_kl(model, tok, ad, layer, z, h, beta):
    """Mean KL(edited ‖ unedited) of the next token after each request's prompt about the
    next two subjects, with β(z − h) added to layer `layer`'s output at the subject's last
    token, by a forward hook on the whole model."""
    total = []
    for i, r in enumerate(REQUESTS):
        for j in ((i + 1) % len(REQUESTS), (i + 2) % len(REQUESTS)):
            text = r.prompt.format(REQUESTS[j].subject)
            ids = torch.tensor([tok(text).input_ids])
            pos = len(tok(text[: text.index(REQUESTS[j].subject) + len(REQUESTS[j].subject)]).input_ids) - 1
            before = F.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)

            def add(_m, _i, out, d=beta * (z[i] - h[i])):
                hs = out[0] if isinstance(out, tuple) else out
                hs = hs.clone()
                hs[0, pos] += d.to(hs.dtype)
                return (hs, *out[1:]) if isinstance(out, tuple) else hs

            handle = ad.layer(model, layer).register_forward_hook(add)
            try:
                after = F.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
            finally:
                handle.remove()
            total.append(float((after.exp() * (after - before)).sum()))
    return sum(total) / len(total)


def test_the_penalty_spares_the_neighbours():
    model, tok, ad = build("llama")
    s = settings_for(model, z_steps=12)
    h = current_hidden(model, tok, ad, s.last_layer, REQUESTS).cpu()
    z0, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False)
    z_w0, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, neighbour=(2, 1.0, 0.0))
    z_b0, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, neighbour=(2, 0.0, 5.0))
    assert torch.equal(z_w0, z_b0)  # β 0: the neighbours see no δ, nothing to pay
    assert torch.allclose(z_w0, z0, rtol=1e-4, atol=1e-5)  # w 0: the paper's objective
    z1, _ = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False, neighbour=(2, 1.0, 5.0))
    kl0 = _neighbour_kl(model, tok, ad, s.last_layer, z0, h, 1.0)
    kl1 = _neighbour_kl(model, tok, ad, s.last_layer, z1, h, 1.0)
    assert kl1 < 0.7 * kl0, (kl0, kl1)
