"""`memstore rebase UPSTREAM` (git's rebase): the branch's own commits written again on
UPSTREAM, one pick each, all or nothing. The reference for what a rebase writes is the same
picks made by hand with `cherry-pick` on a branch at UPSTREAM (no call of the rebase)."""
from __future__ import annotations

import json
import re

import pytest
import torch
from cli_support import (
    copy_repo,
    error_line,
    facts_files,
    history_template,
    last_line,
    log_json,
    ok,
    run,
    snapshot,
    write_facts,
)

from memstore.store.repository import Repository

ADA, BOB = "Ada Lovelace <ada@example.org>", "Bob Builder <bob@example.org>"


@pytest.fixture
def history(tmp_path_factory, tmp_path):
    """main: C1 (facts a), C2 (b), C3 (c)."""
    template, ids = history_template(tmp_path_factory.getbasetemp())
    return copy_repo(template, tmp_path / "repo"), ids


def _facts(repo: Repository, commit: str) -> list[tuple[str, str, str]]:
    return [(f.request.subject, f.request.prompt, f.request.target_new)
            for f in repo.facts_at(commit)]


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def test_rebase_writes_the_branchs_commits_again_on_upstream_as_picks_by_hand(
        history, tmp_path, monkeypatch):
    """topic (at C2) holds D and E, by Ada; main moved on to C3. `rebase main`, run by Bob,
    writes D' on C3 and E' on D', each with its original's message and author, and moves
    topic to E'; the facts and the update sets are those of picking D then E by hand on a
    branch at C3; the left commits D and E are warned about (gc takes them)."""
    from memstore.store import rebase as rebase_module
    from memstore.store.states import state_of

    repo_dir, (c1, c2, c3) = history
    files = facts_files(tmp_path)
    ok("switch", "-c", "topic", c2, cwd=repo_dir)
    monkeypatch.setenv("MEMSTORE_AUTHOR", ADA)
    d = last_line(ok("commit", files["d"], "-m", "facts d", cwd=repo_dir))
    e = last_line(ok("commit", files["e"], "-m", "facts e", cwd=repo_dir))
    monkeypatch.setenv("MEMSTORE_AUTHOR", BOB)
    loads = []  # the model is put in a state once, UPSTREAM's, for the two picks
    monkeypatch.setattr(rebase_module, "state_of",
                        lambda repo, c: loads.append(c) or state_of(repo, c))
    r = ok("rebase", "main", "--json", cwd=repo_dir)
    assert loads == [c3]
    out = json.loads(r.stdout)
    assert (out["branch"], out["upstream"], out["old"]) == ("topic", c3, e)
    assert (out["up_to_date"], out["fast_forward"]) == (False, False)
    assert [c["old"] for c in out["commits"]] == [d, e]
    d2, e2 = (c["new"] for c in out["commits"])
    assert out["new"] == e2 and out["left_behind"] == [e, d]
    assert out["warning"].startswith("leaving 2 commit(s) that no branch or tag holds")
    assert f"`memstore reset {e[:12]}` goes back" in r.stderr
    text = ok("rebase", "main", cwd=repo_dir).stdout.splitlines()  # once more: up to date
    assert text == ["Current branch topic is up to date.", e2]
    log = log_json(repo_dir)
    assert [c["id"] for c in log] == [e2, d2, c3, c2, c1]
    assert [(c["message"], c["author"]) for c in log[:2]] == [("facts e", ADA),
                                                              ("facts d", ADA)]
    assert [c["committer"] for c in log[:3]] == [BOB, BOB, None]  # git's: who rebased
    written = [json.loads(ok("show", c, "--json", cwd=repo_dir).stdout)["time"] for c in (e, d)]
    assert [c["author_time"] for c in log[:2]] == written  # and the author dates kept
    assert all(c["time"] > c["author_time"] for c in log[:2])
    ok("switch", "-c", "by-hand", "main", cwd=repo_dir)
    p1 = last_line(ok("cherry-pick", d, cwd=repo_dir))
    p2 = last_line(ok("cherry-pick", e, cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(d2).parents == (c3,) and repo.get_commit(e2).parents == (d2,)
        assert repo.get_commit(d2).operation == "rebase"
        assert _facts(repo, d2) == _facts(repo, p1)
        assert _facts(repo, e2) == _facts(repo, p2)
        assert ("Apple A5", "{} was created by", "Microsoft") in _facts(repo, e2)
        for mine, theirs in ((d2, p1), (e2, p2)):
            a, b = repo.updates_of(mine), repo.updates_of(theirs)
            assert sorted(a) == sorted(b)
            for layer in a:
                assert _same_bits(a[layer].U, b[layer].U), (mine, layer)
                assert _same_bits(a[layer].V, b[layer].V), (mine, layer)
    rows = {x["subject"]: x for x in json.loads(ok("blame", "--json", "topic",
                                                   cwd=repo_dir).stdout)}
    assert (rows["Apple A5"]["commit"], rows["Apple A5"]["author"]) == (e2, ADA)
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_a_conflict_stops_the_rebase_with_refs_and_index_unchanged(history, tmp_path):
    """topic (at C3) holds D, then X superseding Darrieux's English with Italian; main
    wrote German over English since. X conflicts: listed, exit 1, and nothing written,
    not D' either (the whole repository as it was)."""
    repo_dir, (_, _, c3) = history
    files = facts_files(tmp_path)
    ok("switch", "-c", "topic", c3, cwd=repo_dir)
    d = last_line(ok("commit", files["d"], cwd=repo_dir))
    italian = write_facts(tmp_path / "it.jsonl", [("Danielle Darrieux",
                                                   "The mother tongue of {} is", "Italian",
                                                   "French")])
    x = last_line(ok("commit", italian, "--supersede", cwd=repo_dir))
    ok("switch", "main", cwd=repo_dir)
    german = write_facts(tmp_path / "de.jsonl", [("Danielle Darrieux",
                                                  "The mother tongue of {} is", "German",
                                                  "French")])
    ok("commit", german, "--supersede", cwd=repo_dir)
    ok("switch", "topic", cwd=repo_dir)
    before = snapshot(repo_dir)
    r = run("rebase", "main", cwd=repo_dir)
    assert r.exit_code == 1, r.output
    err = r.stderr.strip().splitlines()
    assert err[0] == ("CONFLICT 'Danielle Darrieux' / 'The mother tongue of {} is': "
                      f"'German' here, 'Italian' in {x[:12]}")
    assert err[-1].startswith(f"memstore: error: rebase onto main refused: commit {x[:12]}")
    assert "nothing was changed" in err[-1] and len(err) == 2
    assert snapshot(repo_dir) == before
    assert last_line(ok("log", "--oneline", "-n", "1", cwd=repo_dir)).startswith(x[:12])
    assert d != x


def test_a_fact_upstream_reverted_is_not_written_back(history, tmp_path):
    """main reverted C2 (Jordan plays soccer). On `again`, at C2, a commit writes soccer
    again (no change against its parent) and Honda Civic, then one soccer alone: `merge
    again` on main keeps the revert, and so does the rebase (Civic picked, the second
    commit dropped), where it wrote Jordan back into main's state. On topic, at C2, a commit
    retargets it to golf: git's rebase stops there (modify/delete) and `merge topic` on main
    refuses it ('reverted here'); the rebase refuses it too, nothing changed. A cherry-pick
    of that commit onto main writes golf, as before (its state may never have held the
    fact)."""
    repo_dir, (_, c2, _) = history
    ok("revert", c2, cwd=repo_dir)
    soccer = ("Michael Jordan", "{} plays", "soccer", "basketball")
    ok("switch", "-c", "again", c2, cwd=repo_dir)
    civic = write_facts(tmp_path / "civic.jsonl", [soccer, ("Honda Civic",
                                                            "{} is produced by", "Ford",
                                                            "Honda")])
    ok("commit", civic, "--supersede", cwd=repo_dir)
    alone = last_line(ok("commit", write_facts(tmp_path / "soccer.jsonl", [soccer]),
                         "--supersede", cwd=repo_dir))
    out = json.loads(ok("rebase", "main", "--json", cwd=repo_dir).stdout)
    assert [c["dropped"] for c in out["commits"]] == [
        None, "main took out the facts it wrote again unchanged"]
    assert out["commits"][1]["old"] == alone
    with Repository.open(repo_dir) as repo:
        live = {f[0]: f[2] for f in _facts(repo, out["new"])}
    assert live["Honda Civic"] == "Ford" and "Michael Jordan" not in live
    ok("switch", "-c", "topic", c2, cwd=repo_dir)
    golf = write_facts(tmp_path / "golf.jsonl", [("Michael Jordan", "{} plays", "golf",
                                                  "basketball")])
    x = last_line(ok("commit", golf, "--supersede", cwd=repo_dir))
    before = snapshot(repo_dir)
    r = run("rebase", "main", cwd=repo_dir)
    assert r.exit_code == 1, r.output
    err = r.stderr.strip().splitlines()
    assert err[0] == f"CONFLICT 'Michael Jordan' / '{{}} plays': reverted here, 'golf' in {x[:12]}"
    assert err[-1].startswith(f"memstore: error: rebase onto main refused: commit {x[:12]}")
    assert snapshot(repo_dir) == before
    ok("switch", "main", cwd=repo_dir)
    picked = last_line(ok("cherry-pick", x, cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert ("Michael Jordan", "{} plays", "golf") in _facts(repo, picked)


def test_a_rebase_stopped_part_way_moves_no_ref(history, tmp_path, monkeypatch):
    """The second pick's solve fails after the first pick's commit is written: the branch,
    and every ref, stay where they were; the commit written is held by no ref."""
    from memstore.errors import MemstoreError
    from memstore.store import rebase as rebase_module

    repo_dir, (_, c2, _) = history
    files = facts_files(tmp_path)
    ok("switch", "-c", "topic", c2, cwd=repo_dir)
    ok("commit", files["d"], cwd=repo_dir)
    e = last_line(ok("commit", files["e"], cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        refs = repo.refs.all()
    real, calls = rebase_module.solve_pick, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MemstoreError("the solve will not fit")
        return real(*args, **kwargs)

    monkeypatch.setattr(rebase_module, "solve_pick", failing)
    line = error_line(run("rebase", "main", cwd=repo_dir), 1, "rebase stopped at commit")
    assert line.endswith("the solve will not fit; nothing was changed")
    with Repository.open(repo_dir) as repo:
        assert repo.refs.all() == refs and repo.head().commit == e
        written = [r["id"] for r in repo.db.query(
            "select id from commits where operation = 'rebase'")]
        assert len(written) == 1 and written[0] not in repo.reached(e)


def test_a_pick_landing_on_facts_other_than_planned_stops_it(history, tmp_path, monkeypatch):
    """The picks are planned on the facts alone, before any solve; each pick then checks
    the records of the commit it lands on against the plan (one read of its facts). Here
    the records of the first pick's commit say another target for a fact no pick touches
    (the repository changed under the rebase): the second pick stops it, every ref as it
    was."""
    from dataclasses import replace

    from memstore.store import history as history_module

    repo_dir, (_, c2, _) = history
    files = facts_files(tmp_path)
    ok("switch", "-c", "topic", c2, cwd=repo_dir)
    ok("commit", files["d"], cwd=repo_dir)
    e = last_line(ok("commit", files["e"], cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        refs = repo.refs.all()
    real = history_module.facts_at

    def changed(store, commit_id):
        facts = real(store, commit_id)
        if store.commit(commit_id).operation != "rebase":
            return facts
        return [replace(f, request=replace(f.request, target_new="Nokia"))
                if f.request.subject == "Michael Jordan" else f for f in facts]

    monkeypatch.setattr(history_module, "facts_at", changed)
    line = error_line(run("rebase", "main", cwd=repo_dir), 1, f"rebase stopped at commit {e[:12]}")
    assert "are not those planned" in line and line.endswith("nothing was changed")
    with Repository.open(repo_dir) as repo:
        assert repo.refs.all() == refs and repo.head().commit == e


def test_up_to_date_fast_forward_and_refusals(history, tmp_path):
    repo_dir, (c1, c2, c3) = history
    r = ok("rebase", c1, cwd=repo_dir)  # main holds C1: git's words, nothing moved
    assert r.stdout.splitlines() == ["Current branch main is up to date.", c3]
    d = json.loads(ok("rebase", "main", "--json", cwd=repo_dir).stdout)
    assert (d["up_to_date"], d["new"], d["commits"]) == (True, c3, [])
    ok("switch", "-c", "behind", c1, cwd=repo_dir)  # no commit of its own: moved to main
    r = ok("rebase", "main", cwd=repo_dir)
    assert r.stdout.splitlines() == ["Fast-forwarded behind to main.", c3]
    assert last_line(ok("log", "--oneline", "-n", "1", cwd=repo_dir)).startswith(c3[:12])
    ok("switch", "--detach", c2, cwd=repo_dir)
    before = snapshot(repo_dir)
    error_line(run("rebase", "main", cwd=repo_dir), 2, "HEAD is detached")
    assert snapshot(repo_dir) == before
    ok("switch", "behind", cwd=repo_dir)
    error_line(run("rebase", "no-such", cwd=repo_dir), 2, "no-such")
    ok("switch", "-c", "undone", c2, cwd=repo_dir)  # a revert in the range: refused
    reverted = last_line(ok("revert", "HEAD", cwd=repo_dir))
    before = snapshot(repo_dir)
    error_line(run("rebase", "main", cwd=repo_dir), 1,
               f"commit {reverted[:12]} ('Revert \"facts b\"') is a revert")
    assert snapshot(repo_dir) == before


def test_a_branch_with_no_commits_is_refused(tmp_path_factory, tmp_path):
    from cli_support import empty_template

    repo_dir = copy_repo(empty_template(tmp_path_factory.getbasetemp()), tmp_path / "r")
    error_line(run("rebase", "main", cwd=repo_dir), 2, "has no commits yet")


def test_a_merge_is_dropped_and_the_commits_it_brought_in_are_picked(history, tmp_path):
    """topic (at C1): D, a commit of C2's facts again (main holds them: dropped, as git
    drops a patch upstream holds), and a merge of side (at C1: E). Rebased onto main:
    D' and E' in one line on C3, the merge and the commit main holds dropped."""
    repo_dir, (c1, _, c3) = history
    files = facts_files(tmp_path)
    ok("switch", "-c", "side", c1, cwd=repo_dir)
    e = last_line(ok("commit", files["e"], cwd=repo_dir))
    ok("switch", "-c", "topic", c1, cwd=repo_dir)
    d = last_line(ok("commit", files["d"], cwd=repo_dir))
    b = last_line(ok("commit", files["b"], cwd=repo_dir))
    m = last_line(ok("merge", "side", cwd=repo_dir))
    out = json.loads(ok("rebase", "main", "--json", cwd=repo_dir).stdout)
    rows = {c["old"]: c for c in out["commits"]}
    assert set(rows) == {d, b, e, m}
    assert rows[m]["new"] is None and rows[m]["dropped"].startswith("a merge")
    assert rows[b]["new"] is None and rows[b]["dropped"] == "main holds its facts already"
    log = log_json(repo_dir)
    picked = [c["id"] for c in log[:2]]
    assert sorted(picked) == sorted([rows[d]["new"], rows[e]["new"]])
    assert [c["parents"] for c in log[:3]] == [[picked[1]], [c3], [log[3]["id"]]]
    with Repository.open(repo_dir) as repo:
        live = {f[0] for f in _facts(repo, out["new"])}
    assert live == {"Danielle Darrieux", "Porsche 911", "Michael Jordan", "Toko Yasuda",
                    "Lionel Messi", "Honda Civic", "Apple A5"}
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_pull_rebase_writes_the_local_commits_on_the_fetched_branch(
        history, tmp_path, tmp_path_factory):
    """A clone at C2 commits D while origin/main moves on to C3: `pull --rebase` fetches C3
    and writes D again on it (no merge commit); the push after is a fast-forward."""
    from cli_support import model_dir

    repo_dir, (c1, c2, c3) = history
    remote = tmp_path / "remote"
    ok("remote", "add", "origin", remote, cwd=repo_dir)
    ok("reset", c2, cwd=repo_dir)
    ok("push", "-u", "origin", "main", cwd=repo_dir)
    clone = tmp_path / "clone"
    ok("clone", remote, clone, "--base", model_dir(tmp_path_factory.getbasetemp()))
    ok("reset", c3, cwd=repo_dir)
    ok("push", cwd=repo_dir)
    d = last_line(ok("commit", facts_files(tmp_path)["d"], "-m", "facts d", cwd=clone))
    r = ok("pull", "--rebase", cwd=clone)
    assert f"picked {d[:12]} -> " in r.stdout
    assert "Successfully rebased and updated refs/heads/main" in r.stdout
    log = log_json(clone)
    assert [c["id"] for c in log[1:]] == [c3, c2, c1] and log[0]["parents"] == [c3]
    assert (log[0]["message"], log[0]["operation"]) == ("facts d", "rebase")
    ok("push", cwd=clone)  # a fast-forward of origin/main
    out = json.loads(ok("pull", "--rebase", "--json", cwd=clone).stdout)
    assert (out["up_to_date"], out["new"], out["fetched"]["remote"]) == (True, log[0]["id"],
                                                                         "origin")
    error_line(run("pull", "--rebase", "--ff-only", cwd=clone), 2, "one at most")
    r = ok("rebase", cwd=clone)  # no UPSTREAM: the branch's, origin/main
    assert r.stdout.splitlines() == ["Current branch main is up to date.", log[0]["id"]]
    ok("reset", c2, cwd=clone)  # behind origin/main now: a fast-forward to it
    r = ok("rebase", cwd=clone)
    assert r.stdout.splitlines() == ["Fast-forwarded main to origin/main.", log[0]["id"]]
    ok("switch", "-c", "alone", cwd=clone)
    error_line(run("rebase", cwd=clone), 2, "branch 'alone' has no upstream: name UPSTREAM")
    error_line(run("rebase", "", cwd=clone), 2, "unknown revision ''")  # not HEAD (git's too)
    ok("push", "-u", "origin", "alone", cwd=clone)
    ok("push", "--delete", "origin", "alone", cwd=clone)  # its upstream gone
    error_line(run("rebase", cwd=clone), 2,
               "the upstream of 'alone', origin/alone, is gone (not fetched yet, or deleted "
               "there since): name UPSTREAM")


def test_with_no_upstream_recorded_it_takes_the_one_status_and_pull_take(history, tmp_path):
    """After `remote add origin` and a plain `push` (no -u), `status` and `branch -vv` compare
    main with origin/main and `pull --rebase` rebases onto it: `rebase` with no UPSTREAM
    takes the same one (it refused 'no upstream'). With several remotes and none 'origin'
    there is no default: refused, as status shows none."""
    repo_dir, (_, c2, c3) = history
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo_dir)
    ok("push", cwd=repo_dir)
    ok("reset", c2, cwd=repo_dir)
    status = json.loads(ok("status", "--json", cwd=repo_dir).stdout)["upstream"]
    assert (status["name"], status["commit"], status["behind"]) == ("origin/main", c3, 1)
    r = ok("rebase", cwd=repo_dir)
    assert r.stdout.splitlines() == ["Fast-forwarded main to origin/main.", c3]
    ok("remote", "rename", "origin", "team", cwd=repo_dir)
    ok("remote", "add", "other", tmp_path / "other", cwd=repo_dir)
    assert json.loads(ok("status", "--json", cwd=repo_dir).stdout)["upstream"] is None
    error_line(run("rebase", cwd=repo_dir), 2, "branch 'main' has no upstream: name UPSTREAM")


def test_the_upstream_a_rebase_takes_when_given_none(history):
    """store.rebase.upstream_of, which `rebase` with no UPSTREAM asks (the CLI names none):
    the upstream as `status` and `pull` take it, where its remote-tracking branch is here;
    else one line naming the way out, as the command says it."""
    from memstore.errors import MemstoreError, ValidationError
    from memstore.store.rebase import rebase, upstream_of

    repo_dir, (_, c2, _) = history
    none = "branch 'main' has no upstream: name UPSTREAM, or set one with `memstore branch"
    with Repository.open(repo_dir) as repo:
        with pytest.raises(ValidationError, match=none):  # no remote: none
            upstream_of(repo, "main")
        repo.set_config("remotes", {"origin": "/nowhere", "team": "/elsewhere"})
        with pytest.raises(ValidationError, match=none):  # origin's main not fetched
            upstream_of(repo, "main")
        repo.update_ref("refs/remotes/origin/main", c2, expected=None)
        assert upstream_of(repo, "main") == ("refs/remotes/origin/main", "origin/main")
        repo.set_config("remotes", {"origin": 5, "team": "/elsewhere"})  # damaged by hand
        malformed = "the repository's remotes (config row 'remotes') are malformed"
        with pytest.raises(MemstoreError, match=re.escape(malformed)):  # as pull refuses it
            upstream_of(repo, "main")
        error_line(run("rebase", cwd=repo_dir), 1, malformed)
        repo.set_config("remotes", {"origin": "/nowhere", "team": "/elsewhere"})
        r = rebase(repo, None)  # main (C3) holds origin/main (C2)
        assert (r.up_to_date, r.upstream, r.shown) == (True, c2, "origin/main")
        repo.set_config("upstreams", {"main": {"remote": "team", "merge": "trunk"}})
        with pytest.raises(ValidationError, match=r"the upstream of 'main', team/trunk, is "
                           r"gone \(not fetched yet, or deleted there since\): name "
                           r"UPSTREAM, `memstore fetch team`"):
            upstream_of(repo, "main")
        repo.set_config("upstreams", {"main": {"remote": "gone", "merge": "main"}})
        with pytest.raises(MemstoreError, match="is 'gone/main', but there is no remote 'gone'"
                           ) as e:
            upstream_of(repo, "main")
        assert not isinstance(e.value, ValidationError)  # damage to the config: exit 1
        repo.set_config("upstreams", {})
        repo.set_config("remotes", {"team": "/elsewhere", "other": "/x"})
        repo.update_ref("refs/remotes/team/main", c2, expected=None)
        with pytest.raises(ValidationError, match=none):  # several, none origin: no default
            upstream_of(repo, "main")


def test_damaged_rows_in_either_history_refuse_it_with_nothing_changed(history, tmp_path):
    """topic (at C1) holds D then E. With D's commits row deleted (its record kept; fsck
    names it), the range cannot be told: refused in one line before anything is done; so
    is a row of UPSTREAM's history whose parents disagree with its record."""
    import sqlite3

    def sql(statement: str, args: list) -> None:
        con = sqlite3.connect(repo_dir / ".memstore" / "index.db")
        with con:
            con.execute(statement, args)
        con.close()

    repo_dir, (c1, c2, c3) = history
    files = facts_files(tmp_path)
    ok("switch", "-c", "topic", c1, cwd=repo_dir)
    d = last_line(ok("commit", files["d"], cwd=repo_dir))
    ok("commit", files["e"], cwd=repo_dir)
    before = snapshot(repo_dir)
    sql("update commits set parents = ? where id = ?", [json.dumps([c1]), c3])
    damaged = snapshot(repo_dir)
    error_line(run("rebase", "main", cwd=repo_dir), 1,
               f"commit {c3[:12]}: index row disagrees with the record")
    assert snapshot(repo_dir) == damaged
    sql("update commits set parents = ? where id = ?", [json.dumps([c2]), c3])
    assert snapshot(repo_dir) == before
    sql("delete from commits where id = ?", [d])
    damaged = snapshot(repo_dir)
    error_line(run("rebase", "main", cwd=repo_dir), 1,
               f"commit {d[:12]} is named but not in the index; run `memstore fsck`")
    assert snapshot(repo_dir) == damaged


def test_the_plan_holds_one_state_of_live_facts_not_one_a_pick(monkeypatch):
    """_plan on 5,000 live facts and 100 picks of one new fact each (the repository and
    pick_facts faked: the plan reads facts alone): at its peak it holds about two copies of
    the live facts, where keeping the state each pick lands on held one a pick (100 here;
    at 100,000 live facts about 5 MB a pick). It returns UPSTREAM's live facts, in their
    order, and each pick's facts; the rebase makes each landing state from them."""
    import tracemalloc
    from types import SimpleNamespace

    from memstore.editing.requests import Request, fact_key
    from memstore.store import rebase as rebase_module
    from memstore.store.history import LiveFact

    live = [LiveFact(Request(f"s{i}", "{} is", "x"), "c", 0, i) for i in range(5000)]
    repo = SimpleNamespace(facts_at=lambda rev: live)
    picks = [SimpleNamespace(id=f"p{i}") for i in range(100)]
    monkeypatch.setattr(rebase_module, "pick_facts", lambda repo, c, here, taken_out: (
        [LiveFact(Request(c.id, "{} is", "y"), c.id, 0, 0)], []))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        one = {fact_key(f.request): f for f in live}
        size = tracemalloc.get_traced_memory()[0] - before
        del one
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        start, planned = rebase_module._plan(repo, picks, "onto", "main", {})
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 4 * size, (peak, size)
    assert list(start.values()) == live
    assert [[f.request.subject for f in facts] for facts in planned] == \
        [[c.id] for c in picks]
