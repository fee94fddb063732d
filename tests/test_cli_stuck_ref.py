"""A ref left on a commit whose record is gone: HEAD's commit object corrupt (a bad disk),
`fsck --repair` rebuilds the index without that commit, and the branch still names it. No
`reset` worked there (each read the commit it leaves), `log` and `HEAD~1` cannot read past
it, and nothing said which commit to go back to: the user was stuck. Moving a ref needs
nothing of the commit it leaves, and fsck names the way back."""
from __future__ import annotations

import json
import sqlite3

from cli_support import copy_repo, error_line, history_template, log_json, ok, run, snapshot


def _corrupt_head(base, tmp_path):
    """A three-commit repository whose newest commit's object is corrupt."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    c3 = ids[2]
    obj = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-5] + b"xxxxx")
    return repo, ids


def _ref_line(result, ref: str) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith(f"ref {ref} "))


def test_the_current_branch_stuck_after_a_repair_is_reset_back(base, tmp_path):
    repo, (c1, c2, c3) = _corrupt_head(base, tmp_path)
    repaired = run("fsck", "--repair", cwd=repo)
    assert repaired.exit_code == 1 and "Traceback" not in repaired.output
    line = _ref_line(repaired, "refs/heads/main")
    assert line.endswith(f"which is not a known commit; it named {c2[:12]} before: "
                         f"`memstore reset {c2[:12]}` moves it back"), line
    # its parents are unknown now, not none
    error_line(run("reset", "HEAD~1", cwd=repo), 1, f"commit {c3[:12]} is named but not in "
               "the index")
    moved = ok("reset", "--json", c2, cwd=repo)  # the full id, as fsck's short one below
    d = json.loads(moved.stdout)
    assert (d["branch"], d["commit"], d["was"], d["left_behind"]) == ("main", c2, c3, [])
    assert d["warning"].startswith(f"left commit {c3[:12]}, which is not in the index")
    assert [c["id"] for c in log_json(repo)] == [c2, c1]  # no good commit lost
    ok("gc", cwd=repo)  # removes the corrupt object nothing reaches now
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_another_branch_and_a_detached_head_stuck_after_a_repair(base, tmp_path):
    repo, (c1, c2, c3) = _corrupt_head(base, tmp_path)
    ok("tag", "v3", cwd=repo)
    ok("switch", "--detach", "HEAD", cwd=repo)
    ok("branch", "other", c1, cwd=repo)
    repaired = run("fsck", "--repair", cwd=repo)
    assert repaired.exit_code == 1 and "Traceback" not in repaired.output
    assert _ref_line(repaired, "refs/heads/main").endswith(
        f"it named {c2[:12]} before: `memstore branch -f main {c2[:12]}` moves it back "
        "(`memstore branch -D main` deletes it)")
    assert _ref_line(repaired, "HEAD").endswith(  # detached since it was on main
        "no earlier snapshot shows it on a commit here: `memstore switch BRANCH` puts it "
        "back on a branch")
    assert _ref_line(repaired, "refs/tags/v3").endswith(
        "no earlier snapshot shows it on a commit here: `memstore tag -d v3` then "
        "`memstore tag v3 REV` move it back")
    ok("switch", "other", cwd=repo)  # off the detached commit: nothing of it is read
    error_line(run("branch", "-f", "other", c2, cwd=repo), 2, "cannot force-move the current "
               "branch 'other': `memstore reset")
    d = json.loads(ok("branch", "-f", "--json", "main", c2[:12], cwd=repo).stdout)
    assert (d["moved"], d["commit"], d["was"], d["left_behind"]) == ("main", c2, c3, [])
    ok("tag", "-d", "v3", cwd=repo)
    ok("gc", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert [c["id"] for c in log_json(repo, "main")] == [c2, c1]


def test_a_reset_off_a_corrupt_commit_before_the_repair_names_no_way_back_to_it(base, tmp_path):
    """Before `fsck --repair`, a reset off HEAD's corrupt commit moved, but its warning
    said `memstore reset X` goes back to it, which is refused (its record is corrupt)."""
    repo, (c1, c2, c3) = _corrupt_head(base, tmp_path)
    d = json.loads(ok("reset", "--json", c2, cwd=repo).stdout)
    assert d["left_behind"] == [c3] and f"`memstore reset {c3[:12]}`" not in d["warning"]
    assert d["warning"] == (f"leaving 1 commit(s) that no branch or tag holds, the newest "
                            f"{c3[:12]}, whose record is corrupt or missing (`memstore fsck` "
                            "names it; no reset goes back to it); gc removes them")
    error_line(run("reset", c3, cwd=repo), 1, "is corrupt")  # (it is refused indeed)
    ok("gc", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert [c["id"] for c in log_json(repo)] == [c2, c1]


def test_branch_f_moves_a_branch_that_exists_as_gits(base, tmp_path):
    """`branch -f NAME REV` (git's way to move a branch that is not checked out) was 'No
    such option'; it moves NAME, warns of what it leaves with the way back, and refuses the
    current branch (`reset` moves that) and other options."""
    template, (c1, c2, c3) = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("branch", "topic", cwd=repo)  # at c3
    before = snapshot(repo)
    error_line(run("branch", "-f", "main", c1, cwd=repo), 2, "cannot force-move the current "
               f"branch 'main': `memstore reset {c1}` moves it")
    error_line(run("branch", "-f", "-d", "topic", cwd=repo), 2, "-f moves a branch")
    assert snapshot(repo) == before
    moved = ok("branch", "-f", "topic", "HEAD~2", cwd=repo)
    assert moved.stdout == f"Moved branch topic to {c1[:12]} (was {c3[:12]})\n"
    assert moved.stderr == ""  # main still holds c2 and c3
    ok("switch", "topic", cwd=repo)
    d = json.loads(ok("branch", "-f", "--json", "main", c1, cwd=repo).stdout)
    assert (d["moved"], d["commit"], d["was"], d["left_behind"]) == ("main", c1, c3, [c3, c2])
    assert d["warning"] == (f"leaving 2 commit(s) that no branch or tag holds, the newest "
                            f"{c3[:12]}; `memstore branch -f main {c3[:12]}` goes back (gc "
                            "removes them once no reflog entry names them: 30 days)")
    assert ok("branch", "-f", "main", c3[:12], cwd=repo).stderr == ""  # the way back
    assert [c["id"] for c in log_json(repo, "main")] == [c3, c2, c1]


def test_branch_f_refused_by_a_damaged_row_of_what_it_leaves_moves_nothing(base, tmp_path):
    """branch -f read the history it leaves after the move: a parents loop there (a damaged
    row) made it exit 1 with the branch moved, an error path that changed the repository."""
    template, (c1, c2, c3) = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("branch", "topic", cwd=repo)
    ok("switch", "-c", "other", c1, cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    con.execute("update commits set parents = ? where id = ?", [json.dumps([c3]), c2])
    con.commit()
    con.close()
    before = snapshot(repo)
    # (the rows loop; C2's record names C1: the walk on the records names C2's row)
    error_line(run("branch", "-f", "topic", c1, cwd=repo), 1,
               f"commit {c2[:12]}: index row disagrees with the record")
    assert snapshot(repo) == before


def test_a_switch_off_a_detached_head_refused_by_a_damaged_row_moves_nothing(base, tmp_path):
    """A switch from a detached HEAD read what HEAD leaves after it moved: a parents loop
    there made `switch -c NAME START` exit 1 with NAME created and HEAD on it (a plain
    switch onto a branch, or --detach, the same with HEAD moved)."""
    template, (c1, c2, c3) = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("switch", "--detach", "HEAD", cwd=repo)
    ok("branch", "-f", "main", c1, cwd=repo)  # only HEAD holds C2 and C3
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    con.execute("update commits set parents = ? where id = ?", [json.dumps([c3]), c2])
    con.commit()
    con.close()
    before = snapshot(repo)
    for args in (["-c", "new", c1], ["main"], ["--detach", c1]):
        error_line(run("switch", *args, cwd=repo), 1,
                   f"commit {c2[:12]}: index row disagrees with the record")
        assert snapshot(repo) == before, args
    ok("switch", "-c", "here", cwd=repo)  # HEAD does not move off its commit: nothing read


def test_branch_f_warns_of_nothing_a_detached_head_still_holds(base, tmp_path):
    """With HEAD detached on the branch's commit, branch -f warned that gc removes the
    commits it leaves; HEAD holds them and gc keeps them."""
    template, (c1, c2, c3) = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("branch", "topic", cwd=repo)
    ok("switch", "--detach", "topic", cwd=repo)
    ok("branch", "-f", "main", c1, cwd=repo)
    d = json.loads(ok("branch", "-f", "--json", "topic", c1, cwd=repo).stdout)
    assert (d["moved"], d["was"], d["left_behind"], d["warning"]) == ("topic", c3, [], None)
    ok("gc", cwd=repo)
    assert [c["id"] for c in log_json(repo, "HEAD")] == [c3, c2, c1]
    ok("switch", "main", cwd=repo)  # HEAD leaves them now: the switch says so, as before
    ok("branch", "-f", "topic", c2, cwd=repo)
    d = json.loads(ok("branch", "-f", "--json", "topic", c1, cwd=repo).stdout)
    assert d["left_behind"] == [c2] and d["warning"] is not None


def test_the_way_back_skips_a_commit_whose_record_is_damaged_too(base, tmp_path):
    """After a repair left main on C3, C2's object was damaged as well: fsck named C2 as
    corrupt and, on the ref's line, `memstore reset C2` as the way back, which is refused.
    The way back is the last commit before whose record can be read."""
    repo, (c1, c2, _c3) = _corrupt_head(base, tmp_path)
    run("fsck", "--repair", cwd=repo)
    obj = repo / ".memstore" / "objects" / c2[:2] / c2[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-5] + b"xxxxx")
    checked = run("fsck", cwd=repo)
    assert f"object {c2} is corrupt (its content does not match its name)" in checked.stdout
    line = _ref_line(checked, "refs/heads/main")
    assert line.endswith(f"it named {c1[:12]} before: `memstore reset {c1[:12]}` moves it "
                         "back"), line
    ok("reset", c1[:12], cwd=repo)  # the way named works


def test_moving_a_stuck_ref_further_back_warns_of_the_good_commits_it_held(base, tmp_path):
    """A branch on a commit the index does not hold left its good commits unwarned: reset
    (or branch -f) past C2 said only that C3 is not in the index (left_behind []), and the
    next gc removed C2 with no word. What it held is what it named before (the snapshots)."""
    for how in ("reset", "branch -f"):
        repo, (c1, c2, c3) = _corrupt_head(base, tmp_path / how.replace(" ", ""))
        run("fsck", "--repair", cwd=repo)
        if how == "branch -f":
            ok("switch", "--detach", c1, cwd=repo)  # off main, which stays on C3
            d = json.loads(ok("branch", "-f", "--json", "main", c1, cwd=repo).stdout)
        else:
            d = json.loads(ok("reset", "--json", c1, cwd=repo).stdout)
        assert (d["was"], d["left_behind"]) == (c3, [c2]), how
        assert f"`memstore {how} {'main ' if how != 'reset' else ''}{c2[:12]}` goes back" \
            in d["warning"], d["warning"]
        ok(*how.split(), *(["main"] if how != "reset" else []), c2[:12], cwd=repo)
        assert [c["id"] for c in log_json(repo, "main")] == [c2, c1]


def test_a_reset_off_a_stuck_ref_refused_by_a_damaged_row_of_what_it_held_moves_nothing(
        base, tmp_path):
    """Off a commit the index does not hold, reset reads the history the branch named
    before (eaa62e4) after the move: a parents loop there made it exit 1 with the branch
    moved, an error path that changed the repository (branch -f reads it before)."""
    repo, (c1, c2, _c3) = _corrupt_head(base, tmp_path)
    run("fsck", "--repair", cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    con.execute("update commits set parents = ? where id = ?", [json.dumps([c2]), c2])
    con.commit()
    con.close()
    before = snapshot(repo)
    error_line(run("reset", c1, cwd=repo), 1, "run `memstore fsck --repair`")
    assert snapshot(repo) == before


def _stuck_detached_head(base, tmp_path):
    """HEAD detached on C3 after naming C2 (main back on C1: only HEAD held C2 and C3), then
    C3's object corrupt and `fsck --repair` run: HEAD names a commit the index lacks, and
    the way back is C2."""
    template, (c1, c2, c3) = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("switch", "--detach", c2, cwd=repo)
    ok("reset", c3, cwd=repo)
    ok("branch", "-f", "main", c1, cwd=repo)
    obj = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-5] + b"xxxxx")
    repaired = run("fsck", "--repair", cwd=repo)
    assert _ref_line(repaired, "HEAD").endswith(f"`memstore reset {c2[:12]}` moves it back")
    return repo, (c1, c2, c3)


def test_a_switch_off_a_stuck_detached_head_warns_of_the_good_commits_it_held(base, tmp_path):
    """eaa62e4 warned of what a stuck ref held before for reset and branch -f, not for a
    switch off a detached HEAD: `switch main` left C2 held by nothing, unwarned (left_behind
    []), and the next gc removed it with no word."""
    repo, (_c1, c2, _c3) = _stuck_detached_head(base, tmp_path)
    d = json.loads(ok("switch", "--json", "main", cwd=repo).stdout)
    assert d["left_behind"] == [c2], d
    assert f"`memstore branch NAME {c2[:12]}` keeps them" in d["warning"], d["warning"]


def test_a_stuck_detached_head_reset_back_warns_of_nothing_it_is_on(base, tmp_path):
    """`reset C2`, fsck's way back for a detached HEAD on a commit the index lacks, warned
    that C2 is left, no branch or tag holding it, and that `reset C2` goes back: HEAD is on
    it, and gc keeps it. What the new HEAD reaches is not left behind."""
    repo, (c1, c2, c3) = _stuck_detached_head(base, tmp_path)
    d = json.loads(ok("reset", "--json", c2, cwd=repo).stdout)
    assert (d["commit"], d["was"], d["left_behind"]) == (c2, c3, []), d
    assert d["warning"].startswith(f"left commit {c3[:12]}, which is not in the index")
    assert "no branch or tag holds" not in d["warning"], d["warning"]
    ok("gc", cwd=repo)
    assert [c["id"] for c in log_json(repo, "HEAD")] == [c2, c1]


def test_a_switch_keeping_a_stuck_detached_head_reads_nothing_it_held(base, tmp_path):
    """What a stuck detached HEAD named before is read (damage refusing) only where the
    switch moves HEAD off its commit: `switch -c NAME` keeps it there, and a damaged row
    of C2 refused it ('run memstore fsck --repair'). It is refused now for what it makes:
    a branch on C3, which the index does not hold (no ref is made on such a commit), in
    one line naming HEAD and C3, not C2's row, nothing changed."""
    repo, (_c1, c2, c3) = _stuck_detached_head(base, tmp_path)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    con.execute("update commits set parents = ? where id = ?", [json.dumps([c2]), c2])
    con.commit()
    con.close()
    before = snapshot(repo)
    error_line(run("switch", "main", cwd=repo), 1, "run `memstore fsck --repair`")
    assert snapshot(repo) == before
    error_line(run("switch", "--json", "-c", "kept", cwd=repo), 1,
               f"cannot create branch 'kept': 'HEAD' names commit {c3[:12]}, which is not "
               "in the index; run `memstore fsck`")
    assert snapshot(repo) == before


def test_a_corrupt_request_list_after_the_repair_is_named_not_sent_back_to_it(base, tmp_path):
    """HEAD's request list corrupt: `fsck --repair` leaves its rows out ("requests not
    indexed"), and `status` then warned `run memstore fsck --repair`, the command just run
    (a loop). It names the object, what is lost, and the way off the commit."""
    template, (c1, c2, c3) = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    objects = repo / ".memstore" / "objects"
    record = json.loads((objects / c3[:2] / c3[2:]).read_bytes())
    oid = record["update_sets"][0]["requests"]
    obj = objects / oid[:2] / oid[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-5] + b"xxxxx")
    repaired = run("fsck", "--repair", cwd=repo)
    assert repaired.exit_code == 1 and f"requests not indexed: {oid}" in repaired.output
    status = ok("status", cwd=repo)
    warning = next(line for line in status.output.splitlines() if line.startswith("warning:"))
    assert warning == (f"warning: commit {c3[:12]}: its facts cannot be counted or listed "
                       f"(object {oid} is corrupt (its content does not match its name): its "
                       "request list, which `fsck --repair` cannot restore); `memstore reset "
                       "REV` onto a commit before it leaves it"), warning
    assert "facts   not counted" in status.output
    ok("reset", "HEAD~1", cwd=repo)  # the way it names works
    assert "warning" not in ok("status", cwd=repo).output
    assert [c["id"] for c in log_json(repo)] == [c2, c1]
