"""`verify` compares an export's model card (README.md) with the card rebuilt from the
repository and the manifest: a card edited by hand, with its sha256 in the manifest
updated to match, verified OK. A card rebuilt elsewhere (another folder, a clone on a base
at another path, the export folder renamed) is the same."""
from __future__ import annotations

import hashlib
import json
import shutil

import test_cli_errors
from cli_support import model_dir, ok, run
from test_cli_errors import refused

from memstore.store.export_card import TEMPLATE

repo = test_cli_errors.repo  # the same fixture: a copy of C1..C3
CARD_DIFFERS = "README.md: differs from the card rebuilt from the repository"


def edit_card(out, old: str, new: str) -> None:
    """Replaces `old` by `new` in the export's card, and its sha256 in the manifest."""
    card, manifest = out / "README.md", out / "memstore-manifest.json"
    text = card.read_text(encoding="utf-8")
    assert old in text
    card.write_text(text.replace(old, new, 1), encoding="utf-8")
    m = json.loads(manifest.read_text())
    m["files"]["README.md"] = hashlib.sha256(card.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(m))


def failed_on_the_card(out, cwd) -> None:
    r = run("verify", out, cwd=cwd)
    assert r.exit_code == 1, r.output
    assert [line for line in r.stdout.splitlines() if "README.md" in line] == [CARD_DIFFERS]


def notes_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


def test_a_card_edited_with_its_hash_fails_verify(repo, tmp_path):
    for fmt in ("full", "peft"):
        out = tmp_path / fmt
        ok("export", "HEAD", out, "--format", fmt, cwd=repo)
        assert "OK:" in ok("verify", out, cwd=repo).stdout
        saved = {p.name: p.read_bytes() for p in out.iterdir()}
        for old, new in (("| Michael Jordan | {} plays | basketball → soccer |",
                          "| Michael Jordan | {} plays | basketball → tennis |"),
                         ("## Efficacy measured at commit time", "## Efficacy"),
                         (f"memstore verify {out}", f"memstore verify {tmp_path}/else")):
            edit_card(out, old, new)
            failed_on_the_card(out, repo)
            for name, data in saved.items():
                (out / name).write_bytes(data)
        m = json.loads((out / "memstore-manifest.json").read_text())
        assert m["card"] == {"out": str(out), "runtime": [], "template": TEMPLATE}


def test_a_card_is_the_same_rebuilt_elsewhere(base, repo, tmp_path):
    """Exported with a relative OUT_DIR from a subfolder, verified from elsewhere under
    another path, after the folder was renamed, and from a clone that names the base by
    another path: the card holds no time, machine or folder of its own."""
    (repo / "sub").mkdir()
    ok("export", "HEAD~1", "../../v1", "--format", "peft", cwd=repo / "sub")
    ok("export", "HEAD", "../../v2", cwd=repo / "sub")
    for name in ("v1", "v2"):
        moved = tmp_path / f"moved-{name}"
        (tmp_path / name).rename(moved)
        text = (moved / "README.md").read_text(encoding="utf-8")
        assert "memstore verify ../../" + name in text and str(tmp_path) not in text
        assert "OK:" in ok("verify", moved, cwd=repo).stdout
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    elsewhere = shutil.copytree(model_dir(base), tmp_path / "elsewhere")
    ok("clone", tmp_path / "remote", tmp_path / "clone", "--base", elsewhere)
    for name in ("v1", "v2"):
        r = ok("verify", tmp_path / f"moved-{name}", cwd=tmp_path / "clone")
        assert "OK:" in r.stdout
    edit_card(tmp_path / "moved-v1", "basketball → soccer", "basketball → tennis")
    failed_on_the_card(tmp_path / "moved-v1", tmp_path / "clone")


def test_an_export_without_a_card_record(repo, tmp_path):
    """An export by an earlier memstore (no `card` in its manifest) gets a note that its
    card is not compared; a damaged record is one line; a card gone from both the folder
    and the manifest's files, where the manifest records one, is a problem."""
    out = tmp_path / "v"
    ok("export", "HEAD", out, "--format", "peft", cwd=repo)
    manifest = out / "memstore-manifest.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({k: v for k, v in m.items() if k != "card"}))
    r = ok("verify", out, cwd=repo)
    assert "OK:" in r.stdout
    says = ("note: README.md: not compared with the repository (the manifest, written by an "
            "earlier memstore, does not record the card's output path)")
    assert notes_of(r) == [says]
    d = json.loads(ok("verify", out, "--json", cwd=repo).stdout)
    assert d["ok"] is True and len(d["notes"]) == 1
    edited = {**m, "card": {**m["card"], "template": TEMPLATE + 1}}  # another memstore's
    manifest.write_text(json.dumps(edited))
    edit_card(out, "basketball → soccer", "basketball → tennis")
    r = ok("verify", out, cwd=repo)
    says = (f"note: README.md: not compared with the repository (written with template "
            f"{TEMPLATE + 1} of memstore's card text, this memstore writes {TEMPLATE})")
    assert notes_of(r) == [says]
    manifest.write_text(json.dumps({**m, "card": {"out": 3}}))
    refused(repo, "verify", out, code=2, says="damaged manifest (card)")
    (out / "README.md").unlink()
    manifest.write_text(json.dumps({**m, "files": {k: v for k, v in m["files"].items()
                                                   if k != "README.md"}}))
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1 and "README.md: missing from the export" in r.stdout
