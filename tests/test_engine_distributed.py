"""Statistics and z-vectors spread over two processes (torch.distributed, gloo on the CPU)
give the same bits as one process: the work is split into fixed units (groups of batches,
chunks of requests) combined in unit order whatever the number of processes."""
from __future__ import annotations

import os
import time

import children
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for
from safetensors.torch import load_file, save_file

from memstore.editing.statistics import collect, token_chunks, wikipedia_paragraphs
from memstore.editing.zs import compute_zs


def work() -> dict[str, torch.Tensor]:
    """Statistics of two layers over 24 batches, and the z-vectors of 4 requests in 2
    chunks, on the tiny Llama model: what each process (or the one process) computes."""
    torch.set_num_threads(1)
    model, tok, ad = build("llama")
    s = settings_for(model, z_chunk=2, z_steps=4)
    chunks = token_chunks(tok, wikipedia_paragraphs(), 3000, 32)
    sums, count = collect(model, ad, chunks, (1, 2), tok.pad_token_id, batch_tokens=128)
    # a layer per pass over the sample: the processes agree on the smallest block, where
    # each chose its own from the memory it has free (rank 1 here asks for both at once)
    from memstore.editing.distributed import world

    blocked, _ = collect(model, ad, chunks, (1, 2), tok.pad_token_id, batch_tokens=128,
                         block=1 + world()[0])
    zs, info = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False)
    return {"stats.1": sums[1], "stats.2": sums[2], "count": torch.tensor([count]), "zs": zs,
            "blocked.1": blocked[1], "blocked.2": blocked[2],
            "steps": torch.tensor(info["z_steps"]), "loss": torch.tensor(info["z_loss"])}


def _rank(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        save_file(work(), os.path.join(out, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2])
def test_two_processes_give_the_bits_of_one(tmp_path, world):
    alone = work()
    ranks = mp.spawn(_rank, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world,
                     join=False)  # (join=True waits for ever on a rank that hangs)
    with children.ended(*ranks.processes):  # a rank that fails or hangs leaves none running
        deadline = time.monotonic() + children.TIMEOUT
        # ProcessContext.join raises a rank's error, and is False while one still runs
        while not ranks.join(timeout=max(0.0, deadline - time.monotonic())):
            assert time.monotonic() < deadline, "ranks still running (hung): killed"
    for rank in range(world):
        got = load_file(tmp_path / f"rank{rank}.safetensors")
        assert sorted(got) == sorted(alone)
        for name, t in alone.items():
            assert t.dtype == got[name].dtype and torch.equal(t, got[name]), (rank, name)
    assert int(alone["count"]) == 3000
    assert torch.equal(alone["blocked.1"], alone["stats.1"])
    assert torch.equal(alone["blocked.2"], alone["stats.2"])


@pytest.mark.parametrize("name,value", [("WORLD_SIZE", "two"), ("WORLD_SIZE", "1.5")])
def test_a_world_size_that_is_no_number_is_named(name, value, monkeypatch):
    from memstore.editing.distributed import init_from_env
    from memstore.errors import ValidationError

    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=f"{name}='{value}' is not a whole number"):
        init_from_env()
    monkeypatch.setenv(name, "")  # unset-like: alone
    assert init_from_env() is False
