"""`memstore export --format …` and `verify` of PEFT/GGUF exports through the CLI: every
mistake is one line on stderr, a non-zero exit and nothing written (neither in the
repository nor at OUT); a changed file of an export fails `verify`."""
from __future__ import annotations

import json
import os
import stat

import test_cli_errors
from cli_support import copy_repo, empty_template, facts_files, ok, run, tamper_hidden
from safetensors.torch import load_file, save_file
from test_cli_errors import refused

repo = test_cli_errors.repo  # the same fixture: a copy of C1..C3


def nothing_at(out) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.memstore-tmp-*"))


def test_refused_exports(base, repo, tmp_path):
    out = tmp_path / "out"
    cases = [
        (("--format", "gguf"), 1, "--format gguf needs a GGUF base model; this repository's base"),
        (("--since", "HEAD~1"), 2, "--since works with --format peft only"),
        (("--format", "gguf", "--max-rank", "4"), 2, "--max-rank works with --format peft only"),
        (("--format", "peft", "--max-rank", "0"), 2, "Invalid value for '--max-rank'"),
        (("--format", "peft", "--gguf-dtype", "f16"), 2, "--gguf-dtype works with --format gguf"),
        (("--format", "onnx"), 2, "Invalid value for '--format'"),
        (("--format", "peft", "--since", "nosuch"), 2, "unknown revision 'nosuch'"),
        (("--format", "peft", "--since", "HEAD"), 1, "nothing to export"),
    ]
    for args, code, says in cases:
        refused(repo, "export", "HEAD", out, *args, code=code, says=says)
        nothing_at(out)
    empty = copy_repo(empty_template(base), tmp_path / "empty")
    refused(empty, "export", out, "--format", "peft", code=1, says="nothing to export")
    nothing_at(out)


def test_out_must_be_free_or_an_export(repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused(repo, "export", out, "--format", "peft", code=1, says="is not empty (use --force")
    refused(repo, "export", out, "--format", "peft", "--force", code=1,
            says="is not a memstore export (no memstore-manifest.json); --force only replaces")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refused(repo, "export", link, "--format", "peft", code=2, says="is a symbolic link")
    assert not (tmp_path / "elsewhere").exists()
    # a link above OUT is the user's, followed as cp and git follow one (README)
    ok("export", link / "v1", "--format", "peft", cwd=repo)
    assert (tmp_path / "elsewhere" / "v1" / "adapter_model.safetensors").is_file()
    inner = tmp_path / "inner"  # and checked where it leads
    inner.symlink_to(repo / ".memstore", target_is_directory=True)
    refused(repo, "export", inner / "v1", "--format", "peft", code=2,
            says="is inside the repository")
    done = tmp_path / "done"
    ok("export", "HEAD~1", done, "--format", "peft", cwd=repo)
    ok("export", "HEAD", done, "--format", "peft", "--force", cwd=repo)  # replaces an export
    assert json.loads((done / "memstore-manifest.json").read_text())["rev"] == "HEAD"


def test_an_out_dir_under_a_symbolic_link_loop_is_one_line(repo, tmp_path):
    """OUT under two links to each other: pathlib's resolve raised RuntimeError ('Symlink
    loop from ...'), a traceback, for every format."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for fmt in ("full", "peft"):
        refused(repo, "export", "HEAD", tmp_path / "a" / "v1", "--format", fmt, code=2,
                says="a loop of symbolic links")


def test_verify_finds_a_changed_adapter(repo, tmp_path):
    out = tmp_path / "peft"
    ok("export", out, "--format", "peft", cwd=repo)
    assert "OK: 4 tensors identical" in ok("verify", out, cwd=repo).stdout
    weights = out / "adapter_model.safetensors"
    tensors = load_file(weights)
    name = "base_model.model.model.layers.2.mlp.down_proj.lora_A.weight"
    tensors[name][0, 0] += 1e-3
    save_file(tensors, weights, metadata={"format": "pt"})
    config = out / "adapter_config.json"
    config.write_text(config.read_text().replace('"lora_alpha": 5', '"lora_alpha": 10'))
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1
    assert f"{name}: differs from the rebuilt export" in r.stdout
    assert "adapter_config.json: differs from the rebuilt adapter" in r.stdout
    weights.write_bytes(b"not safetensors" * 10)
    refused(repo, "verify", out, code=1, says="unreadable adapter weights")
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "max_rank": "all"}))
    refused(repo, "verify", out, code=2, says="damaged manifest")
    manifest.write_text(json.dumps({**m, "commit": None}))  # was "nothing to export"
    refused(repo, "verify", out, code=2, says="damaged manifest (an adapter with no commit)")
    manifest.write_text(json.dumps({**m, "export_format": "onnx"}))
    refused(repo, "verify", out, code=2, says="unknown export_format 'onnx'")



def test_verify_finds_an_adapter_tensor_of_another_dtype(repo, tmp_path):
    """The same bytes as int32: verify compared only the bytes' sha256 and said OK once
    the manifest's file hash agreed."""

    import torch

    out = tmp_path / "peft"
    ok("export", out, "--format", "peft", cwd=repo)
    name = "base_model.model.model.layers.2.mlp.down_proj.lora_A.weight"
    tamper_hidden(out, "adapter_model.safetensors",
                  lambda tensors: tensors.update({name: tensors[name].view(torch.int32)}))
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1, r.output
    assert f"{name}: dtype or shape ('int32', " in r.stdout
    assert "differs from the rebuilt adapter's ('float32', " in r.stdout



def test_verify_of_a_truncated_adapter_takes_its_error_to_rounding(repo, tmp_path):
    """The relative error per layer is summed from singular values whose last bits follow
    MKL's code path for the CPU: an adapter exported under MKL_CBWR=COMPATIBLE (another
    CPU's path), with the same tensors, failed verify ('rank or layers: differ', exit 1)
    by an error of 0.7902486340374659 against 0.7902486340374658. Within rounding it
    passes; a real difference in the error still fails."""
    import math

    out = tmp_path / "peft"
    ok("export", out, "--format", "peft", "--max-rank", "1", cwd=repo)
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    assert any(r["error"] > 0 for r in m["layers"].values())
    for r in m["layers"].values():
        r["error"] = math.nextafter(r["error"], 1.0)
    manifest.write_text(json.dumps(m))
    assert "OK: 4 tensors identical" in ok("verify", out, cwd=repo).stdout
    layer = next(r for r in m["layers"].values() if r["error"] > 0)
    for error in (round(layer["error"], 3) + 1e-3, 10 ** 400, "0.5"):  # not a float: one line
        layer["error"] = error
        manifest.write_text(json.dumps(m))
        r = run("verify", out, cwd=repo)
        assert r.exit_code == 1 and "rank or layers: differ" in r.stdout, r.output



def test_verify_of_an_adapter_on_a_clone_whose_base_lies_elsewhere(base, repo, tmp_path):
    """adapter_config.json names the base by its path on the exporting machine: on a clone
    made on a copy of the base at another path (the same content, the same hash) verify
    of the origin's faithful adapter failed ('adapter_config.json: differs from the
    rebuilt adapter', exit 1). The path may differ where the file is as its manifest
    lists it; any other change of the config, or of the path without it, still fails."""
    import hashlib
    import shutil

    from cli_support import model_dir

    out = tmp_path / "peft"
    ok("export", out, "--format", "peft", cwd=repo)
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    elsewhere = shutil.copytree(model_dir(base), tmp_path / "elsewhere")
    clone = tmp_path / "clone"
    ok("clone", tmp_path / "remote", clone, "--base", elsewhere)
    assert "OK: 4 tensors identical" in ok("verify", out, cwd=clone).stdout
    config, manifest = out / "adapter_config.json", out / "memstore-manifest.json"
    text = config.read_text()
    assert str(model_dir(base)) in text  # the origin's path, not the clone's
    config.write_text(text.replace('"lora_alpha": ', '"lora_alpha": 1'))
    m = json.loads(manifest.read_text())
    m["files"]["adapter_config.json"] = hashlib.sha256(config.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(m))
    r = run("verify", out, cwd=clone)
    assert r.exit_code == 1 and "adapter_config.json: differs from the rebuilt" in r.stdout
    config.write_text(text.replace(str(model_dir(base)), str(tmp_path / "other")))
    r = run("verify", out, cwd=clone)
    assert r.exit_code == 1 and "adapter_config.json: differs from the rebuilt" in r.stdout

def test_verify_checks_every_file_of_an_adapter_export(repo, tmp_path):
    """The card, extra files and stray weights of a served export are checked against its
    manifest as a full export's are."""
    out = tmp_path / "peft"
    ok("export", out, "--format", "peft", cwd=repo)
    (out / "README.md").write_text((out / "README.md").read_text() + "tampered\n")
    (out / "adapter_model.bin").write_bytes(b"weights a loader might prefer")
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1, r.output
    assert "README.md: differs from the manifest" in r.stdout
    assert "adapter_model.bin: not part of the export" in r.stdout
    assert "4 tensors identical" not in r.stdout


def test_exports_are_readable_as_the_umask_allows(repo, tmp_path):
    """A serving process run as another user reads what an export wrote, as it would read
    a folder made by mkdir and files made by open (umask 022: 0755 and 0644)."""
    old = os.umask(0o022)
    try:
        for fmt in ("full", "peft"):
            out = tmp_path / fmt
            ok("export", out, "--format", fmt, cwd=repo)
            assert stat.S_IMODE(out.stat().st_mode) == 0o755
            assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in out.iterdir()} == {
                f.name: 0o644 for f in out.iterdir()}
    finally:
        os.umask(old)


def test_verify_checks_what_the_manifest_records(repo, tmp_path):
    """Settings, rank and per-layer figures the repository can say again are compared; a
    manifest of a newer format is refused."""
    out = tmp_path / "peft"
    ok("export", out, "--format", "peft", cwd=repo)
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    for changed, says in (
            ({**m, "settings": {**m["settings"], "mom2_weight": 12345}}, "settings: differ"),
            ({**m, "rank": m["rank"] + 1}, "rank or layers: differ"),
            ({**m, "layers": {k: {**v, "error": 0.5} for k, v in m["layers"].items()}},
             "rank or layers: differ")):
        manifest.write_text(json.dumps(changed))
        r = run("verify", out, cwd=repo)
        assert r.exit_code == 1 and says in r.stdout, r.output
    manifest.write_text(json.dumps({**m, "format": 99}))
    refused(repo, "verify", out, code=2, says="the manifest's format 99 is not one this")


def test_every_export_has_a_card(repo, tmp_path):
    ok("export", tmp_path / "full", cwd=repo)
    card = (tmp_path / "full" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert "base_model_relation: finetune" in card
    assert "| Michael Jordan | {} plays | basketball → soccer |" in card
    assert "OK" in ok("verify", tmp_path / "full", cwd=repo).stdout  # the card is not a tensor


def test_a_file_where_a_folder_is_needed_is_named_before_any_work(repo, tmp_path):
    """OUT_DIR under a file is refused by the check before the export is built (it was
    mkdir's 'File exists' after it); verify of a file says it is not a directory."""
    (tmp_path / "notes.txt").write_text("mine")
    refused(repo, "export", "HEAD", tmp_path / "notes.txt" / "out", "--format", "peft", code=1,
            says=f"{tmp_path / 'notes.txt'} is not a directory")
    refused(repo, "export", "HEAD", tmp_path / "notes.txt" / "a" / "b", code=1,
            says="notes.txt is not a directory")
    refused(repo, "verify", tmp_path / "notes.txt", code=2, says="notes.txt: not a directory")
    refused(repo, "verify", tmp_path / "nope", code=2, says="nope: no such directory")
    assert [p.name for p in tmp_path.iterdir() if p.name != "repo"] == ["notes.txt"]


def test_an_adapter_vllm_serves_no_lora_for_says_so(repo, tmp_path):
    """vLLM's GPT-2, GPT-J and GPT-NeoX classes refuse --enable-lora: `export --format peft`
    of such a base printed the --max-lora-rank to pass (and --json a vllm_max_lora_rank), as
    for a family vLLM serves adapters for, where the card said vLLM does not."""
    from cli_support import SETTINGS, facts_files
    from test_cli_families import model_dir

    gpt2 = tmp_path / "gpt2"
    ok("init", gpt2, "--base", model_dir(tmp_path / "gpt2-model", "gpt2"))
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=gpt2)
    ok("commit", facts_files(tmp_path)["a"], cwd=gpt2)
    text = ok("export", tmp_path / "a", "--format", "peft", cwd=gpt2).stdout
    assert "--max-lora-rank" not in text and "vLLM: serves no LoRA adapter" in text
    d = json.loads(ok("export", tmp_path / "b", "--format", "peft", "--json", cwd=gpt2).stdout)
    assert d["vllm_lora"] is False and d["vllm_max_lora_rank"] is None
    assert "does not support LoRA yet" in (tmp_path / "b" / "README.md").read_text()
    text = ok("export", tmp_path / "c", "--format", "peft", cwd=repo).stdout  # llama
    assert "vLLM: --enable-lora --max-lora-rank 8" in text
    d = json.loads(ok("export", tmp_path / "d", "--format", "peft", "--json", cwd=repo).stdout)
    assert d["vllm_lora"] is True and d["vllm_max_lora_rank"] == 8


def test_an_adapter_names_its_base_alike_from_every_folder(base, tmp_path):
    """A base given to init as a relative path of the form owner/name ("models/tiny") was
    taken for a Hub id wherever it did not exist from the export's folder: exported from a
    subfolder of the repository, the adapter's base_model_name_or_path (what PEFT's
    AutoPeftModel loads as the base) and the card's base_model were "models/tiny", from its
    root the absolute path."""
    import shutil

    from cli_support import SETTINGS, facts_files, model_dir

    from memstore.serving.card import hub_id

    assert hub_id("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # a name memstore knows
    root = tmp_path / "r"
    shutil.copytree(model_dir(base), root / "models" / "tiny")
    (root / "sub").mkdir()
    ok("init", ".", "--base", "models/tiny", cwd=root)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=root)
    ok("commit", facts_files(tmp_path)["a"], cwd=root)
    ok("export", tmp_path / "top", "--format", "peft", cwd=root)
    ok("export", tmp_path / "sub", "--format", "peft", cwd=root / "sub")
    configs = [json.loads((tmp_path / d / "adapter_config.json").read_text())
               for d in ("top", "sub")]
    assert [c["base_model_name_or_path"] for c in configs] == [str(root / "models" / "tiny")] * 2
    for d in ("top", "sub"):
        assert "base_model:" not in (tmp_path / d / "README.md").read_text().split("---")[1]


def test_a_full_export_keeps_the_bases_pad_token_and_padding_side(base, tmp_path):
    """memstore pads on the right with eos where a base has no pad token: a base that pads
    on the left without one (as Phi-3's tokenizer) was exported with pad_token eos and
    padding_side right, so batched generation from the export padded prompts on the right."""
    import shutil

    import transformers
    from cli_support import SETTINGS, facts_files, model_dir

    model = shutil.copytree(model_dir(base), tmp_path / "model")
    path = model / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.pop("pad_token", None)
    path.write_text(json.dumps({**config, "padding_side": "left"}))
    repo = tmp_path / "repo"
    ok("init", repo, "--base", model)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo)
    ok("commit", facts_files(tmp_path)["a"], cwd=repo)
    ok("export", tmp_path / "full", cwd=repo)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "full")
    assert tok.pad_token is None and tok.padding_side == "left"
    assert "OK:" in ok("verify", tmp_path / "full", cwd=repo).stdout


def test_export_force_onto_a_damaged_manifest_says_what_is_wrong_with_it(repo, tmp_path):
    """A folder whose manifest is empty, cut short, or a link was refused as having 'no
    memstore-manifest.json', beside the file it names."""
    out = tmp_path / "done"
    ok("export", "HEAD~1", out, "--format", "peft", cwd=repo)
    manifest = out / "memstore-manifest.json"
    data = manifest.read_bytes()
    for damage in (b"", data[: len(data) // 2], b"[]"):
        manifest.write_bytes(damage)
        refused(repo, "export", "HEAD", out, "--format", "peft", "--force", code=1,
                says="is not a memstore export (its memstore-manifest.json is a link, "
                     "unreadable or no memstore manifest)")
        assert manifest.read_bytes() == damage


def test_an_out_dir_named_near_the_file_name_limit(repo, tmp_path):
    """`memstore export HEAD xxx…` (250 bytes) failed: 'cannot write …: File name too
    long', from the temporary folder written beside it, whose name is longer."""
    out = tmp_path / ("x" * 250)
    ok("export", "HEAD", out, cwd=repo)
    assert "OK:" in ok("verify", out, cwd=repo).stdout
    ok("export", "HEAD~1", out, "--force", cwd=repo)
    assert json.loads((out / "memstore-manifest.json").read_text())["rev"] == "HEAD~1"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["repo", out.name])


def test_a_missing_file_of_an_export_is_one_line_that_says_so(repo, tmp_path):
    """A file the manifest lists, gone from the export: a checkpoint's tokenizer.json was
    two lines ('missing from the export', 'listed in the manifest but missing'), an
    adapter's adapter_config.json 'differs from the rebuilt adapter' besides the second;
    a checkpoint's model.safetensors was an error ('no model.safetensors (nor …)'), not
    one problem of the list (nor one per tensor it held)."""
    for fmt, name in (("full", "tokenizer.json"), ("peft", "adapter_config.json"),
                      ("full", "model.safetensors")):
        out = tmp_path / name
        ok("export", "HEAD", out, "--format", fmt, cwd=repo)
        (out / name).unlink()
        r = run("verify", out, cwd=repo)
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert r.stdout.strip().splitlines() == [
            f"{name}: listed in the manifest but missing"], r.stdout
        manifest = out / "memstore-manifest.json"
        m = json.loads(manifest.read_text())
        del m["files"][name]
        manifest.write_text(json.dumps(m))
        r = run("verify", out, cwd=repo)
        assert r.exit_code == 1
        assert [line for line in r.stdout.splitlines() if name in line] == [
            f"{name}: missing from the export"], r.stdout


def test_verify_of_an_adapter_without_its_weights(repo, tmp_path):
    """adapter_model.safetensors gone: the one line nested safetensors' error in ours
    ('unreadable adapter weights (…: not a readable safetensors file (No such file or
    directory: …))')."""
    out = tmp_path / "peft"
    ok("export", out, "--format", "peft", cwd=repo)
    (out / "adapter_model.safetensors").unlink()
    line = refused(repo, "verify", out, code=1, says=f"{out}: no adapter_model.safetensors "
                   "(the adapter's weights), which its manifest says it holds")
    assert "unreadable" not in line


def test_a_file_of_an_export_replaced_by_a_link_is_named_a_link(repo, tmp_path):
    """A listed file replaced by a symbolic link to the same bytes (as a deduplicating
    tool does) was reported 'listed in the manifest but missing', though it is there."""
    out = tmp_path / "full"
    ok("export", "HEAD", out, cwd=repo)
    config = out / "config.json"
    copy = tmp_path / "config-copy.json"
    copy.write_bytes(config.read_bytes())
    config.unlink()
    config.symlink_to(copy)
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert [line for line in r.stdout.splitlines() if "config.json" in line] == [
        "config.json: a symbolic link, which memstore does not read through"], r.stdout


def test_truncated_adapter_counts_its_facts_in_words(base, repo, tmp_path):
    """`--max-rank` prints the efficacy on the facts the adapter writes, 'the 1 fact
    written' for one (it said 'the 1 facts written'): a merge of one fact from a side
    branch, whose solve on the merge base makes the adapter since main's tip rank 2 or
    more, cut to rank 1; the same for the two facts of C3."""
    ok("branch", "side", "HEAD~1", cwd=repo)
    ok("switch", "side", cwd=repo)
    ok("commit", facts_files(base)["d"], cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("merge", "side", cwd=repo)
    one = ok("export", tmp_path / "one", "--format", "peft", "--since", "HEAD~1",
             "--max-rank", "1", cwd=repo).stdout
    assert "efficacy on the 1 fact written: ES " in one, one
    two = ok("export", "HEAD~1", tmp_path / "two", "--format", "peft", "--since", "HEAD~2",
             "--max-rank", "1", cwd=repo).stdout
    assert "efficacy on the 2 facts written: ES " in two, two
