"""The LoRA adapter of a checkpoint with a vision tower (Gemma 3, Qwen 3.5, Mistral 3), as
PEFT, vLLM and llama.cpp name the modules it changes, pinned against their source.

memstore loads such a checkpoint as its image-text-to-text model (memstore.models.loading.
model_class) and the adapter names the edited modules by that model's paths,
`base_model.model.model.language_model.layers.N.mlp.down_proj.lora_A.weight`.

- PEFT wraps a module whose name is a `target_modules` entry or ends with "." + one
  (`check_target_module_exists`): the text model's W_out, nothing of the vision tower.
  Loaded on the image-text-to-text class and merged, the adapter is the full export
  (tests/test_models_multimodal.py for qwen3_5 and mistral3, tests/test_serving_peft.py
  for gemma3).
- vLLM (files of vllm-project/vllm at the commits the search index holds):
  `parse_fine_tuned_lora_name` (vllm/lora/utils.py @ 001e63a89b474b88345fd72912fe068c4ae83f41)
  strips `base_model.model.`, maps the rest with the model class's `hf_to_vllm_mapper`
  (`WeightsMapper._map_name`, vllm/model_executor/models/utils.py: every orig_to_new_prefix
  rule in order, each replacing a matching prefix once) and drops `.lora_A.weight`;
  `LoRAModel.from_local_checkpoint` (vllm/lora/lora_model.py @
  0306474e9d1f26d8717aad457b9511f0c9e57d60) checks only the last component against the
  linear layers vLLM wraps (`down_proj`), and `LoRAModelManager.activate_adapter`
  (vllm/lora/model_manager.py @ bb1d76e5bfb6f2315f4414d1dc4a84f1e7b22e75) looks each wrapped
  module up by its full name and resets it when the adapter has none: a name the mapper does
  not bring onto vLLM's module path loads without a word and changes nothing
  (vllm-project/vllm#34186, #48019: text-model adapters, `model.layers.N…`, on these
  classes). Wrapped are only modules under get_mm_mapping()'s language-model prefix,
  "language_model" (the vision tower's are ignored with a warning; memstore never edits them).
- llama.cpp's convert_lora_to_gguf.py (@ 56bf500f2560b51affb8e93ba17cb009cbbe7886):
  `get_base_tensor_name` strips `base_model.model.` and `.lora_A`/`.lora_B`, and the base
  architecture's class maps the name to a GGUF one. "language_model." is dropped by
  ModelBase.filter_tensors since ggml-org/llama.cpp#22597, applied to LoRA names since #23077
  (May 2026; between the two a multimodal adapter was refused, "Can not map tensor"), and
  before by each class's modify_tensors (Mistral3Model, conversion/mistral3.py @
  7bca1fd9ca2a681b0182e16f24f832b7be1942af; Qwen2MoeModel under Qwen3_5TextModel,
  conversion/qwen.py @ 2bbcf7fc93a460f04d5709756a48b2408443eecb; Gemma3Model)."""
from __future__ import annotations

import gguf
import pytest
import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import check_target_module_exists
from test_serving_vllm_support import VLLM
from test_store_support import fake_result
from tiny import auto_class, tiny_config, tiny_tokenizer

from memstore.models.adapters import ADAPTERS
from memstore.serving.peft import PREFIX
from memstore.store.peft_export import build_adapter
from memstore.store.repository import Repository

_WRAPPER = {"model.language_model.": "language_model.model.",
            "model.vision_tower.": "vision_tower.",
            "model.multi_modal_projector.": "multi_modal_projector.",
            "lm_head.": "language_model.lm_head."}
# model type -> (the vLLM class, the file and commit its hf_to_vllm_mapper was read from,
# the mapper's orig_to_new_prefix in order)
VLLM_MAPPERS = {
    "gemma3": ("Gemma3ForConditionalGeneration",
               "vllm/model_executor/models/gemma3_mm.py@e5fa94509b708330e28208a55c84aba8a7781675",
               _WRAPPER),
    "mistral3": ("Mistral3ForConditionalGeneration",
                 "vllm/model_executor/models/mistral3.py@577477b558219164dea7597e6e0356e455a86a61",
                 _WRAPPER),
    # Qwen3_5ForConditionalGeneration (qwen3_5.py @ 00def4f8421153e037ff6270c0a8c31912a00206)
    # subclasses Qwen3VLForConditionalGeneration and keeps its mapper
    "qwen3_5": ("Qwen3_5ForConditionalGeneration",
                "vllm/model_executor/models/qwen3_vl.py@4f5768c74b6f87eedb592dac8a7fe39f2aecb1ab",
                {"model.visual.": "visual.", "lm_head.": "language_model.lm_head.",
                 "model.language_model.": "language_model.model."}),
}
# where each class keeps layer N's W_out: self.language_model (Gemma3ForCausalLM,
# MistralForCausalLM, Qwen3_5ForCausalLM), its .model, .layers[N].mlp.down_proj (a
# RowParallelLinear, which LoRA wraps)
VLLM_W_OUT = "language_model.model.layers.{}.mlp.down_proj"
VLLM_LANGUAGE_MODEL = "language_model."  # get_mm_mapping().language_model of all three
# the GGUF architecture llama.cpp's converter writes for each (Gemma3Model, Mistral3Model as
# Llama, Qwen3_5TextModel)
LLAMA_CPP_ARCH = {"gemma3": gguf.MODEL_ARCH.GEMMA3, "mistral3": gguf.MODEL_ARCH.LLAMA,
                  "qwen3_5": gguf.MODEL_ARCH.QWEN35}
LAYERS = (1, 2)  # fake_result's


def multimodal() -> list[str]:
    """The editable families whose text model sits inside a multimodal one."""
    return sorted(a.name for a in ADAPTERS if a.not_editable is None
                  and a.layers_path.startswith("model.language_model."))


def adapter_names(family: str) -> list[str]:
    """The tensor names `export --format peft` writes for a commit of `family` (the adapter
    built from fake update sets: the names do not depend on the numbers)."""
    repo = Repository.memory(base_info={"model_type": family})
    c = repo.write_commit([fake_result(1, n=2, layers=LAYERS)], parents=[], basis=None,
                          message="m")
    return sorted(build_adapter(repo, c.id, None).adapter.tensors)


def modules(names: list[str]) -> list[str]:
    """The module paths of an adapter's tensor names, without PEFT's prefix."""
    return sorted({n.removeprefix(PREFIX).rsplit(".", 2)[0] for n in names})


def vllm_module(tensor: str, prefixes: dict[str, str]) -> str:
    """vLLM's name of the module a LoRA tensor applies to (parse_fine_tuned_lora_name with the
    model's hf_to_vllm_mapper)."""
    name = tensor.replace("base_model.model.", "")
    for old, new in prefixes.items():
        if name.startswith(old):
            name = name.replace(old, new, 1)
    parts = name.split(".")
    assert parts[-1] == "weight" and parts[-2] in ("lora_A", "lora_B"), tensor
    return ".".join(parts[:-2])


def llama_cpp_name(tensor: str) -> str:
    """The base tensor name convert_lora_to_gguf.py hands the architecture's tensor map."""
    name = tensor.replace("base_model.model.", "")
    name = name.replace(".lora_A.weight", ".weight").replace(".lora_B.weight", ".weight")
    return name.replace("language_model.", "")


def test_every_multimodal_family_was_read():
    """A family edited inside a multimodal model whose consumers nobody read fails here."""
    assert multimodal() == sorted(VLLM_MAPPERS) == sorted(LLAMA_CPP_ARCH)
    for family, (cls, _, _) in VLLM_MAPPERS.items():
        assert VLLM[family][1] == cls  # the class tests/test_serving_vllm_support.py serves


@pytest.mark.parametrize("family", sorted(VLLM_MAPPERS))
def test_peft_wraps_the_text_models_w_out_and_nothing_of_the_vision_tower(family):
    tok = tiny_tokenizer()
    cfg = tiny_config(family, tok.backend_tokenizer.get_vocab_size(), layers=4)
    model = auto_class(cfg).from_config(cfg)
    assert type(model).__name__ == VLLM_MAPPERS[family][0]  # the class the checkpoint names
    names = adapter_names(family)
    targets = modules(names)
    config = LoraConfig(target_modules=targets)
    wrapped = sorted(n for n, _ in model.named_modules() if check_target_module_exists(config, n))
    assert wrapped == targets and len(wrapped) == len(LAYERS)
    assert all(isinstance(model.get_submodule(n), torch.nn.Linear) for n in wrapped)
    text = {n for n, _ in model.named_modules() if n.startswith("model.language_model.layers.")}
    assert set(wrapped) <= text


@pytest.mark.parametrize("family", sorted(VLLM_MAPPERS))
def test_vllm_maps_the_names_onto_its_language_models_w_out(family):
    _, _, prefixes = VLLM_MAPPERS[family]
    names = adapter_names(family)
    mapped = {vllm_module(n, prefixes) for n in names}
    assert mapped == {VLLM_W_OUT.format(l) for l in LAYERS}
    assert all(m.startswith(VLLM_LANGUAGE_MODEL) for m in mapped)
    # what a text-model adapter carries (the text model's paths) is brought onto no module
    # of the class: vLLM would load it and change nothing
    text = {vllm_module(n.replace("model.language_model.", "model."), prefixes) for n in names}
    assert not text & {VLLM_W_OUT.format(l) for l in LAYERS}


@pytest.mark.parametrize("family", sorted(VLLM_MAPPERS))
def test_llama_cpps_converter_maps_the_names_to_ffn_down(family):
    tensor_map = gguf.get_tensor_name_map(LLAMA_CPP_ARCH[family], 4)
    names = adapter_names(family)
    got = {tensor_map.get_name(llama_cpp_name(n), try_suffixes=(".weight",)) for n in names}
    assert got == {f"blk.{l}.ffn_down.weight" for l in LAYERS}
    # unstripped, the name maps to nothing (the converter's "Can not map tensor")
    raw = names[0].replace(PREFIX, "").replace(".lora_A.weight", ".weight")
    assert tensor_map.get_name(raw, try_suffixes=(".weight",)) is None
