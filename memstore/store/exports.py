"""`memstore export --format full|peft|gguf` and the verification of every kind of export.

Every export is a directory: the model files, a model card (README.md, export_card) and
`memstore-manifest.json` (base hash, commit, settings, the sha256 of every tensor, and for
PEFT and GGUF exports `export_format` and what `verify` needs to rebuild them: `since`,
`max_rank`, the GGUF dtype). It is written beside OUT and renamed into place, so an
interrupted export leaves nothing under its name; OUT itself must not be a symbolic link.
The full checkpoint is memstore.store.checkpoint's; PEFT adapters and GGUF files are built
in peft_export and gguf_export."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import MemstoreError, ValidationError
from ..models.hashing import tensor_sha256
from ..serving import card as cards
from ..serving.gguf import read_layout, stored_sha256
from ..serving.peft import CONFIG
from ..serving.peft import WEIGHTS as ADAPTER_WEIGHTS
from . import checkpoint
from .checkpoint import (
    Verification,
    checkpoint_tensors,
    layout,
    protected_paths,
    settings_of,
)
from .export_card import GGUF_FILE, card_of, card_problems, card_record
from .export_target import (
    MANIFEST,
    Target,
    check_target,
    listed_file_problems,
    missing,
    write_manifest,
    written_beside,
)
from .gguf_export import BuiltGguf, build_gguf
from .peft_export import (
    BuiltAdapter,
    build_adapter,
    check_widths,
    layer_report,
    truncation_efficacy,
)
from .repository import Repository
from .states import BASE, RUNTIME_KEY, check_base, runtime_of, state_commit

FORMATS = ("full", "peft", "gguf")
_TYPES = {"float32": 0, "float16": 1}  # GGML's F32 and F16


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_options(format: str, since: str | None, max_rank: int | None,
                  gguf_dtype: str | None) -> None:
    """The export options that go together (before any work)."""
    if format not in FORMATS:
        raise ValidationError(f"unknown export format {format!r}; choose from "
                              f"{', '.join(FORMATS)}")
    if since is not None and format != "peft":
        raise ValidationError("--since works with --format peft only (an adapter applies to a "
                              "state; a checkpoint or GGUF file is a whole state)")
    if max_rank is not None and format != "peft":
        raise ValidationError("--max-rank works with --format peft only")
    if max_rank is not None and max_rank < 1:
        raise ValidationError(f"--max-rank must be at least 1, not {max_rank}")
    if gguf_dtype is not None and format != "gguf":
        raise ValidationError("--gguf-dtype works with --format gguf only")


def runtime_flags(repo: Repository, format: str) -> tuple[str, ...]:
    """The --device and --dtype that rebuild a full or GGUF export bit for bit (their
    weights are built in the runtime; an adapter's factors on the CPU from the records):
    none where it is built as a plain command here builds it, on the CPU in float32 with
    no other choice stored in the repository."""
    if format == "peft":
        return ()
    rt = runtime_of(repo)
    stored = repo.get_config(RUNTIME_KEY)
    stored = stored if isinstance(stored, dict) else {}
    plain = ("cpu", "float32")
    if (rt.device, rt.dtype) == plain == (stored.get("device", "cpu"),
                                          stored.get("dtype", "float32")):
        return ()
    return ("--device", rt.device, "--dtype", rt.dtype)


def _manifest(repo: Repository, kind: str, rev: str, commit: str | None,
              **fields: Any) -> dict[str, Any]:
    b = repo.base
    return {"format": checkpoint.FORMAT, "export_format": kind,
            "base": {"spec": b.spec, "hash": b.hash}, "commit": commit, "rev": rev,
            "settings": settings_of(repo, commit), **fields}


# -- export -------------------------------------------------------------------------------


def export_as(repo: Repository, rev: str | None, out_dir: str | Path, *, format: str = "full",
              since: str | None = None, max_rank: int | None = None,
              gguf_dtype: str | None = None, force: bool = False) -> dict[str, Any]:
    """Exports the state of `rev` (None: HEAD) as `format`; returns the manifest (with, for
    PEFT, per layer the rank kept and the error, and for GGUF the sizes and the
    re-quantisation figures)."""
    check_options(format, since, max_rank, gguf_dtype)
    commit = state_commit(repo, rev)
    base_of = state_commit(repo, since) if since is not None else BASE
    out = check_target(out_dir, force, protected_paths(repo))
    name = rev or "HEAD"
    runtime = runtime_flags(repo, format)
    record = card_record(str(out_dir), runtime)
    if format == "full":
        return checkpoint.export(repo, rev, out_dir, force=force, card=record, commit=commit)
    if format == "peft":
        return _export_peft(repo, name, commit, base_of, out, max_rank, record)
    return _export_gguf(repo, name, commit, out, gguf_dtype or "f32", record)


def _export_peft(repo: Repository, rev: str, commit: str | None, since: str | None, out: Target,
                 max_rank: int | None, record: dict[str, Any]) -> dict[str, Any]:
    from ..serving.peft import write_adapter

    check_base(repo)  # the adapter applies to the base its manifest and card name
    built = build_adapter(repo, commit, since, max_rank)
    check_widths(repo, built)
    layers = layer_report(built)
    truncation = None
    if any(f.truncated for f in built.factors.values()):
        truncation = truncation_efficacy(repo, built)
    with written_beside(out) as tmp:
        write_adapter(tmp, built.adapter)
        manifest = _manifest(repo, "peft", rev, commit, since=since, max_rank=max_rank,
                             rank=built.adapter.rank, layers=layers, truncation=truncation,
                             tensors=checkpoint_tensors(tmp, [ADAPTER_WEIGHTS]), card=record)
        (tmp / cards.CARD).write_text(card_of(repo, manifest), encoding="utf-8")
        write_manifest(tmp, manifest)
    return manifest


def _export_gguf(repo: Repository, rev: str, commit: str | None, out: Target, dtype: str,
                 record: dict[str, Any]) -> dict[str, Any]:
    from ..serving.gguf import write_copy

    built = build_gguf(repo, commit, dtype, measure=True)
    layout = built.layout
    layers = {str(l): {"tensor": name, **built.requantization[l]}
              for l, name in built.layers.items()}
    with written_beside(out) as tmp:
        target = tmp / GGUF_FILE
        write_copy(layout, target, built.replace)
        written = read_layout(target)
        manifest = _manifest(repo, "gguf", rev, commit, gguf={
            "file": GGUF_FILE, "dtype": dtype, "metadata_sha256": _sha256(layout.head),
            "size": target.stat().st_size, "base_size": layout.path.stat().st_size},
            layers=layers, built_with=built.built_with, card=record,
            tensors={t.name: stored_sha256(target, t) for t in written.tensors})
        (tmp / cards.CARD).write_text(card_of(repo, manifest), encoding="utf-8")
        write_manifest(tmp, manifest)
    return manifest


# -- verify -------------------------------------------------------------------------------


def compare_tensors(actual: dict[str, str], rebuilt: dict[str, str],
                    recorded: dict[str, str]) -> list[str]:
    """Problems between the hashes of the export's tensors, of the rebuilt ones, and of the
    manifest's."""
    problems = []
    for name, sha in sorted(actual.items()):
        if name not in rebuilt:
            problems.append(f"{name}: not a tensor of the rebuilt export")
        elif rebuilt[name] != sha:
            problems.append(f"{name}: differs from the rebuilt export")
        elif recorded.get(name) != sha:
            problems.append(f"{name}: differs from the manifest")
    problems += [f"{n}: missing from the export" for n in sorted(set(rebuilt) - set(actual))]
    problems += [f"{n}: in the manifest but not in the export"
                 for n in sorted(set(recorded) - set(actual))]
    return problems


def verify_served(repo: Repository, out_dir: str | Path, manifest: dict[str, Any]) -> Verification:
    """Rebuilds a PEFT or GGUF export from the repository and compares it, tensor by tensor
    (checkpoint.verify calls this for manifests with such an export_format)."""
    out = Path(out_dir)
    kind = manifest.get("export_format")
    v = _verify_peft(repo, out, manifest) if kind == "peft" else (
        _verify_gguf(repo, out, manifest) if kind == "gguf" else None)
    if v is None:
        raise ValidationError(f"{out / MANIFEST}: unknown export_format {kind!r}")
    listed = manifest.get("files", {})
    problems, v.notes = card_problems(repo, out, manifest)
    v.problems += problems + checkpoint.recorded_problems(repo, manifest)
    v.problems += listed_file_problems(out, listed)
    v.problems += [f"{p.name}: not part of the export" for p in sorted(out.iterdir())
                   if p.name != MANIFEST and p.name not in listed]
    checkpoint.recorded_notes(repo, manifest, v)
    return v


def _verify_peft(repo: Repository, out: Path, manifest: dict[str, Any]) -> Verification:
    commit = manifest.get("commit")
    since, max_rank = manifest.get("since"), manifest.get("max_rank")
    if commit is None:  # an adapter always takes some commit's weights
        raise ValidationError(f"{out / MANIFEST}: damaged manifest (an adapter with no commit)")
    if not (since is None or isinstance(since, str)) or not (
            max_rank is None or (isinstance(max_rank, int) and max_rank >= 1)):
        raise ValidationError(f"{out / MANIFEST}: damaged manifest (since, max_rank)")
    if since is not None and not repo.has_commit(since):
        raise MemstoreError(f"{out} applies to commit {since[:12]}, which this "
                            "repository does not have")
    if not os.path.lexists(out / ADAPTER_WEIGHTS):
        raise MemstoreError(f"{out}: no {ADAPTER_WEIGHTS} (the adapter's weights), which its "
                            "manifest says it holds")
    built = build_adapter(repo, commit, since, max_rank)
    check_widths(repo, built)  # verified against its rebuild, it would pass
    rebuilt = {n: tensor_sha256(t) for n, t in built.adapter.tensors.items()}
    layouts: dict[str, tuple[str, tuple[int, ...]]] = {}
    try:
        actual = checkpoint_tensors(out, [ADAPTER_WEIGHTS], layouts)
    except Exception as e:  # noqa: BLE001 - safetensors' error for a damaged file
        raise MemstoreError(f"{out}: unreadable adapter weights ({e})") from None
    problems = compare_tensors(actual, rebuilt, manifest["tensors"])
    problems += [f"{n}: dtype or shape {layouts[n]} differs from the rebuilt adapter's "
                 f"{layout(t)}" for n, t in sorted(built.adapter.tensors.items())
                 if n in layouts and actual[n] == rebuilt[n] and layouts[n] != layout(t)]
    if manifest.get("rank") != built.adapter.rank or \
            not _same_layers(layer_report(built), manifest.get("layers")):
        problems.append("rank or layers: differ from the rebuilt adapter's")
    config, listed = out / CONFIG, manifest.get("files", {})
    if missing(config):
        if CONFIG not in listed:  # else listed_file_problems says so
            problems.append(f"{CONFIG}: missing from the export")
    elif not _same_config(config, built, listed):
        problems.append(f"{CONFIG}: differs from the rebuilt adapter")
    return Verification(commit, len(rebuilt), problems)


def _same_config(config: Path, built: BuiltAdapter, listed: dict[str, str]) -> bool:
    """The adapter's config is the rebuilt one; but for base_model_name_or_path, which for a
    base on a local path is where it lay on the machine that exported it (a clone's base,
    of the same content, lies elsewhere): that may differ where the file is as the
    manifest lists it (its sha256; the base's content is the manifest's base hash)."""
    data = config.read_bytes()
    if data == built.adapter.config_bytes():
        return True
    try:
        d = json.loads(data)
    except (ValueError, RecursionError):
        return False
    key = "base_model_name_or_path"
    return (isinstance(d, dict) and isinstance(d.get(key), str)
            and {**d, key: None} == {**json.loads(built.adapter.config_bytes()), key: None}
            and listed.get(CONFIG) == _sha256(data))


def _same_layers(rebuilt: dict[str, dict[str, Any]], recorded: Any) -> bool:
    """The layer report of the rebuilt adapter is the manifest's: module and ranks exactly,
    the relative error to rounding (it is summed from singular values that LAPACK computes
    in the last bits as the CPU's code path goes, where the rounded factors agree)."""
    rebuilt = json.loads(json.dumps(rebuilt))
    if not isinstance(recorded, dict) or set(recorded) != set(rebuilt):
        return False
    for layer, r in rebuilt.items():
        m = recorded[layer]
        if not isinstance(m, dict) or set(m) != set(r) or any(
                m[k] != r[k] for k in r if k != "error"):
            return False
        e = m["error"]
        if not isinstance(e, float) or not math.isclose(e, r["error"], rel_tol=1e-9,
                                                         abs_tol=1e-12):
            return False  # (an int: json.dumps writes the error as a float, 0.0 included)
    return True


def _verify_gguf(repo: Repository, out: Path, manifest: dict[str, Any]) -> Verification:
    info = manifest.get("gguf") if isinstance(manifest.get("gguf"), dict) else {}
    target = out / GGUF_FILE
    if target.is_symlink():
        raise MemstoreError(f"{target} is a symbolic link, which memstore does not read "
                            "through")
    if not target.is_file():
        raise MemstoreError(f"{out}: no {GGUF_FILE} (the GGUF file), which its manifest says "
                            "it holds")
    built = build_gguf(repo, manifest.get("commit"), str(info.get("dtype", "f32")))
    base = built.layout
    written = read_layout(target)
    rebuilt = {t.name: _sha256(built.replace[t.name].tobytes()) if t.name in built.replace
               else stored_sha256(base.path, t) for t in base.tensors}
    actual = {t.name: stored_sha256(target, t) for t in written.tensors}
    problems = compare_tensors(actual, rebuilt, manifest["tensors"])
    if written.head != base.head:
        problems.append("metadata: differs from the base file's")
    recorded = {k: info.get(k) for k in ("file", "metadata_sha256", "size", "base_size")}
    if recorded != {"file": GGUF_FILE, "metadata_sha256": _sha256(base.head),
                    "size": target.stat().st_size, "base_size": base.path.stat().st_size}:
        problems.append("gguf: the manifest's file, metadata hash or sizes differ from the "
                        "export's")
    if not _same_edited_layers(built, manifest.get("layers")):
        problems.append("layers: differ from the rebuilt export's (the edited layers, their "
                        "tensors or base types)")
    expected = {t.name: (t.dims, t.type) for t in base.tensors}
    expected.update({t: (expected[t][0], _TYPES[str(a.dtype)]) for t, a in built.replace.items()})
    for t in written.tensors:
        if expected.get(t.name) != (t.dims, t.type):
            problems.append(f"{t.name}: shape or type differs from the base file's")
    return Verification(manifest.get("commit"), len(rebuilt), problems,
                        manifest.get("built_with"), built.built_with)


def _same_edited_layers(built: BuiltGguf, recorded: Any) -> bool:
    """The manifest's layers of a GGUF export (what the card's table shows) are the rebuilt
    export's: each edited layer, its tensor and the base file's type of it exactly (the
    re-quantisation figures are measured, not rebuilt: their keys only)."""
    if not isinstance(recorded, dict) or set(recorded) != {str(l) for l in built.layers}:
        return False
    for l, name in built.layers.items():
        r = recorded[str(l)]
        if not isinstance(r, dict) or set(r) != {"tensor", "base_type", "requantized"} or \
                r["tensor"] != name or r["base_type"] != built.layout.tensor(name).type_name:
            return False
    return True
