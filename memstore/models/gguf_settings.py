"""Settings a GGUF file implies that transformers' GGUF loader does not read.

transformers builds a model's config from a fixed list of GGUF keys and leaves every other
setting at its family's default; llama.cpp, which runs the same file, derives some of those
settings from the file. Where the two differ, memstore would edit (and export) another model
than the one the file is. Known here (llama.cpp's src/models/gemma2.cpp, gemma3.cpp):

- Gemma 2 and 3 scale queries by 1/√s with s = hidden / heads for the 27B models (46 and 62
  layers) and the key length otherwise; transformers keeps `query_pre_attn_scalar` 256,
  wrong for Gemma 2 27B (144), Gemma 3 27B (168) and any head size but 256;
- their logit soft-caps are in the file (`attn_logit_softcapping`,
  `final_logit_softcapping`); transformers keeps its defaults.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

# layers of the 27B models, whose query scale llama.cpp takes from hidden / heads
_27B_LAYERS = {"gemma2": 46, "gemma3": 62}


def read_fields(path: Path) -> dict[str, Any]:
    """The GGUF file's metadata: key → scalar, string or list."""
    import gguf

    out: dict[str, Any] = {}
    for key, field in gguf.GGUFReader(str(path)).fields.items():
        if not field.types or not field.data:
            continue
        values = [field.parts[i] for i in field.data]
        if field.types[0] == gguf.GGUFValueType.STRING:
            items: list[Any] = [bytes(v).decode("utf-8", "replace") for v in values]
        elif field.types[0] == gguf.GGUFValueType.ARRAY and len(field.types) > 1 \
                and field.types[1] == gguf.GGUFValueType.STRING:
            continue  # token lists: large and not needed here
        else:
            items = [v.tolist()[0] if len(v) == 1 else v.tolist() for v in values]
        out[key] = items[0] if len(items) == 1 and field.types[0] != gguf.GGUFValueType.ARRAY \
            else items
    return out


def llama_cpp_settings(fields: dict[str, Any]) -> dict[str, Any]:
    """Config attribute → the value llama.cpp runs the file with, for the attributes
    transformers' loader leaves at its defaults (none for other families)."""
    arch = fields.get("general.architecture")
    if arch not in _27B_LAYERS:
        return {}

    def first(value: Any) -> Any:
        return value[0] if isinstance(value, list) else value

    n_layer = int(first(fields[f"{arch}.block_count"]))
    n_embd = int(first(fields[f"{arch}.embedding_length"]))
    n_head = int(first(fields[f"{arch}.attention.head_count"]))
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
