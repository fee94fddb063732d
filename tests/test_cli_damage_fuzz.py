"""A damaged `.memstore/` found by the damage fuzzer (benchmarks/fuzz_damage.py): each case
here is a command that failed on it and yet changed the repository, or that said no one
line."""
from __future__ import annotations

import sqlite3

from cli_support import error_line, run, snapshot


def test_reset_to_a_commit_whose_object_is_missing_moves_nothing(history):
    """reset HEAD~1 with HEAD~1's record gone: it moved the branch (the index knows the
    commit) and only then failed reading the record's message; a failed command that had
    changed the branch."""
    repo, (_, c2, c3) = history
    (repo / ".memstore" / "objects" / c2[:2] / c2[2:]).unlink()
    before = snapshot(repo)
    error_line(run("reset", "HEAD~1", cwd=repo), 1, f"object {c2} is missing")
    assert snapshot(repo) == before
    assert run("log", "-n", "1", "--json", cwd=repo).stdout.count(c3) >= 1


def test_status_names_a_missing_settings_row_as_config_does(history):
    """The settings row gone (a hand edit, a bad copy): status exited 0 and left out its
    editor line (--json: settings null), while config and commit refused in one line."""
    repo, _ = history
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("delete from config where key = 'settings'")
    con.close()
    for args in (["status"], ["status", "--json"], ["config"]):
        error_line(run(*args, cwd=repo), 1, "the repository has no editor settings; run "
                                            "`memstore fsck`")


def test_a_commit_row_of_no_id_is_named_by_fsck_and_gc(history):
    """HEAD's commits row with its id NULL (SQLite lets a TEXT primary key hold one): fsck
    was a TypeError traceback sorting the rows, gc a NotFoundError one deleting the row it
    took for unreachable. Both name the row in one line; fsck --repair rebuilds it."""
    repo, _ = history
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set id = NULL where rowid = (select max(rowid) from "
                    "commits)")
    con.close()
    said = "the index's commits table holds a row of no commit id (None); run `memstore fsck"
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert said in r.stdout, r.stdout
    before = snapshot(repo)
    for args in (["gc"], ["gc", "--dry-run"]):
        error_line(run(*args, cwd=repo), 1, said)
    assert snapshot(repo) == before
    assert run("fsck", "--repair", cwd=repo).exit_code == 0
    assert run("fsck", cwd=repo).exit_code == 0


def test_a_branch_naming_a_commit_the_index_lacks_is_damage_not_an_unknown_revision(history):
    """HEAD's commits row deleted: log and status named the damage, but show HEAD and merge
    (which resolve HEAD's commit id again) said "unknown revision '<64 hex digits>'", exit
    status 2, as if the user had typed a wrong id. A full id no ref names stays unknown."""
    repo, (_, c2, c3) = history
    run("branch", "side", c2, cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("delete from commits where id = ?", (c3,))
    con.close()
    said = f"commit {c3[:12]} is named but not in the index; run `memstore fsck`"
    for args in (["show", "HEAD"], ["merge", "side"], ["log"]):
        error_line(run(*args, cwd=repo), 1, said)
    other = c3[:-1] + ("0" if c3[-1] != "0" else "1")
    error_line(run("show", other, cwd=repo), 2, f"unknown revision '{other}'")


def test_fsck_names_a_commit_row_whose_base_is_not_its_records(history):
    """HEAD's commits row naming another base (its base_hash column; the record is sound):
    revert, which checks its parents' rows, refused with 'made on another base model',
    while fsck said ok; so did it for a row of another operation (revert and merge find
    the reverts by the rows). fsck names the row now; fsck --repair rebuilds it."""
    repo, (_, _, c3) = history
    for column, value in (("base_hash", "0" * 64), ("operation", "revert")):
        con = sqlite3.connect(repo / ".memstore" / "index.db")
        with con:
            con.execute(f"update commits set {column} = ? where id = ?", (value, c3))
        con.close()
        r = run("fsck", cwd=repo)
        assert r.exit_code == 1 and "Traceback" not in r.output, (column, r.output)
        assert (f"commit {c3[:12]}: index row disagrees with the record (parents, basis, "
                "time, base or operation)") in r.stdout, r.stdout
        assert run("fsck", "--repair", cwd=repo).exit_code == 0
        assert run("fsck", cwd=repo).exit_code == 0


def test_reset_from_a_commit_whose_row_is_damaged_moves_nothing(history):
    """HEAD's commits row with a time that is no number: reset HEAD~1 moved the branch, then
    failed listing the commits it leaves (a walk that reads that row's time); a failed
    command that had changed the branch."""
    repo, (_, _, c3) = history
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set time = 'garbage' where id = ?", (c3,))
    con.close()
    before = snapshot(repo)
    error_line(run("reset", "HEAD~1", cwd=repo), 1, f"the index row of commit {c3[:12]} is "
                                                      "damaged (its time 'garbage')")
    assert snapshot(repo) == before
