"""fetch.parents_first: the order in which a fetch indexes the commits it brought and
those a refetch restored — every commit after its parents and basis."""
from __future__ import annotations

import random

from memstore.remote.fetch import parents_first
from memstore.store.commits import Commit


def _commit(cid: str, parents: tuple[str, ...], basis: str | None) -> Commit:
    return Commit(cid, parents, "base", basis, (), "", 0.0, "commit")


def test_every_commit_comes_after_its_parents_and_basis():
    rng = random.Random(0)
    commits = [_commit("c0", (), None)]
    for i in range(1, 400):
        parents = tuple(sorted({f"c{rng.randrange(i)}" for _ in range(rng.randint(1, 2))}))
        basis = f"c{rng.randrange(i)}" if rng.random() < 0.3 else None
        commits.append(_commit(f"c{i}", parents, basis))
    outside = _commit("x", ("not-given",), "c3")
    given = commits + [outside]
    rng.shuffle(given)
    order = parents_first({c.id: c for c in given})
    assert sorted(c.id for c in order) == sorted(c.id for c in given)  # each once
    position = {c.id: n for n, c in enumerate(order)}
    for c in given:
        for p in [*c.parents, *([c.basis] if c.basis else [])]:
            if p in position:
                assert position[p] < position[c.id], (p, c.id)
