"""Architecture adapters: the one registry of what differs per family — where it keeps its
decoder layers, the MLP output projection W_out (the edited matrix), the norm (if any) that
W_out's output passes through before the residual stream, the scales a family puts between
W_out's output and the stream and on the logits, the final norm, the LM head and the
embeddings, whether batched scoring may pack several targets behind one prompt, and
whether the editing math covers its layers at all. Default settings are not per family:
they follow from the model (memstore.editing.defaults). A new family is one more
`Adapter(...)` here and a tiny model in tests/tiny.py."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ValidationError


def _get(root: nn.Module, path: str) -> nn.Module:
    m = root
    for part in path.split("."):
        m = getattr(m, part)
    return m


@dataclass(frozen=True)
class Adapter:
    name: str
    model_types: tuple[str, ...]  # config.model_type values this adapter serves
    layers_path: str  # the ModuleList of decoder layers
    proj_path: str  # W_out inside a decoder layer
    final_norm_path: str
    embed_path: str
    transposed: bool  # weight stored (d_in × d_out), as GPT-2's Conv1D
    # the RMSNorm W_out's output passes through before it joins the residual stream (Gemma
    # 2/3, OLMo 2: "post-feedforward"), inside a decoder layer; None when it joins directly
    post_norm_path: str | None = None
    # config attributes naming the scales a family puts between its modules (None: none):
    # the layer adds W_out's output (after the post-norm, if any) times `residual_multiplier`
    # to the residual stream (Granite); the LM head's logits are multiplied by
    # `logit_multiplier` (Cohere: logit_scale) or divided by `logit_divisor` (Granite)
    residual_multiplier: str | None = None
    logit_multiplier: str | None = None
    logit_divisor: str | None = None
    # scoring may pack several targets after one prompt (a custom 4D mask, restarting
    # positions): True where the family's attention takes such a mask (eval.scoring)
    packed_scoring: bool = True
    # z-vector steps may reuse the keys/values of the positions before the subject (a
    # prefix cache, editing.zs): False where some layers keep a recurrent state instead of
    # a cache per position (Qwen 3.5's Gated DeltaNet), whose rows then run whole
    prefix_cache: bool = True
    # its decoder layers return a tuple (hidden, …) in transformers 5, where the others
    # return the hidden states (Falcon): a layer stood in for must return the same
    # (editing.layers)
    layer_tuple: bool = False
    # why the editing math does not cover this family's layers (None: it does); such a
    # family can be scored but is refused for edits, never edited with the wrong math
    not_editable: str | None = None

    def check_editable(self) -> None:
        if self.not_editable is not None:
            raise ValidationError(f"cannot edit {self.name} models: {self.not_editable}")

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return _get(model, self.layers_path)

    def n_layers(self, model: nn.Module) -> int:
        return len(self.layers(model))

    def layer(self, model: nn.Module, index: int) -> nn.Module:
        return self.layers(model)[index]

    def proj(self, model: nn.Module, index: int) -> nn.Module:
        return _get(self.layer(model, index), self.proj_path)

    def proj_weight_name(self, index: int) -> str:
        """The state_dict key of the edited weight in layer `index`."""
        return f"{self.layers_path}.{index}.{self.proj_path}.weight"

    def proj_dims(self, model: nn.Module, index: int) -> tuple[int, int]:
        """(d_out, d_in) of W_out as an operator."""
        w = self.proj(model, index).weight
        return (w.shape[1], w.shape[0]) if self.transposed else (w.shape[0], w.shape[1])

    def post_norm(self, model: nn.Module, index: int) -> nn.Module | None:
        return _get(self.layer(model, index), self.post_norm_path) if self.post_norm_path else None

    def residual_scale(self, model: nn.Module) -> float:
        """m: the residual stream receives m · W_out's output (after the post-norm, if any)."""
        if self.residual_multiplier is None:
            return 1.0
        return float(getattr(model.config.get_text_config(), self.residual_multiplier))

    def final_norm(self, model: nn.Module) -> nn.Module:
        return _get(model, self.final_norm_path)

    def embeddings(self, model: nn.Module) -> nn.Module:
        return _get(model, self.embed_path)

    def lm_head(self, model: nn.Module) -> nn.Module:
        # Tied embeddings (SmolLM2, Gemma, GPT-2) are handled by transformers: the output
        # embeddings module shares the input embedding weight.
        return model.get_output_embeddings()

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """The logits of final hidden states, as the model's own forward forms them: the LM
        head, its family's scale (Granite, Cohere), then soft-capping where the config asks
        for it (Gemma 2/3)."""
        logits = self.lm_head(model)(hidden)
        if self.logit_multiplier is not None:
            logits = logits * getattr(model.config, self.logit_multiplier)
        if self.logit_divisor is not None:
            logits = logits / getattr(model.config, self.logit_divisor)
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits


MIXTURE = ("its MLP is a mixture of experts: a key reaches one of several W_out matrices, "
           "which the MEMIT update does not model")

# Gemma 3n's layers carry several copies of the stream (AltUp): each layer predicts all of
# them, runs attention and MLP on one, and corrects the others by learned coefficients of
# that one's change, beside a LAuReL branch and a per-layer input; what W_out's output adds
# is no one residual vector at the layer's output, which MEMIT solves for
ALTUP = ("its layers carry several copies of the residual stream (AltUp) that W_out's output "
         "reaches through learned corrections, which the MEMIT update does not model")

ADAPTERS: tuple[Adapter, ...] = (
    Adapter("gpt2", ("gpt2",), "transformer.h", "mlp.c_proj", "transformer.ln_f",
            "transformer.wte", True),
    Adapter("gptj", ("gptj",), "transformer.h", "mlp.fc_out", "transformer.ln_f",
            "transformer.wte", False),
    Adapter("gpt_neox", ("gpt_neox",), "gpt_neox.layers", "mlp.dense_4h_to_h",
            "gpt_neox.final_layer_norm", "gpt_neox.embed_in", False),
    # Llama's module paths and W_out's output joining the stream as it is; within the
    # layer they differ (Ministral: sliding windows; Ministral 3: position-scaled queries;
    # Seed-OSS, Hunyuan, Helium, ERNIE 4.5: biases, query/key norms; Arcee: relu², no gate;
    # Apertus: xIELU, no gate; Nemotron: relu², LayerNorm 1p; OLMo: LayerNorms without
    # weights), all run by the model's own forward
    Adapter("llama", ("llama", "mistral", "qwen2", "qwen3", "ministral", "ministral3",
                      "seed_oss", "hunyuan_v1_dense", "helium", "ernie4_5", "arcee", "apertus",
                      "nemotron", "olmo"),
            "model.layers", "mlp.down_proj", "model.norm", "model.embed_tokens", False),
    # Falcon (1): attention and MLP in parallel (new_decoder_architecture: on two norms),
    # W_out's output joins the stream as it is; tied embeddings
    Adapter("falcon", ("falcon",), "transformer.h", "mlp.dense_4h_to_h", "transformer.ln_f",
            "transformer.word_embeddings", False, layer_tuple=True),
    Adapter("phi3", ("phi3",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False),
    # Phi-1/1.5/2: attention and MLP side by side on one LayerNorm's output, both added to
    # the residual stream (W_out's output joins it as it is); the LM head has a bias
    Adapter("phi", ("phi",), "model.layers", "mlp.fc2", "model.final_layernorm",
            "model.embed_tokens", False),
    # SmolLM3: Llama's layers, every fourth without rotary positions (NoPE)
    Adapter("smollm3", ("smollm3",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False),
    # StarCoder2: LayerNorms and a plain (not gated) MLP with biases
    Adapter("starcoder2", ("starcoder2",), "model.layers", "mlp.c_proj", "model.norm",
            "model.embed_tokens", False),
    # StableLM (2): LayerNorms, partial rotary; attention and MLP in parallel where the
    # config says (use_parallel_residual), W_out's output joins the stream as it is either way
    Adapter("stablelm", ("stablelm",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False),
    # Granite (3.x): Llama's layers with scales: the embeddings' and the attention's (inside
    # the model's forward), each block's output × residual_multiplier as it joins the stream,
    # the logits ÷ logits_scaling
    Adapter("granite", ("granite",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, residual_multiplier="residual_multiplier",
            logit_divisor="logits_scaling"),
    # Command R (cohere), R7B and A (cohere2: sliding-window layers with rotary positions
    # between global ones without): attention and MLP in parallel on one LayerNorm's output,
    # the logits × logit_scale, tied embeddings
    Adapter("cohere", ("cohere", "cohere2"), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, logit_multiplier="logit_scale"),
    # Gemma 1; VaultGemma (Gemma's layers, Gemma 2's soft caps, no post-norms)
    Adapter("gemma", ("gemma", "vaultgemma"), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False),
    Adapter("gemma2", ("gemma2", "gemma3_text"), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, post_norm_path="post_feedforward_layernorm"),
    # Gemma 3 with its vision tower: the text model inside is edited, the rest kept
    Adapter("gemma3", ("gemma3",), "model.language_model.layers", "mlp.down_proj",
            "model.language_model.norm", "model.language_model.embed_tokens", False,
            post_norm_path="post_feedforward_layernorm"),
    # OLMo 2, OLMo 3 (OLMo 2's layers with sliding windows)
    Adapter("olmo2", ("olmo2", "olmo3"), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, post_norm_path="post_feedforward_layernorm"),
    # EXAONE 4: OLMo 2's post-norms, sliding-window layers between global ones
    Adapter("exaone4", ("exaone4",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, post_norm_path="post_feedforward_layernorm"),
    # GLM-4 (0414): norms after attention and after the MLP (post_mlp_layernorm), W_out
    # the down projection of a fused gate/up MLP
    Adapter("glm4", ("glm4",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, post_norm_path="post_mlp_layernorm"),
    # Qwen 3.5: three Gated DeltaNet (linear attention) layers to one of full attention, a
    # dense SwiGLU MLP. The recurrent layers take no attention mask but padding's (packed
    # targets would read each other) and keep no keys/values per position. A text-only
    # checkpoint (qwen3_5_text) is its causal LM; one of the multimodal model (qwen3_5) is
    # loaded whole, vision tower included (models.loading.model_class), and its text model
    # edited, as Gemma 3's
    Adapter("qwen3_5_text", ("qwen3_5_text",), "model.layers", "mlp.down_proj",
            "model.norm", "model.embed_tokens", False, packed_scoring=False,
            prefix_cache=False),
    Adapter("qwen3_5", ("qwen3_5",), "model.language_model.layers", "mlp.down_proj",
            "model.language_model.norm", "model.language_model.embed_tokens", False,
            packed_scoring=False, prefix_cache=False),
    # Mistral 3 (Mistral Small 3.x, Ministral 3): a Mistral (or Ministral 3) text model
    # beside a Pixtral vision tower, loaded whole; Llama's math in the text model
    Adapter("mistral3", ("mistral3",), "model.language_model.layers", "mlp.down_proj",
            "model.language_model.norm", "model.language_model.embed_tokens", False),
    # Gemma 3n: known, and refused for edits (scored by the model's own forward)
    Adapter("gemma3n_text", ("gemma3n_text",), "model.layers", "mlp.down_proj", "model.norm",
            "model.embed_tokens", False, packed_scoring=False, not_editable=ALTUP),
    Adapter("gemma3n", ("gemma3n",), "model.language_model.layers", "mlp.down_proj",
            "model.language_model.norm", "model.language_model.embed_tokens", False,
            packed_scoring=False, not_editable=ALTUP),
    # known, and refused for edits: W_out is one of several experts per token
    *(Adapter(t, (t,), "model.layers", "mlp.experts", "model.norm", "model.embed_tokens", False,
              not_editable=MIXTURE)
      for t in ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe")),
)

# Mixtures of experts without an adapter (not scored either): refused for what they are,
# not as an unknown architecture
MIXTURES = ("cohere2_moe", "dbrx", "deepseek_v2", "deepseek_v3", "dots1", "ernie4_5_moe",
            "exaone_moe", "flex_olmo", "glm4_moe", "gpt_oss", "granitemoe", "granitemoehybrid",
            "granitemoeshared", "hunyuan_v1_moe", "jamba", "jetmoe", "lfm2_moe", "llama4",
            "llama4_text", "minimax", "phimoe", "qwen3_5_moe", "qwen3_5_moe_text",
            "qwen3_next")


def supported() -> list[str]:
    """The model types memstore edits."""
    return sorted(t for a in ADAPTERS if a.not_editable is None for t in a.model_types)


def find_adapter(model_type: str) -> Adapter | None:
    for a in ADAPTERS:
        if model_type in a.model_types:
            return a
    return None


def get_adapter(model_or_type: nn.Module | str) -> Adapter:
    model_type = model_or_type if isinstance(model_or_type, str) else model_or_type.config.model_type
    found = find_adapter(model_type)
    if found is not None:
        return found
    if model_type in MIXTURES:
        raise ValidationError(f"cannot edit {model_type} models: {MIXTURE}")
    raise ValidationError(
        f"unsupported architecture {model_type!r}; supported: {', '.join(supported())}"
    )


def hidden_of(output) -> torch.Tensor:
    """Decoder layers return a tensor or a tuple (hidden, ...) depending on the
    transformers version."""
    return output[0] if isinstance(output, (tuple, list)) else output
