"""GGUF exports of a repository whose base is a GGUF file (a tiny one written here with
gguf-py): every unedited tensor and all metadata byte for byte, the edited ffn_down tensors
in F32 (or F16), loaded by transformers' GGUF loader as exactly memstore's state; the
re-quantisation figures; verify."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import children
import gguf
import numpy as np
import pytest
import torch
import transformers
from children import reap
from cli_support import SETTINGS, facts_files, last_line, ok, run
from gguf_support import write_tiny_gguf
from pids import dead_pid

from memstore.store.repository import Repository
from memstore.store.states import state_of


@pytest.fixture(scope="module")
def gguf_repo(tmp_path_factory):
    """A repository on a tiny GGUF base with two commits, and its full and GGUF exports."""
    d = tmp_path_factory.mktemp("gguf")
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMSTORE_CACHE", str(d / "cache"))  # the dequantized base goes here
    base = write_tiny_gguf(d / "tiny.gguf")
    repo = d / "repo"
    ok("init", repo, "--base", base)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo)
    facts = facts_files(d)
    ids = [last_line(ok("commit", facts[k], "-m", k, cwd=repo)) for k in "ab"]
    ok("export", "HEAD", d / "full", cwd=repo)
    out = ok("export", "HEAD", d / "g32", "--format", "gguf", cwd=repo)
    yield {"dir": d, "base": base, "repo": repo, "ids": ids, "stdout": out.stdout}
    mp.undo()


def raw(path) -> tuple[gguf.GGUFReader, dict]:
    reader = gguf.GGUFReader(path)
    return reader, {t.name: t for t in reader.tensors}


def test_unedited_tensors_and_metadata_are_byte_identical(gguf_repo):
    d = gguf_repo["dir"]
    base, base_t = raw(gguf_repo["base"])
    out, out_t = raw(d / "g32" / "model.gguf")
    assert list(out_t) == list(base_t)  # same tensors, same order
    edited = {f"blk.{l}.ffn_down.weight" for l in (1, 2)}
    for name, t in base_t.items():
        o = out_t[name]
        assert o.shape.tolist() == t.shape.tolist()
        if name in edited:
            assert o.tensor_type == gguf.GGMLQuantizationType.F32
            assert t.tensor_type == gguf.GGMLQuantizationType.Q4_1
        else:
            assert o.tensor_type == t.tensor_type
            assert bytes(o.data.tobytes()) == bytes(t.data.tobytes()), name
        assert (o.data_offset - out.data_offset) % out.alignment == 0
    # ggml's gguf_init_from_file refuses a file whose tensors are not laid out back to back,
    # each at the sum of the earlier sizes padded to the alignment
    at = 0
    for t in out.tensors:
        assert t.data_offset - out.data_offset == at, t.name
        at += -(-int(t.n_bytes) // out.alignment) * out.alignment
    first = base.tensors[0].field.offset  # header and every metadata key/value
    assert bytes(out.data[:first]) == bytes(base.data[:first])
    for key in base.fields:
        assert key in out.fields


def test_transformers_loads_the_memstore_state(gguf_repo):
    d = gguf_repo["dir"]
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        d / "g32", gguf_file="model.gguf", dtype=torch.float32).state_dict()
    full = transformers.AutoModelForCausalLM.from_pretrained(d / "full").state_dict()
    with Repository.open(gguf_repo["repo"]) as repo:
        state = state_of(repo, gguf_repo["ids"][-1]).model.state_dict()
        assert set(loaded) == set(full)
        for name, w in loaded.items():
            assert torch.equal(w, full[name]) and torch.equal(w, state[name]), name
        base = state_of(repo, None).model.state_dict()
    name = "model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(loaded[name], base[name])  # the edit is there


def test_requantization_figures_and_sizes(gguf_repo):
    """kept and error of ΔW after re-quantising to Q4_1, computed here with gguf-py."""
    d = gguf_repo["dir"]
    m = json.loads((d / "g32" / "memstore-manifest.json").read_text())
    _, base_t = raw(gguf_repo["base"])
    _, out_t = raw(d / "g32" / "model.gguf")
    q41 = gguf.GGMLQuantizationType.Q4_1
    for layer in (1, 2):
        name = f"blk.{layer}.ffn_down.weight"
        w = gguf.dequantize(base_t[name].data, q41).astype(np.float32)
        e = np.array(out_t[name].data, dtype=np.float32)
        q = [gguf.dequantize(gguf.quantize(x, q41), q41).astype(np.float64) for x in (e, w)]
        delta = e.astype(np.float64) - w
        kept = np.linalg.norm(q[0] - q[1]) / np.linalg.norm(delta)
        error = np.linalg.norm(q[0] - q[1] - delta) / np.linalg.norm(delta)
        row = m["layers"][str(layer)]
        assert row["tensor"] == name and row["base_type"] == "Q4_1"
        assert abs(row["requantized"]["kept"] - kept) < 1e-9
        assert abs(row["requantized"]["error"] - error) < 1e-9
        said = (f"ΔW would come out {kept:.3f} times its norm, with a relative error of "
                f"{error:.3f}")  # not 'would keep 1.148 of ΔW', with an error of 1.04
        assert said in gguf_repo["stdout"]
        assert (f"{said} (no nearer ΔW than no edit at all)" in gguf_repo["stdout"]) \
            == (error >= 1)
    size, base_size = (d / "g32" / "model.gguf").stat().st_size, gguf_repo["base"].stat().st_size
    assert m["gguf"]["size"] == size and m["gguf"]["base_size"] == base_size
    assert "(base file " in gguf_repo["stdout"]
    card = (d / "g32" / "README.md").read_text()
    assert "library_name: gguf" in card and "| 1 | blk.1.ffn_down.weight | Q4_1 |" in card


def test_f16_and_verify(gguf_repo, tmp_path):
    d, repo = gguf_repo["dir"], gguf_repo["repo"]
    ok("export", "HEAD", tmp_path / "g16", "--format", "gguf", "--gguf-dtype", "f16", cwd=repo)
    _, t32 = raw(d / "g32" / "model.gguf")
    _, t16 = raw(tmp_path / "g16" / "model.gguf")
    name = "blk.2.ffn_down.weight"
    assert t16[name].tensor_type == gguf.GGMLQuantizationType.F16
    assert np.array_equal(np.array(t16[name].data),
                          np.array(t32[name].data, dtype=np.float32).astype(np.float16))
    for out in (d / "g32", tmp_path / "g16"):
        assert "OK: 38 tensors identical" in ok("verify", out, cwd=repo).stdout
    # a changed byte in an unedited tensor, then in an edited one
    path = tmp_path / "g16" / "model.gguf"
    _, tensors = raw(path)
    for name in ("blk.0.ffn_down.weight", "blk.2.ffn_down.weight"):
        data = bytearray(path.read_bytes())
        data[tensors[name].data_offset + 3] ^= 0xFF
        path.write_bytes(bytes(data))
        r = run("verify", tmp_path / "g16", cwd=repo)
        assert r.exit_code == 1 and f"{name}: differs from the rebuilt export" in r.stdout
    good = (d / "g32" / "model.gguf").read_bytes()  # bytes past the tensors, an extra file
    (d / "g32" / "model.gguf").write_bytes(good + b"JUNK")
    (d / "g32" / "extra.gguf").write_bytes(b"x")
    r = run("verify", d / "g32", cwd=repo)
    assert r.exit_code == 1 and "model.gguf: differs from the manifest" in r.stdout
    assert "extra.gguf: not part of the export" in r.stdout
    (d / "g32" / "model.gguf").write_bytes(good)
    (d / "g32" / "extra.gguf").unlink()
    manifest = d / "g32" / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "gguf": {**m["gguf"], "size": 1}}))
    r = run("verify", d / "g32", cwd=repo)
    assert r.exit_code == 1 and "gguf: the manifest's file, metadata hash or sizes" in r.stdout
    manifest.write_text(json.dumps(m))
    data = path.read_bytes()  # the metadata: same length, another model name
    path.write_bytes(data.replace(b"tiny-llama", b"tiny-llamb", 1))
    r = run("verify", tmp_path / "g16", cwd=repo)
    assert r.exit_code == 1 and "metadata: differs from the base file's" in r.stdout
    path.write_bytes(data[: len(data) // 2])  # cut short: one line, no traceback
    r = run("verify", tmp_path / "g16", cwd=repo)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("memstore: error: ") and "GGUF" in r.stderr, r.stderr


@pytest.mark.parametrize("forge", ["none", "another layer", "another tensor",
                                   "another base type"])
def test_verify_checks_the_manifests_edited_layers(gguf_repo, tmp_path, forge):
    """The manifest's `layers` (edited layer -> GGUF tensor, its base type, the
    re-quantisation figures, as the card shows them) was never compared: emptied, or naming
    another layer, tensor or type, verify said OK (a PEFT export's layers are checked)."""
    repo, out = gguf_repo["repo"], tmp_path / "g"
    shutil.copytree(gguf_repo["dir"] / "g32", out)
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    layers = m["layers"]
    assert set(layers) == {"1", "2"} and layers["2"]["tensor"] == "blk.2.ffn_down.weight"
    layers = {"none": {},
              "another layer": {"1": layers["1"], "3": layers["2"]},
              "another tensor": {**layers, "2": {**layers["2"],
                                                 "tensor": "blk.3.ffn_down.weight"}},
              "another base type": {**layers, "2": {**layers["2"], "base_type": "F16"}}}[forge]
    manifest.write_text(json.dumps({**m, "layers": layers}))
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1 and "layers: differ from the rebuilt export's" in r.stdout, r.output


def test_a_bfloat16_export_records_how_it_was_built(gguf_repo, tmp_path):
    # the edited tensors hold the state in the runtime's dtype: a GGUF export recorded no
    # built_with (full exports do), so verifying a bfloat16 one in float32 listed differing
    # tensors with no word of the dtype that explains them
    repo = gguf_repo["repo"]
    ok("export", "HEAD", tmp_path / "bf16", "--format", "gguf", "--dtype", "bfloat16", cwd=repo)
    m = json.loads((tmp_path / "bf16" / "memstore-manifest.json").read_text())
    assert m["built_with"] == {"device": "cpu", "dtype": "bfloat16"}
    r = run("verify", tmp_path / "bf16", cwd=repo)
    assert r.exit_code == 1
    assert "built with cpu/bfloat16 and rebuilt here with cpu/float32" in r.stderr
    out = ok("verify", tmp_path / "bf16", "--dtype", "bfloat16", cwd=repo).stdout
    assert "(built with cpu/bfloat16)" in out


def test_an_older_revision_and_the_base(gguf_repo, tmp_path):
    repo = gguf_repo["repo"]
    ok("export", gguf_repo["ids"][0], tmp_path / "first", "--format", "gguf", cwd=repo)
    ok("export", gguf_repo["ids"][0], tmp_path / "first-full", cwd=repo)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "first", gguf_file="model.gguf", dtype=torch.float32).state_dict()
    full = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "first-full").state_dict()
    assert all(torch.equal(w, full[n]) for n, w in loaded.items())
    assert "OK" in ok("verify", tmp_path / "first", cwd=repo).stdout
    # no edit at all: the base file itself, byte for byte
    ok("export", "base", tmp_path / "base", "--format", "gguf", cwd=repo)
    assert (tmp_path / "base" / "model.gguf").read_bytes() == gguf_repo["base"].read_bytes()


def test_a_peft_export_and_its_verify_make_no_dequantized_copy(gguf_repo, tmp_path,
                                                              monkeypatch):
    """An adapter is built from the records alone, its widths checked against the base's
    config: with no dequantized copy in the cache (a clone's machine, a cleared cache), a
    PEFT export and its verify dequantized the whole GGUF to read that config (SmolLM2's
    Q4_1: 104 s and 517 MB here, the copy kept)."""
    repo = gguf_repo["repo"]
    ok("export", "HEAD", tmp_path / "warm", "--format", "peft", cwd=repo)
    cold = tmp_path / "cold-cache"
    monkeypatch.setenv("MEMSTORE_CACHE", str(cold))
    ok("export", "HEAD", tmp_path / "peft", "--format", "peft", cwd=repo)
    assert "OK" in ok("verify", tmp_path / "peft", cwd=repo).stdout
    assert not (cold / "models").exists() or not any((cold / "models").iterdir())
    for f in ("adapter_model.safetensors", "adapter_config.json"):
        assert (tmp_path / "peft" / f).read_bytes() == (tmp_path / "warm" / f).read_bytes()


def test_a_second_dequantization_of_the_same_file_keeps_the_first(tmp_path, monkeypatch):
    """Two processes loading the same GGUF for the first time both dequantize it; the one
    that finishes second finds the cache filled and keeps it (it used to fail on the rename)."""
    from memstore.errors import ValidationError
    from memstore.models.loading import _dequantize, _gguf_cache, local_dir

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    target = local_dir(str(base))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    assert target == _gguf_cache(base) and "config.json" in before
    _dequantize(base, target)  # the loser of the race
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # its copy removed
    (target / "config.json").unlink()  # a damaged copy is named, not replaced
    with pytest.raises(ValidationError, match="damaged dequantized copy"):
        _dequantize(base, target)
    assert [p.name for p in target.parent.iterdir()] == [target.name]

    def refused(self, other):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "rename", refused)  # no copy there, and the move fails: one line
    other = tmp_path / "cache" / "models" / "other"
    with pytest.raises(ValidationError, match="cannot store the dequantized tiny.gguf: Permission denied"):
        _dequantize(base, other)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # nothing left behind


def test_dequantizing_prints_no_progress_bar_off_a_terminal(tmp_path):
    """`memstore init` on a GGUF base with stderr piped: one dequantization, no bar in the log."""
    import os
    import sys

    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    env = dict(os.environ, MEMSTORE_CACHE=str(tmp_path / "cache"))
    env.pop("TQDM_DISABLE", None)
    r = children.run([sys.executable, "-m", "cli.main", "init", str(tmp_path / "repo"), "--base",
                      str(base)], capture_output=True, text=True, env=env, check=False,
                     cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "cache" / "models").iterdir())  # it did dequantize
    assert "de-quantizing" not in r.stderr and "it/s" not in r.stderr, r.stderr


def test_a_gguf_base_changed_in_place_is_caught(tmp_path, monkeypatch):
    """A GGUF base rewritten with its size and mtime kept: its dequantized copy (found by
    path, size and mtime) still loads the old weights, so the weight hash alone passes.
    Exports and verify refuse it; verify --base dequantizes the file again and finds it."""
    import os

    from cli_support import error_line

    from memstore.store.states import forget_loaded

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    repo = tmp_path / "repo"
    ok("init", repo, "--base", base)
    ok("config", "layers", "1,2", cwd=repo)
    ok("export", "base", tmp_path / "g", "--format", "gguf", cwd=repo)  # no commits yet
    reader, tensors = raw(base)
    norm = tensors["output_norm.weight"]  # F32: new values of the same size
    st = base.stat()
    with open(base, "r+b") as f:
        f.seek(int(norm.data_offset))
        f.write((np.asarray(norm.data, dtype=np.float32) + 1).tobytes())
    os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns))
    del reader
    assert base.stat().st_size == st.st_size
    assert "unchanged on disk" in ok("status", cwd=repo).stdout  # the cheap check passes
    forget_loaded()  # as a new process would
    says = "the base model changed on disk"
    for args in (("export", "base", tmp_path / "full"),
                 ("export", "base", tmp_path / "g2", "--format", "gguf"),
                 ("verify", tmp_path / "g")):
        error_line(run(*args, cwd=repo), 1, says)
    assert not (tmp_path / "full").exists() and not (tmp_path / "g2").exists()
    r = run("verify", "--base", cwd=repo)
    assert r.exit_code == 1 and "base model changed" in r.stderr, r.output


def test_a_fresh_dequantization_removes_a_linked_copy_not_its_target(tmp_path, monkeypatch):
    """A stale cached copy that is a symbolic link: the link goes, what it points to stays."""
    import os

    from memstore.models.loading import local_dir

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    target = local_dir(str(base))
    elsewhere = tmp_path / "elsewhere"
    target.rename(elsewhere)
    target.symlink_to(elsewhere)
    kept = sorted(p.name for p in elsewhere.iterdir())
    st = base.stat()
    data = bytearray(base.read_bytes())
    data[-1] ^= 1  # other bytes, same size and mtime: the copy is stale
    base.write_bytes(bytes(data))
    os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert local_dir(str(base), fresh=True) == target
    assert not target.is_symlink() and (target / "config.json").is_file()
    assert sorted(p.name for p in elsewhere.iterdir()) == kept


def test_a_stale_copy_another_process_moved_aside_first(tmp_path, monkeypatch):
    """Two `verify --base` at once on a changed GGUF: the one that finds the stale copy
    already gone dequantizes (or finds the other's copy), it does not fail."""
    import shutil

    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    target = loading.local_dir(str(base))
    monkeypatch.setattr(loading, "gguf_copy_current", lambda path: False)  # seen stale ...
    shutil.rmtree(target)  # ... then moved aside by the other process
    assert loading.local_dir(str(base), fresh=True) == target
    assert (target / "config.json").is_file()


def test_what_a_killed_dequantization_left_goes_with_the_next_load(tmp_path, monkeypatch):
    """kill -9 while the dequantized copy is written (model-sized, in the cache): the next
    load of a GGUF file removes it, with the copies a dead process moved aside and a
    half-joined Qwen file; those of a live process, of another host, named otherwise (an
    older memstore's) and links are kept."""
    import os
    import signal

    from memstore import leftovers
    from memstore.models import loading

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    target = loading._gguf_cache(base)
    target.parent.mkdir(parents=True)
    pid = os.fork()
    if pid == 0:  # killed just before it renames the copy into place
        try:
            def rename(self, other):
                os.kill(os.getpid(), signal.SIGKILL)

            Path.rename = rename
            loading._dequantize(base, target)
        finally:
            os._exit(3)
    [status] = reap([pid], timeout=120)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    [killed] = target.parent.glob(f"{target.name}.tmp-{leftovers.HOST}-{pid}-*")
    assert (killed / "config.json").is_file()
    p_pid = dead_pid()
    models, h = target.parent, leftovers.HOST

    def folder(name):
        (models / name).mkdir()
        (models / name / "model.safetensors").write_bytes(b"x")
        return models / name

    dead = [folder(f"other-0123456789abcdef.stale-{h}-{p_pid}-0123abcd"),
            models / f"qwen2.5-coder-0.5b-instruct-0123456789abcdef.gguf.tmp-{h}-{p_pid}-0123abcd"]
    dead[1].write_bytes(b"GGUF")
    kept = [folder(f"other-0123456789abcdef.tmp-{h}-{os.getppid()}-0123abcd"),  # alive
            folder(f"other-0123456789abcdef.tmp-elsewhere-{p_pid}-0123abcd"),
            folder(f"other-0123456789abcdef.tmp{p_pid}"),
            folder("other-0123456789abcdef")]
    link = models / f"link.tmp-{h}-{p_pid}-0123abcd"
    link.symlink_to(kept[-1])
    assert loading.local_dir(str(base)) == target
    assert (target / "config.json").is_file()
    assert not killed.exists() and not any(os.path.lexists(d) for d in dead)
    assert all((d / "model.safetensors").is_file() for d in kept) and link.is_symlink()
    assert sorted(x.name for x in models.iterdir()) == sorted(
        [target.name, link.name, *(d.name for d in kept)])


@pytest.mark.parametrize("arch, module", [
    ("llama", "model.layers.3.mlp.down_proj"), ("qwen2", "model.layers.3.mlp.down_proj"),
    ("qwen3", "model.layers.3.mlp.down_proj"), ("phi3", "model.layers.3.mlp.down_proj"),
    ("gemma2", "model.layers.3.mlp.down_proj"), ("gemma3", "model.layers.3.mlp.down_proj"),
    ("gpt2", "transformer.h.3.mlp.c_proj")])
def test_the_edited_tensor_is_ffn_down_in_every_architecture(arch, module):
    """The GGUF architectures transformers' loader reads (so a memstore base can be): W_out is
    llama.cpp's blk.N.ffn_down in each (gguf-py's TENSOR_NAMES and tensor map)."""
    from memstore.serving.gguf import tensor_name

    assert tensor_name(arch, 4, module + ".weight") == "blk.3.ffn_down.weight"


def test_a_gguf_base_with_the_same_tensors_and_another_header_is_caught(tmp_path, monkeypatch):
    """The GGUF's metadata (settings, tokenizer, chat template) is part of the base: a file
    rewritten with the same tensors and another header fails verify --base (the weight
    hash alone said 'base OK' and refreshed the recorded size and mtime)."""
    from memstore.store.states import forget_loaded

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    repo = tmp_path / "repo"
    ok("init", repo, "--base", base)
    write_tiny_gguf(base, name="tiny-llama-with-another-header")
    forget_loaded()
    r = run("verify", "--base", cwd=repo)
    assert r.exit_code == 1 and "gguf header differ from init" in r.stderr, r.output
    assert "the weights are the same" in r.stderr
    write_tiny_gguf(base)  # the file as it was
    forget_loaded()
    assert "base OK" in ok("verify", "--base", cwd=repo).stdout


def test_a_new_copy_of_a_touched_gguf_removes_the_copies_it_supersedes(tmp_path, monkeypatch):
    """The copy is found by the file's path, size and mtime: a touched (or copied-over) GGUF
    is dequantized again, and the copies of its earlier size or mtime, each model-sized,
    are removed then (they stayed for good); another file's copy, a copy with no record
    and a link stay."""
    import os

    from memstore.models.loading import local_dir

    monkeypatch.setenv("MEMSTORE_CACHE", str(tmp_path / "cache"))
    base = write_tiny_gguf(tmp_path / "tiny.gguf")
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    other = write_tiny_gguf(other_dir / "tiny.gguf", seed=1)  # same name, another file
    first, theirs = local_dir(str(base)), local_dir(str(other))
    models = first.parent
    unrecorded = models / "tiny-0123456789abcdef"
    unrecorded.mkdir()
    (models / "tiny-fedcba9876543210").symlink_to(first, target_is_directory=True)
    st = base.stat()
    os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    second = local_dir(str(base))
    assert second != first and (second / "config.json").is_file()
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [second.name, theirs.name, unrecorded.name, "tiny-fedcba9876543210"])
    assert local_dir(str(other)) == theirs and (theirs / "config.json").is_file()


def test_verify_compares_the_card(gguf_repo, tmp_path):
    """A GGUF export's card edited by hand (a fact, or the re-quantisation figures it shows),
    with its sha256 in the manifest updated to match, verified OK."""
    import hashlib

    repo, out = gguf_repo["repo"], tmp_path / "g"
    shutil.copytree(gguf_repo["dir"] / "g32", out)
    card, manifest = out / "README.md", out / "memstore-manifest.json"
    text, m = card.read_text(encoding="utf-8"), json.loads(manifest.read_text())
    row = "| 2 | blk.2.ffn_down.weight | Q4_1 | "
    assert row in text and "| Michael Jordan | {} plays | basketball → soccer |" in text
    for old, new in ((row, "| 2 | blk.2.ffn_down.weight | F16 | "),
                     ("basketball → soccer", "basketball → tennis")):
        card.write_text(text.replace(old, new), encoding="utf-8")
        m["files"]["README.md"] = hashlib.sha256(card.read_bytes()).hexdigest()
        manifest.write_text(json.dumps(m))
        r = run("verify", out, cwd=repo)
        assert r.exit_code == 1, r.output
        assert [line for line in r.stdout.splitlines() if "README.md" in line] == [
            "README.md: differs from the card rebuilt from the repository"]


def test_verify_notes_another_built_with_of_the_same_bits(gguf_repo, tmp_path):
    """built_with was never compared when every tensor was the same: a GGUF's edited
    tensors are float32 whatever dtype the state was built in, so a record other than the
    rebuild's is a note (a GGUF with no edited tensor is alike on every runtime)."""
    repo, out = gguf_repo["repo"], tmp_path / "g"
    shutil.copytree(gguf_repo["dir"] / "g32", out)
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "built_with": {"device": "cuda", "dtype": "float32"}}))
    r = ok("verify", out, cwd=repo)
    assert "OK: 38 tensors identical" in r.stdout
    assert "note: built_with: built with cuda/float32, rebuilt here with cpu/float32 to the " \
           "same bits" in r.stderr


def test_verify_of_a_gguf_export_without_its_file(gguf_repo, tmp_path):
    """model.gguf gone, or replaced by a link to the same bytes: both were 'OUT/model.gguf:
    no GGUF file' (exit 2, as for a mistyped argument), though the link is there."""
    from cli_support import error_line

    repo, out = gguf_repo["repo"], tmp_path / "g"
    shutil.copytree(gguf_repo["dir"] / "g32", out)
    target = out / "model.gguf"
    target.rename(tmp_path / "elsewhere.gguf")
    target.symlink_to(tmp_path / "elsewhere.gguf")
    error_line(run("verify", out, cwd=repo), 1,
               f"{target} is a symbolic link, which memstore does not read through")
    target.unlink()
    error_line(run("verify", out, cwd=repo), 1,
               f"{out}: no model.gguf (the GGUF file), which its manifest says it holds")


def test_requantization_line_says_when_the_edit_would_be_lost(capsys):
    """SmolLM2 (4 facts): 'would keep 1.148 of ΔW (relative error 1.043)' read as more than
    all of the edit kept; the figure is a ratio of norms, and an error of 1 or more puts
    the re-quantised weights no nearer ΔW than the base is."""
    from cli.commands.model import _report_gguf

    row = {"tensor": "blk.3.ffn_down.weight", "base_type": "Q4_1"}
    d = {"commit": "ab" * 32, "out_dir": "out",
         "gguf": {"dtype": "f32", "file": "model.gguf", "size": 2048, "base_size": 1024},
         "layers": {"3": row | {"requantized": {"kept": 1.148, "error": 1.043}},
                    "4": row | {"requantized": {"kept": 1.019, "error": 0.2}}}}
    _report_gguf(d)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("ΔW would come out 1.148 times its norm, with a relative error "
                             "of 1.043 (no nearer ΔW than no edit at all)")
    assert lines[1].endswith("with a relative error of 0.200") and "keep" not in lines[1]
