"""When a commit was written by its author and when it was committed, as git's author date
and committer date: a cherry-pick, rebase or squash keeps the original's author date
(author_time) and is committed now (time); log and show print the author date as `Date:`,
the commit date beside it where it differs; log's date filters read the commit date."""
from __future__ import annotations

import datetime
import json
from types import SimpleNamespace

import pytest
from cli_support import copy_repo, empty_template, facts_files, last_line, model_dir, ok

from cli.output import when
from memstore.store import writer
from memstore.store.repository import Repository

ADA, ALAN, GRACE = "Ada <ada@example.org>", "Alan <alan@example.org>", "Grace <grace@example.org>"


def at(day: int) -> float:
    """Seconds since the epoch of 2026-11-DAY 10:00 UTC."""
    return datetime.datetime(2026, 11, day, 10, tzinfo=datetime.UTC).timestamp()


@pytest.fixture
def clock(monkeypatch):
    """The time a commit records (writer.clock), set by the test."""
    fake = SimpleNamespace(now=at(1))
    monkeypatch.setattr(writer, "clock", SimpleNamespace(time=lambda: fake.now))
    return fake


def shown(repo, rev: str) -> dict:
    return json.loads(ok("show", rev, "--json", cwd=repo).stdout)


def test_a_cherry_pick_keeps_the_author_date_and_log_filters_on_the_commit_date(
        base, tmp_path, clock, monkeypatch):
    """Alan writes C2 on topic on the 5th; Grace picks it onto main on the 20th. The pick
    recorded one time, the 20th's, and show, log and --json gave that alone: when Alan
    wrote the facts was lost. Now the pick keeps his date as its author date, printed as
    `Date:` with `(committed …)` beside it, and a pick of the pick keeps it still;
    --since/--until read the commit date (git's committer date); a commit written once has
    no author_time in its record (the bytes, and so the ids, it always had); a clone
    carries it, and blame there, naming the pick, gives Alan's date."""
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    files = facts_files(base)
    monkeypatch.setenv("MEMSTORE_AUTHOR", ADA)
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    ok("switch", "-c", "topic", cwd=repo)
    clock.now = at(5)
    monkeypatch.setenv("MEMSTORE_AUTHOR", ALAN)
    c2 = last_line(ok("commit", files["b"], cwd=repo))
    ok("switch", "main", cwd=repo)
    clock.now = at(20)
    monkeypatch.setenv("MEMSTORE_AUTHOR", GRACE)
    pick = last_line(ok("cherry-pick", c2, cwd=repo))
    d = shown(repo, pick)
    assert (d["author"], d["committer"], d["author_time"], d["time"]) == (
        ALAN, GRACE, at(5), at(20))
    assert (shown(repo, c2)["author_time"], shown(repo, c1)["author_time"]) == (at(5), at(1))
    with Repository.open(repo) as r:
        assert "author_time" not in r.objects.get_json(c1)
        assert r.objects.get_json(pick)["author_time"] == at(5)
    fuller = f"{when(at(5))} (committed {when(at(20))})"
    assert f"Author: {ALAN}\nCommit: {GRACE}\nDate:   {fuller}\n" in \
        ok("log", "-n", "1", cwd=repo).stdout
    assert f"Commit:    {GRACE}\nDate:      {fuller}\n" in ok("show", pick, cwd=repo).stdout
    assert f"Date:   {when(at(1))}\nFacts:" in ok("log", c1, cwd=repo).stdout
    assert f"Date:      {when(at(5))}\n" in ok("show", c2, cwd=repo).stdout
    entries = json.loads(ok("log", "--json", cwd=repo).stdout)
    assert [(e["id"], e["author_time"], e["time"]) for e in entries] == [
        (pick, at(5), at(20)), (c1, at(1), at(1))]

    def ids(*args: str) -> list[str]:
        return [e["id"] for e in json.loads(ok("log", *args, "--json", cwd=repo).stdout)]

    # the pick was committed on the 20th, though written on the 5th: git's filters
    assert ids("--since", "2026-11-10T00:00Z") == [pick]
    assert ids("--until", "2026-11-10T00:00Z") == [c1]
    assert ids("--after", "2026-11-04T00:00Z", "--before", "2026-11-06T00:00Z") == []

    clock.now = at(25)  # Grace picks the pick onto another branch: still Alan's 5th
    ok("switch", "-c", "other", c1, cwd=repo)
    again = last_line(ok("cherry-pick", pick, cwd=repo))
    assert (shown(repo, again)["author_time"], shown(repo, again)["time"]) == (at(5), at(25))

    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    clone = tmp_path / "clone"
    ok("clone", tmp_path / "remote", clone, "--base", model_dir(base))
    d = shown(clone, pick)
    assert (d["author_time"], d["time"], d["committer"]) == (at(5), at(20), GRACE)
    assert f"Date:   {fuller}\n" in ok("log", "-n", "1", cwd=clone).stdout
    # C2 is not in the clone: blame names the pick as the writer, with Alan's date (git's)
    row, = json.loads(ok("blame", "--json", "--subject", "Michael Jordan", cwd=clone).stdout)
    assert (row["commit"], row["author"], row["author_time"]) == (pick, ALAN, at(5))
    assert ok("blame", "--subject", "Michael Jordan", cwd=clone).stdout.startswith(
        f"{pick[:12]} ({ALAN} {when(at(5))[:10]}) ")
