"""fsck of a remote: is every branch's and tag's history whole and intact on the store itself?

Checks the marker, that every file under objects/ is named by an object id and (unless
quick) hashes to it, that every branch and tag holds a commit id whose history is all there:
each commit present, readable, on the remote's base, with every object its update sets
name; that every statistics record is readable and its tensor present; and that HEAD,
where there is one, is a file naming an existing branch. What a killed push may leave is not a problem: objects no
branch reaches (the next push reuses them) and `.tmp-` files (never read, and removed by
the first write of a later push into their folder once stale: folder.py, fsspec_store.py),
or on S3 an incomplete multipart upload (aborted by a later push once a day old: s3.py)."""
from __future__ import annotations

import json

from ..editing.progress import progress
from ..errors import MemstoreError
from ..store.commits import Commit
from ..store.maintenance import set_object_problems
from ..store.objects import OBJECT_ID, hash_bytes, hash_chunks
from ..store.refs import HEADS, TAGS
from .layout import (
    HEAD_FILE,
    MARKER,
    OBJECTS,
    STATISTICS,
    Marker,
    RemoteFormatError,
    object_path,
    parse_head,
    parse_ref,
    parse_statistics_record,
)
from .transfer import batches, counted, streamed
from .transport import Transport, open_transport


def fsck_remote(url: str, verify: bool = True, name: str | None = None) -> list[str]:
    """Every problem found on the remote at `url`, one line each; [] when it is sound.
    `name`: the repository's name for it, which the way out of a damaged ref names."""
    transport = open_transport(url)
    transport.remote_name = name
    data = transport.read(MARKER)
    if data is None:
        return [f"{MARKER} is missing: {transport.url} is not a memstore remote"]
    try:
        marker = Marker.parse(data, transport.url)
    except RemoteFormatError as e:
        return [str(e)]
    # What names objects is read before the objects are listed: a push writes the objects
    # first and the ref or record that names them last, and nothing removes an object, so
    # each object a ref or record read here names is in the listing, however many pushes
    # land while fsck runs (listed first, a push landing between the two was taken for a
    # commit whose object is missing).
    # HEAD is read before and after the branches: a first push writes its branch, then
    # HEAD; a push --delete of HEAD's branch deletes it, then rewrites or removes HEAD. A
    # HEAD naming no branch read is damage only where it did not change meanwhile.
    head_before = transport.read_head()
    ref_problems: list[str] = []
    refs: dict[str, dict[str, str]] = {HEADS: {}, TAGS: {}}
    for prefix, found in refs.items():
        kind = "tag" if prefix == TAGS else "branch"
        for rel, size in sorted(transport.list(prefix).items()):
            try:  # what a fetch refuses: a name no ref may have, a file too large for an id
                transport.check_ref_file(prefix, rel, size)
                data = transport.read(prefix + rel)
                if data is None:  # deleted since it was listed (push --delete)
                    continue
                found[rel] = parse_ref(data, f"{kind} {rel}", prefix + rel, name)
            except RemoteFormatError as e:
                ref_problems.append(str(e))
    head = transport.read_head()
    records = _statistics_records(transport)
    present, problems = listed_objects(transport)
    corrupt = corrupt_objects(transport, present) if verify else set()
    problems += [f"object {o} is corrupt (its content does not match its name)"
                 for o in sorted(corrupt)]
    problems += ref_problems
    branches = refs[HEADS]
    problems += _check_history(transport, marker, refs, set(present), corrupt)
    problems += _check_statistics(records, set(present), corrupt)
    if head is None and transport.is_folder(HEAD_FILE):  # a push would not write one there
        problems.append(f"{HEAD_FILE} is a folder, not the file naming the branch a clone "
                        "checks out; remove it there (the next push that moves a branch writes it)")
    if head is not None and parse_head(head) not in branches and head == head_before:
        problems.append("HEAD names no branch of the remote "
                        f"({head[:80].decode(errors='replace')!r})")
    return problems


def listed_objects(transport: Transport) -> tuple[dict[str, int], list[str]]:
    """The objects the remote lists (id → size), and a problem line per file under objects/
    that is not named as an object."""
    present: dict[str, int] = {}
    problems = []
    for rel, size in sorted(transport.list(OBJECTS).items()):
        oid = rel.replace("/", "")
        if OBJECT_ID.match(oid) and rel == f"{oid[:2]}/{oid[2:]}":
            present[oid] = size or 0
        else:
            problems.append(f"{OBJECTS}{rel}: not an object name")
    return present, problems


def corrupt_objects(transport: Transport, present: dict[str, int]) -> set[str]:
    """The objects of `present` (id → listed size) whose bytes do not hash to their name
    (one gone since it was listed among them), with a progress bar counting bytes on a
    terminal: small objects read in batches (as a fetch reads them), a large one a chunk at
    a time, hashed as it is read."""
    out = set()
    with progress(total=sum(present.values()), desc="checking objects", unit="B",
                  unit_scale=True, unit_divisor=1024) as bar:
        for batch in batches(sorted(present), present):
            if streamed(present[batch[0]]):
                chunks = transport.read_chunks(object_path(batch[0]))
                if chunks is None or hash_chunks(counted(chunks, bar)) != batch[0]:
                    out.add(batch[0])
                continue
            got = transport.read_many(object_path(o) for o in batch)
            out |= {o for o in batch if hash_bytes(got.get(object_path(o), b"")) != o}
            bar.update(sum(present[o] for o in batch))
    return out


def _check_history(transport: Transport, marker: Marker, refs: dict[str, dict[str, str]],
                   present: set[str], corrupt: set[str]) -> list[str]:
    """The problems of the history each branch and tag reaches (`refs`: prefix → name →
    commit), each commit once, named by the first ref found to reach it."""
    problems = []
    seen: set[str] = set()
    stack = [(c, f"{'tag' if prefix == TAGS else 'branch'} {name}")
             for prefix in (TAGS, HEADS) for name, c in sorted(refs[prefix].items())]
    while stack:
        cid, via = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        at = f"commit {cid[:12]} (reached from {via})"
        if cid not in present or cid in corrupt:
            problems.append(f"{at}: its object is {'missing' if cid not in present else 'corrupt'}")
            continue
        try:
            commit = Commit.from_json(cid, json.loads(transport.read(object_path(cid)) or b""))
        except (MemstoreError, ValueError, KeyError, TypeError, AttributeError,
                RecursionError) as e:
            problems.append(f"{at}: unreadable record ({type(e).__name__}: {e})")
            continue
        if commit.base != marker.base_hash:
            problems.append(f"{at}: made on another base model than the remote's")
        problems += set_object_problems(commit, present, corrupt, at)
        stack.extend((p, via) for p in commit.parents_and_basis)
    return problems


def _statistics_records(transport: Transport) -> dict[str, bytes]:
    """Every statistics record of the remote: path → its bytes."""
    paths = [STATISTICS + rel for rel in sorted(transport.list(STATISTICS))]
    return transport.read_many(paths)


def _check_statistics(records: dict[str, bytes], present: set[str],
                      corrupt: set[str]) -> list[str]:
    problems = []
    for path, data in sorted(records.items()):
        try:
            rec = parse_statistics_record(data, path, path)
        except RemoteFormatError as e:
            problems.append(str(e))
            continue
        if rec["object"] not in present or rec["object"] in corrupt:
            state = "missing" if rec["object"] not in present else "corrupt"
            problems.append(f"{path}: its object {rec['object']} is {state}")
    return problems
