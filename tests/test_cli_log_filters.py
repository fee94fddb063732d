"""log's filters, as git's: --grep (with -i and --all-match), --since/--after and
--until/--before, and --reverse, each with -n, ranges, --oneline and --json. The history is
five commits with no update sets, written through Repository.write_commit with the times
it takes (no edit runs: each test costs well under a second)."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import time

import children
import pytest
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    history_template,
    last_line,
    ok,
    run,
    snapshot,
    write_facts,
)

from memstore.store import dates, posix_regex
from memstore.store.repository import Repository

MESSAGES = ["Add capitals\n\nParis and Rome", "Fix typo in sports facts",
            "add CAPITALS of Asia", "Revert sports", "Sports: fix the Messi fact"]
DAYS_AGO = [40, 20, 10, 3, 0.5]


@pytest.fixture
def dated(base, tmp_path):
    """The repository and its commits, oldest first: (id, time) each, times in whole
    seconds DAYS_AGO before now; `side` branches off the third with one commit, 2 days ago."""
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    now = int(time.time())
    out = []
    with Repository.open(repo) as r:
        for message, days in zip(MESSAGES, DAYS_AGO):
            t = now - int(days * 86400)
            parents = [out[-1][0]] if out else []
            c = r.write_commit([], parents=parents, basis=parents[0] if parents else None,
                               message=message, time=t)
            out.append((c.id, t))
    ok("branch", "side", out[2][0], cwd=repo)
    with Repository.open(repo) as r:
        side = r.write_commit([], parents=[out[2][0]], basis=out[2][0], message="side work",
                              time=now - 2 * 86400, ref="refs/heads/side")
    return repo, out, side.id


def ids(repo, *args) -> list[str]:
    return [e["id"] for e in json.loads(ok("log", *args, "--json", cwd=repo).stdout)]


def test_grep_matches_the_message_any_pattern_or_all_and_in_any_case(dated):
    repo, c, _ = dated
    newest_first = [x for x, _ in reversed(c)]
    assert ids(repo, "--grep", "sports") == [c[3][0], c[1][0]]
    assert ids(repo, "--grep", "Rome") == [c[0][0]]  # the body too, as git's
    assert ids(repo, "--grep", "capitals", "-i") == [c[2][0], c[0][0]]
    assert ids(repo, "--grep", "^add", "--regexp-ignore-case") == [c[2][0], c[0][0]]
    assert ids(repo, "--grep", "sports", "--grep", "Asia") == [c[3][0], c[2][0], c[1][0]]
    assert ids(repo, "--grep", "sports", "--grep", "fix", "--all-match", "-i") == [
        c[4][0], c[1][0]]
    assert ids(repo, "--grep", "(?i)sports", "--grep", "fix", "--all-match", "-P") == [
        c[4][0]]  # -P: Python's re
    assert ids(repo, "--grep", ".") == newest_first
    assert ids(repo, "--grep", "capitals", "-i", "-n", "1") == [c[2][0]]  # -n after
    out = ok("log", "--oneline", "--grep", "Asia", cwd=repo).stdout.splitlines()
    assert len(out) == 1 and out[0].startswith(c[2][0][:12])
    assert ok("log", "--grep", "nothing like it", cwd=repo).stderr.strip() == \
        "no commits match"


def test_a_branch_with_no_commits_says_so_filtered_or_not(base, tmp_path):
    """Filtered, the log of a branch with no commits (a new repository; one whose branch
    row is gone, damage) said 'no commits match', and unfiltered 'no commits yet': one
    state, two wordings. Both say 'no commits yet' now (git refuses both alike)."""
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    for args in (["log"], ["log", "--grep", "x"], ["log", "--author", "x", "--oneline"],
                 ["log", "--fact", "x"]):
        r = ok(*args, cwd=repo)
        assert (r.stdout, r.stderr) == ("", "no commits yet\n"), args
    ok("switch", "-c", "side", cwd=repo)
    assert ok("log", "--grep", "x", cwd=repo).stderr == "no commits yet\n"
    gone = copy_repo(history_template(base)[0], tmp_path / "gone")
    con = sqlite3.connect(gone / ".memstore" / "index.db")
    with con:
        con.execute("delete from refs where name = 'refs/heads/main'")
    con.close()
    for args in (["log"], ["log", "--grep", "facts"]):
        assert ok(*args, cwd=gone).stderr == "no commits yet\n", args


def test_a_pattern_that_is_no_regular_expression_is_one_line(dated):
    repo, _, _ = dated
    before = snapshot(repo)
    error_line(run("log", "--grep", "fix", "--grep", "\\(unclosed", cwd=repo), 2,
               "--grep '\\\\(unclosed': not a regular expression (Unmatched ( or \\()")
    error_line(run("log", "-E", "--grep", "(unclosed", cwd=repo), 2,
               "--grep '(unclosed': not a regular expression (Unmatched ( or \\()")
    error_line(run("log", "--author", "a\\", cwd=repo), 2,
               "--author 'a\\\\': not a regular expression (Trailing backslash)")
    error_line(run("log", "-P", "--grep", "(unclosed", cwd=repo), 2,
               "--grep '(unclosed': not a regular expression (missing ), unterminated")
    assert snapshot(repo) == before


def test_a_search_past_the_limit_is_one_line(dated, monkeypatch):
    """`-E --grep '(a+)+b'` over a message of 24 a's: Python's re backtracks for seconds
    (hours at forty a's) where git answers at once; the search stops at the limit, one line,
    exit 2, the repository as it was."""
    repo, c, _ = dated
    with Repository.open(repo) as r:
        r.write_commit([], parents=[c[-1][0]], basis=c[-1][0], message="a" * 24)
    monkeypatch.setattr(posix_regex, "SEARCH_LIMIT_S", 0.05)
    before = snapshot(repo)
    error_line(run("log", "-E", "--grep", "(a+)+b", cwd=repo), 2,
               "a search ran past 0.05 s on a text of 24 characters")
    assert snapshot(repo) == before
    assert len(ids(repo, "-E", "--grep", "^a{24}$")) == 1  # no timer left behind


def test_since_and_until_keep_the_commits_made_between_both_ends_included(dated):
    repo, c, _ = dated
    (c0, _), (c1, t1), (c2, _), (c3, t3), (c4, _) = c
    utc = dt.datetime.fromtimestamp(t1, dt.UTC).isoformat()  # 2026-…T…+00:00
    local = dt.datetime.fromtimestamp(t3).isoformat()  # no zone: the local time, as git's
    assert ids(repo, "--since", utc, "--until", local) == [c3, c2, c1]
    assert ids(repo, "--after", utc.replace("+00:00", "Z"), "--before", local) == [c3, c2, c1]
    later = dt.datetime.fromtimestamp(t1 + 1, dt.UTC).isoformat()
    assert ids(repo, "--since", later) == [c4, c3, c2]
    assert ids(repo, "--since", "yesterday") == [c4]
    assert ids(repo, "--until", "2 weeks ago") == [c1, c0]
    assert ids(repo, "--until", "1 month ago") == [c0]
    assert ids(repo, "--since", "3 weeks ago", "--grep", "sports") == [c3, c1]
    assert ids(repo, "--until", "2 weeks ago", "-n", "1") == [c1]  # -n after
    day = dt.datetime.fromtimestamp(t3).date().isoformat() + " 00:00"  # its start, local
    assert c3 in ids(repo, "--since", day) and c2 not in ids(repo, "--since", day)


def test_a_date_memstore_cannot_read_is_one_line(dated):
    repo, _, _ = dated
    before = snapshot(repo)
    for date in ("garbage", "2026-13-01", "yesterday-ish", "99999999 weeks ago",
                 "3 fortnights ago"):
        for option in ("--since", "--until"):
            error_line(run("log", option, date, cwd=repo), 2, f"{date!r}")
    assert snapshot(repo) == before


def test_a_date_without_a_zone_is_the_local_time_and_months_are_calendar_ones(monkeypatch):
    from cli.dates import parse

    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9 all year
    time.tzset()
    try:
        assert parse("2026-12-01T10:00") == parse("2026-12-01T01:00Z")
        assert parse("2026-12-01T00:00") == parse("2026-11-30T15:00+00:00")  # its start
        # a bare date: that day at now's local time of day (06:50:59), as git's approxidate
        now = dt.datetime(2026, 12, 6, 21, 50, 59, 500000, tzinfo=dt.UTC)
        assert parse("2026-12-01", now) == parse("2026-11-30T21:50:59Z")
        end_of_march = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)
        assert parse("1 month ago", end_of_march) == parse("2026-02-28T12:00Z")
        assert parse("1 year 2 days ago", end_of_march) == parse("2025-03-29T12:00Z")
        assert parse("yesterday", end_of_march) == parse("2026-03-30T12:00Z")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_months_ago_keep_the_local_time_of_day_across_a_summer_time_change(monkeypatch):
    """Berlin, the day summer time began (UTC+2 since 01:00 UTC): 1 month ago is the same
    local time (14:00) on 28 February, in winter time (UTC+1): 13:00 UTC, not 12:00 (the
    offset of now kept)."""
    from cli.dates import parse

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        now = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)
        assert parse("1 month ago", now) == parse("2026-02-28T13:00Z")
        assert parse("1 month 2 hours ago", now) == parse("2026-02-28T11:00Z")
        assert parse("2 days ago", now) == parse("2026-03-27T12:00Z")  # seconds, as git's
        # a bare date: now less whole days, now's offset kept, as git 2.39's (14:00 UTC+2)
        assert parse("2026-02-28", now) == parse("2026-02-28T12:00Z")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_reverse_lists_oldest_first_after_n_took_the_newest(dated):
    repo, c, side = dated
    newest_first = [x for x, _ in reversed(c)]
    assert ids(repo, "--reverse") == newest_first[::-1]
    assert ids(repo, "--reverse", "-n", "2") == [c[3][0], c[4][0]]  # git's: newest 2, turned
    assert ids(repo, "--reverse", "--grep", "sports", "-n", "1") == [c[3][0]]
    assert ids(repo, "--reverse", "side..main") == [c[3][0], c[4][0]]
    assert ids(repo, "--reverse", "main...side") == [c[3][0], side, c[4][0]]
    lines = ok("log", "--oneline", "--reverse", "-n", "3", cwd=repo).stdout.splitlines()
    assert [line[:12] for line in lines] == [x[:12] for x in newest_first[:3][::-1]]
    text = ok("log", "--reverse", "-n", "2", cwd=repo).stdout
    assert text.index(c[3][0]) < text.index(c[4][0])
    error_line(run("log", "--reverse", "--graph", cwd=repo), 2,
               "'--reverse' and '--graph' cannot be used together")


def test_filters_with_a_range_and_the_graph(dated):
    repo, c, side = dated
    assert ids(repo, "main...side", "--since", "4 days ago") == [c[4][0], side, c[3][0]]
    assert ids(repo, "side..main", "--grep", "sports") == [c[3][0]]
    marked = ok("log", "--oneline", "--left-right", "main...side", "--grep", "side",
                cwd=repo).stdout.splitlines()
    assert [line.split()[:2] for line in marked] == [[">", side[:12]]]
    drawn = ok("log", "--oneline", "--graph", "--grep", "sports", cwd=repo).stdout
    assert [line.split()[:2] for line in drawn.splitlines()] == [
        ["*", c[3][0][:12]], ["*", c[1][0][:12]]]


def test_fact_finds_the_commits_that_wrote_or_took_out_a_matching_fact(history):
    """--fact: a commit matches by the facts it wrote (subject, the prompt with it filled
    in, target); a revert by what it took out, not by the later facts it replays."""
    repo, (c1, c2, c3) = history
    assert ids(repo, "--fact", "Jordan") == [c2]
    assert ids(repo, "--fact", "^English$") == [c1]  # a target
    assert ids(repo, "--fact", "Messi plays$") == [c3]  # the prompt, the subject filled in
    assert ids(repo, "--fact", "michael", "-i") == [c2]
    assert ok("log", "--fact", "michael", cwd=repo).stderr.strip() == "no commits match"
    r = last_line(ok("revert", c2, cwd=repo))  # replays c3's set on c1
    assert ids(repo, "--fact", "Jordan") == [r, c2]  # what r took out
    assert ids(repo, "--fact", "Messi") == [c3]  # r replays it, and changes nothing of it
    assert ids(repo, "--fact", "plays", "-n", "2") == [r, c3]
    assert ids(repo, "--fact", "plays", "--grep", "^facts b") == [c2]  # r: "Revert \"facts b\""
    assert ids(repo, "--fact", "plays", "--grep", "facts b") == [r, c2]
    error_line(run("log", "--fact", "[z-a]", cwd=repo), 2,
               "--fact '[z-a]': not a regular expression")


def test_fact_finds_a_commit_by_the_target_it_superseded(history, tmp_path, monkeypatch):
    """A commit that retargets a fact (--supersede: Porsche 911, created by Honda ->
    Toyota) took the old version out, as `show` lists it ('Honda' -> 'Toyota'): --fact
    finds it by either target, as git's -G finds a line removed or added, and as it finds
    a revert, merge or squash by both targets of a fact it retargeted. The parent's
    version is read (its chain walked) only where an index row holds a matching target."""
    from memstore.store import chain_facts

    looked_up = []
    live_writes = chain_facts.live_writes
    monkeypatch.setattr(chain_facts, "live_writes",
                        lambda store, c, keys: looked_up.append(c) or live_writes(store, c, keys))
    repo, (c1, _, _) = history
    toyota = write_facts(tmp_path / "toyota.jsonl", [("Porsche 911", "{}, created by",
                                                      "Toyota", "Porsche")])
    x = last_line(ok("commit", toyota, "--supersede", cwd=repo))
    assert ids(repo, "--fact", "^Honda$") == [x, c1]
    assert ids(repo, "--fact", "^honda$", "-i") == [x, c1]
    assert len(looked_up) == 2  # x's parent, once per log
    assert ids(repo, "--fact", "Toyota") == [x] and len(looked_up) == 2  # no old target
    assert ids(repo, "--fact", "^Porsche$") == []  # target_true is no target it held


@pytest.fixture
def new_york(monkeypatch):
    """Local time New York's (summer time from 8 March 2026), this process's and git's."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_bare_date_is_that_day_at_now_s_time_of_day_as_git_reads_it(base, tmp_path,
                                                                       monkeypatch, new_york):
    """`--since 2026-12-01` was that day's start here; git 2.39's approxidate takes the
    day at the current time of day. Commits that day just after midnight, a minute before
    and after now's time of day, and just before midnight; git's log and memstore's with
    the same dates list the same ones. Both read one fixed now (GIT_TEST_DATE_NOW, git's
    since 2.24; dates.clock): on the real clock, midnight, a summer-time change or a
    minute passing between the two logs (or the commits) made them differ. Now in summer
    time, the day in winter time: git's cut is now less whole days (an hour before that
    day's 15:20:41 there), memstore's was 15:20:41."""
    today = dt.datetime(2026, 3, 9, 15, 20, 41)  # local, summer time; the day in winter's
    monkeypatch.setattr(dates, "clock", lambda: today.astimezone())
    day = today.date() - dt.timedelta(days=5)
    at_now = dt.datetime.combine(day, today.time())  # on the clock, winter time
    days_before = today.astimezone() - dt.timedelta(days=5)  # an hour earlier there
    times = sorted(int(t.timestamp()) for t in (
        dt.datetime.combine(day, dt.time(0, 0, 30)), at_now - dt.timedelta(minutes=1),
        at_now + dt.timedelta(minutes=1), days_before - dt.timedelta(minutes=1),
        days_before + dt.timedelta(minutes=1), dt.datetime.combine(day, dt.time(23, 59, 30)),
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0, 30))))
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_TEST_DATE_NOW": str(int(today.timestamp()))}
    gitdir = tmp_path / "git"

    def git(*args: str, **extra: str) -> str:
        return children.run(["git", "-C", str(gitdir), *args], env=env | extra, check=True,
                            capture_output=True, text=True).stdout

    gitdir.mkdir()
    git("init", "-q")
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    with Repository.open(repo) as r:
        parents: list[str] = []
        for t in times:
            git("commit", "-q", "--allow-empty", "-m", str(t),
                GIT_COMMITTER_DATE=f"@{t}", GIT_AUTHOR_DATE=f"@{t}")
            parents = [r.write_commit([], parents=parents, basis=parents[0] if parents
                                      else None, message=str(t), time=t).id]
    for option in ("--since", "--until"):
        by_git = [int(x) for x in git("log", "--format=%s", f"{option}={day}").split()]
        mine = [int(e["message"]) for e in
                json.loads(ok("log", option, day.isoformat(), "--json", cwd=repo).stdout)]
        assert mine == by_git, option
        assert 0 < len(mine) < len(times), option  # the day is cut inside


def test_grep_reads_git_s_dialects_a_line_at_a_time(dated):
    """--grep was Python's re over the whole message: `sports|Asia` was an alternation,
    `^Paris` found no body line. git reads a basic regular expression (`|` is itself, `\\|`
    the alternation), an extended one with -E, text with -F (the last of them wins), and
    matches each line; --invert-grep keeps the commits that match none."""
    repo, c, _ = dated
    (c0, _), (c1, _), (c2, _), (c3, _), (c4, _) = c
    assert ids(repo, "--grep", "sports|Asia") == []
    assert ids(repo, "--grep", "sports\\|Asia") == [c3, c2, c1]
    assert ids(repo, "-E", "--grep", "sports|Asia") == [c3, c2, c1]
    assert ids(repo, "-E", "-F", "--grep", "sports|Asia") == []
    assert ids(repo, "-F", "--extended-regexp", "--grep", "sports|Asia") == [c3, c2, c1]
    assert ids(repo, "-P", "--grep", "sports|Asia") == [c3, c2, c1]
    assert ids(repo, "--grep", "^Paris") == [c0]  # the body's line
    assert ids(repo, "--grep", "capitals.*Rome") == []  # no match across lines
    assert ids(repo, "--grep", "[[:upper:]]\\{4,\\}") == [c2]
    assert ids(repo, "--invert-grep", "--grep", "sports") == [c4, c2, c0]
    assert ids(repo, "--invert-grep", "--grep", "sports", "--grep", "Asia",
               "--all-match") == [c4, c0]  # none of them, as git 2.39's


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_author_and_grep_patterns_list_what_git_lists(base, tmp_path, monkeypatch):
    """--author was a text matched in any case; git's is a pattern of --grep's dialect
    over `Name <email>`, in any case with -i only, several: any of them. The same three
    commits in git and here (each committed by its author), each option list asked of
    both."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "LC_ALL": "C.UTF-8"}
    gitdir = tmp_path / "git"
    gitdir.mkdir()

    def git(*args: str, **extra: str) -> str:
        return children.run(["git", "-C", str(gitdir), *args], env=env | extra, check=True,
                            capture_output=True, text=True).stdout

    git("init", "-q")
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    written = [("Ada Lovelace", "ada@x.org", "fix sports"),
               ("Grace Hopper", "grace@y.org", "add capitals"),
               ("Ada Lovelace", "ada@x.org", "add sports")]
    parents: list[str] = []
    for name, email, message in written:
        git("commit", "-q", "--allow-empty", "-m", message, GIT_AUTHOR_NAME=name,
            GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email)
        monkeypatch.setenv("MEMSTORE_AUTHOR", f"{name} <{email}>")
        with Repository.open(repo) as r:
            parents = [r.write_commit([], parents=parents, basis=parents[0] if parents
                                      else None, message=message).id]
    for args in (["--author", "ada"], ["--author", "Ada"], ["-i", "--author", "ADA"],
                 ["--author", "^Grace"], ["--author", "org>$"], ["--author", "Ada|Grace"],
                 ["-E", "--author", "Ada|Grace"], ["--author", "Ada", "--author", "Grace"],
                 ["-F", "--author", "a."], ["--author", "Ada", "--grep", "add"],
                 ["--author", "Ada", "--grep", "add", "--invert-grep"],
                 ["--grep", "add", "--grep", "sports", "--all-match"],
                 ["--committer", "^Ada"], ["--grep", "s$"], ["--grep", "s\\>"],
                 ["--grep", "^$"], ["--grep", "^$", "--invert-grep"]):
        by_git = git("log", "--format=%s", *args).splitlines()
        mine = [e["message"] for e in
                json.loads(ok("log", *args, "--json", cwd=repo).stdout)]
        assert mine == by_git, args
