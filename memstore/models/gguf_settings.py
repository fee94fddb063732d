"""Settings a GGUF file implies that transformers' GGUF loader does not read.

transformers builds a model's config from a fixed list of GGUF keys and leaves every other
setting at its family's default; llama.cpp, which runs the same file, derives some of those
settings from the file. Where the two differ, memstore would edit (and export) another model
than the one the file is. Known here (llama.cpp's src/models/gemma2.cpp, gemma3.cpp):

- Gemma 2 and 3 scale queries by 1/√s with s = hidden / heads for the 27B models (46 and 62
  layers) and the key length otherwise; transformers keeps `query_pre_attn_scalar` 256,
  wrong for Gemma 2 27B (144), Gemma 3 27B (168) and any head size but 256;
- their logit soft-caps are in the file (`attn_logit_softcapping`,
  `final_logit_softcapping`); transformers keeps its defaults;
- Llama 3.1/3.2/3.3 scale RoPE's low frequencies ("llama3" scaling); llama.cpp's converter
  keeps only the per-frequency divisors, as the tensor `rope_freqs.weight`, which
  transformers ignores (plain RoPE). The scaling whose divisors they are is found and set;
  divisors no known scaling gives are refused (the Hugging Face directory is the way then);
- Qwen2, Qwen3 and Phi-3 take the head size from `attention.key_length` (llama.cpp's
  src/llama-model.cpp: hidden / heads unless the file says otherwise); transformers' loader
  does not read it there and keeps its default (Qwen3: 128, whatever the file): `head_dim`;
- RoPE scaling by the keys `rope.scaling.type` (llama.cpp: "linear" when absent) and
  `rope.scaling.factor` (or the older `rope.scale_linear`), which llama.cpp's
  src/llama-model.cpp reads for every family and transformers' loader for none of these:
  linear → transformers' "linear"; yarn → its "yarn" with the original context
  (`rope.scaling.original_context_length`, else `context_length`), llama.cpp's β 32 / 1
  (these families do not read yarn's other keys) and its attention factor
  (0.1·ln factor + 1, times `rope.scaling.attn_factor`). Gemma 3 scales its global layers
  only (llama.cpp keeps the sliding ones' scale 1, their base `rope.freq_base_swa`, else
  10000); Gemma 2 has one base for both kinds of layer in transformers: a different
  `rope.freq_base_swa` is refused, as are an attention factor without yarn, a scaling on top
  of `rope_freqs.weight`, and types llama.cpp does not know;
- Phi-3's long-context models (Phi-3-*-128k, Phi-3.5, Phi-4-mini) keep their LongRoPE
  factors as the tensors `rope_factors_short.weight` / `rope_factors_long.weight`, with
  `rope.scaling.attn_factor` and `rope.scaling.original_context_length`; transformers' loader
  ignores all four (plain RoPE): set as its "longrope". llama.cpp takes the long factors when
  its context (n_ctx) exceeds the original one, transformers when the sequence does: the
  same for any context up to the original length. Phi-4-mini rotates 3/4 of each head
  (`rope.dimension_count`, unread by transformers' loader for phi3): partial_rotary_factor;
- which layers attend within the sliding window: llama.cpp takes Gemma 2/3's pattern from
  `attention.sliding_window_pattern` (a flag per layer, or a period) and gives a Gemma 3
  file without `attention.sliding_window` no sliding layers; transformers reads neither
  and keeps its pattern (every 2nd / 6th layer global): `layer_types`, where the file says;
- GPT-2's position table has `context_length` rows; transformers' loader puts that number
  into `n_ctx`, which GPT-2 does not use, and builds `n_positions` (1024) rows: set;
- a "llama" file is run by llama.cpp as Llama (Mistral's files say "llama" too: full
  attention, no window); transformers' loader builds a file whose `general.name` is
  "mistral" as a Mistral model (a 4096-token sliding window) and then cannot read its
  tensors (gguf-py has no such architecture): its config is made a Llama one
  (`as_llama_cpp_family`), with every other setting the same;
- Qwen 3.5 ("qwen35"): transformers builds the config from the file's keys itself
  (integrations/gguf/gguf_config_mapping.py), reading what llama.cpp reads
  (src/models/qwen35.cpp, llama-model.cpp; written by conversion/qwen.py's Qwen3NextModel):
  the RoPE base and rotated share (rope.freq_base, rope.dimension_count), the head size
  (attention.key_length), the norms' epsilon, the linear attention's conv kernel, key heads
  (ssm.group_count), value heads (ssm.time_step_rank), key head size (ssm.state_size), the
  layer kinds (full_attention_interval) and the MTP block (nextn_predict_layers); the MRoPE
  sections do not change a text-only forward (every axis has the same position). Not read,
  and refused (`qwen35_refusals`): a RoPE scaling (rope.scaling.*), the per-layer kinds
  llama.cpp takes over the interval (attention.recurrent_layers) where they differ from
  it, and a value head size other than the key heads' (llama.cpp's ssm.state_size,
  transformers' ssm.inner_size / ssm.time_step_rank). A key transformers' reader needs and
  the file lacks is named (`missing_key`), where llama.cpp may take a default.

Settings that shape weights (the head size) must be in the config the model is built from:
the caller applies them to the config before loading the file's tensors.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ValidationError

# layers of the 27B models, whose query scale llama.cpp takes from hidden / heads
_27B_LAYERS = {"gemma2": 46, "gemma3": 62}
ROPE_FREQS = "rope_freqs.weight"
ROPE_SHORT, ROPE_LONG = "rope_factors_short.weight", "rope_factors_long.weight"  # Phi-3
_ROPE_TENSORS = (ROPE_FREQS, ROPE_SHORT, ROPE_LONG)
# the families memstore reads from a GGUF file that rotate by RoPE (mistral's files say llama)
_ROPE_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3")
# families memstore edits whose files transformers' loader reads without their RoPE: it maps
# neither `rope.freq_base` nor `rope.dimension_count` for them (StarCoder2's base is 10^5 or
# 10^6, not its 10^4): refused, their Hugging Face directories are read as they are
_ROPE_UNREAD = ("stablelm", "starcoder2")
# more families memstore edits whose files transformers' loader reads leaving settings that
# shape the model at its defaults: what it does not read (integrations/ggml.py maps no key
# for them, modeling_gguf_pytorch_utils sets none)
_SETTINGS_UNREAD = {
    "falcon": ("which decoder Falcon-40B's and 180B's files hold (new_decoder_architecture: "
               "grouped key/value heads, two norms) nor the layer-norm epsilon "
               "(attention.layer_norm_epsilon)"),
    "nemotron": "the rotated share of each head (rope.dimension_count)",
}
# (low_freq_factor, high_freq_factor, original context) of the llama3 scalings tried, with
# the largest divisor as the factor (Llama 3.1/3.3: 8, 1, 4, 8192; Llama 3.2: 32, 1, 4, 8192)
_LLAMA3_SHAPES = [(1.0, 4.0, 8192), (1.0, 4.0, 4096), (1.0, 4.0, 16384), (1.0, 4.0, 2048)]


def read_fields(path: Path) -> dict[str, Any]:
    """The GGUF file's metadata: key → scalar, string or list; and the values of the tensors
    `rope_freqs.weight`, `rope_factors_short.weight`, `rope_factors_long.weight` under their
    names, where the file has them."""
    import gguf

    out: dict[str, Any] = {}
    try:
        reader = gguf.GGUFReader(str(path))
    except IndexError:  # gguf-py read past the end of the file
        raise ValidationError("its GGUF header runs past the end of the file (cut short or "
                              "damaged)") from None
    for t in reader.tensors:
        if t.name in _ROPE_TENSORS:
            out[t.name] = [float(x) for x in t.data.reshape(-1)]
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            continue  # the vocabulary: large, and not a setting
        if not field.types or not field.data:
            continue
        values = [field.parts[i] for i in field.data]
        if field.types[0] == gguf.GGUFValueType.STRING:
            items: list[Any] = [bytes(v).decode("utf-8", "replace") for v in values]
        else:
            items = [v.tolist()[0] if len(v) == 1 else v.tolist() for v in values]
        out[key] = items[0] if len(items) == 1 and field.types[0] != gguf.GGUFValueType.ARRAY \
            else items
    return out


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def llama3_divisors(theta: float, dim: int, factor: float, low: float, high: float,
                    original: int) -> list[float]:
    """What llama.cpp's converter stores as `rope_freqs.weight` for a llama3 scaling: per
    RoPE frequency, the number it is divided by."""
    out = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * theta ** (i / dim)
        if wavelen < original / high:
            out.append(1.0)
        elif wavelen > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return out


def rope_parameters(fields: dict[str, Any], divisors: list[float]) -> dict[str, Any] | None:
    """The llama3 RoPE scaling whose divisors `divisors` are (None: no scaling, all 1);
    ValidationError when no scaling tried gives them."""
    arch = fields.get("general.architecture")
    theta = float(_first(fields.get(f"{arch}.rope.freq_base", 10000.0)))
    dim = int(_first(fields.get(f"{arch}.rope.dimension_count", 0))) or 2 * len(divisors)
    if all(abs(d - 1) < 1e-6 for d in divisors):
        return None
    factor = round(max(divisors), 3)  # stored as float32
    for low, high, original in _LLAMA3_SHAPES:
        expected = llama3_divisors(theta, dim, factor, low, high, original)
        if len(expected) == len(divisors) and all(
                abs(a - b) <= 1e-5 * b for a, b in zip(expected, divisors)):
            return {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                    "high_freq_factor": high, "original_max_position_embeddings": original,
                    "rope_theta": theta}
    raise ValidationError(f"its RoPE frequency factors ({ROPE_FREQS}) are no scaling memstore "
                          "knows (Llama 3's, factor = their largest); transformers would read "
                          "the model without them: give memstore the model's Hugging Face "
                          "directory instead")


# families whose head size transformers' GGUF loader does not take from attention.key_length
_KEY_LENGTH_UNREAD = ("qwen2", "qwen3", "phi3")


def head_dim(arch: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The head size llama.cpp uses, where the file gives one and transformers' loader
    does not read it."""
    key_length = fields.get(f"{arch}.attention.key_length")
    if arch not in _KEY_LENGTH_UNREAD or key_length is None:
        return {}
    return {"head_dim": int(_first(key_length))}


def gpt2_positions(arch: str, fields: dict[str, Any]) -> dict[str, Any]:
    """GPT-2's context length, as the size of its position table."""
    context = fields.get(f"{arch}.context_length")
    return {"n_positions": int(_first(context))} if arch == "gpt2" and context is not None \
        else {}


_ROPE_TYPES = ("none", "linear", "yarn", "longrope")


def _refuse(what: str) -> ValidationError:
    return ValidationError(f"{what}: transformers cannot run the model as llama.cpp does; give "
                           "memstore the model's Hugging Face directory instead")


def rope_scaling(arch: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The scaling of RoPE the generic keys give, as transformers' rope_parameters (without
    rope_theta); None: none."""
    def key(name: str, default: Any = None) -> Any:
        return _first(fields.get(f"{arch}.{name}", default))

    kind = str(key("rope.scaling.type", "linear"))
    if kind not in _ROPE_TYPES:
        raise _refuse(f"its RoPE scaling type {kind!r} ({arch}.rope.scaling.type)")
    factor = float(key("rope.scaling.factor", 0.0) or key("rope.scale_linear", 0.0) or 0.0)
    factor = 1.0 if factor == 0 or kind == "none" else factor
    attn = float(key("rope.scaling.attn_factor", 1.0))
    if kind == "yarn":
        original = int(key("rope.scaling.original_context_length", 0)
                       or key("context_length", 0))
        mscale = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
        return {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings":
                original, "attention_factor": mscale * attn, "beta_fast": 32.0,
                "beta_slow": 1.0}
    if attn != 1.0 and not (arch == "phi3" and ROPE_LONG in fields):
        raise _refuse(f"its RoPE attention factor {attn} ({arch}.rope.scaling.attn_factor) "
                      "without yarn")
    if factor == 1.0:
        return None
    return {"rope_type": "linear", "factor": factor}


def rope_settings(arch: str, fields: dict[str, Any]) -> dict[str, Any]:
    """rope_parameters as llama.cpp runs the file, where they differ from transformers'."""
    if arch not in _ROPE_FAMILIES:
        return {}
    theta = float(_first(fields.get(f"{arch}.rope.freq_base", 10000.0)))
    scaling = rope_scaling(arch, fields)
    if ROPE_FREQS in fields and arch not in _27B_LAYERS:
        if scaling is not None:
            raise _refuse(f"a RoPE scaling ({arch}.rope.scaling.*) on top of {ROPE_FREQS}")
        llama3 = rope_parameters(fields, fields[ROPE_FREQS])
        return {"rope_parameters": llama3} if llama3 is not None else {}
    if arch == "phi3":
        return phi3_rope(fields, theta, scaling)
    swa_base = fields.get(f"{arch}.rope.freq_base_swa")
    if arch == "gemma2" and swa_base is not None and float(_first(swa_base)) != theta:
        raise _refuse(f"its sliding layers' RoPE base {float(_first(swa_base))} "
                      f"({arch}.rope.freq_base_swa) other than the global layers' {theta}")
    full = {"rope_type": "default", **(scaling or {}), "rope_theta": theta}
    if arch == "gemma3" and (scaling is not None or swa_base is not None):
        sliding = {"rope_type": "default",
                   "rope_theta": float(_first(swa_base)) if swa_base is not None else 10000.0}
        return {"rope_parameters": {"sliding_attention": sliding, "full_attention": full}}
    return {"rope_parameters": full} if scaling is not None else {}


def phi3_rope(fields: dict[str, Any], theta: float,
              scaling: dict[str, Any] | None) -> dict[str, Any]:
    """Phi-3's LongRoPE factors and partial rotation, as transformers' rope_parameters."""
    def key(name: str, default: Any = None) -> Any:
        return _first(fields.get(f"phi3.{name}", default))

    n_embd, n_head = int(key("embedding_length", 0)), int(key("attention.head_count", 1))
    head = int(key("attention.key_length", 0) or n_embd // n_head)
    n_rot = int(key("rope.dimension_count", 0) or head)
    out: dict[str, Any] = {"rope_type": "default", **(scaling or {}), "rope_theta": theta,
                           "partial_rotary_factor": n_rot / head if head else 1.0}
    if ROPE_LONG in fields or ROPE_SHORT in fields:
        if scaling is not None:
            raise _refuse("a RoPE scaling (phi3.rope.scaling.*) on top of its LongRoPE factors")
        if ROPE_LONG not in fields or ROPE_SHORT not in fields:
            raise _refuse(f"only one of {ROPE_SHORT}, {ROPE_LONG}")
        out.update(rope_type="longrope", short_factor=fields[ROPE_SHORT],
                   long_factor=fields[ROPE_LONG],
                   original_max_position_embeddings=int(
                       key("rope.scaling.original_context_length", 0)
                       or key("context_length", 0)),
                   attention_factor=float(key("rope.scaling.attn_factor", 1.0)))
    elif scaling is None and n_rot == head:
        return {}
    return {"rope_parameters": out}


def sliding_layers(arch: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Gemma's layer kinds, where the file sets them otherwise than transformers' default."""
    if arch not in ("gemma2", "gemma3"):
        return {}
    n_layer = int(_first(fields.get(f"{arch}.block_count", 0)))
    pattern = fields.get(f"{arch}.attention.sliding_window_pattern")
    if arch == "gemma3" and not _first(fields.get(f"{arch}.attention.sliding_window", 0)):
        swa = [False] * n_layer
    elif isinstance(pattern, list):
        swa = [bool(x) for x in pattern][:n_layer]
    elif pattern is not None:  # llama.cpp's set_swa_pattern
        n = int(pattern)
        swa = [n == 0 or i % n < n - 1 for i in range(n_layer)]
    else:
        return {}
    return {"layer_types": ["sliding_attention" if x else "full_attention" for x in swa]}


def llama_cpp_settings(fields: dict[str, Any]) -> dict[str, Any]:
    """Config attribute → the value llama.cpp runs the file with, for the attributes
    transformers' loader leaves at its defaults (none for other families)."""
    arch = fields.get("general.architecture")
    if arch in _SETTINGS_UNREAD:
        raise ValidationError(f"transformers' GGUF loader builds a {arch} model without reading "
                              f"{_SETTINGS_UNREAD[arch]}, so not surely the model llama.cpp "
                              "runs; use the model's Hugging Face directory")
    if arch in _ROPE_UNREAD:
        raise ValidationError(f"transformers' GGUF loader builds a {arch} model without the "
                              "file's RoPE base and rotated dimensions (rope.freq_base, "
                              "rope.dimension_count), not the model llama.cpp runs; use the "
                              "model's Hugging Face directory")
    if arch == "qwen35":
        qwen35_refusals(fields)
    out: dict[str, Any] = {**head_dim(arch, fields), **gpt2_positions(arch, fields),
                           **rope_settings(arch, fields), **sliding_layers(arch, fields)}
    if arch in _27B_LAYERS:
        out.update(gemma_settings(arch, fields))
    return out


def qwen35_refusals(fields: dict[str, Any]) -> None:
    """Refuses a Qwen 3.5 file with a setting transformers' reader leaves out (see above);
    a key it needs and the file lacks is left to `missing_key`."""
    def key(name: str) -> Any:
        return _first(fields.get(f"qwen35.{name}"))

    if rope_scaling("qwen35", fields) is not None:
        raise _refuse("its RoPE scaling (qwen35.rope.scaling.*), which transformers' reader "
                      "of Qwen 3.5 files leaves out")
    state, inner, heads = key("ssm.state_size"), key("ssm.inner_size"), key("ssm.time_step_rank")
    if None not in (state, inner, heads) and int(inner) != int(state) * int(heads):
        raise _refuse(f"its linear attention's value head size: llama.cpp takes "
                      f"qwen35.ssm.state_size ({int(state)}), transformers "
                      f"qwen35.ssm.inner_size / qwen35.ssm.time_step_rank "
                      f"({int(inner)} / {int(heads)})")
    flags, interval = fields.get("qwen35.attention.recurrent_layers"), key("full_attention_interval")
    n_layer = int(key("block_count") or 0) - int(key("nextn_predict_layers") or 0)
    if isinstance(flags, list) and interval:
        given = [bool(x) for x in flags[:n_layer]]
        if given != [(i + 1) % int(interval) != 0 for i in range(n_layer)]:
            full = [i for i, x in enumerate(given) if not x]
            raise _refuse(f"its full-attention layers {full} (qwen35.attention.recurrent_layers), "
                          f"not every {int(interval)}th (qwen35.full_attention_interval), the "
                          "only layer kinds transformers' reader takes")


def missing_key(fields: dict[str, Any], error: KeyError) -> ValidationError | None:
    """The line for transformers' GGUF config reader (Qwen 3.5's and the others it builds
    from the file's keys) failing on a key of the architecture the file lacks; None for
    any other KeyError."""
    name = error.args[0] if error.args else None
    arch = fields.get("general.architecture")
    if not isinstance(name, str) or name in fields or not name.startswith(f"{arch}."):
        return None
    return ValidationError(f"it has no {name}, which transformers' GGUF loader needs to build "
                           "the model")


def gemma_settings(arch: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Gemma 2/3's query scale and logit soft-caps, as llama.cpp derives them."""
    first = _first

    def required(name: str) -> int:
        if f"{arch}.{name}" not in fields:
            raise ValidationError(f"it has no {arch}.{name}, which llama.cpp requires")
        return int(first(fields[f"{arch}.{name}"]))

    n_layer, n_embd = required("block_count"), required("embedding_length")
    n_head = required("attention.head_count")
    key_length = int(first(fields.get(f"{arch}.attention.key_length", n_embd // n_head)))
    out: dict[str, Any] = {"query_pre_attn_scalar": n_embd // n_head
                           if n_layer == _27B_LAYERS[arch] else key_length}
    caps = ("attn_logit_softcapping", "final_logit_softcapping") if arch == "gemma2" \
        else ("final_logit_softcapping",)
    for name in caps:
        value = fields.get(f"{arch}.{name}")
        if value is not None:
            out[name] = float(first(value))
        elif arch == "gemma3":
            out[name] = None  # llama.cpp: no cap unless the file gives one
    return out


def as_llama_cpp_family(config, fields: dict[str, Any]):
    """The config of the family llama.cpp runs the file as: a Llama config for a "llama"
    file that transformers' loader took for another family (Mistral, by its name)."""
    if fields.get("general.architecture") != "llama" or config.model_type == "llama":
        return config
    from transformers import LlamaConfig

    kept = {k: v for k, v in config.to_dict().items()
            if k not in ("model_type", "architectures", "sliding_window", "transformers_version")}
    return LlamaConfig(**kept)


def apply_settings(config, settings: dict[str, Any]) -> dict[str, Any]:
    """Sets `settings` on `config` (and its text config, for a multimodal one); returns
    those that changed, as {name: [before, after]}."""
    changed: dict[str, Any] = {}
    targets = [config] + ([config.text_config] if hasattr(config, "text_config") else [])
    for name, value in settings.items():
        for c in targets:
            before = getattr(c, name, None)
            if before != value:
                changed[name] = [before, value]
                setattr(c, name, value)
    return changed
