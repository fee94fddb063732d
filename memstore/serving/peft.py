"""PEFT LoRA adapters: the files `PeftModel.from_pretrained`, vLLM and TGI load.

A LoRA module adds `scaling · lora_B(lora_A(x))` to the base module's output, with
lora_A.weight of shape (r × in_features), lora_B.weight (out_features × r) and
scaling = lora_alpha / r. So ΔW = B A is stored as lora_B = B, lora_A = A, lora_alpha = r
(scale exactly 1).

What the loaders expect, and why the files look as they do:
- `adapter_model.safetensors` holds `base_model.model.<module>.lora_A.weight` and
  `….lora_B.weight`, the module path as in the base model's state_dict, without the
  adapter name (PEFT's `get_peft_model_state_dict` strips it on save and
  `set_peft_model_state_dict` puts it back on load; vLLM strips `base_model.model.` and
  checks the module path's last component against the modules it supports).
- One `r` for every module (vLLM allocates one rank per adapter, `--max-lora-rank` is one of
  8 … 512; llama.cpp scales each module by lora_alpha / its own rank): smaller factors are
  padded with zeros, which adds nothing. vLLM takes any r up to `--max-lora-rank`
  (PEFTHelper.validate_legal refuses r above it; set_lora copies the factors into zeroed
  slots of that rank), whose default, 16, is below most memstore adapters' r:
  `vllm_max_lora_rank` is the value to pass.
- `target_modules` lists the full module paths of the edited modules only: PEFT matches a
  module whose name equals an entry or ends with "." + an entry, so other modules with the
  same last name (GPT-2's attn.c_proj beside mlp.c_proj) are left alone.
- `fan_in_fan_out` is true for weights stored (in × out) (GPT-2's Conv1D): PEFT then
  transposes B A before adding it to the weight; lora_A and lora_B keep their shapes.
- `bias: "none"`, no `modules_to_save`, no DoRA, no rsLoRA: what vLLM accepts."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .lowrank import LowRank

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."
VLLM_MAX_RANK = 512  # vLLM's largest --max-lora-rank
# the values vLLM's --max-lora-rank takes (vllm/config/lora.py, MaxLoRARanks; newer versions
# also take 1) and its default
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
VLLM_DEFAULT_MAX_LORA_RANK = 16
# families whose vLLM model class does not implement SupportsLoRA (GPT2LMHeadModel,
# GPTJForCausalLM, GPTNeoXForCausalLM, StableLmForCausalLM, FalconForCausalLM: SupportsPP
# only): vLLM's load_lora_model refuses --enable-lora with "... does not support LoRA yet".
# Every other model type memstore edits is served with LoRA, natively or by vLLM's
# Transformers modeling backend (whose base class implements SupportsLoRA): the table and
# the vLLM files it was read from are in tests/test_serving_vllm_support.py
VLLM_NO_LORA = ("gpt2", "gptj", "gpt_neox", "stablelm", "falcon")
# families vLLM serves with LoRA only since it moved them to its Transformers modeling
# backend, whose older native class refused --enable-lora: what the card says of that
VLLM_LORA_SINCE = {
    "starcoder2": ("vLLM serves StarCoder2 through its Transformers modeling backend since "
                   "vllm-project/vllm#30966 (December 2025); an older vLLM's own "
                   "Starcoder2ForCausalLM does not implement SupportsLoRA and refuses "
                   "`--enable-lora` (serve `memstore export --format full` there)."),
}
# families llama.cpp has no model for: its converters refuse the architecture
# ("Model GPTJForCausalLM is not supported"), the base and the adapter alike
LLAMA_CPP_NONE = ("gptj",)


def vllm_max_lora_rank(rank: int) -> int | None:
    """The smallest --max-lora-rank vLLM takes that holds an adapter of `rank` (None above
    512)."""
    return next((k for k in VLLM_MAX_LORA_RANKS if k >= rank), None)


@dataclass
class LoraAdapter:
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]  # float32

    @property
    def rank(self) -> int:
        return int(self.config["r"])

    def config_bytes(self) -> bytes:
        return (json.dumps(self.config, indent=2, sort_keys=True) + "\n").encode()


def tensor_names(module: str) -> tuple[str, str]:
    """(lora_A, lora_B) tensor names of a module."""
    return f"{PREFIX}{module}.lora_A.weight", f"{PREFIX}{module}.lora_B.weight"


def lora_adapter(factors: dict[str, LowRank], *, fan_in_fan_out: bool,
                 base_model: str | None) -> LoraAdapter:
    """The adapter adding B A to each module of `factors` (module path → factors; modules of
    rank 0 are left out). `base_model` goes to base_model_name_or_path."""
    factors = {m: f for m, f in factors.items() if f.rank > 0}
    if not factors:
        raise ValueError("no module has a non-zero update")
    r = max(f.rank for f in factors.values())
    tensors: dict[str, torch.Tensor] = {}
    for module, f in factors.items():
        pad = r - f.rank
        a_name, b_name = tensor_names(module)
        tensors[a_name] = torch.cat([f.A, f.A.new_zeros(pad, f.A.shape[1])]).float().contiguous()
        tensors[b_name] = torch.cat([f.B, f.B.new_zeros(f.B.shape[0], pad)], dim=1) \
            .float().contiguous()
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
        "revision": None, "inference_mode": True, "r": r, "lora_alpha": r, "lora_dropout": 0.0,
        "bias": "none", "fan_in_fan_out": fan_in_fan_out, "target_modules": list(factors),
        "modules_to_save": None, "use_rslora": False, "use_dora": False,
        "init_lora_weights": True, "rank_pattern": {}, "alpha_pattern": {},
    }
    return LoraAdapter(config, tensors)


def write_adapter(directory: Path, adapter: LoraAdapter) -> None:
    from safetensors.torch import save_file

    save_file(adapter.tensors, str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / CONFIG).write_bytes(adapter.config_bytes())


def serving_lines(rank: int, family: str, out: str, since: str | None = None) -> list[str]:
    """The model card's account of how vLLM and llama.cpp load an adapter of `rank` for a
    model of `family` (memstore.models.adapters.Adapter.name) exported to `out`, applying to
    the base or (`since`) to the state of that commit. Part of the card's text: a change
    raises memstore.store.export_card.TEMPLATE."""
    if since is None:
        lines = [("The base is memstore's base exactly: `memstore export base BASE_DIR` writes "
                  "it as a Hugging Face checkpoint."), ""]
    else:  # on memstore's base it would give a model without the facts of `since`
        lines = [(f"The base is the state of commit `{since}`, not memstore's base: "
                  f"`memstore export {since} BASE_DIR` writes it as a Hugging Face checkpoint "
                  "(`--format gguf`: as a GGUF file, on a GGUF base)."), ""]
    k = vllm_max_lora_rank(rank)
    if family in VLLM_NO_LORA:
        lines.append(f"vLLM: not for this family. vLLM's model class for {family} does not "
                     "implement SupportsLoRA, and `--enable-lora` is refused (\"does not "
                     "support LoRA yet\"); serve `memstore export --format full` instead.")
    elif k is None:
        lines.append(f"vLLM: rank {rank} is above {VLLM_MAX_RANK}, the largest "
                     "`--max-lora-rank` vLLM takes; export with `--max-rank 512` (or in "
                     "smaller commits) to serve it there.")
    else:
        serve = (f"vllm serve BASE_DIR --enable-lora --max-lora-rank {k} "
                 f"--lora-modules {shlex.quote(f'facts={out}')}")
        lines += [(f"vLLM: rank {rank} needs `--max-lora-rank {k}` or more (vLLM's default is "
                   f"{VLLM_DEFAULT_MAX_LORA_RANK}; an adapter of a higher rank is refused). "
                   "vLLM's LoRA kernels take float16 or bfloat16 only: keep `--dtype auto`, "
                   "which serves a float32 checkpoint in one of them."
                   + (f" {VLLM_LORA_SINCE[family]}" if family in VLLM_LORA_SINCE else "")),
                  "", "```console", serve, "```"]
    lines.append("")
    if family in LLAMA_CPP_NONE:
        lines.append(f"llama.cpp: not for this family. llama.cpp has no {family} model: "
                     "`convert_hf_to_gguf.py` and `convert_lora_to_gguf.py` refuse the "
                     "architecture (\"is not supported\").")
    elif family == "gpt2":
        lines.append("llama.cpp: not through `convert_lora_to_gguf.py`. It transposes GPT-2's "
                     "Conv1D weights (GPT2Model.modify_tensors), which PEFT's lora_A and lora_B "
                     "already hold as (out × in), and llama.cpp then refuses the adapter's "
                     "shape; use `memstore export --format gguf` on a GGUF base, or convert "
                     "`--format full` with `convert_hf_to_gguf.py`.")
    else:
        convert = (f"python convert_lora_to_gguf.py {shlex.quote(out)} --base BASE_DIR "
                   "--outtype f32 --outfile facts-lora.gguf")
        lines += [("llama.cpp: convert the adapter with llama.cpp's `convert_lora_to_gguf.py` "
                   "(lora_alpha = r: llama.cpp's scale alpha / rank is 1) and load it beside "
                   "the base GGUF; the edit is exact on a base GGUF whose weights are "
                   + ("memstore's (the GGUF memstore's base was read from, or `BASE_DIR` "
                      "converted to F32)." if since is None else
                      "that state's (its `--format gguf` export, or `BASE_DIR` converted to "
                      "F32).")),
                  "", "```console", convert, "llama-cli -m BASE.gguf --lora facts-lora.gguf",
                  "```"]
    return lines
