"""`memstore branch -r` and `-a`: the remote-tracking branches a fetch left (origin/main), listed
as git's are; `branch -d -r REMOTE/BRANCH` forgets one here, the remote unchanged; every way
they cannot be used, and a damaged remote-tracking ref, is one line with nothing changed."""
from __future__ import annotations

import json
import sqlite3

import pytest
from cli_support import copy_repo, error_line, history_template, log_json, ok, run, snapshot
from remote_support import remote_files


@pytest.fixture
def fetched(base, tmp_path):
    """A three-commit repository (ids C1..C3, main at C3) with branch topic at C2, both
    pushed to origin (a folder): remote-tracking branches origin/main and origin/topic."""
    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("branch", "topic", ids[1], cwd=repo)
    for name in ("main", "topic"):
        ok("push", "origin", name, cwd=repo)
    return repo, ids, str(tmp_path / "remote")


def listed(repo, *args) -> list[dict]:
    return json.loads(ok("branch", *args, "--json", cwd=repo).stdout)


def lines(repo, *args) -> list[list[str]]:
    """Each line of `branch ARGS` split into its mark, name and short id (the subject left
    out), a missing mark as ' '."""
    return [[line[0], *line[2:].split()[:2]] for line in ok("branch", *args, cwd=repo)
            .stdout.splitlines()]


def sql(repo, statement: str, *args) -> None:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute(statement, args)
    con.close()


def test_r_lists_the_remote_tracking_branches_and_a_the_local_ones_first(fetched):
    repo, (_, c2, c3), _ = fetched
    assert lines(repo, "-r") == [[" ", "origin/main", c3[:12]], [" ", "origin/topic", c2[:12]]]
    assert lines(repo, "-a") == [["*", "main", c3[:12]], [" ", "topic", c2[:12]],
                                 [" ", "remotes/origin/main", c3[:12]],
                                 [" ", "remotes/origin/topic", c2[:12]]]
    assert ok("branch", "-r", cwd=repo).stdout.splitlines()[1].endswith(" facts b")
    local = [{"name": "main", "commit": c3, "remote": False, "current": True},
             {"name": "topic", "commit": c2, "remote": False, "current": False}]
    tracking = [{"name": "origin/main", "commit": c3, "remote": True, "current": False},
                {"name": "origin/topic", "commit": c2, "remote": True, "current": False}]
    assert listed(repo) == local
    assert listed(repo, "-r") == tracking
    assert listed(repo, "-a") == listed(repo, "-r", "-a") == local + tracking
    # the name -a shows is a revision, as in git; a JSON name is the REMOTE/BRANCH one
    assert log_json(repo, "remotes/origin/topic")[0]["id"] == c2
    ok("switch", "--detach", "HEAD~2", cwd=repo)  # -a says a detached HEAD, as the list does
    assert lines(repo, "-a")[0][:2] == ["*", "(HEAD"] and lines(repo, "-r")[0][1] == "origin/main"


def test_with_no_remote_tracking_branch_r_lists_none(history):
    repo, _ = history
    assert ok("branch", "-r", cwd=repo).stdout == "" and listed(repo, "-r") == []
    assert [b["name"] for b in listed(repo, "-a")] == ["main"]


def test_d_r_forgets_a_remote_tracking_branch_here_and_the_next_fetch_brings_it_back(fetched):
    """As git's `branch -d -r`: no merge check (the remote has it), nothing on the remote
    changes; a branch whose upstream it was is reported gone; a fetch writes it again."""
    repo, (_, c2, _), url = fetched
    ok("branch", "--set-upstream-to", "origin/topic", "topic", cwd=repo)
    on_remote = remote_files(url)
    out = ok("branch", "-d", "-r", "origin/topic", cwd=repo).stdout
    assert out == f"Deleted remote-tracking branch origin/topic (was {c2[:12]}).\n"  # git's
    assert [b["name"] for b in listed(repo, "-a")] == ["main", "topic", "origin/main"]
    assert remote_files(url) == on_remote
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"  # the ref snapshot recorded the delete
    ok("switch", "topic", cwd=repo)
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["upstream"]["gone"] is True
    ok("fetch", cwd=repo)
    assert listed(repo, "-r")[1] == {"name": "origin/topic", "commit": c2, "remote": True,
                                     "current": False}
    assert json.loads(ok("branch", "-D", "-r", "origin/topic", "--json", cwd=repo).stdout) == {
        "deleted": "origin/topic", "commit": c2, "remote": True}


@pytest.mark.parametrize("args, says", [
    (("-d", "-r", "origin/nope"), "no remote-tracking branch 'origin/nope' (`memstore branch -r"),
    (("-d", "-r", "topic"), "'topic' (it is a local branch: `memstore branch -d topic` deletes"),
    (("-d", "-r", "remotes/origin/topic"), "(`branch -a` shows it so: say 'origin/topic')"),
    (("-d", "-r", "x" * 300), "no remote-tracking branch '" + "x" * 100 + "…'"),
    (("-d", "-r"), "branch -d -r needs a REMOTE/BRANCH"),
    # all or none: origin/topic is kept
    (("-d", "-r", "origin/topic", "origin/nope"),
     "no remote-tracking branch 'origin/nope' (`memstore branch -r` lists them); none of the 2"),
    (("-d", "-r", "origin/topic", "a/b", "c/d"), "no remote-tracking branches 'a/b', 'c/d' ("),
    (("-r", "-l", "-d", "origin/*"), "--list lists branches: no -d"),
    (("-d", "-a", "origin/topic"), "-a cannot be used with -d/-D"),
    (("-D", "-a", "-r", "origin/topic"), "-a cannot be used with -d/-D"),
    (("-r", "-m", "x"), "-r cannot be used with -m"),
    (("-a", "-m", "main", "x"), "-a cannot be used with -m"),
    (("-r", "--set-upstream-to", "origin/main"), "-r cannot be used with --set-upstream-to"),
    (("-a", "--unset-upstream"), "-a cannot be used with --set-upstream-to or --unset-upstream"),
    (("-r", "new"), "-r lists branches and takes no NAME"),
    (("-a", "new", "origin/main"), "-a lists branches and takes no NAME"),
])
def test_what_r_and_a_cannot_do_is_one_line_and_changes_nothing(fetched, args, says):
    repo, _, _ = fetched
    before = snapshot(repo)
    error_line(run("branch", *args, cwd=repo), 2, says)
    assert snapshot(repo) == before


def test_d_r_forgets_several_and_list_matches_remote_ones_as_origin_slash(fetched):
    """`branch -d -r A B` forgets both (it deleted one at a time); `--list PATTERN` with -r
    or -a matches a remote-tracking branch by its REMOTE/BRANCH name, as git's."""
    repo, (_, c2, c3), _ = fetched
    assert [b["name"] for b in listed(repo, "-a", "--list", "origin/t*")] == ["origin/topic"]
    assert lines(repo, "-a", "-l", "*top*") == [[" ", "topic", c2[:12]],
                                                [" ", "remotes/origin/topic", c2[:12]]]
    assert listed(repo, "-r", "--list", "*/main", "x") == [
        {"name": "origin/main", "commit": c3, "remote": True, "current": False}]
    assert json.loads(ok("branch", "-d", "-r", "origin/topic", "origin/main", "--json",
                         cwd=repo).stdout) == [
        {"deleted": "origin/topic", "commit": c2, "remote": True},
        {"deleted": "origin/main", "commit": c3, "remote": True}]
    assert listed(repo, "-r") == []


UNSOUND = "refs/remotes/origin/topic"


@pytest.mark.parametrize("damage, says", [
    ("target = 'garbage'", f"ref {UNSOUND} holds 'garbage', not a commit id"),
    ("target = ''", f"ref {UNSOUND} holds '', not a commit id"),
    ("target = NULL", f"ref {UNSOUND} holds 'None', not a commit id"),
    ("target = x'00ff'", f"ref {UNSOUND} holds \"b'\\\\x00\\\\xff'\""),  # bytes, not text
    ("target = NULL, symbolic = 'refs/heads/main'",
     f"ref {UNSOUND} is damaged (symbolic 'refs/heads/main')"),
])
def test_a_damaged_remote_tracking_ref_is_named_in_one_line(fetched, damage, says):
    """A remote-tracking ref's row of the index damaged by hand or a bad copy: -r and -a
    name it (no traceback), the local listing is not concerned, and a delete of another
    (which records every ref in a snapshot) is refused before any change; fsck names it
    too. `-d -r` of the damaged one deletes it where its row holds no commit id (as git
    deletes a broken ref; the next fetch brings it back), a symbolic one too (it holds
    no commit id either: with no snapshot nothing else could end it)."""
    repo, _, _ = fetched
    sql(repo, f"update refs set {damage} where name = ?", UNSOUND)
    before = snapshot(repo)
    for args in (("-r",), ("-a",), ("-a", "--json")):
        error_line(run("branch", *args, cwd=repo), 1, says)
    assert [b["name"] for b in listed(repo)] == ["main", "topic"]
    error_line(run("branch", "-d", "-r", "origin/main", cwd=repo), 1, says)
    assert snapshot(repo) == before
    assert UNSOUND in run("fsck", cwd=repo).stdout
    ok("branch", "-d", "-r", "origin/topic", cwd=repo)
    assert [b["name"] for b in listed(repo, "-r")] == ["origin/main"]
    assert UNSOUND not in run("fsck", cwd=repo).stdout


def test_a_remote_tracking_branch_naming_a_commit_not_here_is_named_and_can_go(fetched):
    """A sound row whose commit this repository lacks (a bad copy of the index): the text
    listing, which reads each commit's subject, names the ref with the object it lacks;
    `-d -r` forgets it."""
    repo, _, _ = fetched
    missing = "a" * 64
    sql(repo, "update refs set target = ? where name = ?", missing, UNSOUND)
    before = snapshot(repo)
    for args in (("-r",), ("-a",)):
        error_line(run("branch", *args, cwd=repo), 1,
                   f"{UNSOUND}: object {missing} is missing")
    assert snapshot(repo) == before
    assert listed(repo, "-r")[1]["commit"] == missing  # JSON reads no commit
    ok("branch", "-d", "-r", "origin/topic", cwd=repo)
    assert [b["name"] for b in listed(repo, "-r")] == ["origin/main"]
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_no_ref_is_made_or_moved_onto_a_commit_the_index_lacks(fetched):
    """A remote-tracking branch naming a commit this repository lacks (its row damaged or
    written by hand): `switch topic`, `switch -c x origin/x`, `branch x origin/x`, a tag,
    `branch -f` and a detached switch made a ref on that commit and exited 0 (reset refused
    it as 'unknown commit' with the full id, merge naming no ref). Each is one line naming
    what it would do, the revision and the commit; nothing changed. One repository for all
    (each refusal leaves it as it was)."""
    repo, (c1, _, _), _ = fetched
    ok("branch", "-D", "topic", cwd=repo)
    ok("branch", "old", c1, cwd=repo)
    missing = "a" * 64
    sql(repo, "update refs set target = ? where name = ?", missing, UNSOUND)
    before = snapshot(repo)
    for args, doing in (
            (["switch", "topic"], "create branch 'topic'"),  # git's guess from origin/topic
            (["switch", "-c", "x", "origin/topic"], "create branch 'x'"),
            (["checkout", "-b", "x", "remotes/origin/topic"], "create branch 'x'"),
            (["branch", "x", "origin/topic"], "create branch 'x'"),
            (["branch", "-f", "old", "refs/remotes/origin/topic"], "move branch 'old'"),
            (["tag", "t", "origin/topic"], "create tag 't'"),
            (["switch", "--detach", "origin/topic"], "detach HEAD"),
            (["switch", "origin/topic"], "detach HEAD"),
            (["reset", "--hard", "origin/topic"], "reset branch 'main'"),
            (["merge", "origin/topic"], "merge")):
        rev = next((a for a in args if a.endswith("origin/topic")), "origin/topic")
        error_line(run(*args, cwd=repo), 1, f"cannot {doing}: {rev!r} names commit "
                   f"{missing[:12]}, which is not in the index; run `memstore fsck`")
        assert snapshot(repo) == before, args


def test_switch_c_at_remotes_origin_x_tracks_it_as_at_origin_x(fetched):
    """`switch -c x remotes/origin/x` (as `branch -a` shows it) made x at origin/x with no
    upstream, where `switch -c x origin/x` records one; git takes both spellings, and
    refs/remotes/origin/x. So does `branch --set-upstream-to` (it said 'no remote
    'remotes'')."""
    repo, (c1, c2, c3), _ = fetched
    for name, start, commit in (("a", "remotes/origin/topic", c2),
                                ("b", "refs/remotes/origin/main", c3)):
        d = json.loads(ok("switch", "-c", name, start, "--json", cwd=repo).stdout)
        assert (d["branch"], d["commit"], d["upstream"]) == (name, commit, start.split(
            "remotes/", 1)[1])
    ok("switch", "-c", "c", c1, cwd=repo)  # a commit id: no upstream
    for spelled in ("remotes/origin/topic", "refs/remotes/origin/main"):
        d = json.loads(ok("branch", "--set-upstream-to", spelled, "c", "--json",
                          cwd=repo).stdout)
        assert d == {"branch": "c", "upstream": spelled.split("remotes/", 1)[1]}
    ups = {b["name"]: b["upstream"] for b in listed(repo, "-vv")}
    assert (ups["a"], ups["b"], ups["c"]) == ("origin/topic", "origin/main", "origin/main")


def test_no_branch_or_tag_takes_the_name_a_shows_a_remote_tracking_branch_by(fetched):
    """`remotes/origin/main` became a revision (as `branch -a` shows origin/main), but a
    branch so named could still be made, as `origin/main` could not: `branch -a` then
    listed two `remotes/origin/main` lines at different commits, and `log
    remotes/origin/main` read the local branch. Refused now as `origin/main` is, for a
    branch, a tag and a rename, in one line with nothing changed; a name under remotes/
    that no remote owns is a branch as before."""
    repo, (c1, _, c3), _ = fetched
    before = snapshot(repo)
    for args in (["branch", "remotes/origin/main", c1], ["tag", "remotes/origin/main", c1],
                 ["branch", "-m", "topic", "remotes/origin/topic"],
                 ["branch", "remotes/origin/new", c1]):
        error_line(run(*args, cwd=repo), 2, f"invalid {'tag' if args[0] == 'tag' else 'branch'}"
                   f" name 'remotes/origin/")
        assert snapshot(repo) == before, args
    assert log_json(repo, "remotes/origin/main")[0]["id"] == c3
    ok("branch", "remotes/elsewhere/main", c1, cwd=repo)
    assert log_json(repo, "remotes/elsewhere/main")[0]["id"] == c1


def test_switch_to_a_branch_only_a_remote_has_makes_it_there_tracking_it(fetched, tmp_path):
    """git's guess: `switch topic` with no branch topic here but origin/topic makes topic at
    origin/topic with it as upstream (it was 'unknown revision'); `switch -c x origin/x`
    records the upstream too; two remotes' topic: one line naming both, nothing changed."""
    repo, (_, c2, c3), _ = fetched
    ok("branch", "-D", "topic", cwd=repo)
    r = ok("switch", "topic", cwd=repo)
    assert r.stdout.splitlines() == ["branch 'topic' set up to track 'origin/topic'.",
                                     "Switched to a new branch 'topic'"]
    [row] = [b for b in listed(repo, "-vv") if b["name"] == "topic"]
    assert (row["commit"], row["current"], row["upstream"]) == (c2, True, "origin/topic")
    d = json.loads(ok("switch", "-c", "mine", "origin/main", "--json", cwd=repo).stdout)
    assert (d["branch"], d["commit"], d["created"], d["upstream"]) == ("mine", c3, True,
                                                                        "origin/main")
    assert json.loads(ok("switch", "main", "--json", cwd=repo).stdout)["upstream"] is None
    ok("remote", "add", "team", tmp_path / "team", cwd=repo)
    ok("push", "team", "topic", cwd=repo)
    ok("branch", "-D", "topic", cwd=repo)
    before = snapshot(repo)
    line = error_line(run("switch", "topic", cwd=repo), 2, "matches 2 remote-tracking")
    assert "origin/topic, team/topic" in line
    assert snapshot(repo) == before


def test_a_remote_tracking_branch_of_no_recorded_remote_is_neither_guessed_nor_tracked(fetched):
    """The upstream of a branch made at a remote-tracking branch was recorded after the
    switch: one whose remote is not recorded (the remotes row edited by hand) made `switch
    topic` and `switch -c NAME origin/main` exit 2 ('no remote') with the branch made and
    HEAD on it, an error path that changed the repository. As git's, such a branch is not
    guessed (nothing changed) nor tracked (the branch is made without an upstream)."""
    repo, (_, _, c3), _ = fetched
    ok("branch", "-D", "topic", cwd=repo)
    sql(repo, "delete from config where key = 'remotes'")
    before = snapshot(repo)
    error_line(run("switch", "topic", cwd=repo), 2, "unknown revision 'topic'")
    assert snapshot(repo) == before
    d = json.loads(ok("switch", "-c", "mine", "origin/main", "--json", cwd=repo).stdout)
    assert (d["branch"], d["commit"], d["upstream"]) == ("mine", c3, None)
    [row] = [b for b in listed(repo, "-vv") if b["name"] == "mine"]
    assert row["upstream"] is None


def test_branch_made_at_a_remote_tracking_branch_tracks_it_as_git_s(fetched):
    """`branch NAME origin/x` (remotes/origin/x, refs/remotes/origin/x; -f too) made NAME
    there with no upstream, as switch -c did not: git's records it (autoSetupMerge) and says
    so. --no-track makes none; a start that is no remote-tracking branch records none."""
    repo, (c1, c2, c3), _ = fetched
    r = ok("branch", "mine", "origin/topic", cwd=repo)
    assert r.stdout.splitlines() == ["branch 'mine' set up to track 'origin/topic'.",
                                     f"Created branch mine at {c2[:12]}"]
    d = json.loads(ok("branch", "two", "remotes/origin/main", "--json", cwd=repo).stdout)
    assert d == {"created": "two", "commit": c3, "upstream": "origin/main"}
    d = json.loads(ok("branch", "-f", "topic", "refs/remotes/origin/main", "--json",
                      cwd=repo).stdout)
    assert (d["moved"], d["commit"], d["upstream"]) == ("topic", c3, "origin/main")
    assert json.loads(ok("branch", "plain", c1, "--json", cwd=repo).stdout)["upstream"] is None
    ok("branch", "--no-track", "loose", "origin/topic", cwd=repo)
    assert "set up" not in ok("branch", "-f", "--no-track", "loose", "origin/main",
                              cwd=repo).stdout
    ups = {b["name"]: b["upstream"] for b in listed(repo, "-vv")}
    assert (ups["mine"], ups["two"], ups["topic"]) == ("origin/topic", "origin/main",
                                                       "origin/main")
    assert ups["plain"] is None and ups["loose"] is None
    before = snapshot(repo)
    error_line(run("branch", "--no-track", "-d", "plain", cwd=repo), 2, "--no-track goes with")
    assert snapshot(repo) == before


def test_push_tag_without_its_name_says_the_name_is_missing(fetched):
    """`push origin tag` (git's `tag NAME` with no NAME) said "no branch 'tag'"; git 2.39's
    line now, nothing pushed, a branch named tag too (git refuses it so: `fatal: tag
    shorthand without <tag>`, exit 128; memstore's usage status is 2), and in a delete
    (it deleted the remote's branch named tag); refs/heads/tag pushes and deletes it."""
    repo, _, url = fetched
    ok("branch", "tag", cwd=repo)
    before = remote_files(url)
    for args in (("push", "origin", "tag"), ("push", "--tags", "origin", "tag"),
                 ("push", "-d", "origin", "tag"), ("push", "-d", "origin", "tag", "v1", "tag")):
        error_line(run(*args, cwd=repo), 2, "tag shorthand without <tag>: `memstore push "
                   "origin tag v1` pushes tag v1")
    assert remote_files(url) == before
    ok("push", "origin", "refs/heads/tag", cwd=repo)
    assert any(p.endswith("heads/tag") for p in remote_files(url))
    error_line(run("push", "-d", "origin", "tag", cwd=repo), 2, "tag shorthand without")
    assert any(p.endswith("heads/tag") for p in remote_files(url))
    ok("push", "-d", "origin", "refs/heads/tag", cwd=repo)
    assert not any(p.endswith("heads/tag") for p in remote_files(url))


def test_a_remote_tracking_branch_no_upstream_can_name_refuses_before_anything_moves(fetched):
    """A remote-tracking branch fetched before names were checked for characters that do
    not show as themselves (cd5f049; fetch passes such a branch over since, the one here
    stays): `branch mine origin/caf\u200be`, `branch -f`, `switch -c` (checkout -b) and
    the guess of `switch caf\u200be` made the branch (switch moved HEAD onto it too), then
    refused to record the upstream: exit 2 with the repository changed. Refused first now,
    nothing changed; --no-track makes the branch there with no upstream."""
    repo, (_, c2, _), _ = fetched
    legacy = "origin/caf\u200be"
    sql(repo, "insert into refs (name, target) values (?, ?)", "refs/remotes/" + legacy, c2)
    ok("branch", "other", cwd=repo)
    before = snapshot(repo)
    for args in (("branch", "mine", legacy), ("branch", "-f", "other", legacy),
                 ("switch", "-c", "mine", legacy), ("checkout", "-b", "mine", legacy),
                 ("switch", "caf\u200be")):
        error_line(run(*args, cwd=repo), 2, f"{legacy!r} cannot be an upstream: invalid "
                   "branch name")
        assert snapshot(repo) == before, args
    assert json.loads(ok("branch", "--no-track", "mine", legacy, "--json", cwd=repo)
                      .stdout) == {"created": "mine", "commit": c2, "upstream": None}


def test_branch_u_and_track_as_git_types_them(fetched):
    """git 2.39's `branch -u origin/x` (--set-upstream-to's short form) and `branch --track
    NAME origin/x` were 'No such option'; each records the upstream now and says so as git
    does, its period too ("branch 'x' set up to track 'origin/x'.", which branch NAME REV,
    -f and switch -c said without it). --track of a REV that is no remote-tracking branch
    (a commit, a tag, a local branch: git tracks that one, memstore's upstreams are
    remote) is refused before anything moves, as are --track with --no-track and --track
    with no branch made."""
    repo, (c1, c2, _), _ = fetched
    assert ok("branch", "-u", "origin/topic", cwd=repo).stdout == \
        "branch 'main' set up to track 'origin/topic'.\n"
    assert ok("branch", "-u", "origin/main", "topic", cwd=repo).stdout == \
        "branch 'topic' set up to track 'origin/main'.\n"
    ups = {b["name"]: b["upstream"] for b in listed(repo, "-vv")}
    assert (ups["main"], ups["topic"]) == ("origin/topic", "origin/main")
    assert ok("branch", "--track", "mine", "origin/topic", cwd=repo).stdout.splitlines() == [
        "branch 'mine' set up to track 'origin/topic'.", f"Created branch mine at {c2[:12]}"]
    assert ok("branch", "-f", "--track", "mine", "origin/main", cwd=repo).stdout \
        .startswith("branch 'mine' set up to track 'origin/main'.\n")
    assert ok("switch", "-c", "sw", "origin/topic", cwd=repo).stdout.startswith(
        "branch 'sw' set up to track 'origin/topic'.\n")
    ok("tag", "v1", c1, cwd=repo)
    before = snapshot(repo)
    for args in (("branch", "--track", "x", c1), ("branch", "--track", "x", "v1"),
                 ("branch", "--track", "x", "main"), ("branch", "--track", "x"),
                 ("branch", "-f", "--track", "mine", "v1")):
        error_line(run(*args, cwd=repo), 2, "--track needs a REV that is a remote-tracking "
                   "branch (origin/x)")
    error_line(run("branch", "--track", "--no-track", "x", "origin/main", cwd=repo), 2,
               "--track and --no-track cannot be used together")
    error_line(run("branch", "--track", "-d", "mine", cwd=repo), 2, "--track goes with a "
               "branch made")
    for args in (("-u", "origin/nope"), ("--track", "x", "origin/nope")):  # git's words
        error_line(run("branch", *args, cwd=repo), 2, "the requested upstream branch "
                   "'origin/nope' does not exist: fetch origin first")
    assert snapshot(repo) == before


def test_branch_u_origin_head_tracks_its_branch_and_says_git_s_line_where_it_names_none(
        fetched):
    """`branch -u origin/HEAD` tracks the branch origin/HEAD names, as git 2.39's ("set
    up to track 'origin/main'."). One naming a branch not here (dangling: the branch
    deleted here) or none at all (set-head -d) is git 2.39.5's 'the requested upstream
    branch 'origin/HEAD' does not exist', as for --track x origin/HEAD; memstore said
    "invalid branch name 'HEAD': 'HEAD' is reserved" for -u, naming no way out."""
    repo, _, _ = fetched
    ok("remote", "set-head", "origin", "topic", cwd=repo)
    assert ok("branch", "-u", "origin/HEAD", cwd=repo).stdout == \
        "branch 'main' set up to track 'origin/topic'.\n"
    ok("branch", "-d", "-r", "origin/topic", cwd=repo)
    before = snapshot(repo)
    for args in (("-u", "origin/HEAD"), ("--track", "x", "origin/HEAD")):
        error_line(run("branch", *args, cwd=repo), 2, "the requested upstream branch "
                   "'origin/HEAD' does not exist: fetch origin first")
    assert snapshot(repo) == before
    ok("remote", "set-head", "origin", "-d", cwd=repo)
    error_line(run("branch", "-u", "origin/HEAD", cwd=repo), 2, "the requested upstream "
               "branch 'origin/HEAD' does not exist")
