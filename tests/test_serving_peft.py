"""PEFT LoRA exports: loaded with `peft` on the base model, they compute what the full export
computes, for every family (GPT-2's Conv1D included), for a chain of commits, a revert, and
the difference between two revisions (--since)."""
from __future__ import annotations

import json

import pytest
import torch
import transformers
from cli_support import last_line, ok
from engine_fixtures import FAMILIES, REQUESTS, settings_for
from peft import PeftModel
from safetensors.torch import load_file
from test_store_support import fake_requests, fake_result
from tiny import tiny_config, tiny_tokenizer

from memstore.models.adapters import get_adapter
from memstore.store import porcelain
from memstore.store.commits import DenseLayerUpdate
from memstore.store.exports import export_as
from memstore.store.peft_export import build_adapter
from memstore.store.repository import Repository


def load(path) -> transformers.PreTrainedModel:
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def inputs(family_dir) -> dict:
    tok = transformers.AutoTokenizer.from_pretrained(family_dir)
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok([r.text for r in REQUESTS] + ["The capital of France is Paris."],
               return_tensors="pt", padding=True)


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def same_as_full(base_dir, adapter_dir, full_dir, batch) -> None:
    """The adapter on the base gives the full export's logits (1e-5), and merged, its
    weights (1e-6)."""
    full = load(full_dir)
    peft_model = PeftModel.from_pretrained(load(base_dir), adapter_dir).eval()
    assert (logits(peft_model, batch) - logits(full, batch)).abs().max() < 1e-5
    merged = peft_model.merge_and_unload().state_dict()
    expected = full.state_dict()
    assert set(merged) == set(expected)
    for name, w in merged.items():
        assert (w - expected[name]).abs().max() <= 1e-6, name


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family(family, tmp_path):
    tok = tiny_tokenizer()
    cfg = tiny_config(family, tok.backend_tokenizer.get_vocab_size(), layers=4)
    for key in ("n_positions", "max_position_embeddings"):  # room for the store's statistics
        if hasattr(cfg, key):  # sampled in sequences of 128 tokens
            setattr(cfg, key, 256)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    adapter = get_adapter(model)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    repo = porcelain.init(tmp_path / "repo", str(model_dir))
    repo.set_settings(settings_for(model, z_steps=4))
    porcelain.commit(repo, REQUESTS[:2], "first")
    porcelain.commit(repo, REQUESTS[2:], "second")
    export_as(repo, None, tmp_path / "full")
    m = export_as(repo, None, tmp_path / "peft", format="peft")
    repo.close()
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    modules = [adapter.proj_weight_name(l).removesuffix(".weight") for l in (1, 2)]
    assert config["target_modules"] == modules
    assert config["lora_alpha"] == config["r"] == m["rank"] == 4  # 2 + 2 facts per layer
    assert config["fan_in_fan_out"] is (family == "gpt2")
    tensors = load_file(tmp_path / "peft" / "adapter_model.safetensors")
    assert sorted(tensors) == sorted(f"base_model.model.{mod}.lora_{ab}.weight"
                                     for mod in modules for ab in "AB")
    same_as_full(model_dir, tmp_path / "peft", tmp_path / "full", inputs(model_dir))


def test_a_chain_a_revert_and_since(history, base, tmp_path):
    repo, (c1, c2, c3) = history
    model_dir = base / "tiny-llama"
    batch = inputs(model_dir)
    revert = last_line(ok("revert", c2, cwd=repo))  # basis c1, c3's facts replayed
    for rev in (c3, revert, c1):
        ok("export", rev, tmp_path / f"full-{rev[:6]}", cwd=repo)
        ok("export", rev, tmp_path / f"peft-{rev[:6]}", "--format", "peft", cwd=repo)
        same_as_full(model_dir, tmp_path / f"peft-{rev[:6]}", tmp_path / f"full-{rev[:6]}", batch)
    # an adapter from c1 to c3 (an ancestor: c1's set cancels) and from c3 to the revert
    # (not an ancestor: c3's sets are taken away, the replay added), applied to the full
    # export of the state it starts from
    for since, rev in ((c1, c3), (c3, revert)):
        out = tmp_path / f"since-{since[:6]}-{rev[:6]}"
        ok("export", rev, out, "--format", "peft", "--since", since, cwd=repo)
        same_as_full(tmp_path / f"full-{since[:6]}", out, tmp_path / f"full-{rev[:6]}", batch)
        assert json.loads((out / "memstore-manifest.json").read_text())["since"] == since
        # it applies to that state: the card said to serve it on `memstore export base` and
        # base_model_name_or_path (what AutoPeftModel loads) named the base, which gives a
        # model without since's facts
        serving = (out / "README.md").read_text().split("## Serving")[1]
        assert f"`memstore export {since} BASE_DIR`" in serving
        assert "memstore export base" not in serving
        config = json.loads((out / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] is None
    assert "OK: 4 tensors identical" in ok("verify", out, cwd=repo).stdout
    card = (out / "README.md").read_text()
    assert f"the state of commit `{c3}`" in card  # the revert removes c2's fact
    assert "## Facts (0 written, 1 removed)" in card
    assert "| Michael Jordan | {} plays | soccer → (removed) |" in card


def test_dense_and_transposed_update_sets_are_exact():
    """Update sets stored dense (identity factors) beside factored ones, in Conv1D
    orientation: B A is the sum of the stored ΔWs, read from the objects by the test."""
    repo = Repository.memory(base_info={"model_type": "gpt2"})
    dense = fake_result(1, requests=fake_requests("d", 6), transposed=True)  # 6 facts: dense
    small = fake_result(2, n=2, transposed=True)
    c1 = repo.write_commit([dense], parents=[], basis=None, message="dense")
    c2 = repo.write_commit([small], parents=[c1.id], basis=c1.id, message="factors")
    assert {r.form for s in c1.update_sets for r in s.layers.values()} == {"dense"}
    assert isinstance(repo.updates_of(c1.id)[1], DenseLayerUpdate)
    built = build_adapter(repo, c2.id, None)
    for layer in (1, 2):
        expected = torch.zeros(12, 8, dtype=torch.float64)  # Conv1D: d_in x d_out
        for c in (c1, c2):
            t = repo.objects.get_tensors(c.update_sets[0].layers[layer].object)
            expected += t["delta"].double() if "delta" in t else (t["U"].double() @ t["V"].double().T).T
        name = f"base_model.model.transformer.h.{layer}.mlp.c_proj"
        B = built.adapter.tensors[f"{name}.lora_B.weight"].double()
        A = built.adapter.tensors[f"{name}.lora_A.weight"].double()
        assert B.shape == (8, built.adapter.rank) and A.shape == (built.adapter.rank, 12)
        assert ((B @ A).T - expected).abs().max() < 1e-5 * expected.abs().max()
    assert built.adapter.rank == 8  # min(d_out, 6 + 2 facts)
    assert built.adapter.config["fan_in_fan_out"] is True
    # held as stored (float32), not every layer's float64 factors at once
    assert {f.B.dtype for f in built.factors.values()} == {torch.float32}
    assert {f.A.dtype for f in built.factors.values()} == {torch.float32}


def test_an_adapter_does_not_name_a_hub_model_as_its_base():
    """PEFT's AutoPeftModel loads base_model_name_or_path as the base: it was the Hub's
    HuggingFaceTB/SmolLM2-135M-Instruct for smollm2-135m, whose weights are not memstore's
    base (the Q4_1 GGUF dequantized), so the adapter went on another model, silently."""
    repo = Repository.memory(base_spec="smollm2-135m", base_info={"model_type": "gpt2"})
    c = repo.write_commit([fake_result(1, n=2, transposed=True)], parents=[], basis=None,
                          message="m")
    assert build_adapter(repo, c.id, None).adapter.config["base_model_name_or_path"] \
        == "smollm2-135m"  # a memory repository has no path; one on disk names its file


def test_layers_changed_between_commits(history, base, tmp_path):
    """Commits editing different layers: the adapter targets their union, each module at its
    own rank zero-padded to one r."""
    repo, _ = history
    ok("config", "layers", "0,2", cwd=repo)
    facts = tmp_path / "d.jsonl"
    facts.write_text(json.dumps({"subject": "Honda Civic", "prompt": "{} is produced by",
                                 "target_new": "Apple", "target_true": "Honda"}) + "\n")
    ok("commit", facts, cwd=repo)
    ok("export", tmp_path / "full", cwd=repo)
    ok("export", tmp_path / "peft", "--format", "peft", cwd=repo)
    m = json.loads((tmp_path / "peft" / "memstore-manifest.json").read_text())
    assert {l: r["rank"] for l, r in m["layers"].items()} == {"0": 1, "1": 5, "2": 6}
    assert m["rank"] == 6
    tensors = load_file(tmp_path / "peft" / "adapter_model.safetensors")
    a0 = tensors["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"]
    assert a0.shape[0] == 6 and not a0[1:].any()  # rank 1, padded with zero rows
    same_as_full(base / "tiny-llama", tmp_path / "peft", tmp_path / "full",
                 inputs(base / "tiny-llama"))
