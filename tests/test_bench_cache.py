"""The benchmarks' tensor cache (benchmarks/common.py, `cached`) uses a file only while its
bytes match the hash in its name, and never through a symlink."""
import hashlib
import importlib.util
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

COMMON = Path(__file__).resolve().parents[1] / "benchmarks" / "common.py"


@pytest.fixture
def common(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("bench_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def counting(value: torch.Tensor):
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"zs": value.clone()}
    return compute, calls


def only_file(tmp_path) -> Path:
    files = list((tmp_path / "cache" / "bench-zs").glob("*.safetensors"))
    assert len(files) == 1
    return files[0]


def test_a_cached_file_is_read_back_not_computed_again(common, tmp_path):
    compute, calls = counting(torch.arange(6.0).reshape(2, 3))
    first = common.cached("zs", "key", compute)["zs"]
    again = common.cached("zs", "key", compute)["zs"]
    assert len(calls) == 1
    assert torch.equal(first, again)
    path = only_file(tmp_path)
    assert path.name.endswith(hashlib.sha256(path.read_bytes()).hexdigest() + ".safetensors")
    common.cached("zs", "another key", compute)
    assert len(calls) == 2


def test_a_file_whose_bytes_changed_is_refused_and_computed_again(common, tmp_path, capsys):
    value = torch.arange(6.0).reshape(2, 3)
    compute, calls = counting(value)
    common.cached("zs", "key", compute)
    path = only_file(tmp_path)
    path.write_bytes(save({"zs": value + 1}))  # well-formed, but not what its name records
    got = common.cached("zs", "key", compute)["zs"]
    assert len(calls) == 2
    assert torch.equal(got, value)
    assert "recorded hash" in capsys.readouterr().err


def test_a_symlink_is_not_followed(common, tmp_path, capsys):
    value = torch.ones(2)
    compute, calls = counting(value)
    common.cached("zs", "key", compute)
    path = only_file(tmp_path)
    outside = tmp_path / "outside.safetensors"
    os.replace(path, outside)
    path.symlink_to(outside)  # same name, same bytes, but a link out of the cache
    common.cached("zs", "key", compute)
    assert len(calls) == 2
    assert "refused" in capsys.readouterr().err
    assert outside.read_bytes() == save({"zs": value}) and not path.is_symlink()
