"""--max-rank: the error printed per layer is that of a dense SVD of ΔW computed here, the
adapter holds the best rank-K approximation, and the efficacy recorded is that of the
truncated model (measured here through peft); above vLLM's rank limit a warning."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from cli_support import copy_repo, history_template, ok
from peft import PeftModel
from safetensors.torch import load_file

from memstore.eval.scoring import target_nll
from memstore.store.repository import Repository


def dense_delta(repo_dir, rev: str) -> dict[int, np.ndarray]:
    """Σ U Vᵀ over the chain of `rev`, per layer, in float64, from the stored factors."""
    out: dict[int, np.ndarray] = {}
    with Repository.open(repo_dir) as repo:
        for ref in repo.chain_sets(repo.resolve(rev)):
            for layer, u in repo.updates_of(ref.commit, ref.index).items():
                d = u.U.double().numpy() @ u.V.double().numpy().T
                out[layer] = out.get(layer, 0) + d
        facts = [f.request for f in repo.facts_at(repo.resolve(rev))]
    return out, facts


def test_max_rank(base, tmp_path):
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    out = tmp_path / "rank2"
    r = ok("export", "HEAD", out, "--format", "peft", "--max-rank", "2", cwd=repo)
    m = json.loads((out / "memstore-manifest.json").read_text())
    deltas, facts = dense_delta(repo, "HEAD")
    tensors = load_file(out / "adapter_model.safetensors")
    for layer, W in deltas.items():
        s = np.linalg.svd(W, compute_uv=False)
        expected = np.sqrt((s[2:] ** 2).sum() / (s ** 2).sum())
        row = m["layers"][str(layer)]
        assert row["rank"] == 2 and row["numerical_rank"] == 5
        assert abs(row["error"] - expected) < 1e-6
        assert f"layer {layer} (model.layers.{layer}.mlp.down_proj): rank 5 → 2, relative " \
               f"Frobenius error {expected:.4g}" in r.stdout
        u, sv, vt = np.linalg.svd(W)
        best = (u[:, :2] * sv[:2]) @ vt[:2]
        name = f"base_model.model.model.layers.{layer}.mlp.down_proj"
        BA = tensors[f"{name}.lora_B.weight"].double().numpy() @ \
            tensors[f"{name}.lora_A.weight"].double().numpy()
        assert np.abs(BA - best).max() < 1e-5 * np.abs(W).max()
    # the efficacy recorded is the truncated model's: P(new) through peft on the base model
    t = m["truncation"]
    model = transformers.AutoModelForCausalLM.from_pretrained(base / "tiny-llama").eval()
    tok = transformers.AutoTokenizer.from_pretrained(base / "tiny-llama")
    peft_model = PeftModel.from_pretrained(model, out).eval().get_base_model()
    with torch.no_grad():
        nll = target_nll(peft_model, tok, [f.text for f in facts], [f.target_new for f in facts])
    assert t["n_facts"] == len(facts) == 5
    assert abs(t["truncated"]["p_new"] - float(torch.exp(-nll.double()).mean())) < 1e-5
    assert t["truncated"]["p_new"] != pytest.approx(t["exact"]["p_new"], abs=1e-6)
    assert "ES" in r.stdout and "truncated" in r.stdout
    card = (out / "README.md").read_text()
    assert "Rank 2 (lora_alpha = r: scale 1), truncated (`--max-rank`)." in card
    assert f"| {layer} | model.layers.{layer}.mlp.down_proj | 5 | 2 | {expected:.4g} |" in card
    assert "OK: 4 tensors identical" in ok("verify", out, cwd=repo).stdout
    # a max rank at or above the rank loses nothing and measures nothing
    ok("export", "HEAD", tmp_path / "rank9", "--format", "peft", "--max-rank", "9", cwd=repo)
    m9 = json.loads((tmp_path / "rank9" / "memstore-manifest.json").read_text())
    assert m9["rank"] == 5 and m9["truncation"] is None
    assert all(row["error"] == 0 for row in m9["layers"].values())


def test_a_rank_above_vllms_limit_warns(base, tmp_path, monkeypatch):
    import memstore.serving.peft as peft_files

    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    r = ok("export", "HEAD", tmp_path / "a", "--format", "peft", cwd=repo)
    assert "warning" not in r.stderr
    # the --max-lora-rank vLLM needs (its default, 16, refuses a higher rank)
    assert "vLLM: --enable-lora --max-lora-rank 8 (or more" in r.stdout
    card = (tmp_path / "a" / "README.md").read_text()
    assert "## Serving" in card and "--enable-lora --max-lora-rank 8 --lora-modules" in card
    monkeypatch.setattr(peft_files, "VLLM_MAX_RANK", 4)  # the tiny model's rank is 5
    r = ok("export", "HEAD", tmp_path / "b", "--format", "peft", cwd=repo)
    assert "warning: rank 5 is above 4, the largest --max-lora-rank vLLM accepts" in r.stderr
    r = ok("export", "HEAD", tmp_path / "c", "--format", "peft", "--max-rank", "4", cwd=repo)
    assert "warning" not in r.stderr
