"""What the benchmarks share: paths, the model, result files, samples for GE and NS.

Each benchmark writes benchmarks/results/<name>.{json,md} (and a PNG where it plots), with
the command that produced it and the settings, and prints its markdown table."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# the evaluation data beside the checkout, or where MEMSTORE_BENCH_DATA says (a machine
# that receives the checkout alone, a GPU one say)
DATA = Path(os.environ.get("MEMSTORE_BENCH_DATA") or ROOT.parent / "shared" / "data")
RESULTS = ROOT / "benchmarks" / "results"


def command() -> str:
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def memstore(*args: str, cwd: Path) -> str:
    """Runs the `memstore` CLI (of this checkout) in `cwd`; its stdout."""
    out = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out.stdout


def spread(records: list, n: int) -> list:
    """`n` records spread evenly over all of them (none for n 0)."""
    if n <= 0:
        return []
    step = max(1, len(records) // n)
    return records[::step][:n]


def ge_sample(records: list, n: int = 32, prompts: int = 2) -> list:
    """A fixed sample for GE: `prompts` generation prompts of `n` records spread over all
    (one batch of generation; GE over all prompts of hundreds of records takes many minutes
    on 2 CPU cores)."""
    return [dataclasses.replace(r, generation_prompts=r.generation_prompts[:prompts])
            for r in spread(records, n)]


def write_results(name: str, data: dict, lines: list[str]) -> Path:
    """Writes <name>.json and <name>.md under benchmarks/results/ and prints the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / name
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2, default=float))
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return stem


def pyplot():
    """matplotlib's pyplot (headless), or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return None
    return plt


def cached(prefix: str, key: str, compute: Callable[[], dict]) -> dict:
    """The tensors `compute()` returns, cached under the memstore cache folder (bench-zs) by
    `key` (everything they depend on), in a file named
    <prefix>-<sha256 of key>-<sha256 of the file's bytes>.safetensors. A cached file is used
    only if its bytes still match the hash in its name and it is a regular file; one that does
    not is reported, left in place and computed again."""
    from safetensors.torch import load, save

    from memstore.models.loading import cache_dir

    folder = cache_dir() / "bench-zs"
    stem = f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:24]}-"
    for path in sorted(folder.glob(stem + "*.safetensors")) if folder.is_dir() else []:
        data = b"" if path.is_symlink() or not path.is_file() else path.read_bytes()
        if data and path.name[len(stem):-len(".safetensors")] == hashlib.sha256(data).hexdigest():
            return load(data)
        print(f"{path}: refused, not a regular file whose content matches its recorded hash; "
              "computing again", file=sys.stderr, flush=True)
    tensors = {name: t.contiguous() for name, t in compute().items()}
    data = save(tensors)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}{hashlib.sha256(data).hexdigest()}.safetensors"
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_bytes(data)
    tmp.replace(path)
    return tensors
