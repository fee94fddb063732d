"""What a git user types first, with a teammate sharing a remote: `switch -c NAME START`
(`checkout -b`), `branch -vv`, `log A..B`, and push's words for a remote it creates and for
a branch that is behind its remote's."""
from __future__ import annotations

import json

import pytest
from cli_support import copy_repo, error_line, history_template, ok, run, snapshot


@pytest.fixture
def shared(base, tmp_path):
    """A three-commit repository (ids C1..C3, main at C3) pushed to origin (a folder)."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    return repo, ids


def head(repo) -> dict:
    return json.loads(ok("status", "--json", cwd=repo).stdout)


def test_switch_c_creates_the_branch_at_start_and_switches_to_it(history):
    repo, (c1, c2, c3) = history
    out = ok("switch", "-c", "topic", "HEAD~2", cwd=repo).stdout
    assert out == "Switched to a new branch 'topic'\n"
    branches = json.loads(ok("branch", "--json", cwd=repo).stdout)
    assert [(b["name"], b["commit"], b["current"]) for b in branches] == [
        ("main", c3, False), ("topic", c1, True)]
    d = json.loads(ok("checkout", "-b", "fix", "main~1", "--json", cwd=repo).stdout)
    assert (d["branch"], d["commit"], d["created"]) == ("fix", c2, True)
    assert json.loads(ok("switch", "-c", "here", "--json", cwd=repo).stdout)["commit"] == c2


@pytest.mark.parametrize("args, code, says", [
    (("switch", "-c", "main", "HEAD~1"), 2, "branch 'main' already exists"),
    (("switch", "-c", "new", "nope"), 2, "unknown revision 'nope'"),
    (("switch", "-c", "a..b", "HEAD~1"), 2, "invalid branch name 'a..b'"),
    (("checkout", "-b", "new", "HEAD~9"), 2, "HEAD~9"),
    (("switch", "new", "HEAD~1"), 2, "START ('HEAD~1') is where -c creates the branch"),
])
def test_switch_c_refused_changes_nothing(history, args, code, says):
    repo, _ = history
    before = snapshot(repo)
    error_line(run(*args, cwd=repo), code, says)
    assert snapshot(repo) == before


def ids(repo, *args) -> list[str]:
    return [c["id"] for c in json.loads(ok("log", "--json", *args, cwd=repo).stdout)]


def test_log_a_dot_dot_b_lists_what_b_reaches_and_a_does_not(history):
    repo, (c1, c2, c3) = history
    assert ids(repo, f"{c1[:8]}..main") == [c3, c2]
    assert ids(repo, "HEAD~2..HEAD~1") == [c2]
    assert ids(repo, "HEAD~1..") == [c3]  # A.. is A..HEAD
    ok("switch", "--detach", "HEAD~2", cwd=repo)
    assert ids(repo, "..main") == [c3, c2]  # ..B is HEAD..B
    assert ids(repo, "main..") == [] and ids(repo, "main..main") == []
    assert ids(repo, "-n", "1", "..main") == [c3]
    r = ok("log", "--oneline", "main..HEAD", cwd=repo)
    assert r.stdout == "" and r.stderr == "no commits in main..HEAD\n"
    out = ok("log", "--oneline", "--graph", "..main", cwd=repo).stdout.splitlines()
    assert [line.split()[1] for line in out] == [c3[:12], c2[:12]]


@pytest.mark.parametrize("rev, says", [
    ("nope..main", "unknown revision 'nope'"),
    ("main..nope", "unknown revision 'nope'"),
    ("nope...main", "unknown revision 'nope'"),
    ("main...nope", "unknown revision 'nope'"),
    ("a..b..c", "a range is A..B"),
    ("a...b..c", "or A...B (what either has that the other lacks)"),
])
def test_log_refuses_a_bad_range_in_one_line(history, rev, says):
    repo, _ = history
    error_line(run("log", rev, cwd=repo), 2, says)


def test_log_a_dot_dot_dot_b_lists_what_either_side_has_as_gits(history, base):
    """`log A...B` (git's symmetric difference) was refused: it lists the commits either
    side reaches that the other does not, newest first over both; --left-right marks the
    side (`<` A's, `>` B's) before the id, or as the graph's `*`; --json says the side."""
    from cli_support import facts_files, last_line

    repo, (c1, c2, c3) = history
    ok("switch", "-c", "side", c1, cwd=repo)
    d = last_line(ok("commit", facts_files(base)["c"], "-m", "side d", cwd=repo))
    ok("switch", "main", cwd=repo)
    rows = json.loads(ok("log", "--json", "main...side", cwd=repo).stdout)
    assert [(r["id"], r["side"]) for r in rows] == [(d, "right"), (c3, "left"), (c2, "left")]
    out = ok("log", "--oneline", "--left-right", "side...", cwd=repo).stdout  # side...HEAD
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["<", d[:12]], [">", c3[:12]], [">", c2[:12]]]
    text = ok("log", "--left-right", "main...side", cwd=repo).stdout
    assert f"commit > {d}" in text and f"commit < {c3}" in text
    drawn = ok("log", "--oneline", "--graph", "--left-right", "main...side", cwd=repo).stdout
    assert [line.split()[:2] for line in drawn.splitlines() if line] == [
        [">", d[:12]], ["<", c3[:12]], ["<", c2[:12]]], drawn
    assert ids(repo, "-n", "1", "main...side") == [d]
    assert ids(repo, f"{c1[:8]}...main") == [c3, c2]  # C1 is main's: one side only
    plain = ok("log", "--oneline", "--left-right", "side..main", cwd=repo).stdout
    assert [line.split()[0] for line in plain.splitlines()] == [">", ">"]  # git's, too
    r = ok("log", "--oneline", "main...main", cwd=repo)
    assert r.stdout == "" and r.stderr == "no commits in main...main\n"
    assert "side" not in ok("log", "--json", "side..main", cwd=repo).stdout


def test_log_ranges_of_unrelated_histories_are_gits(history):
    """No merge base: A..B lists all of B, A...B all of both (git's)."""
    from memstore.store.repository import Repository

    repo, (c1, c2, c3) = history
    o = Repository.open(repo).write_commit([], parents=[], basis=None, message="other",
                                           ref="refs/heads/other", expected=None).id
    assert ids(repo, "main..other") == [o] and ids(repo, "other..main") == [c3, c2, c1]
    rows = json.loads(ok("log", "--json", "main...other", cwd=repo).stdout)
    assert [(r["id"], r["side"]) for r in rows] == [
        (o, "right"), (c3, "left"), (c2, "left"), (c1, "left")]


def test_log_range_reads_the_excluded_side_from_the_records(history):
    """C2's index row damaged to name C3 as its parent (the records sound): on the rows,
    C3 is an ancestor of C2, and `log C2..C3` listed nothing, hiding C3; the excluded side
    is walked on the records, so the damage is named instead."""
    import sqlite3

    repo, (_, c2, c3) = history
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set parents = ? where id = ?", [json.dumps([c3]), c2])
    con.close()
    error_line(run("log", f"{c2}..{c3}", cwd=repo), 1, "index row disagrees with the record")
    error_line(run("log", f"{c2}...{c3}", cwd=repo), 1, "index row disagrees with the record")


def test_log_range_graph_draws_no_lane_to_a_parent_the_range_leaves_out(history, base):
    """`log --graph side..main` after merging side drew the merge's second parent's lane
    (`|\\` then `* |` beside every commit) to a commit the range leaves out, a lane that
    never ended; git draws none. `Merge:` still names both recorded parents, and -n keeps
    a lane to a commit of the range it cuts."""
    from cli_support import facts_files, last_line

    repo, (c1, c2, c3) = history
    ok("switch", "-c", "side", c1, cwd=repo)
    d = last_line(ok("commit", facts_files(base)["c"], "-m", "side c", cwd=repo))
    ok("switch", "main", cwd=repo)
    m = last_line(ok("merge", "side", "-m", "merge side", cwd=repo))
    lines = ok("log", "--oneline", "--graph", "side..main", cwd=repo).stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["*", m[:12]], ["*", c3[:12]],
                                                    ["*", c2[:12]]], lines
    text = ok("log", "--graph", "side..main", cwd=repo).stdout
    assert f"Merge:  {c3[:12]} {d[:12]}" in text and "|\\" not in text
    cut = ok("log", "--oneline", "--graph", "-n", "1", f"{c2}..main", cwd=repo).stdout
    assert cut.splitlines()[1] == "|\\", cut  # C3 and D are in the range: both lanes


def test_a_push_that_creates_the_remote_says_so(history, tmp_path):
    """A mistyped folder would silently become a new remote: the push that creates one
    says so on stderr (and `created` in --json); later pushes to it do not."""
    repo, _ = history
    url = tmp_path / "new-remote"
    ok("remote", "add", "origin", url, cwd=repo)
    ok("branch", "old", "HEAD~1", cwd=repo)
    first = json.loads((r := ok("push", "--json", "origin", "old", cwd=repo)).stdout)
    assert first["created"] is True and r.stderr == f"created a new remote at {url}\n"
    r = ok("push", "origin", "main", cwd=repo)  # there now: not said again
    assert r.stderr == "" and "[new branch]" in r.stdout
    assert json.loads(ok("push", "--json", cwd=repo).stdout)["created"] is False
    ok("tag", "v1", cwd=repo)
    ok("remote", "add", "tags", tmp_path / "tags-remote", cwd=repo)
    r = ok("push", "--tags", "tags", cwd=repo)
    assert r.stderr == f"created a new remote at {tmp_path / 'tags-remote'}\n"
    assert json.loads(ok("push", "--tags", "tags", "--json", cwd=repo).stdout)["created"] is False


def test_a_push_refused_after_it_created_the_remote_says_it_created_it(history, tmp_path):
    """The marker is written before the commits are read and sent: a push refused there (a
    commit object corrupt here) left the new remote made and unsaid, and the next push
    found it there and said nothing (a mistyped folder went unnoticed). The refusal says it
    first, for a branch and for tags."""
    repo, (_, c2, _) = history
    obj = repo / ".memstore" / "objects" / c2[:2] / c2[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-5] + b"xxxxx")
    ok("tag", "v1", cwd=repo)
    for remote, args in (("origin", ["main"]), ("tags", ["--tags"])):
        url = tmp_path / remote
        ok("remote", "add", remote, url, cwd=repo)
        r = run("push", remote, *args, cwd=repo)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        said, error = r.stderr.splitlines()
        assert said == f"created a new remote at {url}" and error.startswith(
            "memstore: error: ") and "is corrupt" in error, r.stderr
        assert (url / "memstore-remote.json").is_file()  # (made indeed)
        again = run("push", remote, *args, cwd=repo)  # there now: not said again
        assert again.stderr.splitlines()[0].startswith("memstore: error: "), again.stderr


def test_a_push_behind_the_remote_branch_says_by_how_much(shared, tmp_path):
    """After a local reset, the branch is an ancestor of the remote's: not 'not an
    ancestor … fetch first and merge' (a merge brings nothing to merge), but how far behind,
    as status says; nothing moves there."""
    from remote_support import remote_files

    repo, _ = shared
    ok("reset", "HEAD~2", cwd=repo)
    on_remote = remote_files(str(tmp_path / "remote"))
    line = error_line(run("push", cwd=repo), 1, "your branch 'main' is behind origin/main by "
                      "2 commit(s)")
    assert "push --force to drop them" in line and "not an ancestor" not in line
    assert remote_files(str(tmp_path / "remote")) == on_remote
    assert "created" not in run("push", "--force", cwd=repo).stderr


def test_branch_vv_shows_each_branch_upstream_and_how_far_ahead_and_behind(shared):
    repo, (c1, c2, c3) = shared
    ok("branch", "topic", "HEAD~2", cwd=repo)
    ok("push", "-u", "origin", "topic", cwd=repo)
    ok("switch", "topic", cwd=repo)
    ok("reset", "main", cwd=repo)  # topic: 2 commits ahead of origin/topic
    ok("switch", "main", cwd=repo)
    ok("reset", "HEAD~1", cwd=repo)  # main: 1 behind origin/main
    ok("branch", "old", c1, cwd=repo)
    ok("push", "origin", "old", cwd=repo)
    ok("branch", "--set-upstream-to", "origin/old", "old", cwd=repo)
    ok("branch", "-d", "-r", "origin/old", cwd=repo)  # old: its upstream gone
    ok("branch", "solo", c1, cwd=repo)  # no origin/solo: no upstream
    assert ok("branch", "-vv", cwd=repo).stdout.splitlines() == [
        f"* main                 {c2[:12]} [origin/main: behind 1] facts b",
        f"  old                  {c1[:12]} [origin/old: gone] facts a",
        f"  solo                 {c1[:12]} facts a",
        f"  topic                {c3[:12]} [origin/topic: ahead 2] facts c"]
    assert ok("branch", "-v", cwd=repo).stdout == ok("branch", cwd=repo).stdout
    listed = json.loads(ok("branch", "-vv", "--json", cwd=repo).stdout)
    assert [(b["name"], b["upstream"], b["ahead"], b["behind"], b["gone"]) for b in listed] == [
        ("main", "origin/main", 0, 1, False), ("old", "origin/old", None, None, True),
        ("solo", None, None, None, False), ("topic", "origin/topic", 2, 0, False)]
    assert "upstream" not in json.loads(ok("branch", "--json", cwd=repo).stdout)[0]
    assert ok("status", cwd=repo).stdout.splitlines()[1].startswith(
        "Your branch is behind 'origin/main' by 1 commit")  # the same count status gives


def test_ahead_and_behind_are_counted_on_the_records(shared):
    """main reset 2 behind origin/main, then origin/main's commit C3's row damaged to name
    no parent: counted on the rows, `branch -vv` said 'ahead 1, behind 1' and status 'have
    diverged: 1 and 1'. branch -vv refuses in one line; status warns in one and shows no
    count (the rest of the status as before)."""
    import sqlite3

    repo, (c1, _, c3) = shared
    ok("reset", c1, cwd=repo)
    assert "[origin/main: behind 2]" in ok("branch", "-vv", cwd=repo).stdout
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set parents = '[]' where id = ?", [c3])
    con.close()
    said = f"commit {c3[:12]}: index row disagrees with the record"
    error_line(run("branch", "-vv", cwd=repo), 1, said)
    r = ok("status", cwd=repo)
    assert r.stderr.startswith(f"warning: {said}") and len(r.stderr.splitlines()) == 1
    assert "Your branch" not in r.stdout and r.stdout.startswith("On branch main\n")
    assert head(repo)["upstream"] is None


def test_branch_f_counts_what_a_detached_head_keeps_on_the_records(history):
    """HEAD detached at D3 (D1 ← D2 ← D3 on C1), topic at D2; D3's row damaged to skip D2
    and D1. `branch -f topic C1` counted on the rows that D2 and D1 were left (HEAD's
    history holds them): refused in one line now, topic not moved."""
    import sqlite3

    from memstore.store.repository import Repository

    repo, (c1, _, _) = history
    ok("switch", "--detach", c1, cwd=repo)
    r = Repository.open(repo)
    d = [c1]
    for i in range(3):
        d.append(r.write_commit([], parents=[d[-1]], basis=d[-1], message=f"d{i}").id)
    ok("branch", "topic", d[2], cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set parents = ? where id = ?", [json.dumps([c1]), d[3]])
    con.close()
    before = snapshot(repo)
    error_line(run("branch", "-f", "topic", c1, cwd=repo), 1,
               f"commit {d[3][:12]}: index row disagrees with the record")
    assert snapshot(repo) == before


def test_reset_and_switch_count_what_the_new_head_keeps_on_the_records(history):
    """HEAD detached at D2 (D1 ← D2 on C1, held by nothing else), E on D1 held by nothing;
    E's row damaged to skip D1. `reset E` and `switch --detach E` counted on the rows that
    D2 and D1 were left (E keeps D1): refused in one line now, before anything moves."""
    import sqlite3

    from memstore.store.repository import Repository

    repo, (c1, _, _) = history
    ok("switch", "--detach", c1, cwd=repo)
    r = Repository.open(repo)
    d1 = r.write_commit([], parents=[c1], basis=c1, message="d1").id
    d2 = r.write_commit([], parents=[d1], basis=d1, message="d2").id
    e = r.write_commit([], parents=[d1], basis=d1, message="e", ref=None).id
    left = json.loads(ok("reset", "--json", e, cwd=repo).stdout)["left_behind"]
    assert left == [d2]  # (sound rows: D1 is E's)
    ok("reset", d2, cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set parents = ? where id = ?", [json.dumps([c1]), e])
    con.close()
    before = snapshot(repo)
    for args in (["reset", e], ["switch", "--detach", e]):
        error_line(run(*args, cwd=repo), 1, f"commit {e[:12]}: index row disagrees")
        assert snapshot(repo) == before, args


def test_branch_vv_marks_a_diverged_branch_as_git_does():
    from cli.commands.refs import tracking_mark

    up = {"name": "origin/main", "commit": "c" * 64, "ahead": 1, "behind": 2, "gone": False}
    assert tracking_mark(up) == "[origin/main: ahead 1, behind 2] "
    assert tracking_mark({**up, "ahead": 0, "behind": 0}) == "[origin/main] "
    assert tracking_mark(None) == ""


def test_branch_v_lists_and_takes_no_name(history):
    repo, _ = history
    before = snapshot(repo)
    error_line(run("branch", "-vv", "new", cwd=repo), 2, "-v/-vv list the branches")
    assert snapshot(repo) == before


def test_log_range_refuses_an_excluded_ref_naming_no_commit_here(history):
    """A tag damaged to name a commit the index does not hold: `log v1..main` listed all of
    main (excluding nothing); it is named, as `log v1` names it."""
    import sqlite3

    repo, _ = history
    ok("tag", "v1", "HEAD~1", cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update refs set target = ? where name = 'refs/tags/v1'", ["ab" * 32])
    con.close()
    error_line(run("log", "v1..main", cwd=repo), 1, f"commit {'ab' * 6} is named but not in "
               "the index")
