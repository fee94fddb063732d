"""A damaged `.memstore/` (or remote) under the features added lately: tags on remotes,
push --delete, branch upstreams, cherry-pick and blame, config records. Each case here is
one a sweep found getting past a check: every command that reads the damaged data says one
line naming it, exits non-zero and changes nothing; fsck names it."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_support import error_line, ok, run, snapshot


def sql(repo: Path, statement: str, *args) -> None:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute(statement, args)
    con.close()


def layer_object(objects: Path, commit: str) -> str:
    """The id of `commit`'s layer 1 update: a well-hashed object that is no JSON."""
    record = json.loads((objects / commit[:2] / commit[2:]).read_bytes())
    return record["update_sets"][0]["layers"]["1"]["object"]


def refused(repo: Path, args: list, code: int, says: str) -> str:
    """The one error line of `memstore ARGS`, the repository unchanged by it."""
    before = snapshot(repo)
    line = error_line(run(*args, cwd=repo), code, says)
    assert snapshot(repo) == before, args
    return line


def test_a_tag_naming_an_object_that_is_no_json_is_one_line(history):
    """A tag row set to HEAD's layer update (a safetensors object): `tag`, `show v1` and
    gc were a UnicodeDecodeError traceback reading it as a commit record. Each names the
    object in one line; fsck names the tag, fsck --repair says it still does, `tag -d`
    is the way out."""
    repo, (_, c2, c3) = history
    ok("tag", "v1", c2, cwd=repo)
    oid = layer_object(repo / ".memstore" / "objects", c3)
    sql(repo, "update refs set target = ? where name = 'refs/tags/v1'", oid)
    for args in (["tag"], ["show", "v1"], ["gc", "--dry-run"]):
        refused(repo, args, 1, f"object {oid} is not a commit of format 1 (its bytes are no "
                               "JSON)")
    for args in (["fsck"], ["fsck", "--repair"]):
        r = run(*args, cwd=repo)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert f"ref refs/tags/v1 points to {oid}, which is not a known commit" in r.stdout
    ok("tag", "-d", "v1", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_a_config_row_nested_too_deeply_is_one_line(history):
    """The upstreams row (any config row) holding JSON nested 100,000 deep: every command
    that reads it (status, push, pull, fetch, branch --set-upstream-to, config, gc,
    switch, fsck) was a RecursionError traceback from json.loads. Each names the row in
    one line now; fsck names it and fsck --repair takes the row from the snapshot."""
    repo, _ = history
    ok("remote", "add", "origin", repo.parent / "remote", cwd=repo)
    ok("push", "-u", "origin", cwd=repo)
    sql(repo, "update config set value = ? where key = 'upstreams'",
        "[" * 100_000 + "]" * 100_000)
    said = "the repository's config row 'upstreams' is unreadable (JSON nested too deeply)"
    for args in (["push"], ["pull"], ["fetch"], ["branch", "--set-upstream-to", "origin/main"],
                 ["config", "z_steps", "6"], ["gc", "--dry-run"], ["switch", "-c", "x"]):
        refused(repo, args, 1, said)
    r = run("status", cwd=repo)  # status reads on, warning
    assert r.exit_code == 0 and r.stderr.strip() == f"warning: {said}; run `memstore fsck`"
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"config: {said}" in r.stdout, r.output
    ok("fsck", "--repair", cwd=repo)
    assert "up to date with 'origin/main'" in ok("status", cwd=repo).stdout


def test_a_remote_tag_naming_an_object_that_is_no_json_is_named_in_a_short_line(history,
                                                                               base):
    """A folder remote's refs/tags/v1 set to HEAD's layer update (there, well hashed):
    fetch --tags and clone refused it, and fsck REMOTE named it, quoting the exception's
    repr, which holds every byte of the object (4 KB of binary escapes on the tiny model,
    megabytes on a real one). The reason is now the exception's message."""
    from cli_support import model_dir

    repo, (_, c2, c3) = history
    remote = repo.parent / "remote"
    ok("remote", "add", "origin", remote, cwd=repo)
    ok("tag", "v1", c2, cwd=repo)
    ok("push", "origin", cwd=repo)
    ok("push", "--tags", cwd=repo)
    oid = layer_object(remote / "objects", c3)
    (remote / "refs" / "tags" / "v1").write_text(oid + "\n")
    for args in (["fetch", "--tags"], ["clone", remote, repo.parent / "copy", "--base",
                                       model_dir(base)]):
        line = refused(repo, args, 1, f"object {oid} is not a commit (UnicodeDecodeError: ")
        assert len(line) < 400, line
    assert not (repo.parent / "copy").exists()
    r = run("fsck", "origin", cwd=repo)
    problem = r.stdout.strip()
    assert r.exit_code == 1 and problem.startswith(f"commit {oid[:12]} (reached from tag v1): "
                                                   "unreadable record (UnicodeDecodeError: ")
    assert len(problem) < 400, problem


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


DAMAGED_ROWS = {  # a row any write here ends by reading (it records them all in a snapshot)
    "a tag row made symbolic": (("update refs set target = null, symbolic = 'refs/heads/main'"
                                 " where name = 'refs/tags/v1'"),
                                "ref refs/tags/v1 is damaged (symbolic 'refs/heads/main')"),
    "an upstreams row of NULL": ("update config set value = null where key = 'upstreams'",
                                 "the repository's config row 'upstreams' is unreadable"),
}


@pytest.mark.parametrize("damage", DAMAGED_ROWS)
def test_push_refuses_a_damaged_row_here_before_the_remote_changes(history, damage):
    """push and push --delete wrote the remote (the branch created, or deleted), then
    refused on a damaged ref or config row here when recording the remote-tracking branch:
    exit 1, though the remote had changed. They now refuse before the remote changes."""
    repo, (c1, c2, _) = history
    remote = repo.parent / "remote"
    ok("remote", "add", "origin", remote, cwd=repo)
    for branch, commit in (("first", c1), ("old", c2)):  # first: the remote's HEAD
        ok("branch", branch, commit, cwd=repo)
        ok("push", "-u", "origin", branch, cwd=repo)
    ok("tag", "v1", cwd=repo)
    statement, said = DAMAGED_ROWS[damage]
    sql(repo, statement)
    there = files(remote)
    for args in (["push", "origin", "main"], ["push", "--delete", "origin", "old"]):
        refused(repo, args, 1, said)
        assert files(remote) == there, args


def test_a_forced_delete_of_heads_branch_refuses_a_damaged_branch_before_deleting(history):
    """push --delete --force of the branch the remote's HEAD names, with another branch
    there damaged (refs/heads/side holding 'zz'): main was deleted, then reading the
    branches left to name HEAD's new branch refused: exit 1, main gone, HEAD still naming
    it, origin/main still here. The branches are now read before anything is deleted."""
    repo, (c1, _, _) = history
    remote = repo.parent / "remote"
    ok("remote", "add", "origin", remote, cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("branch", "side", c1, cwd=repo)
    ok("push", "origin", "side", cwd=repo)
    (remote / "refs" / "heads" / "side").write_text("zz\n")
    there = files(remote)
    refused(repo, ["push", "--delete", "--force", "origin", "main"], 1,
            "refs/heads/side does not hold a commit id ('zz')")
    assert files(remote) == there
    r = run("fsck", "origin", cwd=repo)
    assert r.exit_code == 1 and "branch side does not hold a commit id ('zz')" in r.stdout


def test_fsck_names_an_unreadable_config_row_once(history):
    """An upstreams row that is no JSON was listed twice by fsck (its check of every row,
    then its check of the upstreams, each read it), and counted as two problems."""
    repo, _ = history
    ok("remote", "add", "origin", repo.parent / "remote", cwd=repo)
    ok("push", "-u", "origin", cwd=repo)
    sql(repo, "update config set value = '{not json' where key = 'upstreams'")
    r = run("fsck", cwd=repo)
    lines = r.stdout.strip().splitlines()
    assert r.exit_code == 1 and r.stderr.strip() == f"{len(lines)} problem(s) found", r.output
    said = [x for x in lines if "config row 'upstreams' is unreadable" in x]
    assert len(said) == 1 and said[0].startswith("config: "), lines


MALFORMED_CONFIG = {  # row, value, what a command says
    "settings of the wrong shape": ("settings", json.dumps({"layers": "x"}),
                                    "the repository's editor settings are invalid"),
    "settings that are a list": ("settings", "[1]",
                                 "the repository's editor settings are malformed"),
    "a base record that is a list": ("base", "[]", "the repository's base record is malformed"),
}


@pytest.mark.parametrize("damage", MALFORMED_CONFIG)
def test_fsck_repair_takes_a_malformed_settings_or_base_row_from_the_snapshot(history,
                                                                               damage):
    """A settings (or base) row that is JSON but not settings: `config` and `config KEY
    VALUE`, which the line sent the user to ('fix them with `memstore config`'), refused
    with the same line, and fsck --repair kept the row (the index was readable, so its
    config was copied), exit 1: no way out. Repair now takes the refs and config from the
    snapshot, as for a damaged ref row."""
    repo, _ = history
    key, value, said = MALFORMED_CONFIG[damage]
    sql(repo, "update config set value = ? where key = ?", value, key)
    for args in (["config"], ["config", "z_steps", "6"], ["status"]):
        refused(repo, args, 1, said)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"config: {said}" in r.stdout, r.output
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 0 and "refs and config from the snapshot" in r.stderr, r.output
    assert ok("config", "z_steps", cwd=repo).stdout.strip() == "5"  # cli_support.SETTINGS
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_fsck_repair_without_a_snapshot_names_the_malformed_row(history):
    """A malformed base row and no snapshot object left to take it from: fsck --repair said
    'the index cannot be read', though it could; it names the row now, and that no
    snapshot is there to repair it from."""
    repo, _ = history
    sql(repo, "update config set value = '[]' where key = 'base'")
    objects = repo / ".memstore" / "objects"
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    held = [r[0] for r in con.execute("select object from snapshots")]
    con.close()
    assert held
    for oid in held:
        (objects / oid[:2] / oid[2:]).unlink()
    line = refused(repo, ["fsck", "--repair"], 1, "the repository's base record is malformed, "
                   "and the object store holds no usable snapshot of the refs and config to "
                   "repair it from; nothing was changed")
    assert "cannot be read" not in line


def test_fsck_quotes_a_long_branch_name_of_the_upstreams_row_shortened(history):
    """The upstreams row holding a malformed entry under a name of 100,000 characters: fsck
    printed a 200 kB line, the name twice (quoted, then in the `branch --unset-upstream
    NAME` way out); under a name with a newline the way out was cut in two lines."""
    repo, _ = history
    for name, shown in (("x" * 100_000, "'" + "x" * 60 + "…'"), ("a\nb", "'a\\nb'")):
        sql(repo, "insert or replace into config (key, value) values ('upstreams', ?)",
            json.dumps({name: {"remote": 5, "merge": "m"}}))
        r = run("fsck", cwd=repo)
        lines = r.stdout.strip().splitlines()
        assert r.exit_code == 1 and r.stderr.strip() == f"{len(lines)} problem(s) found"
        said = [x for x in lines if x.startswith("config: the upstream of branch")]
        assert len(said) == 1 and len(said[0]) < 400, lines
        assert said[0].startswith(f"config: the upstream of branch {shown} is malformed")
        assert said[0].endswith("`memstore branch --unset-upstream NAME` forgets it")


def test_a_remote_url_urllib_cannot_split_is_one_line(history, base):
    """'http://[::1' (an IPv6 host left open), given to remote add, clone or fsck, or
    found in the remotes row: a ValueError traceback ('Invalid IPv6 URL') from urllib's
    urlsplit, which the check for a secret in the URL called."""
    from cli_support import model_dir

    repo, _ = history
    url = "http://[::1"
    said = f"remote URL {url!r} is not a valid URL (Invalid IPv6 URL)"
    for args in (["remote", "add", "x", url], ["fsck", url],
                 ["clone", url, repo.parent / "copy", "--base", model_dir(base)]):
        refused(repo, args, 2, said)
    assert not (repo.parent / "copy").exists()
    sql(repo, "insert into config (key, value) values ('remotes', ?)", json.dumps({"origin": url}))
    for args in (["fetch"], ["push"], ["push", "--tags"], ["push", "--delete", "origin", "x"],
                 ["fsck", "origin"]):
        refused(repo, args, 2, said)


def test_status_does_not_count_against_a_tracking_branch_naming_no_commit_here(history):
    """origin/main's row set to a commit id this repository lacks: status said 'Your branch
    is ahead of 'origin/main' by 3 commits' (the missing commit taken for one of no
    history), exit 0, with no word of the damage. It now warns, naming the ref, and shows
    no upstream; fsck names it, and a fetch moves the ref back."""
    repo, _ = history
    ok("remote", "add", "origin", repo.parent / "remote", cwd=repo)
    ok("push", "-u", "origin", cwd=repo)
    sql(repo, "update refs set target = ? where name = 'refs/remotes/origin/main'", "ab" * 32)
    said = ("warning: refs/remotes/origin/main names commit abababababab, which is not in the "
            "index; run `memstore fsck`")
    before = snapshot(repo)
    r = run("status", cwd=repo)
    assert r.exit_code == 0 and r.stderr.strip() == said, r.output
    assert "origin/main" not in r.stdout, r.stdout
    r = run("status", "--json", cwd=repo)
    assert r.exit_code == 0 and json.loads(r.stdout)["upstream"] is None, r.output
    assert snapshot(repo) == before
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"ref refs/remotes/origin/main points to {'ab' * 32}" in r.stdout
    ok("fetch", cwd=repo)
    assert "up to date with 'origin/main'" in ok("status", cwd=repo).stdout


def test_a_folder_where_an_object_belongs_is_named_and_repair_goes_on(history):
    """A folder at a layer update's path: fsck called it 'corrupt (its content does not
    match its name)' and `fsck --repair` stopped on 'is a directory, not a file', rebuilding
    nothing (fsck --quick: 'has size 4096, indexed as 1504'). fsck now names the folder
    for what it is; --repair rebuilds the
    index around it, says it skipped the folder, and leaves it for the user to remove."""
    repo, (_, _, c3) = history
    objects = repo / ".memstore" / "objects"
    oid = layer_object(objects, c3)
    folder = objects / oid[:2] / oid[2:]
    folder.chmod(0o644)
    folder.unlink()
    (folder / "mine").mkdir(parents=True)
    said = f"object {oid}: {folder} is a folder where an object belongs; memstore does not " \
           "delete a folder: remove it"
    for args in (["fsck"], ["fsck", "--quick"]):
        r = run(*args, cwd=repo)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert f"object {oid} is corrupt" not in r.stdout, r.stdout
        assert said in r.stdout.splitlines() and "has size" not in r.stdout, r.stdout
    (repo / ".memstore" / "index.db").write_bytes(b"not an index")
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"skipped {said}" in r.stderr.splitlines() and "rebuilt the index: 3 commits" \
        in r.stderr, r.stderr
    assert said in r.stdout.splitlines(), r.stdout
    assert (folder / "mine").is_dir()
    assert ok("log", "--oneline", cwd=repo).stdout.count("\n") == 3


def _stats_object(repo: Path) -> Path:
    from memstore.store.repository import Repository

    with Repository.open(repo) as r:
        oid = r.statistics()[0].object
    return repo / ".memstore" / "objects" / oid[:2] / oid[2:]


def test_a_damaged_statistics_tensor_without_a_remote_is_computed_again_by_repair(history):
    """No remote: a statistics tensor flipped made revert, merge and squash refuse, and fsck
    --repair indexed its record again as it was (the damage 'named with the objects'), so no
    command got it back though the base gives it. --repair leaves such a record out and
    computes the statistics again (the same bytes); fsck says so where no remote is."""
    repo, _ = history
    path = _stats_object(repo)
    intact = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(intact[:40] + bytes([intact[40] ^ 1]) + intact[41:])
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == ("`memstore fsck --repair` computes damaged statistics "
                                         "again from the base model")
    ok("fsck", "--repair", cwd=repo)
    assert path.read_bytes() == intact
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    ok("revert", "HEAD~1", cwd=repo)


def test_fsck_without_a_remote_says_that_only_a_remote_brings_a_lost_object_back(history):
    """No remote configured: fsck named a missing commit record and said nothing of a way
    back (with a remote it points to `fetch --refetch`); now one last line says where such
    an object can come from, and that `--repair` restores none but statistics."""
    repo, (_, _, c3) = history
    (repo / ".memstore" / "objects" / c3[:2] / c3[2:]).unlink()
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "refetch`" not in r.stdout
    assert r.stderr.splitlines()[-1] == (
        "no remote is configured: an object missing or corrupt here comes back only from a "
        "remote that holds it intact (`memstore remote add NAME URL`, then `memstore fetch "
        "NAME --refetch`); `memstore fsck --repair` computes damaged statistics again from "
        "the base model, nothing else")


def test_a_record_left_behind_by_a_reset_off_it_is_for_gc_fsck_says(history):
    """No remote, C3's record flipped: `fsck --repair` leaves C3 out and names `reset C2`;
    after that reset only the damaged file was left, which nothing needs, and fsck named it
    with no way on (--repair skipped it again, a loop), where `gc` removes it."""
    repo, (_, c2, c3) = history
    path = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    path.chmod(0o644)
    data = path.read_bytes()
    path.write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and f"`memstore reset {c2[:12]}` moves it back" in r.stdout
    assert r.stderr.splitlines()[-1].startswith("no remote is configured")
    ok("reset", c2[:12], cwd=repo)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.startswith(f"object {c3} is corrupt")
    assert r.stderr.splitlines()[-1] == ("nothing here needs the damaged objects: `memstore gc` "
                                         "removes them")
    ok("gc", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
