"""Read commands on an index row damaged by hand (its record intact): `status` counted the
commits on the rows' parents and the live facts on the rows' basis chain, and `diff`,
`show` and `blame --contains/--subject` found the live writes on that chain, so a damaged
row misreported them silently (fsck named it). They walk the records now, each compared
with its row: `status` warns in one line and leaves out the number the row would have made
wrong; the others refuse in one line. A repository of fake commits (no model: none of
these commands loads one)."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from cli_support import error_line, ok, run, snapshot
from test_store_support import BASE_HASH, fake_requests, fake_result

from memstore.editing.requests import Request
from memstore.editing.settings import EditSettings
from memstore.store.repository import Repository
from memstore.store.schema import DamagedIndexError


@pytest.fixture
def three(tmp_path) -> tuple[Path, list[str]]:
    """C1 writes first-subject-0/1, C2 two others, C3 first-subject-0 again (another
    target): 4 live facts at C3, whose diff from C2 is one changed fact."""
    root = tmp_path / "repo"
    repo = Repository.init(root, "fake-model", BASE_HASH,
                           settings=EditSettings(layers=(1, 2), mom2_weight=1e4))
    first = fake_requests("first", 2)
    again = Request(subject=first[0].subject, prompt=first[0].prompt, target_new="again",
                    target_true="Paris")
    ids: list[str] = []
    with repo.lock():
        for k, requests in enumerate([first, fake_requests("two", 2), [again]]):
            head = repo.head().commit
            ids.append(repo.write_commit([fake_result(k, requests=requests)],
                                         parents=[head] if head else [], basis=head,
                                         message=f"c{k + 1}").id)
    repo.close()
    return root, ids


def sql(root: Path, statement: str, args: list) -> None:
    """One statement on the repository's index, as a damaged disk or a hand would."""
    con = sqlite3.connect(root / ".memstore" / "index.db")
    with con:
        con.execute(statement, args)
    con.close()


def damage(root: Path, column: str, value: str | None, commit: str) -> None:
    sql(root, f"update commits set {column} = ? where id = ?", [value, commit])


def test_status_counts_on_the_records_and_warns_of_a_damaged_row(three):
    root, (c1, c2, c3) = three
    intact = ok("status", cwd=root).stdout
    assert f"{c3[:12]} c3 (3 commits)" in intact and "facts   4 live" in intact
    damage(root, "basis", None, c2)  # C2 made a root of the state chain: C1's 2 facts out
    before = snapshot(root)
    r = ok("status", cwd=root)
    assert r.stderr == (f"warning: commit {c2[:12]}: index row disagrees with the record "
                        "(basis); run `memstore fsck --repair`\n")
    assert "(3 commits)" in r.stdout and "facts   not counted\n" in r.stdout  # was '3 live'
    st = json.loads(ok("status", "--json", cwd=root).stdout)
    assert (st["n_commits"], st["n_facts"]) == (3, None)
    assert snapshot(root) == before
    damage(root, "basis", c1, c2)
    damage(root, "parents", "[]", c2)  # C2 made a root of the ancestry: 2 commits on the rows
    r = ok("status", cwd=root)
    assert r.stderr == (f"warning: commit {c2[:12]}: index row disagrees with the record "
                        "(parents or time); run `memstore fsck --repair`\n")
    assert f"{c3[:12]} c3 (commits not counted)\n" in r.stdout and "facts   4 live" in r.stdout
    st = json.loads(ok("status", "--json", cwd=root).stdout)
    assert (st["n_commits"], st["n_facts"]) == (None, 4)
    # with an upstream, its ahead/behind walk meets the same row: said once, not twice
    ok("remote", "add", "origin", str(root.parent / "remote"), cwd=root)
    with Repository.open(root) as repo, repo.lock():
        repo.update_ref("refs/remotes/origin/main", c1, expected=None)
    r = ok("status", cwd=root)
    assert len(r.stderr.splitlines()) == 1 and "index row disagrees" in r.stderr
    assert "Your branch" not in r.stdout and "(commits not counted)" in r.stdout


def test_diff_show_and_blame_refuse_a_damaged_basis_row(three):
    root, (_, c2, _) = three
    d = json.loads(ok("diff", "--json", "HEAD~1", "HEAD", cwd=root).stdout)
    assert (len(d["added"]), len(d["changed"])) == (0, 1)
    subject = "first-subject-1"
    assert [b["subject"] for b in json.loads(
        ok("blame", "--json", "--subject", subject, cwd=root).stdout)] == [subject]
    damage(root, "basis", None, c2)  # on the rows, C1's writes are not in C2's state
    before = snapshot(root)
    says = f"commit {c2[:12]}: index row disagrees with the record (basis)"
    # on the rows: the changed fact was 'added', first-subject-1 not live
    for args in (["diff", "HEAD~1", "HEAD"], ["show", "HEAD"], ["blame", "--contains", "first"],
                 ["blame", "--subject", subject]):
        error_line(run(*args, cwd=root), 1, says)
    assert snapshot(root) == before
    assert ok("blame", cwd=root).stdout.count("first-subject") == 2  # the whole fold: records


def test_a_request_row_deleted_is_named_not_a_fact_left_out(three):
    """C1's row of first-subject-1 deleted: status said 3 live facts, blame --subject
    first-subject-1 nothing and --contains left it out, all exit 0, where blame (the
    records folded) shows it. Each chain commit's rows are counted against its record."""
    root, (c1, _, _) = three
    sql(root, "delete from requests where commit_id = ? and position = 1", [c1])
    says = (f"commit {c1[:12]}: request rows disagree with the record (1 rows, 2 requests); "
            "run `memstore fsck --repair`")
    r = ok("status", cwd=root)
    assert r.stderr == f"warning: {says}\n" and "facts   not counted\n" in r.stdout
    for args in (["blame", "--subject", "first-subject-1"], ["blame", "--contains", "first"],
                 ["diff", "HEAD~1", "HEAD"]):
        error_line(run(*args, cwd=root), 1, says)


def test_a_parent_row_deleted_is_named_by_status_once_not_the_end_of_the_history(three):
    """C1's commits row deleted: status counted 2 commits (the walk ended where the rows
    did) and said 'facts not counted' with another wording of the same damage."""
    root, (c1, _, _) = three
    sql(root, "delete from commits where id = ?", [c1])
    r = ok("status", cwd=root)
    assert r.stderr == (f"warning: commit {c1[:12]} is named but not in the index; run "
                        "`memstore fsck`\n")
    assert "(commits not counted)" in r.stdout and "facts   not counted" in r.stdout


def test_fsck_names_the_way_back_for_a_commits_row_deleted_once(three):
    """log, status and the writers refuse a history whose commits row is gone with 'run
    `memstore fsck`'; fsck said 'parent or basis C2 is not a known commit' twice (C2 is
    C3's parent and basis) and not that --repair rebuilds the row from C2's record, here."""
    root, (c1, c2, c3) = three
    sql(root, "delete from commits where id = ?", [c2])
    assert c2[:12] in run("log", "--oneline", cwd=root).stderr
    r = run("fsck", cwd=root)
    lines = [x for x in r.stdout.splitlines() if "is not a known commit" in x]
    assert r.exit_code == 1 and lines == [
        (f"commit {c3[:12]}: parent or basis {c2[:12]} is not a known commit; its record is "
         "in the object store: `memstore fsck --repair` rebuilds its row")]
    ok("fsck", "--repair", cwd=root)
    assert [r["id"] for r in json.loads(ok("log", "--json", cwd=root).stdout)] == [c3, c2, c1]


def test_log_refuses_a_parent_whose_row_is_deleted_not_a_shorter_history(three):
    """C1's commits row deleted: log listed C3 and C2 as the whole history, exit 0 (fsck
    named it); ranges walked each side's history to its end there. Refused in one line,
    as status names it (8e576b0): the walk cannot tell what lies below."""
    root, (c1, c2, c3) = three
    assert len(json.loads(ok("log", "--json", cwd=root).stdout)) == 3
    sql(root, "delete from commits where id = ?", [c1])
    before = snapshot(root)
    says = f"commit {c1[:12]} is named but not in the index; run `memstore fsck`"
    # C2..C3 and C3...C2: the walk of what C2 (C3) reaches, where a row left out would
    # exclude too little; -n 1: the whole reach is walked for the order, C1 included
    for args in (["--oneline"], ["--json"], ["--graph"], ["-n", "1"], [f"{c2}..{c3}"],
                 [f"{c3}...{c2}"], ["--graph", "--left-right", f"{c2}...{c3}"]):
        error_line(run("log", *args, cwd=root), 1, says)
    assert snapshot(root) == before
    repo = Repository.open(root)
    try:
        with pytest.raises(DamagedIndexError, match=c1[:12]):
            repo.log(first_parent=True)
    finally:
        repo.close()


def test_a_reset_steps_over_a_parent_fsck_repair_dropped_but_not_a_deleted_row(three):
    """C2's object corrupt, `fsck --repair` drops its row (it cannot read it back): main at
    C3, `reset C1` counted what it leaves with log's walk, which refuses a parent with no
    row (286c2fd), so it said 'C2 is named but not in the index; run `memstore fsck`' and
    fsck named no way: the one way off the damage refused. C2 is stepped over (C3 left,
    warned); a row deleted with its record sound (--repair rebuilds it) is still refused."""
    root, (c1, c2, c3) = three
    deleted = root.parent / "deleted"
    shutil.copytree(root, deleted)
    obj = root / ".memstore" / "objects" / c2[:2] / c2[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-5] + b"XXXXX")
    run("fsck", "--repair", cwd=root)
    r = ok("reset", c1, cwd=root)
    assert f"leaving 1 commit(s) that no branch or tag holds, the newest {c3[:12]}" in r.output
    assert json.loads(ok("status", "--json", cwd=root).stdout)["head"] == c1
    sql(deleted, "delete from commits where id = ?", [c2])
    before = snapshot(deleted)
    error_line(run("reset", c1, cwd=deleted), 1,
               f"commit {c2[:12]} is named but not in the index; run `memstore fsck`")
    assert snapshot(deleted) == before


def squashed(repo: Repository, c1: str, c2: str, c3: str) -> str:
    """main's three commits squashed into one root commit, its writes' paths recorded."""
    first, two = fake_requests("first", 2), fake_requests("two", 2)
    again = Request(subject=first[0].subject, prompt=first[0].prompt, target_new="again",
                    target_true="Paris")
    return repo.write_commit(
        [fake_result(3, requests=[first[1], *two, again])], parents=[], basis=None,
        message="squash", operation="squash", expected=c3,
        info={"squashed": [c1, c2, c3], "sources": {
            "commits": [c1, c2, c3], "paths": [[0, 0, 1], [1, 0, 0], [1, 0, 1], [2, 0, 0]]}}).id


def test_blame_names_a_writer_whose_row_alone_is_deleted_not_its_carrier(three):
    """blame decided which writes the repository still holds on the commits rows (gc and a
    clone leave out the commits a squash replaced): C1's row deleted (tag v1 still holds
    it; fsck names it), blame named the squash as the writer of C1's fact; a merged side
    commit's row deleted, blame said 'unknown revision' (exit 2), the merge's source looked
    up as a revision. Both are decided on the records now: blame as before the damage."""
    root, (c1, c2, c3) = three
    repo = Repository.open(root)
    with repo.lock():
        repo.create_tag("v1", c3)
        s = squashed(repo, c1, c2, c3)
        side = fake_requests("side", 1)
        t = repo.write_commit([fake_result(4, requests=side)], parents=[s], basis=s,
                              message="side", ref=None).id
        c4 = repo.write_commit([fake_result(5, requests=fake_requests("four", 1))],
                               parents=[s], basis=s, message="c4").id
        m = repo.write_commit([fake_result(6, requests=fake_requests("four", 1) + side)],
                              parents=[c4, t], basis=s, message="merge", operation="merge").id
    repo.close()
    intact = json.loads(ok("blame", "--json", cwd=root).stdout)
    writers = {r["subject"]: (r["commit"], r["carried_by"]) for r in intact}
    assert writers["first-subject-1"] == (c1, s) and writers["side-subject-0"] == (t, m)
    sql(root, "delete from commits where id in (?, ?)", [c1, t])
    assert json.loads(ok("blame", "--json", cwd=root).stdout) == intact


def test_blame_after_a_gc_stopped_between_rows_and_files_names_what_gc_leaves(three,
                                                                             monkeypatch):
    """gc deletes the rows of what no ref reaches, then (its readers done) the files: a gc
    killed in between leaves the records of the commits a squash replaced, their rows gone,
    which nothing names (fsck: ok). blame took such a record for a commit the repository
    holds (4425a04) and named C1, which `show` calls an unknown revision, where the gc'd
    repository names the squash (and a blame started in that window could lose the file
    it was about to read). A record with no row is held only where the history names it."""
    from memstore.store import maintenance

    root, (c1, c2, c3) = three
    repo = Repository.open(root)
    with repo.lock():
        s = squashed(repo, c1, c2, c3)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(maintenance, "wait_for_readers", killed)
    with pytest.raises(KeyboardInterrupt):
        repo.gc(expire=0)  # (the reflog names C1..C3: expired now)
    assert repo.objects.contains(c1) and not repo.has_commit(c1)  # stopped in between
    repo.close()
    assert ok("fsck", cwd=root).stdout.strip() == "ok"
    stopped = json.loads(ok("blame", "--json", cwd=root).stdout)
    assert {r["commit"] for r in stopped} == {s}
    monkeypatch.undo()
    ok("gc", cwd=root)
    assert json.loads(ok("blame", "--json", cwd=root).stdout) == stopped


def test_revert_and_squash_refuse_a_history_whose_commits_row_is_deleted(three):
    """C2's commits row deleted (its record kept; fsck names it): revert and squash took
    HEAD's history on the rows, cut at C2, so `revert C1` and `squash C1` said C1 is 'not
    in the history of HEAD', and `revert C3` went on without the reverts and merges below
    C2: with a model, after `revert theirs` of two merged holders of one fact, theirs' row
    deleted, `revert ours` wrote the fact again from theirs' cached z-vector (theirs'
    revert not met), exit 0. Each is refused in one line before a model is loaded (none
    here), nothing written."""
    root, (c1, c2, c3) = three
    sql(root, "delete from commits where id = ?", [c2])
    before = snapshot(root)
    says = f"commit {c2[:12]} is named but not in the index; run `memstore fsck`"
    for args in (["revert", c3], ["revert", c1], ["squash", c1], ["squash", "base"]):
        error_line(run(*args, cwd=root), 1, says)
    assert snapshot(root) == before


def test_merge_cherry_pick_and_push_refuse_a_history_whose_commits_row_is_deleted(three,
                                                                                 tmp_path):
    """C2's commits row deleted (its record kept; fsck names it): is_ancestor's walk
    (history.unreached, newest first) took C2 for the end of C3's history, so C1 was 'not
    an ancestor' of C3. `merge C1` at C3 (up to date) and `merge` of C3 at C1 (a
    fast-forward) found no merge base and refused a conflict of C1's fact with C3's;
    `cherry-pick C1` the same, not 'in the history of HEAD'; a push of C3 over a remote at
    C1 was refused as no fast-forward, and `push --force` wrote C2 and C3 there, exit 0, a
    'forced update'. Each is refused in one line now, nothing written here or there; a
    target met on the way (C2 itself, named by C3's row) is met, no refusal."""
    from memstore.store.history import is_ancestor

    root, (c1, c2, c3) = three
    remote = tmp_path / "remote"
    ok("branch", "back", c1, cwd=root)
    ok("remote", "add", "origin", remote, cwd=root)
    ok("push", "origin", "back", cwd=root)  # the remote's back at C1, ours at C3
    ok("switch", "back", cwd=root)
    ok("merge", "main", cwd=root)
    ok("branch", "old", c1, cwd=root)
    sql(root, "delete from commits where id = ?", [c2])
    says = f"commit {c2[:12]} is named but not in the index; run `memstore fsck`"

    def tree() -> dict[str, bytes]:
        return {str(p.relative_to(remote)): p.read_bytes() for p in sorted(remote.rglob("*"))
                if p.is_file()}

    for args, on in ((["merge", c1], "main"), (["cherry-pick", c1], "main"),
                     (["merge", "main"], "old"), (["push", "origin", "back"], "back"),
                     (["push", "--force", "origin", "back"], "back")):
        ok("switch", on, cwd=root)
        before, there = snapshot(root), tree()
        error_line(run(*args, cwd=root), 1, says)
        assert snapshot(root) == before and tree() == there
    repo = Repository.open(root)
    try:
        assert is_ancestor(repo.store, c3, c3) and is_ancestor(repo.store, c2, c3)
        with pytest.raises(DamagedIndexError, match=c2[:12]):
            is_ancestor(repo.store, c1, c3)
    finally:
        repo.close()
