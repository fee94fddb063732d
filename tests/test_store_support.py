"""Fakes for the store tests: small EditResults built by hand from seeded random tensors
(no model), and a repository factory. Imported by the other test_store_* modules."""
from __future__ import annotations

import fast_fsync  # noqa: F401 (os.fsync without the wait for the disk, in forkservers too)
import torch

from memstore.editing.requests import Request
from memstore.editing.result import EditResult, LayerUpdate
from memstore.editing.settings import EditSettings
from memstore.store.repository import Repository

D_IN, D_OUT, D_MODEL = 12, 8, 8  # factors are smaller than ΔW while n < 96 / 20, i.e. n <= 4
BASE_HASH = "b" * 64


def fake_requests(tag: str, n: int, subjects: list[str] | None = None) -> list[Request]:
    subjects = subjects or [f"{tag}-subject-{i}" for i in range(n)]
    return [Request(subject=s, prompt="{} is located in", target_new=f"{tag}-city-{i}",
                    target_true="Paris", paraphrases=(f"Where is {s}? In",))
            for i, s in enumerate(subjects)]


def fake_result(seed: int, n: int = 3, layers: tuple[int, ...] = (1, 2),
                requests: list[Request] | None = None, transposed: bool = False,
                d_in: int = D_IN, d_out: int = D_OUT) -> EditResult:
    """A deterministic fake MEMIT result: the same seed gives the same tensors, bit for bit."""
    requests = requests if requests is not None else fake_requests(f"s{seed}", n)
    n = len(requests)
    g = torch.Generator().manual_seed(seed)
    updates = {l: LayerUpdate(l, torch.randn(d_out, n, generator=g),
                              torch.randn(d_in, n, generator=g),
                              torch.randn(n, d_in, generator=g), transposed)
               for l in layers}
    return EditResult(requests=requests, settings=EditSettings(layers=layers, mom2_weight=1e4),
                      templates=["{}", "The. {}"], zs=torch.randn(n, D_MODEL, generator=g),
                      updates=updates, info={"seed": seed})


def memory_repo() -> Repository:
    return Repository.memory("fake-model", BASE_HASH,
                             settings=EditSettings(layers=(1, 2), mom2_weight=1e4))


def commit_on_head(repo: Repository, result: EditResult | None = None, seed: int = 0,
                   message: str = "edit", **kw):
    """A normal commit: basis = parents[0] = HEAD."""
    head = repo.head().commit
    return repo.write_commit([result if result is not None else fake_result(seed)],
                             parents=[head] if head else [], basis=head, message=message, **kw)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def test_fake_results_are_deterministic():
    a, b, c = fake_result(1), fake_result(1), fake_result(2)
    assert same_bits(a.updates[1].U, b.updates[1].U) and same_bits(a.zs, b.zs)
    assert not torch.equal(a.updates[1].U, c.updates[1].U)
