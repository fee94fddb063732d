"""Helpers for the CLI tests: a tiny random 4-layer Llama-family model saved as a Hugging
Face directory, a repository initialised on it once per session with small editor settings,
facts files, and snapshots of a repository's contents (to prove that a refused command
wrote nothing)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from click.testing import CliRunner, Result
from tiny import tiny_config, tiny_tokenizer

from cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
# The statistics shared between repositories go to a fresh directory per test session (and
# its subprocesses), so that every session exercises the computation.
os.environ["MEMSTORE_STATS_CACHE"] = tempfile.mkdtemp(prefix="memstore-stats-")
# Small settings so that a commit takes a fraction of a second on a tiny model.
SETTINGS = {"layers": "1,2", "mom2_weight": "20", "stats_tokens": "400", "z_steps": "5",
            "n_templates": "1", "template_tokens": "4"}

# Facts whose subjects end on a token boundary of the tiny tokenizer.
FACTS = {
    "a": [("Danielle Darrieux", "The mother tongue of {} is", "English", "French"),
          ("Porsche 911", "{}, created by", "Honda", "Porsche")],
    "b": [("Michael Jordan", "{} plays", "soccer", "basketball")],
    "c": [("Toko Yasuda", "{} plays the", "piano", "guitar"),
          ("Lionel Messi", "{} plays", "tennis", "soccer")],
    "d": [("Honda Civic", "{} is produced by", "Apple", "Honda")],
    "e": [("Apple A5", "{} was created by", "Microsoft", "Google")],
}


def make_model_dir(path: Path) -> Path:
    """A random 4-layer Llama-family model and the tiny tokenizer, saved for from_pretrained."""
    tok = tiny_tokenizer()
    cfg = tiny_config("llama", tok.backend_tokenizer.get_vocab_size(), layers=4)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def write_facts(path: Path, facts, extra: dict | None = None) -> Path:
    lines = [json.dumps({"subject": s, "prompt": p, "target_new": n, "target_true": t,
                         **(extra or {})}) for s, p, n, t in facts]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str, cwd: Path | None = None) -> Result:
    """`memstore ARGS` in this process (CliRunner), with -C cwd when given."""
    full = (["-C", str(cwd)] if cwd is not None else []) + [str(a) for a in args]
    return CliRunner().invoke(cli, full, catch_exceptions=False)


def ok(*args: str, cwd: Path | None = None) -> Result:
    r = run(*args, cwd=cwd)
    assert r.exit_code == 0, f"memstore {' '.join(map(str, args))} -> {r.exit_code}\n{r.output}"
    return r


def error_line(result: Result, code: int, says: str) -> str:
    """The one `memstore: error: …` line of a refused command, after checking the exit
    status, that it says `says` and that no traceback was printed."""
    err = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.output)
    assert len(err) == 1 and err[0].startswith("memstore: error: "), result.stderr
    assert says in err[0], err[0]
    assert "Traceback" not in result.output
    return err[0]


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


def log_json(repo: Path, *extra: str) -> list[dict]:
    return json.loads(ok("log", "--json", *extra, cwd=repo).stdout)


def snapshot(repo: Path) -> dict:
    """Everything a command could change: the objects (names and bytes) and every row of
    the index. The lock file and SQLite's -wal/-shm files are left out (their bytes change
    on open) - the rows are read through SQLite, so they include the WAL."""
    d = repo / ".memstore"
    files = {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((d / "objects").rglob("*")) if p.is_file()}
    con = sqlite3.connect(f"file:{d / 'index.db'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        rows = {t: sorted(map(repr, con.execute(f"select * from [{t}]"))) for t in tables}
    finally:
        con.close()
    return {"files": files, "rows": rows}


def copy_repo(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MEMSTORE_QUIET="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def memstore_process(*args: str, **kw) -> subprocess.Popen:
    """`python -m cli.main ARGS` as a real process (stdout and stderr piped unless given)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "cli.main", *map(str, args)],
                            env=subprocess_env(), cwd=ROOT, text=True, **kw)


# -- shared repositories: built once per test process, copied by each test ------------------

_BUILT: dict[str, Path] = {}


def model_dir(base: Path) -> Path:
    if "model" not in _BUILT:
        _BUILT["model"] = make_model_dir(base / "tiny-llama")
    return _BUILT["model"]


def facts_files(base: Path) -> dict[str, Path]:
    d = base / "facts"
    if not d.is_dir():
        d.mkdir()
        for name, facts in FACTS.items():
            write_facts(d / f"{name}.jsonl", facts)
    return {name: d / f"{name}.jsonl" for name in FACTS}


def empty_template(base: Path) -> Path:
    """`memstore init` on the tiny model, small settings, statistics computed."""
    if "empty" not in _BUILT:
        repo = base / "template-empty"
        ok("init", repo, "--base", model_dir(base))
        for key, value in SETTINGS.items():
            ok("config", key, value, cwd=repo)
        ok("stats", cwd=repo)
        _BUILT["empty"] = repo
    return _BUILT["empty"]


def history_template(base: Path) -> tuple[Path, list[str]]:
    """The empty template plus three commits C1 (facts a), C2 (b), C3 (c) on main."""
    if "history" not in _BUILT:
        repo = copy_repo(empty_template(base), base / "template-history")
        files = facts_files(base)
        ids = [last_line(ok("commit", files[k], "-m", f"facts {k}", cwd=repo)) for k in "abc"]
        _BUILT["history"] = repo
        _BUILT["history-ids"] = ids  # type: ignore[assignment]
    return _BUILT["history"], list(_BUILT["history-ids"])  # type: ignore[arg-type]


def tamper_hidden(out: Path, weights: str, change) -> None:
    """Changes the tensors of the export's weights file `weights` (`change` edits the dict
    of tensors in place) and records the changed file's sha256 in the export's manifest, so
    that its file hash no longer tells."""
    from safetensors.torch import load_file, save_file

    path, manifest = out / weights, out / "memstore-manifest.json"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})
    m = json.loads(manifest.read_text())
    m["files"][weights] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(m))
