"""GGUF files: a copy of a base file with some tensors replaced, everything else byte for byte.

A GGUF file is: a header (magic, version, tensor count, metadata count), the metadata
key/values, one info record per tensor (name, dims, type, offset), padding to the file's
alignment (`general.alignment`, default 32), then the tensor data, each tensor starting at
an aligned offset from the start of the data. The copy keeps the header and metadata bytes
as they are, writes new info records (a replaced tensor gets its new type and every later
tensor a new offset) and copies every other tensor's bytes unchanged, in their original
quantisation.

Dims are stored fastest-varying first (ne0 = columns), so a weight that numpy/torch see as
(d_out, d_in) has dims (d_in, d_out). llama.cpp stores every family's `ffn_down` as the
operator (d_out, d_in), including GPT-2's (its converter transposes the Conv1D weight and
transformers' GGUF loader transposes it back). Tensor names come from gguf-py's map of
Hugging Face names (e.g. model.layers.3.mlp.down_proj → blk.3.ffn_down). Only ffn_down is
replaced here, which transformers' loader does not permute (it reverses llama.cpp's Q/K
permutation only)."""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MemstoreError

DTYPES = ("f32", "f16")
_COPY_CHUNK = 1 << 24


class GgufError(MemstoreError):
    """A GGUF file this module cannot read or copy (a user-facing, one-line error)."""


@dataclass(frozen=True)
class GgufTensor:
    name: str
    type: int  # gguf.GGMLQuantizationType
    dims: tuple[int, ...]  # ne0 first
    offset: int  # absolute, in the file
    n_bytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy/torch shape (slowest first)."""
        return tuple(reversed(self.dims))

    @property
    def type_name(self) -> str:
        import gguf

        return gguf.GGMLQuantizationType(self.type).name


@dataclass(frozen=True)
class GgufLayout:
    path: Path
    head: bytes  # header + metadata, up to the first tensor info
    alignment: int
    architecture: str
    tensors: tuple[GgufTensor, ...]

    def tensor(self, name: str) -> GgufTensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise GgufError(f"{self.path}: no tensor {name}")


def read_layout(path: str | Path) -> GgufLayout:
    """The layout of a little-endian GGUF file (GgufError if it is not one)."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, KeyError, IndexError, OSError) as e:
        raise GgufError(f"{path}: not a readable GGUF file ({e})") from None
    if reader.byte_order != "I":
        raise GgufError(f"{path}: big-endian GGUF files are not supported")
    if not reader.tensors:
        raise GgufError(f"{path}: a GGUF file without tensors")
    arch = reader.fields.get("general.architecture")
    if arch is None:
        raise GgufError(f"{path}: no general.architecture in the GGUF metadata")
    first = reader.tensors[0].field.offset
    tensors = tuple(
        GgufTensor(t.name, int(t.tensor_type), tuple(int(d) for d in t.field.parts[3]),
                   int(t.data_offset), int(t.n_bytes))
        for t in reader.tensors)
    return GgufLayout(Path(path), bytes(reader.data[:first]), int(reader.alignment),
                      str(arch.contents()), tensors)


def tensor_name(architecture: str, n_blocks: int, hf_weight_name: str) -> str:
    """The GGUF name of a Hugging Face weight (…weight) in a model of `architecture`."""
    import gguf

    archs = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    if architecture not in archs:
        raise GgufError(f"GGUF architecture {architecture!r} is unknown to gguf-py")
    module = hf_weight_name.removesuffix(".weight")
    name = gguf.get_tensor_name_map(archs[architecture], n_blocks).get_name(module)
    if name is None:
        raise GgufError(f"no GGUF name for {hf_weight_name} in a {architecture} model")
    return name + ".weight"


def _info(name: str, dims: tuple[int, ...], type_: int, offset: int) -> bytes:
    raw = name.encode()
    return (struct.pack("<Q", len(raw)) + raw + struct.pack("<I", len(dims))
            + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", type_, offset))


def _aligned(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def write_copy(layout: GgufLayout, out: Path, replace: dict[str, np.ndarray]) -> None:
    """Writes `layout`'s file to `out` with the tensors named in `replace` (name → a float32
    or float16 array of the tensor's numpy shape) stored as F32 or F16."""
    import gguf

    kinds = {np.dtype(np.float32): gguf.GGMLQuantizationType.F32,
             np.dtype(np.float16): gguf.GGMLQuantizationType.F16}
    plan = []  # (tensor, new type, n_bytes, relative offset)
    at = 0
    for t in layout.tensors:
        new = replace.get(t.name)
        if new is not None:
            if new.shape != t.shape or new.dtype not in kinds:
                raise GgufError(f"{t.name}: replacement {new.dtype} {new.shape}, "
                                f"expected float32/float16 {t.shape}")
            type_, n_bytes = int(kinds[new.dtype]), new.nbytes
        else:
            type_, n_bytes = t.type, t.n_bytes
        at = _aligned(at, layout.alignment)
        plan.append((t, type_, n_bytes, at))
        at += n_bytes
    with open(out, "wb") as f, open(layout.path, "rb") as src:
        f.write(layout.head)
        for t, type_, _, offset in plan:
            f.write(_info(t.name, t.dims, type_, offset))
        f.write(b"\0" * (_aligned(f.tell(), layout.alignment) - f.tell()))
        start = f.tell()
        for t, _, n_bytes, offset in plan:
            f.write(b"\0" * (start + offset - f.tell()))
            if t.name in replace:
                f.write(np.ascontiguousarray(replace[t.name]).tobytes())
            else:
                f.writelines(_chunks(src, t))


def _chunks(f, tensor: GgufTensor):
    """The bytes of `tensor` in the open file `f`, in chunks."""
    f.seek(tensor.offset)
    n = tensor.n_bytes
    while n > 0:
        chunk = f.read(min(n, _COPY_CHUNK))
        if not chunk:
            raise GgufError(f"{f.name}: truncated GGUF file")
        yield chunk
        n -= len(chunk)


def stored_sha256(path: str | Path, tensor: GgufTensor) -> str:
    """sha256 of a tensor's bytes as stored."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in _chunks(f, tensor):
            h.update(chunk)
    return h.hexdigest()


def dequantized(path: str | Path, names: list[str]) -> dict[str, np.ndarray]:
    """Tensors of a GGUF file as float32 arrays, dequantized with gguf-py as transformers'
    GGUF loader does."""
    import gguf

    reader = gguf.GGUFReader(path)
    found = {t.name: t for t in reader.tensors if t.name in names}
    missing = sorted(set(names) - set(found))
    if missing:
        raise GgufError(f"{path}: no tensor {missing[0]}")
    return {n: np.asarray(gguf.dequantize(t.data, t.tensor_type), dtype=np.float32)
            for n, t in found.items()}


def requantization(base: np.ndarray, edited: np.ndarray, type_: int) -> dict[str, float] | None:
    """How much of the edit survives re-quantising the edited tensor to the base's type:
    with Q the round trip through that type and ΔW = edited − base,
    `kept` = ‖Q(W+ΔW) − Q(W)‖ / ‖ΔW‖ and `error` = ‖Q(W+ΔW) − Q(W) − ΔW‖ / ‖ΔW‖ (0 and 1
    when nothing survives). None when gguf-py cannot quantise to that type."""
    import gguf

    def q(x: np.ndarray) -> np.ndarray:
        return gguf.dequantize(gguf.quantize(x.astype(np.float32), type_), type_) \
            .astype(np.float64)

    try:
        moved = q(edited) - q(base)
    except NotImplementedError:
        return None
    delta = edited.astype(np.float64) - base.astype(np.float64)
    norm = float(np.linalg.norm(delta))
    if norm == 0:
        return {"kept": 1.0, "error": 0.0}
    return {"kept": float(np.linalg.norm(moved)) / norm,
            "error": float(np.linalg.norm(moved - delta)) / norm}
