"""Model types an adapter serves with the math of a family already in tests/tiny.py FAMILIES
(Ministral, Seed-OSS, Hunyuan, Helium, ERNIE 4.5, Arcee, Apertus, Nemotron, OLMo as Llama;
Falcon; VaultGemma as Gemma; OLMo 3 and EXAONE 4 as OLMo 2): one tiny model each, checked
by the family tests' own checks in float32 on the CPU — the small-λ exactness (the
post-norm one where W_out's output passes a norm), batched scoring against the naive one —
and one request's z-vector against the reference, not by every parametrized test."""
import pytest
import test_engine_memit
import test_engine_post_norm
import test_eval_scoring
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for
from tiny import EXTRA_FAMILIES, EXTRA_POST_NORM

from memstore.editing.zs import compute_zs
from memstore.editing.zs_reference import compute_z_reference
from memstore.errors import ValidationError
from memstore.models.adapters import get_adapter

RUNTIME = "cpu-float32"


@pytest.mark.parametrize("family", EXTRA_FAMILIES)
def test_an_edit_writes_the_residual_asked_for(family):
    if family in EXTRA_POST_NORM:
        test_engine_post_norm.test_the_edited_layer_adds_the_requested_residual(family, RUNTIME)
    else:
        test_engine_memit.test_small_lambda_maps_keys_to_targets(family, RUNTIME)


@pytest.mark.parametrize("family", EXTRA_FAMILIES)
def test_z_vectors_and_scores_are_the_models_own(family):
    model, tok, ad = build(family)
    s = settings_for(model)
    z, _ = compute_zs(model, tok, ad, REQUESTS[:1], TEMPLATES, s, False)
    zr, _ = compute_z_reference(model, tok, ad, REQUESTS[0], TEMPLATES, s)
    zr = zr.float().cpu()
    assert (z[0] - zr).norm() / zr.norm() < 1e-3
    test_eval_scoring.test_batched_scores_match_naive(family, False)


@pytest.mark.parametrize("model_type", ["gemma3n", "gemma3n_text"])
def test_gemma3n_is_known_and_refused_for_edits(model_type):
    """AltUp: several copies of the stream, corrected by learned coefficients of the one the
    MLP writes to; no one residual for MEMIT to solve for."""
    with pytest.raises(ValidationError) as e:
        get_adapter(model_type).check_editable()
    assert str(e.value).startswith(f"cannot edit {model_type} models: its layers carry "
                                   "several copies of the residual stream (AltUp)")
