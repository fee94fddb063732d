"""A tiny GGUF base for the tests, written with gguf-py's GGUFWriter as llama.cpp's converter
would write a Llama model: the tiny tokenizer as a GPT-2 style BPE vocabulary, Q/K weights
permuted as llama.cpp permutes them, matrices quantized (Q8_0 and Q4_1: `ffn_down` is Q4_1,
as in SmolLM2's file), norms in F32, tied embeddings (no output.weight)."""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch
import transformers
from tiny import tiny_config, tiny_tokenizer

Q8, Q41, F32 = (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_1,
                gguf.GGMLQuantizationType.F32)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K permutation (transformers' GGUF loader reverses it)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def add_tokenizer(w: gguf.GGUFWriter, tok) -> None:
    """The tiny BPE tokenizer's vocabulary, merges and special ids, as llama.cpp keeps them."""
    js = json.loads(tok.backend_tokenizer.to_str())
    vocab = sorted(js["model"]["vocab"].items(), key=lambda kv: kv[1])
    special = {t["id"] for t in js["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if i in special else 1 for _, i in vocab])
    w.add_token_merges([" ".join(m) for m in js["model"]["merges"]])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    w.add_add_bos_token(False)


def write_tiny_gguf(path: Path, layers: int = 4, seed: int = 0,
                    rope_freqs: list[float] | None = None, name: str = "tiny-llama",
                    leave_out: tuple[str, ...] = (), arch: str = "llama") -> Path:
    """`rope_freqs`: a `rope_freqs.weight` tensor (RoPE divisors, as Llama 3's file has);
    `name`: general.name ("mistral" makes transformers build a Mistral model); `leave_out`:
    tensors not written (a damaged file); `arch`: general.architecture (another than llama
    with llama's tensors and keys: a file memstore refuses)."""
    tok = tiny_tokenizer()
    cfg = tiny_config("llama", tok.backend_tokenizer.get_vocab_size(), layers=layers)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_block_count(layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    add_tokenizer(w, tok)

    def put(name: str, array: np.ndarray, qtype) -> None:
        if name in leave_out:
            return
        data = array if qtype == F32 else gguf.quantize(array, qtype)
        w.add_tensor(name, data, raw_dtype=qtype)

    put("token_embd.weight", state["model.embed_tokens.weight"], Q8)
    for i in range(layers):
        p = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", state[p + "input_layernorm.weight"], F32)
        put(f"blk.{i}.attn_q.weight",
            _permute(state[p + "self_attn.q_proj.weight"], cfg.num_attention_heads), Q8)
        put(f"blk.{i}.attn_k.weight",
            _permute(state[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads), Q8)
        put(f"blk.{i}.attn_v.weight", state[p + "self_attn.v_proj.weight"], Q8)
        put(f"blk.{i}.attn_output.weight", state[p + "self_attn.o_proj.weight"], Q8)
        put(f"blk.{i}.ffn_norm.weight", state[p + "post_attention_layernorm.weight"], F32)
        put(f"blk.{i}.ffn_gate.weight", state[p + "mlp.gate_proj.weight"], Q41)
        put(f"blk.{i}.ffn_up.weight", state[p + "mlp.up_proj.weight"], Q41)
        put(f"blk.{i}.ffn_down.weight", state[p + "mlp.down_proj.weight"], Q41)
    put("output_norm.weight", state["model.norm.weight"], F32)
    if rope_freqs is not None:
        put("rope_freqs.weight", np.asarray(rope_freqs, dtype=np.float32), F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
