"""Context keys: the keys of the prompt after the subject and of the target's tokens enter
the solve with zero residual (weight `context_weight`), so the update leaves the hidden
states that carry the answer out where they were."""
import pytest
import torch
from engine_fixtures import REQUESTS, build, settings_for, stats_for

from memstore.editing import execute_memit
from memstore.editing.settings import EditSettings


def hooked(model, tok, r, layer):
    """This test's own reading (hooks on the tiny Llama): the keys of `layer`'s down_proj
    and the outputs of `layer`, at every position of the bare prompt followed by the new
    target, and the index of the subject's last token (from the text before its end)."""
    prompt = r.prompt.format(r.subject)
    ids = tok(prompt).input_ids + tok(" " + r.target_new, add_special_tokens=False).input_ids
    pos = len(tok(prompt[: r.prompt.index("{}") + len(r.subject)]).input_ids) - 1
    got = {}
    block = model.model.layers[layer]
    hooks = [block.mlp.down_proj.register_forward_pre_hook(lambda m, a: got.__setitem__("k", a[0])),
             block.register_forward_hook(
                 lambda m, a, o: got.__setitem__("h", o[0] if isinstance(o, tuple) else o))]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        for h in hooks:
            h.remove()
    return got["k"][0].double(), got["h"][0].double(), pos, len(ids)


def test_context_keys_enter_the_solve_with_their_weight():
    """V = (λ E[k kᵀ] + w Σ K_ctxᵀ K_ctx + K Kᵀ)⁻¹ K, K_ctx the keys at every position after
    the subject's last token but the last: checked against a dense solve formed here."""
    model, tok, ad = build("llama")
    s = settings_for(model, layers=(2,), z_steps=4, mom2_weight=3.0, context_weight=5.0)
    stats = stats_for(model, tok, ad, s.layers)
    reads = [hooked(model, tok, r, 2) for r in REQUESTS]
    context = torch.cat([k[pos + 1: n - 1] for k, _, pos, n in reads])
    assert len(context) >= 2 * len(REQUESTS)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    for weight in (5.0, 0.0):
        r = execute_memit(model, tok, REQUESTS, s.with_changes(context_weight=weight), stats,
                          templates=["{}"], show_progress=False)
        model.load_state_dict(base)
        k = torch.stack([k[pos] for k, _, pos, _ in reads])
        torch.testing.assert_close(r.updates[2].keys.double(), k, rtol=1e-5, atol=1e-6)
        a = 3.0 * stats[2].mom2.double() + weight * context.T @ context + k.T @ k
        torch.testing.assert_close(r.updates[2].V.double(), torch.linalg.solve(a, k.T),
                                   rtol=1e-4, atol=1e-6)


def test_context_keys_keep_the_answer_positions_in_place():
    """With the context keys weighed heavily, the edit moves the hidden states after the
    subject (the rest of the prompt, the target's tokens) far less than without them, and
    still writes the subject's."""
    model, tok, ad = build("llama")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    s = settings_for(model, layers=(1, 2), z_steps=10, mom2_weight=1.0)
    stats = stats_for(model, tok, ad, s.layers)
    request = REQUESTS[:1]
    _, before, pos, n = hooked(model, tok, request[0], 2)
    moved = {}
    for weight in (0.0, 1e4):
        execute_memit(model, tok, request, s.with_changes(context_weight=weight), stats,
                      templates=["{}"], show_progress=False)
        _, after, _, _ = hooked(model, tok, request[0], 2)
        model.load_state_dict(base)
        moved[weight] = (float((after[pos + 1: n - 1] - before[pos + 1: n - 1]).norm()),
                         float((after[pos] - before[pos]).norm()))
    # the context moves a third as far (what is left comes through attention to the subject)
    assert moved[1e4][0] < moved[0.0][0] / 2, moved
    assert moved[1e4][1] > moved[0.0][1] / 2, moved  # the subject is still written


def test_context_keys_are_off_unless_asked_for():
    """The default is the paper's solve; settings recorded before the setting existed load
    without context keys whatever the default; the weight is validated."""
    from memstore.errors import ValidationError

    s = EditSettings(layers=(1,), mom2_weight=2.0)
    assert s.context_weight == 0.0
    old = {k: v for k, v in s.with_changes(context_weight=3.0).to_dict().items()
           if k != "context_weight"}
    assert EditSettings.from_dict(old).context_weight == 0.0
    assert EditSettings.from_dict(s.with_changes(context_weight=3.0).to_dict()).context_weight == 3.0
    with pytest.raises(ValidationError, match="context_weight"):
        s.with_changes(context_weight=-1.0)
