"""The reflog, as git's: every move of HEAD, a branch or a remote-tracking branch recorded
in the transaction that moves it (a refused command records none), `reflog [show] [REF]`,
`REF@{N}` in every command that takes a revision, gc keeping what the log names, fsck
checking the rows and `fsck --repair` dropping damaged ones."""
from __future__ import annotations

import json
import sqlite3
import time

from cli_support import error_line, model_dir, ok, run, snapshot


def entries(repo, *args: str) -> list[dict]:
    return json.loads(ok("reflog", "show", *args, "--json", cwd=repo).stdout)


def messages(repo, *args: str) -> list[str]:
    return [e["message"] for e in entries(repo, *args)]


def sql(repo, statement: str, params=()) -> list:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    try:
        rows = con.execute(statement, params).fetchall()
        con.commit()
    finally:
        con.close()
    return rows


def test_commits_resets_branches_and_switches_are_logged_as_git_words_them(history):
    repo, (c1, c2, c3) = history
    assert messages(repo) == ["commit: facts c", "commit: facts b", "commit (initial): facts a"]
    assert messages(repo, "main") == messages(repo)  # HEAD is on main: both logged
    ok("reset", "HEAD~2", cwd=repo)
    ok("branch", "topic", c2, cwd=repo)
    ok("switch", "topic", cwd=repo)
    ok("branch", "-m", "topic", "t2", cwd=repo)
    ok("switch", "-c", "side", c3, cwd=repo)
    ok("switch", "--detach", c1, cwd=repo)
    head = entries(repo)
    assert [e["message"] for e in head[:5]] == [
        f"checkout: moving from side to {c1}", "checkout: moving from t2 to side",
        "Branch: renamed refs/heads/topic to refs/heads/t2",
        "checkout: moving from main to topic", "reset: moving to HEAD~2"]
    assert [(e["old"], e["new"]) for e in head[:5]] == [
        (c3, c1), (c2, c3), (c2, c2), (c1, c2), (c3, c1)]
    assert head[0]["selector"] == "HEAD@{0}" and head[0]["author"]
    assert messages(repo, "t2") == ["Branch: renamed refs/heads/topic to refs/heads/t2",
                                    f"branch: Created from {c2}"]
    assert messages(repo, "side") == [f"branch: Created from {c3}"]
    assert messages(repo, "main")[0] == "reset: moving to HEAD~2"
    text = ok("reflog", cwd=repo).stdout.splitlines()  # `reflog` alone is `reflog show HEAD`
    assert text[0] == f"{c1[:12]} HEAD@{{0}}: checkout: moving from side to {c1}"
    assert ok("reflog", "main", "-n", "1", cwd=repo).stdout == \
        f"{c1[:12]} main@{{0}}: reset: moving to HEAD~2\n"
    assert run("reflog", "exists", "t2", cwd=repo).exit_code == 0
    assert run("reflog", "exists", "topic", cwd=repo).exit_code == 1  # renamed away
    ok("branch", "-D", "t2", cwd=repo)  # a deleted branch's log goes, HEAD's stays
    assert run("reflog", "exists", "t2", cwd=repo).exit_code == 1
    assert "checkout: moving from main to topic" in messages(repo)
    ok("tag", "v1", cwd=repo)  # tags are not logged, as git's default
    assert sql(repo, "select count(*) from reflog where ref like 'refs/tags/%'") == [(0,)]


def test_a_refused_command_logs_nothing(history):
    repo, (c1, _, _) = history
    ok("branch", "topic", c1, cwd=repo)
    before = snapshot(repo)
    for args, code in ((["reset", "nosuch"], 2), (["branch", "topic"], 2),
                       (["switch", "nosuch"], 2), (["branch", "-d", "main"], 1),
                       (["reset", "main@{9}"], 2)):
        assert run(*args, cwd=repo).exit_code == code, args
        assert snapshot(repo) == before, args


def test_ref_at_n_names_earlier_values_wherever_a_revision_is_read(history):
    """`reset main@{1}` undoes a reset; `@{N}` is the current branch's; `~`/`^` compose."""
    repo, (c1, c2, c3) = history
    ok("reset", c1, cwd=repo)
    assert json.loads(ok("show", "main@{1}", "--json", cwd=repo).stdout)["id"] == c3
    assert json.loads(ok("show", "@{1}~1", "--json", cwd=repo).stdout)["id"] == c2
    assert [c["id"] for c in json.loads(ok("log", "HEAD@{1}^", "--json", cwd=repo).stdout)] \
        == [c2, c1]
    ok("reset", "main@{1}", cwd=repo)  # the undo
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["head"] == c3
    assert messages(repo)[0] == "reset: moving to main@{1}"
    ok("branch", "back", "HEAD@{1}", cwd=repo)  # before the undo: c1
    assert json.loads(ok("show", "back", "--json", cwd=repo).stdout)["id"] == c1
    ok("switch", "--detach", "main@{3}", cwd=repo)  # c2
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["head"] == c2
    error_line(run("show", "main@{5}", cwd=repo), 2, "log for 'main' only has 5 entries")
    error_line(run("show", "nosuch@{0}", cwd=repo), 2, "no reflog for 'nosuch'")
    error_line(run("show", "main@{x}", cwd=repo), 2, "unknown revision")


def test_gc_keeps_what_the_reflog_names_until_it_expires(history):
    """A reset's dropped commits survive gc (git's 90 days), and the undo works after it;
    `reflog expire --expire=now --all` then gc removes them, as git's."""
    repo, (c1, c2, c3) = history
    ok("reset", c1, cwd=repo)
    assert "removed 0 commits" in ok("gc", cwd=repo).stdout
    ok("reset", "main@{1}", cwd=repo)
    ok("fsck", "--quick", cwd=repo)
    ok("reset", c1, cwd=repo)
    # an entry older than 30 days naming a commit no ref reaches expires, as git's
    # gc.reflogExpireUnreachable; older than 90 days any entry does
    sql(repo, "update reflog set time = ?", [time.time() - 40 * 86400])
    report = json.loads(ok("gc", "--json", cwd=repo).stdout)
    assert set(report["commits"]) == {c2, c3} and report["reflog_entries"] > 0
    assert all(e["new"] == c1 for e in entries(repo, "main"))
    error_line(run("show", "main@{9}", cwd=repo), 2, "log for 'main' only has")


def test_reflog_expire_and_delete(history):
    repo, (c1, _, _) = history
    ok("reset", c1, cwd=repo)
    n = len(entries(repo))
    assert json.loads(ok("reflog", "expire", "--all", "--json", cwd=repo).stdout)["expired"] \
        == []  # all younger than 30 days
    out = json.loads(ok("reflog", "expire", "--expire=now", "--dry-run", "main", "--json",
                        cwd=repo).stdout)
    assert out["dry_run"] and len(out["expired"]) == 4 and len(entries(repo)) == n
    ok("reflog", "delete", "HEAD@{0}", "HEAD@{1}", cwd=repo)
    assert len(entries(repo)) == n - 2
    ok("tag", "v1", cwd=repo)
    before = snapshot(repo)
    error_line(run("reflog", "delete", "HEAD@{0}", "HEAD@{99}", cwd=repo), 2,
               "only has")
    error_line(run("reflog", "delete", "main", cwd=repo), 2, "names no reflog entry")
    # (git's 'no reflog for 'nope@{0}'', exit 255, for both)
    error_line(run("reflog", "delete", "nope@{0}", cwd=repo), 2, "no reflog for 'nope': it "
               "names no branch")
    error_line(run("reflog", "delete", "v1@{0}", cwd=repo), 2, "no reflog for 'v1': a tag")
    error_line(run("reflog", "expire", "--expire=someday", "--all", cwd=repo), 2, "--expire")
    error_line(run("reflog", "expire", cwd=repo), 2, "--all")
    assert snapshot(repo) == before
    assert "deleted 6 reflog entries" in ok("reflog", "expire", "--expire=now", "--all",
                                            cwd=repo).stdout
    assert entries(repo) == [] and "removed 2 commits" in ok("gc", cwd=repo).stdout


def test_fsck_names_damaged_rows_and_repair_drops_them(history):
    """A malformed row or one naming a commit the store lacks is a problem fsck names;
    `reflog` on a malformed row is one line, no traceback; `fsck --repair` drops both,
    saying so, and keeps the sound entries. The value before a move is history, not a
    problem when gone (a `reset` off a commit `fsck --repair` left out logs it)."""
    repo, (c1, _, _) = history
    sql(repo, "insert into reflog (ref, old, new, time, author, message) values "
              "('refs/heads/main', ?, ?, 1.0, null, 'reset: moving to C1')", ["b" * 64, c1])
    n = len(entries(repo, "main"))
    sql(repo, "insert into reflog (ref, old, new, time, author, message) values "
              "('refs/heads/main', null, 'not-a-commit', 1.0, null, 'x')")
    sql(repo, "insert into reflog (ref, old, new, time, author, message) values "
              "('refs/heads/gone', null, ?, 1.0, null, 'y')", ["a" * 64])
    problems = json.loads(run("fsck", "--quick", "--json", cwd=repo).stdout)["problems"]
    assert any("malformed (its new commit 'not-a-commit')" in p for p in problems)
    assert any("names new commit aaaaaaaaaaaa" in p for p in problems)
    assert len(problems) == 2 and not any("bbbbbbbbbbbb" in p for p in problems)
    error_line(run("reflog", "main", cwd=repo), 1, "reflog entry")
    error_line(run("show", "main@{0}", cwd=repo), 1, "fsck --repair")
    r = run("fsck", "--repair", "--quick", cwd=repo)
    assert r.exit_code == 0, r.output
    assert "dropped 1 malformed reflog entry and 1 naming a commit not in the store" \
        in r.stderr
    assert len(entries(repo, "main")) == n


def test_pull_fetch_and_merge_are_logged(history, tmp_path, base):
    repo, (c1, _, c3) = history
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    assert messages(repo, "origin/main") == ["update by push"]
    ok("reset", c1, cwd=repo)
    ok("merge", "origin/main", cwd=repo)
    assert messages(repo)[0] == "merge origin/main: Fast-forward"
    ok("reset", c1, cwd=repo)
    ok("pull", cwd=repo)
    assert messages(repo, "main")[0] == "pull: Fast-forward"
    clone = tmp_path / "clone"  # git's clone logs its remote-tracking branches as its own
    ok("clone", tmp_path / "remote", clone, "--base", model_dir(base), cwd=repo)
    assert messages(clone, "origin/main") == messages(clone, "main")[:1] and \
        messages(clone, "main")[0].startswith("clone: from ")
    ok("remote", "rename", "origin", "up", cwd=repo)
    renamed = "remote: renamed refs/remotes/origin/main to refs/remotes/up/main"
    assert messages(repo, "up/main") == [renamed, "update by push"]
    assert (entries(repo, "up/main")[0]["old"], entries(repo, "up/main")[0]["new"]) == (c3, c3)


def test_a_move_that_fails_after_the_ref_moved_leaves_no_entry(history, monkeypatch):
    """The entry is written in the move's transaction: a reset that fails after moving the
    ref (here the snapshot written last, on a full disk) rolls back the entry with it."""
    import errno

    from memstore.store import refs as refs_module

    repo, (c1, _, _) = history
    before = snapshot(repo)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(refs_module.snapshots, "record", full)
    error_line(run("reset", c1, cwd=repo), 1, "No space left on device")
    monkeypatch.undo()
    assert snapshot(repo) == before
    assert messages(repo)[0] == "commit: facts c"


def test_what_is_left_behind_is_said_as_gc_now_treats_it(history):
    """reset, switch off a detached HEAD and branch -f said 'gc removes them otherwise',
    and `branch -d` 'its commits would be lost at the next gc': gc keeps what a reflog
    entry names (30 days for a commit no ref reaches). They say so; the gc after keeps."""
    repo, (c1, c2, c3) = history
    kept = "(gc removes them once no reflog entry names them: 30 days)"
    r = ok("reset", c1, cwd=repo)
    assert r.stderr == (f"warning: leaving 2 commit(s) that no branch or tag holds, the "
                        f"newest {c3[:12]}; `memstore reset {c3[:12]}` goes back {kept}\n")
    ok("switch", "--detach", "main@{1}", cwd=repo)
    d = json.loads(ok("switch", "main", "--json", cwd=repo).stdout)
    assert d["warning"] == (f"leaving 2 commit(s) that no branch or tag holds, the newest "
                            f"{c3[:12]}; `memstore branch NAME {c3[:12]}` keeps them {kept}")
    assert "removed 0 commits" in ok("gc", cwd=repo).stdout
    ok("branch", "topic", c2, cwd=repo)
    r = run("branch", "-d", "topic", cwd=repo)
    assert r.exit_code == 1 and "gc" not in r.stderr, r.stderr
    error_line(r, 1, "branch 'topic' is not merged into any other branch or tag; `branch -D` "
               "deletes it anyway")


def test_a_rename_logs_the_commit_before_and_after_as_git(history):
    """git's rename entry names the commit on both sides; it said old null (a created
    ref), which `reflog --json` showed as where the branch began."""
    repo, (_, c2, c3) = history
    ok("branch", "-m", "main", "trunk", cwd=repo)
    e = entries(repo, "trunk")[0]
    assert (e["old"], e["new"], e["message"]) == (
        c3, c3, "Branch: renamed refs/heads/main to refs/heads/trunk")
    # HEAD was on it: HEAD's log has the rename too, as git 2.39's (checked: `git branch -m
    # main trunk` on main writes c3 -> null and null -> c3 to .git/logs/HEAD, both with
    # that message; memstore's log has no null, so one entry, c3 on both sides)
    head = entries(repo)
    assert [(h["old"], h["new"], h["message"]) for h in head[:2]] == [
        (c3, c3, "Branch: renamed refs/heads/main to refs/heads/trunk"),
        (c2, c3, "commit: facts c")]
    ok("branch", "side", cwd=repo)  # a branch HEAD is not on: its rename is not HEAD's
    ok("branch", "-m", "side", "side2", cwd=repo)
    assert entries(repo) == head


def test_at_minus_n_names_the_branches_checked_out_before_as_git(history):
    """`@{-N}`: what HEAD was on before the N-th latest switch, read from HEAD's log as
    git's (answers checked against git 2.39 on the same moves): a branch, or a commit
    detached; a switch to the branch HEAD is on counts, as git's. `switch @{-N}` goes onto
    that branch, as git's. Out of range, @{-0}, a branch deleted since: one line."""
    repo, (c1, c2, c3) = history
    ok("switch", "-c", "topic", c2, cwd=repo)
    ok("switch", "--detach", c1, cwd=repo)
    ok("switch", "main", cwd=repo)

    def commit(rev: str) -> str:
        return json.loads(ok("show", rev, "--json", cwd=repo).stdout)["id"]

    assert [commit(f"@{{-{n}}}") for n in (1, 2, 3)] == [c1, c2, c3]
    assert commit("@{-2}~1") == c1
    d = json.loads(ok("switch", "@{-2}", "--json", cwd=repo).stdout)
    assert (d["branch"], d["detached"]) == ("topic", False)
    assert messages(repo)[0] == "checkout: moving from main to topic"
    ok("switch", "topic", cwd=repo)  # "Already on": git logs it, and @{-1} is topic
    assert commit("@{-1}") == c2 and commit("@{-2}") == c3
    before = snapshot(repo)
    error_line(run("show", "@{-6}", cwd=repo), 2, "unknown revision '@{-6}': HEAD's reflog "
               "has 5 switches")
    error_line(run("show", "@{-0}", cwd=repo), 2, "@{-0} names no switch")
    assert snapshot(repo) == before
    ok("switch", "main", cwd=repo)
    ok("branch", "-D", "topic", cwd=repo)
    before = snapshot(repo)
    error_line(run("switch", "@{-1}", cwd=repo), 2, "it names branch 'topic', which has no "
               "commits here now")
    assert snapshot(repo) == before


def test_counts_too_long_for_python_are_one_line(history):
    """N in REF@{N}, @{-N}, ~N and ^N with 5000 digits: Python's int() refuses more than
    4300 digits (ValueError: a traceback); now out of range, one line, as git's."""
    repo, _ = history
    nines = "9" * 5000
    for rev, says in ((f"main@{{{nines}}}", "log for 'main' only has 3 entries"),
                      (f"@{{-{nines}}}", "HEAD's reflog has 0 switches"),
                      (f"HEAD~{nines}", "has no parents"), (f"HEAD^{nines}", "has 1 parent")):
        error_line(run("show", rev, cwd=repo), 2, says)
    error_line(run("reflog", "delete", f"main@{{{nines}}}", cwd=repo), 2, "only has 3")


def test_ref_at_0_with_an_empty_log_is_the_ref_as_git(history):
    """After `reflog expire --expire=now --all` (the README's way to free space at once),
    `main@{0}` was 'no reflog for 'main'' where git's REF@{0} with an empty log is REF;
    `main@{1}` and a tag's `v1@{0}` (tags have no log) stay refused, as git's: `main@{1}`,
    `@{1}`, `HEAD@{1}` and `main@{DATE}` in git 2.39.5's words ('fatal: log for
    refs/heads/main is empty', 'log for HEAD is empty'; exit 128, memstore's 2 as for every
    unknown revision), where memstore said 'no reflog for 'main'', as for a name with no
    log at all; so in `reflog show main@{1}` (and `main@{DATE}`, which listed nothing,
    exit 0)."""
    repo, (c1, _, c3) = history
    ok("tag", "v1", c1, cwd=repo)
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)
    for rev in ("main@{0}", "HEAD@{0}", "@{0}", "main@{0}~2"):
        want = c1 if rev.endswith("~2") else c3
        assert json.loads(ok("show", rev, "--json", cwd=repo).stdout)["id"] == want, rev
    for rev, ref in (("main@{1}", "refs/heads/main"), ("@{1}~1", "refs/heads/main"),
                     ("HEAD@{1}", "HEAD"), ("main@{yesterday}", "refs/heads/main")):
        assert error_line(run("show", rev, cwd=repo), 2, "") == \
            f"memstore: error: unknown revision {rev!r}: log for {ref} is empty"
    # `reflog show` from such an entry: git's the same (REF@{0}: nothing listed, exit 0)
    for rev in ("main@{1}", "main@{yesterday}", "HEAD@{2}"):
        assert error_line(run("reflog", "show", rev, cwd=repo), 2, "").endswith(
            f"log for {'HEAD' if rev[0] == 'H' else 'refs/heads/main'} is empty"), rev
    assert ok("reflog", "show", "main@{0}", cwd=repo).output == ""
    # and the log is there, empty: git 2.39.5's `reflog exists` of HEAD and
    # refs/heads/main after the expire exits 0 (memstore's said 1, no log); a tag's, 1
    for name, code in (("main", 0), ("refs/heads/main", 0), ("HEAD", 0), ("v1", 1)):
        assert run("reflog", "exists", name, cwd=repo).exit_code == code, name
    error_line(run("show", "v1@{0}", cwd=repo), 2, "no reflog for 'v1'")
    error_line(run("show", "refs/tags/v1@{0}", cwd=repo), 2, "no reflog for 'refs/tags/v1'")


def test_ref_at_n_one_past_the_oldest_entry_is_what_it_moved_from_as_git(history):
    """git 2.39's REF@{N}, N the number of entries, is the value the oldest moved the ref
    from (read_ref_at), where it had one: after `reflog expire --expire=now --all` and one
    `reset HEAD~1`, the README's undo `reset main@{1}` works in git 2.39.5 (main@{1} the
    commit reset off, HEAD@{1} too; `reflog show main@{1}` lists nothing, exit 0), where
    memstore said 'log for 'main' only has 1 entry'; one past that, and an entry that
    created the ref (a branch made since), stay refused, as git's."""
    repo, (_, c2, c3) = history
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)
    ok("reset", "HEAD~1", cwd=repo)
    for rev in ("main@{1}", "@{1}", "HEAD@{1}", "main@{1}~1"):
        want = c2 if rev.endswith("~1") else c3
        assert json.loads(ok("show", rev, "--json", cwd=repo).stdout)["id"] == want, rev
    assert ok("reflog", "show", "main@{1}", cwd=repo).output == ""
    error_line(run("show", "main@{2}", cwd=repo), 2, "log for 'main' only has 1 entry")
    error_line(run("reflog", "show", "main@{2}", cwd=repo), 2, "only has 1 entry")
    ok("branch", "side", cwd=repo)  # (its one entry created it: nothing before)
    error_line(run("show", "side@{1}", cwd=repo), 2, "log for 'side' only has 1 entry")
    ok("reset", "main@{1}", cwd=repo)  # the undo
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["head"] == c3


def test_reflog_show_names_a_typo_and_starts_at_ref_at_n(history):
    """`reflog show mian` printed nothing, exit 0, as for a branch with an empty log (git:
    'unknown revision'), and `reflog expire mian` said 'deleted 0 reflog entries'; `reflog show main@{1}` printed nothing (git's starts there); and
    `reflog delete HEAD@{0} HEAD@{0}` said it deleted the one entry twice."""
    repo, (c1, c2, _) = history
    before = snapshot(repo)
    error_line(run("reflog", "show", "mian", cwd=repo), 2, "no reflog for 'mian'")
    error_line(run("reflog", "expire", "--expire=now", "main", "mian", cwd=repo), 2,
               "no reflog for 'mian'")  # git's: 'mian points nowhere', nothing expired
    assert snapshot(repo) == before
    assert ok("reflog", "show", "main@{1}", cwd=repo).stdout.splitlines() == [
        f"{c2[:12]} main@{{1}}: commit: facts b", f"{c1[:12]} main@{{2}}: commit (initial): facts a"]
    assert [e["selector"] for e in entries(repo, "@{2}")] == ["main@{2}"]
    n = len(entries(repo))
    out = ok("reflog", "delete", "HEAD@{0}", "HEAD@{0}", cwd=repo).stdout.splitlines()
    assert len(out) == 1 and len(entries(repo)) == n - 1, out


def test_a_row_whose_ref_is_damaged_refuses_every_log_it_may_belong_to(history):
    """A row whose ref cell is damaged (NULL, a number, text that names no logged ref) is
    in no ref's log: read as it was, main@{1} named the commit one entry older, silently,
    and `reset main@{1}` moved the branch there. Every log is refused now (the row may be
    any one's), one line naming the entry, until `fsck --repair` drops it; a move still
    logs (it appends)."""
    repo, (c1, c2, c3) = history
    newest = sql(repo, "select max(id) from reflog where ref = 'refs/heads/main'")[0][0]
    for value in (None, 7, "garbage"):
        sql(repo, "update reflog set ref = ? where id = ?", [value, newest])
        error_line(run("show", "main@{1}", cwd=repo), 1, f"reflog entry {newest}")
        error_line(run("reset", "main@{1}", cwd=repo), 1, f"reflog entry {newest}")
        error_line(run("reflog", "show", "HEAD", cwd=repo), 1, f"reflog entry {newest}")
        assert json.loads(ok("status", "--json", cwd=repo).stdout)["head"] == c3
    ok("fsck", "--repair", "--quick", cwd=repo)
    assert json.loads(ok("show", "main@{1}", "--json", cwd=repo).stdout)["id"] == c1
    assert c2 in [e["new"] for e in entries(repo, "HEAD")]


def test_an_entry_naming_a_commit_the_index_lacks_is_damage_in_every_reader(history):
    """An entry whose commit the index has no row of (fsck names it): `log main@{1}` and
    `diff main@{1} HEAD` said 'unknown revision' with the 64 digits, exit 2, as if typed
    wrong, where show, reset and merge name the damage; each names it now, exit 1."""
    repo, _ = history
    second = sql(repo, "select id from reflog where ref = 'refs/heads/main' order by id desc "
                       "limit 1 offset 1")[0][0]
    sql(repo, "update reflog set new = ? where id = ?", ["ab" * 32, second])
    for args in (["log", "main@{1}"], ["diff", "main@{1}", "HEAD"], ["reset", "main@{1}"]):
        said = error_line(run(*args, cwd=repo), 1, "abababababab")
        assert "unknown revision" not in said


def test_an_entry_naming_a_commit_the_index_lacks_is_said_in_one_wording(history):
    """One condition, one line, the one that says what to do: `show main@{1}` and
    `cherry-pick main@{1}` said 'object abab… is missing', `revert main@{1}` 'is not in the
    history of HEAD' (exit 2), `switch --detach`/`branch`/`merge` their own 'cannot …'
    forms, where `log main@{1}` said 'named but not in the index; run `memstore fsck`'."""
    repo, _ = history
    second = sql(repo, "select id from reflog where ref = 'refs/heads/main' order by id desc "
                       "limit 1 offset 1")[0][0]
    sql(repo, "update reflog set new = ?, time = ? where id = ?",
        ["ab" * 32, time.time() - 2 * 86400, second])
    sql(repo, "update reflog set time = ? where ref = 'refs/heads/main' and id > ?",
        [time.time() - 86400 + 3600, second])
    says = "memstore: error: commit abababababab is named but not in the index; run " \
           "`memstore fsck`"
    before = snapshot(repo)
    for args in (["show", "main@{1}"], ["log", "main@{1}"], ["cherry-pick", "main@{1}"],
                 ["revert", "main@{1}"], ["switch", "--detach", "main@{1}"],
                 ["branch", "x", "main@{1}"], ["show", "main@{36.hours.ago}"]):
        r = run(*args, cwd=repo)
        assert (r.exit_code, r.stderr.strip()) == (1, says), args
    assert snapshot(repo) == before


def test_a_row_whose_ref_is_no_ref_name_is_damage_fsck_names_and_repair_drops(history):
    """A row whose ref is a logged prefix and a name no ref can have ('refs/heads/we
    ird\\n', made of main's by a damage) passed fsck ('ok') and was in no log, so main@{1}
    named the commit one entry older, silently. Its name is checked as a ref's (git's
    rules): fsck names it, every log is refused until `fsck --repair` drops it, saying so;
    a remote-tracking branch's and an older memstore's name (U+200B, git's rules allow
    it) stay sound."""
    repo, (c1, c2, _) = history
    second = sql(repo, "select id from reflog where ref = 'refs/heads/main' order by id desc "
                       "limit 1 offset 1")[0][0]
    sql(repo, "insert into reflog (ref, old, new, time, author, message) values "
              "(?, null, ?, 1.0, null, 'x'), ('refs/remotes/origin/a/b', null, ?, 1.0, null, 'y')",
        ["refs/heads/old\u200bname", c1, c1])
    assert json.loads(run("fsck", "--quick", "--json", cwd=repo).stdout)["problems"] == []
    for bad in ("refs/heads/we ird\n", "refs/heads/", "refs/heads/a..b", "refs/remotes/o/x~1"):
        sql(repo, "update reflog set ref = ? where id = ?", [bad, second])
        problems = json.loads(run("fsck", "--quick", "--json", cwd=repo).stdout)["problems"]
        assert problems == [(f"reflog entry {second} is malformed (its ref {bad!r}); "
                             "`memstore fsck --repair` drops it")], bad
        error_line(run("show", "main@{1}", cwd=repo), 1, f"reflog entry {second}")
        error_line(run("reflog", "HEAD", cwd=repo), 1, f"reflog entry {second}")
    r = run("fsck", "--repair", "--quick", cwd=repo)
    assert r.exit_code == 0 and "dropped 1 malformed reflog entry" in r.stderr, r.output
    assert json.loads(ok("show", "main@{1}", "--json", cwd=repo).stdout)["id"] == c1
    assert c2 in [e["new"] for e in entries(repo, "HEAD")]


def test_expire_unreachable_is_from_the_refs_own_tip_as_git(history):
    """--expire-unreachable (and gc's 30 days) prunes an entry naming a commit that its
    ref's tip does not reach, though another branch does; HEAD's entries are reachable
    from any ref (git 2.39 on the same moves: main's 'commit: c3' and 'reset' pruned while
    topic holds c3, HEAD's kept until topic is deleted, and a detached HEAD at c3 does not
    keep them). Reachability was every ref's, a detached HEAD's included."""
    repo, (_, _, c3) = history
    ok("branch", "topic", cwd=repo)  # at c3
    ok("reset", "HEAD~1", cwd=repo)  # main at c2: c3 is topic's only

    def expired(ref: str) -> list[str]:
        out = json.loads(ok("reflog", "expire", "--expire=never", "--expire-unreachable=now",
                            "--dry-run", "--json", ref, cwd=repo).stdout)
        return [e["message"] for e in out["expired"]]

    assert expired("main") == ["commit: facts c", "reset: moving to HEAD~1"]
    assert expired("topic") == [] and expired("HEAD") == []
    sql(repo, "update reflog set time = time - 40 * 86400")  # past gc's 30 days, not 90
    report = json.loads(ok("gc", "--dry-run", "--json", cwd=repo).stdout)
    assert report["reflog_entries"] == 2 and report["commits"] == []
    ok("branch", "-D", "topic", cwd=repo)
    assert expired("HEAD") == ["commit: facts c", "reset: moving to HEAD~1"]
    ok("switch", "--detach", c3, cwd=repo)  # a detached HEAD is no tip its log counts
    assert expired("HEAD") == ["commit: facts c", "reset: moving to HEAD~1",
                               f"checkout: moving from main to {c3}"]


def test_reflog_exists_takes_a_ref_name_not_a_revision_as_git(history):
    """git 2.39's `reflog exists main@{yesterday}` (main@{1}, main~1, @{-1}, @{u}, a..b, an
    empty name) is 'fatal: invalid ref format'; memstore said 1, no log, as for a ref that
    has none (and `@{u}` read the upstream). Bad input now: one line, exit status 2."""
    repo, _ = history
    before = snapshot(repo)
    for name in ("main@{yesterday}", "main@{1}", "main~1", "@{-1}", "@{u}", "a..b", ""):
        error_line(run("reflog", "exists", name, cwd=repo), 2, f"invalid ref name {name!r}")
    assert snapshot(repo) == before
    for name, code in (("main", 0), ("refs/heads/main", 0), ("HEAD", 0), ("nosuch", 1)):
        assert run("reflog", "exists", name, cwd=repo).exit_code == code, name


def test_reflog_show_past_the_oldest_entry_is_one_line_as_git(history):
    """`reflog show main@{3}` of a 3-entry log printed nothing, exit 0; git 2.39's says
    'log for 'main' only has 3 entries' (exit 128). One line now, exit 2, the wording of
    REF@{N} everywhere; `main@{0}` of an emptied log still lists nothing, as git's."""
    repo, (c1, _, _) = history
    assert ok("reflog", "show", "main@{2}", cwd=repo).stdout == \
        f"{c1[:12]} main@{{2}}: commit (initial): facts a\n"
    for sel in ("main@{3}", "@{3}", "main@{99}"):
        error_line(run("reflog", "show", sel, cwd=repo), 2,
                   f"unknown revision {sel!r}: log for 'main' only has 3 entries")
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)
    assert ok("reflog", "show", "main@{0}", cwd=repo).stdout == ""


def test_at_minus_n_names_the_log_of_that_branch_as_git(history):
    """git 2.39's `reflog show @{-1}` lists the previous branch's log, labelled with its
    name (`topic@{0}`), and `@{-1}@{N}` names that branch's N-th previous value; memstore
    said "no reflog for '@{-1}'" (exit 2) for both, and `@{-1}@{DATE}` was 'unknown
    revision'. A commit HEAD was detached at has no
    log: one line."""
    repo, (c1, c2, _) = history
    ok("switch", "-c", "topic", c2, cwd=repo)
    ok("reset", "HEAD~1", cwd=repo)  # topic at c1
    ok("switch", "main", cwd=repo)
    assert ok("reflog", "show", "@{-1}", cwd=repo).stdout.splitlines() == [
        f"{c1[:12]} topic@{{0}}: reset: moving to HEAD~1",
        f"{c2[:12]} topic@{{1}}: branch: Created from {c2}"]
    assert json.loads(ok("show", "@{-1}@{1}", "--json", cwd=repo).stdout)["id"] == c2
    assert json.loads(ok("show", "@{-1}@{now}", "--json", cwd=repo).stdout)["id"] == c1
    ok("switch", "--detach", c1, cwd=repo)
    ok("switch", "main", cwd=repo)
    before = snapshot(repo)
    error_line(run("reflog", "show", "@{-1}", cwd=repo), 2, f"'@{{-1}}' names commit "
               f"{c1[:12]}, where HEAD was detached")
    assert snapshot(repo) == before


def test_a_reset_onto_where_it_is_is_in_heads_log_only_as_git(history):
    """git 2.39's `reset --hard` with no REV on a branch writes 'reset: moving to HEAD' to
    HEAD's log, not the branch's (the ref is not written), and nothing when detached;
    memstore wrote none, so each HEAD@{N} past it named another entry than git's."""
    repo, (_, c2, c3) = history
    head, main = entries(repo), entries(repo, "main")
    ok("reset", "--hard", cwd=repo)
    after = entries(repo)
    assert [(e["message"], e["old"], e["new"]) for e in after[:1]] == [
        ("reset: moving to HEAD", c3, c3)]
    assert [e["message"] for e in after[1:]] == [e["message"] for e in head]
    assert entries(repo, "main") == main
    ok("switch", "--detach", c2, cwd=repo)
    detached = entries(repo)
    ok("reset", "HEAD", cwd=repo)
    assert entries(repo) == detached


def test_reflog_show_of_a_tag_lists_nothing_as_git(history):
    """A tag has no reflog (tags are not logged): git's `reflog show v1` prints nothing,
    exit 0, where memstore's said 'no reflog for 'v1'', exit 2. `v1@{0}`, `v1@{1}` and a
    name that is no ref stay refused, as git's (exit 128)."""
    repo, (c1, _, _) = history
    ok("tag", "v1", c1, cwd=repo)
    for name in ("v1", "refs/tags/v1"):
        assert ok("reflog", "show", name, cwd=repo).stdout == "", name
        assert ok("reflog", name, cwd=repo).stdout == "", name
        assert entries(repo, name) == [], name
    for rev in ("v1@{0}", "v1@{1}", "v3"):
        error_line(run("reflog", "show", rev, cwd=repo), 2, "no reflog for")


def test_a_tag_named_in_full_has_no_reflog_either(history):
    """`reflog show refs/tags/v1@{0}` (or `@{DATE}`) listed nothing, exit 0, where
    `v1@{0}`, `log refs/tags/v1@{0}` and git's (128) refuse it: a tag has no log to
    take an entry of. `reflog expire refs/tags/v1` said 'deleted 0 reflog entries', exit 0,
    where `expire v1` was refused and git's says 'points nowhere' for both. Both now say in
    one line that a tag has no reflog (exit 2); `reflog show` of the tag still lists
    nothing; a branch of HEAD's log is expired as before."""
    repo, (c1, _, _) = history
    ok("tag", "v1", c1, cwd=repo)
    before = snapshot(repo)
    for rev in ("refs/tags/v1@{0}", "refs/tags/v1@{now}", "v1@{0}"):
        error_line(run("reflog", "show", rev, cwd=repo), 2, "a tag has no reflog")
        assert run("log", rev, cwd=repo).exit_code == 2, rev
    for name in ("refs/tags/v1", "v1"):
        error_line(run("reflog", "expire", "--expire=now", name, cwd=repo), 2,
                   "a tag has no reflog")
        error_line(run("reflog", "expire", "--expire=now", "main", name, cwd=repo), 2,
                   "a tag has no reflog")
        assert ok("reflog", "show", name, cwd=repo).stdout == "", name
    assert snapshot(repo) == before
    assert len(entries(repo, "main")) == 3
    ok("reflog", "expire", "--expire=now", "main", cwd=repo)
    assert entries(repo, "main") == []
