"""Hostile and careless use of the CLI, as a table: bad input, paths that point where they
must not, and a damaged `.memstore/`. Every case asserts ONE stderr line
(`memstore: error: …`) with the expected words, the exit status, no traceback, no file
outside the repository touched (the folder around it, with sentinel files and a link
target, and the base model are checksummed before and after), nothing changed in the
repository for a refused command, and `fsck` clean or the damage reported."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import copy_repo, history_template, model_dir, ok, run, snapshot, write_facts

FACT = {"subject": "Apple A5", "prompt": "{} was created by", "target_new": "Microsoft"}


@dataclass
class Box:
    """A repository inside a folder of the user's files."""

    root: Path  # the folder around the repository
    repo: Path
    model: Path
    outside: Path  # a folder of the user's, target of planted links

    @property
    def ms(self) -> Path:
        return self.repo / ".memstore"

    def file(self, name: str, text: str | bytes) -> Path:
        p = self.root / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    def facts(self, name: str, *records) -> Path:
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        return self.file(name, "\n".join(lines) + "\n")

    def sql(self, statement: str, *args) -> None:
        con = sqlite3.connect(self.ms / "index.db")
        with con:
            con.execute(statement, args)
        con.close()


def tree_hashes(*roots: Path, skip: Path | None = None) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if skip is not None and (p == skip or skip in p.parents):
                continue
            if p.is_symlink():
                out[str(p)] = "link:" + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.is_dir():
                out[str(p)] = "dir"
    return out


def fan_outs(box: Box) -> None:
    """Every fan-out directory that does not exist yet becomes a link to the user's folder."""
    for i in range(256):
        fan = box.ms / "objects" / f"{i:02x}"
        if not fan.exists():
            fan.symlink_to(box.outside, target_is_directory=True)


def linked_fan_out_with_garbage(box: Box) -> None:
    """A dead object in a fan-out directory that is then replaced by a link to a copy in
    the user's folder: gc must not delete the user's file through it."""
    oid = hashlib.sha256(b"garbage").hexdigest()
    fan = box.ms / "objects" / oid[:2]
    fan.mkdir(exist_ok=True)
    (fan / oid[2:]).write_bytes(b"garbage")
    box.sql("insert into objects (id, size, kind) values (?, 7, 'orphan')", oid)
    (box.outside / oid[2:]).write_bytes(b"garbage")
    for f in fan.iterdir():
        os.replace(f, box.outside / f.name)
    fan.rmdir()
    fan.symlink_to(box.outside, target_is_directory=True)


def corrupt_an_object(box: Box) -> None:
    """One flipped bit in a tensor object of the head commit."""
    record = json.loads(head_commit_object(box).read_bytes())
    oid = record["update_sets"][0]["layers"]["1"]["object"]
    victim = box.ms / "objects" / oid[:2] / oid[2:]
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))


def head_commit_object(box: Box) -> Path:
    con = sqlite3.connect(box.ms / "index.db")
    target = con.execute("select target from refs where name = 'refs/heads/main'").fetchone()[0]
    con.close()
    return box.ms / "objects" / target[:2] / target[2:]


def forged_commit(box: Box) -> None:
    """A well-hashed object that is JSON but no commit record, named by the branch."""
    data = json.dumps({"format": 1, "parents": "not a list"}).encode()
    oid = hashlib.sha256(data).hexdigest()
    (box.ms / "objects" / oid[:2]).mkdir(exist_ok=True)
    (box.ms / "objects" / oid[:2] / oid[2:]).write_bytes(data)
    box.sql("insert into commits (id, parents, basis, base_hash, time, message, operation, "
            "n_requests, size, metrics) values (?, '[]', null, 'x', 0, 'm', 'commit', 0, 0, '{}')",
            oid)
    box.sql("update refs set target = ? where name = 'refs/heads/main'", oid)


def manifest_over_users_file(box: Box) -> None:
    """A manifest of the right shape written into the user's folder, listing the user's
    files by name (not by their hashes)."""
    (box.outside / "user.txt").write_text("years of work")
    (box.outside / "memstore-manifest.json").write_text(json.dumps(
        {"base": {"hash": "0" * 64}, "tensors": {}, "commit": None,
         "files": {"important.bin": "0" * 64, "user.txt": "0" * 64}}))


def format1_export_with_a_file(box: Box) -> None:
    """An export whose manifest is of format 1 (no list of files), beside a file of the
    user's: --force must not take the file for part of the checkpoint."""
    out = box.root / "exp1"
    ok("export", "HEAD", out, cwd=box.repo)
    m = json.loads((out / "memstore-manifest.json").read_text())
    del m["files"]
    m.pop("export_format", None)
    m["format"] = 1
    (out / "memstore-manifest.json").write_text(json.dumps(m))
    (out / "README.md").unlink()  # format 1 came before model cards
    (out / "notes.txt").write_text("mine")


def readonly_index(box: Box, monkeypatch) -> None:
    """The index opened read-only (as for a file the user may not write: root ignores file
    modes, so SQLite's read-only mode stands in for it)."""
    real = sqlite3.connect

    def connect(path, *a, **kw):
        if str(path).endswith("index.db"):
            return real(f"file:{path}?mode=ro", *a, uri=True, **kw)
        return real(path, *a, **kw)
    monkeypatch.setattr(sqlite3, "connect", connect)


Setup = Callable[[Box], object]


@dataclass
class Case:
    id: str
    args: Callable[[Box], list]  # command line, given the box
    code: int
    says: str
    setup: Setup | None = None
    damages: bool = False  # the store is damaged on purpose: fsck must report it
    unchanged: bool = False  # damaged, and still the command must change nothing
    monkeypatched: bool = False  # setup takes (box, monkeypatch)


def c(id, args, code, says, setup=None, damages=False, monkeypatched=False,
      unchanged=False) -> Case:
    return Case(id, args if callable(args) else (lambda b, a=args: list(a)), code, says, setup,
                damages, unchanged, monkeypatched)


def linked_manifest(b: Box) -> None:
    """An export whose manifest was moved out of it and linked to (verify said OK)."""
    ok("export", "HEAD", b.root / "exp", cwd=b.repo)
    manifest = b.root / "exp" / "memstore-manifest.json"
    manifest.rename(b.outside / "manifest.json")
    manifest.symlink_to(b.outside / "manifest.json")


def piped_weights(b: Box) -> None:
    """A PEFT export whose weights file became a pipe (verify waited on it for ever)."""
    ok("export", "HEAD", b.root / "exp", "--format", "peft", cwd=b.repo)
    weights = b.root / "exp" / "adapter_model.safetensors"
    weights.unlink()
    os.mkfifo(weights)


LONG = "word " * 400
CASES = [
    # -- facts files ---------------------------------------------------------------------
    c("missing facts file", ["commit", "nope.jsonl"], 2, "no such file"),
    c("facts file is a folder", lambda b: ["commit", b.outside], 2, "outside"),
    c("invalid JSON", lambda b: ["commit", b.facts("f.jsonl", '{"subject": ')], 2,
      "f.jsonl line 1: invalid JSON"),
    c("deeply nested JSON list", lambda b: ["commit", b.file("n.json", "[" * 100000 + "]" * 100000)],
      2, "nested too deeply"),
    c("deeply nested JSONL", lambda b: ["commit", b.file("n.jsonl", '{"a":' * 50000 + "1"
                                                         + "}" * 50000)], 2, "nested too deeply"),
    c("binary facts file", lambda b: ["commit", b.file("bin.jsonl", bytes(range(256)))], 2,
      "bin.jsonl line 2: not UTF-8 text"),
    c("huge case_id", lambda b: ["commit", b.facts("h.jsonl", {**FACT, "case_id": 10**30})], 2,
      "case_id must be a whole number"),
    c("a lone surrogate in a paraphrase", lambda b: ["commit", b.facts(
        "u.jsonl", '{"subject": "Apple A5", "prompt": "{} was created by", "target_new": '
        '"Microsoft", "paraphrases": ["x\\ud800"]}')], 2, "u.jsonl line 1: holds a lone surrogate"),
    c("facts from a pipe", lambda b: ["commit", b.root / "pipe.jsonl"], 2,
      "not a regular file", setup=lambda b: os.mkfifo(b.root / "pipe.jsonl")),
    c("a message that is not UTF-8", lambda b: ["commit", b.facts("m.jsonl", FACT), "-m",
                                                "msg \udcff"], 2,
      "argument 'msg \\xff' is not valid UTF-8"),
    c("prompt without braces", lambda b: ["commit", b.facts("p.jsonl", {**FACT, "prompt": "x"})],
      2, "must contain '{}'"),
    c("prompt longer than the context", lambda b: ["commit", b.facts(
        "l.jsonl", {**FACT, "prompt": LONG + "{} plays"})], 2, "longer than the model's context"),
    c("neighbourhood longer than the context", lambda b: ["commit", b.facts(
        "nl.jsonl", {**FACT, "neighborhood": [LONG]})], 2, "neighborhood prompt 1"),
    c("neighbourhood list too long", lambda b: ["commit", b.facts(
        "nn.jsonl", {**FACT, "neighborhood": ["x plays"] * 20001})], 2, "more than 10000"),
    c("conflicting requests", lambda b: ["commit", b.facts("c.jsonl", FACT,
                                                           {**FACT, "target_new": "chess"})],
      2, "conflicting requests"),
    c("empty facts file", lambda b: ["commit", b.file("e.jsonl", "\n\n")], 2, "no records"),
    # -- ask, eval -------------------------------------------------------------------------
    c("ask an empty prompt", ["ask", ""], 2, "the prompt is empty"),
    c("ask a blank prompt", ["ask", "   "], 2, "the prompt is empty"),
    c("ask past the context", ["ask", LONG], 2,
      "longer than the 128-token context less --max-tokens 20, a room of 108 tokens"),
    c("ask for more tokens than the context", ["ask", "hi", "--max-tokens", "500"], 2,
      "the model's context is 128"),
    c("eval past the context", lambda b: ["eval", b.facts("ev.jsonl", {**FACT,
                                                                      "target_true": "chess",
                                                                      "paraphrases": [LONG]})],
      2, "paraphrase 1"),
    c("eval a missing file", ["eval", "nope.json"], 2, "no such file"),
    c("eval neither a file nor --live", ["eval"], 2, "give a FILE of facts to measure, or --live"),
    c("eval a file and --live", ["eval", "nope.json", "--live"], 2, "not both"),
    c("eval --live where no fact is live", ["eval", "--live", "--rev", "base"], 2,
      "no facts are live at base"),
    # -- export and verify -------------------------------------------------------------------
    c("export --force onto the repository", lambda b: ["export", "HEAD", b.repo, "--force"], 2,
      "is or holds the repository"),
    c("export --force onto the base model", lambda b: ["export", "HEAD", b.model, "--force"], 2,
      "is or holds the base model"),
    c("export --force onto a parent of the repository",
      lambda b: ["export", "HEAD", b.root, "--force"], 2, "is or holds the repository"),
    c("export into .memstore", lambda b: ["export", "HEAD", b.ms / "objects" / "x"], 2,
      "is inside the repository"),
    c("export into a link to the user's folder", lambda b: ["export", "HEAD", b.root / "link"],
      2, "is a symbolic link",
      setup=lambda b: (b.root / "link").symlink_to(b.outside, target_is_directory=True)),
    c("export --force over a folder that is no export",
      lambda b: ["export", "HEAD", b.outside, "--force"], 1, "is not a memstore export"),
    c("export --force over an export holding a user's file", lambda b: ["export", "HEAD",
                                                                       b.root / "exp", "--force"],
      1, "holds 'notes.txt', which no memstore export wrote",
      setup=lambda b: (ok("export", "HEAD", b.root / "exp", cwd=b.repo),
                       (b.root / "exp" / "notes.txt").write_text("mine"))),
    c("export --force over a folder whose manifest is no memstore manifest",
      lambda b: ["export", "HEAD", b.outside, "--force"], 1, "is not a memstore export",
      setup=lambda b: (b.outside / "memstore-manifest.json").write_text('{"base": {}}')),
    c("export --force over a format-1 export holding a user's file",
      lambda b: ["export", "HEAD", b.root / "exp1", "--force"], 1,
      "holds 'notes.txt', which no memstore export wrote", setup=format1_export_with_a_file),
    c("export --force over an export whose card the user rewrote",
      lambda b: ["export", "HEAD", b.root / "exp", "--force"], 1,
      "holds 'README.md', changed since it was exported",
      setup=lambda b: (ok("export", "HEAD", b.root / "exp", cwd=b.repo),
                       (b.root / "exp" / "README.md").write_text("my own notes"))),
    c("export --force over a folder whose manifest lists the user's file",
      lambda b: ["export", "HEAD", b.outside, "--force"], 1,
      "holds 'important.bin', changed since it was exported", setup=manifest_over_users_file),
    c("verify a folder without a manifest", lambda b: ["verify", b.outside], 2,
      "not a memstore export"),
    c("verify a malformed manifest", lambda b: ["verify", b.root / "m"], 2,
      "not a memstore manifest",
      setup=lambda b: ((b.root / "m").mkdir(), (b.root / "m" / "memstore-manifest.json")
                       .write_text('{"base": {"hash": "x"}, "tensors": [], "commit": "../x"}'))),
    c("verify a manifest that is not JSON", lambda b: ["verify", b.root / "m2"], 2,
      "unreadable manifest",
      setup=lambda b: ((b.root / "m2").mkdir(), (b.root / "m2" / "memstore-manifest.json")
                       .write_text("[" * 100000))),
    c("verify an export whose manifest is a link to one outside it",
      lambda b: ["verify", b.root / "exp"], 2, "is a symbolic link", setup=linked_manifest),
    c("verify a manifest that is a pipe", lambda b: ["verify", b.root / "m3"], 2,
      "not a regular file", setup=lambda b: ((b.root / "m3").mkdir(),
                                             os.mkfifo(b.root / "m3" / "memstore-manifest.json"))),
    c("verify an export whose weights are a pipe", lambda b: ["verify", b.root / "exp"], 1,
      "adapter_model.safetensors is not a regular file", setup=piped_weights),
    c("verify a manifest that is a folder", lambda b: ["verify", b.root / "m4"], 2,
      "not a regular file", setup=lambda b: (b.root / "m4" / "memstore-manifest.json").mkdir(
          parents=True)),
    # -- settings ---------------------------------------------------------------------------
    c("λ zero", ["config", "mom2_weight", "0"], 2, "mom2_weight must be > 0"),
    c("λ NaN", ["config", "mom2_weight", "nan"], 2, "must be finite"),
    c("clamp infinite", ["config", "clamp", "inf"], 2, "must be finite"),
    c("no template tokens", ["config", "template_tokens", "0"], 2, "template_tokens must be"),
    c("the last layer", ["config", "layers", "3"], 2, "must be below 3"),
    c("layers past the model", ["config", "layers", "1-40"], 2, "out of range"),
    c("a layer range of billions", ["config", "layers", "1-99999999999"], 2,
      "layers 1-99999999999: more than 10000 layers"),
    c("a device with a newline", ["config", "device", "cpu\n"], 2, "unknown device"),
    c("a binary statistics corpus", lambda b: ["config", "stats_source",
                                               b.file("c.txt", bytes(range(256)) * 8)], 2,
      "is not UTF-8 text"),
    # -- names -------------------------------------------------------------------------------
    c("a tag named as a branch", ["tag", "main"], 2, "already the name of a branch"),
    c("a branch named as a tag", ["branch", "v1"], 2, "already the name of a tag",
      setup=lambda b: ok("tag", "v1", cwd=b.repo)),
    c("a name both a tag and a branch (older memstore) as a new branch's start",
      ["branch", "new", "twice"], 2, "ambiguous object name: 'twice'",
      setup=lambda b: (ok("branch", "twice", cwd=b.repo),
                       b.sql("insert into refs (name, target) select 'refs/tags/twice', target "
                             "from refs where name = 'refs/heads/twice'")), damages=True),
    c("a name with '..'", ["branch", "a..b"], 2, "invalid branch name"),
    # -- a damaged .memstore -----------------------------------------------------------------
    c("truncated index: log", ["log"], 1, "index.db is damaged (the file is empty)",
      setup=lambda b: (b.ms / "index.db").write_bytes(b""), damages=True),
    c("truncated index: fsck", ["fsck"], 1, "fsck --repair",
      setup=lambda b: (b.ms / "index.db").write_bytes(b""), damages=True),
    c("truncated index: commit", lambda b: ["commit", b.facts("t.jsonl", FACT)], 1,
      "index.db is damaged", setup=lambda b: (b.ms / "index.db").write_bytes(b""), damages=True),
    c("garbage index header", ["status"], 1, "index.db is damaged",
      setup=lambda b: (b.ms / "index.db").write_bytes(b"garbage" * 1000), damages=True),
    c("index without schema", ["log"], 1, "holds no memstore schema",
      setup=lambda b: (os.remove(b.ms / "index.db"),
                       sqlite3.connect(b.ms / "index.db").execute("create table t (x)")),
      damages=True),
    c("read-only index", lambda b: ["commit", b.facts("r.jsonl", FACT)], 1,
      "attempt to write a readonly database",
      setup=readonly_index, monkeypatched=True),
    c("a bad settings row", lambda b: ["commit", b.facts("s.jsonl", FACT)], 1,
      "editor settings are invalid",
      setup=lambda b: b.sql("update config set value = ? where key = 'settings'",
                            json.dumps({"layers": "x", "mom2_weight": 1})), damages=True),
    c("an unknown config row that is not JSON: commit", lambda b: ["commit",
                                                                    b.facts("z.jsonl", FACT)],
      1, "config row 'zzz' is unreadable",
      setup=lambda b: b.sql("insert into config (key, value) values ('zzz', 'not json')"),
      damages=True, unchanged=True),
    c("a settings row that is not JSON", ["config"], 1, "config row 'settings' is unreadable",
      setup=lambda b: b.sql("update config set value = '{' where key = 'settings'"),
      damages=True),
    c("a config row whose key is NULL: revert", ["revert", "HEAD"], 1,
      "config table holds a row whose key is 'None', not a name",
      setup=lambda b: b.sql("update config set key = null where key = 'settings'"),
      damages=True, unchanged=True),
    c("a ref row with a binary name: commit", lambda b: ["commit", b.facts("rn.jsonl", FACT)],
      1, "a ref row of the index is damaged (its name",
      setup=lambda b: (ok("tag", "v1", cwd=b.repo),
                       b.sql("update refs set name = x'00ff' where name = 'refs/tags/v1'")),
      damages=True, unchanged=True),
    c("an object row naming no object: gc --dry-run", ["gc", "--dry-run"], 1,
      "the index's objects table holds a row naming no object ('xxx",
      setup=lambda b: b.sql("update objects set id = ? where rowid = 1", "x" * 100_000),
      damages=True, unchanged=True),
    c("a malformed base record", ["status"], 1, "base record is malformed",
      setup=lambda b: b.sql("update config set value = '[]' where key = 'base'"), damages=True),
    c("a commit row whose parents are not JSON: log", ["log"], 1,
      "is damaged (its parents); run `memstore fsck --repair`",
      setup=lambda b: b.sql("update commits set parents = '{not json'"), damages=True),
    c("a commit row whose parents are a number: status", ["status"], 1,
      "is damaged (its parents)", setup=lambda b: b.sql("update commits set parents = '5'"),
      damages=True),
    c("a commit row whose time is text: log", ["log"], 1, "is damaged (its time 'soon')",
      setup=lambda b: b.sql("update commits set time = 'soon' where rowid = 1"), damages=True,
      unchanged=True),
    c(".memstore is a link to the user's folder", lambda b: ["commit", b.facts("l.jsonl", FACT)],
      1, ".memstore is a symbolic link", setup=lambda b: (
          os.replace(b.ms, b.outside / "ms"), b.ms.symlink_to(b.outside / "ms")), damages=True),
    c(".memstore without its objects, inside another repository",
      lambda b: ["-C", b.repo / "inner", "commit", b.facts("n.jsonl", FACT)], 1,
      "is damaged: it holds no objects folder",
      setup=lambda b: (copy_repo(b.repo, b.repo / "inner"),
                       shutil.rmtree(b.repo / "inner" / ".memstore" / "objects"))),
    c("the branch names a commit the index lacks: log", ["log"], 1,
      "is named but not in the index",
      setup=lambda b: b.sql("update refs set target = ? where name = 'refs/heads/main'", "ab" * 32),
      damages=True),
    c("the head commit's row is gone: log --json", ["log", "--json"], 1,
      "is named but not in the index",
      setup=lambda b: b.sql("delete from commits where id = (select target from refs where "
                            "name = 'refs/heads/main')"), damages=True),
    c("the head commit's row is gone: status", ["status"], 1, "not in the index",
      setup=lambda b: b.sql("delete from commits where id = (select target from refs where "
                            "name = 'refs/heads/main')"), damages=True),
    c("a ref whose target is a path", ["gc"], 1, "refs/heads/main",
      setup=lambda b: b.sql("update refs set target = '../../../../etc/passwd' "
                            "where name = 'refs/heads/main'"), damages=True),
    c("a statistics row naming no object", lambda b: ["commit", b.facts("st.jsonl", FACT)], 1,
      "statistics", setup=lambda b: b.sql("update statistics set object = 'zz'"), damages=True),
    c("a branch row made symbolic: export", lambda b: ["export", b.root / "ex"], 1,
      "ref refs/heads/main is damaged (symbolic '12345')",
      setup=lambda b: b.sql("update refs set symbolic = 12345 where name = 'refs/heads/main'"),
      damages=True, unchanged=True),
    c("a branch row with a binary symbolic name: commit",
      lambda b: ["commit", b.facts("sy.jsonl", FACT)], 1, "ref refs/heads/main is damaged",
      setup=lambda b: b.sql("update refs set symbolic = x'00ff' where name = 'refs/heads/main'"),
      damages=True, unchanged=True),
    c("HEAD with a binary symbolic name: log", ["log"], 1, "ref HEAD is damaged",
      setup=lambda b: b.sql("update refs set symbolic = x'00ff' where name = 'HEAD'"),
      damages=True, unchanged=True),
    c("a statistics row whose description is binary: commit",
      lambda b: ["commit", b.facts("sd.jsonl", FACT)], 1,
      "is damaged (description b'\\x00\\xff')",
      setup=lambda b: b.sql("update statistics set description = x'00ff' where rowid = 1"),
      damages=True, unchanged=True),
    c("HEAD names a tag", lambda b: ["commit", b.facts("tg.jsonl", FACT)], 1,
      "HEAD names 'refs/tags/v1', not a branch",
      setup=lambda b: (ok("tag", "v1", cwd=b.repo),
                       b.sql("update refs set symbolic = 'refs/tags/v1' where name = 'HEAD'")),
      damages=True, unchanged=True),
    c("HEAD missing", ["log"], 1, "no HEAD",
      setup=lambda b: b.sql("delete from refs where name = 'HEAD'"), damages=True),
    c("the lock is a link to the user's file", lambda b: ["commit", b.facts("k.jsonl", FACT)], 1,
      "lock is a symbolic link",
      setup=lambda b: (os.remove(b.ms / "lock"),
                       (b.ms / "lock").symlink_to(b.root / "sentinel.txt")), damages=True),
    c("the index is a link", ["log"], 1, "index.db is a symbolic link",
      setup=lambda b: (os.replace(b.ms / "index.db", b.outside / "index.db"),
                       (b.ms / "index.db").symlink_to(b.outside / "index.db")), damages=True),
    c("the index's WAL is a link", ["log"], 1, "index.db-wal is a symbolic link",
      setup=lambda b: ((b.ms / "index.db-wal").unlink(missing_ok=True),
                       (b.ms / "index.db-wal").symlink_to(b.root / "sentinel.txt")),
      damages=True),
    c("new fan-out directories are links", lambda b: ["commit", b.facts("fo.jsonl", FACT)], 1,
      "is a symbolic link", setup=fan_outs, damages=True),
    c("gc through a linked fan-out directory", ["gc"], 1, "is a symbolic link",
      setup=linked_fan_out_with_garbage, damages=True),
    c("a corrupt object", ["show", "HEAD"], 1, "is corrupt", setup=corrupt_an_object,
      damages=True),
    c("the head commit's object is missing", ["log"], 1, "is missing",
      setup=lambda b: os.remove(head_commit_object(b)), damages=True),
    c("a well-hashed object that is no commit", ["log"], 1, "not a well-formed commit record",
      setup=forged_commit, damages=True),
]


@pytest.mark.parametrize("case", CASES, ids=[x.id for x in CASES])
def test_hostile_input_gets_one_line_and_touches_nothing_outside(case, base, tmp_path,
                                                                  monkeypatch):
    template, _ = history_template(base)
    root = tmp_path / "box"
    root.mkdir()
    box = Box(root, copy_repo(template, root / "repo"), model_dir(base), root / "outside")
    box.outside.mkdir()
    (box.outside / "important.bin").write_bytes(os.urandom(64))
    box.file("sentinel.txt", "the user's own file\n")
    monkeypatch.chdir(box.root)
    if case.setup is not None:
        case.setup(box, monkeypatch) if case.monkeypatched else case.setup(box)
    args = [str(a) for a in case.args(box)]
    around = tree_hashes(box.root, box.model, skip=box.repo)
    repo_before = (snapshot(box.repo) if (not case.damages or case.unchanged)
                   and not case.monkeypatched else None)
    r = run(*args, cwd=box.repo)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == case.code, (r.exit_code, r.output)
    assert len(err) == 1 and err[0].startswith("memstore: error: "), r.stderr
    assert case.says in err[0], err[0]
    assert "Traceback" not in r.output
    assert tree_hashes(box.root, box.model, skip=box.repo) == around
    if repo_before is not None:
        assert snapshot(box.repo) == repo_before
    monkeypatch.undo()
    check = run("fsck", cwd=box.repo)
    if case.damages:
        assert check.exit_code == 1 and "Traceback" not in check.output
        assert check.stdout.strip() or check.stderr.strip()
    else:
        assert check.exit_code == 0, check.output


def test_valid_jsonl_with_a_line_separator_inside_a_string_parses(base, tmp_path):
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    record = {"subject": "Honda Civic", "prompt": "{} is produced by", "target_new": "Apple",
              "target_true": "Honda", "paraphrases": ["Made by\u2028 Honda Civic's maker:"]}
    facts = tmp_path / "u.jsonl"
    facts.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    assert "\u2028" in facts.read_text(encoding="utf-8")  # str.splitlines() would cut here
    ok("commit", facts, cwd=repo)


def test_a_truncated_index_is_repaired_with_its_refs(base, tmp_path):
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("tag", "v1", ids[0], cwd=repo)
    ok("branch", "side", ids[1], cwd=repo)
    before = {k: ok(k, cwd=repo).stdout for k in ("branch", "tag", "log")}
    settings = ok("config", cwd=repo).stdout
    (repo / ".memstore" / "index.db").write_bytes(b"")
    r = run("log", cwd=repo)
    assert r.exit_code == 1 and "fsck --repair" in r.stderr
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "ok" and "from the snapshot" in r.stderr
    assert {k: ok(k, cwd=repo).stdout for k in ("branch", "tag", "log")} == before
    assert ok("config", cwd=repo).stdout == settings
    assert list((repo / ".memstore").glob("index.db.damaged-*"))
    ok("commit", write_facts(tmp_path / "f.jsonl", [("Apple A5", "{} was created by",
                                                     "Microsoft", "Google")]), cwd=repo)


def test_repair_takes_the_refs_from_the_snapshot_when_a_ref_row_is_damaged(base, tmp_path):
    """A branch row made symbolic (a binary name) is not copied into the rebuilt index:
    the refs come from the newest snapshot, and the branch points where it did."""
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    before = ok("branch", cwd=repo).stdout
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update refs set symbolic = x'00ff' where name = 'refs/heads/main'")
    con.close()
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 0 and "from the snapshot" in r.stderr, r.output
    assert ok("branch", cwd=repo).stdout == before
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


@pytest.mark.parametrize("column, value", [("layer", ""), ("id", b"\x00")])
def test_fsck_names_a_statistics_row_of_the_wrong_type(base, tmp_path, column, value):
    """fsck sorted the statistics rows by (id, layer): one of another type raised a
    TypeError; it is a problem line, and --repair rebuilds the row from its record."""
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute(f"update statistics set {column} = ? where rowid = 1", [value])
    con.close()
    for args in (["fsck"], ["fsck", "--json"]):
        r = run(*args, cwd=repo)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert f"is damaged ({column} " in r.stdout
    assert run("fsck", "--repair", cwd=repo).exit_code == 0
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def with_a_corrupt_request_list(base, tmp_path) -> tuple[Path, str]:
    """A copy of the history whose head commit's request list has one flipped bit."""
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    box = Box(tmp_path, repo, model_dir(base), tmp_path)
    oid = json.loads(head_commit_object(box).read_bytes())["update_sets"][0]["requests"]
    victim = box.ms / "objects" / oid[:2] / oid[2:]
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[5] ^= 1
    victim.write_bytes(bytes(data))
    return repo, oid


def test_repair_goes_past_a_corrupt_request_list(base, tmp_path):
    """One damaged object must not make the index impossible to rebuild: the commit is
    indexed without its requests, fsck goes on naming the object, and no half-built index
    is left behind."""
    repo, oid = with_a_corrupt_request_list(base, tmp_path)
    box = Box(tmp_path, repo, model_dir(base), tmp_path)
    before = ok("log", "--oneline", cwd=repo).stdout
    (box.ms / "index.db").write_bytes(b"")
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"requests not indexed: {oid}" in r.stderr and oid in r.stdout
    assert not list(box.ms.glob("index.db.repair-*"))
    assert ok("log", "--oneline", cwd=repo).stdout == before


def test_repair_goes_past_a_missing_object(base, tmp_path):
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    box = Box(tmp_path, repo, model_dir(base), tmp_path)
    oid = json.loads(head_commit_object(box).read_bytes())["update_sets"][0]["zs"]
    (box.ms / "objects" / oid[:2] / oid[2:]).unlink()
    before = ok("log", "--oneline", cwd=repo).stdout
    (box.ms / "index.db").write_bytes(b"")
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert oid in r.stdout and "rebuilt the index" in r.stderr, r.output
    assert ok("log", "--oneline", cwd=repo).stdout == before


def test_a_quick_fsck_lists_a_corrupt_request_list_as_a_problem(base, tmp_path):
    repo, oid = with_a_corrupt_request_list(base, tmp_path)
    r = run("fsck", "--quick", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"object {oid} is corrupt" in r.stdout and "problem(s) found" in r.stderr


def test_repair_rebuilds_lost_rows_from_a_readable_index(base, tmp_path):
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("delete from requests")
        con.execute("delete from statistics")
        con.execute("delete from commits where id = ?", [ids[0]])
    con.close()
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "is not a known commit" in r.stdout
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 0 and "from the index" in r.stderr, r.output
    assert [e["id"] for e in json.loads(ok("log", "--json", cwd=repo).stdout)] == ids[::-1]
    assert run("eval", write_facts(tmp_path / "e.jsonl", [("Apple A5", "{} was created by",
                                                           "Microsoft", "Google")]),
               cwd=repo).exit_code == 0


EVERY_COMMAND = [["config"], ["config", "z_steps", "5"], ["stats"], ["commit", "f.jsonl"],
                 ["log"], ["show"], ["diff", "HEAD~1"], ["revert", "HEAD"], ["branch"],
                 ["branch", "x"], ["switch", "main"], ["tag", "t"], ["merge", "main"],
                 ["squash", "HEAD~1"], ["export", "out"], ["verify", "out"], ["ask", "hi"],
                 ["eval", "f.jsonl"], ["status"], ["fsck"], ["gc"]]


@pytest.mark.parametrize("damage", ["truncated", "garbage header"])
def test_every_command_refuses_a_damaged_index_in_one_line(base, tmp_path, damage):
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    write_facts(repo / "f.jsonl", [("Apple A5", "{} was created by", "Microsoft", "Google")])
    (repo / "out").mkdir()
    (repo / "out" / "memstore-manifest.json").write_text('{"base": {"hash": "x"}, "tensors": {}}')
    index = repo / ".memstore" / "index.db"
    index.write_bytes(b"" if damage == "truncated" else b"SQLite formaX 3\0" + b"\x17" * 4000)
    before = index.read_bytes()
    for args in EVERY_COMMAND:
        r = run(*args, cwd=repo)
        err = r.stderr.strip().splitlines()
        assert r.exit_code == 1, (args, r.output)
        assert len(err) == 1 and "index.db is damaged" in err[0], (args, r.stderr)
        assert index.read_bytes() == before  # never recreated over


def test_a_folder_where_the_lock_or_sqlites_files_belong_is_named(base, tmp_path):
    """A folder in place of the lock makes every write fail, and fsck said ok: it names
    it. One in place of SQLite's -wal or -shm was 'index.db is damaged … fsck --repair'
    (which rebuilds index.db and leaves the folder) or a failing write: every command
    names the folder."""
    template, _ = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    lock = repo / ".memstore" / "lock"
    lock.unlink()
    lock.mkdir()
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "lock is a folder, not the lock file writers take" in r.stdout
    lock.rmdir()
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    for name in ("index.db-wal", "index.db-shm"):
        side = repo / ".memstore" / name
        before = snapshot(repo)
        if side.exists():
            side.unlink()
        side.mkdir()
        for args in (["status"], ["fsck"], ["commit", write_facts(tmp_path / "f.jsonl", [
                ("Honda Civic", "{} is produced by", "Apple", "Honda")])]):
            error_line_of(run(*args, cwd=repo), f"{name} is a folder, where SQLite keeps")
        side.rmdir()
        assert snapshot(repo) == before
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def error_line_of(result, says: str) -> None:
    err = result.stderr.strip().splitlines()
    assert result.exit_code != 0 and len(err) == 1 and says in err[0], result.output


def test_a_commit_message_cannot_drive_the_terminal(history):
    """A message (anyone's push brings theirs) is printed with its control characters and
    bidirectional overrides as escapes: an escape sequence recoloured or rewrote the
    listing, a carriage return overwrote the line, a right-to-left override reversed it."""
    repo, _ = history
    message = "fix\x1b[2J\x1b[31m red\rgone \u202eevil\x07\ttabbed 👨\u200d👩"
    ok("revert", "HEAD", "-m", message, cwd=repo)
    for args in (("log",), ("log", "--oneline"), ("log", "--graph"), ("show",), ("branch",),
                 ("tag", "t1"), ("tag",)):
        out = ok(*args, cwd=repo).stdout
        assert not any(c in out for c in "\x1b\r\x07\u202e"), (args, out)
    out = ok("log", cwd=repo).stdout
    assert "fix\\x1b[2J\\x1b[31m red" in out and "\\u202eevil\\x07\ttabbed 👨\u200d👩" in out
    assert json.loads(ok("log", "--json", "-n", "1", cwd=repo).stdout)[0]["message"] == message


def test_names_an_older_memstore_accepted_read_as_they_are(history):
    """A branch or tag named with a character names may no longer hold (made by an older
    memstore, or fetched from its remote) is listed with it escaped: 'ma\\u200bin' printed as
    'main', beside the real one."""
    from memstore.store.repository import Repository

    repo, (c1, _, c3) = history
    with Repository.open(repo) as r:
        r.refs.update("refs/heads/ma\u200bin", c1, expected=None)
        r.refs.update("refs/tags/v\u202e1", c3, expected=None)
    for args in (("branch",), ("tag",), ("log", "--oneline"), ("log",)):
        out = ok(*args, cwd=repo).stdout
        assert "\u200b" not in out and "\u202e" not in out, (args, out)
        assert "ma\\u200bin" in out or "v\\u202e1" in out, (args, out)
    assert "tag: v\\u202e1" in ok("log", "--oneline", cwd=repo).stdout
