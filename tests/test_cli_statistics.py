"""The statistics E[k kᵀ] a solve uses are those of the repository's base, in the precision
it runs in: the shared cache keeps other models' and other dtypes' apart."""
from __future__ import annotations

from pathlib import Path

import torch
from cli_support import SETTINGS, model_dir, ok

from memstore.store.repository import Repository


def _repo(path: Path, model: Path) -> Path:
    ok("init", path, "--base", model)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=path)
    return path


def _matrices(path: Path) -> dict[tuple[str, int], torch.Tensor]:
    with Repository.open(path) as r:
        return {(s.id, s.layer): r.get_statistics(s.id, s.layer).mom2 for s in r.statistics()}


def test_the_shared_cache_gives_no_statistics_of_another_dtype_or_model(base, tmp_path,
                                                                        monkeypatch):
    """Statistics computed in bfloat16 (`stats --dtype bfloat16`) were taken from the shared
    cache by every later float32 repository of the base (1% off the float32 ones, which the
    same commands gave in a fresh cache), and another model's cache files renamed to this
    model's names were taken as its statistics: the cache files record both."""
    import transformers
    from tiny import tiny_config, tiny_tokenizer

    cache = tmp_path / "stats-cache"
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", str(cache))
    half = _repo(tmp_path / "half", model_dir(base))
    ok("stats", "--dtype", "bfloat16", cwd=half)
    full = _repo(tmp_path / "full", model_dir(base))
    r = ok("stats", cwd=full)
    assert "computing the statistics" in r.stderr  # none of float32 in the cache
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", "off")
    alone = _repo(tmp_path / "alone", model_dir(base))
    ok("stats", cwd=alone)
    got, want, bf16 = _matrices(full), _matrices(alone), _matrices(half)
    assert got.keys() == want.keys() == bf16.keys()
    for k in want:
        assert torch.equal(got[k], want[k]) and not torch.equal(bf16[k], want[k])
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", str(cache))
    # another model of the same shape, whose cache files are given this model's names
    other = tmp_path / "other-model"
    tok = tiny_tokenizer()
    torch.manual_seed(1)
    transformers.AutoModelForCausalLM.from_config(
        tiny_config("llama", tok.backend_tokenizer.get_vocab_size(), layers=4)).save_pretrained(other)
    tok.save_pretrained(other)
    second = _repo(tmp_path / "second", other)
    with Repository.open(second) as rr:
        prefix = rr.base.hash[:16]
    for p in cache.glob("*.safetensors"):
        p.unlink()
    ok("stats", cwd=_repo(tmp_path / "third", model_dir(base)))
    for p in cache.glob("*.safetensors"):
        p.rename(cache / (prefix + p.name[16:]))
    r = ok("stats", cwd=second)
    assert "computed on another base model" in r.stderr and "computing the statistics" in r.stderr
    for k, m in _matrices(second).items():
        assert not torch.equal(m, want[k])

