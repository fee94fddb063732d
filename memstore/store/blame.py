"""`memstore blame`: which commit wrote each fact a state holds, and who, as `git blame`
tells it of each line. The write a state holds may be a copy that a merge, squash or
revert carried on (solved again from the cached z-vector); blame follows it back to the
commit that wrote the fact (Provenance.line), past a cherry-pick to the commit it picked
(Provenance.picked_from), and names the carrier too."""
from __future__ import annotations

from typing import Any

from . import chain_facts
from .history import LiveFact
from .provenance import Provenance, Write
from .repository import Repository
from .revisions import BASE, state_commit


def blame(repo: Repository, rev: str | None = None, *, subject: str | None = None,
          contains: str | None = None) -> list[dict[str, Any]]:
    """The facts live at `rev`, in the order of the writes that hold them (oldest first),
    each with the commit that wrote it, its author, time and summary, and `carried_by`: the
    commit whose update set holds the write now where that is another (None else).
    `subject`: only the facts about it; `contains`: only those whose subject, prompt or
    target contains it, in any case."""
    commit = state_commit(repo, rev)
    needle = contains.casefold() if contains is not None else None

    def kept(*texts: str) -> bool:
        return needle is None or any(needle in t.casefold() for t in texts)

    if commit is BASE:
        facts = []
    elif subject is None and needle is None:
        facts = repo.facts_at(commit)
    else:  # the facts kept alone are read, found by the index (not the whole chain folded)
        facts = chain_facts.live_where(repo.store, commit, kept, subject)
    prov = Provenance(repo)
    rows = []
    for f in facts:
        wrote, carried_by = writer(repo, prov, f)
        c = repo.get_commit(wrote)
        rows.append({**f.request.to_dict(), "commit": c.id, "author": c.author, "time": c.time,
                     "author_time": c.authored, "summary": c.summary,
                     "carried_by": carried_by})
    return rows


def writer(repo: Repository, prov: Provenance, f: LiveFact) -> tuple[str, str | None]:
    """(the commit that wrote the live fact `f`, the commit whose update set holds that
    write where it is another, a carrier: None else). The writer is the oldest write of its
    line that the repository still holds (gc, and a clone, leave out the commits a squash
    replaced: their recorded paths name them); for a cherry-pick's, that of the picked
    commit it was solved from, as far as it is held. blame, diff, show and eval --live name
    a fact's writer by it."""
    if repo.get_commit(f.commit).operation == "commit":  # its own write: nothing to follow
        return f.commit, None  # (and no request list read again, for show and diff)
    w: Write | None = (f.commit, f.set_index, f.position)
    while w is not None:
        origin = next(x for x in reversed(prov.line(w)) if prov.holds(x[0]))
        w = prov.picked_from(origin)
    return origin[0], f.commit if f.commit != origin[0] else None
