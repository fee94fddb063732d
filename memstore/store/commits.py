"""Commit records: what a commit is, and how an edit result becomes objects and back.

A commit's weight state is the state of its `basis` (the base weights when None) plus its
`update_sets` applied in order. Each update set is one MEMIT solve: its requests, cached
z-vectors, templates and settings (enough to replay it) and, per edited layer, ΔW as
factors U, V (or dense, when that is smaller) with the keys K the solve wrote.

    normal commit   basis = first parent, one set
    revert C2       basis = C2's basis, the later sets replayed
    squash          basis = the squash base, one set for all facts of the range
    merge           basis = the merge base, one set solved for the union

The commit's id is the sha256 of its canonical JSON (time included, as in git), which is
also the object that stores it. Sets are inline in that JSON; their tensors and request
lists are separate objects, shared whenever their bytes are equal."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from ..editing.requests import Request, check_written
from ..editing.result import EditResult, LayerUpdate
from ..editing.settings import EditSettings
from ..errors import MemstoreError, NumericalError, ValidationError
from .author import check as check_author
from .commit_info import check as check_info
from .objects import ObjectStore, canonical_json, check_object_id, hash_bytes, plain

if TYPE_CHECKING:  # torch is imported where tensors are made or checked, not before
    import torch

FORMAT = 1
FACTORS, DENSE = "factors", "dense"
_STATS_ID = re.compile(r"[0-9A-Za-z_.-]{1,128}")  # a sample id: no path, no space


class CorruptRecordError(MemstoreError):
    """An object whose bytes match its name but which is not the record it should be."""


@dataclass(frozen=True)
class LayerRecord:
    object: str  # safetensors: U, V, keys (factors) or delta, keys (dense)
    form: str  # FACTORS or DENSE
    transposed: bool


@dataclass(frozen=True)
class UpdateSet:
    method: str
    settings: dict[str, Any]
    templates: tuple[str, ...]
    requests: str  # JSON object: list of Request.to_dict()
    zs: str  # safetensors object {"zs": n × d_model}
    n: int
    layers: dict[int, LayerRecord]
    stats: dict[int, str]  # layer -> statistics id
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def edit_settings(self) -> EditSettings:
        return EditSettings.from_dict(self.settings)

    def object_ids(self) -> list[str]:
        return [self.requests, self.zs] + [self.layers[l].object for l in sorted(self.layers)]

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method, "settings": self.settings, "templates": list(self.templates),
            "requests": self.requests, "zs": self.zs, "n": self.n,
            "layers": {str(l): {"object": r.object, "form": r.form, "transposed": r.transposed}
                       for l, r in sorted(self.layers.items())},
            "stats": {str(l): s for l, s in sorted(self.stats.items())}, "info": self.info,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UpdateSet:
        """Every field of the expected type and form (a record can come from another
        machine's store): a malformed one raises TypeError or ValueError."""
        if not (isinstance(d["method"], str) and isinstance(d["templates"], list)
                and all(isinstance(t, str) and t.count("{}") == 1 for t in d["templates"])
                and isinstance(d["n"], int) and not isinstance(d["n"], bool) and d["n"] >= 0
                and isinstance(d["layers"], dict) and isinstance(d["stats"], dict)
                and isinstance(d.get("info", {}), dict)):
            raise TypeError("method, templates, n, layers, stats or info malformed")
        for l in [*d["layers"], *d["stats"]]:
            if not (isinstance(l, str) and l.isdigit() and len(l) <= 4):
                raise ValueError(f"layer {l!r} is not a layer index")
        for r in d["layers"].values():
            if r["form"] not in (FACTORS, DENSE) or not isinstance(r["transposed"], bool):
                raise ValueError("a layer's form or transposed flag is malformed")
        for sid in d["stats"].values():
            if not (isinstance(sid, str) and _STATS_ID.fullmatch(sid)):
                raise ValueError(f"statistics id {str(sid)[:40]!r} is malformed")
        EditSettings.from_dict(d["settings"])  # ValidationError when it cannot work
        return cls(
            method=d["method"], settings=d["settings"], templates=tuple(d["templates"]),
            requests=check_object_id(d["requests"]), zs=check_object_id(d["zs"]), n=d["n"],
            layers={int(l): LayerRecord(check_object_id(r["object"]), r["form"],
                                        r["transposed"])
                    for l, r in d["layers"].items()},
            stats={int(l): s for l, s in d["stats"].items()}, info=d.get("info", {}),
        )


def summary(message: str) -> str:
    """The first line of a commit message (git's subject line); "" for an empty message."""
    return message.strip().splitlines()[0] if message.strip() else ""


@dataclass(frozen=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    base: str  # content hash of the base model
    basis: str | None  # the commit whose state this one builds on; None = base weights
    update_sets: tuple[UpdateSet, ...]
    message: str
    time: float  # seconds since the epoch, UTC
    operation: str  # commit, revert, squash, merge, ...
    metrics: dict[str, Any] = field(default_factory=dict)  # measured right after the edit
    info: dict[str, Any] = field(default_factory=dict)
    author: str | None = None  # who wrote it (store.author); None before authors were recorded
    # who wrote this record where that is not its author, as git's committer: the one who
    # cherry-picked, rebased or squashed someone else's commit; None where they are one
    committer: str | None = None
    # when its author wrote it, where that is not `time` (git's author date; `time` is git's
    # committer date): a cherry-pick, rebase or squash keeps the original's; None where
    # they are one (`authored` reads either)
    author_time: float | None = None
    # an SSH signature over the record without it (store.signing); None: not signed
    signature: str | None = None

    @property
    def parents_and_basis(self) -> tuple[str, ...]:
        """The commits this record names, its parents then its basis where it has one
        (usually the first parent again): what a walk of the history follows, and what
        must be here before the commit is indexed."""
        return (*self.parents, self.basis) if self.basis else self.parents

    @property
    def authored(self) -> float:
        """When its author wrote it (git's author date): author_time, else time."""
        return self.time if self.author_time is None else self.author_time

    @property
    def n_requests(self) -> int:
        return sum(s.n for s in self.update_sets)

    @property
    def summary(self) -> str:
        return summary(self.message)

    def object_ids(self) -> list[str]:
        """The commit's own object and every object its record refers to."""
        return [self.id] + [o for s in self.update_sets for o in s.object_ids()]

    def to_json(self) -> dict[str, Any]:
        # author, committer and author_time only where recorded: a record without them is
        # the bytes it was (its id), and a reader from before one was recorded ignores it
        return {
            "format": FORMAT, "parents": list(self.parents), "base": self.base,
            "basis": self.basis, "update_sets": [s.to_json() for s in self.update_sets],
            "message": self.message, "time": self.time, "operation": self.operation,
            "metrics": self.metrics, "info": self.info,
        } | {key: value for key, value in (("author", self.author),
                                           ("committer", self.committer),
                                           ("author_time", self.author_time),
                                           ("signature", self.signature))
             if value is not None}

    @classmethod
    def from_json(cls, oid: str, d: dict[str, Any]) -> Commit:
        """The commit recorded in `d`; a record of another shape is an error naming the
        object (damaged or foreign data), never a KeyError deep in a command."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CorruptRecordError(f"object {oid} is not a commit of format {FORMAT}")
        try:
            commit = cls._parse(oid, d)
        except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as e:
            raise CorruptRecordError(f"object {oid} is not a well-formed commit record "
                                     f"({type(e).__name__}: {e}); run `memstore fsck`") from None
        if not _canonical(oid, d):
            raise CorruptRecordError(f"object {oid} is a commit record in other bytes than "
                                     "memstore writes (key order, spaces or escapes: not its "
                                     "canonical JSON); run `memstore fsck`")
        return commit

    @classmethod
    def _parse(cls, oid: str, d: dict[str, Any]) -> Commit:
        parents = d["parents"]
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise TypeError("parents must be a list of ids")
        for p in [*parents, *([d["basis"]] if d["basis"] is not None else [])]:
            check_object_id(p)
        if not isinstance(d["message"], str) or not isinstance(d["base"], str):
            raise TypeError("message and base must be strings")
        if not (_seconds(d["time"]) and isinstance(d["operation"], str)
                and isinstance(d["update_sets"], list)
                and isinstance(d.get("metrics", {}), dict) and isinstance(d.get("info", {}), dict)):
            raise TypeError("time, operation, update_sets, metrics or info malformed")
        if d.get("author_time") is not None and not _seconds(d["author_time"]):
            raise TypeError("author_time must be a finite number of seconds")
        for who in ("author", "committer"):
            if d.get(who) is not None and not isinstance(d[who], str):
                raise TypeError(f"{who} must be a string")
            if d.get(who) is not None and check_author(d[who], who) != d[who]:
                raise ValueError(f"{who} must be one line of printable text, no spaces around")
        if d.get("signature") is not None and not (
                isinstance(d["signature"], str)
                and d["signature"].startswith("-----BEGIN SSH SIGNATURE-----")):
            raise TypeError("signature must be an armored SSH signature")
        update_sets = tuple(UpdateSet.from_json(s) for s in d["update_sets"])
        check_info(d["operation"], d.get("info", {}), [s.n for s in update_sets])
        return cls(
            id=oid, parents=tuple(d["parents"]), base=d["base"], basis=d["basis"],
            update_sets=update_sets, message=d["message"], time=d["time"],
            operation=d["operation"], metrics=d.get("metrics", {}), info=d.get("info", {}),
            author=d.get("author"), committer=d.get("committer"),
            author_time=d.get("author_time"), signature=d.get("signature"),
        )


def _canonical(oid: str, d: dict[str, Any]) -> bool:
    """Whether `d`, read from the object `oid` (its bytes checked against that name), was
    those bytes in canonical JSON, as every memstore writes a record (make_commit): the id
    is the hash of the canonical bytes. Other bytes for the same content (keys reordered,
    spaces, escapes, a key twice) are another id for the same record, and a signature,
    which signs the canonical payload rebuilt from the content, would verify under it."""
    try:
        return hash_bytes(canonical_json(d)) == oid
    except (ValidationError, ValueError):  # NaN, a lone surrogate: no canonical bytes
        return False


def _seconds(t: Any) -> bool:
    """Whether `t` is a time as a record holds one: a finite number of seconds."""
    return isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)


def make_commit(*, parents: list[str], base: str, basis: str | None,
                update_sets: list[UpdateSet], message: str, time: float, operation: str,
                metrics: dict[str, Any] | None = None, info: dict[str, Any] | None = None,
                author: str | None = None, committer: str | None = None,
                author_time: float | None = None,
                sign: Callable[[bytes], str] | None = None) -> tuple[Commit, bytes]:
    """The commit and the canonical bytes whose hash is its id; `author_time` (when its
    author wrote it) is recorded where it is not `time`; `sign` (store.signing) signs the
    record's bytes, the signature then recorded in it (the id covers it)."""
    if not isinstance(message, str):
        raise ValidationError("the commit message must be a string")
    if author_time is not None and float(author_time) == float(time):
        author_time = None
    draft = Commit("", tuple(parents), base, basis, tuple(update_sets), message, float(time),
                   operation, plain(metrics or {}, "metrics"), plain(info or {}, "info"),
                   author, committer, None if author_time is None else float(author_time))
    data = canonical_json(draft.to_json())
    if sign is not None:
        draft = replace(draft, signature=sign(data))
        data = canonical_json(draft.to_json())
    return replace(draft, id=hash_bytes(data)), data


# -- tensors of an edit ------------------------------------------------------------------


@dataclass
class DenseLayerUpdate(LayerUpdate):
    """A layer update stored as the dense ΔW (smaller than its factors for large batches).

    `dense` is ΔW in the weight's orientation, exactly as stored; `delta()` returns it.
    U and V are an exact factorisation (one of them an identity) so that code forming
    U Vᵀ gets the same ΔW: a product with an identity is exact in floating point."""

    dense: torch.Tensor | None = None

    @classmethod
    def from_dense(cls, layer: int, dense: torch.Tensor, keys: torch.Tensor,
                   transposed: bool) -> DenseLayerUpdate:
        import torch

        op = dense.T if transposed else dense  # d_out × d_in
        d_out, d_in = op.shape
        if d_out <= d_in:
            u, v = torch.eye(d_out, dtype=op.dtype), op.T.contiguous()
        else:
            u, v = op.contiguous(), torch.eye(d_in, dtype=op.dtype)
        return cls(layer, u, v, keys, transposed, dense)

    @property
    def rank(self) -> int:
        return self.keys.shape[0]

    def delta(self) -> torch.Tensor:
        assert self.dense is not None
        return self.dense

    def factors_are_smaller(self) -> bool:
        return False


def _finite(t: torch.Tensor, what: str) -> None:
    import torch

    if not torch.isfinite(t).all():
        raise NumericalError(f"{what} holds NaN or inf; refusing to store it")


def check_update(update: LayerUpdate, n: int, where: str) -> None:
    U, V, K = update.U, update.V, update.keys
    if U.ndim != 2 or V.ndim != 2 or U.shape[1] != V.shape[1]:
        raise ValidationError(f"{where}: U {tuple(U.shape)} and V {tuple(V.shape)} "
                              "are not factors of one ΔW")
    if K.ndim != 2 or K.shape != (n, V.shape[0]):
        raise ValidationError(f"{where}: keys of shape {tuple(K.shape)}, "
                              f"expected ({n}, {V.shape[0]})")
    for name, t in (("U", U), ("V", V), ("keys", K)):
        _finite(t, f"{where} {name}")


def put_layer(objects: ObjectStore, update: LayerUpdate) -> LayerRecord:
    from ..editing.apply import delta as weight_delta

    if isinstance(update, DenseLayerUpdate) or not update.factors_are_smaller():
        dense = update.delta() if isinstance(update, DenseLayerUpdate) else weight_delta(update)
        oid = objects.put_tensors({"delta": dense, "keys": update.keys})
        return LayerRecord(oid, DENSE, bool(update.transposed))
    oid = objects.put_tensors({"U": update.U, "V": update.V, "keys": update.keys})
    return LayerRecord(oid, FACTORS, bool(update.transposed))


def _tensors(objects: ObjectStore, oid: str, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The named tensors of a safetensors object; a malformed one is a CorruptRecordError."""
    try:
        t = objects.get_tensors(oid)
    except (ValueError, RuntimeError, SafetensorError) as e:
        raise CorruptRecordError(f"object {oid} is not a safetensors file ({e})") from None
    if not all(n in t for n in names):
        raise CorruptRecordError(f"object {oid} lacks the tensors {', '.join(names)}")
    return t


def _layer_tensors(objects: ObjectStore, oid: str, names: tuple[str, ...],
                   d_in: Callable[[dict[str, torch.Tensor]], int]) -> dict[str, torch.Tensor]:
    """The tensors of a layer update, each a finite matrix of floats, the keys as wide as
    the update's input side (`d_in` of the tensors), as `check_update` wrote them: a
    well-hashed object of another form (another machine's push) failed deep in a command
    (a shape mismatch, NaN written into an export)."""
    import torch

    t = _tensors(objects, oid, names)
    for name in names:
        if t[name].ndim != 2 or not t[name].is_floating_point():
            raise CorruptRecordError(f"object {oid}: its tensor {name} ({t[name].dtype}, shape "
                                     f"{tuple(t[name].shape)}) is no matrix of floats; run "
                                     "`memstore fsck`")
        if not torch.isfinite(t[name]).all():
            raise CorruptRecordError(f"object {oid}: its tensor {name} holds NaN or inf; run "
                                     "`memstore fsck`")
    if t["keys"].shape[1] != d_in(t) or ("U" in t and t["U"].shape[1] != t["V"].shape[1]):
        raise CorruptRecordError(f"object {oid}: its tensors' shapes ("
                                 f"{', '.join(f'{n} {tuple(t[n].shape)}' for n in names)}) "
                                 "are not one layer update's; run `memstore fsck`")
    return t


def load_layer(objects: ObjectStore, layer: int, record: LayerRecord) -> LayerUpdate:
    if record.form == DENSE:
        t = _layer_tensors(objects, record.object, ("delta", "keys"),
                           lambda t: t["delta"].shape[0 if record.transposed else 1])
        return DenseLayerUpdate.from_dense(layer, t["delta"], t["keys"], record.transposed)
    if record.form == FACTORS:
        t = _layer_tensors(objects, record.object, ("U", "V", "keys"), lambda t: t["V"].shape[0])
        return LayerUpdate(layer, t["U"], t["V"], t["keys"], record.transposed)
    raise CorruptRecordError(f"layer {layer}: unknown storage form {record.form!r}")


def put_update_set(objects: ObjectStore, result: EditResult, method: str = "memit") -> UpdateSet:
    """Validates `result` and writes its objects (each fsynced); returns its record."""
    n = len(result.requests)
    if n == 0:
        raise ValidationError("an update set needs at least one request")
    if result.zs.ndim != 2 or result.zs.shape[0] != n:
        raise ValidationError(f"{tuple(result.zs.shape)} z-vectors for {n} requests")
    _finite(result.zs, "the z-vectors")
    if not result.updates:
        raise ValidationError("an update set needs at least one layer update")
    for layer, update in result.updates.items():
        if update.layer != layer:
            raise ValidationError(f"the update stored under layer {layer} is for layer "
                                  f"{update.layer}")
        check_update(update, n, f"layer {layer}")
    requests = [r.to_dict() for r in result.requests]
    return UpdateSet(
        method=method,
        settings=recorded_settings(result),
        templates=tuple(result.templates),
        requests=objects.put_json(requests),
        zs=objects.put_tensors({"zs": result.zs}),
        n=n,
        layers={l: put_layer(objects, result.updates[l]) for l in sorted(result.updates)},
        stats={int(l): s for l, s in result.stats_ids.items()},
        info=plain(result.info, "info"),
    )


@dataclass(frozen=True)
class StoredSet:
    """A solve whose objects are written already: its requests and its record, without
    its tensors (a revert stores each set it replays as soon as it is solved, so that a
    long replay holds one set's tensors at a time, not all of them until the commit)."""

    requests: list[Request]
    update_set: UpdateSet

    @property
    def stats_ids(self) -> dict[int, str]:
        return dict(self.update_set.stats)


def store_set(objects: ObjectStore, result: EditResult | StoredSet) -> StoredSet:
    """`result` written to `objects` (put_update_set), unless it is already."""
    if isinstance(result, StoredSet):
        return result
    return StoredSet(result.requests, put_update_set(objects, result))


def recorded_settings(result: EditResult) -> dict:
    """The settings a set records: token_rule only where it decides where a request is read
    (EditResult.rule_matters); where it does not, the record is one that memstore before the
    rule (c24c1f6) reads too, and any rule replays it the same."""
    d = result.settings.to_dict()
    if not result.rule_matters:
        d.pop("token_rule", None)
    return d


def load_requests(objects: ObjectStore, update_set: UpdateSet) -> list[Request]:
    oid = update_set.requests
    try:
        records = objects.get_json(oid)
        requests = [Request.from_dict(d) for d in records]
        for r in requests:  # a prompt that is a list failed deep in status, show, export
            check_written(r)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError,
            ValidationError) as e:
        raise CorruptRecordError(f"object {oid} is not a well-formed request list "
                                 f"({type(e).__name__})") from None
    if len(requests) != update_set.n:
        raise CorruptRecordError(f"object {oid} holds {len(requests)} requests, its update set "
                                 f"{update_set.n}")
    return requests


def load_zs(objects: ObjectStore, update_set: UpdateSet) -> torch.Tensor:
    """The set's z-vectors, one finite row of floats per request, as `put_update_set` wrote
    them (a well-hashed object of another shape was a traceback in a squash's replay)."""
    import torch

    oid = update_set.zs
    zs = _tensors(objects, oid, ("zs",))["zs"]
    if zs.ndim != 2 or zs.shape[0] != update_set.n or not zs.is_floating_point():
        raise CorruptRecordError(f"object {oid}: its z-vectors ({zs.dtype}, shape "
                                 f"{tuple(zs.shape)}) are not one row of floats for each of "
                                 f"the set's {update_set.n} requests; run `memstore fsck`")
    if not torch.isfinite(zs).all():
        raise CorruptRecordError(f"object {oid}: its z-vectors hold NaN or inf; run "
                                 "`memstore fsck`")
    return zs


def load_updates(objects: ObjectStore, update_set: UpdateSet) -> dict[int, LayerUpdate]:
    return {l: load_layer(objects, l, update_set.layers[l]) for l in sorted(update_set.layers)}
