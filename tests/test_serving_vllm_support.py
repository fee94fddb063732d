"""Whether vLLM serves a LoRA adapter on each model type memstore edits, pinned against a
table read from vLLM's source (the card and `export --json` tell the user to run
`vllm serve --enable-lora` unless the family is in VLLM_NO_LORA).

Read (the repository is too large to fetch whole, so files of vllm-project/vllm at the
commits the search index holds):
- docs/models/supported_models.md @ 0046f770d322e202c2000e325a0c8cc1fcb2fc76: the LoRA column
  of every architecture below, natively served or "officially supported via the Transformers
  modeling backend" (OlmoForCausalLM, Olmo2ForCausalLM, SmolLM3ForCausalLM,
  Starcoder2ForCausalLM, VaultGemmaForCausalLM);
- vllm/model_executor/models/registry.py @ 0002bff0b6cb36a3c8a17364de3303664463c412: the
  HF architecture -> module/class table (HeliumForCausalLM, MinistralForCausalLM and
  Ministral3ForCausalLM are not in it: vLLM serves them by its Transformers modeling
  backend, transformers 5.25's classes setting _supports_attention_backend);
- vllm/model_executor/models/transformers/base.py @ 03bf3c92aa91e8deae70d691cce72c19e3be11e4:
  the backend's Base implements SupportsLoRA and swaps every nn.Linear (down_proj, c_proj)
  for one of vLLM's linear layers, which LoRA wraps;
- vllm/model_executor/models/qwen3_5.py @ 00def4f8421153e037ff6270c0a8c31912a00206:
  Qwen3_5ForCausalLMBase (Qwen3_5ForCausalLM, inside Qwen3_5ForConditionalGeneration)
  implements SupportsLoRA;
- falcon.py @ 00620f91ea186ca295a1eb69f4acba9d0efaaaaa, stablelm.py @
  0531c2226a6a25cd96ccc856f3bda3f0bb4efb5f: FalconForCausalLM and StablelmForCausalLM are
  (nn.Module, SupportsPP) only; the docs' LoRA column is empty for GPT2LMHeadModel,
  GPTJForCausalLM, GPTNeoXForCausalLM, FalconForCausalLM, StableLmForCausalLM;
- vllm-project/vllm#30966 (merged 2025-12-18) moved Starcoder2ForCausalLM to the
  Transformers modeling backend, adding LoRA (its native class, starcoder2.py @
  03f03ff691c10253219141fe592d630c03662153, was SupportsPP only); #48100 and #53615 moved
  OLMo, OLMo 2, OLMo 3 and Hunyuan V1 there too, keeping LoRA.
The edited module of every family is a linear layer (down_proj, c_proj, fc2, fc_out,
dense_4h_to_h), which vLLM's LoRA wraps wherever the class supports LoRA."""
from __future__ import annotations

from memstore.models.adapters import ADAPTERS, find_adapter, supported
from memstore.serving.peft import VLLM_LORA_SINCE, VLLM_NO_LORA

BACKEND = "TransformersForCausalLM"  # vLLM's Transformers modeling backend
# model type -> (the HF architecture, the vLLM class serving it, LoRA served)
VLLM = {
    "gpt2": ("GPT2LMHeadModel", "GPT2LMHeadModel", False),
    "gptj": ("GPTJForCausalLM", "GPTJForCausalLM", False),
    "gpt_neox": ("GPTNeoXForCausalLM", "GPTNeoXForCausalLM", False),
    "falcon": ("FalconForCausalLM", "FalconForCausalLM", False),
    "stablelm": ("StableLmForCausalLM", "StablelmForCausalLM", False),
    "starcoder2": ("Starcoder2ForCausalLM", BACKEND, True),
    "llama": ("LlamaForCausalLM", "LlamaForCausalLM", True),
    "mistral": ("MistralForCausalLM", "LlamaForCausalLM", True),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2ForCausalLM", True),
    "qwen3": ("Qwen3ForCausalLM", "Qwen3ForCausalLM", True),
    "ministral": ("MinistralForCausalLM", BACKEND, True),
    "ministral3": ("Ministral3ForCausalLM", BACKEND, True),
    "mistral3": ("Mistral3ForConditionalGeneration", "Mistral3ForConditionalGeneration", True),
    "seed_oss": ("SeedOssForCausalLM", "SeedOssForCausalLM", True),
    "hunyuan_v1_dense": ("HunYuanDenseV1ForCausalLM", "HunYuanDenseV1ForCausalLM", True),
    "helium": ("HeliumForCausalLM", BACKEND, True),
    "ernie4_5": ("Ernie4_5ForCausalLM", "Ernie4_5ForCausalLM", True),  # a LlamaForCausalLM
    "arcee": ("ArceeForCausalLM", "ArceeForCausalLM", True),
    "apertus": ("ApertusForCausalLM", "ApertusForCausalLM", True),
    "nemotron": ("NemotronForCausalLM", "NemotronForCausalLM", True),
    "olmo": ("OlmoForCausalLM", BACKEND, True),
    "olmo2": ("Olmo2ForCausalLM", BACKEND, True),
    "olmo3": ("Olmo3ForCausalLM", "Olmo2ForCausalLM", True),
    "phi": ("PhiForCausalLM", "PhiForCausalLM", True),
    "phi3": ("Phi3ForCausalLM", "Phi3ForCausalLM", True),
    "smollm3": ("SmolLM3ForCausalLM", BACKEND, True),
    "granite": ("GraniteForCausalLM", "GraniteForCausalLM", True),
    "cohere": ("CohereForCausalLM", "CohereForCausalLM", True),
    "cohere2": ("Cohere2ForCausalLM", "CohereForCausalLM", True),
    "gemma": ("GemmaForCausalLM", "GemmaForCausalLM", True),
    "vaultgemma": ("VaultGemmaForCausalLM", BACKEND, True),
    "gemma2": ("Gemma2ForCausalLM", "Gemma2ForCausalLM", True),
    "gemma3_text": ("Gemma3ForCausalLM", "Gemma3ForCausalLM", True),
    "gemma3": ("Gemma3ForConditionalGeneration", "Gemma3ForConditionalGeneration", True),
    "exaone4": ("Exaone4ForCausalLM", "Exaone4ForCausalLM", True),
    "glm4": ("Glm4ForCausalLM", "Glm4ForCausalLM", True),
    "qwen3_5": ("Qwen3_5ForConditionalGeneration", "Qwen3_5ForConditionalGeneration", True),
    "qwen3_5_text": ("Qwen3_5ForCausalLM", "Qwen3_5ForCausalLM", True),
}


def test_every_edited_model_type_was_read_in_vllm():
    """A model type memstore edits whose vLLM support nobody read fails here: read it and
    add its row."""
    assert sorted(set(supported()) - set(VLLM)) == []


def test_the_families_without_lora_are_vllms():
    """VLLM_NO_LORA names families; each holds model types vLLM serves alike (a family
    of types served apart would need a per-type list)."""
    lora = {}
    for model_type, (_, _, served) in VLLM.items():
        adapter = find_adapter(model_type)
        if adapter is not None and adapter.not_editable is None:
            lora.setdefault(adapter.name, set()).add(served)
    assert all(len(s) == 1 for s in lora.values()), lora
    assert sorted(VLLM_NO_LORA) == sorted(f for f, s in lora.items() if s == {False})
    assert set(VLLM_NO_LORA) <= {a.name for a in ADAPTERS}
    # the families served with LoRA only since a move to the Transformers backend
    assert all(lora[f] == {True} and VLLM[f][1] == BACKEND for f in VLLM_LORA_SINCE)
