"""What a push decides from the commits rows: a row naming a parent its record lacks
(damage fsck names) must not make a push leave out a commit the remote lacks."""
from __future__ import annotations

import json
import sqlite3

from cli_support import (
    copy_repo,
    error_line,
    facts_files,
    history_template,
    last_line,
    ok,
    run,
    snapshot,
)


def _set_parents(repo, commit: str, parents: list[str]) -> None:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set parents = ? where id = ?", (json.dumps(parents), commit))
    con.close()


def _tree(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _merged(base, tmp_path):
    """C1-C2-C3 on main, pushed to a folder remote; then topic at C2 with X, merged into
    main: M (parents C3, X). Returns the repository, the remote and (C1, C2, C3, X, M)."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1, c2, c3 = history_template(base)[1]
    remote = tmp_path / "remote"
    ok("remote", "add", "origin", remote, cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("branch", "topic", c2, cwd=repo)
    ok("switch", "topic", cwd=repo)
    x = last_line(ok("commit", facts_files(base)["d"], "-m", "x", cwd=repo))
    ok("switch", "main", cwd=repo)
    m = last_line(ok("merge", "topic", "-m", "merge", cwd=repo))
    return repo, remote, (c1, c2, c3, x, m)


def test_a_fast_forward_check_reads_the_records_newer_than_the_old_tip(base, tmp_path):
    """is_ancestor (push's and merge's fast-forward check) walked depth first from the
    tip, last parent first: for a merge's first parent it went down the merged side and
    through all the history below its fork point before meeting it, reading (and checking)
    every record there (88 ms at 300 commits, the whole history's). Walked newest first
    now, it reads those newer than the old tip: here M and X, not C2 or C1."""
    from memstore.store.repository import Repository

    repo, _, (c1, c2, c3, x, m) = _merged(base, tmp_path)
    with Repository.open(repo) as r:
        read, record = [], r.store.commit

        def counted(cid):
            read.append(cid)
            return record(cid)

        r.store.commit = counted
        assert r.is_ancestor(c3, m)
        assert read and set(read) <= {m, x}, [c[:8] for c in read]
        read.clear()  # (what is counted is what a walk reads: one that goes down reads it)
        assert not r.is_ancestor(m, c3)
        assert {c3, c2, c1} <= set(read)


def test_push_does_not_trust_a_row_claiming_the_remote_holds_a_commit(base, tmp_path):
    """The remote's branch at C3; main merges a topic commit X (on C2) the remote lacks.
    C3's row claiming X as a parent made the push count X as held (the remote's ancestors
    came from the rows, the walk over the records stopped at X): it sent the merge alone
    and moved the remote's main onto it, exit 0, a remote whose branch reaches a missing
    commit (`fsck origin`: 'its object is missing'). Refused now in one line, the remote
    untouched; the same push goes through once `fsck --repair` rebuilt the rows; a tag
    pushed onto such a history is refused the same way."""
    repo, remote, (_, c2, c3, x, m) = _merged(base, tmp_path)
    ok("tag", "v1", m, cwd=repo)
    _set_parents(repo, c3, [c2, x])
    before, there = snapshot(repo), _tree(remote)
    for args in (["push", "origin", "main"], ["push", "origin", "--tags"]):
        error_line(run(*args, cwd=repo), 1, f"commit {c3[:12]}: index row disagrees with "
                   "the record")
        assert _tree(remote) == there, args
        assert snapshot(repo) == before, args
    ok("fsck", "--repair", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("push", "origin", "--tags", cwd=repo)
    assert "missing" not in ok("fsck", "origin", cwd=repo).stdout


def test_a_fetch_that_lands_is_reported_though_its_forced_check_meets_a_damaged_row(
        base, tmp_path):
    """fetch marks a branch rewritten there (push --force) by asking, once the refs have
    moved, whether the old commit is an ancestor of the new: a walk that checks each row
    against its record. A damaged row on the way (C2's claiming no parents) made the
    fetch exit 1 with origin/main already moved and its report unprinted. The fetch
    lands and reports; the damage is fsck's to name."""
    from memstore.store.refs import REMOTES

    repo, _, (_, c2, c3, _, _) = _merged(base, tmp_path)
    ok("push", "origin", "main", cwd=repo)  # origin/main: M
    other = copy_repo(repo, tmp_path / "other")  # its origin/main stays M
    ok("reset", c3, cwd=repo)
    ok("push", "--force", "origin", "main", cwd=repo)  # origin's main rewritten to C3
    _set_parents(other, c2, [])
    r = run("fetch", "origin", cwd=other)
    assert r.exit_code == 0, r.output
    assert "origin/main" in r.stdout, r.stdout
    con = sqlite3.connect(other / ".memstore" / "index.db")
    assert con.execute("select target from refs where name = ?",
                       (REMOTES + "origin/main",)).fetchone()[0] == c3
    con.close()
    assert "disagrees" in run("fsck", cwd=other).stdout


def test_a_pull_whose_merge_is_refused_reports_the_fetch_that_landed(base, tmp_path):
    """pull printed the fetch's report before a conflict only (1253cc4): a merge refused
    otherwise (a damaged row here; each side having reverted facts the other keeps; any
    error of the merge) swallowed it, though the fetch had landed (origin/main moved). It
    is printed, as a fetch prints it, before the one error line."""
    from memstore.store.refs import REMOTES

    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", "-u", "origin", "main", cwd=repo)
    other = copy_repo(repo, tmp_path / "other")
    d = last_line(ok("commit", facts_files(base)["d"], "-m", "d", cwd=repo))
    ok("push", cwd=repo)
    e = last_line(ok("commit", facts_files(base)["e"], "-m", "e", cwd=other))  # diverged
    _set_parents(other, e, [])  # damage fsck names: the merge's ancestry check refuses it
    r = run("pull", cwd=other)
    error_line(r, 1, "disagrees")
    assert "main" in r.stdout and "-> origin/main" in r.stdout, r.stdout
    assert "fetched 1 commit," in r.stdout, r.stdout
    con = sqlite3.connect(other / ".memstore" / "index.db")
    refs = dict(con.execute("select name, target from refs where target is not null"))
    con.close()
    assert refs[REMOTES + "origin/main"] == d and refs["refs/heads/main"] == e
