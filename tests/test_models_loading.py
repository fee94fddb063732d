"""Models a user hands `memstore init --base` (a Hugging Face directory, a .gguf file) that
memstore cannot use are refused in one line, before a repository is made, and are never
read by unpickling; tiny models, offline."""
from __future__ import annotations

import json
import re

import pytest
import torch
from cli_support import error_line, make_model_dir, run
from safetensors.torch import load_file

from memstore.errors import ValidationError
from memstore.models.loading import load_model


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))


def refused_init(tmp_path, spec, says: str) -> str:
    """`memstore init` on `spec`: exit 2, one line saying `says`, no repository."""
    line = error_line(run("init", tmp_path / "repo", "--base", spec), 2, says)
    assert not (tmp_path / "repo").exists()
    return line


def test_pickle_weights_are_refused_never_unpickled(tmp_path, monkeypatch):
    """pytorch_model.bin (torch.load) is neither loaded nor opened: only safetensors are."""
    model = make_model_dir(tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    torch.save(weights, model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    refused_init(tmp_path, model, f"cannot load the model '{model}': its weights are a pickle "
                                  "file (pytorch_model.bin)")
    # a config naming a pickle file as its weights (transformers loads adapter_model.bin so)
    (model / "pytorch_model.bin").rename(model / "adapter_model.bin")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config,
                                                   "transformers_weights": "adapter_model.bin"}))
    refused_init(tmp_path, model, "its config.json names the weights 'adapter_model.bin', not "
                                  "a safetensors file")


def test_custom_code_is_refused_without_a_prompt(tmp_path, monkeypatch):
    """A config whose model_type only the directory's own code defines (auto_map): refused,
    the code never run, and no question asked (transformers asks on the terminal whether
    to run it, for 15 s, and runs it on 'y')."""
    model = make_model_dir(tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="homemade", auto_map={"AutoConfig": "custom.Config",
                                                   "AutoModelForCausalLM": "custom.Model"})
    (model / "config.json").write_text(json.dumps(config))
    ran = tmp_path / "ran"
    (model / "custom.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    asked = []
    monkeypatch.setattr("builtins.input", lambda *a: asked.append(a) or "y")
    refused_init(tmp_path, model, "contains custom code")
    assert not asked and not ran.exists()


def test_weights_missing_or_of_another_shape_are_refused(tmp_path):
    """transformers fills such a tensor with random values and only warns: memstore would
    record, edit and export a partly random model."""
    from safetensors.torch import save_file

    model = make_model_dir(tmp_path / "model")
    down = "model.layers.1.mlp.down_proj.weight"
    weights = load_file(model / "model.safetensors")
    save_file({k: v for k, v in weights.items() if k != down}, model / "model.safetensors",
              metadata={"format": "pt"})
    refused_init(tmp_path, model, f"cannot load the model '{model}': its weights lack {down}")
    save_file({**weights, down: weights[down].T.contiguous()}, model / "model.safetensors",
              metadata={"format": "pt"})
    refused_init(tmp_path, model, f"its tensor {down} has the shape (64, 32), its config asks "
                                  "for (32, 64)")


def test_a_gguf_file_lacking_a_tensor_is_refused_and_no_copy_is_stored(tmp_path):
    from gguf_support import write_tiny_gguf

    base = write_tiny_gguf(tmp_path / "tiny.gguf", leave_out=("blk.3.ffn_down.weight",))
    with pytest.raises(ValidationError, match=rf"^{re.escape(str(base))}: its weights lack "
                                              r"model\.layers\.3\.mlp\.down_proj\.weight$"):
        load_model(str(base))
    assert not list((tmp_path / "cache" / "models").iterdir())


@pytest.mark.parametrize("change, says", [
    ({"num_attention_heads": 0}, "by zero"),
    ({"hidden_size": "x"}, "Validation error for field 'hidden_size': TypeError: Field"),
    ({"vocab_size": 0}, "out of bounds"),
])
def test_config_values_no_model_can_be_built_from_are_one_line(tmp_path, change, says):
    """transformers' own checks fail with ZeroDivisionError, huggingface_hub's
    StrictDataclassFieldValidationError, torch's IndexError: no traceback."""
    model = make_model_dir(tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, **change}))
    line = refused_init(tmp_path, model, says)
    assert line.startswith(f"memstore: error: cannot load the model '{model}': ")


def test_a_gguf_header_cut_short_is_one_line(tmp_path):
    """gguf-py reads past the end of the file (IndexError)."""
    from gguf_support import write_tiny_gguf

    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    base.write_bytes(base.read_bytes()[:64])
    refused_init(tmp_path, base, f"{base}: its GGUF header runs past the end of the file")
    assert not list((tmp_path / "cache" / "models").iterdir())


@pytest.mark.parametrize("name, text, says", [
    ("tokenizer_config.json", "[]", "tokenizer_config.json holds a JSON list, not an object"),
    ("special_tokens_map.json", "[]", "special_tokens_map.json holds a JSON list"),
    ("generation_config.json", "[]", "generation_config.json holds a JSON list"),
    ("config.json", "[1, 2]", "config.json holds a JSON list"),
    ("config.json", "{oops", "config.json is not readable JSON (Expecting property name"),
    ("model.safetensors.index.json", '{"weight_map": []}',
     "model.safetensors.index.json has no weight_map of tensor names to file names"),
    ("model.safetensors.index.json", "[]", "model.safetensors.index.json holds a JSON list"),
])
def test_a_json_file_of_another_shape_is_one_line(tmp_path, name, text, says):
    """transformers reads these as objects: a list was an AttributeError or TypeError."""
    model = make_model_dir(tmp_path / "model")
    if name == "model.safetensors.index.json":  # a sharded checkpoint's index
        (model / "model.safetensors").rename(model / "model-00001-of-00001.safetensors")
    (model / name).write_text(text)
    refused_init(tmp_path, model, f"cannot load the model '{model}': {says}")


def test_a_gguf_file_of_an_unsupported_family_is_refused_before_its_copy(tmp_path):
    """transformers builds a Mamba model from it; memstore refused that only after
    dequantizing the whole file into the cache (a float32 copy, kept)."""
    from gguf_support import write_tiny_gguf

    base = write_tiny_gguf(tmp_path / "tiny.gguf", arch="mamba")
    refused_init(tmp_path, base, f"{base}: unsupported architecture 'mamba'; supported: ")
    assert not list((tmp_path / "cache" / "models").iterdir())


@pytest.mark.parametrize("arch", ["stablelm", "starcoder2"])
def test_a_gguf_file_whose_rope_transformers_leaves_out_is_refused_before_its_copy(tmp_path, arch):
    """transformers' loader maps neither rope.freq_base nor rope.dimension_count for these
    families: it built the model with its default base and rotated share, not the file's."""
    from gguf_support import write_tiny_gguf

    base = write_tiny_gguf(tmp_path / "tiny.gguf", arch=arch)
    refused_init(tmp_path, base, f"{base}: transformers' GGUF loader builds a {arch} model "
                                 "without the file's RoPE base and rotated dimensions")
    assert not list((tmp_path / "cache" / "models").iterdir())


@pytest.mark.parametrize("arch", ["falcon", "nemotron"])
def test_a_gguf_file_whose_settings_transformers_leaves_out_is_refused_before_its_copy(tmp_path,
                                                                                      arch):
    """Falcon: no key says whether a file holds Falcon-7B's decoder or 40B/180B's (grouped
    key/value heads, two norms), which transformers' loader leaves at 7B's; Nemotron: the
    rotated share of each head is left at the config's default."""
    from gguf_support import write_tiny_gguf

    base = write_tiny_gguf(tmp_path / "tiny.gguf", arch=arch)
    refused_init(tmp_path, base, f"{base}: transformers' GGUF loader builds a {arch} model "
                                 "without reading ")
    assert not list((tmp_path / "cache" / "models").iterdir())


@pytest.mark.parametrize("arch", ["phi2", "smollm3", "granite", "command-r", "cohere2",
                                  "glm4", "exaone4", "mistral3", "seed_oss",
                                  "hunyuan-dense", "ernie4_5", "arcee", "apertus", "olmo",
                                  "gemma3n"])
def test_a_gguf_file_of_a_family_transformers_does_not_read_is_one_line(tmp_path, arch):
    """Families memstore edits from their directories; transformers reads none of their GGUF
    files (should it start to, check which of their keys it leaves out, as for StableLM)."""
    from gguf_support import write_tiny_gguf

    base = write_tiny_gguf(tmp_path / "tiny.gguf", arch=arch)
    refused_init(tmp_path, base, f"cannot load the model '{base}': GGUF model with "
                                 f"architecture {arch} is not supported")


def test_a_directory_of_an_unsupported_family_is_refused_before_its_weights_are_read(tmp_path):
    """(An OPT model was loaded whole, in float32, and refused afterwards.)"""
    import transformers
    from tiny import tiny_tokenizer

    model = tmp_path / "opt"
    transformers.OPTConfig(vocab_size=360, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, ffn_dim=64,
                           word_embed_proj_dim=32).save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    (model / "model.safetensors").write_bytes(b"not read")
    refused_init(tmp_path, model, f"cannot load the model '{model}': unsupported architecture "
                                  "'opt'; supported: ")
