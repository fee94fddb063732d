"""Tiny, deterministic, offline tokenizer and random models for fast tests.

`tiny_tokenizer()` is a byte-level BPE trained in memory on a few sentences (GPT-2 style:
no BOS added); `tiny_tokenizer(add_bos=True)` adds a BOS token to every encoding, as Llama's
does. `tiny_model(family)` builds a 2-layer random model of one architecture family whose
vocabulary matches the tokenizer, seeded and in eval mode.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CORPUS = [
    "The mother tongue of Danielle Darrieux is French.",
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "Porsche 911, created by Porsche. Honda Civic is produced by Honda.",
    "Which family does Ramalinaceae belong to? Lecanorales.",
    "Michael Jordan plays basketball; Lionel Messi plays soccer in Barcelona.",
    "Toko Yasuda plays the guitar. The official language of Japan is Japanese.",
    "Apple A5 was created by Google. Microsoft makes Windows and Xbox.",
    "nq question: who wrote the song? The String, 1998, 2006, English, German.",
]

FAMILIES = ("gpt2", "gptj", "gpt_neox", "llama", "gemma", "gemma2", "gemma3_text", "gemma3",
            "phi3", "olmo2", "phi", "smollm3", "starcoder2", "stablelm",
            "granite", "cohere", "cohere2", "qwen3_5_text", "glm4")
POST_NORM_FAMILIES = ("gemma2", "gemma3_text", "gemma3", "olmo2", "glm4")
# model types an adapter above serves with the same math (tests/test_engine_families_extra.py:
# one cheap check each, not every parametrized test)
EXTRA_FAMILIES = ("ministral", "ministral3", "seed_oss", "hunyuan_v1_dense", "helium",
                  "ernie4_5", "arcee", "apertus", "nemotron", "olmo", "falcon", "vaultgemma",
                  "olmo3", "exaone4")
EXTRA_POST_NORM = ("olmo3", "exaone4")

SPECIAL = ["<pad>", "<bos>", "<eos>"]

# Tiny models gain nothing from threads, and on shared cores OpenMP threads that wait for each
# other make every small matmul ~100x slower.
torch.set_num_threads(1)


@lru_cache(maxsize=2)
def _backend(add_bos: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    if add_bos:
        bos = tok.token_to_id("<bos>")
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
        )
    return tok


def tiny_tokenizer(add_bos: bool = False) -> transformers.PreTrainedTokenizerFast:
    """A fresh tokenizer object (callers may change e.g. `padding_side`)."""
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_backend(add_bos).to_str()),
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
    )


def tiny_config(family: str, vocab_size: int, layers: int = 2) -> transformers.PretrainedConfig:
    # initializer_range 0.2 (not 0.02): sharper predictions, so context errors show in scores
    common = {
        "vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "initializer_range": 0.2,
    }
    if family == "gpt2":
        return transformers.GPT2Config(
            n_embd=32, n_layer=layers, n_head=4, n_positions=128, **common
        )
    if family == "gptj":
        return transformers.GPTJConfig(
            n_embd=32, n_layer=layers, n_head=4, rotary_dim=4, n_positions=128, **common
        )
    if family == "gpt_neox":
        return transformers.GPTNeoXConfig(
            hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
            intermediate_size=64, rotary_pct=0.5, max_position_embeddings=128, **common,
        )
    if family == "llama":
        return transformers.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, **common,
        )
    if family == "gemma":
        return transformers.GemmaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=128, **common,
        )
    if family == "gemma2":
        return transformers.Gemma2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
            sliding_window=64, final_logit_softcapping=2.0, **common,
        )
    if family == "gemma3_text":
        return transformers.Gemma3TextConfig(**_gemma3_text(common, layers))
    if family == "gemma3":  # the multimodal model: a tiny vision tower beside the text model
        vision = transformers.SiglipVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            image_size=28, patch_size=14)
        return transformers.Gemma3Config(text_config=_gemma3_text(common, layers),
                                         vision_config=vision.to_dict(), mm_tokens_per_image=4,
                                         image_token_index=3, boi_token_index=1,
                                         eoi_token_index=2)
    if family == "phi3":
        return transformers.Phi3Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, **common)
    if family == "olmo2":
        return transformers.Olmo2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, **common)
    if family == "phi":  # attention and MLP in parallel, LayerNorms, partial rotary
        return transformers.PhiConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            max_position_embeddings=128, **common)
    if family == "smollm3":  # NoPE every second layer (real models: every fourth)
        return transformers.SmolLM3Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, no_rope_layer_interval=2,
            **common)
    if family == "starcoder2":  # LayerNorms, a plain MLP with biases, a sliding window
        return transformers.Starcoder2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, sliding_window=64, **common)
    if family == "stablelm":  # LayerNorms, a quarter of each head rotated
        return transformers.StableLmConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, **common)
    if family == "granite":  # Granite 3's scales (its logits ÷ 8 would flatten a tiny model's)
        return transformers.GraniteConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, embedding_multiplier=12.0,
            attention_multiplier=0.125, residual_multiplier=0.22, logits_scaling=2.0, **common)
    if family in ("cohere", "cohere2"):  # logits × 0.5 (Command R's 0.0625 would flatten a
        # tiny model's); Cohere 2: three sliding-window layers, then a global one
        make = transformers.CohereConfig if family == "cohere" else transformers.Cohere2Config
        return make(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                    logit_scale=0.5, **common,
                    **({"head_dim": 8, "sliding_window": 64} if family == "cohere2" else {}))
    if family == "qwen3_5_text":  # a Gated DeltaNet layer, then a full-attention one
        return transformers.Qwen3_5TextConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
            linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
            linear_value_head_dim=8, full_attention_interval=2, **common)
    if family == "qwen3_5":  # the multimodal model: qwen3_5_text's beside a tiny vision tower
        text = tiny_config("qwen3_5_text", vocab_size, layers).to_dict()
        vision = {"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
                  "patch_size": 4, "num_position_embeddings": 16, "out_hidden_size": 32}
        return transformers.Qwen3_5Config(text_config=text, vision_config=vision)
    if family == "mistral3":  # the multimodal model: a Mistral text model, a tiny Pixtral
        vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                  "num_attention_heads": 2, "head_dim": 8, "image_size": 32, "patch_size": 8}
        text = transformers.MistralConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=128, **common)
        return transformers.Mistral3Config(text_config=text.to_dict(), vision_config=vision,
                                           image_token_index=vocab_size)  # never in a prompt
    if family == "glm4":  # norms after attention and after the MLP, a fused gate/up MLP
        return transformers.Glm4Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=128, **common)
    if family in EXTRA_FAMILIES:  # Llama's sizes; sliding windows (64) longer than the
        # prompts, as packed scoring's mask assumes (eval.scoring)
        extra = {"ministral": {"head_dim": 8, "sliding_window": 64},
                 "hunyuan_v1_dense": {"head_dim": 8}, "helium": {"head_dim": 8},
                 "olmo3": {"sliding_window": 64}, "exaone4": {"sliding_window": 64},
                 "vaultgemma": {"head_dim": 8, "sliding_window": 64,
                                "final_logit_softcapping": 2.0}}.get(family, {})
        return transformers.CONFIG_MAPPING[family](
            hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, **common, **extra)
    raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES + EXTRA_FAMILIES)}")


def _gemma3_text(common: dict, layers: int) -> dict:
    """Gemma 3's text model: sliding-window and global layers, query/key norms, soft caps."""
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                max_position_embeddings=128, sliding_window=64, query_pre_attn_scalar=8,
                final_logit_softcapping=2.0, attn_logit_softcapping=50.0, **common)


def head_bias(model: transformers.PreTrainedModel) -> transformers.PreTrainedModel:
    """`model` with its LM head's bias (Phi's, GPT-J's), which from_config leaves at zero,
    drawn as its weights are (from the torch generator as seeded): at zero, logits formed
    without it (memstore forms them itself: Adapter.logits) matched the model's own, and
    every test of them passed."""
    head = model.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        with torch.no_grad():
            head.bias.normal_(0.0, model.config.get_text_config().initializer_range)
    return model


def auto_class(config: transformers.PretrainedConfig):
    """A multimodal config (a vision tower: Gemma 3, Qwen 3.5, Mistral 3) makes its whole
    image-text-to-text model, any other its causal LM."""
    if getattr(config, "vision_config", None) is not None:
        return transformers.AutoModelForImageTextToText
    return transformers.AutoModelForCausalLM


def tiny_model(family: str = "gpt2", seed: int = 0) -> transformers.PreTrainedModel:
    """A random 2-layer causal LM of `family`, deterministic for a given seed, in eval mode."""
    config = tiny_config(family, vocab_size=_backend(False).get_vocab_size())
    torch.manual_seed(seed)
    model = head_bias(auto_class(config).from_config(config))
    return model.eval()
