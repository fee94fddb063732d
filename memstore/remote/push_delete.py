"""push --delete: remove branches and tags from a remote (git's `push --delete`).

1. resolve each name on the remote as a push resolves it: refs/heads/NAME and
   refs/tags/NAME say which; a bare name is the remote's branch of that name, else its
   tag (both: ambiguous). A name the remote lacks, an ambiguous one, and the branch the
   remote's HEAD names (what a clone checks out; git refuses to delete the current branch)
   unless `force`, refuse the whole command before anything is deleted; so does a ref
   that holds no commit id (damaged: a bad copy, a hand edit) unless `force`;
2. delete each ref by compare-and-swap against the commit read in 1, or the bytes of a
   damaged one (S3: DeleteObject `If-Match` on its ETag; a folder: read, compare and
   unlink under the remote's lock): a
   ref another push moved meanwhile is kept, refused for that ref ("fetch first"), the
   others deleted; where HEAD's branch was deleted (forced), HEAD is written to name the
   branch a clone now checks out (main, else the first), or removed where no branch is
   left (the next branch pushed becomes the default, as the first did);
3. remove the remote-tracking branch REMOTE/NAME of each branch deleted (a branch whose
   upstream it was is then 'gone', as status says).

The objects stay on the remote: a remote has no gc, and another ref, or a clone's next
push, may still need them. A kill anywhere leaves each ref there or deleted, never
anything else."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import ValidationError
from ..store.refs import HEADS, KINDS, TAGS, check_ref_name, refspec
from ..store.repository import Repository
from ..store.schema import transaction
from . import remotes
from .clone import checked_out
from .connection import connect
from .layout import HEAD_FILE, head_bytes, parse_head
from .transport import RefValue, StaleRefError


@dataclass
class RefDeletion:
    prefix: str  # HEADS or TAGS
    name: str
    old: str | None  # the commit the remote ref held when read (None: it was damaged)
    refused: bool = False  # it moved there while this ran: kept
    now: str | None = None  # what it held then, when refused
    damaged: int | None = None  # forced: the bytes it held instead of a commit id

    @property
    def ref(self) -> str:
        return self.prefix + self.name

    @property
    def kind(self) -> str:
        return KINDS[self.prefix]


@dataclass
class DeleteResult:
    remote: str
    url: str
    refs: list[RefDeletion] = field(default_factory=list)
    guarantee: str = ""  # what the store guarantees for the deletes
    seconds: float = 0.0

    @property
    def refused(self) -> list[RefDeletion]:
        return [r for r in self.refs if r.refused]


def push_delete(repo: Repository, name: str, refs: list[str], *,
                force: bool = False) -> DeleteResult:
    """Deletes from remote `name` each branch or tag `refs` names (see the module)."""
    t0 = time.perf_counter()
    if not refs:
        raise ValidationError("push --delete: name the branches or tags to delete")
    url = remotes.url_of(repo, name)
    with repo.lock():  # what _untrack's write checks, before anything is deleted: a damaged
        pass  # ref or config row, a read-only repository refused it after
    transport = connect(url, name, base_hash=repo.base.hash).transport
    head = transport.read_head()
    current = parse_head(head) if head is not None else None
    result = DeleteResult(name, url)
    read: dict[str, RefValue] = {}
    for given in dict.fromkeys(refs):  # each once, in the order given
        prefix, short, value = _resolve(transport, name, given)
        if value.damaged is not None and not force:
            raise ValidationError(
                f"push --delete to {name} refused: its {KINDS[prefix]} {short!r} "
                f"({prefix}{short}) holds {value.size} bytes, not a commit id; "
                "push --delete --force removes it")
        if prefix == HEADS and short == current and not force:
            raise ValidationError(
                f"push --delete to {name} refused: {short!r} is the branch the remote's HEAD "
                "names, which clones check out; push --delete --force deletes it (HEAD then "
                "names main, else the first branch left)")
        if prefix + short not in read:
            read[prefix + short] = value
            result.refs.append(RefDeletion(
                prefix, short, value.commit,
                damaged=None if value.damaged is None else value.size))
    deleting = [r.name for r in result.refs if r.prefix == HEADS]
    if current in deleting:  # the branches left, read again in 2: a damaged one refuses
        transport.branches([], but=deleting)  # before any delete (one deleted may be: forced)
    for r in result.refs:
        try:
            transport.delete_ref(r.ref, read[r.ref])
        except StaleRefError as e:  # moved meanwhile: kept; removed meanwhile: gone anyway
            if e.now is not None:
                r.refused, r.now = True, e.now
    gone = [r.name for r in result.refs if r.prefix == HEADS and not r.refused]
    if current in gone:  # forced: HEAD names what clones now check out; with no branch
        left = transport.branches([])  # left, none: the next branch pushed is the default
        if left:
            transport.put(HEAD_FILE, head_bytes(checked_out(None, left)))
        else:
            transport.remove(HEAD_FILE)
    _untrack(repo, name, url, gone)
    result.guarantee = transport.guarantee
    result.seconds = time.perf_counter() - t0
    return result


def _resolve(transport, remote: str, given: str) -> tuple[str, str, RefValue]:
    """(HEADS or TAGS, the short name, the ref as read: a damaged one, holding no commit
    id, too) of the remote ref `given` names."""
    tag = given.startswith(TAGS)
    check_ref_name(given.removeprefix(TAGS if tag else HEADS), "tag" if tag else "branch")
    read: dict[str, RefValue] = {}

    def exists(ref: str) -> bool:
        read[ref] = transport.read_ref(ref, damaged=True)
        return read[ref].exists

    try:
        prefix, short = refspec(given, exists, "there")
    except ValidationError as e:
        raise ValidationError(f"push --delete to {remote} refused: {e}") from None
    value = read[prefix + short] if prefix + short in read \
        else transport.read_ref(prefix + short, damaged=True)
    if not value.exists:
        what = "branch or tag" if given == short else KINDS[prefix]
        raise ValidationError(f"push --delete to {remote} refused: it has no {what} {short!r}")
    return prefix, short, value


def _untrack(repo: Repository, name: str, url: str, branches: list[str]) -> None:
    """Removes REMOTE/BRANCH of each branch deleted there, whatever commit it names; none
    where remote `name` names another store now than `url`, the one deleted from (another
    remote renamed onto the name meanwhile, or set-url: those are that store's)."""
    with repo.lock(), transaction(repo.db):
        if remotes.moved(repo, name, url) is not None:
            return
        for branch in branches:
            ref = remotes.tracking_ref(name, branch)
            old = repo.refs.read(ref)
            if old is not None:
                repo.refs.update(ref, None, old)
