"""Where the model runs: --device/--dtype/--device-map, MEMSTORE_* and `memstore config`;
accelerate's device maps with layers offloaded to disk (the code path of models larger than
one device, run here on the CPU); bfloat16 weights and what a rebuild promises."""
from __future__ import annotations

import json
import os
from pathlib import Path

import children
import pytest
import torch
from children import reap
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    facts_files,
    last_line,
    memstore_process,
    model_dir,
    ok,
    run,
)
from pids import dead_pid
from safetensors.torch import load_file

OFFLOAD_LAST = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.norm": "cpu",
                "lm_head": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu",
                "model.layers.2": "cpu", "model.layers.3": "disk"}


@pytest.fixture
def repos(tmp_path_factory, tmp_path):
    base = tmp_path_factory.getbasetemp()
    template = empty_template(base)
    return base, copy_repo(template, tmp_path / "a"), copy_repo(template, tmp_path / "b")


def device_map(tmp_path, placement: dict) -> str:
    p = tmp_path / "map.json"
    p.write_text(json.dumps(placement))
    return str(p)


def test_a_device_map_with_a_layer_on_disk_gives_the_same_edit(repos, tmp_path):
    base, a, b = repos
    facts = facts_files(base)["a"]
    dm = device_map(tmp_path, OFFLOAD_LAST)  # layer 3 (after L = 2) read from disk each pass
    ok("commit", facts, "--device-map", dm, cwd=a)
    from memstore.store import states

    offloaded = [b_ for key, b_ in states._LOADED.items() if key[2].device_map == dm]
    assert offloaded and any(p.device.type == "meta"  # the map was used: layer 3 on disk
                             for p in offloaded[0].model.model.layers[3].parameters())
    ok("commit", facts, cwd=b)
    ok("export", tmp_path / "ea", "--device-map", dm, cwd=a)
    ok("export", tmp_path / "eb", cwd=b)
    wa, wb = (load_file(tmp_path / e / "model.safetensors") for e in ("ea", "eb"))
    assert sorted(wa) == sorted(wb) and all((wa[k] == wb[k]).all() for k in wa)
    assert "OK" in ok("verify", tmp_path / "ea", cwd=a).stdout  # rebuilt without the map


def test_a_model_the_map_offloads_is_hashed_and_verified_one_module_at_a_time(
        repos, tmp_path, monkeypatch):
    """Hashing a base (init, export's and verify's check), checking it finite and verify's
    rebuild read every offloaded weight back at once (accelerate's
    get_state_dict_offloaded_model gathers the whole model on the CPU, so a model larger
    than memory could not be verified). They read it one module at a time now: each tensor
    is gone when the next is read, and the hashes are those of the model loaded whole."""
    import gc
    import weakref

    import accelerate.utils.modeling
    import transformers

    from memstore.models.hashing import model_hash, state_items
    from memstore.models.loading import load_model
    from memstore.models.runtime import Runtime

    base, a, _ = repos
    ok("commit", facts_files(base)["a"], cwd=a)
    ok("export", tmp_path / "out", cwd=a)

    def gathered(model):
        raise AssertionError("the whole offloaded model was gathered on the CPU")

    monkeypatch.setattr(accelerate.utils.modeling, "get_state_dict_offloaded_model", gathered)
    dm = device_map(tmp_path, {**OFFLOAD_LAST, "model.layers.3": "disk", "lm_head": "disk",
                               "model.norm": "disk"})
    assert "OK" in ok("verify", tmp_path / "out", "--device-map", dm, cwd=a).stdout
    path = str(model_dir(base))
    whole = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    spread = load_model(path, runtime=Runtime("cpu", "float32", device_map=dm)).model
    assert model_hash(spread) == model_hash(whole)
    offloaded = {n for n, t in spread.state_dict(keep_vars=True).items() if t.is_meta}
    assert "model.layers.3.mlp.down_proj.weight" in offloaded and "lm_head.weight" in offloaded
    read = []
    for name, t in state_items(spread):
        if any(r() is not None for r in read):  # one alive in a cycle only (gc.collect is
            gc.collect()                        # ~0.3 s a call here: not for each tensor)
        assert all(r() is None for r in read), name  # the tensors read before are gone
        assert not t.is_meta and torch.equal(t, whole.state_dict()[name])
        if name in offloaded:
            read.append(weakref.ref(t))
        del t
    assert len(read) == len(offloaded)


def test_the_offload_folder_goes_with_the_model(repos, tmp_path, monkeypatch):
    import gc
    import tempfile

    from memstore.store import states

    base, a, _ = repos
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where mkdtemp puts the folder
    states.forget_loaded()
    ok("commit", facts_files(base)["a"], "--device-map", device_map(tmp_path, OFFLOAD_LAST),
       cwd=a)
    assert [p.name[:17] for p in scratch.iterdir()] == ["memstore-offload-"]  # while loaded
    states.forget_loaded()
    gc.collect()
    assert list(scratch.iterdir()) == []  # removed once the model is gone
    r = run("commit", facts_files(base)["a"], "--device-map",
            device_map(tmp_path, {"model.no_such_module": "cpu"}), cwd=a)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "the model has no module 'model.no_such_module'" in r.stderr  # not ignored
    r = run("commit", facts_files(base)["a"], "--device-map",
            device_map(tmp_path, {**OFFLOAD_LAST, "model.layers.3": "nowhere"}), cwd=a)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "'model.layers.3' is placed on 'nowhere', not a device" in r.stderr
    assert list(scratch.iterdir()) == []  # nor a folder left behind by a refused map

    def fails(*_a, **_k):
        raise OSError("the weights could not be read")

    import transformers
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fails)
    r = run("commit", facts_files(base)["a"], "--device-map", device_map(tmp_path, OFFLOAD_LAST),
            cwd=a)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1  # one line, not a traceback
    assert "cannot load the model" in r.stderr and "could not be read" in r.stderr
    assert list(scratch.iterdir()) == []  # nor by a load that failed after making it


def test_the_offload_folder_of_a_process_killed_outright_goes_at_the_next_such_load(
        repos, tmp_path, monkeypatch):
    """kill -9 while a model is loaded with a device map leaves its model-sized offload
    folder in the temporary directory; the next load with a device map removes it (a dead
    process of this host and this user), never a live process's, another host's, a link or
    a folder named otherwise."""
    import signal
    import tempfile

    import transformers

    from memstore import leftovers
    from memstore.models import loading
    from memstore.models.runtime import Runtime
    from memstore.store import states

    base, a, _ = repos
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dm = device_map(tmp_path, OFFLOAD_LAST)
    pid = os.fork()
    if pid == 0:
        try:
            def kill(*a, **k):
                os.kill(os.getpid(), signal.SIGKILL)

            transformers.AutoModelForCausalLM.from_pretrained = kill
            loading.load_model(str(base / "tiny-llama"), runtime=Runtime(device_map=dm))
        finally:
            os._exit(3)
    [status] = reap([pid], timeout=120)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    [killed] = scratch.iterdir()
    (killed / "weights.dat").write_bytes(b"x" * 100)  # what it had offloaded
    gone_pid = dead_pid()
    kept = [scratch / f"memstore-offload-{leftovers.HOST}-{os.getppid()}-0123abcd",  # alive
            scratch / f"memstore-offload-elsewhere-{gone_pid}-0123abcd",  # another host's
            scratch / f"memstore-offload-{leftovers.HOST}-{gone_pid}-0123abcdX",  # not a name
            scratch / f"other-offload-{leftovers.HOST}-{gone_pid}-0123abcd"]
    for k in kept:
        k.mkdir()
        (k / "weights.dat").write_bytes(b"x")
    link = scratch / f"memstore-offload-{leftovers.HOST}-{gone_pid}-0123abce"
    link.symlink_to(kept[0])
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)  # another user's: not removed
    assert loading.clean_offload(scratch) == [] and killed.is_dir()
    monkeypatch.setattr(os, "getuid", lambda: uid)
    states.forget_loaded()
    ok("commit", facts_files(base)["a"], "--device-map", dm, cwd=a)
    assert not killed.exists()
    assert all((k / "weights.dat").read_bytes() == b"x" for k in kept)
    assert link.is_symlink()
    [new] = set(scratch.iterdir()) - {*kept, link}  # this load's, while the model is loaded
    assert new.name.startswith(f"memstore-offload-{leftovers.HOST}-{os.getpid()}-")
    states.forget_loaded()


def test_a_device_map_naming_no_device_of_this_machine_is_refused(repos, tmp_path):
    """Each value is checked against the devices here before loading (they were
    tracebacks from accelerate or torch), and the map file must be a plain JSON file."""
    _, a, _ = repos
    cases = [("meta", "'meta': not a device this machine has"), ("cuda:99", "CUDA device"),
             (99, "placed on 99: "), (10**30, "CUDA device")]
    for value, says in cases:
        r = run("ask", "Apple", "--device-map", device_map(tmp_path, {"model": value}), cwd=a)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
        assert says in r.stderr, r.stderr
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    for path, says in ((deep, "maximum recursion depth"), (pipe, "not a regular file")):
        r = run("ask", "Apple", "--device-map", str(path), cwd=a)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
        assert says in r.stderr, r.stderr


def test_an_edited_layer_offloaded_by_the_map_is_refused(repos, tmp_path):
    base, a, _ = repos
    dm = device_map(tmp_path, {**OFFLOAD_LAST, "model.layers.2": "disk"})
    r = run("commit", facts_files(base)["a"], "--device-map", dm, cwd=a)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "layer 2's W_out is offloaded by the device map" in r.stderr


def test_a_state_whose_edited_layer_the_map_offloads_is_refused(repos, tmp_path):
    # the history edits layers 1 and 2; with layer 2 on disk its W_out is an empty meta
    # tensor: export wrote the base weight there with exit 0 (ΔW left out), ask and eval
    # ran the base layer, diff --weights failed with a traceback
    base, a, _ = repos
    files = facts_files(base)
    c1 = last_line(ok("commit", files["a"], cwd=a))
    c2 = last_line(ok("commit", files["b"], cwd=a))
    dm = device_map(tmp_path, {**OFFLOAD_LAST, "model.layers.2": "disk"})
    for args in (("export", tmp_path / "out"), ("ask", "Danielle Darrieux"),
                 ("eval", files["a"]), ("diff", c1, c2, "--weights")):
        r = run(*args, "--device-map", dm, cwd=a)
        error_line(r, 2, "model.layers.2.mlp.down_proj is offloaded by the device map")
    assert not (tmp_path / "out").exists()


def test_input_embeddings_offloaded_by_the_map_are_refused(repos, tmp_path):
    # the inputs are put on the embeddings' device: on disk (meta) ask and eval failed with
    # a traceback and export recorded it was built on the device 'meta'
    base, a, _ = repos
    ok("commit", facts_files(base)["a"], cwd=a)
    dm = device_map(tmp_path, {**OFFLOAD_LAST, "model.embed_tokens": "disk"})
    for args in (("ask", "Apple"), ("eval", facts_files(base)["a"]),
                 ("commit", facts_files(base)["b"]), ("export", tmp_path / "out")):
        r = run(*args, "--device-map", dm, cwd=a)
        error_line(r, 2, "offloads model.embed_tokens (the input embeddings) to disk")
    assert not (tmp_path / "out").exists()
    p = memstore_process("-C", a, "ask", "Apple", "--device-map", dm)  # accelerate's warning
    _, err = children.communicate(p, 120)  # that modules are offloaded was a line before it
    assert p.returncode == 2 and err.count("\n") == 1 and err.startswith("memstore: error:"), err


def test_a_tied_output_layer_offloaded_apart_from_its_embeddings_is_refused(tmp_path):
    # GPT-2's lm_head shares transformer.wte's weight: with wte on the CPU and lm_head on
    # disk, accelerate's offload store lacks lm_head.weight and every forward (the first
    # one of a commit, ask or export) failed with a KeyError traceback
    import transformers
    from tiny import tiny_config, tiny_tokenizer

    from memstore.errors import ValidationError
    from memstore.models.loading import load_model
    from memstore.models.runtime import Runtime

    tok = tiny_tokenizer()
    cfg = tiny_config("gpt2", tok.backend_tokenizer.get_vocab_size(), layers=2)
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    placement = {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.drop": "cpu",
                 "transformer.h": "cpu", "transformer.ln_f": "cpu", "lm_head": "disk"}
    with pytest.raises(ValidationError, match="offloads lm_head to disk, whose weight is "
                                              "transformer.wte's"):
        load_model(str(tmp_path / "gpt2"), runtime=Runtime(
            device_map=device_map(tmp_path, placement)))
    placement["lm_head"] = "cpu"  # with them: loads and runs
    lm = load_model(str(tmp_path / "gpt2"), runtime=Runtime(
        device_map=device_map(tmp_path, placement)))
    lm.model(torch.tensor([[1, 2, 3]]))


def test_device_and_dtype_from_flags_environment_and_config(repos, tmp_path, monkeypatch):
    base, a, _ = repos
    # stored for another machine: only its form checked; one past this machine's last GPU
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    ok("config", "device", missing, cwd=a)
    assert ok("config", "device", cwd=a).stdout.strip() == missing
    r = run("commit", facts_files(base)["a"], cwd=a)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert (f"device '{missing}': this machine has" if torch.cuda.is_available() else
            "device 'cuda': no CUDA device is available here") in r.stderr
    assert run("config", "device", "gpu", cwd=a).exit_code == 2
    ok("config", "device", "cpu", cwd=a)
    monkeypatch.setenv("MEMSTORE_DEVICE", "cuda:3")  # the environment wins over the config
    r = run("ask", "hi", cwd=a)
    assert r.exit_code == 2 and "device 'cuda:3'" in r.stderr
    monkeypatch.setenv("MEMSTORE_DEVICE", "cpu")
    listing = ok("config", cwd=a).stdout
    assert "device           cpu" in listing and "dtype            float32" in listing


def test_bfloat16_weights_and_what_verify_says(repos, tmp_path):
    base, a, _ = repos
    ok("commit", facts_files(base)["a"], "--dtype", "bfloat16", cwd=a)
    ok("export", tmp_path / "bf16", "--dtype", "bfloat16", cwd=a)
    manifest = json.loads((tmp_path / "bf16" / "memstore-manifest.json").read_text())
    assert manifest["built_with"] == {"device": "cpu", "dtype": "bfloat16"}
    w = load_file(tmp_path / "bf16" / "model.safetensors")
    assert str(w["model.layers.1.mlp.down_proj.weight"].dtype) == "torch.bfloat16"
    r = run("verify", tmp_path / "bf16", cwd=a)  # rebuilt in float32: other bits
    assert r.exit_code == 1
    assert "built with cpu/bfloat16 and rebuilt here with cpu/float32" in r.stderr
    out = ok("verify", tmp_path / "bf16", "--dtype", "bfloat16", cwd=a).stdout
    assert "identical" in out and "(built with cpu/bfloat16)" in out


def test_a_base_beyond_float16s_range_is_refused_in_float16(tmp_path_factory, tmp_path):
    """A weight finite in the base's file but beyond float16's ±65,504 became inf when the
    model was loaded with --dtype float16: the commit went through (exit 0) and the export
    wrote inf into model.safetensors, silently (found by the precision and width audit)."""
    import transformers
    from cli_support import SETTINGS, model_dir, snapshot

    src = model_dir(tmp_path_factory.getbasetemp())
    model = transformers.AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        model.model.embed_tokens.weight[5, 0] = 1e5  # a byte token the facts never read
    model.save_pretrained(tmp_path / "big")
    transformers.AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path / "big")
    repo = tmp_path / "r"
    ok("init", repo, "--base", tmp_path / "big")
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo)
    facts = facts_files(tmp_path)
    ok("commit", facts["a"], "--dtype", "bfloat16", cwd=repo)  # bfloat16 holds it
    before = snapshot(repo)
    for args in (("commit", facts["b"]), ("export", tmp_path / "out"), ("ask", "Apple")):
        r = run(*args, "--dtype", "float16", cwd=repo)
        error_line(r, 2, "in float16: its tensor model.embed_tokens.weight holds values "
                         "beyond float16's range")
    assert snapshot(repo) == before and not (tmp_path / "out").exists()


def test_a_compute_dtype_that_cannot_run_is_refused_before_any_work(repos):
    """bfloat16 autocast over float16 weights mixed the two half types: the commit failed
    halfway through the first z-vector step with a RuntimeError traceback ('Unexpected
    floating ScalarType in at::autocast::prioritize'), after the statistics; float64 ran the
    passes in float32 and recorded float64 (found by the precision and width audit)."""
    from cli_support import snapshot

    from memstore.editing import Request, default_settings
    from memstore.editing.zs import compute_zs
    from memstore.errors import ValidationError
    from memstore.store import states

    base, a, _ = repos
    ok("config", "compute_dtype", "bfloat16", cwd=a)
    before = snapshot(a)
    r = run("commit", facts_files(base)["a"], "--dtype", "float16", cwd=a)
    error_line(r, 2, "compute_dtype bfloat16 cannot run a model loaded in float16")
    assert snapshot(a) == before
    loaded = next(b for key, b in states._LOADED.items() if key[2].dtype == "float16")
    s = default_settings(loaded.model, layers=(1, 2), compute_dtype="bfloat16")
    with pytest.raises(ValidationError, match="loaded in float16"):  # the library's way in
        compute_zs(loaded.model, loaded.tokenizer, loaded.adapter,
                   [Request("Apple A5", "{} was created by", "Microsoft")], ["{}"], s, False)
    ok("commit", facts_files(base)["a"], "--dtype", "bfloat16", cwd=a)
    # float64 has no autocast: the passes ran in float32, and the commit recorded float64
    ok("config", "compute_dtype", "float64", cwd=a)
    before = snapshot(a)
    r = run("commit", facts_files(base)["b"], cwd=a)
    error_line(r, 2, "compute_dtype float64 is not implemented")
    assert snapshot(a) == before


def test_a_commit_that_will_not_fit_is_refused_before_any_work(repos, monkeypatch):
    from cli_support import snapshot

    from memstore.editing import memory

    base, a, _ = repos
    r = ok("commit", facts_files(base)["b"], cwd=a)
    line = r.stdout.splitlines()[0]
    assert line.startswith("estimated peak memory beyond the loaded model:")
    assert "GiB available on cpu" in line
    assert "()" not in line and "( GiB)" not in line  # a tiny model has no term to list
    monkeypatch.setattr(memory, "available", lambda device: 1024)  # a machine with 1 KiB free
    before = snapshot(a)
    r = run("commit", facts_files(base)["c"], cwd=a)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert "this commit will not fit: estimated peak memory" in r.stderr
    assert snapshot(a) == before


def test_config_shows_values_it_takes_back(repos):
    _, a, _ = repos
    shown = ok("config", "device_map", cwd=a).stdout.strip()
    assert shown == "none"
    ok("config", "device_map", shown, cwd=a)
    ok("config", "device_map", "None", cwd=a)
    assert ok("config", "device_map", cwd=a).stdout.strip() == "none"


def test_a_relative_device_map_file_is_the_one_named_from_where_config_ran(repos):
    """`config device_map m.json` in a subfolder stored 'm.json', which every later command
    looked up from its own folder: another file, or none."""
    _, a, _ = repos
    sub = a / "maps"
    sub.mkdir(exist_ok=True)
    ok("config", "device_map", "m.json", cwd=sub)
    try:
        shown = ok("config", "device_map", cwd=a).stdout.strip()
        assert Path(shown).is_absolute() and Path(shown).resolve() == (sub / "m.json").resolve()
    finally:
        ok("config", "device_map", "none", cwd=a)
