"""`fetch --refetch`: objects here that are missing or damaged come back from a remote that
holds them intact (a fetch asks only for what is absent by name, so a damaged copy here was
never fetched again). A remote's copy that is corrupt too is never written; symbolic links
in the object store are never written through."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    ok,
    run,
    snapshot,
)
from remote_support import remote_files, tamper

from memstore.remote.layout import object_path
from memstore.store import writer
from memstore.store.objects import DiskObjectStore, hash_bytes
from memstore.store.repository import Repository

pytest_plugins = ["remote_fixtures"]  # any_pair: a folder, S3 (moto), fsspec's memory


def _ids(repo: Path) -> dict[str, str]:
    """A commit record (the tip's: its parents are read through it), a ΔW of the first
    commit, a z-vector object, a request list and a statistics tensor."""
    with Repository.open(repo) as r:
        tip = r.head().commit
        first = r.get_commit(r.resolve("HEAD~2")).update_sets[0]
        middle = r.get_commit(r.resolve("HEAD~1")).update_sets[0]
        stats = r.statistics()[0].object
    return {"commit": tip, "delta": first.layers[min(first.layers)].object,
            "zs": middle.zs, "requests": middle.requests, "stats": stats}


def _path(repo: Path, oid: str) -> Path:
    return repo / ".memstore" / "objects" / oid[:2] / oid[2:]


def _flip(path: Path, at: int = 40) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def _sound(repo: Path, oid: str) -> bool:
    p = _path(repo, oid)
    return p.is_file() and hash_bytes(p.read_bytes()) == oid


def test_refetch_restores_flipped_truncated_and_deleted_objects(pushed):
    """A flipped byte in a ΔW, a z-vector and a statistics tensor, a truncated commit record
    and a deleted request list: fsck names them and points to `fetch --refetch`; a plain
    fetch leaves them as they are (the problem); `--refetch` writes each again from the
    remote, byte for byte, reports them (ids in --json), and fsck is clean."""
    repo, _ = pushed
    ids = _ids(repo)
    before = {o: _path(repo, o).read_bytes() for o in ids.values()}
    _flip(_path(repo, ids["delta"]))
    _flip(_path(repo, ids["zs"]))
    _flip(_path(repo, ids["stats"]), at=-3)
    os.chmod(_path(repo, ids["commit"]), 0o644)
    os.truncate(_path(repo, ids["commit"]), 50)
    _path(repo, ids["requests"]).unlink()

    r = run("fsck", cwd=repo)
    assert r.exit_code == 1
    way_back = "restored from it with `memstore fetch origin --refetch`"
    assert r.stderr.splitlines()[-1].endswith(way_back)
    ok("fetch", cwd=repo)  # what there was: nothing asked for, nothing changed
    assert not any(_sound(repo, o) for o in ids.values())
    assert run("fsck", cwd=repo).exit_code == 1

    r = ok("fetch", "--refetch", "--json", cwd=repo)
    got = json.loads(r.stdout)["refetch"]
    assert sorted(got["restored"]) == sorted(ids.values())
    assert got["unrestored"] == {}
    assert got["reindexed"] == []  # the list's rows were all there: not written again
    assert got["restored_bytes"] == sum(len(b) for b in before.values())
    assert got["checked"] >= 3 + len(ids) - 1  # 3 commits, their objects, the statistics
    assert {o: _path(repo, o).read_bytes() for o in ids.values()} == before
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    r = ok("fetch", "--refetch", cwd=repo)  # all intact now: nothing is written again
    assert "refetch: checked" in r.stdout and "restored 0 missing or damaged (0 B)" in r.stdout


def test_a_copy_corrupt_on_the_remote_too_is_never_written(pushed):
    """An object damaged here and corrupt on the remote, and one damaged here that the
    remote lacks: neither is written (the remote's bad bytes never replace ours); the
    others are restored, the fetch lands, and the exit status is 1 in one line naming
    exactly those two objects and why."""
    repo, url = pushed
    ids = _ids(repo)
    files = remote_files(url)
    both, lacking, fixable = ids["delta"], ids["zs"], ids["requests"]
    tamper(url, object_path(both), files[object_path(both)][:-1])
    tamper(url, object_path(lacking), None)
    for o in (both, lacking, fixable):
        _flip(_path(repo, o))
    damaged_here = {o: _path(repo, o).read_bytes() for o in (both, lacking)}

    r = run("fetch", "--refetch", cwd=repo)
    line = error_line(r, 1, "2 objects missing or damaged here could not be restored from "
                      "origin")
    assert f"{both} (corrupt on the remote too)" in line
    assert f"{lacking} (not on the remote)" in line
    assert fixable not in line and "restored 1 missing or damaged" in r.stdout
    assert _sound(repo, fixable)
    assert {o: _path(repo, o).read_bytes() for o in (both, lacking)} == damaged_here
    r = run("fetch", "--refetch", "--json", cwd=repo)
    assert r.exit_code == 1
    assert json.loads(r.stdout)["refetch"]["unrestored"] == {
        both: "corrupt on the remote too", lacking: "not on the remote"}
    r = run("fetch", "--all", "--refetch", cwd=repo)  # each remote said, exit status 1
    assert r.exit_code == 1 and "Fetching origin" in r.stdout
    assert "memstore: error: could not fetch origin whole: 2 objects missing" in r.stderr


def test_a_fetching_clone_rewrites_a_damaged_copy_at_the_name_of_an_object(base, pushed,
                                                                         tmp_path):
    """A repository with no commits fetching the remote's three, where a damaged file
    already lies at the name of one of their objects: a fetch took the name as present and
    indexed the commit over the damaged copy, which only --refetch wrote again; a plain
    fetch hashes the file it was about to write and writes it again."""
    _, url = pushed
    ids = _ids(pushed[0])
    fresh = copy_repo(empty_template(base), tmp_path / "fresh")
    ok("remote", "add", "origin", url, cwd=fresh)
    target = _path(fresh, ids["delta"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"not the object")
    r = ok("fetch", "--json", cwd=fresh)
    assert json.loads(r.stdout)["commits"] == 3
    assert _sound(fresh, ids["delta"])
    assert ok("fsck", cwd=fresh).stdout.strip() == "ok"


def test_refetch_refuses_in_one_line_and_changes_nothing(pushed, tmp_path):
    """An unknown remote, an unreachable one, and an object here that is a symbolic link to
    a file outside the repository: one line, a non-zero exit, nothing written (the file
    the link names neither read as the object nor written)."""
    repo, _ = pushed
    ids = _ids(repo)
    flipped, linked = sorted([ids["zs"], ids["delta"]])  # the damaged one would come first
    _flip(_path(repo, flipped))
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep me")
    link = _path(repo, linked)
    link.unlink()
    link.symlink_to(outside)
    before = snapshot(repo)

    error_line(run("fetch", "nope", "--refetch", cwd=repo), 2, "no remote 'nope'")
    ok("remote", "add", "gone", str(tmp_path / "no-such-remote"), cwd=repo)
    before = snapshot(repo)
    error_line(run("fetch", "gone", "--refetch", cwd=repo), 1, "no-such-remote")
    assert snapshot(repo) == before
    error_line(run("fetch", "origin", "--refetch", cwd=repo), 1,
               f"{link} is a symbolic link: refetch wrote nothing")
    assert snapshot(repo) == before
    assert link.is_symlink() and outside.read_bytes() == b"keep me"
    assert not _sound(repo, flipped)  # checked before anything was written


def test_an_object_that_is_a_link_to_itself_is_named_by_fsck_and_refused_by_refetch(pushed):
    """An object's path a symbolic link to itself: fsck and `fetch --refetch` each said
    only 'Too many levels of symbolic links: PATH' (the object's size read through the
    link), fsck listing no problem; now fsck names the link and refetch refuses it in its
    own line, writing nothing."""
    repo, _ = pushed
    link = _path(repo, _ids(repo)["delta"])
    link.unlink()
    link.symlink_to(link)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"{link} is a symbolic link" in r.stdout, r.output
    before = snapshot(repo)
    error_line(run("fetch", "--refetch", cwd=repo), 1,
               f"{link} is a symbolic link: refetch wrote nothing")
    assert snapshot(repo) == before


def test_a_folder_where_an_object_belongs_is_refused_before_anything_is_written(pushed):
    """A folder at a ΔW's path, beside a damaged z-vector: fsck called it corrupt and
    pointed to `fetch --refetch`, which restored the objects before it and then ended on
    'is a directory, not a file; run `memstore fsck`' (a loop). Now one line naming the
    folder and what to do, nothing written; once it is removed both are restored."""
    repo, _ = pushed
    ids = _ids(repo)
    folder = _path(repo, ids["delta"])
    _flip(_path(repo, ids["zs"]))
    os.chmod(folder, 0o644)
    folder.unlink()
    (folder / "x").mkdir(parents=True)
    before = snapshot(repo)
    error_line(run("fetch", "--refetch", cwd=repo), 1,
               f"{folder} is a folder where an object belongs: refetch wrote nothing")
    assert snapshot(repo) == before and not _sound(repo, ids["zs"])
    (folder / "x").rmdir()
    folder.rmdir()
    ok("fetch", "--refetch", cwd=repo)
    assert _sound(repo, ids["delta"]) and _sound(repo, ids["zs"])


@pytest.mark.parametrize("what", ["delta", "commit"])
def test_a_linked_fan_out_folder_is_neither_read_nor_written_through(pushed, tmp_path, what):
    """A fan-out folder of .memstore/objects that is a symbolic link to a folder outside
    (fsck names it): refused in one line, whether the copy there is intact (it is not read
    as this repository's) or damaged (nothing written there or here)."""
    repo, _ = pushed
    oid = _ids(repo)[what]  # a ΔW's folder, or that of the record the walk starts at
    fan = _path(repo, oid).parent
    outside = tmp_path / "elsewhere"
    fan.rename(outside)
    fan.symlink_to(outside)
    for damaged in (False, True):
        if damaged:
            _flip(outside / oid[2:])
        kept = {p.name: p.read_bytes() for p in outside.iterdir()}
        before = snapshot(repo)
        error_line(run("fetch", "--refetch", cwd=repo), 1,
                   f"{fan} is a symbolic link: refetch wrote nothing")
        assert snapshot(repo) == before
        assert {p.name: p.read_bytes() for p in outside.iterdir()} == kept


def test_refetch_on_every_kind_of_remote_streams_a_large_object(any_pair):
    """Through the library, on a folder, S3 and fsspec's memory store: a damaged large
    object (12 MiB: read from the remote a chunk at a time, into a temporary file renamed
    into place) and a missing small one are restored; a large one corrupt on the remote
    too is not written, and leaves no temporary file."""
    from test_remote_streaming import big_commit

    from memstore.remote.fetch import fetch
    from memstore.remote.push import push
    from memstore.remote.refetch import CORRUPT_THERE
    from memstore.store.objects import CHUNK_BYTES, TEMP_PREFIX

    a, _, url = any_pair
    c, big = big_commit(a, 12)
    small = min(c.object_ids()[1:], key=a.objects.size)
    push(a)
    good = a.objects.get_bytes(big)
    assert len(good) > CHUNK_BYTES
    _flip(a.objects.path(big), at=-1)
    a.objects.path(small).unlink()
    got = fetch(a, refetch=True).refetched
    assert sorted(got.restored) == sorted([big, small]) and got.unrestored == {}
    assert a.objects.path(big).read_bytes() == good and a.fsck() == []
    tamper(url, object_path(big), good[:-1] + bytes([good[-1] ^ 0xFF]))
    _flip(a.objects.path(big), at=-1)
    damaged = a.objects.path(big).read_bytes()
    got = fetch(a, refetch=True).refetched
    assert got.restored == [] and got.unrestored == {big: CORRUPT_THERE}
    assert a.objects.path(big).read_bytes() == damaged
    assert not list((a.root / ".memstore").rglob(f"{TEMP_PREFIX}*"))


@pytest.mark.parametrize("damage", ["flipped", "deleted"])
def test_requests_a_repair_left_unindexed_are_indexed_again_by_the_refetch(pushed, damage):
    """The walk of a user who repairs first: a request list flipped or deleted, `fsck
    --repair` indexes its commit without its facts, `fetch --refetch` restores the list.
    fsck then named the rows that disagree with it, and only one more `fsck --repair` put
    them back; the refetch writes the rows of the list it restored (index_requests, the
    repair's own), so fsck is clean and show lists the facts at once."""
    repo, _ = pushed
    requests = _ids(repo)["requests"]
    if damage == "flipped":
        _flip(_path(repo, requests))
    else:
        _path(repo, requests).unlink()
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and f"requests not indexed: {requests}" in r.stderr
    with Repository.open(repo) as rr:
        assert rr.find_requests(subject="Michael Jordan") == []
    r = ok("fetch", "--refetch", "--json", cwd=repo)
    got = json.loads(r.stdout)["refetch"]
    assert got["restored"] == [requests]
    with Repository.open(repo) as rr:
        assert got["reindexed"] == [{"commit": rr.resolve("HEAD~1"), "set": 0}]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert "Michael Jordan" in ok("show", "HEAD~1", cwd=repo).stdout
    with Repository.open(repo) as rr:
        rows = rr.find_requests(subject="Michael Jordan")
        assert [row["commit_id"] for row in rows] == [rr.resolve("HEAD~1")]


def test_a_commit_a_repair_left_out_for_its_record_is_restored_and_indexed(pushed):
    """The walk of a user who repairs first, with a middle commit's record flipped: `fsck
    --repair` leaves C2 out of the index, so C3's parent is unknown and log refuses. fsck
    pointed to `fetch --refetch`, which checked, restored nothing and exited 0 (C2, not
    indexed, was only walked through), and fsck pointed to it again. A commit here needs its
    parents: refetch writes C2's record from the remote and the fetch indexes it."""
    repo, _ = pushed
    with Repository.open(repo) as r:
        c2 = r.resolve("HEAD~1")
    _flip(_path(repo, c2))
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and r.stderr.splitlines()[-1].endswith(
        "restored from it with `memstore fetch origin --refetch`")
    assert run("log", cwd=repo).exit_code == 1
    r = ok("fetch", "origin", "--refetch", "--json", cwd=repo)
    assert json.loads(r.stdout)["refetch"]["restored"] == [c2]
    assert _sound(repo, c2)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert [line.split()[0] for line in ok("log", "--oneline", cwd=repo).stdout.splitlines()
            ][1] == c2[:12]
    assert "Michael Jordan" in ok("show", c2, cwd=repo).stdout


def test_a_plain_fetch_writes_again_a_damaged_copy_of_an_object_it_brings(pushed,
                                                                          monkeypatch):
    """The walk of a user who repairs first, with the tip's record and its ΔW flipped:
    `fsck --repair` leaves the tip out of the index, and a plain fetch brings it back from
    the remote. The fetch took the files already at those names for the objects (it skipped
    a name that was there) and indexed the tip over its damaged record: log and fsck failed
    on the next read. A file the fetch was about to write is checked, and a damaged one
    written again: fsck is clean without --refetch."""
    repo, _ = pushed
    with Repository.open(repo) as r:
        tip = r.head().commit
        delta = next(iter(r.get_commit(tip).update_sets[0].layers.values())).object
    for o in (tip, delta):
        _flip(_path(repo, o))
    assert run("fsck", "--repair", cwd=repo).exit_code == 1
    assert run("log", cwd=repo).exit_code == 1
    r = ok("fetch", "--json", cwd=repo)
    assert json.loads(r.stdout)["commits"] == 1
    assert _sound(repo, tip) and _sound(repo, delta)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert ok("log", "--oneline", cwd=repo).stdout.splitlines()[0].startswith(tip[:12])
    opened: list[str] = []  # a fetch that brings nothing opens (hashes) no object here
    real = DiskObjectStore._open
    monkeypatch.setattr(DiskObjectStore, "_open",
                        lambda self, oid: opened.append(oid) or real(self, oid))
    assert json.loads(ok("fetch", "--json", cwd=repo).stdout)["commits"] == 0
    assert opened == []


def test_requests_of_a_commit_the_remote_does_not_reach_are_indexed_again_too(pushed):
    """A cherry-pick of C2 on a branch never pushed holds C2's request list (the same facts,
    the same object). The list flipped, `fsck --repair` indexes both commits without its
    facts; `fetch --refetch` restores it from C2's history. It wrote the rows of the
    commits the remote reaches only, so fsck still named the cherry-pick's ('0 rows, 1
    requests') and only one more repair put them back."""
    repo, _ = pushed
    with Repository.open(repo) as r:
        c1, c2 = r.resolve("HEAD~2"), r.resolve("HEAD~1")
        requests = r.get_commit(c2).update_sets[0].requests
    ok("switch", "-c", "side", c1, cwd=repo)
    ok("cherry-pick", c2, cwd=repo)
    with Repository.open(repo) as r:
        picked = r.head().commit
        assert [s.requests for s in r.get_commit(picked).update_sets] == [requests]
    _flip(_path(repo, requests))
    assert run("fsck", "--repair", cwd=repo).exit_code == 1
    r = ok("fetch", "--refetch", "--json", cwd=repo)
    got = json.loads(r.stdout)["refetch"]
    assert got["restored"] == [requests]
    assert got["reindexed"] == [{"commit": c, "set": 0} for c in sorted([c2, picked])]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    with Repository.open(repo) as rr:
        rows = rr.find_requests(subject="Michael Jordan")
        assert sorted(row["commit_id"] for row in rows) == sorted([c2, picked])


@pytest.mark.parametrize("what", ["delta", "commit"])
def test_a_plain_fetch_neither_reads_nor_writes_through_a_link_at_an_objects_name(
        base, pushed, tmp_path, what):
    """A symbolic link planted at the name of an object a plain fetch brings (the tip's
    record, or its ΔW), naming a file outside the repository that holds the object's very
    bytes: hashed through the link, it would pass for the object and the commit be indexed
    over a link out of .memstore/; written through, the file outside would change. Refused
    in one line, nothing written here or there, the link left for fsck to name."""
    src, url = pushed
    oid = _ids(src)[what]
    fresh = copy_repo(empty_template(base), tmp_path / "fresh")
    ok("remote", "add", "origin", url, cwd=fresh)
    outside = tmp_path / "outside"
    outside.write_bytes(_path(src, oid).read_bytes())
    link = _path(fresh, oid)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    before = snapshot(fresh)
    error_line(run("fetch", cwd=fresh), 1, f"{link} is a symbolic link; memstore never writes")
    assert snapshot(fresh) == before
    assert link.is_symlink() and outside.read_bytes() == _path(src, oid).read_bytes()


def test_a_refetch_killed_before_its_index_transaction_is_finished_by_the_next(pushed,
                                                                              monkeypatch):
    """A refetch restores a request list (durable), then indexes its rows in the fetch's
    one transaction: killed in between, the list is intact and its rows still missing. The
    next `fetch --refetch` found nothing to restore and wrote no row, so fsck kept naming
    the rows ('0 rows, 1 requests') after the retry; it now writes the rows of a set that
    falls short of its record, and only those."""
    repo, _ = pushed
    with Repository.open(repo) as r:
        requests = r.get_commit(r.resolve("HEAD~1")).update_sets[0].requests
    _flip(_path(repo, requests))
    assert run("fsck", "--repair", cwd=repo).exit_code == 1

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the index transaction")

    monkeypatch.setattr(writer, "add_commits", killed)
    with pytest.raises(RuntimeError, match="killed"):
        run("fetch", "--refetch", cwd=repo)
    monkeypatch.undo()
    assert _sound(repo, requests)
    with Repository.open(repo) as rr:
        assert rr.find_requests(subject="Michael Jordan") == []
        others = sorted(map(repr, rr.db.query("select rowid, * from requests")))
    r = ok("fetch", "--refetch", cwd=repo)
    assert r.stdout.splitlines()[-1].endswith(
        "restored 0 missing or damaged (0 B) from origin; request rows of 1 update set "
        "indexed again")
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    with Repository.open(repo) as rr:
        assert len(rr.find_requests(subject="Michael Jordan")) == 1
        after = set(map(repr, rr.db.query("select rowid, * from requests")))
        assert set(others) <= after  # the other sets' rows untouched, rowids too
