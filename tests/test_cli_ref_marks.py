"""`BRANCH@{upstream}` (`@{u}`, `@{push}`) and `REF@{DATE}`, as git's: the upstream as
`status` takes it, and the value a ref had at a date from its reflog, in every command that
takes a revision; their refusals in git's words, one line, exit 2, nothing changed. The
answers were checked with git 2.39 on the same moves (tmp repositories: `git rev-parse`)."""
from __future__ import annotations

import json
import sqlite3
import time

from cli_support import error_line, ok, run, snapshot

from memstore.store.dates import parse


def commit(repo, rev: str) -> str:
    return json.loads(ok("show", rev, "--json", cwd=repo).stdout)["id"]


def ids(repo, *args: str) -> list[str]:
    return [e["id"] for e in json.loads(ok("log", *args, "--json", cwd=repo).stdout)]


def refused(repo, args, says: str) -> None:
    before = snapshot(repo)
    error_line(run(*args, cwd=repo), 2, says)
    assert snapshot(repo) == before, args


def test_upstream_is_the_tracking_branch_status_compares_with(history, tmp_path):
    repo, (c1, c2, c3) = history
    refused(repo, ("show", "@{u}"), "revision '@{u}': no upstream configured for branch 'main'")
    ok("remote", "add", "origin", tmp_path / "origin", cwd=repo)
    # origin's main not fetched yet: status shows no upstream, and git's @{u} has none
    refused(repo, ("show", "@{u}"), "no upstream configured for branch 'main'")
    ok("push", "origin", "main", cwd=repo)  # origin/main: the default (no -u), as status's
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["upstream"]["name"] == \
        "origin/main"
    ok("reset", "HEAD~2", cwd=repo)
    for rev in ("@{u}", "@{U}", "@{upstream}", "@{UpStream}", "main@{u}", "HEAD@{u}",
                "main@{push}", "@{PUSH}", "@@{u}", "@@{push}"):  # `@`: HEAD, as git's
        assert commit(repo, rev) == c3, rev
    assert commit(repo, "@{u}~1") == commit(repo, "main@{upstream}^") == c2
    assert ids(repo, "..@{u}") == [c3, c2]  # what the upstream has that main lacks
    assert ids(repo, "@{u}..") == []
    assert ids(repo, "main...@{u}") == [c3, c2]
    assert "0 added, 3 removed" in ok("diff", "@{u}", cwd=repo).stdout  # HEAD against it
    ok("reset", "@{u}", cwd=repo)  # back where the upstream is
    assert commit(repo, "main") == c3
    out = ok("branch", "fix", "@{u}", cwd=repo).stdout  # a branch made at it tracks it, as
    assert out.startswith("branch 'fix' set up to track 'origin/main'.\n")  # git's
    ok("switch", "-c", "fix2", "main@{U}", cwd=repo)
    assert ok("branch", "-vv", "--json", cwd=repo).stdout.count('"upstream": "origin/main"') == 3
    ok("branch", "nofix", "@{u}~1", cwd=repo)  # not a ref: no upstream, as git's
    ok("switch", "--detach", "@{u}~2", cwd=repo)
    assert commit(repo, "HEAD") == c1
    refused(repo, ("show", "@{u}"), "revision '@{u}': HEAD does not point to a branch")
    refused(repo, ("reset", "HEAD@{u}"), "HEAD does not point to a branch")
    assert commit(repo, "main@{u}") == c3  # a branch named: its upstream, detached or not
    ok("tag", "v1", c1, cwd=repo)
    for rev, name in (("nosuch@{u}", "nosuch"), ("v1@{u}", "v1"),
                      ("origin/main@{u}", "origin/main")):
        refused(repo, ("show", rev), f"revision {rev!r}: no such branch: {name!r}")
    assert run("show", "@{uu}", cwd=repo).exit_code == 2  # not a mark: unknown


def test_a_recorded_upstream_wins_and_push_names_the_branch_of_its_own_name(history, tmp_path):
    repo, (c1, _, c3) = history
    ok("remote", "add", "origin", tmp_path / "origin", cwd=repo)
    ok("branch", "trunk", c1, cwd=repo)
    ok("push", "origin", "trunk", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("branch", "--set-upstream-to", "origin/trunk", cwd=repo)
    assert commit(repo, "@{u}") == c1  # the recorded one, over origin's main
    refused(repo, ("show", "@{push}"), "cannot resolve 'simple' push to a single destination")
    assert commit(repo, "trunk@{push}") == c1  # trunk's own name: the default's
    ok("branch", "-d", "-r", "origin/trunk", cwd=repo)  # recorded, not here any more
    refused(repo, ("show", "@{u}"), "origin/trunk, the upstream recorded, is not here")
    ok("remote", "add", "team", tmp_path / "team", cwd=repo)
    ok("remote", "rename", "origin", "fork", cwd=repo)  # two remotes, none origin, and
    ok("branch", "--unset-upstream", cwd=repo)  # none recorded: no default (status: none)
    refused(repo, ("show", "@{u}"), "no upstream configured for branch 'main'")
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["upstream"] is None
    ok("switch", "-c", "side", cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("branch", "--set-upstream-to", "fork/main", "side", cwd=repo)
    assert commit(repo, "@{-1}@{u}") == c3  # the branch checked out before's, as git's


def timed(repo, *times: float) -> list[int]:
    """Sets the times of main's and HEAD's entries, oldest first, to `times`; their ids."""
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        for ref in ("refs/heads/main", "HEAD"):
            rows = [r[0] for r in con.execute(
                "select id from reflog where ref = ? order by id", [ref])]
            assert len(rows) == len(times), rows
            for i, t in zip(rows, times):
                con.execute("update reflog set time = ? where id = ?", [t, i])
    con.close()


def test_ref_at_date_is_its_value_then_as_git(history):
    repo, (c1, c2, c3) = history
    day1, day2, day3 = (parse(f"2026-03-0{d} 10:00") for d in (1, 2, 3))  # local time
    timed(repo, day1, day2, day3)
    for rev, want in (("main@{2026-03-02 12:00}", c2), ("main@{2026-03-02T10:00}", c2),
                      ("main@{2026-03-02 09:59}", c1), ("main@{2026-03-03 10:00:00}", c3),
                      ("main@{2026-05-01}", c3), ("HEAD@{2026-03-02 11:00}", c2),
                      ("@{2026-03-02 11:00}", c2), (f"main@{{{int(day2)}}}", c2),
                      ("main@{2026-03-02 11:00}~1", c1)):
        r = ok("show", rev, "--json", cwd=repo)
        assert json.loads(r.stdout)["id"] == want and r.stderr == "", (rev, r.stderr)
    # before the first entry: the value it started from, with git's warning
    r = ok("show", "main@{2026-02-01}", "--json", cwd=repo)
    assert json.loads(r.stdout)["id"] == c1
    assert r.stderr == f"warning: log for 'main' only goes back to " \
                       f"{time.strftime('%a, %-d %b %Y 10:00:00 %z', time.localtime(day1))}\n"
    r = ok("log", "main@{2026-01-01}..main@{2026-03-02 12:00}", "--json", cwd=repo)
    assert [e["id"] for e in json.loads(r.stdout)] == [c2]  # c1 excluded
    assert r.stderr.count("warning: log for 'main' only goes back to") == 1
    r = ok("show", "@{2026-02-01}", "--json", cwd=repo)  # @{...}: the current branch's log
    assert r.stderr.startswith("warning: log for 'main' only goes back to"), r.stderr
    refused(repo, ("show", "@{99}"), "log for 'main' only has 3 entries")
    r = ok("log", "main@{2026-01-01}..main@{2026-02-01}", "--json", cwd=repo)
    assert json.loads(r.stdout) == [] and r.stderr.count("warning:") == 2  # each's, as git's
    assert ids(repo, "main@{2026-03-02 12:00}..") == [c3]
    # 8 digits or fewer: N (out of range here), as git tells them
    refused(repo, ("show", "main@{99999999}"), "log for 'main' only has 3 entries")
    refused(repo, ("show", "main@{soon}"), "unknown revision 'main@{soon}': 'soon': not a date")
    refused(repo, ("show", "nosuch@{yesterday}"), "no reflog for 'nosuch'")
    refused(repo, ("show", "main@{}"), "unknown revision 'main@{}'")
    r = ok("switch", "-c", "old", "main@{2026-01-01}", cwd=repo)  # (read twice): said once
    assert r.stderr.count("warning: log for 'main' only goes back to") == 1, r.stderr
    assert commit(repo, "old") == c1


def test_relative_dates_and_a_log_that_starts_with_a_move(history):
    """`@{2.days.ago}` (git's dots for spaces), `@{yesterday}`; a log whose oldest entry
    moved the ref from a commit (the older entries expired): before it, that commit."""
    repo, (c1, c2, c3) = history
    now = time.time()
    timed(repo, now - 3 * 86400 - 3600, now - 2 * 86400 - 3600, now - 86400 - 3600)
    for rev, want in (("main@{yesterday}", c3), ("@{2.days.ago}", c2),
                      ("main@{2 days ago}", c2), ("main@{3.days.ago}", c1),
                      ("main@{1 hour ago}", c3)):
        assert commit(repo, rev) == want, rev
    ok("reset", c1, cwd=repo)  # main@{0}: c1 now, moved from c3
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:  # only the reset is left of main's log
        con.execute("delete from reflog where ref = 'refs/heads/main' and new != ?", [c1])
        con.execute("delete from reflog where ref = 'refs/heads/main' and old is null")
    con.close()
    r = ok("show", "main@{4.days.ago}", "--json", cwd=repo)
    assert json.loads(r.stdout)["id"] == c3 and "only goes back to" in r.stderr
    assert commit(repo, "main@{now}") == c1


def test_reflog_show_and_delete_take_a_date_as_git(history):
    """`reflog show main@{DATE}` starts at the latest entry at or before DATE and `reflog
    delete main@{DATE}` deletes it (git 2.39's, checked on the same moves); both said 'no
    reflog for 'main@{yesterday}''. Before the oldest: show prints none, with git's warning;
    delete refuses, nothing deleted."""
    repo, (c1, c2, c3) = history
    day1, day2, day3 = (parse(f"2026-03-0{d} 10:00") for d in (1, 2, 3))
    timed(repo, day1, day2, day3)
    listed = json.loads(ok("reflog", "show", "main@{2026-03-02 12:00}", "--json",
                           cwd=repo).stdout)
    assert [(e["selector"], e["new"]) for e in listed] == [("main@{1}", c2), ("main@{2}", c1)]
    # the branch's; the day's start written out: a bare date is now's time of day, as git's
    assert [e["new"] for e in json.loads(ok("reflog", "@{2026-03-03 00:00}", "--json",
                                            cwd=repo).stdout)] == [c2, c1]
    r = ok("reflog", "show", "main@{2026-02-01}", cwd=repo)
    assert r.stdout == "" and r.stderr.startswith("warning: log for 'main' only goes back to")
    refused(repo, ("reflog", "delete", "main@{2026-02-01}"),
            "'main@{2026-02-01}' names no reflog entry: log for 'main' has none that old")
    refused(repo, ("reflog", "show", "main@{soon}"), "'soon': not a date")
    refused(repo, ("reflog", "delete", "main@{u}"), "'main@{u}' names no reflog entry")
    ok("reflog", "delete", "main@{2026-03-02 12:00}", cwd=repo)
    assert [e["new"] for e in json.loads(ok("reflog", "main", "--json", cwd=repo).stdout)] \
        == [c3, c1]


def test_the_upstream_s_reflog_as_git_s_at_u_at_n(history, tmp_path):
    """`@{u}@{N}` (`main@{upstream}@{1}`, `@{u}@{DATE}`): the N-th previous value of the
    upstream's remote-tracking branch, as git's; was 'unknown revision'."""
    repo, (_, c2, c3) = history
    ok("remote", "add", "origin", tmp_path / "origin", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("reset", "HEAD~1", cwd=repo)
    ok("push", "--force", "origin", "main", cwd=repo)  # origin/main: c3, then c2
    assert commit(repo, "@{u}") == c2
    for rev in ("@{u}@{1}", "main@{upstream}@{1}", "@{U}@{1}~1"):
        assert commit(repo, rev) == (c3 if "~" not in rev else c2), rev
    assert commit(repo, "@{u}@{0}") == c2
    assert commit(repo, "@{u}@{now}") == c2
    assert [(e["selector"], e["new"]) for e in json.loads(ok("reflog", "@{u}", "--json",
                                                             cwd=repo).stdout)] \
        == [("refs/remotes/origin/main@{0}", c2), ("refs/remotes/origin/main@{1}", c3)]
    refused(repo, ("show", "@{u}@{2}"), "log for '@{u}' only has 2 entries")
    refused(repo, ("show", "side@{u}@{1}"), "no such branch: 'side'")
