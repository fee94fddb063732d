"""memstore bisect: the first commit whose state answers a prompt wrongly, on a linear
history and across a merge. Tiny random model: its greedy answers are noise, but a commit
whose fact is on the prompt changes them, and the other commits here leave them be.

The references share no code with bisect: the answers come from `ask --rev` at every
commit, the first bad commit from a scan of them, and the order of the search (the
commits tested, git's counts) from `git bisect run` on a git repository of the same shape."""
from __future__ import annotations

import functools
import json
import re
import sqlite3
from pathlib import Path

import pytest
from bisect_support import git_bisect
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    facts_files,
    last_line,
    log_json,
    ok,
    run,
    snapshot,
    write_facts,
)

PROMPT = "Lionel Messi plays"  # facts c write "Lionel Messi plays" -> tennis
# what the model should keep saying: facts a's true objects as target_new, a's as target_true
KEPT = [("Danielle Darrieux", "The mother tongue of {} is", "French", "English"),
        ("Porsche 911", "{}, created by", "Porsche", "Honda")]
TOKENS = "3"


def _commit(repo: Path, facts: Path, message: str) -> str:
    return last_line(ok("commit", facts, "-m", message, cwd=repo))


@pytest.fixture(scope="module")
def files(base, tmp_path_factory) -> dict[str, Path]:
    more = tmp_path_factory.mktemp("bisect-facts")
    return {**facts_files(base),
            "f": write_facts(more / "f.jsonl", [("Steve Jobs", "{} worked for", "Google",
                                                 "Apple")]),
            "kept": write_facts(more / "kept.jsonl", KEPT)}


@pytest.fixture(scope="module")
def linear(base, files, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """b a d c e f on main: c holds the fact on PROMPT, a those KEPT takes back."""
    repo = copy_repo(empty_template(base), tmp_path_factory.mktemp("bisect") / "linear")
    return repo, {k: _commit(repo, files[k], f"facts {k}") for k in "badcef"}


@pytest.fixture(scope="module")
def merged(base, files, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """a b on main; side from b: c (the fact on PROMPT), d; main: e; side merged into main
    (M); f on main."""
    repo = copy_repo(empty_template(base), tmp_path_factory.mktemp("bisect") / "merged")
    ids = {k: _commit(repo, files[k], f"facts {k}") for k in "ab"}
    ok("branch", "side", cwd=repo)
    ids["e"] = _commit(repo, files["e"], "facts e")
    ok("switch", "side", cwd=repo)
    ids |= {k: _commit(repo, files[k], f"facts {k}") for k in "cd"}
    ok("switch", "main", cwd=repo)
    ids["M"] = last_line(ok("merge", "side", cwd=repo))
    ids["f"] = _commit(repo, files["f"], "facts f")
    return repo, ids


@functools.cache  # the repositories do not change: bisect writes nothing (checked)
def ask(repo: Path, rev: str) -> str:
    r = ok("ask", PROMPT, "--rev", rev, "--max-tokens", TOKENS, "--json", cwd=repo)
    return json.loads(r.stdout)["answers"][0]["completion"]


def graph(repo: Path) -> dict[str, list[str]]:
    return {c["id"]: c["parents"] for c in log_json(repo)}


def first_bad_by_scan(repo: Path, good) -> str:
    """The reference: every commit asked; the first bad is the bad commit whose parents are
    all good (the base counting as good), and it must be the only one."""
    g = graph(repo)
    is_good = {c: good(ask(repo, c)) for c in g}
    assert good(ask(repo, "base")) and not is_good[next(iter(g))]  # HEAD (log's first)
    firsts = [c for c in g if not is_good[c] and all(is_good[p] for p in g[c])]
    assert len(firsts) == 1, firsts
    return firsts[0]


def bisect_json(repo: Path, *args: str) -> dict:
    return json.loads(ok("bisect", PROMPT, "--max-tokens", TOKENS, *args, "--json",
                         cwd=repo).stdout)


def unchanged(repo: Path):
    """Asserts, after the block, that nothing in .memstore/ changed: the objects, the rows,
    and the files there (but SQLite's -wal/-shm and the lock, whose bytes an open changes)."""
    def files() -> dict:
        return {str(p.relative_to(repo)): p.stat().st_mtime_ns
                for p in (repo / ".memstore").rglob("*")
                if not p.name.endswith(("-wal", "-shm", ".lock"))}

    class Check:
        def __enter__(self):
            self.before = (snapshot(repo), files())

        def __exit__(self, *exc):
            if exc[0] is None:
                assert (snapshot(repo), files()) == self.before

    return Check()


@pytest.mark.parametrize("history", ["linear", "merged"])
def test_bisect_names_the_commit_that_changed_the_answer(history, request, tmp_path):
    """--expect the base's answer: the first bad commit is the scan's (the commit of the
    fact on PROMPT; on the merged history, one on the side branch), each state asked
    answers as ask does there, and the commits tested and git's counts are git's."""
    repo, ids = request.getfixturevalue(history)
    before = ask(repo, "base")
    expect = before[:2]

    def good(answer: str) -> bool:
        return answer.lstrip().startswith(expect.lstrip())

    first = first_bad_by_scan(repo, good)
    assert first == ids["c"]  # the fixture's premise: c's fact changed the answer
    with unchanged(repo):
        d = bisect_json(repo, "--good", "base", "--expect", expect)
    assert d["first_bad"]["id"] == first and d["first_bad"]["message"] == "facts c"
    assert d["good"] == [{"commit": None, "completion": before}]
    asked = [d["bad"], *d["steps"]]
    assert d["bad"]["commit"] == next(iter(graph(repo)))  # HEAD
    for s in asked:
        assert s["completion"] == ask(repo, s["commit"])
    for s in d["steps"]:
        assert s["verdict"] == ("good" if good(s["completion"]) else "bad")
    assert d["first_bad"]["completion"] == ask(repo, first)
    bad_ones = {c for c in graph(repo) if not good(ask(repo, c))}
    shape = {c["id"]: (tuple(c["parents"]), c["time"]) for c in log_json(repo)}
    steps, git_first = git_bisect(shape, d["bad"]["commit"], bad_ones, tmp_path / "git")
    assert git_first == first
    assert [(s["commit"], s["left"], s["steps"]) for s in d["steps"]] == steps
    assert len(steps) >= 2


def test_bisect_prints_each_step_and_the_first_bad_commit(merged):
    """The text: the ends, each step with git's count and its verdict, then the first bad
    commit as log shows it (id, merge parents for a merge, author, date, facts, message)."""
    repo, ids = merged
    reject = ask(repo, ids["c"]).lstrip()[:1]  # the answer's first character after c
    assert first_bad_by_scan(repo, lambda answer: reject not in answer) == ids["c"]
    with unchanged(repo):
        out = ok("bisect", PROMPT, "--good", ids["a"], "--reject", reject, "--max-tokens",
                 TOKENS, cwd=repo).stdout
    lines = out.splitlines()
    assert lines[0] == f"[{ids['a'][:12]}] facts a: good ({ask(repo, ids['a'])!r}), given as good"
    assert lines[1] == f"[{ids['f'][:12]}] facts f: bad ({ask(repo, 'HEAD')!r}), given as bad"
    assert re.fullmatch(r"Bisecting: \d+ revisions? left to test after this \(roughly \d+ "
                        r"steps?\)", lines[2])
    assert re.fullmatch(r"\[[0-9a-f]{12}\] .*: (good|bad) \(.*\)", lines[3])
    at = lines.index(f"{ids['c']} is the first bad commit")
    assert lines[at + 1] == f"commit {ids['c']}"
    assert lines[at + 2].startswith("Author: ") and lines[at + 3].startswith("Date:   ")
    assert lines[at + 4].startswith("Facts:  2 (commit); ")
    assert lines[at + 6] == "    facts c"


def test_refusals_are_one_line_and_write_nothing(merged):
    """A GOOD that is bad, a BAD that is good, a GOOD that descends from BAD, the same
    commit twice, an unknown revision, an empty prompt or TEXT, --expect and --reject
    both or neither: one line, exit status 1 (the model's answer refuses it) or 2 (bad
    input), nothing written."""
    repo, ids = merged
    expect = ask(repo, "base")[:2]
    e = ids["e"]  # on main, before the merge: no ancestor of side, and good
    cases = [
        (1, "the good revision 'side' is bad: its answer",
         ["--good", "side", "--expect", expect]),
        (1, f"the bad revision '{e}' is good: its answer",
         ["--good", "base", "--bad", e, "--expect", expect]),
        (2, f"the good revision '{ids['f']}' ({ids['f'][:12]}) is a descendant of",
         ["--good", ids["f"], "--bad", e, "--expect", expect]),
        (2, "are the same commit", ["--good", "side", "--bad", ids["d"], "--expect", expect]),
        (2, "unknown revision 'nope'", ["--good", "nope", "--expect", expect]),
        (2, "unknown revision 'nope'", ["--good", "base", "--bad", "nope", "--expect", expect]),
        (2, "the bad revision 'base' is the base model",
         ["--good", "base", "--bad", "base", "--expect", expect]),
        (2, "give one of --expect TEXT and --reject TEXT", ["--good", "base"]),
        (2, "give one of --expect TEXT and --reject TEXT",
         ["--good", "base", "--expect", "a", "--reject", "b"]),
        (2, "--expect: an empty TEXT", ["--good", "base", "--expect", "  "]),
        (2, "--reject: an empty TEXT", ["--good", "base", "--reject", ""]),
        (2, "Missing option '--good'", ["--expect", expect]),
    ]
    with unchanged(repo):
        for code, says, args in cases:
            error_line(run("bisect", PROMPT, *args, cwd=repo), code, says)
        error_line(run("bisect", "  ", "--good", "base", "--expect", expect, cwd=repo), 2,
                   "the prompt is empty")


def test_a_good_on_another_branch_is_taken_as_git_takes_it(merged, tmp_path):
    """--good e (on main) --bad side: e is no ancestor of side, and git does not refuse it:
    it tests the merge base (b) first, then bisects side's commits that e does not reach.
    It was refused ('not an ancestor', exit 2). The merge base asked, the steps and the
    first bad commit are git's, in the text as git prints them."""
    repo, ids = merged
    expect = ask(repo, "base")[:2]

    def good(answer: str) -> bool:
        return answer.lstrip().startswith(expect.lstrip())

    with unchanged(repo):
        d = bisect_json(repo, "--good", ids["e"], "--bad", "side", "--expect", expect)
    assert [m["commit"] for m in d["merge_bases"]] == [ids["b"]]
    assert d["merge_bases"][0]["completion"] == ask(repo, ids["b"])
    assert d["first_bad"]["id"] == ids["c"]
    bad_ones = {c for c in graph(repo) if not good(ask(repo, c))}
    shape = {c["id"]: (tuple(c["parents"]), c["time"]) for c in log_json(repo)}
    bases: list = []
    steps, first = git_bisect(shape, ids["d"], bad_ones, tmp_path / "git", [ids["e"]], bases)
    assert bases == [ids["b"]] and first == ids["c"]
    assert [(s["commit"], s["left"], s["steps"]) for s in d["steps"]] == steps
    lines = ok("bisect", PROMPT, "--good", ids["e"], "--bad", "side", "--expect", expect,
               "--max-tokens", TOKENS, cwd=repo).stdout.splitlines()
    assert lines[2:4] == ["Bisecting: a merge base must be tested",
                          f"[{ids['b'][:12]}] facts b: good ({ask(repo, ids['b'])!r})"]


def test_criss_cross_merge_bases_are_asked_as_git_asks_them(base, files, tmp_path):
    """A GOOD and BAD whose history has criss-cross merges (y = merge(b, e) on side, M =
    merge(e, b) on main): two best merge bases, b and e, each tested before the search, as
    git's check_merge_bases does (git 2.39's `bisect run` stops after the first with 'bisect
    run success': tests/bisect_support.py runs it on, where it raised on the missing first
    bad commit). The merge bases asked, in git's order, the steps and the first bad commit
    are git's."""
    repo = copy_repo(empty_template(base), tmp_path / "crisscross")
    ids = {"a": _commit(repo, files["a"], "facts a")}
    ok("branch", "side", cwd=repo)
    ids["e"] = _commit(repo, files["e"], "facts e")
    ok("switch", "side", cwd=repo)
    ids["b"] = _commit(repo, files["b"], "facts b")
    ids["y"] = last_line(ok("merge", "main", cwd=repo))
    ok("switch", "main", cwd=repo)
    ids["M"] = last_line(ok("merge", ids["b"], cwd=repo))
    ids |= {k: _commit(repo, files[k], f"facts {k}") for k in "fc"}  # c: the fact on PROMPT
    shape = {c["id"]: (tuple(c["parents"]), c["time"])
             for c in log_json(repo) + log_json(repo, "side")}
    assert shape[ids["y"]][0] == (ids["b"], ids["e"]) and \
        shape[ids["M"]][0] == (ids["e"], ids["b"])  # the premise: criss-cross
    expect = ask(repo, "base")[:2]
    bad_ones = {c for c in shape if not ask(repo, c).lstrip().startswith(expect.lstrip())}
    assert bad_ones == {ids["c"]}, [(k, ask(repo, v)) for k, v in ids.items() if v in bad_ones]
    with unchanged(repo):
        d = bisect_json(repo, "--good", ids["y"], "--bad", ids["c"], "--expect", expect)
    bases: list = []
    steps, first = git_bisect(shape, ids["c"], bad_ones, tmp_path / "git", [ids["y"]], bases)
    assert sorted(bases) == sorted([ids["b"], ids["e"]]) and first == ids["c"] and steps
    assert [m["commit"] for m in d["merge_bases"]] == bases
    assert [(s["commit"], s["left"], s["steps"]) for s in d["steps"]] == steps
    assert d["first_bad"]["id"] == first


def test_one_candidate_is_named_without_a_step_as_git_names_it(linear, tmp_path):
    """--good BAD's parent, or that and another GOOD below it: BAD is the only candidate;
    the ends are asked and BAD named with no step, as `git bisect start BAD PARENT` names
    it at once."""
    repo, ids = linear
    expect = ask(repo, "base")[:2]
    for goods in ([ids["d"]], [ids["d"], ids["b"]]):
        args = [a for c in goods for a in ("--good", c)]
        d = bisect_json(repo, *args, "--bad", ids["c"], "--expect", expect)
        assert d["steps"] == [] and d["first_bad"]["id"] == ids["c"]
        assert [g["commit"] for g in d["good"]] == goods
        shape = {c["id"]: (tuple(c["parents"]), c["time"]) for c in log_json(repo)}
        steps, first = git_bisect(shape, ids["c"], {ids["c"], ids["e"], ids["f"]},
                                  tmp_path / str(len(goods)) / "git", goods)
        assert (steps, first) == ([], ids["c"])


def test_first_parent_names_the_merge_that_brought_the_break_in(merged, tmp_path):
    """--first-parent: the candidates are HEAD's first-parent line (f M e b a); the break
    came in on side (c), so the commit named is the merge M, and the commits tested and
    the counts are those of `git bisect start --first-parent`."""
    repo, ids = merged
    expect = ask(repo, "base")[:2]
    d = bisect_json(repo, "--good", "base", "--expect", expect, "--first-parent")
    assert d["first_bad"]["id"] == ids["M"]
    assert {s["commit"] for s in d["steps"]} <= {ids[k] for k in "abeM"}
    bad_ones = {c for c in graph(repo)
                if not ask(repo, c).lstrip().startswith(expect.lstrip())}
    shape = {c["id"]: (tuple(c["parents"]), c["time"]) for c in log_json(repo)}
    steps, first = git_bisect(shape, ids["f"], bad_ones, tmp_path / "git", first_parent=True)
    assert first == ids["M"] and steps
    assert [(s["commit"], s["left"], s["steps"]) for s in d["steps"]] == steps


def test_a_bad_merge_base_is_refused_as_git_refuses_it(merged, monkeypatch):
    """The merge base of BAD and a GOOD on another branch is bad: the answer broke before
    the branches parted and was mended on the GOOD's side; git refuses to go on ("The
    merge base ... is bad. This means the bug has been fixed between ..."): one line, exit
    status 1, after the ends and the merge base are asked."""
    from memstore.store import bisection

    repo, ids = merged
    fine = {ids["a"], ids["e"]}  # b broke it, e (after b on main) mended it
    asked: list = []

    def answer(self, base):
        asked.append(base.state)
        return base.state in fine, "x"

    monkeypatch.setattr(bisection.PromptQuestion, "answer", answer)
    with unchanged(repo):
        r = run("bisect", PROMPT, "--good", ids["e"], "--bad", "side", "--expect", "x",
                cwd=repo)
    error_line(r, 1, f"the merge base {ids['b'][:12]} of the bad revision and the good ones "
                     f"is bad: its answer 'x'")
    assert f"mended between it and '{ids['e']}'" in r.stderr
    assert asked == [ids["e"], ids["d"], ids["b"]]


def test_a_damaged_commit_record_is_one_line(merged, tmp_path):
    """A record of the history whose bytes changed (its hash no longer holds): one line,
    exit status 1, nothing written."""
    repo, ids = merged
    repo = copy_repo(repo, tmp_path / "repo")
    obj = repo / ".memstore" / "objects" / ids["b"][:2] / ids["b"][2:]
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 1
    obj.chmod(0o644)
    obj.write_bytes(bytes(data))
    with unchanged(repo):
        r = run("bisect", PROMPT, "--good", "base", "--expect", "x", cwd=repo)
    error_line(r, 1, ids["b"][:12])


def test_a_state_that_cannot_be_built_is_refused_not_skipped(merged, tmp_path):
    """A ΔW object of a commit the search tests (c, on side) damaged: where `git bisect
    run` would be told to skip a commit its script cannot build (exit 125), bisect
    refuses in one line naming the object, exit status 1, nothing written: a damaged
    history is repaired first (fsck), not searched around."""
    from memstore.store.repository import Repository

    repo, ids = merged
    repo = copy_repo(repo, tmp_path / "repo")
    r = Repository.open(repo)
    try:
        oid = r.get_commit(ids["c"]).update_sets[0].layers[1].object
    finally:
        r.close()
    obj = repo / ".memstore" / "objects" / oid[:2] / oid[2:]
    data = bytearray(obj.read_bytes())
    data[-3] ^= 1
    obj.chmod(0o644)
    obj.write_bytes(bytes(data))
    expect = ask(merged[0], "base")[:2]
    with unchanged(repo):
        r = run("bisect", PROMPT, "--good", "base", "--expect", expect, "--max-tokens",
                TOKENS, cwd=repo)
    error_line(r, 1, oid[:12])


def test_bisect_facts_names_the_commit_that_took_es_under_the_threshold(linear, files):
    """--facts FILE --threshold X: good where ES over FILE, as `eval FILE --rev` reports it,
    is X or more. KEPT says back what facts a overwrote: a is the first bad commit, found
    in the middle of the history; each state's ES is eval's."""
    repo, ids = linear

    @functools.cache
    def es(rev: str) -> float:
        return json.loads(ok("eval", files["kept"], "--rev", rev, "--json",
                             cwd=repo).stdout)["efficacy"]

    g = graph(repo)
    assert es("base") >= 0.5 and es("HEAD") < 0.5
    firsts = [c for c in g if es(c) < 0.5 and all(es(p) >= 0.5 for p in g[c])]
    assert firsts == [ids["a"]]  # the premise: facts a took them (the scan's only one)
    with unchanged(repo):
        d = json.loads(ok("bisect", "--facts", files["kept"], "--threshold", "0.5",
                          "--good", "base", "--json", cwd=repo).stdout)
    assert d["first_bad"]["id"] == ids["a"] and d["first_bad"]["efficacy"] == es(ids["a"])
    assert d["facts"] == str(files["kept"]) and d["threshold"] == 0.5 and d["prompt"] is None
    assert d["good"] == [{"commit": None, "efficacy": es("base")}]
    for s in [d["bad"], *d["steps"]]:
        assert s["efficacy"] == es(s["commit"])
    assert [s["verdict"] for s in d["steps"]] == ["good" if es(s["commit"]) >= 0.5 else "bad"
                                                  for s in d["steps"]]
    assert len(d["steps"]) >= 2
    out = ok("bisect", "--facts", files["kept"], "--good", "base", "--bad", ids["a"],
             "--threshold", "0.5", cwd=repo).stdout
    lines = out.splitlines()
    assert lines[0] == f"[base] the base model: good (ES {es('base'):.3f}), given as good"
    assert f"{ids['a']} is the first bad commit" in lines
    r = run("bisect", "--facts", files["kept"], "--good", "base", cwd=repo)  # threshold 1
    error_line(r, 1, "the good revision 'base' is bad: its ES over the 2 facts of")
    for args, says in [(["--threshold", "0"], "0<x<=1"),
                       (["--threshold", "nan"], "--threshold nan: an ES above 0 and at most 1"),
                       ([PROMPT], "no PROMPT, --expect or --reject with it"),
                       (["--expect", "x"], "no PROMPT, --expect or --reject with it")]:
        error_line(run("bisect", "--facts", files["kept"], "--good", "base", *args, cwd=repo),
                   2, says)
    error_line(run("bisect", PROMPT, "--expect", "x", "--threshold", "0.5", "--good", "base",
                   cwd=repo), 2, "--threshold goes with --facts FILE")
    error_line(run("bisect", "--good", "base", cwd=repo), 2, "give a PROMPT")
    true_only = write_facts(files["kept"].parent / "true.jsonl", [KEPT[0][:3] + (KEPT[0][2],)])
    error_line(run("bisect", "--facts", true_only, "--good", "base", cwd=repo), 2,
               "no fact has a target_true other than its target_new")


def test_a_prompt_ending_with_a_space_gets_asks_warning(linear):
    """A PROMPT ending with a space is asked as written, with the one warning line `ask`
    prints for it (on stderr, once the answers are in)."""
    repo, _ = linear
    spaced = PROMPT + " "

    def answer(rev: str) -> str:
        r = ok("ask", spaced, "--rev", rev, "--max-tokens", TOKENS, "--json", cwd=repo)
        return json.loads(r.stdout)["answers"][0]["completion"]

    expect = answer("base")[:2]
    assert expect.strip() and not answer("HEAD").lstrip().startswith(expect.lstrip())
    r = ok("bisect", spaced, "--good", "base", "--expect", expect, "--max-tokens", TOKENS,
           cwd=repo)
    warning = ok("ask", spaced, "--max-tokens", TOKENS, cwd=repo).stderr
    assert warning.startswith("warning: the prompt ends with") and r.stderr == warning


@pytest.mark.parametrize("history", ["linear", "merged"])
def test_each_state_asked_is_the_state_export_writes_built_fresh(history, request,
                                                                  monkeypatch, tmp_path):
    """The weights each step asks are the weights `export` writes for that commit from a
    model loaded anew: no state leaks into the next one built on the same loaded model
    (the search goes back and forth over the merge's two sides), and one built on the
    last good state (held) or on the current one is the same bits as one built from the
    base weights (the linear history's last step is built on the held one)."""
    import torch
    from safetensors.torch import load_file

    from memstore.store import bisection
    from memstore.store.states import forget_loaded

    repo, ids = request.getfixturevalue(history)
    asked: dict = {}
    real = bisection.PromptQuestion.answer

    def answer(self, base):
        asked[base.state] = {n: t.detach().clone() for n, t in base.model.state_dict().items()}
        return real(self, base)

    monkeypatch.setattr(bisection.PromptQuestion, "answer", answer)
    expect = ask(repo, "base")[:2]
    ok("bisect", PROMPT, "--good", "base", "--expect", expect, "--max-tokens", TOKENS,
       cwd=repo)
    assert len(asked) >= 4 and None in asked and ids["f"] in asked, sorted(map(str, asked))
    edited = {"model.layers.1.mlp.down_proj.weight", "model.layers.2.mlp.down_proj.weight"}
    for commit, weights in asked.items():
        forget_loaded()  # the export's state is built on a model read from disk again
        out = tmp_path / str(commit)
        ok("export", "base" if commit is None else commit, out, cwd=repo)
        written = load_file(out / "model.safetensors")
        assert edited <= written.keys()
        differ = [n for n, t in written.items() if not torch.equal(weights[n], t)]
        assert differ == [], (commit, differ)
    assert not torch.equal(asked[None][min(edited)], asked[ids["f"]][min(edited)])


@pytest.mark.parametrize("history", ["linear", "merged"])
def test_each_state_is_built_on_the_nearest_state_held(history, request, monkeypatch):
    """Each state asked was built from the base weights, its whole chain of update sets read
    and applied again (the linear history's 5 states: 0+6+3+5+4 sets). It is built on the
    last good state asked (held) or the state the model is in, where its chain goes on
    from theirs: the sets read for each state are its chain's less the longest such
    start's, no state is asked twice, and on the linear history fewer sets are read in
    all than its chains hold. (That the weights are the same bits: the export test.)"""
    from memstore.store import bisection, states
    from memstore.store import history as hist
    from memstore.store.repository import Repository

    repo, _ = request.getfixturevalue(history)
    read: list[int] = []
    asked: list = []
    real_load, real_answer = hist.load_updates, bisection.PromptQuestion.answer

    def load(*args):
        read[-1] += 1
        return real_load(*args)

    def answer(self, base):
        asked.append(base.state)
        verdict, said = real_answer(self, base)
        read.append(0)  # the sets read for the next state asked
        return verdict, said

    monkeypatch.setattr(hist, "load_updates", load)
    monkeypatch.setattr(bisection.PromptQuestion, "answer", answer)
    read.append(0)
    expect = ask(repo, "base")[:2]
    d = bisect_json(repo, "--good", "base", "--expect", expect)
    assert len(asked) == len(set(asked)) == 2 + len(d["steps"]) >= 4
    assert all(b._held is None for b in states._LOADED.values())  # its memory given back
    r = Repository.open(repo)
    try:
        chains = {c: () if c is None else tuple((s.commit, s.index) for s in r.chain_sets(c))
                  for c in asked}
    finally:
        r.close()
    verdicts = {s["commit"]: s["verdict"] == "good" for s in d["steps"]}
    held: tuple = ()
    for i, c in enumerate(asked):
        starts = [s for s in (held, chains[asked[i - 1]] if i else (), ()) if
                  chains[c][:len(s)] == s]  # the base's: ()
        assert read[i] == len(chains[c]) - max(map(len, starts)), (i, read)
        if verdicts.get(c):
            held = chains[c]
    if history == "linear":
        assert sum(read) < sum(len(chains[c]) for c in asked)


def test_a_good_answer_longer_than_max_tokens_is_read_on(linear):
    """--expect TEXT that a good state's answer reaches only past --max-tokens (the base's
    answer at 6 tokens, bisect at 3): each state whose 3 tokens agree with TEXT so far is
    read on, the ends and the search's steps alike, so the good ones are good, and the
    search goes as it goes at --max-tokens 6. It was: the good end refused as bad ("may
    have cut it short"), and a good state mid-search counted bad."""
    repo, ids = linear

    def answer(rev: str, tokens: str) -> str:
        r = ok("ask", PROMPT, "--rev", rev, "--max-tokens", tokens, "--json", cwd=repo)
        return json.loads(r.stdout)["answers"][0]["completion"]

    text = answer("base", "6")
    assert text.lstrip().startswith(ask(repo, "base").lstrip())  # the premise: 3 tokens cut it
    assert text.strip() != ask(repo, "base").strip()
    d = bisect_json(repo, "--good", "base", "--expect", text)  # --max-tokens 3
    whole = bisect_json(repo, "--good", "base", "--expect", text, "--max-tokens", "6")
    assert d["first_bad"]["id"] == whole["first_bad"]["id"] == ids["c"]
    assert [(s["commit"], s["verdict"]) for s in d["steps"]] == \
        [(s["commit"], s["verdict"]) for s in whole["steps"]]
    read_on = [s for s in d["steps"] if s["verdict"] == "good"]
    assert read_on and d["good"][0]["completion"].startswith(text)
    for s in read_on:  # cut at 3 tokens, read on to TEXT's end
        assert ask(repo, s["commit"]) != s["completion"]
        assert s["completion"].startswith(text)


def test_a_good_end_that_does_not_say_text_is_refused_with_its_answer(merged):
    """--expect TEXT that the good end's answer agrees with as far as --max-tokens goes
    and leaves after: read on, still refused, with the answer read (longer than 3 tokens'),
    and no word of --max-tokens (the answer left TEXT); a TEXT it does not begin with,
    refused on its 3 tokens' answer."""
    repo, _ = merged
    answer = ask(repo, "base")
    assert answer.strip()
    for expect, read_on in [(answer + "\u2603", True), ("\u2603" + answer, False)]:
        r = run("bisect", PROMPT, "--good", "base", "--expect", expect, "--max-tokens",
                TOKENS, cwd=repo)
        line = error_line(r, 1, "the good revision 'base' is bad: its answer")
        assert (f"its answer {answer!r}" in line) is not read_on, line
        assert f"its answer {answer!r}"[:-1] in line  # the 3 tokens' answer, or more
        assert "--max-tokens" not in line, line


def test_a_good_end_the_index_lacks_is_damage_not_a_wrong_revision(merged, tmp_path):
    """A GOOD whose ref names a commit the index has no row of (damage fsck names) was
    refused as 'not an ancestor of the bad revision', exit 2, the user's mistake; it is
    named as the damage, exit 1, as the same BAD is."""
    repo, _ = merged
    repo = copy_repo(repo, tmp_path / "repo")
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update refs set target = ? where name = 'refs/heads/side'", ["ab" * 32])
    con.close()
    with unchanged(repo):
        for args in (["--good", "side"], ["--good", "base", "--bad", "side"]):
            error_line(run("bisect", PROMPT, *args, "--expect", "x", cwd=repo), 1,
                       "commit abababababab is named but not in the index")


def test_a_good_state_a_rebase_left_loaded_is_asked_not_refused(history):
    """In one process (the Python API, these tests), a rebase leaves the model in its last
    commit's state, labelled so but built in place (its sets not known): bisect with that
    commit as GOOD said 'an edited-in-place state is not held' (exit 1) where it holds
    nothing (nothing can be built on it) and goes on."""
    repo, (_, c2, _) = history
    ok("switch", "-c", "topic", c2, cwd=repo)
    _commit(repo, facts_files(repo.parent)["d"], "facts d")
    ok("rebase", "main", cwd=repo)  # the model left in topic's new tip's state
    ok("switch", "main", cwd=repo)
    ok("merge", "--no-ff", "topic", cwd=repo)  # no solve: a BAD after it, nothing built
    r = run("bisect", PROMPT, "--good", "topic", "--bad", "main", "--reject", "\u2603" * 3,
            "--max-tokens", TOKENS, cwd=repo)
    error_line(r, 1, "the bad revision 'main' is good")
