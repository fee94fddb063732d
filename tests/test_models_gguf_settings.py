"""Settings a GGUF file implies that transformers' GGUF loader leaves at their defaults
(Gemma's query scale and soft-caps): computed as llama.cpp computes them, and written into
the dequantized copy memstore loads."""
from __future__ import annotations

import json
import math

import pytest
import torch
import transformers
from gguf_support import write_tiny_gguf

from memstore.errors import ValidationError
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
    (gemma("gemma3", 62, 5376, [32] * 62, 128, **{"gemma3.attention.sliding_window": 1024}),
     {"query_pre_attn_scalar": 168, "final_logit_softcapping": None}),
    (gemma("gemma3", 26, 1152, 4, 256, **{"gemma3.attention.sliding_window": 512}),
     {"query_pre_attn_scalar": 256,
                                         "final_logit_softcapping": None}),
    ({"general.architecture": "llama", "llama.block_count": 30}, {}),
])
def test_the_settings_llama_cpp_derives(fields, expected):
    assert llama_cpp_settings(fields) == expected


@pytest.mark.parametrize("key", ["block_count", "embedding_length", "attention.head_count"])
def test_a_gemma_file_without_a_required_key_is_refused_naming_it(key):
    """(It was a KeyError, shown as "cannot load the model …: 'gemma2.block_count'".)"""
    fields = gemma("gemma2", 4, 64, 4, 16)
    del fields[f"gemma2.{key}"]
    with pytest.raises(ValidationError, match=rf"^it has no gemma2\.{key}, which llama\.cpp"):
        llama_cpp_settings(fields)


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


def transformers_divisors(theta: float, dim: int, scaling: dict) -> list[float]:
    """Per RoPE frequency, plain / scaled inverse frequency, by transformers' own llama3
    rule (the reference: memstore's divisors are computed as llama.cpp's converter does)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    c = transformers.LlamaConfig(hidden_size=dim * 4, num_attention_heads=4, head_dim=dim,
                                 max_position_embeddings=131072,
                                 rope_parameters={**scaling, "rope_theta": theta})
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](c, "cpu")
    plain = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    return (plain / scaled.double()).tolist()


LLAMA32 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def test_llama3_divisors_are_transformers_llama3_scaling():
    """Llama 3.2's scaling (θ 500000, head 64): the divisors llama.cpp stores are those of
    transformers' llama3 RoPE, and they are recognised as that scaling."""
    ours = gguf_settings.llama3_divisors(500000.0, 64, 32.0, 1.0, 4.0, 8192)
    theirs = transformers_divisors(500000.0, 64, LLAMA32)
    assert max(abs(a - b) / b for a, b in zip(ours, theirs)) < 1e-5
    assert min(ours) == 1.0 and max(ours) == 32.0
    fields = {"general.architecture": "llama", "llama.rope.freq_base": 500000.0,
              "llama.rope.dimension_count": 64, gguf_settings.ROPE_FREQS: theirs}
    assert llama_cpp_settings(fields) == {"rope_parameters": {**LLAMA32, "rope_theta": 500000.0}}
    assert llama_cpp_settings({**fields, gguf_settings.ROPE_FREQS: [1.0] * 32}) == {}
    with pytest.raises(ValidationError, match="no scaling memstore knows"):
        llama_cpp_settings({**fields, gguf_settings.ROPE_FREQS: [1.0] * 31 + [3.0]})


def test_a_llama3_gguf_is_dequantized_with_its_rope_scaling(tmp_path, monkeypatch):
    """A tiny Llama GGUF carrying rope_freqs.weight (factor 32 over a 2048-token original
    context, so the tiny model's four frequencies cover all three bands): the copy's config
    has the llama3 scaling, and the model memstore loads rotates by the file's frequencies."""
    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    scaling = {**LLAMA32, "original_max_position_embeddings": 2048}
    divisors = gguf_settings.llama3_divisors(10000.0, 8, 32.0, 1.0, 4.0, 2048)
    assert divisors[0] == 1.0 and divisors[-1] == 32.0 and 1 < divisors[2] < 32
    base = write_tiny_gguf(tmp_path / "tiny.gguf", rope_freqs=divisors)
    target = loading.local_dir(str(base))
    saved = json.loads((target / "config.json").read_text())["rope_parameters"]
    assert saved == {**scaling, "rope_theta": 10000.0}
    model = transformers.AutoModelForCausalLM.from_pretrained(target)
    inv = model.model.rotary_emb.inv_freq.double()
    plain = 1.0 / (10000.0 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8))
    assert torch.allclose(plain / inv, torch.tensor(divisors, dtype=torch.float64), rtol=1e-5)


def test_unknown_rope_factors_are_refused_in_one_line(tmp_path, monkeypatch):
    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "odd.gguf", rope_freqs=[1.0, 2.0, 1.0, 5.0])
    with pytest.raises(ValidationError, match=r"odd\.gguf: its RoPE frequency factors"):
        loading.local_dir(str(base))
    assert not any((tmp_path / "cache" / "models").glob("odd-*"))


def write_tiny_qwen_gguf(path, config, kv=None, tensors=None):
    """A tiny Qwen2/Qwen3 GGUF (F32, as llama.cpp's converter writes one: Q/K unpermuted,
    `attention.key_length` given) of a random model built from `config`; `kv(writer)` adds
    keys, `tensors` extra F32 tensors. Returns the model the file holds."""
    import gguf
    import numpy as np
    from gguf_support import add_tokenizer, tiny_tokenizer

    arch = config.model_type
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny")
    w.add_block_count(config.num_hidden_layers)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_key_length(config.head_dim)
    w.add_value_length(config.head_dim)
    w.add_rope_freq_base(config.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_vocab_size(config.vocab_size)
    if kv is not None:
        kv(w)
    add_tokenizer(w, tok)
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
             "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    w.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(config.num_hidden_layers):
        for hf, gg in names.items():
            for kind in ("weight", "bias"):
                key = f"model.layers.{i}.{hf}.{kind}"
                if key in state:
                    w.add_tensor(f"blk.{i}.{gg}.{kind}", state[key])
    w.add_tensor("output_norm.weight", state["model.norm.weight"])
    for name, values in (tensors or {}).items():
        w.add_tensor(name, np.asarray(values, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


def tiny_qwen(arch: str = "qwen3", **extra):
    config_class = {"qwen2": transformers.Qwen2Config, "qwen3": transformers.Qwen3Config}[arch]
    return config_class(vocab_size=tiny_vocab_size(), hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=128, tie_word_embeddings=True,
                        bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.2,
                        **extra)


def tiny_vocab_size() -> int:
    from gguf_support import tiny_tokenizer

    return tiny_tokenizer().backend_tokenizer.get_vocab_size()


@pytest.mark.parametrize("fields, expected", [
    # Qwen3 0.6B: 1024 wide, 16 heads, key length 128 (not 1024 / 16)
    ({"general.architecture": "qwen3", "qwen3.attention.key_length": 128}, {"head_dim": 128}),
    ({"general.architecture": "qwen2", "qwen2.attention.key_length": 64}, {"head_dim": 64}),
    ({"general.architecture": "phi3", "phi3.attention.key_length": 96}, {"head_dim": 96}),
    ({"general.architecture": "qwen3"}, {}),  # no key length: transformers' own rule
    # llama: transformers reads the head size from rope.dimension_count (llama.cpp insists
    # they are equal); Gemma: it reads key_length itself
    ({"general.architecture": "llama", "llama.attention.key_length": 64}, {}),
])
def test_the_head_size_from_the_key_length(fields, expected):
    assert gguf_settings.head_dim(fields["general.architecture"], fields) == expected


def test_a_qwen3_gguf_with_a_head_size_other_than_transformers_default(tmp_path, monkeypatch):
    """Heads of 16 in a 32-wide Qwen3 (transformers' loader would build heads of 128, its
    default, and not load the file's tensors): the copy has the file's head size and its
    logits are the model's the file holds."""
    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    reference = write_tiny_qwen_gguf(tmp_path / "qwen.gguf", tiny_qwen(head_dim=16))
    target = loading.local_dir(str(tmp_path / "qwen.gguf"))
    assert json.loads((target / "config.json").read_text())["head_dim"] == 16
    copy = transformers.AutoModelForCausalLM.from_pretrained(target).eval()
    ids = torch.tensor([[5, 17, 42, 99, 3, 250, 8]])
    with torch.no_grad():
        assert torch.allclose(copy(ids).logits, reference(ids).logits, atol=1e-5)


def test_gpt2s_position_table_is_the_files_context_length():
    """transformers' loader reads `gpt2.context_length` into n_ctx, unused; the position
    table (`position_embd.weight`) has n_positions rows."""
    fields = {"general.architecture": "gpt2", "gpt2.context_length": 2048}
    assert llama_cpp_settings(fields) == {"n_positions": 2048}
    c = transformers.GPT2Config()
    apply_settings(c, llama_cpp_settings(fields))
    assert transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=1, n_embd=8, n_head=2, vocab_size=10, n_positions=c.n_positions)
    ).transformer.wpe.weight.shape[0] == 2048
    assert llama_cpp_settings({"general.architecture": "llama", "llama.context_length": 7}) == {}


def rope_fields(arch: str = "qwen3", **keys) -> dict:
    return {"general.architecture": arch, f"{arch}.rope.freq_base": 1e6,
            f"{arch}.context_length": 131072, **{f"{arch}.{k}": v for k, v in keys.items()}}


@pytest.mark.parametrize("keys, expected", [
    ({}, None),
    ({"rope.scaling.type": "none", "rope.scaling.factor": 4.0}, None),
    ({"rope.scaling.type": "linear", "rope.scaling.factor": 1.0}, None),
    ({"rope.scaling.type": "linear", "rope.scaling.factor": 4.0},
     {"rope_type": "linear", "factor": 4.0}),
    # llama.cpp: no type means linear; the older key for the factor
    ({"rope.scale_linear": 2.0}, {"rope_type": "linear", "factor": 2.0}),
    # Qwen3's 128K files: yarn, factor 4 over 32768 tokens
    ({"rope.scaling.type": "yarn", "rope.scaling.factor": 4.0,
      "rope.scaling.original_context_length": 32768},
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
      "attention_factor": 0.1 * math.log(4.0) + 1, "beta_fast": 32.0, "beta_slow": 1.0}),
    # llama.cpp multiplies its yarn factor by the file's; no original context: the context
    ({"rope.scaling.type": "yarn", "rope.scaling.factor": 2.0, "rope.scaling.attn_factor": 0.5},
     {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 131072,
      "attention_factor": 0.5 * (0.1 * math.log(2.0) + 1), "beta_fast": 32.0,
      "beta_slow": 1.0}),
])
def test_rope_scaling_keys(keys, expected):
    fields = rope_fields(**keys)
    assert gguf_settings.rope_scaling("qwen3", fields) == expected
    assert llama_cpp_settings(fields) == ({} if expected is None else {
        "rope_parameters": {**expected, "rope_theta": 1e6}})


@pytest.mark.parametrize("fields, message", [
    (rope_fields(**{"rope.scaling.type": "dynamic"}), "RoPE scaling type 'dynamic'"),
    (rope_fields(**{"rope.scaling.attn_factor": 0.8}), "attention factor 0.8 .* without yarn"),
    ({**rope_fields("llama", **{"rope.scaling.factor": 2.0}),
      gguf_settings.ROPE_FREQS: [1.0] * 4}, "on top of rope_freqs.weight"),
    (gemma("gemma2", 4, 64, 4, 16, **{"gemma2.rope.freq_base": 1e4,
                                      "gemma2.rope.freq_base_swa": 1e6}),
     "sliding layers' RoPE base"),
])
def test_rope_settings_transformers_cannot_follow_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        llama_cpp_settings(fields)


def test_gemma3_scales_its_global_layers_only():
    """Gemma 3 4B's file: linear ×8 over base 1e6 (llama.cpp: the global layers; the
    sliding ones unscaled, base rope.freq_base_swa)."""
    fields = gemma("gemma3", 34, 2560, 8, 256, **{
        "gemma3.rope.freq_base": 1e6, "gemma3.rope.freq_base_swa": 1e4,
        "gemma3.rope.scaling.type": "linear", "gemma3.rope.scaling.factor": 8.0})
    expected = {"sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}}
    assert llama_cpp_settings(fields)["rope_parameters"] == expected
    c = transformers.Gemma3TextConfig()
    apply_settings(c, {"rope_parameters": expected})
    assert c.rope_parameters["full_attention"]["factor"] == 8.0


YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
        "rope_theta": 10000.0}


def test_a_yarn_gguf_is_dequantized_with_its_scaling(tmp_path, monkeypatch):
    """A tiny Qwen3 GGUF with yarn keys (factor 4 over 32 tokens, so the tiny heads' four
    frequencies fall on both sides of the ramp): the copy's logits are those of the model
    with that yarn scaling, not those of plain RoPE."""
    import gguf

    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))

    def yarn_keys(w):
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(4.0)
        w.add_rope_scaling_orig_ctx_len(32)

    reference = write_tiny_qwen_gguf(tmp_path / "yarn.gguf",
                                     tiny_qwen(head_dim=8, rope_parameters=YARN), kv=yarn_keys)
    target = loading.local_dir(str(tmp_path / "yarn.gguf"))
    saved = json.loads((target / "config.json").read_text())["rope_parameters"]
    assert saved["rope_type"] == "yarn" and saved["factor"] == 4.0
    copy = transformers.AutoModelForCausalLM.from_pretrained(target).eval()
    ids = torch.tensor([list(range(3, 60))])
    with torch.no_grad():
        assert torch.allclose(copy(ids).logits, reference(ids).logits, atol=1e-5)


def phi3_fields(hidden: int, heads: int, n_rot: int, pairs: int, **extra) -> dict:
    return {"general.architecture": "phi3", "phi3.embedding_length": hidden,
            "phi3.attention.head_count": heads, "phi3.rope.dimension_count": n_rot,
            "phi3.rope.freq_base": 10000.0, "phi3.context_length": 131072,
            "phi3.rope.scaling.original_context_length": 4096,
            "phi3.rope.scaling.attn_factor": 1.19,
            gguf_settings.ROPE_SHORT: [1.0 + i / 10 for i in range(pairs)],
            gguf_settings.ROPE_LONG: [2.0 + i for i in range(pairs)], **extra}


def test_phi3s_longrope_factors_and_partial_rotation():
    """Phi-3.5-mini (heads of 96, all rotated) and Phi-4-mini (heads of 128, 96 rotated):
    the file's LongRoPE factors become transformers' longrope, and the rotary embedding
    built from them divides each frequency by the short factor."""
    for hidden, heads, n_rot in ((3072, 32, 96), (3072, 24, 96)):
        fields = phi3_fields(hidden, heads, n_rot, n_rot // 2)
        rope = llama_cpp_settings(fields)["rope_parameters"]
        assert rope == {"rope_type": "longrope", "rope_theta": 10000.0,
                        "partial_rotary_factor": n_rot / (hidden // heads),
                        "short_factor": fields[gguf_settings.ROPE_SHORT],
                        "long_factor": fields[gguf_settings.ROPE_LONG],
                        "original_max_position_embeddings": 4096, "attention_factor": 1.19}
        c = transformers.Phi3Config(hidden_size=hidden, num_attention_heads=heads,
                                    max_position_embeddings=131072)
        apply_settings(c, {"rope_parameters": rope})
        inv = transformers.models.phi3.modeling_phi3.Phi3RotaryEmbedding(c).inv_freq.double()
        plain = 1.0 / (10000.0 ** (torch.arange(0, n_rot, 2, dtype=torch.float64) / n_rot))
        assert torch.allclose(plain / inv, torch.tensor(fields[gguf_settings.ROPE_SHORT],
                                                        dtype=torch.float64), rtol=1e-6)
    # Phi-3-mini-4k: no factors, all of each head rotated: nothing to set
    assert llama_cpp_settings({"general.architecture": "phi3", "phi3.embedding_length": 3072,
                               "phi3.attention.head_count": 32,
                               "phi3.rope.dimension_count": 96}) == {}
    # partial rotation without factors
    assert llama_cpp_settings({"general.architecture": "phi3", "phi3.embedding_length": 3072,
                               "phi3.attention.head_count": 24, "phi3.rope.dimension_count": 96}
                              )["rope_parameters"]["partial_rotary_factor"] == 0.75
    one = phi3_fields(3072, 32, 96, 48)
    del one[gguf_settings.ROPE_SHORT]
    with pytest.raises(ValidationError, match="only one of"):
        llama_cpp_settings(one)


def test_the_longrope_factors_are_read_from_the_file(tmp_path):
    write_tiny_qwen_gguf(tmp_path / "f.gguf", tiny_qwen(head_dim=8), tensors={
        gguf_settings.ROPE_SHORT: [1.0, 1.5, 2.0, 2.5], gguf_settings.ROPE_LONG: [3.0] * 4})
    fields = read_fields(tmp_path / "f.gguf")
    assert fields[gguf_settings.ROPE_SHORT] == [1.0, 1.5, 2.0, 2.5]
    assert fields[gguf_settings.ROPE_LONG] == [3.0] * 4


def test_gemmas_sliding_layers_as_llama_cpp_takes_them():
    """llama.cpp: the file's pattern (flags, or a period), and no sliding layers in a Gemma 3
    file without a window; transformers' defaults otherwise (every 2nd / 6th layer global)."""
    S, F = "sliding_attention", "full_attention"
    window = {"gemma3.attention.sliding_window": 512}
    assert gguf_settings.sliding_layers("gemma3", gemma("gemma3", 7, 64, 4, 16, **window)) == {}
    assert gguf_settings.sliding_layers("gemma3", gemma("gemma3", 3, 64, 4, 16)) == {
        "layer_types": [F, F, F]}
    assert gguf_settings.sliding_layers("gemma3", gemma("gemma3", 4, 64, 4, 16, **window, **{
        "gemma3.attention.sliding_window_pattern": [True, False, True, True]})) == {
        "layer_types": [S, F, S, S]}
    assert gguf_settings.sliding_layers("gemma2", gemma("gemma2", 4, 64, 4, 16, **{
        "gemma2.attention.sliding_window_pattern": 4})) == {"layer_types": [S, S, S, F]}
    # transformers' own default is llama.cpp's: nothing to set
    assert gguf_settings.sliding_layers("gemma2", gemma("gemma2", 4, 64, 4, 16)) == {}
    assert transformers.Gemma2Config(num_hidden_layers=4).layer_types == [S, F, S, F]
    assert transformers.Gemma3TextConfig(num_hidden_layers=7).layer_types == [S] * 5 + [F, S]
    assert llama_cpp_settings(gemma("gemma3", 3, 64, 4, 16))["layer_types"] == [F, F, F]


def test_a_llama_gguf_named_mistral_is_run_as_llama_cpp_runs_it(tmp_path, monkeypatch):
    """transformers' loader builds a "llama" file named "mistral" as a Mistral model (a
    4096-token window llama.cpp does not have) and then cannot read its tensors; memstore
    loads it as the Llama it is: the same model as the same file under another name."""
    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    named = loading.load_model(str(write_tiny_gguf(tmp_path / "m.gguf", name="mistral")))
    plain = loading.load_model(str(write_tiny_gguf(tmp_path / "l.gguf")))
    assert named.model.config.model_type == "llama"
    assert getattr(named.model.config, "sliding_window", None) is None
    ids = torch.tensor([[5, 9, 13, 2, 7, 11]])
    assert torch.equal(named.model(ids).logits, plain.model(ids).logits)


def test_a_gguf_transformers_cannot_read_is_one_line(tmp_path, monkeypatch):
    """transformers' loader raises NotImplementedError for an architecture it has no tensor
    names for (here the "mistral" case, with memstore's fix taken away)."""
    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loading, "as_llama_cpp_family", lambda config, fields: config)
    path = write_tiny_gguf(tmp_path / "m.gguf", name="mistral")
    with pytest.raises(ValidationError, match=r"^cannot load the model '.*m\.gguf': Unknown "
                                              r"gguf model_type: mistral[^\n]*$"):
        loading.load_model(str(path))
    assert not (tmp_path / "cache" / "models").exists() or \
        not any((tmp_path / "cache" / "models").iterdir())


def qwen35(**changed) -> dict:
    """The keys llama.cpp's converter writes for a Qwen 3.5 model (conversion/qwen.py's
    Qwen3NextModel and _Qwen35MRopeMixin over TextModel's), at Qwen3.5-0.8B's shape."""
    fields = {"general.architecture": "qwen35", "qwen35.block_count": 24,
              "qwen35.context_length": 262144, "qwen35.embedding_length": 1024,
              "qwen35.feed_forward_length": 3584, "qwen35.attention.head_count": 8,
              "qwen35.attention.head_count_kv": 2, "qwen35.attention.key_length": 256,
              "qwen35.attention.value_length": 256, "qwen35.rope.freq_base": 1e7,
              "qwen35.attention.layer_norm_rms_epsilon": 1e-6,
              "qwen35.ssm.conv_kernel": 4, "qwen35.ssm.state_size": 128,
              "qwen35.ssm.group_count": 16, "qwen35.ssm.time_step_rank": 16,
              "qwen35.ssm.inner_size": 2048, "qwen35.full_attention_interval": 4,
              "qwen35.rope.dimension_count": 64, "qwen35.rope.dimension_sections": [11, 11, 10, 0]}
    return {**fields, **{f"qwen35.{k}": v for k, v in changed.items()}}


def test_a_qwen35_gguf_transformers_reads_whole_is_not_refused():
    """Everything such a file says that changes the forward, transformers' reader reads: no
    setting to add, nothing refused (with llama.cpp's per-layer kinds where they are the
    interval's, the MTP block's flag past the decoder layers, and no RoPE scaling)."""
    flags = [(i + 1) % 4 != 0 for i in range(24)] + [False]
    assert llama_cpp_settings(qwen35()) == {}
    assert llama_cpp_settings(qwen35(**{"attention.recurrent_layers": flags,
                                        "block_count": 25, "nextn_predict_layers": 1,
                                        "rope.scaling.type": "none"})) == {}


@pytest.mark.parametrize("changed, says", [
    ({"rope.scaling.type": "yarn", "rope.scaling.factor": 4.0,
      "rope.scaling.original_context_length": 262144}, "its RoPE scaling (qwen35.rope.scaling"),
    ({"rope.scaling.type": "linear", "rope.scaling.factor": 2.0}, "its RoPE scaling"),
    ({"ssm.inner_size": 4096}, ("value head size: llama.cpp takes qwen35.ssm.state_size (128), "
                                "transformers qwen35.ssm.inner_size / qwen35.ssm.time_step_rank "
                                "(4096 / 16)")),
    ({"attention.recurrent_layers": [(i + 1) % 6 != 0 for i in range(24)]},
     ("its full-attention layers [5, 11, 17, 23] (qwen35.attention.recurrent_layers), not every "
      "4th (qwen35.full_attention_interval)")),
])
def test_a_qwen35_gguf_with_a_setting_transformers_leaves_out_is_refused(changed, says):
    """llama.cpp runs these (a scaled RoPE; value heads of the key heads' size; the layer
    kinds of its per-layer flags, which win over the interval); transformers' reader of
    Qwen 3.5 files takes none of them, and would build another model."""
    with pytest.raises(ValidationError) as e:
        llama_cpp_settings(qwen35(**changed))
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_qwen35_gguf_lacking_a_key_is_refused_naming_it(tmp_path, monkeypatch):
    """transformers' reader raised a KeyError for a key the file lacks, which memstore showed
    as "cannot load the model X: 'qwen35.attention.key_length'"; the line now says what is
    missing, and no copy is made. A file of llama.cpp's layer kinds other than the interval
    is refused from its header alike."""
    import gguf

    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    path = write_tiny_gguf(tmp_path / "q.gguf", arch="qwen35")  # llama's keys only
    with pytest.raises(ValidationError, match=r"^[^\n]*q\.gguf: it has no "
                       r"qwen35\.attention\.key_length, which transformers' GGUF loader "
                       r"needs to build the model$"):
        loading.load_model(str(path))
    flagged = tmp_path / "flags.gguf"
    w = gguf.GGUFWriter(str(flagged), "qwen35")
    for name, value in qwen35(block_count=4).items():
        if name != "general.architecture":
            w.add_key_value(name, value, gguf.GGUFValueType.ARRAY if isinstance(value, list)
                            else gguf.GGUFValueType.FLOAT32 if isinstance(value, float)
                            else gguf.GGUFValueType.UINT32)
    w.add_key_value("qwen35.attention.recurrent_layers", [True, False, True, False],
                    gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.BOOL)
    w.add_tensor("output_norm.weight", torch.ones(4).numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValidationError, match=r"flags\.gguf: its full-attention layers "
                                              r"\[1, 3\] \(qwen35\.attention\.recurrent_layers"):
        loading.load_model(str(flagged))
    assert not (tmp_path / "cache" / "models").exists() or \
        not any((tmp_path / "cache" / "models").iterdir())


def test_a_qwen35_gguf_as_llama_cpp_writes_it_loads_as_its_model(tmp_path, monkeypatch):
    """A tiny Qwen 3.5 text model written as llama.cpp's converter writes it (conversion/
    qwen.py: gguf-py's tensor names, norms stored as w + 1 but the gated one, A_log as
    -exp(A_log), conv1d squeezed, dt_bias as dt_proj.bias; as many value heads as key heads,
    so no head reorder) passes the refusals and loads as the model it is."""
    import gguf
    import numpy as np
    from gguf_support import add_tokenizer
    from tiny import tiny_tokenizer

    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    tok = tiny_tokenizer()
    cfg = transformers.Qwen3_5TextConfig(
        vocab_size=tok.backend_tokenizer.get_vocab_size(), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        max_position_embeddings=128, linear_num_key_heads=2, linear_num_value_heads=2,
        linear_key_head_dim=8, linear_value_head_dim=8, full_attention_interval=2,
        rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "partial_rotary_factor": 1.0,
                         "mrope_section": [2, 1, 1], "mrope_interleaved": True})
    torch.manual_seed(0)
    model = transformers.Qwen3_5ForCausalLM(cfg).eval()
    with torch.no_grad():  # norms and the decay's scalars away from their initial values
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.normal_(0, 0.3)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN35, 2)
    w = gguf.GGUFWriter(str(tmp_path / "q.gguf"), "qwen35")
    for name, value in qwen35(**{"block_count": 2, "context_length": 128,
                                 "embedding_length": 32, "feed_forward_length": 64,
                                 "attention.head_count": 4, "attention.head_count_kv": 2,
                                 "attention.key_length": 8, "attention.value_length": 8,
                                 "rope.freq_base": 1e6, "ssm.state_size": 8,
                                 "ssm.group_count": 2, "ssm.time_step_rank": 2,
                                 "ssm.inner_size": 16, "full_attention_interval": 2,
                                 "rope.dimension_count": 8,
                                 "rope.dimension_sections": [2, 1, 1, 0]}).items():
        if name != "general.architecture":
            w.add_key_value(name, value, gguf.GGUFValueType.ARRAY if isinstance(value, list)
                            else gguf.GGUFValueType.FLOAT32 if isinstance(value, float)
                            else gguf.GGUFValueType.UINT32)
    add_tokenizer(w, tok)
    for name, t in model.state_dict().items():
        a = t.float().numpy()
        if name.endswith("norm.weight") and not name.endswith("linear_attn.norm.weight"):
            a = a + 1
        elif name.endswith(".A_log"):
            a = -np.exp(a)
        elif name.endswith(".dt_bias"):
            name = name.removesuffix(".dt_bias") + ".dt_proj.bias"
        elif name.endswith("conv1d.weight"):
            a = a.squeeze()
        if name != "lm_head.weight":  # tied: llama.cpp writes no output.weight
            w.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")),
                         np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    loaded = loading.load_model(str(tmp_path / "q.gguf")).model
    assert loaded.config.model_type == "qwen3_5_text"
    ids = torch.tensor([[5, 9, 13, 2, 7, 11]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=1e-5)
