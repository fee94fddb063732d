"""A damaged `.memstore/` found by a sweep that damaged each of its files in turn (and the
exports' files) and ran every command on it: each case here is one that got past a check."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from cli_support import error_line, facts_files, last_line, ok, run

from memstore.store import exports
from memstore.store.repository import Repository


def _flip_in_the_objects_index(repo: Path) -> str:
    """One byte of an object id changed in the b-tree of the objects table's primary-key
    index (not in the table): SQLite's quick check, run at every open, passes."""
    path = repo / ".memstore" / "index.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("select rootpage from sqlite_master where name = "
                       "'sqlite_autoindex_objects_1'").fetchone()[0]
    oid = con.execute("select id from objects order by id limit 1").fetchone()[0]
    con.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    at = data.index(oid.encode(), start, start + page_size)
    data[at + 10] = ord("u")
    path.write_bytes(bytes(data))
    return oid[:10] + "u" + oid[11:]


def test_fsck_reports_an_index_btree_that_disagrees_with_its_table(history):
    """gc refused ('the objects table holds a row naming no object …; run `memstore fsck
    --repair`') while fsck said ok: its queries read the table, gc's read the index."""
    repo, _ = history
    bad = _flip_in_the_objects_index(repo)
    gc = run("gc", "--dry-run", cwd=repo)
    assert gc.exit_code == 1 and bad in gc.stderr, gc.output
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "index.db is damaged (SQLite's integrity check says:" in r.stdout, r.stdout
    assert "fsck --repair" in r.stdout
    assert run("fsck", "--quick", cwd=repo).exit_code == 1
    assert run("fsck", "--repair", cwd=repo).exit_code == 0
    assert run("gc", "--dry-run", cwd=repo).exit_code == 0


def _object(repo: Path, data: bytes) -> str:
    """`data` stored as an object under its sha256, with its index row."""
    oid = hashlib.sha256(data).hexdigest()
    fan = repo / ".memstore" / "objects" / oid[:2]
    fan.mkdir(exist_ok=True)
    (fan / oid[2:]).write_bytes(data)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("insert or ignore into objects (id, size, kind) values (?, ?, 'commit')",
                    (oid, len(data)))
    con.close()
    return oid


def forge_head(repo: Path, change: Callable[[dict], None]) -> str:
    """A well-hashed commit record made from HEAD's by `change` (an object of the right
    name, damaged before it was hashed: another machine's push, a hand edit), indexed with
    HEAD's rows and named by the branch in HEAD's place (as a snapshot records it)."""
    with Repository.open(repo) as r:
        head = r.head().commit
        record = json.loads(r.store.objects.get_bytes(head))
    change(record)
    # in canonical form, as memstore writes a record (other bytes are refused as such)
    oid = _object(repo, json.dumps(record, sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False).encode())
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        for table, key in (("commits", "id"), ("requests", "commit_id")):
            cols = [c[1] for c in con.execute(f"pragma table_info({table})")]
            rows = con.execute(f"select * from {table} where {key} = ?", (head,)).fetchall()
            for row in rows:
                values = {**dict(zip(cols, row)), key: oid}
                if table == "commits":  # the row says what the record says
                    values["time"], values["operation"] = record["time"], record["operation"]
                con.execute(f"insert into {table} ({', '.join(cols)}) values "
                            f"({', '.join('?' * len(cols))})", [values[c] for c in cols])
    con.close()
    with Repository.open(repo) as r:
        r.refs.update("refs/heads/main", oid, expected=head)
    return oid


def test_a_commit_time_no_calendar_holds_is_shown_not_a_traceback(history):
    """A record's time is any finite number; one past what a date can hold (1e300, or
    -1e300) was an OverflowError traceback from log and show."""
    repo, _ = history
    for t in (1e300, -1e300):
        forge_head(repo, lambda rec, t=t: rec.update(time=t))
        for args in (["log"], ["show", "HEAD"]):
            r = run(*args, cwd=repo)
            assert r.exit_code == 0 and "Traceback" not in r.output, (args, r.output)
            assert "Date:" in r.stdout and repr(t) in r.stdout, r.stdout


def _layer_object(change: Callable[[dict], None]) -> Callable[[Path], Callable[[dict], None]]:
    """A change of HEAD's record: its layer 1 update replaced by a well-hashed object of
    its tensors changed by `change` (a dict of tensors; None: the request list's bytes)."""
    def on(repo: Path) -> Callable[[dict], None]:
        def edit(record: dict) -> None:
            s = record["update_sets"][0]
            layer = s["layers"]["1"]
            path = repo / ".memstore" / "objects" / layer["object"][:2] / layer["object"][2:]
            if change is None:
                data = (repo / ".memstore" / "objects" / s["requests"][:2]
                        / s["requests"][2:]).read_bytes()
            else:
                tensors = safetensors.torch.load(path.read_bytes())
                change(tensors)
                data = safetensors.torch.save(tensors)
            layer["object"] = _object(repo, data)
        return edit
    return on


LAYER_DAMAGE = {
    "NaN": _layer_object(lambda t: t["U"].fill_(float("nan"))),
    "inf": _layer_object(lambda t: t["V"].__setitem__((0, 0), float("inf"))),
    "factors of two ranks": _layer_object(lambda t: t.update(U=torch.zeros(
        t["U"].shape[0], t["U"].shape[1] + 1))),
    "three dimensions": _layer_object(lambda t: t.update(U=t["U"][None])),
    "whole numbers": _layer_object(lambda t: t.update(U=t["U"].to(torch.int32))),
    "keys of another width": _layer_object(lambda t: t.update(keys=torch.zeros(1, 5))),
    "not safetensors": _layer_object(None),
}


@pytest.mark.parametrize("damage", LAYER_DAMAGE)
def test_a_well_hashed_layer_update_of_another_form_is_refused_in_one_line(history, tmp_path,
                                                                            damage):
    """Tracebacks (a shape mismatch in show, export, commit; an SVD of NaN in a PEFT
    export; a SafetensorError), or an export that wrote NaN into the checkpoint (exit 0)."""
    repo, _ = history
    head = forge_head(repo, LAYER_DAMAGE[damage](repo))
    record = json.loads((repo / ".memstore" / "objects" / head[:2] / head[2:]).read_bytes())
    oid = record["update_sets"][0]["layers"]["1"]["object"]
    for args in (["show", "HEAD"], ["export", "HEAD", tmp_path / "full"],
                 ["export", "HEAD", tmp_path / "peft", "--format", "peft"]):
        r = run(*args, cwd=repo)
        err = r.stderr.strip().splitlines()
        assert r.exit_code == 1 and len(err) == 1, (args, r.output)
        assert err[0].startswith(f"memstore: error: object {oid}") and "Traceback" not in r.output
    assert not (tmp_path / "full").exists() and not (tmp_path / "peft").exists()
    r = run("fsck", cwd=repo)  # which those lines send the user to: it said ok
    assert r.exit_code == 1 and f"commit {head[:12]}: update set 0 layer 1: object {oid}" \
        in r.stdout, r.output


def _requests(change: Callable[[list], None]) -> Callable[[Path], Callable[[dict], None]]:
    """A change of HEAD's record: its request list replaced by a well-hashed one changed by
    `change` (the list of request dicts)."""
    def on(repo: Path) -> Callable[[dict], None]:
        def edit(record: dict) -> None:
            s = record["update_sets"][0]
            path = repo / ".memstore" / "objects" / s["requests"][:2] / s["requests"][2:]
            requests = json.loads(path.read_bytes())
            change(requests)
            s["requests"] = _object(repo, json.dumps(requests).encode())
        return edit
    return on


REQUEST_DAMAGE = {
    "a prompt that is a list": _requests(lambda rs: rs[0].update(prompt=[rs[0]["prompt"]])),
    "a subject that is a number": _requests(lambda rs: rs[0].update(subject=5)),
    "a target that is an object": _requests(lambda rs: rs[0].update(target_new={"str": "x"})),
    # texts of the right type that memstore never wrote (every version checked them on input)
    "a prompt with no {}": _requests(lambda rs: rs[0].update(prompt="It is in")),
    "a prompt with two {}": _requests(lambda rs: rs[0].update(prompt="{} and {} are in")),
    "an empty target": _requests(lambda rs: rs[0].update(target_new=" ")),
    "a blank subject": _requests(lambda rs: rs[0].update(subject="")),
}


@pytest.mark.parametrize("damage", REQUEST_DAMAGE)
def test_a_well_hashed_request_list_of_other_types_is_refused_in_one_line(history, tmp_path,
                                                                          damage):
    """A request whose prompt is a list was a TypeError traceback ('unhashable type') in
    status, show, diff, export and commit; one whose subject is a number was shown. (status
    reads no request list since 6fcbf2b: it counts the live facts from the index's rows, as
    git's status reads no object.)"""
    repo, _ = history
    head = forge_head(repo, REQUEST_DAMAGE[damage](repo))
    record = json.loads((repo / ".memstore" / "objects" / head[:2] / head[2:]).read_bytes())
    oid = record["update_sets"][0]["requests"]
    for args in (["show", "HEAD"], ["diff", "HEAD~1", "HEAD"],
                 ["export", "HEAD", tmp_path / "full"]):
        r = run(*args, cwd=repo)
        err = r.stderr.strip().splitlines()
        assert r.exit_code == 1 and len(err) == 1, (args, r.output)
        assert f"object {oid} is not a well-formed request list" in err[0], err
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"object {oid} is not a well-formed request list" in r.stdout


def test_update_sets_of_one_layer_in_two_shapes_are_refused_by_a_peft_export(history,
                                                                            tmp_path):
    """HEAD's layer 1 update, well formed on its own, with U of 3 rows where the layer has
    32: a PEFT export (which loads no model to compare with) was torch.cat's traceback."""
    repo, _ = history
    forge_head(repo, _layer_object(lambda t: t.update(U=t["U"][:3]))(repo))
    r = run("export", "HEAD", tmp_path / "peft", "--format", "peft", cwd=repo)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(err) == 1, r.output
    assert "the update sets of layer 1 are of 2 shapes" in err[0] and "3x" in err[0], err
    assert not (tmp_path / "peft").exists()


def _layer_moved(to: str) -> Callable[[Path], Callable[[dict], None]]:
    """A change of HEAD's record: its layer 1 update recorded as layer `to`'s."""
    def on(repo: Path) -> Callable[[dict], None]:
        return lambda record: record["update_sets"][0]["layers"].__setitem__(
            to, record["update_sets"][0]["layers"].pop("1"))
    return on


NOT_THE_BASE = {
    "outputs": (_layer_object(lambda t: t.update(U=t["U"][:3])), "layer 1 are 3x64",
                "has a 32x64 W_out there"),
    "inputs": (_layer_object(lambda t: t.update(V=t["V"][:3], keys=t["keys"][:, :3]
                                                .contiguous())), "layer 1 are 32x3",
               "has a 32x64 W_out there"),
    "a layer past the base's": (_layer_moved("9"), "layer 9 are 32x64", "has 4 layers"),
}


@pytest.mark.parametrize("damage", NOT_THE_BASE)
def test_update_sets_the_base_has_no_weight_for_are_refused_by_a_peft_export(history, tmp_path,
                                                                             damage):
    """HEAD's layer 1 update with U (or V and its keys) of 3 rows where the layer's W_out
    has 32 outputs (64 inputs), or recorded as layer 9's of a 4-layer base: the only set a
    PEFT export since HEAD~1 adds, so all of a layer's sets of one shape, it was written
    with exit 0 (an adapter of 3 x r factors for a 32 x 64 weight, or for no module)."""
    repo, _ = history
    forge, shapes, base_has = NOT_THE_BASE[damage]
    forge_head(repo, forge(repo))
    r = run("export", "HEAD", tmp_path / "peft", "--format", "peft", "--since", "HEAD~1",
            cwd=repo)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(err) == 1, r.output
    assert f"the update sets of {shapes}" in err[0] and f"the base model {base_has}" in err[0]
    assert not (tmp_path / "peft").exists()


@pytest.mark.parametrize("damage", NOT_THE_BASE)
def test_an_adapter_of_update_sets_the_base_has_no_weight_for_fails_verify(history, tmp_path,
                                                                          damage, monkeypatch):
    """The same records, exported as an adapter by a memstore without the width check
    (before 25bbc85): verify rebuilt the adapter from them with no width check, found it
    identical, and said OK (exit 0) of an adapter no model loads."""
    repo, _ = history
    forge, shapes, base_has = NOT_THE_BASE[damage]
    forge_head(repo, forge(repo))
    with monkeypatch.context() as m:
        m.setattr(exports, "check_widths", lambda *a: None)
        ok("export", "HEAD", tmp_path / "peft", "--format", "peft", "--since", "HEAD~1",
           cwd=repo)
    line = error_line(run("verify", tmp_path / "peft", cwd=repo), 1,
                      f"the update sets of {shapes}")
    assert f"the base model {base_has}" in line


def test_a_commit_row_whose_size_is_no_number_is_named_by_fsck_and_not_shown(history):
    """show was a TypeError traceback (comparing 'big' with a number to print it) and fsck
    said ok, though its own repair rebuilds the row. show counts the bytes off the records
    and the object store now, as the row was written (a plausible number there, 5, was
    shown as '5 B'): the row is not read."""
    repo, (_, _, c3) = history
    size = json.loads(ok("show", "--json", "HEAD", cwd=repo).stdout)["bytes"]
    for damaged in (5, "big"):
        con = sqlite3.connect(repo / ".memstore" / "index.db")
        with con:
            con.execute("update commits set size = ? where id = ?", (damaged, c3))
        con.close()
        assert json.loads(ok("show", "--json", "HEAD", cwd=repo).stdout)["bytes"] == size > 5
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set size = 'big' where id = ?", (c3,))
    con.close()
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"commit {c3[:12]} is damaged (its size 'big')" in r.stdout
    assert run("fsck", "--repair", cwd=repo).exit_code == 0
    assert run("show", "HEAD", cwd=repo).exit_code == 0


def test_stats_lists_a_record_whose_row_has_no_creation_time(history):
    """A statistics row without its time of creation is a well-formed row (NULL is read as
    unknown); `stats --list` was a TypeError traceback printing it."""
    repo, _ = history
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update statistics set created = null")
    con.close()
    r = run("stats", "--list", cwd=repo)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert all("  -  " in line for line in r.stdout.strip().splitlines()), r.stdout


def test_well_hashed_z_vectors_of_another_shape_are_refused_in_one_line(history):
    """A squash replaying them was a RuntimeError traceback ('stack expects each tensor to
    be equal size'), a revert said 'cached z-vectors: expected a tensor of n × 32' as bad
    input (exit 2) without naming the object, and fsck said ok."""
    repo, _ = history

    def one_dimension(record: dict) -> None:
        s = record["update_sets"][0]
        path = repo / ".memstore" / "objects" / s["zs"][:2] / s["zs"][2:]
        zs = safetensors.torch.load(path.read_bytes())["zs"]
        s["zs"] = _object(repo, safetensors.torch.save({"zs": zs.flatten()}))

    head = forge_head(repo, one_dimension)
    record = json.loads((repo / ".memstore" / "objects" / head[:2] / head[2:]).read_bytes())
    oid = record["update_sets"][0]["zs"]
    for args in (["squash", "HEAD~2", "-m", "s"], ["revert", "HEAD~1", "-m", "r"]):
        r = run(*args, cwd=repo)
        err = r.stderr.strip().splitlines()
        assert r.exit_code == 1 and len(err) == 1, (args, r.output)
        assert f"object {oid}: its z-vectors" in err[0], err
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"update set 0 z-vectors: object {oid}" in r.stdout, r.output


def test_a_folder_in_place_of_the_index_is_named_a_folder(history):
    """It was called missing ('the file is missing'); fsck --repair moves it aside."""
    repo, _ = history
    index = repo / ".memstore" / "index.db"
    index.unlink()
    index.mkdir()
    r = run("status", cwd=repo)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(err) == 1, r.output
    assert "index.db is damaged (a folder is where the file belongs)" in err[0], err
    assert run("fsck", "--repair", cwd=repo).exit_code == 0
    assert index.is_file() and run("status", cwd=repo).exit_code == 0


@pytest.mark.parametrize("kind", ["fifo", "link to a fifo", "link to a copy"])
def test_an_object_that_is_no_regular_file_of_its_own_is_not_read(history, tmp_path, kind):
    """HEAD's commit object replaced by a FIFO, a link to one, or a link to an identical
    copy outside the repository: the FIFO hung every command that read HEAD (log, status,
    show, export) for ever, and the link was read through. Each is one line naming the
    object, at once, and fsck names it."""
    import os
    import subprocess
    import sys

    from cli_support import ROOT, error_line, subprocess_env

    repo, _ = history
    head = json.loads(run("log", "--json", "-n", "1", cwd=repo).stdout)[0]["id"]
    path = repo / ".memstore" / "objects" / head[:2] / head[2:]
    outside = tmp_path / "outside"
    if kind == "link to a copy":
        outside.write_bytes(path.read_bytes())
    elif kind == "link to a fifo":
        os.mkfifo(outside)
    path.chmod(0o644)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(outside)
    # in a process of its own first, so that a read that blocks fails the test, not hangs it
    p = subprocess.run([sys.executable, "-m", "cli.main", "-C", str(repo), "log"],
                       capture_output=True, text=True, timeout=120, env=subprocess_env(),
                       cwd=ROOT, check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1, p.stderr
    says = "is a symbolic link" if kind != "fifo" else "is not a regular file"
    assert head in err[0] and says in err[0]
    for args in (["show"], ["export", tmp_path / "out"]):
        assert head in error_line(run(*args, cwd=repo), 1, says)
    assert not (tmp_path / "out").exists()
    fsck = run("fsck", cwd=repo)
    assert fsck.exit_code == 1 and head[:12] in fsck.output


def test_parents_rows_that_loop_are_named_not_listed_twice(history):
    """HEAD~1's index row given HEAD as its parent (a damaged row; the records are sound):
    log listed HEAD twice and status counted it so, and a revision's `~` went round the
    loop; each is one line naming the loop now, and fsck --repair rebuilds the rows from
    the records."""
    from cli_support import error_line, ok

    repo, (c1, c2, c3) = history
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    con.execute("update commits set parents = ? where id = ?", [json.dumps([c3]), c2])
    con.commit()
    con.close()
    # HEAD~2 walked round the loop to HEAD itself: diff compared HEAD with HEAD ('no fact
    # differs', exit 0), branch put x on HEAD
    for args in (["log"], ["log", "--oneline", "--graph"], ["diff", "HEAD~2", "HEAD"],
                 ["branch", "x", "HEAD~2"], ["show", "HEAD^^"]):
        error_line(run(*args, cwd=repo), 1, "loop back to it; run `memstore fsck --repair`")
    # status counts the commits on the records: the row is named in one warning, no count
    r = ok("status", cwd=repo)
    assert r.stderr == (f"warning: commit {c2[:12]}: index row disagrees with the record "
                        "(parents or time); run `memstore fsck --repair`\n")
    assert "(commits not counted)" in r.stdout
    ok("fsck", "--repair", cwd=repo)
    assert [e["id"] for e in json.loads(ok("log", "--json", cwd=repo).stdout)] == [c3, c2, c1]


_ID = "ab" * 32


def _info(operation: str, **info) -> Callable[[dict], None]:
    """HEAD's record made a commit of `operation` with `info` keys (a rewrite's; a revert's
    always names the commit it reverted)."""
    first = {"reverted": _ID} if operation == "revert" else {}
    return lambda rec: rec.update(operation=operation, info=rec["info"] | first | info)


FORGED_INFO = {  # each a key revert, squash, blame or provenance read back, of another shape
    "revert restored, a string": _info("revert", restored="0"),
    "revert restored, negative": _info("revert", restored=-1),
    "revert restored, past the sets": _info("revert", restored=1),
    "revert restored, a set no source was recorded for": _info("revert", restored=0),
    "revert sources, a string": _info("revert", sources="ab"),
    "revert sources, a list too short": _info("revert", sources=[[0, 0]]),
    "revert sources, a position past the set": _info("revert", sources=[[0, 9, _ID, 0, 0]]),
    "revert sources, not an id": _info("revert", sources=[[0, 0, "C1", 0, 0]]),
    "revert reverted, a list": _info("revert", reverted=[_ID]),
    "revert reverted, missing": lambda rec: rec.update(operation="revert", info={}),
    "revert replayed, a string": _info("revert", replayed=_ID),
    "squash restored, a number": _info("squash", restored=0),
    "squash restored, past the requests": _info("squash", restored=[7]),
    "squash sources, a list of writes": _info("squash", sources=[[[_ID, 0, 0]]]),
    "squash sources, a path too short": _info("squash", sources={"commits": [_ID],
                                                                 "paths": [[0, 0]] * 2}),
    "squash sources, a commit past the list": _info("squash", sources={
        "commits": [_ID], "paths": [[1, 0, 0]] * 2}),
    "squash reverted, a string": _info("squash", reverted=_ID),
    "squash of two update sets": lambda rec: rec.update(
        operation="squash", info={"squashed": []}, update_sets=rec["update_sets"] * 2),
    "cherry-pick picked, a list": _info("cherry-pick", picked=[_ID]),
    "cherry-pick picked, a number": _info("cherry-pick", picked=5),
    "cherry-pick picked, a long text": _info("cherry-pick", picked="x" * 100_000),
    "squash sources, a long path": _info("squash", sources={
        "commits": [_ID], "paths": [[0, 0, -1] * 30_000] * 2}),
}


@pytest.mark.parametrize("damage", FORGED_INFO)
def test_a_rewrite_record_of_another_shape_is_refused_in_one_line(history, damage):
    """The keys of a commit's info that revert, squash and blame read back were read as
    found: a revert's sources of another shape were a ValueError or IndexError traceback
    from blame, a squash's restored a number a TypeError from revert and squash, and a
    restored index of another type, or a picked commit that is a list, silently read as
    absent (log, show, blame and fsck said nothing). The record is now refused where it is
    read, naming the object (and the key, quoting a value to its first 60 characters), and
    fsck names it."""
    repo, _ = history
    head = forge_head(repo, FORGED_INFO[damage])
    for args in (["log"], ["show", "HEAD"], ["blame"]):
        r = run(*args, cwd=repo)
        err = r.stderr.strip().splitlines()
        assert r.exit_code == 1 and len(err) == 1, (args, r.output)
        assert f"object {head} is not a well-formed commit record" in err[0], err
        assert "info " in err[0] and len(err[0]) < 400, err
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"commit {head[:12]}: unreadable record" in r.stdout, r.output


@pytest.mark.parametrize("operation", ["revert", "squash"])
def test_a_recorded_source_another_commit_has_not_is_named(history, operation):
    """A revert's (or a squash's) recorded source naming set 7, request 9 of C1, which C1
    has not: blame followed it, an IndexError traceback; fsck said ok. Now blame names
    the record in one line, and fsck names it."""
    repo, (c1, c2, _) = history
    assert run("revert", c2, cwd=repo).exit_code == 0  # HEAD: C3's set replayed
    if operation == "revert":
        head = forge_head(repo, lambda rec: rec["info"].update(sources=[[0, 0, c1, 7, 9]]))
    else:
        n = rec_n(repo)
        head = forge_head(repo, lambda rec: rec.update(operation="squash", info={
            "squashed": [], "sources": {"commits": [c1], "paths": [[0, 7, 9]] * n}}))
    said = f"object {head}: its record names request 9 of set 7 of commit {c1[:12]}"
    r = run("blame", cwd=repo)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(err) == 1 and said in err[0], r.output
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"commit {head[:12]}: its record names request 9 of set 7" \
        in r.stdout, r.output


def rec_n(repo: Path) -> int:
    """The requests of HEAD's record."""
    with Repository.open(repo) as r:
        return r.get_commit(r.head().commit).n_requests


def test_a_pick_whose_requests_are_not_the_picked_commits_is_named(history, base):
    """A cherry-pick record naming C2 as the commit it picked (C2 held, its requests not
    the pick's): blame named the pick as the writer, exit 0, and fsck said ok, where every
    pick's requests are among the picked commit's. Now blame refuses in one line naming
    the record, and fsck names it."""
    repo, (c1, c2, _) = history
    ok("branch", "side", c1, cwd=repo)
    ok("switch", "side", cwd=repo)
    d = last_line(ok("commit", facts_files(base)["d"], cwd=repo))
    ok("switch", "main", cwd=repo)
    ok("cherry-pick", d, cwd=repo)
    head = forge_head(repo, lambda rec: rec["info"].update(picked=c2))
    r = run("blame", cwd=repo)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(err) == 1, r.output
    assert f"object {head}: a cherry-pick of {c2[:12]} whose set 0 holds requests" in err[0]
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"commit {head[:12]}: a cherry-pick of {c2[:12]} whose set 0" \
        in r.stdout, r.output


def test_a_revert_of_no_merge_recording_facts_it_put_back_is_named_by_fsck(history):
    """A revert of C2 (no merge) whose record says its set put facts back (info restored,
    each write with a source: well formed on its own): only a revert of a merge puts facts
    back, and revert, squash and blame read the key as that; fsck said ok."""
    repo, (_, c2, c3) = history
    ok("revert", c2, cwd=repo)  # its one set: C3's facts, replayed
    n = len(json.loads(ok("show", "HEAD", "--json", cwd=repo).stdout)["update_sets"][0]
            ["requests"])
    head = forge_head(repo, lambda rec: rec["info"].update(
        restored=0, sources=[[0, p, c3, 0, p] for p in range(n)]))
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"commit {head[:12]}: a revert of {c2[:12]}, no merge" \
        in r.stdout, r.output

