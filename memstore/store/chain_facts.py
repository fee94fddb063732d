"""The facts a stretch of a basis chain changed, read without the rest of the chain.

A state is its basis' state plus its update sets (memstore.store.history), and a later
write of a (subject, prompt) replaces the earlier one. So where `since` lies on `commit`'s
basis chain (the first parent of an ordinary commit, HEAD~3 of a line of commits), the
facts of `commit`'s state are those of `since` with the writes of the commits between put
on top: none is taken away, and only the keys those commits wrote can differ. What `since`
held under those keys is found through the index (the chain walked on the commit records,
each compared with its basis row and its number of request rows; those rows the writes of
each key) and read back
from the objects, hash-checked. `show HEAD` and `diff HEAD~1 HEAD` read one commit's
requests this way, not the whole history's (the chain's commit records, not its request
lists); `status` counts the live facts off the request rows of HEAD's chain, reading no
request list; `blame --contains` and `--subject` find the live writes they keep by those
rows and read back only those."""
from __future__ import annotations

from collections.abc import Callable

from ..editing.requests import fact_key
from ..errors import MemstoreError
from .commits import Commit, load_requests
from .history import LiveFact
from .index import BY_KEY
from .schema import DamagedIndexError, not_indexed
from .storage import Storage

Key = tuple[str, str]
FEW = 256  # keys looked up one by one; more are found in one pass over the rows


def commits_between(store: Storage, since: str | None, commit: str) -> list[Commit] | None:
    """The commits of `commit`'s basis chain after `since` (None: the base), oldest first;
    None when `since` is not on that chain."""
    out, seen, cur = [], set(), commit
    while cur is not None and cur != since:
        if cur in seen:
            raise MemstoreError(f"commit {cur[:12]}: its basis chain loops; run `memstore fsck`")
        seen.add(cur)
        out.append(store.commit(cur))
        cur = out[-1].basis
    return out[::-1] if cur == since else None


def written(store: Storage, commits: list[Commit]) -> dict[Key, LiveFact]:
    """Per key, the last write of `commits` (applied in order), in the order of those writes."""
    last: dict[Key, LiveFact] = {}
    for c in commits:
        for i, s in enumerate(c.update_sets):
            for p, r in enumerate(load_requests(store.objects, s)):
                last.pop(fact_key(r), None)
                last[fact_key(r)] = LiveFact(r, c.id, i, p)
    return last


def chain_depths(store: Storage, commit: str) -> dict[str, int]:
    """The commits of `commit`'s basis chain, each with its place (root 0), walked on the
    records (hash-checked; their basis and number of requests alone, Storage.chain_link),
    each compared with its index rows: a basis row damaged to skip a commit or to end the
    chain early would take that commit's request rows, which the callers read as the
    state's writes, out of the state (a count of live facts one short, a fact diff calls
    added where it changed, blame --contains leaving it out), and so would a request row
    deleted; either is refused, as fsck names it (a request row altered in place is met
    only where its write is read back: `_read_back`). A chain commit the index does not
    hold has no request rows to read: refused too."""
    basis = {r["id"]: r["basis"] for r in store.db.query("select id, basis from commits")}
    rows = dict(store.db.execute("select commit_id, count(*) from requests group by commit_id"))
    chain, seen, cur = [], set(), commit
    while cur is not None:
        if cur not in basis:
            raise not_indexed(cur)
        if cur in seen:  # (records cannot loop: ids are their hashes)
            raise MemstoreError(f"commit {cur[:12]}: its basis chain loops; run `memstore fsck`")
        recorded, n = store.chain_link(cur)
        if recorded != basis[cur]:
            raise DamagedIndexError(f"commit {cur[:12]}: index row disagrees with the record "
                                    "(basis); run `memstore fsck --repair`")
        if rows.get(cur, 0) != n:
            _unreadable_requests(store, cur)  # no rows to rebuild from: said as it is
            raise DamagedIndexError(f"commit {cur[:12]}: request rows disagree with the record "
                                    f"({rows.get(cur, 0)} rows, {n} requests); run `memstore "
                                    "fsck --repair`")
        chain.append(cur)
        seen.add(cur)
        cur = recorded
    return {c: d for d, c in enumerate(reversed(chain))}


def _unreadable_requests(store: Storage, commit_id: str) -> None:
    """Raises where a request list of `commit_id` cannot be read back (its object corrupt or
    missing): `fsck --repair` then leaves its rows out ("requests not indexed"), and saying
    `run memstore fsck --repair` again sent the user round a loop they could not leave."""
    for s in store.commit(commit_id).update_sets:
        try:
            load_requests(store.objects, s)
        except MemstoreError as e:
            raise MemstoreError(
                f"commit {commit_id[:12]}: its facts cannot be counted or listed "
                f"({str(e).split('; run ')[0]}: its request list, which `fsck --repair` cannot "
                "restore); `memstore reset REV` onto a commit before it leaves it") from None


def n_live(store: Storage, commit: str) -> int:
    """How many facts `commit`'s state holds: the keys its chain's request rows write."""
    depth = chain_depths(store, commit)
    rows = store.db.execute("select commit_id, subject, prompt from requests")
    return len({(subject, prompt) for cid, subject, prompt in rows if cid in depth})


def live_writes(store: Storage, commit: str, keys: list[Key]) -> dict[Key, LiveFact]:
    """Of `keys`, those live in `commit`'s state, each with the write that holds it."""
    depth = chain_depths(store, commit)
    found: dict[Key, tuple[int, int, int, str]] = {}

    def take(key: Key, cid: str, i: int, p: int) -> None:
        if cid in depth and (key not in found or found[key] < (depth[cid], i, p, cid)):
            found[key] = (depth[cid], i, p, cid)

    if len(keys) > FEW:  # one pass over the rows costs less than a look-up per key
        wanted = set(keys)
        for cid, i, p, subject, prompt in store.db.execute(
                "select commit_id, set_index, position, subject, prompt from requests"):
            if (subject, prompt) in wanted:
                take((subject, prompt), cid, i, p)
    else:
        for key in keys:
            for cid, i, p in store.db.execute(
                    "select commit_id, set_index, position from requests where " + BY_KEY,
                    list(key)):
                take(key, cid, i, p)
    return _read_back(store, found)


def _read_back(store: Storage, found: dict[Key, tuple[int, int, int, str]],
               index_target: dict[Key, str] | None = None) -> dict[Key, LiveFact]:
    """Each key's write (place in the chain, set, position, commit), read from its
    hash-checked object, in the order the keys are given; a write whose record differs from
    the index's row (its key, or its target where `index_target` says the row's) is a
    damaged index."""
    out, read = {}, {}
    for key, (_, i, p, cid) in found.items():
        if (cid, i) not in read:  # the write itself, from its hash-checked object
            read[cid, i] = load_requests(store.objects, store.commit(cid).update_sets[i])
        requests = read[cid, i]
        if p >= len(requests) or fact_key(requests[p]) != key or (
                index_target is not None and requests[p].target_new != index_target[key]):
            raise DamagedIndexError(f"the index's request rows of commit {cid[:12]} differ "
                                    "from its record; run `memstore fsck --repair`")
        out[key] = LiveFact(requests[p], cid, i, p)
    return out


def live_where(store: Storage, commit: str, keep: Callable[[str, str, str], bool],
               subject: str | None = None) -> list[LiveFact]:
    """The facts of `commit`'s state (`subject`'s alone where given) whose subject, prompt
    and target `keep` takes, in history.facts_at's order (that of the writes that hold
    them): each key's live write is found by the request rows of `commit`'s chain, and only
    the writes kept are read back from their objects, not the whole chain's."""
    depth = chain_depths(store, commit)
    last: dict[Key, tuple[tuple[int, int, int, str], str]] = {}
    sql = "select commit_id, set_index, position, subject, prompt, target_new from requests"
    for cid, i, p, s, prompt, target in (
            store.db.execute(sql + " where subject = ?", [subject]) if subject is not None
            else store.db.execute(sql)):
        if cid in depth and ((s, prompt) not in last
                             or last[s, prompt][0] < (depth[cid], i, p, cid)):
            last[s, prompt] = ((depth[cid], i, p, cid), target)
    kept = sorted((at, key, target) for key, (at, target) in last.items()
                  if keep(key[0], key[1], target))
    return list(_read_back(store, {key: at for at, key, _ in kept},
                           {key: target for _, key, target in kept}).values())
