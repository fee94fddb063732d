"""What `verify` makes of the manifest's informational fields, which it never looked at:
`rev` naming another commit now (or none) and `base.spec` naming the base otherwise are
notes; `built_with` other than the rebuild's, where every tensor is the same, a note, but a
checkpoint's dtype recorded otherwise than its tensors' a problem; a field of the wrong type
a damaged manifest."""
from __future__ import annotations

import json
import shutil

import test_cli_errors
from cli_support import model_dir, ok, run
from test_cli_errors import refused

repo = test_cli_errors.repo  # the same fixture: a copy of C1..C3


def notes(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


def test_rev_and_base_spec(base, repo, tmp_path):
    ids = [c["id"] for c in reversed(json.loads(ok("log", "--json", cwd=repo).stdout))]
    ok("branch", "topic", cwd=repo)
    out = tmp_path / "v"
    ok("export", "topic", out, "--format", "peft", cwd=repo)
    r = ok("verify", out, cwd=repo)
    assert "OK:" in r.stdout and notes(r) == []
    ok("branch", "-D", "topic", cwd=repo)
    ok("branch", "topic", "HEAD~1", cwd=repo)  # the branch moved back
    assert notes(ok("verify", out, cwd=repo)) == [
        f"note: rev: 'topic' names {ids[1][:12]} now, not the exported {ids[2][:12]}"]
    ok("branch", "-D", "topic", cwd=repo)
    d = json.loads(ok("verify", out, "--json", cwd=repo).stdout)
    assert d["ok"] is True and d["notes"] == [("rev: 'topic' names no revision of this "
                                              "repository now")]
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    elsewhere = shutil.copytree(model_dir(base), tmp_path / "elsewhere")
    ok("clone", tmp_path / "remote", tmp_path / "clone", "--base", elsewhere)
    r = ok("verify", out, cwd=tmp_path / "clone")
    assert "OK:" in r.stdout
    assert f"note: base.spec: the export names its base '{model_dir(base)}', this " \
           f"repository '{elsewhere}' (the same weights, by hash)" in notes(r)


def test_built_with(repo, tmp_path):
    out = tmp_path / "full"
    ok("export", "HEAD", out, cwd=repo)
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    assert m["built_with"] == {"device": "cpu", "dtype": "float32"}
    manifest.write_text(json.dumps({**m, "built_with": {"device": "cuda", "dtype": "float32"}}))
    r = ok("verify", out, cwd=repo)
    assert "OK:" in r.stdout and notes(r) == [
        ("note: built_with: built with cuda/float32, rebuilt here with cpu/float32 to the "
         "same bits")]
    manifest.write_text(json.dumps({**m, "built_with": {"device": "cpu", "dtype": "bfloat16"}}))
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1, r.output
    assert r.stdout.splitlines()[0] == ("built_with: records dtype bfloat16, but the "
                                        "checkpoint's tensors are float32, as rebuilt here")
    for field, value in (("rev", 3), ("built_with", "cpu"),
                         ("built_with", {"device": "cpu"}), ("base", {**m["base"], "spec": 1})):
        manifest.write_text(json.dumps({**m, field: value}))
        refused(repo, "verify", out, code=2,
                says="damaged manifest (rev, base.spec or built_with)")


def test_a_long_rev_or_base_spec_is_shortened_in_its_note(repo, tmp_path):
    """A `rev` (or `base.spec`) of 100,000 characters, edited by hand into the manifest,
    was quoted whole: a note line of 100 kB."""
    out = tmp_path / "v"
    ok("export", "HEAD", out, "--format", "peft", cwd=repo)
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    m["base"]["spec"] = "s" * 100_000
    manifest.write_text(json.dumps({**m, "rev": "x" * 100_000}))
    said = notes(run("verify", out, cwd=repo))
    assert [line[:15] for line in said] == ["note: rev: 'xxx", "note: base.spec"]
    assert all(len(line) < 300 for line in said), [len(line) for line in said]
    assert "…" in said[0] and "names no revision" in said[0], said[0]
