"""Rules the read commands share: what HEAD names on a branch with no commits yet, and which
commit a fact's row names as its writer."""
from __future__ import annotations

import json

from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    facts_files,
    history_template,
    last_line,
    ok,
    run,
    snapshot,
    write_facts,
)


def test_head_on_a_branch_with_no_commits_is_no_revision_in_any_command(base, tmp_path):
    """`export HEAD OUT` exported the base model on a branch with no commits while `show
    HEAD`, `tag`, `branch` and `reset` called HEAD an unknown revision. As in git, HEAD
    written out names a commit in every command; a REV left out is the current state (the
    base's here), and `base` names the base."""
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    facts = facts_files(base)["b"]
    before = snapshot(repo)
    for args in (["show", "HEAD"], ["log", "HEAD"], ["diff", "HEAD"], ["diff", "base", "HEAD"],
                 ["blame", "HEAD"], ["export", "HEAD", tmp_path / "out"],
                 ["export", "HEAD~0", tmp_path / "out"],
                 ["ask", "The capital", "--rev", "HEAD"],
                 ["ask", "The capital", "--compare", "HEAD"],
                 ["eval", "--live", "--rev", "HEAD"], ["eval", facts, "--rev", "HEAD"],
                 ["tag", "v1", "HEAD"], ["branch", "x", "HEAD"]):
        error_line(run(*args, cwd=repo), 2, "unknown revision 'HEAD")
    # where a state is read, the line says how to name the base's
    for rev in ("HEAD", "@", "@~1"):  # `@` is HEAD, as git's
        error_line(run("export", rev, tmp_path / "out", cwd=repo), 2, "name it 'base', or "
                   "give no revision")
    assert not (tmp_path / "out").exists()
    assert snapshot(repo) == before
    # left out: the current state, the base's
    assert "no commits yet" in ok("log", cwd=repo).stderr
    assert ok("diff", "base", cwd=repo).stdout.strip() == "no fact differs"
    assert json.loads(ok("blame", "--json", cwd=repo).stdout) == []
    d = json.loads(ok("export", tmp_path / "out", "--json", cwd=repo).stdout)
    assert d["commit"] is None
    v = json.loads(ok("verify", tmp_path / "out", "--json", cwd=repo).stdout)
    assert v["ok"] and not any("names no revision" in n for n in v["notes"]), v
    asked = json.loads(ok("ask", "The capital", "--compare", "base", "--max-tokens", "2",
                          "--json", cwd=repo).stdout)["answers"]
    assert [a["commit"] for a in asked] == [None, None]
    assert asked[0]["completion"] == asked[1]["completion"]
    assert snapshot(repo) == before


def test_diff_and_show_name_the_writer_blame_names_past_a_merge(base, tmp_path):
    """diff --json named the merge that carried a fact in as the fact's `commit`, where
    blame followed the write back to the commit that wrote it. Both name the writer as
    `commit` now, and the merge as `carried_by` (changed rows: old_/new_ each)."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1, c2, c3 = history_template(base)[1]
    files = facts_files(base)
    again = write_facts(tmp_path / "again.jsonl",
                        [("Michael Jordan", "{} plays", "golf", "basketball")])
    ok("branch", "topic", c2, cwd=repo)
    ok("switch", "topic", cwd=repo)
    d = last_line(ok("commit", files["d"], "-m", "d", cwd=repo))
    golf = last_line(ok("commit", again, "--supersede", "-m", "golf", cwd=repo))
    ok("switch", "main", cwd=repo)
    e = last_line(ok("commit", files["e"], "-m", "e", cwd=repo))
    merge = last_line(ok("merge", "topic", "-m", "merge", cwd=repo))
    assert json.loads(ok("show", merge, "--json", cwd=repo).stdout)["operation"] == "merge"

    blamed = {r["subject"]: (r["commit"], r["carried_by"])
              for r in json.loads(ok("blame", "--json", cwd=repo).stdout)}
    assert blamed["Honda Civic"] == (d, merge) and blamed["Michael Jordan"] == (golf, merge)
    for args in (["diff", e], ["diff", e, merge], ["show", merge]):
        out = json.loads(ok(*args, "--json", cwd=repo).stdout)
        facts = out["facts"] if args[0] == "show" else out
        assert [(f["subject"], f["commit"], f["carried_by"]) for f in facts["added"]] == \
            [("Honda Civic", d, merge)], (args, facts)
        assert [(f["subject"], f["old_commit"], f["old_carried_by"], f["new_commit"],
                 f["new_carried_by"]) for f in facts["changed"]] == \
            [("Michael Jordan", c2, None, golf, merge)], (args, facts)
        assert all(blamed[f["subject"]] == (f["commit"], f["carried_by"])
                   for f in facts["added"])
    # the other way round: what the merge brought in is removed, named as blame named it
    back = json.loads(ok("diff", merge, e, "--json", cwd=repo).stdout)
    assert [(f["subject"], f["commit"], f["carried_by"]) for f in back["removed"]] == \
        [("Honda Civic", d, merge)]
    # a plain commit's own write: no carrier
    plain = json.loads(ok("diff", c1, c2, "--json", cwd=repo).stdout)["added"]
    assert [(f["commit"], f["carried_by"]) for f in plain] == [(c2, None)]
    assert c3 in {c for c, _ in blamed.values()}


def _set_parents(repo, commit: str, parents: list[str]) -> None:
    """Damages `commit`'s commits row: its parents column names `parents` (the record, the
    hash-checked object, keeps its own)."""
    import sqlite3

    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set parents = ? where id = ?", (json.dumps(parents), commit))
    con.close()


def test_no_writer_moves_or_writes_from_a_row_whose_parents_disagree_with_the_record(
        base, tmp_path):
    """A commits row naming other parents than its record (fsck names it): `reset HEAD~1`
    moved the branch to the row's parent, past the record's (C3's row naming C1: main went
    to C1, C2 left to gc), and `merge` fast-forwarded over the commits of the branch (a
    topic commit on C2 whose row names C3: main moved to it, C3 dropped). The walks a
    writer decides on check each commit they reach against its record: refused in one
    line, nothing changed; and so is log."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1, c2, c3 = history_template(base)[1]
    files = facts_files(base)
    ok("branch", "topic", c2, cwd=repo)
    ok("switch", "topic", cwd=repo)
    d = last_line(ok("commit", files["d"], "-m", "d", cwd=repo))
    ok("switch", "main", cwd=repo)
    _set_parents(repo, d, [c3])
    before = snapshot(repo)
    error_line(run("merge", "topic", cwd=repo), 1, f"commit {d[:12]}: index row disagrees "
               "with the record")
    assert snapshot(repo) == before
    _set_parents(repo, d, [c2])
    _set_parents(repo, c3, [c1])
    before = snapshot(repo)
    for args in (["reset", "HEAD~1"], ["branch", "old", "HEAD~1"], ["squash", c2],
                 ["revert", c2], ["merge", "topic"]):
        error_line(run(*args, cwd=repo), 1, f"commit {c3[:12]}: index row disagrees with "
                   "the record")
        assert snapshot(repo) == before, args
    # log reads each listed commit's record anyway: it checks the row too, not listing C3's
    # history as C3, C1 (status, which reads no record, counts what the rows say)
    error_line(run("log", "--oneline", cwd=repo), 1, f"commit {c3[:12]}: index row disagrees")
    ok("fsck", "--repair", cwd=repo)
    ok("reset", "HEAD~1", cwd=repo)
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["head"] == c2


def test_a_squash_refuses_a_damaged_row_of_what_it_leaves_before_it_writes(base, tmp_path):
    """squash walks every ref's history for the commits it leaves (its warning, as reset's
    and rebase's): a damaged row there, on another branch's commit, was refused only after
    the squash had written its commit and moved main (exit 1, main moved, no id printed).
    Refused before the solve, as rebase and reset refuse it; nothing changed."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    c1, c2 = history_template(base)[1][:2]
    ok("switch", "-c", "topic", c2, cwd=repo)
    d = last_line(ok("commit", facts_files(base)["d"], "-m", "d", cwd=repo))
    ok("switch", "main", cwd=repo)
    _set_parents(repo, d, [c1])
    before = snapshot(repo)
    error_line(run("squash", c1, cwd=repo), 1, f"commit {d[:12]}: index row disagrees "
               "with the record")
    assert snapshot(repo) == before


def test_reset_steps_off_a_commit_whose_record_cannot_be_read(base, tmp_path):
    """The record check of a revision suffix read the record of each commit it steps from:
    with HEAD's commit object corrupt (a bad disk, fsck names it), `reset HEAD~1`, which
    stepped off it by its row, was refused ('run `memstore fsck`'), and `fsck --repair`
    then drops that commit from the index while main still names it (no `reset` works
    there). A record that cannot be read disagrees with nothing: the row steps, as before;
    a readable record still decides (the test above)."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    _, c2, c3 = history_template(base)[1]
    obj = repo / ".memstore" / "objects" / c3[:2] / c3[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-5] + b"xxxxx")
    error_line(run("show", "HEAD", cwd=repo), 1, "is corrupt")  # (the damage is there)
    ok("reset", "HEAD~1", cwd=repo)
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["head"] == c2
