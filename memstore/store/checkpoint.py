"""Exported checkpoints and their verification.

`export` writes the state of a revision as a full Hugging Face checkpoint (safetensors,
config, tokenizer) that `AutoModelForCausalLM.from_pretrained` loads offline (a multimodal
model whole, its vision tower included: `AutoModelForImageTextToText`), plus
`memstore-manifest.json`: the base hash, the commit, the settings and the sha256 of every
tensor in the checkpoint. `verify` rebuilds the same state from the repository and compares
every tensor; `verify_base` re-hashes the base model fully."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..editing.progress import progress, stage
from ..editing.requests import _short as _quoted  # a hand-written string, one short line
from ..errors import MemstoreError, ValidationError
from ..models.checkpoint_names import SAFETENSORS_INDEX, saved_names, weight_files
from ..models.hashing import (
    changed_side_files,
    model_hash,
    side_files,
    state_items,
    tensor_sha256,
)
from ..models.loading import (
    gguf_copy_current,
    load_model,
    resolve,
    save_as_base,
    transformers_bars_off,
)
from ..models.runtime import Runtime
from ..serving.card import CARD
from .export_card import card_of, card_problems
from .export_target import (
    MANIFEST,
    check_target,
    is_manifest,
    listed_file_problems,
    missing,
    write_manifest,
    written_beside,
)
from .objects import NotOwnFileError, open_own_file
from .repository import Repository
from .states import (
    BASE,
    check_base,
    open_base,
    runtime_from_flags,
    state_commit,
    state_of,
)

FORMAT = 2  # 2: lists every file ("files") and the kind of export


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5",
                   ".msgpack", ".npz", ".onnx")
# Files a Hugging Face loader reads besides the weights: config, generation and tokenizer.
LOADER_FILES = ("config.json", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt",
                "tokenizer.model", "spiece.model", "vocab.txt", SAFETENSORS_INDEX)


def layout(t: torch.Tensor) -> tuple[str, tuple[int, ...]]:
    """What a tensor's sha256 (of its bytes) leaves out: its dtype and shape."""
    return str(t.dtype).removeprefix("torch."), tuple(t.shape)


def checkpoint_tensors(directory: str | Path, files: list[str] | None = None,
                       layouts: dict[str, tuple[str, tuple[int, ...]]] | None = None,
                       desc: str | None = None) -> dict[str, str]:
    """name → sha256 of every tensor in `files` (default: the safetensors files a loader
    reads); `layouts`, when given, receives name → (dtype, shape), which the hash of the
    bytes does not tell (F32 and I32, or BF16 and F16, can hold the same bytes). A tensor
    in two files is an error (which one a loader takes is not ours to guess). With `desc`,
    a bar counts the tensors read (each file's header is read first, for the total)."""
    from safetensors import SafetensorError, safe_open

    paths = [Path(directory) / f for f in (files if files is not None
                                           else weight_files(directory))]
    for path in paths:
        if path.is_symlink():
            raise MemstoreError(f"{path} is a symbolic link")
        if path.exists() and not path.is_file():  # a pipe would never end the read
            raise MemstoreError(f"{path} is not a regular file")
    out: dict[str, str] = {}
    with ExitStack() as opened:
        names: list[tuple[Path, Any, list[str]]] = []
        for path in paths:
            try:
                st = opened.enter_context(safe_open(str(path), "pt"))
                names.append((path, st, list(st.keys())))
            except (OSError, ValueError, SafetensorError) as e:
                raise MemstoreError(f"{path}: not a readable safetensors file ({e})") from None
        with progress(desc is not None, total=sum(len(n) for _, _, n in names), desc=desc,
                      unit="tensor") as bar:
            for path, st, keys in names:
                try:
                    for name in keys:
                        if name in out:
                            raise MemstoreError(f"{directory}: tensor {name} is in two files")
                        t = st.get_tensor(name)
                        out[name] = tensor_sha256(t)
                        if layouts is not None:
                            layouts[name] = layout(t)
                        bar.update()
                except (OSError, ValueError, SafetensorError) as e:
                    raise MemstoreError(f"{path}: not a readable safetensors file ({e})"
                                        ) from None
    return out


def settings_of(repo: Repository, commit: str | None) -> Any:
    if commit is not BASE:
        sets = repo.chain_sets(commit)
        if sets:
            return sets[-1].update_set.settings
    s = repo.settings
    return s.to_dict() if s else None


def protected_paths(repo: Repository) -> dict[str, Path]:
    """What an export must never write over or into."""
    out = {"the repository": repo.root} if repo.root is not None else {}
    if repo.base.path is not None:
        out["the base model"] = Path(repo.base.path)
    return out


_RESOLVE = object()  # export's `commit` not given: resolve `rev`


def export(repo: Repository, rev: str | None, out_dir: str | Path, *,
           force: bool = False, card: dict[str, Any] | None = None, commit: Any = _RESOLVE
           ) -> dict[str, Any]:
    """Writes the state of `rev` (None: HEAD) to `out_dir`: into a new or empty folder, or,
    with `force`, in place of a previous memstore export (export_target). Written beside it
    and renamed into place, so an interrupted export leaves no half checkpoint under its
    name. `card`: the model card's record (export_card.card_record), kept in the
    manifest; the card rendered from it is written as README.md. `commit`: the state `rev`
    names when the caller resolved it already (its card describes that one). `rev` is
    resolved once: a branch moved meanwhile by another process (a commit) does not put its weights
    under the manifest of the commit resolved first. Returns the manifest."""
    target = check_target(out_dir, force, protected_paths(repo))
    if commit is _RESOLVE:
        commit = state_commit(repo, rev)
    check_base(repo)
    check_base_weights(repo)
    base = state_of(repo, commit)
    with written_beside(target) as tmp:
        with stage("writing the weights"), transformers_bars_off():  # (its bar: "1/1 shards")
            base.model.save_pretrained(tmp)
        save_as_base(base.tokenizer, tmp)
        b = repo.base
        manifest = {
            "format": FORMAT, "base": {"spec": b.spec, "hash": b.hash},
            "commit": commit, "rev": rev or "HEAD", "settings": settings_of(repo, commit),
            "built_with": built_with(base),
            "tensors": checkpoint_tensors(tmp, desc="hashing the written tensors"),
        }
        if base.loaded.unread:  # never left out without a word (export says so)
            manifest["left_out"] = list(base.loaded.unread)
        if card is not None:
            manifest["card"] = card
            (tmp / CARD).write_text(card_of(repo, manifest), encoding="utf-8")
        write_manifest(tmp, manifest)
    return manifest


def check_base_weights(repo: Repository) -> None:
    """The base weights as loaded hash to what init recorded (a file changed in place with
    its size and mtime kept passes the cheap check): an export, and the rebuild a verify
    compares it with, are then made from the base the history was written on. A GGUF base
    is first re-hashed against the dequantized copy it loads from. The weight hash is
    skipped where the model is loaded in another dtype than it was hashed in, or spread by
    a device map (`verify --base` checks those)."""
    b = repo.base
    if b.path is not None and gguf_copy_current(b.path) is False:
        raise MemstoreError(f"the base model changed on disk: {b.path} holds other bytes than "
                            "the copy memstore dequantized from it (run memstore verify --base)")
    base = open_base(repo, check=False)
    rt = base.loaded.runtime
    if rt.dtype != b.info.get("hash_dtype", "float32") or rt.device_map is not None:
        return
    base.reset()
    actual = hash_with_bar(base.model)
    if actual != b.hash:
        raise MemstoreError(f"the base model's weights changed on disk: they hash to "
                            f"{actual[:16]}, recorded at init {b.hash[:16]} (run memstore "
                            "verify --base)")


def hash_with_bar(model) -> str:
    """model_hash, with a bar of the bytes hashed (seconds to minutes: every weight)."""
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    with progress(total=total, desc="hashing the base weights", unit="B", unit_scale=True,
                  unit_divisor=1024) as bar:
        return model_hash(model, lambda t: bar.update(t.numel() * t.element_size()))


def built_with(base) -> dict[str, str]:
    """The device type and dtype a state was built on: a rebuild is bit-identical on the
    same ones (README, "Devices and precision")."""
    w = base.adapter.embeddings(base.model).weight
    return {"device": w.device.type, "dtype": str(w.dtype).removeprefix("torch.")}


@dataclass
class Verification:
    commit: str | None
    n_tensors: int
    problems: list[str] = field(default_factory=list)
    built_with: dict[str, str] | None = None  # as the manifest says
    rebuilt_with: dict[str, str] | None = None  # this verification's
    notes: list[str] = field(default_factory=list)  # what was not compared, and why

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise ValidationError(f"{directory}: " + ("not a directory" if Path(directory).exists()
                                                   else "no such directory"))
    try:
        manifest = json.loads(_read_own_file(path).decode("utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{directory} has no {MANIFEST}: not a memstore export") from None
    except (ValueError, RecursionError) as e:
        raise ValidationError(f"{path}: unreadable manifest ({str(e)[:200]})") from None
    if not is_manifest(manifest):
        raise ValidationError(f"{path}: not a memstore manifest (malformed base, commit, "
                              "tensors or files)")
    return manifest


def _read_own_file(path: Path) -> bytes:
    """The bytes of `path` where it is a regular file of its own, as objects are read
    (open_own_file): a manifest through a link would be another's, and a pipe would never
    end the read (ValidationError); FileNotFoundError."""
    try:
        with open_own_file(path) as f:
            return f.read()
    except NotOwnFileError as e:
        if e.what == "a symbolic link":
            raise ValidationError(f"{path} is a symbolic link, which memstore does not read "
                                  "through") from None
        raise ValidationError(f"{path} is not a regular file") from None
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ValidationError(f"{path}: unreadable ({e.strerror})") from None


def _json_file(path: Path) -> Any:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(d, dict):
        d.pop("transformers_version", None)  # written by whichever version saved it
    return d


def _check_files(out: Path, manifest: dict[str, Any], base) -> list[str]:
    """Every file a loader reads equals what an export writes now (JSON compared by
    content), every file the manifest lists has its hash, and no other file is there."""
    problems = []
    listed = manifest.get("files", {})
    weights = set(weight_files(out, required=False))
    with tempfile.TemporaryDirectory() as t:
        fresh = Path(t)
        base.model.config.save_pretrained(fresh)
        if getattr(base.model, "generation_config", None) is not None:
            base.model.generation_config.save_pretrained(fresh)
        save_as_base(base.tokenizer, fresh)
        expected = {f.name for f in fresh.iterdir()}
        for name in sorted(expected | {n for n in LOADER_FILES if (out / n).exists()}):
            if name == SAFETENSORS_INDEX and "model.safetensors" not in weights:
                continue  # a sharded export's index: its files are the weights read below
            got, want = out / name, fresh / name
            if missing(got):
                if name not in listed:  # else listed_file_problems says so
                    problems.append(f"{name}: missing from the export")
            elif not want.exists():
                problems.append(f"{name}: not written by an export of this model")
            elif name.endswith(".json"):
                if _json_file(got) != _json_file(want):
                    problems.append(f"{name}: differs from the rebuilt model's")
            elif got.read_bytes() != want.read_bytes():
                problems.append(f"{name}: differs from the rebuilt model's")
    problems += listed_file_problems(out, listed)
    for p in sorted(out.iterdir()):
        name = p.name
        if name == MANIFEST or name in weights:
            continue
        if name.endswith(WEIGHT_SUFFIXES):
            problems.append(f"{name}: an extra weight file (not part of the export)")
        elif listed and name not in listed:
            problems.append(f"{name}: not part of the export")
    return problems


def recorded_problems(repo: Repository, manifest: dict[str, Any]) -> list[str]:
    """What the manifest records that the repository can say again: the commit's settings
    (those of its newest update set; a commit whose state holds none, as a revert of every
    fact, has none of its own: its export records the repository's settings of the time,
    as an export of the base does, and a later `memstore config` changes nothing in it).
    A manifest of a newer format than this memstore writes is refused."""
    fmt = manifest.get("format", 1)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > FORMAT:
        raise ValidationError(f"the manifest's format {fmt!r} is not one this memstore reads "
                              f"(up to {FORMAT}): a newer memstore wrote it?")
    commit = manifest.get("commit")
    if commit is not None and repo.chain_sets(commit) and \
            manifest.get("settings") != settings_of(repo, commit):
        return ["settings: differ from those the manifest's commit was written with"]
    return []


def _left_out_problems(manifest: dict[str, Any], unread: tuple[str, ...]) -> list[str]:
    """The manifest's `left_out` (the tensors of the base's files that transformers loads
    into no model, which no export holds: what export warned of) against those the
    rebuilt model did not read: a manifest edited to drop them says the export is whole."""
    said = manifest.get("left_out", [])
    if said == list(unread):
        return []
    return [(f"left_out: the manifest lists {_quoted(str(said))}, the rebuilt model leaves "
             f"{_quoted(str(list(unread)))} of the base's files unread")]


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "base"


def recorded_notes(repo: Repository, manifest: dict[str, Any], v: Verification) -> None:
    """Adds to `v` what the manifest's informational fields say against this repository and
    this rebuild. `rev` (the name the export was asked for) may name another commit now (a
    branch moved on) or none: a note. `base.spec` may name the same base (by hash)
    otherwise, as a clone on a copy elsewhere does: a note. `built_with` (the device type
    and dtype the state was built in) other than this rebuild's, where every tensor is the
    same: a note (a state with no edited tensor, as the base's, is alike on every device),
    but for a full checkpoint another dtype is a problem, since its tensors have the dtype
    they were rebuilt in here."""
    commit, rev = manifest.get("commit"), manifest.get("rev")
    if isinstance(rev, str):
        try:
            # an export of no REV records 'HEAD': the current state, the base's on a
            # branch with no commits yet
            now = state_commit(repo, None if rev == "HEAD" else rev)
        except MemstoreError:
            v.notes.append(f"rev: {_quoted(rev)} names no revision of this repository now")
        else:
            if now != commit:
                v.notes.append(f"rev: {_quoted(rev)} names {_short(now)} now, not the "
                               f"exported {_short(commit)}")
    spec = manifest["base"].get("spec")
    if isinstance(spec, str) and spec != repo.base.spec:
        v.notes.append(f"base.spec: the export names its base {_quoted(spec)}, this "
                       f"repository {repo.base.spec!r} (the same weights, by hash)")
    made, again = v.built_with, v.rebuilt_with
    if not v.ok or made is None or again is None or made == again:
        return
    if manifest.get("export_format", "full") == "full" and made["dtype"] != again["dtype"]:
        v.problems.append(f"built_with: records dtype {made['dtype']}, but the checkpoint's "
                          f"tensors are {again['dtype']}, as rebuilt here")
    else:
        v.notes.append(f"built_with: built with {made['device']}/{made['dtype']}, rebuilt "
                       f"here with {again['device']}/{again['dtype']} to the same bits")


def check_recorded(out_dir: str | Path, manifest: dict[str, Any]) -> None:
    """The manifest's informational fields have their types: `rev` and `base.spec`
    strings, `built_with` (when there) a device type and a dtype."""
    made = manifest.get("built_with")
    if not isinstance(manifest.get("rev", ""), str) or \
            not isinstance(manifest["base"].get("spec", ""), str) or not (
            made is None or (isinstance(made, dict) and set(made) == {"device", "dtype"}
                             and all(isinstance(x, str) for x in made.values()))):
        raise ValidationError(f"{Path(out_dir) / MANIFEST}: damaged manifest (rev, base.spec "
                              "or built_with)")


def check_source(repo: Repository, out_dir: str | Path, manifest: dict[str, Any]) -> None:
    """The export was made from this repository's base and from one of its commits."""
    b = repo.base
    if manifest["base"]["hash"] != b.hash:
        raise MemstoreError(f"{out_dir} was exported from another base model (hash "
                            f"{manifest['base']['hash'][:12]}, this repository's is {b.hash[:12]})")
    commit = manifest.get("commit")
    if commit is not None and not repo.has_commit(commit):
        raise MemstoreError(f"{out_dir} was exported from commit {commit[:12]}, which this "
                            "repository does not have")


def verify(repo: Repository, out_dir: str | Path) -> Verification:
    """Rebuilds the exported revision from the repository and compares it with the files a
    loader reads (every tensor, the config and the tokenizer), with every file the
    manifest lists, and refuses extra weight files. PEFT and GGUF exports (`export_format`
    in the manifest) are checked by memstore.store.exports."""
    manifest = read_manifest(out_dir)
    check_source(repo, out_dir, manifest)
    check_recorded(out_dir, manifest)
    if manifest.get("export_format", "full") != "full":
        from .exports import verify_served

        return verify_served(repo, out_dir, manifest)
    commit = manifest.get("commit")
    check_base(repo)
    check_base_weights(repo)
    base = state_of(repo, commit)
    # the rebuilt model's tensors, one at a time (a device map's offloaded ones are read
    # back for their turn only): hash, layout, and which tensor it is (tied weights share one)
    # by the names save_pretrained writes them under (saved_names: Gemma 3's text model as
    # language_model.model.…, GPT-NeoX's head as embed_out), which the export's files hold
    state = base.model.state_dict(keep_vars=True)
    saved_as = saved_names(base.model)
    rebuilt: dict[str, tuple[str, tuple[str, tuple[int, ...]]]] = {}
    seen: dict[int, tuple[str, tuple[str, tuple[int, ...]]]] = {}
    # the bar counts tensors, as the result line does: tied weights (a head that is the
    # embedding) are one, hashed and saved once (it counted 273 for SmolLM2's 272)
    with progress(total=len({id(t) for t in state.values()}), desc="comparing tensors",
                  unit="tensor") as bar:
        for n, t in state_items(base.model):
            if id(state[n]) not in seen:
                seen[id(state[n])] = (tensor_sha256(t), layout(t))
                bar.update()
            rebuilt[saved_as[n]] = seen[id(state[n])]
    out = Path(out_dir)
    layouts: dict[str, tuple[str, tuple[int, ...]]] = {}
    # a weight file missing is one line, as any other file missing (not one per tensor)
    weights = weight_files(out, required=False) or ["model.safetensors"]
    absent = [f for f in weights if not os.path.lexists(out / f)]
    files = checkpoint_tensors(out, [f for f in weights if f not in absent], layouts=layouts,
                               desc="reading the export's tensors")
    card, notes = card_problems(repo, out, manifest)
    problems = _check_files(out, manifest, base) + card + recorded_problems(repo, manifest)
    problems += _left_out_problems(manifest, base.loaded.unread)
    problems += [f"{f}: missing from the export" for f in absent
                 if f not in manifest.get("files", {})]  # else listed_file_problems said so
    for name, sha in sorted(files.items()):
        if name not in rebuilt:
            problems.append(f"{name}: not a tensor of the rebuilt model")
        elif rebuilt[name][0] != sha:
            problems.append(f"{name}: differs from the rebuilt model")
        elif layouts[name] != rebuilt[name][1]:
            problems.append(f"{name}: dtype or shape {layouts[name]} differs from the rebuilt "
                            f"model's {rebuilt[name][1]}")
        elif manifest["tensors"].get(name) != sha:
            problems.append(f"{name}: differs from the manifest")
    saved = {id(state[n]) for n in state if saved_as[n] in files}
    for name in sorted(n for n in state if saved_as[n] not in files) if not absent else []:
        if id(state[name]) not in saved:  # tied weights are saved once
            problems.append(f"{saved_as[name]}: missing from the checkpoint")
    for name in sorted(set(manifest["tensors"]) - set(files)) if not absent else []:
        problems.append(f"{name}: in the manifest but not in the checkpoint")
    v = Verification(commit, len(files), problems, manifest.get("built_with"),
                     built_with(base), notes)
    recorded_notes(repo, manifest, v)
    return v


@dataclass
class BaseVerification:
    path: str | None
    recorded: str
    actual: str
    changed_files: list[str] = field(default_factory=list)  # settings, tokenizer (side_files)

    @property
    def ok(self) -> bool:
        return self.recorded == self.actual and not self.changed_files


def verify_base(repo: Repository) -> BaseVerification:
    """Re-hashes the base model from disk (not from this process's cache). When the hash
    still matches, the recorded size and mtime are refreshed, so the cheap check passes
    again (e.g. after the files were only touched or copied)."""
    b = repo.base
    where = b.path or b.spec
    if b.path is not None and not Path(b.path).exists():
        raise MemstoreError(f"the base model is gone: {b.path}")
    flags = runtime_from_flags()
    dtype = b.info.get("hash_dtype", "float32")  # hashed as loaded at init
    with stage(f"loading the model {b.spec}"):
        model = load_model(str(where), runtime=Runtime(flags.device, dtype), fresh=True).model
    actual = hash_with_bar(model)
    changed = changed_side_files(b.info.get("side_files"), side_files(resolve(where)))
    v = BaseVerification(b.path, b.hash, actual, changed)
    if v.ok and b.path is not None and repo.base_unchanged() is False:
        repo.set_base_path(b.path)
    return v
