"""A subject at the attention sink: the first position of a text without BOS, whose hidden
state is not the subject's. z and the residual are then anchored at a templated row
(keys.anchor_rows), so that one such fact cannot ask the solve for a write out of all
proportion to the others' (benchmarks/README.md: Qwen's collapse)."""
import pytest
import torch
from engine_fixtures import REQUESTS, build, settings_for, stats_for

from memstore.editing import Request, execute_memit
from memstore.editing.keys import anchor_rows, at_subject
from memstore.editing.settings import EditSettings
from memstore.editing.zs import compute_zs
from memstore.errors import ValidationError

TEMPLATES = ["{}", "The cat sat. {}", "Because of the capital of France is Paris. {}"]
# "Porsche" is one token of the tiny tokenizer: the bare prompt puts it at position 0
SINK = Request("Porsche", "{} is made by", "Honda", "Toyota")
OTHERS = REQUESTS[:2]


def test_anchor_rows():
    norms = torch.tensor([[100.0, 10, 12, 11], [30.0, 10, 12, 11], [50.0, 10, 10, 10],
                          [8.0, 10, 12, 11]])
    assert anchor_rows(norms, 4.0).tolist() == [1, 0, 1, 0]
    assert anchor_rows(norms, 2.0).tolist() == [1, 1, 1, 0]
    assert anchor_rows(norms, 0.0).tolist() == [0, 0, 0, 0]  # off
    assert anchor_rows(norms[:, :1], 4.0).tolist() == [0, 0, 0, 0]  # no templates to turn to


def test_sink_ratio_setting():
    model, *_ = build("gpt2")
    s = settings_for(model)
    assert s.sink_ratio == 10.0
    old = {k: v for k, v in s.to_dict().items() if k != "sink_ratio"}
    assert EditSettings.from_dict(old).sink_ratio == 0.0  # commits made before: bare anchor
    with pytest.raises(ValidationError, match="sink_ratio"):
        settings_for(model, sink_ratio=-1.0)


def sink_model():
    """Tiny GPT-2 whose position 0 carries a vector 300× an embedding's norm: an attention
    sink by position, whatever the token, as real models' first positions are."""
    model, tok, ad = build("gpt2")
    with torch.no_grad():
        wpe = model.transformer.wpe.weight
        u = torch.randn(wpe.shape[1], generator=torch.Generator().manual_seed(0))
        wpe[0] += 300 * model.transformer.wte.weight.norm(dim=1).mean() * u / u.norm()
    return model, tok, ad


def hidden(model, tok, ad, layer, template, request, kind="out"):
    return at_subject(model, tok, ad, layer, kind, [template.format(request.prompt)],
                      [request.subject])[0]


def test_z_of_a_sink_subject_is_anchored_in_context():
    model, tok, ad = sink_model()
    s = settings_for(model)
    L = s.last_layer
    h_bare = hidden(model, tok, ad, L, TEMPLATES[0], SINK)
    h_ctx = hidden(model, tok, ad, L, TEMPLATES[1], SINK)
    assert h_bare.norm() > 20 * h_ctx.norm()  # the fixture makes a sink
    z, _ = compute_zs(model, tok, ad, [SINK, *OTHERS], TEMPLATES, s, False)
    z0, _ = compute_zs(model, tok, ad, [SINK, *OTHERS], TEMPLATES,
                       s.with_changes(sink_ratio=0.0), False)
    # anchored at the first template: δ = z − h there, within the clamp of that row's norm
    assert (z[0] - h_ctx).norm() <= s.clamp * h_ctx.norm() * (1 + 1e-5)
    assert z[0].norm() < 3 * h_ctx.norm()
    # the paper's anchor: z sits at the sink, with a clamp the sink's norm allows
    assert (z0[0] - h_bare).norm() <= s.clamp * h_bare.norm() * (1 + 1e-5)
    assert z0[0].norm() > 0.3 * h_bare.norm()
    # the other requests are anchored at their bare prompts either way: the same bits
    assert torch.equal(z[1:], z0[1:])


def test_the_solve_reads_a_sink_subject_in_context():
    """One edited layer (L itself), so that the update's U is the residual z − h^L read
    before the edit: at the anchor, and the key the mean of the templated rows' alone."""
    for ratio in (4.0, 0.0):
        model, tok, ad = sink_model()
        s = settings_for(model, layers=(2,), sink_ratio=ratio)
        stats = stats_for(model, tok, ad, s.layers)
        ctx_keys = torch.stack([hidden(model, tok, ad, 2, t, SINK, "key") for t in TEMPLATES[1:]])
        bare_key = hidden(model, tok, ad, 2, TEMPLATES[0], SINK, "key")
        anchor = TEMPLATES[1] if ratio > 0 else TEMPLATES[0]
        h = hidden(model, tok, ad, 2, anchor, SINK)
        h_others = [hidden(model, tok, ad, 2, "{}", r) for r in OTHERS]
        res = execute_memit(model, tok, [SINK, *OTHERS], s, stats, templates=TEMPLATES,
                            show_progress=False)
        u = res.updates[2]
        torch.testing.assert_close(u.U[:, 0], res.zs[0] - h, rtol=1e-4, atol=1e-4)
        if ratio > 0:  # the sink's key left out
            torch.testing.assert_close(u.keys[0], ctx_keys.mean(0), rtol=1e-5, atol=1e-5)
        else:  # the reference's average of the bare key and the templated ones
            torch.testing.assert_close(u.keys[0], (bare_key + ctx_keys.mean(0)) / 2,
                                       rtol=1e-5, atol=1e-5)
        # the other requests: read at their bare prompts, as always
        for j, h_j in enumerate(h_others, 1):
            torch.testing.assert_close(u.U[:, j], res.zs[j] - h_j, rtol=1e-4, atol=1e-4)
