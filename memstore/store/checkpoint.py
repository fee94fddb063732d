"""Exported checkpoints and their verification.

`export` writes the state of a revision as a full Hugging Face checkpoint (safetensors,
config, tokenizer) that `AutoModelForCausalLM.from_pretrained` loads offline, plus
`memstore-manifest.json`: the base hash, the commit, the settings and the sha256 of every
tensor in the checkpoint. `verify` rebuilds the same state from the repository and compares
every tensor; `verify_base` re-hashes the base model fully."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MemstoreError, ValidationError
from ..models.hashing import model_hash, tensor_sha256
from ..models.loading import load_model
from .outdir import MANIFEST, check_out, written_beside
from .repository import Repository
from .states import BASE, check_base, load_state, state_commit, state_of

FORMAT = 1


def checkpoint_tensors(directory: str | Path) -> dict[str, str]:
    """name → sha256 of every tensor in the checkpoint's safetensors files."""
    from safetensors import safe_open

    out: dict[str, str] = {}
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise MemstoreError(f"{directory}: no .safetensors files")
    for f in files:
        with safe_open(str(f), "pt") as st:
            for name in st.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                out[name] = tensor_sha256(st.get_tensor(name))
    return out


def settings_of(repo: Repository, commit: str | None) -> Any:
    if commit is not BASE:
        sets = repo.chain_sets(commit)
        if sets:
            return sets[-1].update_set.settings
    s = repo.settings
    return s.to_dict() if s else None


def export(repo: Repository, rev: str | None, out_dir: str | Path, *,
           force: bool = False, card: str | None = None) -> dict[str, Any]:
    """Writes the state of `rev` (None: HEAD) to `out_dir`; refuses a non-empty `out_dir`
    unless `force` and it holds a previous export (then it is replaced). Written beside it
    and renamed into place (memstore.store.outdir), so an interrupted export leaves no half
    checkpoint under its name. `card`: the model card, written as README.md. Returns the
    manifest."""
    out = check_out(out_dir, force)
    commit = state_commit(repo, rev)
    base = load_state(repo, rev)
    with written_beside(out) as tmp:
        base.model.save_pretrained(tmp)
        base.tokenizer.save_pretrained(tmp)
        b = repo.base
        manifest = {
            "format": FORMAT, "base": {"spec": b.spec, "hash": b.hash},
            "commit": commit, "rev": rev or "HEAD", "settings": settings_of(repo, commit),
            "tensors": checkpoint_tensors(tmp),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if card is not None:
            (tmp / "README.md").write_text(card)
    return manifest


@dataclass
class Verification:
    commit: str | None
    n_tensors: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise ValidationError(f"{directory}: no such directory")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValidationError(f"{directory} has no {MANIFEST}: not a memstore export") from None
    except ValueError as e:
        raise ValidationError(f"{path}: unreadable manifest ({e})") from None
    if not (isinstance(manifest, dict) and isinstance(manifest.get("base"), dict)
            and isinstance(manifest["base"].get("hash"), str)
            and isinstance(manifest.get("tensors"), dict)):
        raise ValidationError(f"{path}: not a memstore manifest (no base hash or tensors)")
    return manifest


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
    """Rebuilds the exported revision from the repository and compares every tensor of the
    checkpoint with it (and with the manifest). PEFT and GGUF exports (`export_format` in the
    manifest) are checked by memstore.store.exports."""
    manifest = read_manifest(out_dir)
    check_source(repo, out_dir, manifest)
    if manifest.get("export_format", "full") != "full":
        from .exports import verify_served

        return verify_served(repo, out_dir, manifest)
    commit = manifest.get("commit")
    check_base(repo)
    state = state_of(repo, commit).model.state_dict()
    files = checkpoint_tensors(out_dir)
    problems = []
    for name, sha in sorted(files.items()):
        if name not in state:
            problems.append(f"{name}: not a tensor of the rebuilt model")
        elif tensor_sha256(state[name]) != sha:
            problems.append(f"{name}: differs from the rebuilt model")
        elif manifest["tensors"].get(name) != sha:
            problems.append(f"{name}: differs from the manifest")
    saved = {state[n].data_ptr() for n in files if n in state}
    for name in sorted(set(state) - set(files)):
        if state[name].data_ptr() not in saved:  # tied weights are saved once
            problems.append(f"{name}: missing from the checkpoint")
    for name in sorted(set(manifest["tensors"]) - set(files)):
        problems.append(f"{name}: in the manifest but not in the checkpoint")
    return Verification(commit, len(files), problems)


@dataclass
class BaseVerification:
    path: str | None
    recorded: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.recorded == self.actual


def verify_base(repo: Repository) -> BaseVerification:
    """Re-hashes the base model from disk (not from this process's cache). When the hash
    still matches, the recorded size and mtime are refreshed, so the cheap check passes
    again (e.g. after the files were only touched or copied)."""
    b = repo.base
    where = b.path or b.spec
    if b.path is not None and not Path(b.path).exists():
        raise MemstoreError(f"the base model is gone: {b.path}")
    actual = model_hash(load_model(str(where)).model)
    if actual == b.hash and b.path is not None and repo.base_unchanged() is False:
        repo.set_base_path(b.path)
    return BaseVerification(b.path, b.hash, actual)
