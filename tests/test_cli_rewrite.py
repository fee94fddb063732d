"""History rewrites through the CLI: revert is exact (C1 then C3 replayed from its cached
z-vectors, bit for bit), and revert, squash and merge never optimise z-vectors."""
from __future__ import annotations

import json

import pytest
import torch
import transformers
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    facts_files,
    history_template,
    last_line,
    log_json,
    ok,
    run,
    write_facts,
)

from memstore.editing import apply_updates, build_state, execute_memit
from memstore.editing.memit import stacked_keys
from memstore.models.adapters import get_adapter
from memstore.models.loading import prepare_tokenizer
from memstore.store import porcelain
from memstore.store.repository import Repository


@pytest.fixture
def history(tmp_path_factory, tmp_path):
    template, ids = history_template(tmp_path_factory.getbasetemp())
    return copy_repo(template, tmp_path / "repo"), ids


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def fresh_model(repo: Repository):
    """The base model loaded anew (not the CLI's cached one)."""
    path = repo.base.path
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    model.requires_grad_(False)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    prepare_tokenizer(tok)
    return model, tok, get_adapter(model)


def solved_after(repo: Repository, c1: str, c: str):
    """The expectation, computed independently: C1's update on the base weights, then C's
    requests solved from C's cached z-vectors and templates (no optimisation), preserving
    C1's keys (a history-aware solve; plain ignores them). The base weights, the adapter,
    the solve's result and the model's state after it."""
    model, tok, adapter = fresh_model(repo)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    apply_updates(model, adapter, repo.updates_of(c1))
    s = repo.get_commit(c).update_sets[0]
    stats = {l: repo.get_statistics(sid, l) for l, sid in s.stats.items()}
    preserved = stacked_keys([{l: u.keys for l, u in repo.updates_of(c1).items()}])
    replay = execute_memit(model, tok, repo.requests_of(c), s.edit_settings, stats,
                           zs=repo.zs_of_set(c), templates=list(s.templates),
                           earlier=preserved, show_progress=False)
    return base, adapter, replay, model.state_dict()


def test_revert_is_c1_then_c3_replayed_from_its_cached_zs(history):
    repo_dir, (c1, c2, c3) = history
    reverted = last_line(ok("revert", c2, cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        commit = repo.get_commit(reverted)
        assert commit.parents == (c3,) and commit.basis == c1 and len(commit.update_sets) == 1
        base, adapter, replay, expected = solved_after(repo, c1, c3)
        rebuilt = build_state(base, adapter, repo.update_chain(reverted))
        assert sorted(rebuilt) == [adapter.proj_weight_name(l) for l in (1, 2)]
        for name, w in rebuilt.items():
            assert same_bits(w, expected[name]), name
        # and the state the CLI builds (ask/eval/export) is the same
        live = porcelain.load_state(repo, reverted).model.state_dict()
        for name, w in rebuilt.items():
            assert same_bits(live[name], w), name
        # C3's facts were re-solved (not copied): without C2 the update differs
        assert not torch.equal(replay.updates[1].U, repo.updates_of(c3)[1].U)
        assert same_bits(repo.updates_of(reverted)[2].U, replay.updates[2].U)



def test_a_revert_reads_the_basis_facts_once_however_many_sets_it_replays(
        history, monkeypatch, tmp_path_factory):
    """Each replayed set's solve read every request list of the basis's chain again to know
    which facts are live: reverting HEAD~100 of 1,000 commits of 100 facts took 181 s (90 s
    now). The live facts are read once per revert and advanced by each set replayed; the
    keys each solve preserves are the same bits as read afresh."""
    from memstore.store import running

    repo_dir, (c1, c2, c3) = history
    calls = []
    real_live, real_keys = running._live_at, running.Replays.earlier_keys

    def live_at(store, commit_id):
        calls.append(commit_id)
        return real_live(store, commit_id)

    def checked(self, done, requests):
        got = real_keys(self, done, requests)
        n = len(calls)
        want = real_keys(running.Replays(self.store, self.basis), done, requests)  # afresh
        del calls[n:]  # the check's own read
        assert sorted(got) == sorted(want) and all(same_bits(got[l], want[l]) for l in want)
        return got

    monkeypatch.setattr(running, "_live_at", live_at)
    monkeypatch.setattr(running.Replays, "earlier_keys", checked)
    c4 = last_line(ok("commit", facts_files(tmp_path_factory.getbasetemp())["d"],
                      cwd=repo_dir))
    calls.clear()
    reverted = last_line(ok("revert", c2, cwd=repo_dir))
    with Repository.open(repo_dir) as repo:  # C3 and C4 replayed on C1's state
        assert [ref.commit for ref in repo.chain_sets(reverted)] == [c1, reverted, reverted]
        assert repo.get_commit(reverted).info["replayed"] == [c3, c4]
    assert calls == [c1]  # once, not once per set replayed


def test_a_revert_holds_one_replayed_sets_tensors_at_a_time(history, monkeypatch,
                                                            tmp_path_factory):
    """A revert kept every set it replayed (ΔW factors, keys, z-vectors), and the sets it
    carried unchanged, in memory until it wrote its commit: a revert early in a long
    history of a wide model held them all at once (a Llama-70B set of 100 facts at 10 layers
    is ~260 MB). Each is now written to the object store when it is solved, and the replay
    keeps its requests and record only: what it holds does not grow with the sets."""
    import gc

    from memstore.editing.result import LayerUpdate
    from memstore.store import rewrite

    repo_dir, (c1, c2, _) = history
    last_line(ok("commit", facts_files(tmp_path_factory.getbasetemp())["d"], cwd=repo_dir))
    held, real = [], rewrite._replay

    def replay(*args, **kwargs):
        gc.collect()
        held.append(sum(isinstance(o, LayerUpdate) for o in gc.get_objects()))
        return real(*args, **kwargs)

    monkeypatch.setattr(rewrite, "_replay", replay)
    reverted = last_line(ok("revert", c2, cwd=repo_dir))
    assert len(held) == 2 and held[1] == held[0], held  # C3's replay, then C4's
    with Repository.open(repo_dir) as repo:
        assert [ref.commit for ref in repo.chain_sets(reverted)] == [c1, reverted, reverted]


def test_a_revert_refused_part_way_takes_back_the_sets_it_stored(history, monkeypatch,
                                                                  tmp_path_factory):
    """A revert stores each replayed set as it is solved; refused at a later set (its
    memory estimate does not fit, as `_replay` refuses), or interrupted, it leaves no
    objects behind: the store is as it was."""
    from memstore.errors import MemstoreError
    from memstore.store import rewrite

    repo_dir, (_, c2, _) = history
    last_line(ok("commit", facts_files(tmp_path_factory.getbasetemp())["d"], cwd=repo_dir))
    objects = repo_dir / ".memstore" / "objects"
    before = sorted(p.relative_to(objects) for p in objects.rglob("*") if p.is_file())
    calls, real = [], rewrite._replay

    def replay(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MemstoreError("a solve of 2 facts from their cached z-vectors will not fit")
        return real(*args, **kwargs)

    monkeypatch.setattr(rewrite, "_replay", replay)
    error_line(run("revert", c2, cwd=repo_dir), 1, "will not fit")
    assert len(calls) == 2  # C3's set was solved and stored before C4's was refused
    after = sorted(p.relative_to(objects) for p in objects.rglob("*") if p.is_file())
    assert after == before


def test_revert_squash_and_merge_run_no_z_optimisation(history, monkeypatch, tmp_path_factory):
    repo_dir, (c1, c2, _) = history
    files = facts_files(tmp_path_factory.getbasetemp())
    ok("branch", "side", c2, cwd=repo_dir)
    ok("switch", "side", cwd=repo_dir)
    ok("commit", files["d"], "-m", "facts d", cwd=repo_dir)
    ok("switch", "main", cwd=repo_dir)

    def no_z_optimisation(*args, **kwargs):
        raise AssertionError("z-vectors were optimised")

    monkeypatch.setattr("memstore.editing.memit.compute_zs", no_z_optimisation)
    with pytest.raises(AssertionError, match="optimised"):  # the patch is effective
        run("commit", files["e"], cwd=repo_dir)
    merged = last_line(ok("merge", "side", cwd=repo_dir))
    assert subjects(repo_dir) == {"Danielle Darrieux", "Porsche 911", "Michael Jordan",
                                  "Toko Yasuda", "Lionel Messi", "Honda Civic"}
    unmerged = last_line(ok("revert", merged, cwd=repo_dir))  # takes out what side brought
    assert subjects(repo_dir) == {"Danielle Darrieux", "Porsche 911", "Michael Jordan",
                                  "Toko Yasuda", "Lionel Messi"}
    reverted = last_line(ok("revert", c2, cwd=repo_dir))
    assert subjects(repo_dir) == {"Danielle Darrieux", "Porsche 911", "Toko Yasuda",
                                  "Lionel Messi"}
    r = ok("squash", c1, cwd=repo_dir)
    squashed = last_line(r)
    log = log_json(repo_dir)
    assert [e["id"] for e in log] == [squashed, c1]
    assert {merged, unmerged, reverted} <= {e["id"] for e in log_json(repo_dir, reverted)}
    shown = json.loads(ok("show", squashed, "--json", cwd=repo_dir).stdout)
    # the facts added after C1 and live at the old HEAD: those of C3
    assert shown["n_requests"] == 2 and len(shown["update_sets"]) == 1
    assert shown["metrics"]["before"]["n"] == 2
    assert "efficacy before" in r.stderr
    assert subjects(repo_dir) == {"Danielle Darrieux", "Porsche 911", "Toko Yasuda",
                                  "Lionel Messi"}


def subjects(repo_dir) -> set[str]:
    with Repository.open(repo_dir) as repo:
        return {f.request.subject for f in repo.facts_at("HEAD")}


def margin(repo: Repository, subject: str, prompt: str, new: str, old: str) -> float:
    """NLL(old) − NLL(new) at HEAD: > 0 when the model says `new` rather than `old`."""
    from memstore.eval.scoring import score_targets

    base = porcelain.load_state(repo, None)
    text = prompt.format(subject)
    nll = score_targets(base.model, base.tokenizer, [text, text], [new, old]).nll
    return float(nll[1] - nll[0])


def test_a_superseded_fact_flips_and_leaves_the_running_matrix(tmp_path_factory, tmp_path):
    """With history preserve and earlier keys weighed heavily, a --supersede commit must
    still write the new target: the superseded fact's keys leave the running matrix.
    (Kept at full weight, as before issue 9, the margin stays at -0.15: the old target.)"""
    from cli_support import empty_template, write_facts

    repo_dir = copy_repo(empty_template(tmp_path_factory.getbasetemp()), tmp_path / "repo")
    for key, value in (("history_weight", "1e4"), ("z_steps", "25"), ("clamp", "4"),
                       ("n_templates", "0"), ("kl_weight", "0"), ("layers", "2"),
                       ("mom2_weight", "0.01")):
        ok("config", key, value, cwd=repo_dir)
    fact = ("Danielle Darrieux", "The mother tongue of {} is")
    ok("commit", write_facts(tmp_path / "1.jsonl", [(*fact, "English", "French")]), cwd=repo_dir)
    with Repository.open(repo_dir) as repo:
        assert margin(repo, *fact, "English", "Honda") > 0
    second = write_facts(tmp_path / "2.jsonl", [(*fact, "Honda", "English")])
    ok("commit", second, "--supersede", cwd=repo_dir)
    with Repository.open(repo_dir) as repo:
        assert margin(repo, *fact, "Honda", "English") > 0  # the new target is what it says
        from memstore.store.running import running_matrix

        head = repo.head().commit
        matrix = running_matrix(repo.store, head)
        keys = repo.updates_of(head)
        for layer, m in matrix.items():  # only the live fact's keys are left in the sum
            k = keys[layer].keys.double()
            torch.testing.assert_close(m, k.T @ k, rtol=1e-6, atol=1e-6)


def test_a_commit_reverted_once_is_not_reverted_again(history, tmp_path_factory):
    """Its facts, committed again since, stay: the second revert is refused."""
    repo_dir, (_, c2, _) = history
    ok("revert", c2, cwd=repo_dir)
    ok("commit", facts_files(tmp_path_factory.getbasetemp())["b"], "-m", "b again",
       cwd=repo_dir)
    with Repository.open(repo_dir) as repo:
        before = {(f.request.subject, f.request.prompt) for f in repo.facts_at("HEAD")}
        head = repo.head().commit
    r = run("revert", c2, cwd=repo_dir)
    assert r.exit_code == 1 and f"commit {c2[:12]} was already reverted by" in r.stderr
    with Repository.open(repo_dir) as repo:
        assert repo.head().commit == head
        assert {(f.request.subject, f.request.prompt) for f in repo.facts_at("HEAD")} == before
    assert ("Michael Jordan", "{} plays") in before


def test_leaving_a_detached_commit_behind_is_warned(history, tmp_path_factory):
    repo_dir, (c1, _, _) = history
    ok("switch", c1, cwd=repo_dir)
    r = ok("switch", "main", cwd=repo_dir)  # detached at a commit main holds: nothing left
    assert "leaving" not in r.stderr
    ok("switch", c1, cwd=repo_dir)
    new = last_line(ok("commit", facts_files(tmp_path_factory.getbasetemp())["d"], cwd=repo_dir))
    r = ok("switch", "main", cwd=repo_dir)
    assert f"leaving 1 commit(s) that no branch or tag holds, the newest {new[:12]}" \
        in r.stderr
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo_dir)  # HEAD's names it
    assert "would remove 1 commit," in ok("gc", "--dry-run", cwd=repo_dir).stdout


def subjects_live(repo_dir, rev="HEAD"):
    with Repository.open(repo_dir) as repo:
        return sorted(f.request.subject for f in repo.facts_at(rev))


def test_a_merge_over_a_revert_on_either_side(history, tmp_path_factory):
    """A side that reverted a fact of the merge base and added others merges (built on that
    side's state)."""
    repo_dir, (_, c2, _) = history
    files = facts_files(tmp_path_factory.getbasetemp())
    ok("switch", "-c", "side", cwd=repo_dir)
    ok("revert", c2, cwd=repo_dir)
    ok("commit", files["e"], cwd=repo_dir)
    ok("switch", "main", cwd=repo_dir)
    ok("commit", files["d"], cwd=repo_dir)
    ok("merge", "side", cwd=repo_dir)
    assert "Michael Jordan" not in subjects_live(repo_dir)
    assert {"Apple A5", "Honda Civic", "Toko Yasuda"} <= set(subjects_live(repo_dir))
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_a_merge_where_each_side_reverted_what_the_other_keeps(history):
    """The refusal says what to do, and doing it lets the merge through."""
    repo_dir, (_, c2, c3) = history
    ok("switch", "-c", "side", cwd=repo_dir)
    ok("revert", c2, cwd=repo_dir)
    ok("switch", "main", cwd=repo_dir)
    ok("revert", c3, cwd=repo_dir)
    with Repository.open(repo_dir) as repo:
        head = repo.head().commit
    r = run("merge", "side", cwd=repo_dir)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.output
    assert "here 'Lionel Messi', 'Toko Yasuda'; on side 'Michael Jordan'" in r.stderr
    assert "revert here what side reverted, then merge again" in r.stderr
    with Repository.open(repo_dir) as repo:
        assert repo.head().commit == head
    ok("revert", c2, cwd=repo_dir)  # as the refusal says
    ok("merge", "side", cwd=repo_dir)
    assert subjects_live(repo_dir) == ["Danielle Darrieux", "Porsche 911"]


def test_squash_onto_the_base_is_one_root_commit_solved_from_the_cached_zs(history):
    """`squash base`: every live fact in one solve on the base weights, from the cached
    z-vectors of its commit, in a commit with no parent (computed here independently)."""
    repo_dir, (c1, c2, c3) = history
    squashed = last_line(ok("squash", "base", cwd=repo_dir))
    assert [e["id"] for e in log_json(repo_dir)] == [squashed]
    with Repository.open(repo_dir) as repo:
        commit = repo.get_commit(squashed)
        assert commit.parents == () and commit.basis is None and len(commit.update_sets) == 1
        assert "after the base model" in commit.message
        model, tok, adapter = fresh_model(repo)
        base = {k: v.clone() for k, v in model.state_dict().items()}
        newest = repo.get_commit(c3).update_sets[0]
        stats = {l: repo.get_statistics(sid, l) for l, sid in newest.stats.items()}
        requests = [r for c in (c1, c2, c3) for r in repo.requests_of(c)]
        zs = torch.cat([repo.zs_of_set(c) for c in (c1, c2, c3)])
        execute_memit(model, tok, requests, newest.edit_settings, stats, zs=zs,
                      templates=list(newest.templates), show_progress=False)
        expected = model.state_dict()
        rebuilt = build_state(base, adapter, repo.update_chain(squashed))
        for name, w in rebuilt.items():
            assert same_bits(w, expected[name]), name
    assert subjects(repo_dir) == {r.subject for r in requests}


@pytest.mark.parametrize("revert_m", [False, True])
def test_a_revert_after_a_squash_whose_commits_gc_removed(base, tmp_path, revert_m):
    """T writes Jordan -> soccer and Messi -> tennis, m supersedes Jordan -> golf; then b
    writes soccer again (its own write) or a revert of m gives T's soccer back (T's write);
    everything after m is squashed and gc removes the squashed commits (a clone never has
    them). A revert of T takes out T's writes and the squash's copies of them: Messi goes,
    and Jordan keeps b's soccer, or, its soccer being T's, is m's golf again. It failed
    with 'object … is missing' where gc had run; the same as without gc now."""
    files = {}
    for name, target in (("t", "soccer"), ("m", "golf"), ("b", "soccer")):
        facts = [("Michael Jordan", "{} plays", target, "basketball")]
        if name == "t":
            facts.append(("Lionel Messi", "{} plays", "tennis", "soccer"))
        files[name] = write_facts(tmp_path / f"{name}.jsonl", facts)
    expected = {("Michael Jordan", "{} plays"): "golf" if revert_m else "soccer"}
    for gc in (False, True):
        repo_dir = copy_repo(empty_template(base), tmp_path / f"repo-{gc}")
        t = last_line(ok("commit", files["t"], cwd=repo_dir))
        m = last_line(ok("commit", files["m"], "--supersede", cwd=repo_dir))
        ok(*(("revert", m) if revert_m else ("commit", files["b"], "--supersede")),
           cwd=repo_dir)
        ok("squash", m, cwd=repo_dir)
        if gc:
            ok("reflog", "expire", "--expire=now", "--all", cwd=repo_dir)  # it keeps them
            assert "removed 1 commit," in ok("gc", cwd=repo_dir).stdout
        ok("revert", t, cwd=repo_dir)
        with Repository.open(repo_dir) as repo:
            live = {(f.request.subject, f.request.prompt): f.request.target_new
                    for f in repo.facts_at("HEAD")}
        assert live == expected, (gc, live)
        assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


@pytest.mark.parametrize("again", [False, True])
def test_a_revert_of_a_merge_built_on_the_merged_side(history, tmp_path_factory, tmp_path,
                                                       again):
    """side reverts C2 (a fact of the merge base main keeps) and commits d; main commits e.
    The merge takes side's revert, so it is built on side's state (d's write as side made
    it) with e solved again. `revert MERGE` takes out what it brought in from side (d):
    it was refused, 'has no facts in the current state', with d live. Where side then
    gave d's fact another target (`again`), the revert took out that write only, and d's
    first target was live again, a fact main never held. And it puts back what the merge
    took out, C2's fact, which main held (as git's revert of a merge does): that stayed
    out."""
    repo_dir, (_, c2, _) = history
    files = facts_files(tmp_path_factory.getbasetemp())
    ok("switch", "-c", "side", cwd=repo_dir)
    ok("revert", c2, cwd=repo_dir)
    ok("commit", files["d"], cwd=repo_dir)
    if again:
        ok("commit", write_facts(tmp_path / "d2.jsonl", [
            ("Honda Civic", "{} is produced by", "Toyota", "Honda")]), "--supersede",
           cwd=repo_dir)
    ok("switch", "main", cwd=repo_dir)
    e = last_line(ok("commit", files["e"], cwd=repo_dir))
    r = ok("merge", "side", cwd=repo_dir)  # it said 'solved on the merge base', C3
    merge = json.loads(ok("show", "--json", cwd=repo_dir).stdout)
    assert merge["basis"] == merge["parents"][1] != merge["info"]["merge_base"]
    assert f"1 fact solved on the merged side {merge['basis'][:12]})" in r.stdout
    want = {"Danielle Darrieux", "Porsche 911", "Toko Yasuda", "Lionel Messi", "Apple A5"}
    assert set(subjects_live(repo_dir)) == want | {"Honda Civic"}
    reverted = json.loads(ok("revert", merge["id"], "--json", cwd=repo_dir).stdout)
    assert (reverted["n_removed"], reverted["n_restored"]) == (1, 1)
    assert set(subjects_live(repo_dir)) == want | {"Michael Jordan"}
    blamed = {x["subject"]: x for x in json.loads(ok("blame", "--json", cwd=repo_dir).stdout)}
    assert (blamed["Michael Jordan"]["commit"], blamed["Michael Jordan"]["carried_by"]) == \
        (c2, reverted["commit"])  # C2's write, solved again from its cached z-vector
    assert blamed["Apple A5"]["commit"] == e  # replayed by the revert, still e's write
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_a_fact_a_revert_of_a_merge_put_back_holds_it_after_a_squash_and_gc(base, tmp_path):
    """b1 reverts main's A; the merge takes A's fact out, its revert R puts it back; a
    squash onto the merge replaces R and gc drops it. b2 (from A) writes the fact again and
    is merged: a revert of b2's write leaves main's (put back). It took the fact out: the
    squash's copy of the put-back write read as one b1's revert of A took out, once gc left
    R out of its line (the squash now records it: info `restored`)."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    fact = ("Toko Yasuda", "The mother tongue of {} is", "French")

    def commit(name: str, facts) -> str:
        path = write_facts(tmp_path / f"{name}.jsonl", [(*f, "x") for f in facts])
        return last_line(ok("commit", path, cwd=repo_dir))

    a = commit("a", [fact])
    ok("branch", "b1", cwd=repo_dir)
    ok("branch", "b2", cwd=repo_dir)
    commit("c", [("Lionel Messi", "{} plays", "soccer")])
    ok("switch", "b1", cwd=repo_dir)
    ok("revert", a, cwd=repo_dir)
    ok("switch", "main", cwd=repo_dir)
    merge = last_line(ok("merge", "b1", cwd=repo_dir))
    ok("revert", merge, cwd=repo_dir)
    assert subjects_live(repo_dir) == ["Lionel Messi", "Toko Yasuda"]
    ok("branch", "-D", "b1", cwd=repo_dir)
    ok("squash", merge, cwd=repo_dir)
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo_dir)  # it keeps them
    ok("gc", cwd=repo_dir)
    ok("switch", "b2", cwd=repo_dir)
    again = commit("y", [fact])
    ok("switch", "main", cwd=repo_dir)
    ok("merge", "b2", cwd=repo_dir)
    ok("revert", again, cwd=repo_dir)
    assert subjects_live(repo_dir) == ["Lionel Messi", "Toko Yasuda"]
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


@pytest.mark.parametrize("squash", [False, True])
def test_a_fact_written_again_stays_after_a_revert_squashed_or_not(base, tmp_path, squash):
    """P writes Jordan -> soccer and Messi -> tennis, C writes Jordan -> soccer again. A
    revert of P keeps C's later write (README); after `squash P` too: the squash left C's
    write out (the same fact as P's), so the revert took Jordan out."""
    p = write_facts(tmp_path / "p.jsonl", [("Michael Jordan", "{} plays", "soccer", "x"),
                                           ("Lionel Messi", "{} plays", "tennis", "x")])
    c = write_facts(tmp_path / "c.jsonl", [("Michael Jordan", "{} plays", "soccer", "x")])
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    first = last_line(ok("commit", p, cwd=repo_dir))
    ok("commit", c, cwd=repo_dir)
    if squash:
        assert json.loads(ok("squash", first, "--json", cwd=repo_dir).stdout)["n_facts"] == 1
    d = json.loads(ok("revert", first, "--json", cwd=repo_dir).stdout)
    assert subjects_live(repo_dir) == ["Michael Jordan"]
    assert d["n_removed"] == 1, d


@pytest.mark.parametrize("args", [("revert", 0), ("squash", "base")])
def test_a_replay_that_will_not_fit_is_refused_before_anything_is_written(history, monkeypatch,
                                                                         args):
    """revert, squash and merge solve from cached z-vectors with no memory estimate: on a
    machine without the room they ran out of memory partway (killed, or a traceback); they
    are refused in one line, as a commit is — before the statistics a replay solves with are
    got (computed, where a clone lacks them: they were got first, then refused)."""
    from cli_support import snapshot

    from memstore.editing import memory
    from memstore.store import rewrite

    repo_dir, ids = history
    args = tuple(ids[a] if isinstance(a, int) else a for a in args)
    monkeypatch.setattr(memory, "available", lambda device: 1024)  # 1 KiB free
    got = []
    monkeypatch.setattr(rewrite, "statistics_of_set", lambda *a: got.append(a))
    before = snapshot(repo_dir)
    r = run(*args, cwd=repo_dir)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.output
    assert "from their cached z-vectors will not fit: estimated peak memory" in r.stderr
    assert snapshot(repo_dir) == before and got == []


# -- a fact both sides of a merge wrote, each by its own commit ---------------------------------

JORDAN = ("Michael Jordan", "{} plays", "soccer", "basketball")
MESSI = ("Lionel Messi", "{} plays", "tennis", "soccer")
YASUDA = ("Toko Yasuda", "{} plays the", "piano", "guitar")


def both_write_jordan(base, tmp_path, more: bool) -> tuple:
    """h (Yasuda) on main; then ours (Jordan) on main and theirs (Jordan, and Messi where
    `more`) on `other`, each its own write of the same fact; main merges other."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    ok("commit", write_facts(tmp_path / "h.jsonl", [YASUDA]), cwd=repo_dir)
    ok("branch", "other", cwd=repo_dir)
    ours = last_line(ok("commit", write_facts(tmp_path / "o.jsonl", [JORDAN]), cwd=repo_dir))
    ok("switch", "other", cwd=repo_dir)
    theirs = last_line(ok("commit", write_facts(tmp_path / "t.jsonl",
                                                [JORDAN] + ([MESSI] if more else [])),
                          cwd=repo_dir))
    ok("switch", "main", cwd=repo_dir)
    merge = last_line(ok("merge", "other", cwd=repo_dir))
    return repo_dir, ours, theirs, merge


def jordan_z(repo: Repository, rev: str) -> torch.Tensor | None:
    """The cached z-vector of the write of Jordan live at `rev` (None: not live)."""
    live = [f for f in repo.facts_at(rev) if f.request.subject == JORDAN[0]]
    return repo.zs_of(live)[0] if live else None


@pytest.mark.parametrize("more", [False, True])
@pytest.mark.parametrize("first", ["ours", "theirs"])
def test_a_fact_both_sides_wrote_stays_until_both_are_reverted(base, tmp_path, more, first):
    """README: a revert takes out REV's writes, not what others wrote. Both sides wrote
    Jordan -> soccer; the merge kept one write (ours). `revert ours` dropped Jordan, though
    theirs wrote it too (and `revert theirs` was refused, or took out nothing of Jordan's).
    A revert of either side's commit keeps it, written from the other's cached z-vector;
    a revert of both takes it out."""
    repo_dir, ours, theirs, _ = both_write_jordan(base, tmp_path, more)
    one, other = (ours, theirs) if first == "ours" else (theirs, ours)
    with Repository.open(repo_dir) as repo:
        other_z = jordan_z(repo, other)
    everyone = {YASUDA[0], JORDAN[0]} | ({MESSI[0]} if more else set())
    assert set(subjects_live(repo_dir)) == everyone
    messi_first = {MESSI[0]} if more and first == "theirs" else set()  # theirs' alone
    ok("revert", one, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == everyone - messi_first
    with Repository.open(repo_dir) as repo:
        assert same_bits(jordan_z(repo, "HEAD"), other_z)
    shown = json.loads(ok("show", "--json", cwd=repo_dir).stdout)["facts"]
    assert JORDAN[0] not in {f["subject"] for f in shown["removed"] + shown["changed"]}
    assert "Michael" not in ok("diff", "HEAD~1", cwd=repo_dir).stdout
    ok("revert", other, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {YASUDA[0]}
    shown = json.loads(ok("show", "--json", cwd=repo_dir).stdout)["facts"]
    assert {f["subject"] for f in shown["removed"]} == everyone - messi_first - {YASUDA[0]}
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


@pytest.mark.parametrize("more", [False, True])
@pytest.mark.parametrize("merge_first", [True, False])
def test_a_revert_of_the_merge_takes_out_the_merged_sides_write_of_a_fact_both_wrote(
        base, tmp_path, more, merge_first):
    """README: a revert of a merge takes out every write it brought in from the merged
    side, theirs' of Jordan too, which main held by ours' write already. `revert MERGE`
    keeps Jordan (ours holds it) and `revert ours` keeps it (theirs does); both, in either
    order, take it out. `revert MERGE` then `revert ours` kept it (theirs' write still held
    it); `revert ours` then `revert MERGE` kept it too (the merge took out only facts main
    lacked before it); and `revert MERGE` where theirs wrote Jordan alone was refused."""
    repo_dir, ours, _, merge = both_write_jordan(base, tmp_path, more)
    messi = {MESSI[0]} if more else set()
    first, second = (merge, ours) if merge_first else (ours, merge)
    d = json.loads(ok("revert", first, "--json", cwd=repo_dir).stdout)
    assert set(subjects_live(repo_dir)) == {YASUDA[0], JORDAN[0]} | (
        set() if merge_first else messi)
    assert d["n_removed"] == (len(messi) if merge_first else 0)
    d = json.loads(ok("revert", second, "--json", cwd=repo_dir).stdout)
    assert set(subjects_live(repo_dir)) == {YASUDA[0]}
    assert d["n_removed"] == 1 + (0 if merge_first else len(messi))
    assert "p_new" in d["metrics"]["reverted"]
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_a_fact_both_sides_wrote_stays_after_a_squash_of_one_side_and_gc(base, tmp_path):
    """The merge is squashed onto ours (theirs with it) and gc removes them: the squash
    solves Jordan again from theirs' z-vector, so `revert ours` keeps it (the squash's
    write); a revert of the squash then takes it out."""
    repo_dir, ours, theirs, _ = both_write_jordan(base, tmp_path, more=False)
    with Repository.open(repo_dir) as repo:
        theirs_z = jordan_z(repo, theirs)
    ok("branch", "-D", "other", cwd=repo_dir)
    squashed = json.loads(ok("squash", ours, "--json", cwd=repo_dir).stdout)
    assert squashed["n_facts"] == 1
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo_dir)  # it keeps them
    assert "removed 2 commits" in ok("gc", cwd=repo_dir).stdout
    ok("revert", ours, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {YASUDA[0], JORDAN[0]}
    with Repository.open(repo_dir) as repo:
        assert same_bits(jordan_z(repo, "HEAD"), theirs_z)
    ok("revert", squashed["commit"], cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {YASUDA[0]}
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_a_revert_of_one_holder_is_kept_through_a_squash_and_gc(base, tmp_path):
    """`revert theirs` writes nothing (ours holds Jordan by its own write) but takes theirs
    out of Jordan's holders; a squash of that revert records it (gc removes the revert), so
    `revert ours` afterwards takes Jordan out."""
    repo_dir, ours, theirs, merge = both_write_jordan(base, tmp_path, more=False)
    with Repository.open(repo_dir) as repo:
        before = jordan_z(repo, "HEAD")
    reverted = json.loads(ok("revert", theirs, "--json", cwd=repo_dir).stdout)
    shown = json.loads(ok("show", "--json", cwd=repo_dir).stdout)
    assert shown["update_sets"] == [] and not any(shown["facts"].values())
    with Repository.open(repo_dir) as repo:
        assert same_bits(jordan_z(repo, "HEAD"), before)
        assert repo.get_commit(reverted["commit"]).basis == merge
    ok("squash", merge, cwd=repo_dir)
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo_dir)  # it keeps them
    assert "removed 1 commit," in ok("gc", cwd=repo_dir).stdout
    ok("revert", ours, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {YASUDA[0]}
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_a_holder_reverted_then_merged_again_holds_no_more(base, tmp_path):
    """`revert theirs` leaves Jordan to ours' write; other commits e and main merges it
    again: the merge builds on other's state, whose write of Jordan is theirs'. `revert
    ours` takes Jordan out (theirs was reverted): it kept theirs' write."""
    repo_dir, ours, theirs, _ = both_write_jordan(base, tmp_path, more=False)
    ok("revert", theirs, cwd=repo_dir)
    ok("switch", "other", cwd=repo_dir)
    ok("commit", write_facts(tmp_path / "e.jsonl", [MESSI]), cwd=repo_dir)
    ok("switch", "main", cwd=repo_dir)
    ok("merge", "other", cwd=repo_dir)
    with Repository.open(repo_dir) as repo:
        assert [f.commit for f in repo.facts_at("HEAD")
                if f.request.subject == JORDAN[0]] == [theirs]
    assert set(subjects_live(repo_dir)) == {YASUDA[0], JORDAN[0], MESSI[0]}
    ok("revert", ours, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {YASUDA[0], MESSI[0]}
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def jordan_at_other_layers(base, tmp_path):
    """main: Yasuda, then ours (Jordan); branch other, from Yasuda: theirs (Jordan) at
    layers 0,1. Returns the repository (on main), ours and theirs."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    ok("commit", write_facts(tmp_path / "h.jsonl", [YASUDA]), cwd=repo_dir)
    ok("branch", "other", cwd=repo_dir)
    ours = last_line(ok("commit", write_facts(tmp_path / "o.jsonl", [JORDAN]), cwd=repo_dir))
    ok("switch", "other", cwd=repo_dir)
    ok("config", "layers", "0,1", cwd=repo_dir)
    ok("stats", cwd=repo_dir)
    theirs = last_line(ok("commit", write_facts(tmp_path / "t.jsonl", [JORDAN]), cwd=repo_dir))
    ok("switch", "main", cwd=repo_dir)
    return repo_dir, ours, theirs


def test_a_holder_at_other_layers_is_refused_in_one_line(base, tmp_path):
    """theirs wrote Jordan at other edited layers: its z-vector cannot be replayed in ours'
    set, so `revert ours` is refused in one line, nothing written; reverting theirs first,
    as it says, lets it through and takes Jordan out."""
    from cli_support import error_line, snapshot

    repo_dir, ours, theirs = jordan_at_other_layers(base, tmp_path)
    ok("merge", "other", cwd=repo_dir)
    before = snapshot(repo_dir)
    line = error_line(run("revert", ours, cwd=repo_dir), 1, "at other edited layers")
    assert f"revert {theirs[:12]} first" in line
    assert snapshot(repo_dir) == before
    ok("revert", theirs, cwd=repo_dir)
    ok("revert", ours, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {YASUDA[0]}


def test_a_squash_leaves_a_holder_at_other_layers_out_of_its_solve(base, tmp_path):
    """theirs wrote Jordan at other edited layers than K, committed on main after the merge:
    a squash onto ours solving Jordan again from theirs' z-vector with K's was refused
    (different edited layers); it solves K alone, as before such holders counted."""
    repo_dir, ours, _ = jordan_at_other_layers(base, tmp_path)
    ok("config", "layers", "1,2", cwd=repo_dir)
    ok("merge", "other", cwd=repo_dir)
    ok("commit", write_facts(tmp_path / "k.jsonl", [MESSI]), cwd=repo_dir)
    assert json.loads(ok("squash", ours, "--json", cwd=repo_dir).stdout)["n_facts"] == 1
    assert set(subjects_live(repo_dir)) == {YASUDA[0], JORDAN[0], MESSI[0]}


def test_a_write_both_sides_had_before_they_parted_is_no_other_holder(base, tmp_path):
    """P writes Jordan -> soccer; other forks, commits Yasuda and reverts it (it brings
    nothing new, so the merge is built on main's state); main supersedes Jordan -> golf
    (G), then soccer again (C), and merges other, which holds P's soccer. Only C wrote
    soccer since they parted: `revert C` gives G's golf back (README: a fact REV superseded
    is live again); it kept soccer, written again from P's z-vector."""
    golf = (*JORDAN[:2], "golf", "soccer")
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    ok("commit", write_facts(tmp_path / "p.jsonl", [JORDAN]), cwd=repo_dir)
    ok("branch", "other", cwd=repo_dir)
    ok("commit", write_facts(tmp_path / "g.jsonl", [golf]), "--supersede", cwd=repo_dir)
    c = last_line(ok("commit", write_facts(tmp_path / "c.jsonl", [JORDAN]), "--supersede",
                     cwd=repo_dir))
    ok("switch", "other", cwd=repo_dir)
    ok("revert", last_line(ok("commit", write_facts(tmp_path / "y.jsonl", [YASUDA]),
                              cwd=repo_dir)), cwd=repo_dir)
    ok("switch", "main", cwd=repo_dir)
    merge = last_line(ok("merge", "other", cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(merge).basis == c
    ok("revert", c, cwd=repo_dir)
    with Repository.open(repo_dir) as repo:
        live = {f.request.subject: f.request.target_new for f in repo.facts_at("HEAD")}
    assert live == {JORDAN[0]: "golf"}


def test_a_fact_both_sides_wrote_again_since_the_merge_base_stays_after_its_revert(
        base, tmp_path):
    """P writes Jordan -> soccer; main (A) and other (B, with Messi) each write it again
    after they part; the merge is solved on P's state, which holds Jordan by P's write,
    neither side's. `revert P` took Jordan out, though A and B wrote it again since
    (README: a fact a later commit wrote again keeps that later write); it stays until
    both A and B are reverted too."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    p = last_line(ok("commit", write_facts(tmp_path / "p.jsonl", [JORDAN]), cwd=repo_dir))
    ok("branch", "other", cwd=repo_dir)
    a = last_line(ok("commit", write_facts(tmp_path / "a.jsonl", [JORDAN]), cwd=repo_dir))
    ok("switch", "other", cwd=repo_dir)
    b = last_line(ok("commit", write_facts(tmp_path / "b.jsonl", [JORDAN, MESSI]),
                     cwd=repo_dir))
    ok("switch", "main", cwd=repo_dir)
    merge = last_line(ok("merge", "other", cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(merge).basis == p
        zs = {c: jordan_z(repo, c) for c in (a, b)}
    ok("revert", p, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {JORDAN[0], MESSI[0]}
    with Repository.open(repo_dir) as repo:
        assert any(same_bits(jordan_z(repo, "HEAD"), z) for z in zs.values())
    ok("revert", a, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == {JORDAN[0], MESSI[0]}
    with Repository.open(repo_dir) as repo:
        assert same_bits(jordan_z(repo, "HEAD"), zs[b])
    ok("revert", b, cwd=repo_dir)
    assert set(subjects_live(repo_dir)) == set()
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_revert_counts_only_the_writes_it_takes_out(history, tmp_path):
    """C1 writes Darrieux and the Porsche; a later commit writes the Porsche again with
    another target. `revert C1` takes out Darrieux only (the later write keeps the
    Porsche): `removed` and the `reverted` metrics said 2, counting a fact that stays."""
    repo_dir, (c1, _, _) = history
    again = write_facts(tmp_path / "again.jsonl",
                        [("Porsche 911", "{}, created by", "Toyota", "Porsche")])
    ok("commit", again, "--supersede", cwd=repo_dir)
    d = json.loads(ok("revert", c1, "--json", cwd=repo_dir).stdout)
    with Repository.open(repo_dir) as repo:
        live = {f.request.subject: f.request.target_new for f in repo.facts_at("HEAD")}
    assert "Danielle Darrieux" not in live and live["Porsche 911"] == "Toyota"
    shown = json.loads(ok("show", "--json", cwd=repo_dir).stdout)["facts"]
    assert len(shown["removed"]) == d["n_removed"] == 1
    assert "p_new" in d["metrics"]["reverted"]


def test_an_earlier_write_the_merged_side_held_a_fact_by_is_a_holder_too(base, tmp_path):
    """P writes Jordan -> soccer; other writes it again twice (A, then B); main writes it
    again (C) and merges other, which brings nothing new: the merge keeps C's write and
    leaves out A's and B's. `revert A` was refused ('has no facts in the current state'),
    though A's write is one the merge left out keeping another commit's, written since
    the two sides parted (README: then the revert writes a commit); only B's, the other
    side's live write, counted. It changes no facts; the fact goes with the last holder."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")

    def jordan() -> str:
        return last_line(ok("commit", write_facts(tmp_path / "j.jsonl", [JORDAN]), cwd=repo_dir))

    p = jordan()
    ok("branch", "other", cwd=repo_dir)
    ok("switch", "other", cwd=repo_dir)
    a, b = jordan(), jordan()
    ok("switch", "main", cwd=repo_dir)
    c = jordan()
    merge = last_line(ok("merge", "other", cwd=repo_dir))
    reverted = json.loads(ok("revert", a, "--json", cwd=repo_dir).stdout)
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(reverted["commit"]).basis == merge
    assert subjects_live(repo_dir) == [JORDAN[0]]
    for x in (c, b):
        ok("revert", x, cwd=repo_dir)
        assert subjects_live(repo_dir) == [JORDAN[0]]
    ok("revert", p, cwd=repo_dir)
    assert subjects_live(repo_dir) == []
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_a_replay_estimates_the_statistics_it_must_compute(base, history, tmp_path,
                                                            monkeypatch):
    """A clone fetched without --with-stats computes the statistics a replay solves with:
    the replay's memory estimate counts that phase there (it left it out), and not where
    they are stored."""
    from cli_support import model_dir

    from memstore.store import rewrite

    repo_dir, (c1, _, _) = history
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo_dir)
    ok("push", cwd=repo_dir)
    clone = tmp_path / "clone"
    ok("clone", tmp_path / "remote", clone, "--base", model_dir(base))
    seen: list[bool] = []
    real = rewrite.estimate_memory
    monkeypatch.setattr(rewrite, "estimate_memory", lambda *a, **k: seen.append(
        k["statistics_needed"]) or real(*a, **k))
    ok("revert", c1, cwd=clone)
    assert seen[0] is True
    del seen[:]
    ok("revert", c1, cwd=repo_dir)
    assert seen and not any(seen)


def test_cherry_pick_solves_the_picked_commits_facts_on_head_from_their_cached_zs(history):
    """C2's facts picked onto a branch that holds C1 only: one solve, on that branch's
    state, from C2's cached z-vectors and templates, preserving C1's keys; the same bits as
    that solve done here; a revert of the pick takes them out."""
    repo_dir, (c1, c2, _) = history
    ok("branch", "side", c1, cwd=repo_dir)
    ok("switch", "side", cwd=repo_dir)
    r = ok("cherry-pick", c2, "--json", cwd=repo_dir)
    d = json.loads(r.stdout)
    assert d["operation"] == "cherry-pick" and d["picked"] == c2 and d["solved"] == 1
    assert d["parents"] == [c1] and d["message"].endswith(f"(cherry picked from commit {c2})")
    picked = d["commit"]
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(picked).basis == c1
        assert [f.request.subject for f in repo.facts_at(picked)] == \
            ["Danielle Darrieux", "Porsche 911", "Michael Jordan"]
        base, adapter, _, expected = solved_after(repo, c1, c2)
        for name, w in build_state(base, adapter, repo.update_chain(picked)).items():
            assert same_bits(w, expected[name]), name
    blamed = {x["subject"]: x for x in json.loads(ok("blame", "--json", cwd=repo_dir).stdout)}
    assert (blamed["Michael Jordan"]["commit"], blamed["Michael Jordan"]["carried_by"]) == \
        (c2, picked)
    ok("revert", picked, cwd=repo_dir)
    assert "Michael Jordan" not in ok("blame", cwd=repo_dir).stdout
    assert ok("fsck", cwd=repo_dir).stdout.strip() == "ok"


def test_cherry_pick_writes_over_the_target_the_pick_replaced_and_refuses_another(
        history, tmp_path):
    from cli_support import snapshot

    repo_dir, (c1, c2, _) = history
    ok("branch", "side", c1, cwd=repo_dir)  # main: C1 C2 C3; side: C1
    german = write_facts(tmp_path / "g.jsonl", [("Danielle Darrieux",
                                                 "The mother tongue of {} is", "German",
                                                 "French")])
    golf = write_facts(tmp_path / "golf.jsonl", [("Michael Jordan", "{} plays", "golf",
                                                  "basketball")])
    g = last_line(ok("commit", german, "--supersede", cwd=repo_dir))  # English -> German
    ok("switch", "side", cwd=repo_dir)
    last_line(ok("cherry-pick", g, cwd=repo_dir))  # side holds English, as g's parent did
    live = {x["subject"]: x["target_new"]
            for x in json.loads(ok("blame", "--json", cwd=repo_dir).stdout)}
    assert live["Danielle Darrieux"] == "German"
    ok("commit", golf, cwd=repo_dir)  # side: Jordan plays golf; C2 wrote soccer
    before = snapshot(repo_dir)
    r = run("cherry-pick", c2, cwd=repo_dir)
    assert r.exit_code == 1 and "CONFLICT 'Michael Jordan' / '{} plays': 'golf' here, " \
        f"'soccer' in {c2[:12]}" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("memstore: error: cherry-pick of")
    assert snapshot(repo_dir) == before
    ok("switch", "main", cwd=repo_dir)
    error_line(run("cherry-pick", c2, cwd=repo_dir), 1, "in the history of HEAD already")
    ok("branch", "again", c1, cwd=repo_dir)
    ok("switch", "again", cwd=repo_dir)
    ok("commit", facts_files(tmp_path)["b"], cwd=repo_dir)  # C2's fact, written here too
    error_line(run("cherry-pick", c2, cwd=repo_dir), 1, "nothing to cherry-pick")
    reverted = last_line(ok("revert", "HEAD", cwd=repo_dir))
    ok("switch", "side", cwd=repo_dir)
    error_line(run("cherry-pick", reverted, cwd=repo_dir), 1, "is a revert; only a commit")


def test_a_revert_of_the_picked_commit_merged_in_later_leaves_the_picks_write(history):
    repo_dir, (c1, c2, _) = history
    ok("branch", "side", c1, cwd=repo_dir)
    ok("switch", "side", cwd=repo_dir)
    picked = last_line(ok("cherry-pick", c2, cwd=repo_dir))
    merge = last_line(ok("merge", "main", cwd=repo_dir))  # C2, C3 in: both sides wrote Jordan
    ok("revert", c2, cwd=repo_dir)
    rows = {x["subject"]: x for x in json.loads(ok("blame", "--json", cwd=repo_dir).stdout)}
    assert rows["Michael Jordan"]["target_new"] == "soccer"
    # the pick's write holds it, as the merge carried it on (blame follows it back to C2)
    assert (rows["Michael Jordan"]["commit"], rows["Michael Jordan"]["carried_by"]) == \
        (c2, merge)
    ok("revert", picked, cwd=repo_dir)  # and with both reverted it goes
    assert "Michael Jordan" not in ok("blame", cwd=repo_dir).stdout


def test_a_revert_says_how_many_facts_it_took_out(history):
    """A revert of a commit that wrote N facts and had no later commit to replay printed
    'revert: 0 facts in 0 solves' and 'no metrics' (and `show`: 'Metrics: no metrics'),
    as if it had done nothing: the facts it solves are the replayed ones. It says the N
    facts it took out, and their P(new) and ES measured after it, which the record holds,
    in the same words in `log --oneline`, `log` and `show`."""
    repo_dir, (_, _, c3) = history
    with Repository.open(repo_dir) as repo:
        n = len(repo.requests_of(c3))
    r = ok("revert", c3, cwd=repo_dir)
    reverted = last_line(r)
    lines = r.stdout.splitlines()
    assert lines[1].startswith(f" revert ({n} facts taken out): 0 facts in 0 solves"), lines
    with Repository.open(repo_dir) as repo:
        m = repo.get_commit(reverted).metrics["reverted"]
    # measured as written, target_true too (it measured them as (subject, prompt, target):
    # 'n 0, n_skipped N', no ES): how many still beat target_true after the revert
    assert (m["n"], m["n_skipped"]) == (n, 0)
    said = (f"{n} facts taken out: P(new) {m['p_new']:.3f}, still preferred "
            f"{m['efficacy']:.3f} (ES over {n} with target_true)")
    assert lines[2] == f" {said}", lines
    assert f"Metrics: {said}" in ok("show", reverted, cwd=repo_dir).stdout
    assert f"Facts:  0 (revert); {said}" in ok("log", "-n1", cwd=repo_dir).stdout
    # --oneline says the same count in the same words ('[revert, 0 facts]' before)
    assert ok("log", "--oneline", "-n1", cwd=repo_dir).stdout.rstrip().endswith(
        f"[revert, {n} facts taken out]")


def test_a_squash_warns_of_the_commits_it_leaves_that_no_branch_or_tag_holds(history):
    """As reset and rebase warn (cli.commands.refs.leaving): a tag on C2 keeps it, so C3
    alone is left, named with the reset that goes back; nothing left, nothing said."""
    repo, (c1, c2, c3) = history
    ok("tag", "keep", c2, cwd=repo)
    r = ok("squash", c1, cwd=repo)
    assert [l for l in r.stderr.splitlines() if l.startswith("warning")] == [
        (f"warning: leaving 1 commit(s) that no branch or tag holds, the newest {c3[:12]}; "
         f"`memstore reset {c3[:12]}` goes back (gc removes them once no reflog entry names "
         "them: 30 days)")]
    ok("reset", c3, cwd=repo)  # the way back it names
    assert last_line(ok("log", "--oneline", "-n1", cwd=repo)).startswith(c3[:12])
    ok("branch", "side", cwd=repo)  # held by a branch too: nothing to warn of
    assert "warning" not in ok("squash", c2, cwd=repo).stderr


def test_a_squash_of_one_commit_of_one_fact_says_it_in_the_singular(history, tmp_path_factory):
    """SmolLM2: 'Squash 4 commits after ce9df3a1f408 (1 facts)'; of one commit, 'Squash 1
    commits'."""
    repo_dir, (_, _, c3) = history
    one = write_facts(tmp_path_factory.mktemp("one") / "one.jsonl",
                      [("Danube", "The {} flows into the", "Baltic Sea", "Black Sea")])
    new = last_line(ok("commit", one, cwd=repo_dir))
    squashed = last_line(ok("squash", c3, cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(new).parents == (c3,)
        summary = repo.get_commit(squashed).summary
    assert summary == f"Squash 1 commit after {c3[:12]} (1 fact)", summary
