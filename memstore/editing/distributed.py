"""Spreading the embarrassingly parallel work over processes with torch.distributed.

Statistics (batches of text) and z-vectors (chunks of requests) split into fixed units —
groups of batches, chunks of `z_chunk` requests — that do not depend on the number of
processes: unit i is computed by rank i mod world size, then every rank receives every unit
from its owner in unit order (a broadcast per unit) and combines them in that order. A
single process computes and combines the same units in the same order, so the result is
the same bits whatever the number of processes (on the same device type, with the same
number of threads per process).

Launched by torchrun (`torchrun --nproc-per-node 2 -m cli.main commit FACTS`): the
process group comes from its environment, gloo on CPUs, NCCL on GPUs. Without torchrun,
everything runs in the one process."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist

from ..errors import ValidationError


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"environment variable {name}={value!r} is not a whole number "
                              "(torchrun sets it)") from None


def init_from_env() -> bool:
    """Joins the process group torchrun describes (WORLD_SIZE > 1); False when alone."""
    if _env_int("WORLD_SIZE", 1) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and \
            os.environ.get("MEMSTORE_DIST_BACKEND", "") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    return True


def _wire_device() -> torch.device:
    """Where broadcast tensors must be: the GPU for NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def owned(n_units: int) -> list[int]:
    """The units this process computes."""
    rank, size = world()
    return [i for i in range(n_units) if i % size == rank]


def smallest(value: int) -> int:
    """The smallest of `value` over the processes (itself when alone): what they all agree
    on where each chose from its own free memory (statistics.collect's block size)."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_wire_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def in_order(n_units: int, compute: Callable[[int], list[torch.Tensor]],
             shapes: Callable[[int], list[tuple[tuple[int, ...], torch.dtype]]]
             ) -> Iterator[list[torch.Tensor]]:
    """Every unit's tensors, in unit order, on every process. Units go in rounds of one per
    process: each computes its unit of the round (`compute(i)`, all at once), then each
    unit is broadcast from its owner (rank i mod size), in order. `shapes(i)` gives the
    shape and dtype of unit i's tensors, which the others allocate to receive them. At most
    one unit per process is held at a time."""
    rank, size = world()
    if size == 1:
        for i in range(n_units):
            yield compute(i)
        return
    wire = _wire_device()
    for start in range(0, n_units, size):
        mine = start + rank
        computed = compute(mine) if mine < n_units else None
        for i in range(start, min(start + size, n_units)):
            src = i % size
            if src == rank:
                assert computed is not None
                tensors = [t.to(wire).contiguous() for t in computed]
            else:
                tensors = [torch.empty(shape, dtype=dtype, device=wire)
                           for shape, dtype in shapes(i)]
            for t in tensors:
                dist.broadcast(t, src=src)
            yield [t.cpu() for t in tensors]
