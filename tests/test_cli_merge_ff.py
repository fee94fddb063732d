"""git's merge and pull modes: `merge --ff-only` and `pull --ff-only` refuse a merge that is
no fast-forward in one line, nothing merged (a pull's fetch kept); `merge --no-ff` writes a
merge commit where a fast-forward would do, with no update set (nothing solved): its state
is the merged branch's, and one revert of it takes that branch's commits out."""
from __future__ import annotations

import json

from cli_support import error_line, ok, run, snapshot
from remote_support import make_repo
from test_store_support import commit_on_head

from memstore.remote.fetch import fetch
from memstore.remote.push import push
from memstore.store.repository import Repository


def merged(repo, *args: str) -> dict:
    return json.loads(ok("merge", *args, "--json", cwd=repo).stdout)


def test_ff_only_refuses_parted_branches_in_one_line_and_fast_forwards_otherwise(tmp_path):
    url = str(tmp_path / "remote")
    a, b = make_repo(tmp_path / "a", url), make_repo(tmp_path / "b", url)
    e = make_repo(tmp_path / "empty", url)
    try:
        c1 = commit_on_head(a, seed=1).id
        push(a)
        fetch(b)
        fetch(e)
        b.update_ref("HEAD", c1, expected=None)
        c2 = commit_on_head(a, seed=2).id
        push(a)
        c3 = commit_on_head(b, seed=3).id  # b's main parts from the remote's at c1
    finally:
        for r in (a, b, e):
            r.close()
    b, e = tmp_path / "b", tmp_path / "empty"
    before = snapshot(b)
    r = run("pull", "--ff-only", cwd=b)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.output
    assert r.stderr.startswith("memstore: error: not possible to fast-forward to "
                               "origin/main: HEAD and origin/main have each commits")
    assert "main         -> origin/main" in r.stdout  # the fetch landed, and is said so
    rows = snapshot(b)["rows"]
    assert [x for x in rows["refs"] if "heads/main" in x] == \
        [x for x in before["rows"]["refs"] if "heads/main" in x]
    assert json.loads(ok("status", "--json", cwd=b).stdout)["head"] == c3
    before = snapshot(b)
    error_line(run("merge", "--ff-only", "origin/main", cwd=b), 1,
               "not possible to fast-forward to origin/main")
    # as git's, the last of --ff, --no-ff and --ff-only wins
    error_line(run("merge", "--no-ff", "--ff", "--ff-only", "origin/main", cwd=b), 1,
               "not possible to fast-forward to origin/main")
    assert snapshot(b) == before
    ok("switch", "-c", "old", c1, cwd=b)
    d = merged(b, "--ff-only", "main")
    assert (d["kind"], d["head"], d["commit"]) == ("fast-forward", c3, None)
    assert merged(b, "--ff-only", c1)["kind"] == "up-to-date"
    ok("switch", "main", cwd=b)
    ok("reset", c1, cwd=b)
    d = json.loads(ok("pull", "--ff-only", "--json", cwd=b).stdout)
    assert (d["kind"], d["head"]) == ("fast-forward", c2)
    # --no-ff onto a branch with no commits yet: no merge commit can have it as a parent
    before = snapshot(e)
    error_line(run("merge", "--no-ff", "origin/main", cwd=e), 2, "--no-ff: the current "
               "branch has no commits yet")
    assert snapshot(e) == before


def test_no_ff_writes_a_merge_commit_holding_the_merged_branch_state(history):
    repo, (c1, c2, c3) = history
    ok("switch", "-c", "old", c1, cwd=repo)
    d = merged(repo, "--ff-only", "--ff", "--no-ff", "main")  # the last given wins, as git's
    assert (d["kind"], d["parents"], d["basis"], d["merge_base"]) == ("merge", [c1, c3], c3,
                                                                      c1)
    assert (d["solves"], d["solved"], d["branch"]) == (0, 0, "old")
    with Repository.open(repo) as r:
        assert r.head().commit == d["commit"]
        assert r.get_commit(d["commit"]).operation == "merge"
        live = sorted(f.request.target_new for f in r.facts_at(d["commit"]))
        assert live == sorted(f.request.target_new for f in r.facts_at(c3))
        at_c1 = sorted(f.request.target_new for f in r.facts_at(c1))
    assert merged(repo, "--no-ff", "main")["kind"] == "up-to-date"  # as git's
    out = ok("merge", "--no-ff", c2, cwd=repo).stdout  # c2 is in its history
    assert out.startswith("Already up to date.")
    # one revert of the merge takes the merged commits' facts out
    ok("revert", "HEAD", cwd=repo)
    with Repository.open(repo) as r:
        assert sorted(f.request.target_new for f in r.facts_at(r.head().commit)) == at_c1
