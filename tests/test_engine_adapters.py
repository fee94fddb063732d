import pytest
import torch
from engine_fixtures import FAMILIES, build
from tiny import POST_NORM_FAMILIES

from memstore.errors import ValidationError
from memstore.models.adapters import get_adapter, supported


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_finds_modules(family):
    model, _, ad = build(family)
    assert ad.n_layers(model) == 4
    w = ad.proj(model, 1).weight
    d_out, d_in = ad.proj_dims(model, 1)
    assert d_out == model.config.get_text_config().hidden_size
    assert w.shape == ((d_in, d_out) if ad.transposed else (d_out, d_in))
    assert ad.proj_weight_name(1) in model.state_dict()
    assert model.state_dict()[ad.proj_weight_name(1)].data_ptr() == w.data_ptr()
    assert isinstance(ad.final_norm(model), torch.nn.Module)
    assert ad.lm_head(model).weight.shape[0] == model.config.get_text_config().vocab_size
    assert ad.embeddings(model).weight.shape[1] == model.config.get_text_config().hidden_size
    post = ad.post_norm(model, 1)
    assert (post is not None) == (family in POST_NORM_FAMILIES)


def test_default_band_of_layers_follows_the_depth():
    from memstore.editing.defaults import band

    assert band(28) == (3, 4, 5, 6, 7, 8)  # GPT-J's 3-8 of 28
    assert band(30) == (3, 4, 5, 6, 7, 8)  # SmolLM2
    assert band(24) == (2, 3, 4, 5, 6)  # Qwen2.5-0.5B
    assert band(32) == (3, 4, 5, 6, 7, 8, 9)
    for n in range(2, 100):
        layers = band(n)
        assert layers == tuple(range(layers[0], layers[-1] + 1)) and max(layers) <= n - 2


def test_lambda_is_a_quarter_of_the_mlp_width():
    from memstore.editing import default_settings

    for family in FAMILIES:
        model, _, ad = build(family)
        s = default_settings(model)
        assert s.mom2_weight == ad.proj_dims(model, s.layers[0])[1] / 4
        assert s.stats_source == "wikipedia" and s.stats_tokens == 20000


def test_gpt2_is_transposed_others_not():
    assert get_adapter("gpt2").transposed
    assert not any(get_adapter(t).transposed for t in ("gptj", "gpt_neox", "llama", "gemma", "qwen2", "mistral"))


def test_unknown_architecture_lists_supported():
    with pytest.raises(ValidationError) as e:
        get_adapter("mamba")
    msg = str(e.value)
    assert "mamba" in msg and all(t in msg for t in supported())


@pytest.mark.parametrize("model_type", ["llama4_text", "gpt_oss", "deepseek_v3", "mixtral"])
def test_a_mixture_of_experts_is_refused_as_one_not_as_an_unknown_architecture(model_type):
    """Llama 4, gpt-oss, DeepSeek V3 …: 'cannot edit … mixture of experts', where they were
    'unsupported architecture', with the mixtures named among the supported."""
    with pytest.raises(ValidationError) as e:
        get_adapter(model_type).check_editable()
    assert str(e.value).startswith(f"cannot edit {model_type} models: its MLP is a mixture")


def test_the_supported_list_holds_no_family_refused_for_edits():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    from memstore.models.adapters import MIXTURES

    assert "mixtral" not in supported() and "qwen3_moe" not in supported()
    assert "llama" in supported() and "granite" in supported()
    assert all(t in CONFIG_MAPPING_NAMES for t in MIXTURES)  # no misspelt model type

