"""What fsck says of a damaged store, and what `fsck --repair` keeps: one line per damage
with the one way out that works first, and the reflog kept wherever its rows read."""
from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
from pathlib import Path

import children
import pytest
from cli_support import error_line, facts_files, ok, run, snapshot


def sql(repo: Path, statement: str, *args) -> None:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute(statement, args)
    con.close()


def logged(repo: Path, ref: str = "HEAD") -> list[str]:
    """The commits `ref`'s reflog entries moved it to, newest first."""
    return [e["new"] for e in json.loads(ok("reflog", "show", ref, "--json", cwd=repo).stdout)]


def _no_snapshots(repo: Path) -> None:
    """Every snapshot of the refs and config deleted: `fsck --repair` has none to take a
    damaged ref row from."""
    for (oid,) in sqlite3.connect(repo / ".memstore" / "index.db").execute(
            "select object from snapshots").fetchall():
        path = repo / ".memstore" / "objects" / oid[:2] / oid[2:]
        path.chmod(0o644)
        path.unlink()
    sql(repo, "delete from objects where kind = 'snapshot'")
    sql(repo, "delete from snapshots")


def test_a_folder_at_the_head_commits_path_keeps_its_reflog_through_repair(pushed):
    """A folder where HEAD's commit record belongs: fsck said it twice (the folder, then
    'commit C3: its object is corrupt'), `log` said 'is a directory, not a file' with no
    way on, and `fsck --repair` dropped the entries of HEAD and main naming C3 ('dropped 2
    reflog entries naming a commit not in the store'): once the folder was removed and the
    record refetched, the log had lost them for good. Now one line, `log` names fsck, the
    repair keeps the entries (a second one, once the folder is removed, too: main still
    names C3) and the walk ends with the whole reflog."""
    repo, _ = pushed
    head = logged(repo)
    c3 = head[0]
    path = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    path.chmod(0o644)
    path.unlink()
    (path / "mine").mkdir(parents=True)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        (f"object {c3}: {path} is a folder where an object belongs; memstore does not delete "
         "a folder: remove it")], r.output
    before = snapshot(repo)
    error_line(run("log", cwd=repo), 1, f"object {c3} is a directory, not a file; run "
                                        "`memstore fsck`")
    assert snapshot(repo) == before
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and "dropped" not in r.stderr and "Traceback" not in r.output, \
        r.output
    assert logged(repo) == head and logged(repo, "main")[0] == c3
    assert not any(p.startswith("reflog entry") for p in r.stdout.splitlines()), r.stdout
    shutil.rmtree(path)  # as fsck said; the record is missing now, main still on it
    r = run("fsck", "--repair", cwd=repo)  # again: the entries stay while a ref names C3
    assert r.exit_code == 1 and "dropped" not in r.stderr, r.output
    assert not any(p.startswith("reflog entry") for p in r.stdout.splitlines()), r.stdout
    ok("fetch", "origin", "--refetch", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert logged(repo) == head and logged(repo, "main")[0] == c3


def test_a_ref_row_on_no_commit_id_is_one_line_with_the_way_that_works(history):
    """A branch row holding 'zzz': the read paths said 'run `memstore fsck`', fsck then
    named `memstore reset C3` (refused: the same error, a loop) and, on a second line,
    `fsck --repair` for the snapshot; status said the error twice (a warning, then the
    error). The repair, which takes the refs from the snapshot, is the way: every message
    names it, once; and the repair keeps the reflog, where it started an empty one."""
    repo, (_, _, c3) = history
    head = logged(repo)
    sql(repo, "update refs set target = 'zzz' where name = 'refs/heads/main'")
    said = "ref refs/heads/main holds 'zzz', not a commit id; run `memstore fsck --repair`"
    before = snapshot(repo)
    for args in (["log"], ["status"], ["reset", c3[:12]]):
        error_line(run(*args, cwd=repo), 1, said)
    assert snapshot(repo) == before
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        ("ref refs/heads/main holds 'zzz', not a commit id; `memstore fsck --repair` takes "
         "its row from the newest snapshot")], r.output
    ok("fsck", "--repair", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert logged(repo) == head and logged(repo, "main")[0] == c3


def test_a_ref_on_a_commit_not_here_is_one_line_with_one_way(history):
    """A branch row naming a well-formed id the store lacks: fsck gave the way back
    (`memstore reset C3`) and a second line, 'no up-to-date snapshot (`memstore fsck
    --repair` writes one)', two ways at once where the reset alone mends both."""
    repo, (_, _, c3) = history
    sql(repo, "update refs set target = ? where name = 'refs/heads/main'", "a" * 64)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        (f"ref refs/heads/main points to {'a' * 64}, which is not a known commit; it named "
         f"{c3[:12]} before: `memstore reset {c3[:12]}` moves it back")], r.output
    ok("reset", c3[:12], cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


@pytest.mark.parametrize("damage", ["flipped", "deleted"])
def test_a_damaged_commit_record_is_one_line(history, damage):
    """C2's record flipped: fsck said 'object C2 is corrupt' and 'commit C2: its object is
    corrupt'; deleted: 'object C2 is indexed but missing' and 'commit C2: its object is
    missing'. One damage, one line (and the way back after it)."""
    repo, (_, c2, _) = history
    path = repo / ".memstore" / "objects" / c2[:2] / c2[2:]
    path.chmod(0o644)
    if damage == "flipped":
        data = bytearray(path.read_bytes())
        data[10] ^= 1
        path.write_bytes(bytes(data))
        said = f"object {c2} is corrupt (its content does not match its name)"
    else:
        path.unlink()
        said = f"commit {c2[:12]}: its object is missing"
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [said], r.output
    assert "`memstore fetch NAME --refetch`" in r.stderr, r.stderr
    if damage == "flipped":  # not re-hashed: the record read says it, without 'run fsck'
        r = run("fsck", "--quick", cwd=repo)
        line = (f"commit {c2[:12]}: unreadable record (object {c2} is corrupt (its content "
                "does not match its name))")
        assert r.exit_code == 1 and r.stdout.splitlines() == [line], r.output


@pytest.mark.parametrize("at", [10, 0])
def test_quick_fsck_after_a_repair_names_the_corrupt_record_it_kept_entries_of(history, at):
    """C3 named by the reflog alone (main reset to C2), its record corrupt: `fsck --repair`
    leaves C3 out and keeps the entries naming it (08baf5f). `fsck --quick` then named
    each entry, 'not in the repository; `memstore gc` (or `memstore fsck --repair`) drops
    it', where the repair keeps it (a loop); it now hashes that one record and says what
    fsck says, the object's one line; after gc, both are clean. The record damaged at its
    first byte: the repair dropped the entries ('dropped 2 reflog entries naming a commit
    not in the store'; its scan reads as a record only an object opening with '{'), where
    it keeps them for a byte further on; now it keeps them too."""
    repo, (_, c2, c3) = history
    ok("reset", c2[:12], cwd=repo)
    path = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))
    said = [f"object {c3} is corrupt (its content does not match its name)"]
    r = run("fsck", "--repair", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines()[-1] == said[0], r.output
    assert "dropped" not in r.stderr, r.stderr
    assert c3 in logged(repo)  # kept
    for args in (["fsck"], ["fsck", "--quick"]):
        r = run(*args, cwd=repo)
        assert r.exit_code == 1 and r.stdout.splitlines() == said, (args, r.output)
    ok("gc", cwd=repo)
    assert c3 not in logged(repo)
    for args in (["fsck"], ["fsck", "--quick"]):
        assert ok(*args, cwd=repo).stdout.strip() == "ok"


@pytest.mark.parametrize("ref, symbolic", [("HEAD", "refs/tags/x"), ("HEAD", "1"),
                                           ("HEAD", "refs/heads/"), ("HEAD", "refs/heads/a b"),
                                           ("refs/heads/main", "refs/heads/main")])
def test_a_bad_symbolic_ref_is_one_line_with_the_repair(history, ref, symbolic):
    """A symbolic ref row no command reads (HEAD on a tag's name, a branch made symbolic):
    fsck said 'bad symbolic target' with no way out and, on a second line, 'no up-to-date
    snapshot (`memstore fsck --repair` writes one)'. The repair, which takes the refs from
    the snapshot, is its one way: one line names it, and it mends it, the reflog kept."""
    repo, (_, _, c3) = history
    head = logged(repo)
    sql(repo, "update refs set symbolic = ? where name = ?", symbolic, ref)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        (f"ref {ref}: bad symbolic target {symbolic!r}; `memstore fsck --repair` takes its "
         "row from the newest snapshot")], r.output
    ok("fsck", "--repair", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert logged(repo) == head and logged(repo, "main")[0] == c3


def test_gc_refuses_a_folder_it_would_delete_and_changes_nothing(history):
    """A folder at the record path of C3, which only the reflog names (main reset to C2):
    gc deleted the index rows and the reflog entries naming C3 in its transaction, then
    failed on the folder ('Is a directory: PATH', exit 1): a change made, and no way named.
    Now it refuses first, in the words of fsck's line, and changes nothing; once the folder
    is removed, gc runs."""
    repo, (_, c2, c3) = history
    ok("reset", c2[:12], cwd=repo)
    path = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    path.chmod(0o644)
    path.unlink()
    (path / "mine").mkdir(parents=True)
    before = snapshot(repo)
    for args in (["gc"], ["gc", "--dry-run"]):
        error_line(run(*args, cwd=repo), 1,
                   f"gc refused: object {c3}: {path} is a folder where an object belongs; "
                   "memstore does not delete a folder: remove it; nothing was changed")
        assert snapshot(repo) == before and path.is_dir()
    shutil.rmtree(path)
    ok("gc", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok" and c3 not in logged(repo)


def test_a_damaged_ref_row_is_mended_alone_where_the_head_record_is_damaged_too(history):
    """main's row holding 'zzz' and C3's record (main's head) corrupt: the repair took
    the refs and config whole from the newest snapshot whose refs all name a commit here,
    one from before C3, so branch `side` and tag `v1`, made since, were gone and main was
    back on C2, said only as '(from the snapshot N)'; fsck then called C3 'nothing here
    needs' it, for gc to remove. Now main's row alone comes from the newest snapshot
    holding it (on C3), the others stay, and fsck gives main's way back."""
    repo, (c1, c2, c3) = history
    ok("branch", "side", c1[:12], cwd=repo)
    ok("tag", "v1", c2[:12], cwd=repo)
    sql(repo, "update refs set target = 'zzz' where name = 'refs/heads/main'")
    path = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    r = run("fsck", "--repair", cwd=repo)
    assert "refs/heads/main from the snapshot" in r.stderr, r.output
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        f"object {c3} is corrupt (its content does not match its name)",
        (f"ref refs/heads/main points to {c3}, which is not a known commit; it named "
         f"{c2[:12]} before: `memstore reset {c2[:12]}` moves it back")], r.output
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = dict(con.execute("select name, target from refs where symbolic is null"))
    con.close()
    assert refs == {"refs/heads/main": c3, "refs/heads/side": c1, "refs/tags/v1": c2}


def test_switch_back_to_a_commit_the_repair_left_out_names_the_damage(history):
    """Detached at C3, back on main, main reset to C2, C3's record corrupt: the repair
    keeps the switch's entries (08baf5f), and `switch -` said 'the previous HEAD, commit
    C3 (detached), is no longer here (gc removed it)', exit 2: no gc ran, and gc keeps
    what a switch's entry names. It is the damage line `switch @{-1}` gives, exit 1."""
    repo, (_, c2, c3) = history
    ok("switch", "--detach", c3[:12], cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("reset", c2[:12], cwd=repo)
    path = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    assert run("fsck", "--repair", cwd=repo).exit_code == 1
    before = snapshot(repo)
    said = f"commit {c3[:12]} is named but not in the index; run `memstore fsck`"
    for rev in ("-", "@{-1}"):
        error_line(run("switch", rev, cwd=repo), 1, said)
    assert snapshot(repo) == before


def test_a_branch_row_on_no_commit_id_that_no_snapshot_holds_is_set_by_branch_f(history):
    """main (current) and side holding 'zzz' and 'yyy', and no snapshot left to take them
    from: fsck named `fsck --repair`, which refused ('no usable snapshot…; nothing was
    changed'), and every other command refused on the row, `branch -f` and `reset`
    included: no command worked. Now fsck names `branch -f NAME REV` with REV the
    branch's reflog's newest entry, the repair's refusal too; it sets exactly that row
    (the current branch as well), refusals change nothing, and the walk ends clean."""
    repo, (c1, c2, c3) = history
    ok("branch", "side", c1[:12], cwd=repo)
    ok("tag", "v1", c2[:12], cwd=repo)
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'zzz' where name = 'refs/heads/main'")
    sql(repo, "update refs set target = 'yyy' where name = 'refs/heads/side'")
    main = (f"`memstore branch -f main {c3[:12]}` sets it to its reflog's newest entry "
            "(main@{0})")
    side = (f"`memstore branch -f side {c1[:12]}` sets it to its reflog's newest entry "
            "(side@{0})")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        f"ref refs/heads/main holds 'zzz', not a commit id; no snapshot holds it sound: {main}",
        f"ref refs/heads/side holds 'yyy', not a commit id; no snapshot holds it sound: {side}",
    ], r.output
    before = snapshot(repo)
    error_line(run("fsck", "--repair", cwd=repo), 1, f"nothing was changed: {main}; {side}")
    error_line(run("branch", "-f", "main", cwd=repo), 2,
               "branch 'main' holds 'zzz', not a commit id: `memstore branch -f main REV`")
    error_line(run("branch", "-f", "main", "nope", cwd=repo), 2, "unknown revision 'nope'")
    error_line(run("reset", c3[:12], cwd=repo), 1, "holds 'zzz', not a commit id")
    assert snapshot(repo) == before
    r = ok("branch", "-f", "main", c3[:12], cwd=repo)
    assert r.stdout.strip() == (f"Set branch main to {c3[:12]} (its row held 'zzz', not a "
                                "commit id)")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        f"ref refs/heads/side holds 'yyy', not a commit id; no snapshot holds it sound: {side}",
    ], r.output
    ok("branch", "-f", "side", "side@{0}", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = dict(con.execute("select name, target from refs where symbolic is null"))
    con.close()
    assert refs == {"refs/heads/main": c3, "refs/heads/side": c1, "refs/tags/v1": c2}
    assert logged(repo)[:2] == [c3, c3] and logged(repo, "main")[:2] == [c3, c3]
    assert ok("status", cwd=repo).stdout.startswith("On branch main")


def test_an_entry_of_a_commit_whose_record_is_here_unindexed_says_the_repair_indexes_it(
        history):
    """C3 named by the reflog alone (main reset to C2), its record here and intact, its
    index rows gone: fsck said each entry 'names new commit C3, which is not in the
    repository; `memstore gc` (or `memstore fsck --repair`) drops it', where the record
    is here and the repair indexes C3 and keeps the entries. It says that now."""
    repo, (_, c2, c3) = history
    ok("reset", c2[:12], cwd=repo)
    sql(repo, "delete from requests where commit_id = ?", c3)
    sql(repo, "delete from commits where id = ?", c3)
    ids = [i for (i,) in sqlite3.connect(repo / ".memstore" / "index.db").execute(
        "select id from reflog where new = ? order by id", [c3]).fetchall()]
    said = [(f"reflog entry {i} of {ref} names new commit {c3[:12]}, whose record is here "
             "but not in the index; `memstore fsck --repair` indexes it (the entry stays)")
            for i, ref in zip(ids, ["refs/heads/main", "HEAD"])]
    for args in (["fsck"], ["fsck", "--quick"]):
        r = run(*args, cwd=repo)
        assert r.exit_code == 1 and r.stdout.splitlines() == said, (args, r.output)
    ok("fsck", "--repair", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert c3 in logged(repo) and c3 in logged(repo, "main")


def test_a_tag_or_remote_tracking_row_on_no_commit_id_that_no_snapshot_holds_is_deleted(
        pushed):
    """Tag v1 and origin/main holding 'qqq' and 'rrr', no snapshot left: fsck said
    '`memstore fsck --repair` takes its row from the newest snapshot', the repair refused
    ('no usable snapshot…; nothing was changed') and `tag -d`, `branch -d -r`, `fetch`
    refused on the row: no command worked. Now fsck and the refusal name `tag -d v1` and
    `branch -d -r origin/main`, which delete exactly those rows (another of the same damage
    passed over, a name that is none refusing them all), and `tag v1 REV`, `fetch` make
    them again: the walk ends clean."""
    repo, _ = pushed
    c3, c1 = logged(repo, "main")[0], logged(repo, "main")[-1]
    ok("tag", "v1", c1[:12], cwd=repo)
    ok("tag", "v2", c1[:12], cwd=repo)
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'qqq' where name = 'refs/tags/v1'")
    sql(repo, "update refs set target = 'rrr' where name = 'refs/remotes/origin/main'")
    tag = "`memstore tag -d v1` deletes it (`memstore tag v1 REV` makes it again)"
    tracking = ("`memstore branch -d -r origin/main` deletes it (`memstore fetch origin` "
                "brings it back)")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        ("ref refs/remotes/origin/main holds 'rrr', not a commit id; no snapshot holds it "
         f"sound: {tracking}"),
        f"ref refs/tags/v1 holds 'qqq', not a commit id; no snapshot holds it sound: {tag}",
    ], r.output
    before = snapshot(repo)
    error_line(run("fsck", "--repair", cwd=repo), 1, "nothing was changed: ")
    assert tag in run("fsck", "--repair", cwd=repo).stderr
    error_line(run("tag", "-d", "v1", "nope", cwd=repo), 2, "no tag 'nope'")
    error_line(run("fetch", "origin", cwd=repo), 1, "holds 'rrr', not a commit id")
    assert snapshot(repo) == before
    r = ok("tag", "-d", "v1", "v2", "--json", cwd=repo)
    assert json.loads(r.stdout) == [{"deleted": "v1", "commit": None},
                                    {"deleted": "v2", "commit": c1}]
    r = ok("branch", "-d", "-r", "origin/main", cwd=repo)
    assert r.stdout.strip() == ("Deleted remote-tracking branch origin/main (its row held "
                                "no commit id).")
    ok("tag", "v1", c3[:12], cwd=repo)
    ok("fetch", "origin", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = dict(con.execute("select name, target from refs where symbolic is null"))
    con.close()
    assert refs == {"refs/heads/main": c3, "refs/remotes/origin/main": c3,
                    "refs/tags/v1": c3}
    assert logged(repo)[0] == c3 and logged(repo, "main")[0] == c3


@pytest.mark.parametrize("target, symbolic", [("zzz", None), (None, "1"),
                                              (None, "refs/tags/v1"), (None, "refs/heads/")])
def test_a_head_row_that_reads_as_nothing_that_no_snapshot_holds_is_set_by_switch(
        history, target, symbolic):
    """HEAD detached at C2 made to hold 'zzz' (or to name '1', a tag), no snapshot left:
    fsck said '`memstore fsck --repair` takes its row from the newest snapshot' (there was
    none, and the repair refused, naming no way) and every command refused on the row,
    switch included: no command worked. git's `switch BRANCH` leaves a HEAD on a commit it
    lacks; memstore's `switch` now sets exactly HEAD's row, fsck and the refusal name it,
    and the walk ends clean with the other refs and the reflog as they were."""
    repo, (c1, c2, c3) = history
    ok("branch", "side", c1[:12], cwd=repo)
    ok("tag", "v1", c1[:12], cwd=repo)
    ok("switch", "--detach", c2[:12], cwd=repo)
    head, main = logged(repo), logged(repo, "main")
    _no_snapshots(repo)
    sql(repo, "update refs set target = ?, symbolic = ? where name = 'HEAD'", target, symbolic)
    held = repr(target or symbolic)
    way = (f"`memstore switch --detach {c2[:12]}` sets it to its reflog's newest entry "
           "(HEAD@{0}); `memstore switch BRANCH` puts it on a branch")
    said = (f"ref HEAD holds {held}, not a commit id" if target else
            f"ref HEAD: bad symbolic target {held}")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        f"{said}; no snapshot holds it sound: {way}"], r.output
    before = snapshot(repo)
    error_line(run("fsck", "--repair", cwd=repo), 1, f"nothing was changed: {way}")
    error_line(run("switch", "-c", "x", cwd=repo), 2, "`memstore switch BRANCH`")
    error_line(run("switch", "nope", cwd=repo), 2, "unknown revision 'nope'")
    assert run("status", cwd=repo).exit_code == 1
    assert snapshot(repo) == before
    r = ok("switch", "--detach", c2[:12], cwd=repo)
    assert r.stdout.strip() == f"HEAD is now at {c2[:12]} (detached; its row held {held})"
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert logged(repo) == [c2] + head and logged(repo, "main") == main
    assert ok("switch", "main", cwd=repo).stdout.strip() == "Switched to branch 'main'"
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = {n: (t, s) for n, t, s in con.execute("select name, target, symbolic from refs")}
    con.close()
    assert refs == {"HEAD": (None, "refs/heads/main"), "refs/heads/main": (c3, None),
                    "refs/heads/side": (c1, None), "refs/tags/v1": (c1, None)}
    assert ok("switch", "-", cwd=repo).stdout.strip() == f"HEAD is now at {c2[:12]} (detached)"


def test_a_damaged_head_before_the_first_commit_is_set_on_a_branch_by_switch(base, tmp_path):
    """A repository with no commit yet, HEAD made to hold 'zzz', no snapshot left: fsck
    named `memstore switch BRANCH`, which refused ('unknown revision 'main'': no branch nor
    revision exists before a first commit), as did the repair: no way out. switch puts HEAD
    on that branch, unborn, as init leaves it (a name no branch can have is refused)."""
    from cli_support import copy_repo, empty_template

    repo = copy_repo(empty_template(base), tmp_path / "repo")
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'zzz', symbolic = null where name = 'HEAD'")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "`memstore switch BRANCH`" in r.stdout, r.output
    before = snapshot(repo)
    error_line(run("switch", "a b", cwd=repo), 2, "invalid branch name 'a b'")
    assert snapshot(repo) == before
    r = ok("switch", "main", cwd=repo)
    assert r.stdout.strip() == "Switched to branch 'main' (HEAD's row held 'zzz')"
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = {n: (t, s) for n, t, s in con.execute("select name, target, symbolic from refs")}
    con.close()
    assert refs == {"HEAD": (None, "refs/heads/main")}


@pytest.mark.parametrize("symbolic", ["refs/heads/", "refs/heads/a b", "refs/heads/-x"])
def test_a_head_naming_no_branch_a_branch_can_have_makes_none(history, base, symbolic):
    """HEAD naming refs/heads/ with a name no branch can have ('', 'a b', '-x': a hand
    edit) read as that branch, unborn: fsck said only that the snapshot was out of date,
    and the next commit made the branch (a row 'refs/heads/', fsck then naming its reflog
    entry only, the repair keeping it). It is HEAD naming no branch now: commands refuse
    it, fsck names the repair, which takes HEAD from the snapshot; nothing is made."""
    repo, (_, _, c3) = history
    sql(repo, "update refs set symbolic = ? where name = 'HEAD'", symbolic)
    before = snapshot(repo)
    error_line(run("commit", facts_files(base)["a"], "-m", "x", cwd=repo), 1,
               f"HEAD names {symbolic!r}, not a branch; run `memstore fsck`")
    assert snapshot(repo) == before
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        (f"ref HEAD: bad symbolic target {symbolic!r}; `memstore fsck --repair` takes its "
         "row from the newest snapshot")], r.output
    ok("fsck", "--repair", cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = {n: (t, s) for n, t, s in con.execute("select name, target, symbolic from refs")}
    con.close()
    assert refs == {"HEAD": (None, "refs/heads/main"), "refs/heads/main": (c3, None)}


def test_a_ref_name_that_does_not_print_is_one_line_and_its_command_pastes(history):
    """A branch and a tag row named with a newline, holding no commit id, no snapshot:
    fsck's line for each broke in two (the name as is, and `branch -D 'a` + newline + `b'`).
    Each is one line now, the name escaped, the command's name in $'...', which bash reads
    as the name: run so, each deletes its row."""
    repo, _ = history
    _no_snapshots(repo)
    sql(repo, "insert into refs (name, target, symbolic) values (?, 'zzz', null)",
        "refs/heads/a\nb")
    sql(repo, "insert into refs (name, target, symbolic) values (?, 'zzz', null)",
        "refs/tags/t\x01u")
    r = run("fsck", cwd=repo)
    lines = r.stdout.splitlines()
    assert r.exit_code == 1 and len(lines) == 2, r.output
    assert lines[0].startswith("ref refs/heads/a\\nb holds 'zzz'") and \
        lines[1].startswith("ref refs/tags/t\\x01u holds 'zzz'"), r.output
    assert _pasted(lines[0]) == ["branch", "-D", "a\nb"]
    assert _pasted(lines[1]) == ["tag", "-d", "t\x01u"]
    for line in lines:
        ok(*_pasted(line), cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_the_branch_pairs_are_found_in_time_linear_in_a_name_s_depth():
    """fsck looked up every folder of each branch name (a slice each): time in the square
    of a name's depth, 4.7 s for one row of 20,000 components (a hand edit), 47 s for
    50,000. Each name is walked once now (milliseconds); the pair it makes still named."""
    import time

    from memstore.store.maintenance import _folder_clashes

    folder = "/".join(["ab"] * 50_000)
    rows = [{"name": f"refs/heads/{folder}/x"}, {"name": f"refs/heads/{folder}"},
            {"name": "refs/heads/ab-x"}, {"name": "refs/tags/ab/x/y"}]
    start = time.perf_counter()
    lines = _folder_clashes(rows)
    assert time.perf_counter() - start < 3
    assert len(lines) == 1 and lines[0].startswith(f"branches {folder} and {folder}/x: ")


@pytest.mark.parametrize("way", ["-m", "-D"])
def test_a_branch_and_a_branch_under_its_name_are_one_line_with_the_way_out(history, way):
    """Rows refs/heads/side and refs/heads/side/x together (an older memstore's, a hand
    edit): no command makes them (a remote stores a branch as a file, so one cannot be
    both a branch and the folder of another), and fsck said only that the snapshot is out
    of date ('`memstore fsck --repair` writes one'). It
    names the pair now, with the rename or delete that ends it; that one works, the walk
    ends clean with the other refs as they were."""
    repo, (c1, c2, c3) = history
    ok("branch", "side", c1[:12], cwd=repo)
    sql(repo, "insert into refs (name, target, symbolic) values ('refs/heads/side/x', ?, null)",
        c2)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        ("branches side and side/x: a remote stores a branch as a file, so one cannot be "
         "both a branch and the folder of another; `memstore branch -m side/x NEW` renames "
         "one (`memstore branch -D side/x` deletes it)")], r.output
    if way == "-m":
        ok("branch", "-m", "side/x", "side-x", cwd=repo)
    else:
        ok("branch", "-D", "side/x", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = dict(con.execute("select name, target from refs where symbolic is null"))
    con.close()
    assert refs == {"refs/heads/main": c3, "refs/heads/side": c1} | (
        {"refs/heads/side-x": c2} if way == "-m" else {})
    assert logged(repo, "side")[0] == c1


def _pasted(line: str) -> list[str]:
    """The arguments of the first command a fsck line names (`memstore ...`), as a shell
    splits it when the line is pasted (bash: its quoting, $'...' included)."""
    command = line.split("`memstore ", 1)[1].split("`", 1)[0]
    out = children.run(["bash", "-c", f"set -- {command}; printf '%s\\0' \"$@\""],
                       capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


def test_the_commands_fsck_names_for_an_odd_ref_name_work_when_pasted(history):
    """Branch rows "it's", 'my side' and '-x' and a tag row 'v 1' holding no commit id (no
    command makes the last three, a damaged row can hold any name), no snapshot left: fsck
    named `memstore branch -f it's REV`, `memstore branch -f my side REV`, `memstore
    branch -f -x REV` and `memstore tag -d v 1`, which a shell splits otherwise (an open
    quote; 'v' and '1': no tag 'v') or the command reads as an option ('-x'); and
    `branch -f 'my side' REV` set the row and wrote a reflog entry its reflog then called
    damaged ('its ref'), for no branch can be named so. fsck quotes a name now, names
    `branch -D` for a branch no branch can be named as (and no `tag NAME REV` for such a
    tag), `branch -f` refuses to set one, `branch -D` deletes such a row: each pasted line
    works, and the walk ends clean."""
    repo, (c1, c2, c3) = history
    ok("branch", "it's", c1[:12], cwd=repo)
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'yyy' where name = 'refs/heads/it''s'")
    sql(repo, "insert into refs (name, target, symbolic) values ('refs/heads/my side', "
        "'zzz', null)")
    sql(repo, "insert into refs (name, target, symbolic) values ('refs/tags/v 1', 'qqq', "
        "null)")
    sql(repo, "insert into refs (name, target, symbolic) values ('refs/heads/-x', 'xxx', "
        "null)")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        ("ref refs/heads/-x holds 'xxx', not a commit id; no snapshot holds it sound: "
         "`memstore branch -D -- -x` deletes it (no branch can be named so: it starts with "
         "'-')"),
        ("ref refs/heads/it's holds 'yyy', not a commit id; no snapshot holds it sound: "
         f"`memstore branch -f 'it'\"'\"'s' {c1[:12]}` sets it to its reflog's newest entry "
         "(it's@{0})"),
        ("ref refs/heads/my side holds 'zzz', not a commit id; no snapshot holds it sound: "
         "`memstore branch -D 'my side'` deletes it (no branch can be named so: it contains "
         "a space)"),
        ("ref refs/tags/v 1 holds 'qqq', not a commit id; no snapshot holds it sound: "
         "`memstore tag -d 'v 1'` deletes it"),
    ], r.output
    before = snapshot(repo)
    error_line(run("branch", "-f", "my side", c2[:12], cwd=repo), 2,
               "branch 'my side' cannot be set: no branch can be named so (it contains a "
               "space); `memstore branch -D 'my side'` deletes it")
    assert snapshot(repo) == before
    for line in r.stdout.splitlines():
        ok(*_pasted(line), cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = dict(con.execute("select name, target from refs where symbolic is null"))
    con.close()
    assert refs == {"refs/heads/main": c3, "refs/heads/it's": c1}
    assert logged(repo, "it's")[:2] == [c1, c1] and logged(repo, "main")[0] == c3


@pytest.mark.parametrize("name", ["it's", "a b"])
def test_the_way_back_fsck_names_for_an_odd_branch_name_works_when_pasted(history, name):
    """Branch "it's" (or 'a b', a row made by hand) moved onto a commit the store lacks:
    fsck's way back, `memstore branch -f it's C1`, left a quote open in a shell, and `branch
    -f a b C1` split the name (quoted, `branch -f` refuses a name no branch can have).
    Quoted now, and `branch -D` for the name no branch can have: the pasted line works."""
    repo, (c1, c2, _) = history
    ok("branch", "side", c1[:12], cwd=repo)
    sql(repo, "update refs set name = ? where name = 'refs/heads/side'", "refs/heads/" + name)
    if name == "it's":  # (a reflog cannot hold the other: its entries would be damaged)
        sql(repo, "update reflog set ref = ? where ref = 'refs/heads/side'",
            "refs/heads/" + name)
    ok("tag", "v1", c2[:12], cwd=repo)  # a snapshot holding the branch on C1
    sql(repo, "update refs set target = ? where name = ?", "a" * 64, "refs/heads/" + name)
    quoted = shlex.quote(name)
    how = (f"`memstore branch -f {quoted} {c1[:12]}` moves it back (`memstore branch -D "
           f"{quoted}` deletes it)" if name == "it's" else
           f"`memstore branch -D {quoted}` deletes it (no branch can be named so: it "
           "contains a space)")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        (f"ref refs/heads/{name} points to {'a' * 64}, which is not a known commit; it named "
         f"{c1[:12]} before: {how}")], r.output
    ok(*_pasted(r.stdout), cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert ok("branch", "--json", cwd=repo).stdout.count('"name"') == (2 if name == "it's"
                                                                       else 1)


def _refs(repo: Path) -> dict:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    refs = {n: (t, s) for n, t, s in con.execute("select name, target, symbolic from refs")}
    con.close()
    return refs


@pytest.mark.parametrize("rev", ["-", "@{-1}", "@{-2}"])
def test_switch_back_off_a_damaged_head_goes_where_the_last_switch_came_from(history, rev):
    """HEAD holding 'zzz', no snapshot: `switch BRANCH` sets it, but `switch -` and
    `switch @{-N}` said 'ref HEAD holds 'zzz', not a commit id; run `memstore fsck
    --repair`', which has no snapshot to take it from. They read HEAD's reflog, as git's
    `switch -` off a HEAD on a commit it lacks does, and set HEAD there (the commit
    detached, or the branch); the walk ends clean."""
    repo, (c1, c2, c3) = history
    ok("branch", "side", c1[:12], cwd=repo)
    ok("switch", "side", cwd=repo)
    ok("switch", "--detach", c2[:12], cwd=repo)
    ok("switch", "main", cwd=repo)
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'zzz', symbolic = null where name = 'HEAD'")
    r = run("switch", rev, cwd=repo)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    if rev == "@{-2}":  # before the switch onto C2: side
        assert r.stdout.strip() == "Switched to branch 'side' (HEAD's row held 'zzz')"
        head = (None, "refs/heads/side")
    else:
        assert r.stdout.strip() == f"HEAD is now at {c2[:12]} (detached; its row held 'zzz')"
        head = (c2, None)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert _refs(repo) == {"HEAD": head, "refs/heads/main": (c3, None),
                           "refs/heads/side": (c1, None)}


def test_head_and_its_branch_on_no_commit_id_name_the_way_that_works(history):
    """HEAD and main holding 'zzz' and 'yyy', no snapshot: fsck names `switch` for HEAD and
    `branch -f main C3` for main, but `switch main` (git's refuses a broken branch too),
    and every command refusing on a row, `reflog expire` and `reflog delete` (git's
    refuse a broken ref too) among them, said 'run `memstore fsck --repair`', which
    refuses. Each refusal is fsck's line for the row it met now; `branch -f main C3` then
    `switch main` end the walk clean, the reflog kept."""
    repo, (_, _, c3) = history
    main = logged(repo, "main")
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'zzz', symbolic = null where name = 'HEAD'")
    sql(repo, "update refs set target = 'yyy' where name = 'refs/heads/main'")
    lines = run("fsck", cwd=repo).stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith("ref refs/heads/main holds 'yyy'"), lines
    before = snapshot(repo)
    said = error_line(run("switch", "main", cwd=repo), 1, "")
    assert said == f"memstore: error: {lines[1]}"
    assert _pasted(said) == ["branch", "-f", "main", c3[:12]]
    for args in (["reflog", "expire", "--expire=all", "--all"], ["reflog", "delete",
                                                                  "main@{0}"], ["log"]):
        assert error_line(run(*args, cwd=repo), 1, "") == f"memstore: error: {lines[0]}", args
    assert snapshot(repo) == before
    ok(*_pasted(said), cwd=repo)
    ok("switch", "main", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert _refs(repo) == {"HEAD": (None, "refs/heads/main"), "refs/heads/main": (c3, None)}
    assert logged(repo, "main") == [c3] + main


def _git_expire_beside_a_bad_ref(tmp_path: Path, monkeypatch) -> dict[str, object]:
    """git's `reflog expire --expire=now --all` (and `--dry-run`, and of the bad ref alone)
    where branch side and tag v1 hold garbage and HEAD is on master: each log's entry count after,
    the stderr lines and exit status of each."""
    assert shutil.which("git"), "git is needed here (CI clones with it)"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    g = tmp_path / "git"

    def git(*args: str) -> tuple[int, list[str]]:
        r = children.run(["git", "-C", str(g), "-c", "user.name=a", "-c", "user.email=a@b",
                          *args], check=False, capture_output=True, text=True)
        return r.returncode, r.stderr.splitlines()

    g.mkdir()
    git("init", "-q", "-b", "master")
    for n in range(3):
        git("commit", "-q", "--allow-empty", "-m", f"c{n}")
    git("branch", "side", "HEAD~2")
    git("branch", "other", "HEAD~1")
    git("tag", "v1")
    (g / ".git" / "refs" / "heads" / "side").write_text("yyy\n")
    (g / ".git" / "refs" / "tags" / "v1").write_text("qqq\n")  # no log: nothing said
    logs = g / ".git" / "logs"

    def counts() -> dict[str, int]:
        return {p.name: len(p.read_text().splitlines())
                for p in [logs / "HEAD", *sorted((logs / "refs" / "heads").iterdir())]}
    before = counts()
    return {"before": before, "dry": git("reflog", "expire", "--dry-run", "--expire=now",
                                          "--all"), "dry_counts": counts(),
            "alone": git("reflog", "expire", "--expire=now", "side")[0],
            "all": git("reflog", "expire", "--expire=now", "--all"), "after": counts()}


def test_reflog_expire_all_beside_a_row_on_no_commit_id_expires_the_others_as_git(
        history, tmp_path, monkeypatch):
    """Branch side holding 'yyy' and tag v1 'qqq', no snapshot: `reflog expire --all`
    refused outright (fsck's line, exit 1), the other refs' logs kept. git 2.39's says
    'error: bad ref for .git/logs/refs/heads/side', keeps that log, expires the others' and
    exits 0 (so with --dry-run, which deletes nothing), and says nothing of the tag, which
    has no log; of side alone it refuses ('side points nowhere!'). memstore now does so:
    one line naming fsck's way out, side's log kept, the others' expired, exit 0; `reflog
    expire side` still refuses, nothing changed."""
    gitsaid = _git_expire_beside_a_bad_ref(tmp_path, monkeypatch)
    assert gitsaid["dry"] == (0, ["error: bad ref for .git/logs/refs/heads/side"])
    assert gitsaid["dry_counts"] == gitsaid["before"] and gitsaid["alone"] != 0
    assert gitsaid["all"] == gitsaid["dry"]
    assert gitsaid["after"] == {"HEAD": 0, "master": 0, "other": 0, "side": 1}

    repo, (c1, c2, _) = history
    ok("branch", "side", c1[:12], cwd=repo)
    ok("branch", "other", c2[:12], cwd=repo)
    ok("tag", "v1", cwd=repo)
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'yyy' where name = 'refs/heads/side'")
    sql(repo, "update refs set target = 'qqq' where name = 'refs/tags/v1'")
    fsck = sorted(run("fsck", cwd=repo).stdout.splitlines(), key=lambda line: "v1" in line)
    assert len(fsck) == 2 and "branch -f side" in fsck[0] and "tag" in fsck[1], fsck
    said = [f"warning: {fsck[0]}; its reflog left as it was"]
    logs = {ref: logged(repo, ref) for ref in ("HEAD", "main", "other", "side")}
    assert all(logs.values()), logs
    before = snapshot(repo)
    assert error_line(run("reflog", "expire", "--expire=now", "side", cwd=repo), 1, "") \
        == f"memstore: error: {fsck[0]}"
    r = run("reflog", "expire", "--dry-run", "--expire=now", "--all", cwd=repo)
    assert (r.exit_code, r.stderr.splitlines()) == (0, said), r.output
    assert r.stdout.strip() == f"would delete {len(logs['HEAD']) + len(logs['main']) + 1} " \
        "reflog entries"
    assert snapshot(repo) == before
    r = run("reflog", "expire", "--expire=now", "--all", cwd=repo)
    assert (r.exit_code, r.stderr.splitlines()) == (0, said), r.output
    assert {ref: logged(repo, ref) for ref in logs} == {"HEAD": [], "main": [], "other": [],
                                                        "side": logs["side"]}
    ok("branch", "-f", "side", logs["side"][0][:12], cwd=repo)  # fsck's ways out
    ok(*_pasted(fsck[1]), cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_reflog_expire_all_keeps_heads_log_when_head_is_on_the_damaged_branch(history):
    """HEAD on main, main holding 'yyy': git's keeps HEAD's log too ('bad ref for
    .git/logs/HEAD', checked by hand on 2.39); memstore says it on main's line."""
    repo, _ = history
    logs = {ref: logged(repo, ref) for ref in ("HEAD", "main")}
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'yyy' where name = 'refs/heads/main'")
    fsck = run("fsck", cwd=repo).stdout.splitlines()
    r = run("reflog", "expire", "--expire=now", "--all", cwd=repo)
    assert (r.exit_code, r.stdout.strip(), r.stderr.splitlines()) == (
        0, "deleted 0 reflog entries",
        [f"warning: {fsck[0]}; its reflog and HEAD's, on it, left as it was"]), r.output
    assert {ref: logged(repo, ref) for ref in logs} == logs


def test_branch_d_of_a_row_on_no_commit_id_names_branch_D(history):
    """Branch side holding 'yyy': `branch -d side` said 'run `memstore fsck --repair`'
    (with a snapshot: the repair mends it; without: it refuses), where `-D` deletes the
    row. git's `branch -d` of a broken ref refuses too (whether it is merged cannot be
    read): the refusal names `branch -D`, which ends the walk clean."""
    repo, (c1, c2, c3) = history
    ok("branch", "side", c1[:12], cwd=repo)
    ok("branch", "keep", c2[:12], cwd=repo)
    _no_snapshots(repo)
    sql(repo, "update refs set target = 'yyy' where name = 'refs/heads/side'")
    before = snapshot(repo)
    way = "`memstore branch -D side` deletes it"
    error_line(run("branch", "-d", "side", cwd=repo), 1,
               f"branch 'side' holds 'yyy', not a commit id: whether it is merged cannot be "
               f"read; {way}")
    error_line(run("branch", "-d", "keep", "side", cwd=repo), 1,
               f"{way}; none of the 2 named was deleted")
    assert snapshot(repo) == before
    ok("branch", "-D", "side", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert _refs(repo) == {"HEAD": (None, "refs/heads/main"), "refs/heads/main": (c3, None),
                           "refs/heads/keep": (c2, None)}


def test_a_tag_and_a_tag_under_its_name_are_refused_and_named_with_the_way_out(history):
    """`tag v` then `tag v/x` (or `w/x` then `w`) made both, which no remote can hold
    (git: "cannot lock ref 'refs/tags/v/x': 'refs/tags/v' exists"; `push --tags` refused
    them) and fsck said nothing of. The second is refused now, as a branch's is; a pair
    made by hand is a fsck line naming the delete that ends it."""
    repo, (c1, _, c3) = history
    ok("tag", "v", cwd=repo)
    ok("tag", "w/x", cwd=repo)
    before = snapshot(repo)
    for name, other in (("v/x", "v"), ("w", "w/x"), ("w/x/y", "w/x")):
        error_line(run("tag", name, c1[:12], cwd=repo), 2,
                   f"invalid tag name {name!r}: tag {other!r} exists, and a remote stores a "
                   "tag as a file, so one cannot be both a tag and the folder of another")
    assert snapshot(repo) == before
    sql(repo, "insert into refs (name, target, symbolic) values ('refs/tags/v/x', ?, null)",
        c1)
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines() == [
        ("tags v and v/x: a remote stores a tag as a file, so one cannot be both a tag and "
         "the folder of another; `memstore tag -d v/x` deletes one (`memstore tag NEW v/x` "
         "first keeps its commit under another name)")], r.output
    ok("tag", "v-x", "v/x", cwd=repo)
    ok(*_pasted(r.stdout), cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert {n: t for n, (t, _) in _refs(repo).items() if n.startswith("refs/tags/")} == {
        "refs/tags/v": c3, "refs/tags/v-x": c1, "refs/tags/w/x": c3}


def test_the_repair_names_a_commit_record_it_leaves_out_as_fsck_does(history):
    """C3's record written again in other bytes (json's spaces: another id), indexed and
    named by branch `variant`, as an older memstore could leave it: fsck says it is a
    commit record in other bytes than memstore writes; `fsck --repair` left it out of the
    index in silence (its scan took it for 'some other JSON object'), fsck then calling
    the branch's commit unknown. The repair says it now, in fsck's words."""
    repo, (_, _, c3) = history
    from memstore.store.repository import Repository

    with Repository.open(repo) as store:
        variant = store.objects.put_bytes(json.dumps(store.objects.get_json(c3)).encode())
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("create temp table t as select * from commits where id = ?", [c3])
        con.execute("update t set id = ?", [variant])
        con.execute("insert into commits select * from t")
        con.execute("insert into refs (name, target, symbolic) values "
                    "('refs/heads/variant', ?, null)", [variant])
    con.close()
    said = (f"object {variant} is a commit record in other bytes than memstore writes (key "
            "order, spaces or escapes: not its canonical JSON)")
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and r.stdout.splitlines()[0] == (
        f"commit {variant[:12]}: unreadable record ({said})"), r.output
    r = run("fsck", "--repair", cwd=repo)
    assert f"left out of the index: {said}\n" in r.stderr, r.output
    assert r.stdout.splitlines()[0].startswith(f"ref refs/heads/variant points to {variant}")
    ok("branch", "-D", "variant", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


@pytest.mark.parametrize("ref, made", [
    ("refs/heads/side", ["branch", "side", "C1"]),
    ("refs/tags/v", ["tag", "v", "C1"]),
    ("refs/remotes/o/x", None),  # as a fetch leaves it
])
def test_a_ref_row_made_symbolic_with_no_snapshot_names_a_way_that_works(history, ref, made):
    """A branch, tag or remote-tracking row made symbolic ('zzz'), no snapshot: every
    command said 'run `memstore fsck --repair`', fsck said the repair takes it from the
    newest snapshot, and the repair refused (none): no command ended it (`branch -D`,
    `branch -f`, `tag -d`, `branch -d -r` refused on it too). It is a row holding no
    commit id (`Refs.damaged`), as one holding 'zzz' as its target: fsck and the
    refusals name `hand_set`'s way, which ends the walk clean."""
    repo, (c1, _, c3) = history
    if made is None:
        sql(repo, "insert into refs (name, target, symbolic) values (?, ?, null)", ref, c1)
    else:
        ok(*[c1[:12] if a == "C1" else a for a in made], cwd=repo)
    _no_snapshots(repo)
    sql(repo, "update refs set target = null, symbolic = 'zzz' where name = ?", ref)
    lines = run("fsck", cwd=repo).stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ref {ref}: bad symbolic target 'zzz'; "
                                                   "no snapshot holds it sound: "), lines
    way = lines[0].split("no snapshot holds it sound: ", 1)[1]
    before = snapshot(repo)
    error_line(run("log", cwd=repo), 1, f"ref {ref} is damaged (symbolic 'zzz'); no snapshot "
               f"holds it sound: {way}")
    error_line(run("fsck", "--repair", cwd=repo), 1, "no usable snapshot")
    assert snapshot(repo) == before
    ok(*_pasted(lines[0]), cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    rows = {n: (t, s) for n, (t, s) in _refs(repo).items() if n not in ("HEAD", "refs/heads/main")}
    assert rows == ({ref: (c1, None)} if ref == "refs/heads/side" else {})
    assert _refs(repo)["refs/heads/main"] == (c3, None)


def test_a_remote_head_made_symbolic_to_nothing_is_taken_from_its_snapshot(history):
    """o/HEAD naming o/x (as a clone records it), in a snapshot, then its row naming 'zzz':
    the snapshot holds it sound (a remote's HEAD is symbolic), so fsck names the repair,
    which takes it back, not `branch -d -r o/HEAD` as for a row no snapshot holds."""
    repo, (c1, _, _) = history
    sql(repo, "insert into refs (name, target, symbolic) values ('refs/remotes/o/x', ?, null)",
        c1)
    sql(repo, "insert into refs (name, target, symbolic) values ('refs/remotes/o/HEAD', null, "
        "'refs/remotes/o/x')")
    ok("tag", "t", cwd=repo)  # a snapshot of them all
    sql(repo, "update refs set symbolic = 'zzz' where name = 'refs/remotes/o/HEAD'")
    assert run("fsck", cwd=repo).stdout.splitlines() == [
        ("ref refs/remotes/o/HEAD: bad symbolic target 'zzz'; `memstore fsck --repair` takes "
         "its row from the newest snapshot")]
    ok("fsck", "--repair", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert _refs(repo)["refs/remotes/o/HEAD"] == (None, "refs/remotes/o/x")
