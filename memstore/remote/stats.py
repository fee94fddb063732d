"""Statistics on a remote, moved only with `--with-stats`.

E[k kᵀ] per edited layer is derived data: a clone recomputes it on its own base model when
a commit or a replay first needs it (store.states), so by default it never moves (SmolLM2:
19 MB per layer, a hundred times a commit). `--with-stats` moves the statistics the
history's update sets name: the tensor as an object, then a small record under
`statistics/` (written once, never replaced). The running matrices Σ K Kᵀ never move:
they are rebuilt from the keys every commit already carries, faster than they download."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from ..errors import MemstoreError
from ..store.commits import Commit
from ..store.repository import Repository
from ..store.stats_records import layer_of, matrix_of
from .layout import (
    STATISTICS,
    RemoteFormatError,
    parse_statistics_record,
    statistics_path,
    statistics_record,
)
from .transfer import Moved, download, upload
from .transport import Transport

if TYPE_CHECKING:  # torch and the engine's Statistics: only where statistics are fetched
    from ..editing.statistics import Statistics


def named(commits: Iterable[Commit]) -> set[tuple[str, int]]:
    """(sample id, layer) of every statistics the commits' update sets were solved with."""
    return {(sid, layer) for c in commits for s in c.update_sets
            for layer, sid in s.stats.items()}


def push_statistics(repo: Repository, transport: Transport, commits: Iterable[Commit]) -> Moved:
    """Writes the statistics the commits name, that this repository has and the remote
    lacks: objects first, then their records."""
    there = transport.list(STATISTICS)
    records = [r for sid, layer in sorted(named(commits))
               if (r := repo.statistics_record(sid, layer)) is not None
               and statistics_path(sid, layer)[len(STATISTICS):] not in there]
    moved = upload(repo, transport, [r.object for r in records], desc="push statistics")
    for r in records:
        transport.create(statistics_path(r.id, r.layer),
                         statistics_record(r.id, r.layer, r.n_tokens, r.description, r.object))
    return moved


def fetch_statistics(repo: Repository, transport: Transport, commits: Iterable[Commit],
                     label: str, written: list[str]) -> tuple[Moved, list[Statistics]]:
    """The statistics the commits name that the remote has and this repository lacks, their
    tensor objects downloaded (each verified on arrival; the ids it wrote appended to
    `written`) and each record checked against its object; the caller stores them
    (`repo.put_statistics`) once the history they come with is in. A matrix with
    non-finite values or a negative diagonal is no E[k kᵀ]: stored, it would fail every
    later solve (or skew it), fsck saying nothing."""
    there = transport.list(STATISTICS)
    paths = [p for sid, layer in sorted(named(commits))
             if repo.statistics_record(sid, layer) is None
             and (p := statistics_path(sid, layer))[len(STATISTICS):] in there]
    records = [parse_statistics_record(data, f"{label}: {p}", p)
               for p, data in sorted(transport.read_many(paths).items())]
    moved = download(repo, transport, [r["object"] for r in records], label, written,
                     desc="fetch statistics")
    fetched: list[Statistics] = []
    if not records:
        return moved, fetched
    import torch

    from ..editing.statistics import Statistics

    for r in records:  # all checked before any is stored
        where = f"{label}: {statistics_path(r['id'], r['layer'])}"
        try:
            tensors = repo.objects.get_tensors(r["object"])
            mom2 = matrix_of(tensors)
        except (MemstoreError, SafetensorError) as e:
            raise RemoteFormatError(f"{where}: its object is not a statistics tensor "
                                    f"({e})") from e
        if mom2 is None:
            raise RemoteFormatError(f"{where}: its object is not a statistics tensor")
        if layer_of(tensors) not in (None, r["layer"]):
            raise RemoteFormatError(f"{where}: its object holds layer {layer_of(tensors)}'s "
                                    "statistics")
        if not torch.isfinite(mom2).all() or (mom2.diagonal() < 0).any():
            raise RemoteFormatError(f"{where}: its object is not a second-moment matrix "
                                    "(non-finite values or a negative diagonal)")
        fetched.append(Statistics(r["layer"], mom2, r["n_tokens"], r["description"]))
    return moved, fetched
