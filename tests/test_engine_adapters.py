import pytest
import torch
from engine_fixtures import FAMILIES, build

from memstore.errors import ValidationError
from memstore.models.adapters import get_adapter, supported


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_finds_modules(family):
    model, _, ad = build(family)
    assert ad.n_layers(model) == 4
    w = ad.proj(model, 1).weight
    d_out, d_in = ad.proj_dims(model, 1)
    assert d_out == model.config.hidden_size
    assert w.shape == ((d_in, d_out) if ad.transposed else (d_out, d_in))
    assert ad.proj_weight_name(1) in model.state_dict()
    assert model.state_dict()[ad.proj_weight_name(1)].data_ptr() == w.data_ptr()
    assert isinstance(ad.final_norm(model), torch.nn.Module)
    assert ad.lm_head(model).weight.shape[0] == model.config.vocab_size
    assert ad.embeddings(model).weight.shape[1] == model.config.hidden_size
    layers = ad.default_layers(28)
    assert layers == tuple(range(layers[0], layers[-1] + 1)) and max(layers) < 28


def test_gpt2_is_transposed_others_not():
    assert get_adapter("gpt2").transposed
    assert not any(get_adapter(t).transposed for t in ("gptj", "gpt_neox", "llama", "gemma", "qwen2", "mistral"))


def test_unknown_architecture_lists_supported():
    with pytest.raises(ValidationError) as e:
        get_adapter("mamba")
    msg = str(e.value)
    assert "mamba" in msg and all(t in msg for t in supported())
