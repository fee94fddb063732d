"""Statistics collected in blocks of consecutive edited layers, one pass over the sample per
block, are the same bits as all layers in one pass, whatever the block; the block is the
most layers whose sums fit the free memory, chosen where a commit computes them; and the
memory estimate counts one block, refusing only where not even one layer fits."""
from __future__ import annotations

import weakref

import pytest
import torch
from cli_support import SETTINGS, model_dir, ok
from engine_fixtures import build
from torch.overrides import TorchFunctionMode

from memstore.editing import default_settings, memory, statistics
from memstore.editing.statistics import compute_statistics, describe_source, sample_id

LAYERS = (0, 1, 2, 3)  # of a 5-layer tiny Llama: four edited layers


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return build("llama", layers=5)


def test_every_block_size_gives_the_bits_of_one_pass(tiny, monkeypatch):
    """Batches of 128 tokens (24 of them, in the 8 groups) of 3000, each layer's sums
    collected with the other layers, with some, or alone: the same bits."""
    model, tok, ad = tiny
    chunks = statistics.token_chunks(tok, statistics.wikipedia_paragraphs(), 3000, 32)
    stops: list[int] = []
    run_until = statistics.run_until

    def spy(model_, adapter, stop, *args, **kwargs):
        stops.append(stop)
        return run_until(model_, adapter, stop, *args, **kwargs)

    monkeypatch.setattr(statistics, "run_until", spy)
    got, passes = {}, {}
    for block in (None, 1, 2, 3, len(LAYERS)):
        stops.clear()
        got[block] = statistics.collect(model, ad, chunks, LAYERS, tok.pad_token_id,
                                        batch_tokens=128, block=block)
        passes[block] = list(stops)
    one, count = got[None]
    n_batches = len(passes[None])
    assert n_batches == 24 and set(passes[None]) == {max(LAYERS)} and count == 3000
    for block, (sums, n) in got.items():
        assert n == count and sorted(sums) == list(LAYERS)
        for l in LAYERS:
            assert sums[l].dtype == torch.float64
            assert torch.equal(sums[l], one[l]), (block, l)
    # each block's pass stops after the block's last layer: one more pass per block
    assert passes[1] == [l for l in LAYERS for _ in range(n_batches)]
    assert passes[2] == [1] * n_batches + [3] * n_batches
    assert passes[3] == [2] * n_batches + [3] * n_batches
    assert passes[len(LAYERS)] == passes[None]


def test_the_statistics_say_the_same_sample_whatever_the_block(tiny):
    model, tok, ad = tiny
    got = {block: compute_statistics(model, tok, ad, LAYERS, "wikipedia", 600, 0, 32,
                                     block=block) for block in (None, 1, 2)}
    one = got[None]
    for block, stats in got.items():
        assert sorted(stats) == list(LAYERS)
        for l in LAYERS:
            assert torch.equal(stats[l].mom2, one[l].mom2), (block, l)
            assert stats[l].n_tokens == one[l].n_tokens == 600
            # its description and id do not say how it was collected
            assert stats[l].description == one[l].description == \
                describe_source("wikipedia", 600, 0, 32)
            assert stats[l].id == one[l].id == sample_id(one[l].description)


def test_a_block_holds_its_own_group_sums_beside_the_totals(tiny, monkeypatch):
    """All at once, every layer's group sum sits beside every layer's total (2 × 4 float64
    d_in × d_in); a layer at a time, one group sum beside the totals (4 + 1). Counted as each
    group's sums are made: the float64 d_in × d_in tensors that torch calls returned during
    the computation and that are still alive (a scan of every object in the process,
    gc.get_objects, took seconds per group late in a suite's worker)."""
    model, tok, ad = tiny
    d_in = ad.proj_dims(model, 0)[1]
    held = []
    group_sums = statistics._group_sums

    class Squares(TorchFunctionMode):
        """Every float64 d_in × d_in tensor a torch call returns while it is on, weakly."""

        def __init__(self):
            super().__init__()
            self.made: dict[int, weakref.ref] = {}

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if type(out) is torch.Tensor and out.dtype == torch.float64 \
                    and out.shape == (d_in, d_in):
                self.made[id(out)] = weakref.ref(out)  # (an id reused: the old one is dead)
            return out

        def alive(self) -> int:
            return sum(1 for r in self.made.values() if r() is not None)

    def spy(*args):
        out = group_sums(*args)
        held.append(squares.alive())
        return out

    monkeypatch.setattr(statistics, "_group_sums", spy)
    for block, most in ((None, 2 * len(LAYERS)), (1, len(LAYERS) + 1)):
        held.clear()
        with Squares() as squares:
            compute_statistics(model, tok, ad, LAYERS, "wikipedia", 300, 0, 32, block=block)
        assert max(held) == most, block


def _free(cpu: int):
    return lambda device: cpu if device.type == "cpu" else None


def test_the_block_is_the_most_layers_that_fit_the_free_memory(tiny):
    model, _, ad = tiny
    d_in = ad.proj_dims(model, 0)[1]
    square = d_in * d_in * 8
    batch = d_in * d_in * 4 + memory.STATS_BATCH_TOKENS * d_in * 4 * 2
    totals = len(LAYERS) * square

    def block(free: int) -> int:
        return memory.statistics_block(model, ad, LAYERS, _free(free))

    assert memory.statistics_block(model, ad, LAYERS, lambda d: None) == len(LAYERS)
    assert block(10 * (totals + batch)) == len(LAYERS)  # all at once where they fit: as always
    assert block(totals + len(LAYERS) * square + batch) == len(LAYERS)
    assert block(totals + len(LAYERS) * square + batch - 1) == 3
    assert block(totals + 2 * square + batch) == 2
    assert block(totals + 3 * square + batch - 1) == 2  # deterministic: the same free, the same
    assert block(totals + square + batch) == 1
    assert block(totals + square + batch - 1) == 0  # not even one layer fits


def test_the_estimate_counts_one_block_and_refuses_only_when_one_layer_does_not_fit(
        tiny, monkeypatch):
    model, _, ad = tiny
    d_in = ad.proj_dims(model, 0)[1]
    square = d_in * d_in * 8
    batch = d_in * d_in * 4 + memory.STATS_BATCH_TOKENS * d_in * 4 * 2
    s = default_settings(model, layers=LAYERS)
    held = memory.estimate(model, ad, s, 1)  # what is held while the statistics are computed
    rest = sum(v for k, v in held.terms.items() if k not in held.phases)

    def terms(free: int | None):
        monkeypatch.setattr(memory, "available", lambda device: free)
        return memory.estimate(model, ad, s, 1, statistics_needed=True)

    for free, block in ((None, 4), (10 * rest + 10 * square + batch, 4),
                        (rest + 2 * square + batch, 2), (rest + square + batch, 1)):
        e = terms(free)
        assert e.terms["statistics being computed"] == block * square + batch, free
        assert e.fits()
    refused = terms(rest + square + batch - 1)
    assert refused.terms["statistics being computed"] == square + batch
    assert not refused.fits()


def test_on_an_accelerator_the_statistics_are_counted_against_the_cpu(tiny, monkeypatch):
    """The statistics (E[kkᵀ] of every edited layer, float64) are held by the CPU and moved
    to the device a layer at a time for its solve: they were counted against the GPU's free
    memory, so a 70B model's 15 layers (92 GiB) refused every commit on an 80 GB GPU."""
    model, _, ad = tiny
    d_in = ad.proj_dims(model, 0)[1]
    square = d_in * d_in * 8
    s = default_settings(model, layers=LAYERS)
    gpu = torch.device("cuda", 0)
    d_out = ad.proj_dims(model, 0)[0]
    # the CPU holds the statistics, and forms each ΔW (float64, then float32) from the
    # factors it keeps: 12 bytes an entry, while the statistics are held
    host = len(LAYERS) * square + 12 * d_out * d_in
    free = {"cuda": None, "cpu": host}
    monkeypatch.setattr(memory, "available", lambda device: free[device.type])
    e = memory.estimate(model, ad, s, 1, device=gpu)
    assert e.host == {"statistics E[kkᵀ]": len(LAYERS) * square, "ΔW formed": 12 * d_out * d_in}
    assert "statistics E[kkᵀ]" not in e.terms and e.fits()
    free["cuda"] = e.total
    e = memory.estimate(model, ad, s, 1, device=gpu)
    assert e.fits()
    assert e.line().count(" GiB available on ") == 2 and ", and " in e.line()
    free["cuda"] -= 1  # the GPU cannot hold its share: refused
    assert not memory.estimate(model, ad, s, 1, device=gpu).fits()
    free["cuda"] += 1
    free["cpu"] -= 1  # the CPU cannot hold them: refused
    assert not memory.estimate(model, ad, s, 1, device=gpu).fits()
    free["cpu"] += 1
    # computing them: a block's group sums on the device, their copies beside the totals
    e = memory.estimate(model, ad, s, 1, statistics_needed=True, device=gpu)
    copied = e.host["statistics' group sums copied"]
    assert copied == e.terms["statistics being computed"] - (
        d_in * d_in * 4 + memory.STATS_BATCH_TOKENS * d_in * 4 * 2) and copied >= square


def test_a_commit_computes_in_blocks_what_does_not_fit_at_once(base, tmp_path, monkeypatch):
    """`memstore stats` (the path of every commit) with room for one layer's sums beside
    the totals takes a layer per pass, says so, and stores the bits of one pass."""
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", "off")
    from memstore.store.repository import Repository

    def matrices(repo):
        with Repository.open(repo) as r:
            return {(s.id, s.layer): r.get_statistics(s.id, s.layer).mom2
                    for s in r.statistics()}

    repos = {}
    for name in ("wide", "narrow"):
        repos[name] = tmp_path / name
        ok("init", repos[name], "--base", model_dir(base))
        for key, value in SETTINGS.items():
            ok("config", key, value, cwd=repos[name])
    r = ok("stats", cwd=repos["wide"])
    assert "computing the statistics" in r.stderr and "do not fit at once" not in r.stderr
    blocks = []
    compute = statistics.compute_statistics

    def spy(*args, **kwargs):
        blocks.append(kwargs.get("block"))
        return compute(*args, **kwargs)

    monkeypatch.setattr("memstore.store.states.compute_statistics", spy)
    wide = matrices(repos["wide"])
    d_in = next(iter(wide.values())).shape[0]
    square = d_in * d_in * 8
    room = 2 * square + square + d_in * d_in * 4 + memory.STATS_BATCH_TOKENS * d_in * 4 * 2
    monkeypatch.setattr(memory, "available", _free(room))
    r = ok("stats", cwd=repos["narrow"])
    assert blocks == [1]
    assert "the statistics of 2 layers do not fit at once: 1 layer(s) per pass" in r.stderr
    narrow = matrices(repos["narrow"])
    assert narrow.keys() == wide.keys() and len(wide) == 2
    for k in wide:
        assert torch.equal(narrow[k], wide[k])


def test_a_group_with_batches_makes_no_zero_matrix(tiny, monkeypatch):
    """Each group's sums were taken with `sums.pop(l, torch.zeros(d_in, d_in))`, whose
    default is made (and filled) whether or not the layer has a sum: one more float64
    d_in × d_in per group and layer, which raised the statistics phase's measured peak from
    6.6 to 7.6 squares (two layers of d_in 2,048). Zeros are made only for a group with no
    batch."""
    model, tok, ad = tiny
    d_in = ad.proj_dims(model, 0)[1]
    chunks = statistics.token_chunks(tok, statistics.wikipedia_paragraphs(), 3000, 32)
    made = []
    zeros = torch.zeros

    def spy(*args, **kwargs):
        out = zeros(*args, **kwargs)
        if out.shape == (d_in, d_in) and out.dtype == torch.float64:
            made.append(out.shape)
        return out

    monkeypatch.setattr(torch, "zeros", spy)
    # 24 batches of 128 tokens: every one of the 8 groups has some
    statistics.collect(model, ad, chunks, LAYERS, tok.pad_token_id, batch_tokens=128)
    assert made == []
    # batches of 4,096 tokens, fewer than the groups: the groups with none sum to zeros
    n_batches = len(statistics.plan_batches(chunks, 4096))
    assert n_batches < statistics.GROUPS
    statistics.collect(model, ad, chunks, LAYERS, tok.pad_token_id, batch_tokens=4096)
    assert len(made) == (statistics.GROUPS - n_batches) * len(LAYERS)
