"""Settings a GGUF file implies that transformers' GGUF loader leaves at their defaults
(Gemma's query scale and soft-caps): computed as llama.cpp computes them, and written into
the dequantized copy memstore loads."""
from __future__ import annotations

import json

import pytest
import transformers
from gguf_support import write_tiny_gguf

from memstore.models import gguf_settings
from memstore.models.gguf_settings import apply_settings, llama_cpp_settings, read_fields


def gemma(arch: str, layers: int, hidden: int, heads: int, key_length: int, **extra) -> dict:
    return {"general.architecture": arch, f"{arch}.block_count": layers,
            f"{arch}.embedding_length": hidden, f"{arch}.attention.head_count": heads,
            f"{arch}.attention.key_length": key_length, **extra}


@pytest.mark.parametrize("fields, expected", [
    # Gemma 2 27B: 46 layers, 4608 wide, 32 heads of 128: s = 4608 / 32 = 144 (not 128, not 256)
    (gemma("gemma2", 46, 4608, 32, 128, **{"gemma2.attn_logit_softcapping": 50.0,
                                            "gemma2.final_logit_softcapping": 30.0}),
     {"query_pre_attn_scalar": 144, "attn_logit_softcapping": 50.0,
      "final_logit_softcapping": 30.0}),
    # Gemma 2 9B: the key length, 256
    (gemma("gemma2", 42, 3584, 16, 256), {"query_pre_attn_scalar": 256}),
    # another Gemma 2 shape: the key length, whatever transformers' default
    (gemma("gemma2", 4, 64, 4, 16, **{"gemma2.final_logit_softcapping": 10.0}),
     {"query_pre_attn_scalar": 16, "final_logit_softcapping": 10.0}),
    # Gemma 3 27B: 62 layers, 5376 / 32 = 168; no final cap unless the file has one
    (gemma("gemma3", 62, 5376, [32] * 62, 128),
     {"query_pre_attn_scalar": 168, "final_logit_softcapping": None}),
    (gemma("gemma3", 26, 1152, 4, 256), {"query_pre_attn_scalar": 256,
                                         "final_logit_softcapping": None}),
    ({"general.architecture": "llama", "llama.block_count": 30}, {}),
])
def test_the_settings_llama_cpp_derives(fields, expected):
    assert llama_cpp_settings(fields) == expected


def test_applied_to_a_gemma_config_and_to_a_multimodal_ones_text_config():
    c = transformers.Gemma2Config()
    assert c.query_pre_attn_scalar == 256
    assert apply_settings(c, {"query_pre_attn_scalar": 144, "final_logit_softcapping": 30.0}) \
        == {"query_pre_attn_scalar": [256, 144]}
    assert c.query_pre_attn_scalar == 144 and c.final_logit_softcapping == 30.0
    m = transformers.Gemma3Config()
    apply_settings(m, {"query_pre_attn_scalar": 168})
    assert m.text_config.query_pre_attn_scalar == 168


def test_the_dequantized_copy_carries_the_settings(tmp_path, monkeypatch):
    """The copy memstore loads is built from its saved config: a setting the file implies
    is in that config.json, and the copy's record says what changed."""
    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    fields = read_fields(base)
    assert fields["general.architecture"] == "llama" and fields["llama.block_count"] == 4
    monkeypatch.setattr(loading, "llama_cpp_settings",
                        lambda f: {"rms_norm_eps": 0.125} if f is not None else {})
    target = loading.local_dir(str(base))
    assert json.loads((target / "config.json").read_text())["rms_norm_eps"] == 0.125
    record = json.loads((target / loading.SOURCE).read_text())
    assert record["settings_from_gguf"]["rms_norm_eps"][1] == 0.125
    assert gguf_settings.llama_cpp_settings(fields) == {}
