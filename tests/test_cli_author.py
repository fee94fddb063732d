"""Who wrote a commit: MEMSTORE_AUTHOR, else git's user.name and user.email, else the login
and host; recorded in every commit a command writes (commit, revert, squash, merge), shown
by log and show, null for commits made before authors were recorded."""
from __future__ import annotations

import getpass
import json
import shutil
import socket

import children
import pytest
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    facts_files,
    last_line,
    ok,
    run,
    snapshot,
)

from memstore.store.repository import Repository


@pytest.fixture
def repo(base, tmp_path):
    return copy_repo(empty_template(base), tmp_path / "repo")


def author_of(repo, rev: str = "HEAD"):
    return json.loads(ok("show", rev, "--json", cwd=repo).stdout)["author"]


def test_every_command_that_writes_a_commit_records_its_author(repo, base, monkeypatch):
    files = facts_files(base)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Ada Lovelace <ada@example.org>")
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    ok("switch", "-c", "topic", cwd=repo)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Alan Turing <alan@example.org>")
    c2 = last_line(ok("commit", files["b"], cwd=repo))
    ok("switch", "main", cwd=repo)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Grace Hopper <grace@example.org>")
    ok("commit", files["c"], cwd=repo)
    ok("merge", "topic", cwd=repo)
    merged = author_of(repo)
    rv = last_line(ok("revert", c2, cwd=repo))
    reverted = author_of(repo)
    for rev in ("HEAD~1", "HEAD"):  # a merge and a revert are new writing: no author date
        made = json.loads(ok("show", rev, "--json", cwd=repo).stdout)
        assert made["author_time"] == made["time"], rev
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Edsger Dijkstra <ed@example.org>")
    ok("squash", c1, cwd=repo)  # git's `rebase -i` squash: the first commit's author, and
    squashed = json.loads(ok("show", "--json", cwd=repo).stdout)  # the squasher commits
    written = json.loads(ok("show", c2, "--json", cwd=repo).stdout)["time"]  # and its date
    assert squashed["author_time"] == written < squashed["time"]
    assert (author_of(repo, c1), author_of(repo, c2), merged, reverted, squashed["author"],
            squashed["committer"]) == (
        "Ada Lovelace <ada@example.org>", "Alan Turing <alan@example.org>",
        "Grace Hopper <grace@example.org>", "Grace Hopper <grace@example.org>",
        "Alan Turing <alan@example.org>", "Edsger Dijkstra <ed@example.org>")
    log = json.loads(ok("log", "--json", cwd=repo).stdout)
    assert [e["author"] for e in log][-1] == "Ada Lovelace <ada@example.org>"
    text = ok("log", cwd=repo).stdout
    assert "Author: Alan Turing <alan@example.org>\nCommit: Edsger Dijkstra <ed@example.org>\n" \
        "Date:" in text
    by = json.loads(ok("log", rv, "--author", "GRACE", "-i", "--json", cwd=repo).stdout)
    assert [e["author"] for e in by] == ["Grace Hopper <grace@example.org>"] * 3  # c3, merge,
    alan = json.loads(ok("log", rv, "--author", "alan", "-n", "1", "--json",  # and revert
                         cwd=repo).stdout)
    assert [e["id"] for e in alan] == [c2]  # -n counts the commits the filter keeps
    assert ok("log", "--author", "nobody", cwd=repo).stderr.strip() == "no commits match"
    assert "Author:    Ada Lovelace <ada@example.org>" in ok("show", c1, cwd=repo).stdout


def git_user(monkeypatch, tmp_path, name: str, email: str) -> None:
    """No MEMSTORE_AUTHOR; git's global config (in a HOME of its own) names the user."""
    monkeypatch.delenv("MEMSTORE_AUTHOR", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    assert shutil.which("git"), "git is needed here (CI clones with it)"
    for key, value in (("user.name", name), ("user.email", email)):
        children.run(["git", "config", "--global", key, value], check=True)


def test_without_memstore_author_git_s_user_then_the_login(repo, base, tmp_path, monkeypatch):
    git_user(monkeypatch, tmp_path, "Barbara Liskov", "bl@example.org")
    files = facts_files(base)
    ok("commit", files["a"], cwd=repo)
    assert author_of(repo) == "Barbara Liskov <bl@example.org>"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git: the login and host
    ok("commit", files["b"], cwd=repo)
    login = getpass.getuser()
    assert author_of(repo) == f"{login} <{login}@{socket.gethostname()}>"


def test_a_commit_made_before_authors_were_recorded_has_none(repo, base):
    from memstore.store import writer

    ok("commit", facts_files(base)["a"], cwd=repo)
    with Repository.open(repo) as r:  # as memstore wrote it before: no author key
        head = r.head().commit
        old = writer.write_commit(
            r.store, r.refs, r.base.hash, [], parents=[head], basis=head, message="old",
            metrics=None, operation="commit", info=None, time=None, ref="refs/heads/main",
            expected=head)
        assert "author" not in r.objects.get_json(old.id)
    assert author_of(repo) is None
    entry = json.loads(ok("log", "--json", cwd=repo).stdout)[0]
    assert (entry["author"], entry["committer"]) == (None, None)
    assert entry["author_time"] == entry["time"]  # no author date recorded: the time
    text = ok("log", "-n", "1", cwd=repo).stdout
    assert "Author" not in text and "Date:" in text
    assert "ok" in ok("fsck", cwd=repo).stdout.lower()


@pytest.mark.parametrize("key, value", [
    *(("author", v) for v in ["Eve\nCommit: 0 (HEAD -> main)", "\x1b[31mred", "", " padded",
                              "x" * 201, 7]),
    ("committer", "Eve\nCommit: 0 (HEAD -> main)"), ("committer", "\x1b[31mred"),
    ("committer", 7), ("author_time", "yesterday"), ("author_time", True),
    ("author_time", 1e400)])
def test_a_record_whose_author_memstore_would_not_write_is_refused(history, key, value):
    """A well-hashed commit record (another machine's push, a hand edit) whose author is
    no one line of printable text is refused where it is read, naming the object: a
    newline in it printed a forged line into log ('Commit: …'), an escape sequence went to
    the terminal, and fsck said ok. A committer is held to the same (one check, both), an
    author_time to a finite number of seconds (one that is a string is a traceback in log,
    and fsck passed it)."""
    from test_cli_damage import forge_head

    repo, _ = history
    oid = forge_head(repo, lambda record: record.update({key: value}))
    for args in (["log"], ["show"], ["blame"], ["fsck"]):
        r = run(*args, cwd=repo)
        assert r.exit_code == 1 and "Traceback" not in r.output, (args, r.output)
        lines = r.output.splitlines()
        assert not any(line.startswith("Commit:") for line in lines), (args, r.output)
        assert "\x1b" not in r.output and oid[:12] in r.output, (args, r.output)
        assert any(s in r.output for s in (f"{key} must be", "an author is one line")), \
            r.output


def test_blame_prints_an_author_date_past_any_date_whole(history):
    """A record's author_time is any finite number (as its time): one past any date (year
    10000) is printed as the number it is; blame cut that to its first ten characters, a
    number ten times too small ('2534023008')."""
    from test_cli_damage import forge_head

    repo, _ = history
    forge_head(repo, lambda record: record.update(author_time=253402300800))
    assert "253402300800 (seconds since 1970, past any date)" in ok("blame", cwd=repo).stdout


@pytest.mark.parametrize("value", ["two\nlines", "x" * 201, "bell\x07"])
def test_an_author_that_cannot_be_recorded_is_refused_before_any_work(repo, base, value,
                                                                       monkeypatch):
    from memstore.store import porcelain

    def work(*args, **kwargs):
        raise AssertionError("the commit ran before its author was checked")

    monkeypatch.setattr(porcelain, "commit", work)
    monkeypatch.setenv("MEMSTORE_AUTHOR", value)
    before = snapshot(repo)
    error_line(run("commit", facts_files(base)["a"], cwd=repo), 2,
               "MEMSTORE_AUTHOR: an author is one line of printable text")
    assert snapshot(repo) == before
    ok("log", cwd=repo)  # a command that writes no commit does not read it


def _ada_on_main_alan_on_topic(repo, files, monkeypatch) -> tuple[str, str]:
    """Ada's commit of a.jsonl (Danielle Darrieux, Porsche 911) on main, then Alan's of
    b.jsonl (Michael Jordan) on a branch `topic` from it; HEAD back on main. Their ids."""
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Ada <ada@example.org>")
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    ok("switch", "-c", "topic", cwd=repo)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Alan <alan@example.org>")
    c2 = last_line(ok("commit", files["b"], cwd=repo))
    ok("switch", "main", cwd=repo)
    return c1, c2


def test_blame_names_the_commit_and_author_that_wrote_each_live_fact(repo, base, monkeypatch):
    """Each live fact with the commit that wrote it, past the merge, revert and squash
    that carried its write on (named as `carried_by`), filtered by subject or text."""
    files = facts_files(base)
    c1, c2 = _ada_on_main_alan_on_topic(repo, files, monkeypatch)
    c3 = last_line(ok("commit", files["c"], cwd=repo))  # Toko Yasuda, Lionel Messi
    merge = last_line(ok("merge", "topic", cwd=repo))

    def rows(*args):
        return {r["subject"]: r for r in json.loads(ok("blame", *args, "--json",
                                                       cwd=repo).stdout)}

    got = rows()
    assert sorted(got) == ["Danielle Darrieux", "Lionel Messi", "Michael Jordan",
                           "Porsche 911", "Toko Yasuda"]
    assert got["Michael Jordan"]["commit"] == c2 and got["Michael Jordan"]["author"] == \
        "Alan <alan@example.org>"
    assert got["Michael Jordan"]["carried_by"] == merge  # the merge solved it again
    assert got["Danielle Darrieux"]["commit"] == c1 and got["Toko Yasuda"]["commit"] == c3
    assert got["Danielle Darrieux"]["target_new"] == "English"
    reverted = last_line(ok("revert", c1, cwd=repo))  # the sets after c1 are replayed
    got = rows()
    assert "Danielle Darrieux" not in got and got["Toko Yasuda"]["commit"] == c3
    assert got["Toko Yasuda"]["carried_by"] == reverted
    assert got["Toko Yasuda"]["summary"] == "2 facts from c.jsonl"
    squashed = last_line(ok("squash", "base", cwd=repo))
    got = rows()
    assert got["Michael Jordan"]["commit"] == c2 and got["Michael Jordan"]["carried_by"] == \
        squashed
    assert sorted(rows("--subject", "Lionel Messi")) == ["Lionel Messi"]
    assert sorted(rows("--contains", "PLAYS")) == ["Lionel Messi", "Michael Jordan",
                                                   "Toko Yasuda"]
    at_c2 = rows(c2)  # topic's state: c1's facts, then c2's own write
    assert sorted(at_c2) == ["Danielle Darrieux", "Michael Jordan", "Porsche 911"]
    assert at_c2["Michael Jordan"]["carried_by"] is None
    assert rows("base") == {}
    text = ok("blame", "--subject", "Michael Jordan", cwd=repo).stdout
    assert text.startswith(f"{c2[:12]} (Alan <alan@example.org> ")
    assert f", via {squashed[:12]}) 'Michael Jordan plays' -> 'soccer'" in text
    error_line(run("blame", "nosuch", cwd=repo), 2, "nosuch")


def test_blame_follows_a_cherry_picked_fact_back_to_the_picked_commit(repo, base,
                                                                     monkeypatch):
    """A fact a cherry-pick wrote is the picked commit's, the pick its carrier (as a merge
    is of what it brings in), through a revert that replays the pick too: blame named the
    pick, by whoever picked it, the way back lost at it (its message named the original)."""
    files = facts_files(base)
    c1, c2 = _ada_on_main_alan_on_topic(repo, files, monkeypatch)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Grace <grace@example.org>")
    pick = last_line(ok("cherry-pick", c2, cwd=repo))

    def jordan() -> dict:
        rows = json.loads(ok("blame", "--json", "--subject", "Michael Jordan", cwd=repo).stdout)
        assert len(rows) == 1
        return rows[0]

    row = jordan()
    assert (row["commit"], row["author"], row["carried_by"]) == \
        (c2, "Alan <alan@example.org>", pick)
    assert row["summary"] == "1 fact from b.jsonl"
    assert ok("blame", "--subject", "Michael Jordan", cwd=repo).stdout.startswith(
        f"{c2[:12]} (Alan <alan@example.org> ")
    reverted = last_line(ok("revert", c1, cwd=repo))  # the pick is replayed
    assert (jordan()["commit"], jordan()["carried_by"]) == (c2, reverted)
    ok("branch", "-D", "topic", cwd=repo)
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)  # HEAD's keeps C2
    ok("gc", cwd=repo)  # C2 is gone: the pick is the oldest writer held
    assert run("show", c2, cwd=repo).exit_code != 0
    assert (jordan()["commit"], jordan()["carried_by"]) == (pick, reverted)


def test_a_cherry_pick_keeps_the_picked_commit_s_author_and_records_the_picker(
        repo, base, monkeypatch):
    """git's cherry-pick keeps the original author and records the one who picked as its
    committer; memstore's recorded the picker as the author, and blame named them for the
    teammate's facts once the picked commit was gone (gc). show and log say `Commit:`
    where the committer is another, --json gives `committer` (null where none), --author
    matches the author and --committer the committer."""
    files = facts_files(base)
    c1, c2 = _ada_on_main_alan_on_topic(repo, files, monkeypatch)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Grace <grace@example.org>")
    pick = last_line(ok("cherry-pick", c2, cwd=repo))
    shown = json.loads(ok("show", pick, "--json", cwd=repo).stdout)
    assert (shown["author"], shown["committer"]) == ("Alan <alan@example.org>",
                                                     "Grace <grace@example.org>")
    text = ok("show", pick, cwd=repo).stdout
    assert "Author:    Alan <alan@example.org>\nCommit:    Grace <grace@example.org>\n" in text
    log = json.loads(ok("log", "--json", cwd=repo).stdout)
    assert [(e["id"], e["author"], e["committer"]) for e in log] == [
        (pick, "Alan <alan@example.org>", "Grace <grace@example.org>"),
        (c1, "Ada <ada@example.org>", None)]
    assert "Author: Alan <alan@example.org>\nCommit: Grace <grace@example.org>\nDate:" in \
        ok("log", "-n", "1", cwd=repo).stdout
    assert "Commit:" not in ok("log", c1, cwd=repo).stdout  # one name: no line for it

    def ids(*args: str) -> list[str]:
        return [e["id"] for e in json.loads(ok("log", *args, "--json", cwd=repo).stdout)]

    assert (ids("--author", "alan"), ids("--author", "grace")) == ([pick], [])
    assert (ids("--committer", "grace"), ids("--committer", "ada")) == ([pick], [c1])
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Alan <alan@example.org>")  # Alan picks his own
    ok("switch", "-c", "again", c1, cwd=repo)
    again = last_line(ok("cherry-pick", c2, cwd=repo))
    assert json.loads(ok("show", again, "--json", cwd=repo).stdout)["committer"] is None
    ok("switch", "main", cwd=repo)
    for branch in ("topic", "again"):
        ok("branch", "-D", branch, cwd=repo)
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)
    ok("gc", cwd=repo)  # c2 is gone: the pick is the writer blame names, and Alan its author
    assert run("show", c2, cwd=repo).exit_code != 0
    row, = json.loads(ok("blame", "--json", "--subject", "Michael Jordan", cwd=repo).stdout)
    assert (row["commit"], row["author"]) == (pick, "Alan <alan@example.org>")
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_blame_after_gc_of_the_commits_a_squash_replaced_names_the_squash(history):
    """gc (and a clone) leave out the commits a squash replaced, which its recorded paths
    still name: blame failed on every such repository ('object … is missing'). A fact
    whose writer is gone is the squash's; one written before the squashed commits keeps
    its writer."""
    repo, (c1, c2, _) = history
    squashed = last_line(ok("squash", c1, cwd=repo))  # c2 and c3 into one commit on c1
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)  # it keeps them
    ok("gc", cwd=repo)
    assert run("show", c2, cwd=repo).exit_code != 0  # gone
    got = {r["subject"]: (r["commit"], r["carried_by"])
           for r in json.loads(ok("blame", "--json", cwd=repo).stdout)}
    assert got == {"Danielle Darrieux": (c1, None), "Porsche 911": (c1, None),
                   "Michael Jordan": (squashed, None), "Toko Yasuda": (squashed, None),
                   "Lionel Messi": (squashed, None)}
    assert ok("blame", "--subject", "Michael Jordan", cwd=repo).stdout.startswith(
        f"{squashed[:12]} (")


def test_log_author_graph_joins_each_commit_to_the_kept_commits_it_descends_from(
        history, base, monkeypatch):
    """--author with --graph drew a lane from each kept commit to a parent left out, a lane
    that never ended (and the next kept commit in a column of its own, as if unrelated);
    the parents are rewritten to the nearest kept ancestors, as git's are."""
    repo, (c1, c2, c3) = history
    files = facts_files(base)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Zed <zed@example.org>")
    d = last_line(ok("commit", files["d"], cwd=repo))
    monkeypatch.delenv("MEMSTORE_AUTHOR")
    seed = author_of(repo, c3)
    monkeypatch.setenv("MEMSTORE_AUTHOR", seed)
    e = last_line(ok("commit", files["e"], cwd=repo))
    lines = ok("log", "--oneline", "--graph", "--author", seed, cwd=repo).stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["*", x[:12]] for x in (e, c3, c2, c1)]
    assert d[:12] not in ok("log", "--graph", "--author", seed, cwd=repo).stdout
    two = ok("log", "--oneline", "--graph", "--author", seed, "-n", "2", cwd=repo).stdout
    assert [line.split()[:2] for line in two.splitlines()] == [["*", e[:12]], ["*", c3[:12]]]


def test_a_git_config_author_that_cannot_be_recorded_is_refused_before_any_work(
        repo, base, tmp_path, monkeypatch):
    """Without MEMSTORE_AUTHOR, git's user.email of 230 characters (git takes it) was
    refused only when the commit was written, after the whole edit had run."""
    from memstore.store import porcelain

    def work(*args, **kwargs):
        raise AssertionError("the commit ran before its author was checked")

    monkeypatch.setattr(porcelain, "commit", work)
    git_user(monkeypatch, tmp_path, "Long", "a" * 230 + "@example.org")
    before = snapshot(repo)
    error_line(run("commit", facts_files(base)["a"], cwd=repo), 2,
               "git config user.name: an author is one line of printable text")
    assert snapshot(repo) == before
    ok("log", cwd=repo)  # a command that writes no commit does not read it


def test_the_author_checked_first_is_the_one_of_the_folder_given_with_c(
        repo, base, tmp_path, monkeypatch):
    """`memstore -C DIR commit`: the early check read git's config where memstore was
    started, the commit where it writes (DIR, in a git working tree whose own config names
    a user.email of 230 characters): the check passed and the write was refused, after the
    whole edit had run."""
    from memstore.store import porcelain

    def work(*args, **kwargs):
        raise AssertionError("the commit ran before its author was checked")

    git_user(monkeypatch, tmp_path, "Short", "short@example.org")
    project = tmp_path / "project"
    children.run(["git", "init", "-q", str(project)], check=True)
    children.run(["git", "-C", str(project), "config", "user.email",
                  "a" * 230 + "@example.org"], check=True)
    inside = copy_repo(repo, project / "repo")
    monkeypatch.chdir(tmp_path)  # outside the working tree: git's global config
    monkeypatch.setattr(porcelain, "commit", work)
    before = snapshot(inside)
    error_line(run("commit", facts_files(base)["a"], cwd=inside), 2,
               "git config user.name: an author is one line of printable text")
    assert snapshot(inside) == before


def test_a_commit_written_again_from_one_of_no_author_records_none_and_its_date(
        repo, base, monkeypatch):
    """A cherry-pick, rebase or squash of a commit made before authors were recorded (no
    `author` key) recorded whoever ran it as the author, with the original's date as the
    author date: a date that belonged to nobody named. The author stays unknown (none
    recorded, as in the original), its date the author date, and whoever wrote the commit
    again is its committer, now its time."""
    from memstore.store import writer
    from memstore.store.commits import StoredSet, load_requests

    files = facts_files(base)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Ada <ada@example.org>")
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    ok("switch", "-c", "src", cwd=repo)
    src = last_line(ok("commit", files["b"], cwd=repo))
    old_time = 1_700_000_000.0
    with Repository.open(repo) as r:  # src's facts as memstore wrote them before: no author
        old = writer.write_commit(
            r.store, r.refs, r.base.hash,
            [StoredSet(load_requests(r.objects, s), s) for s in r.get_commit(src).update_sets],
            parents=[c1],
            basis=c1, message="old", metrics=None, operation="commit", info=None,
            time=old_time, ref="refs/heads/old", expected=None).id
        assert "author" not in r.objects.get_json(old)
    ok("switch", "main", cwd=repo)
    ok("branch", "-D", "src", cwd=repo)
    ok("branch", "again", old, cwd=repo)
    monkeypatch.setenv("MEMSTORE_AUTHOR", "Grace <grace@example.org>")
    ok("commit", files["c"], cwd=repo)
    written = {"cherry-pick": last_line(ok("cherry-pick", old, cwd=repo))}
    ok("switch", "old", cwd=repo)
    ok("rebase", "main~1", cwd=repo)
    written["rebase"] = json.loads(ok("show", "--json", cwd=repo).stdout)["id"]
    ok("switch", "again", cwd=repo)
    ok("squash", c1, "-m", "squashed", cwd=repo)
    written["squash"] = json.loads(ok("show", "--json", cwd=repo).stdout)["id"]
    for how, cid in written.items():
        shown = json.loads(ok("show", cid, "--json", cwd=repo).stdout)
        assert (shown["author"], shown["committer"], shown["author_time"]) == \
            (None, "Grace <grace@example.org>", old_time), how
        assert shown["time"] > old_time, how
        text = ok("show", cid, cwd=repo).stdout
        assert "Author:" not in text and "Commit:    Grace <grace@example.org>\n" in text
        for who, found in (("--committer", [cid]), ("--author", [])):
            got = json.loads(ok("log", f"{cid}~1..{cid}", who, "grace", "--json",
                                cwd=repo).stdout)
            assert [e["id"] for e in got] == found, (how, who)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
