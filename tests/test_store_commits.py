import dataclasses
import hashlib
from types import SimpleNamespace

import pytest
import torch
from test_store_support import (
    BASE_HASH,
    D_IN,
    D_OUT,
    commit_on_head,
    fake_result,
    memory_repo,
    same_bits,
)

from memstore.editing.apply import build_state
from memstore.editing.apply import delta as weight_delta
from memstore.editing.requests import Request
from memstore.editing.statistics import Statistics
from memstore.errors import NumericalError, ValidationError
from memstore.store.commits import DENSE, FACTORS, DenseLayerUpdate, make_commit
from memstore.store.objects import canonical_json
from memstore.store.repository import Repository

ADAPTER = SimpleNamespace(proj_weight_name=lambda layer: f"layers.{layer}.down.weight")


def base_weights(transposed=False):
    g = torch.Generator().manual_seed(99)
    shape = (D_IN, D_OUT) if transposed else (D_OUT, D_IN)
    return {ADAPTER.proj_weight_name(l): torch.randn(*shape, generator=g) for l in (1, 2)}


def assert_same_updates(got, want):
    assert sorted(got) == sorted(want)
    for l in want:
        assert same_bits(weight_delta(got[l]), weight_delta(want[l])), l
        assert same_bits(got[l].keys, want[l].keys) and got[l].transposed == want[l].transposed


def test_round_trip_on_disk(tmp_path):
    Repository.init(tmp_path, "fake", BASE_HASH)
    repo = Repository.open(tmp_path)
    result = fake_result(1, n=3)
    c = commit_on_head(repo, result, message="first",
                       metrics={"es": 1.0, "n": 3, "ge": float("nan")})
    fresh = Repository.open(tmp_path)  # nothing cached
    got = fresh.get_commit(c.id)
    assert got == c
    assert got.parents == () and got.basis is None and got.base == BASE_HASH
    assert got.message == "first" and got.metrics == {"es": 1.0, "n": 3, "ge": "nan"}
    s = got.update_sets[0]
    assert s.edit_settings == result.settings and list(s.templates) == result.templates
    assert s.n == 3 and s.info == {"seed": 1} and s.method == "memit"
    assert {r.form for r in s.layers.values()} == {FACTORS}
    assert fresh.requests_of(c.id) == result.requests
    assert same_bits(fresh.zs_of_set(c.id), result.zs)
    loaded = fresh.updates_of(c.id)
    for l in (1, 2):  # factors come back bit for bit
        for name in ("U", "V", "keys"):
            assert same_bits(getattr(loaded[l], name), getattr(result.updates[l], name))


def test_commit_id_is_the_hash_of_its_canonical_record():
    repo = memory_repo()
    c = commit_on_head(repo, time=1234.5)
    data = repo.objects.get_bytes(c.id)
    assert hashlib.sha256(data).hexdigest() == c.id
    assert data == canonical_json(c.to_json())
    # the time is part of the id, as in git
    other = repo.write_commit([fake_result(0)], parents=[], basis=None, message="edit",
                              time=1234.6, expected=c.id)
    assert other.id != c.id and other.update_sets == c.update_sets


@pytest.mark.parametrize("transposed", [False, True])
def test_dense_storage_when_smaller_rebuilds_the_same_bits(transposed):
    repo = memory_repo()
    small, big = fake_result(1, n=2, transposed=transposed), fake_result(2, n=6,
                                                                         transposed=transposed)
    commit_on_head(repo, small)
    c = commit_on_head(repo, big)
    rec = c.update_sets[0].layers[1]
    assert rec.form == DENSE and rec.transposed == transposed
    tensors = repo.objects.get_tensors(rec.object)
    assert sorted(tensors) == ["delta", "keys"]
    loaded = repo.updates_of(c.id)
    assert isinstance(loaded[1], DenseLayerUpdate) and loaded[1].rank == 6
    assert_same_updates(loaded, big.updates)
    base = base_weights(transposed)
    want = build_state(base, ADAPTER, [small.updates, big.updates])
    got = build_state(base, ADAPTER, repo.update_chain("HEAD"))
    for name in want:
        assert same_bits(got[name], want[name]), name
    # a dense update written again (e.g. replayed as is) stays dense and equal
    again = commit_on_head(repo, dataclasses.replace(big, updates=loaded))
    assert again.update_sets[0].layers == c.update_sets[0].layers


def test_index_rows():
    repo = memory_repo()
    c = commit_on_head(repo, fake_result(5, n=2), message="rows", metrics={"es": 0.5})
    row = repo.db["commits"].get(c.id)
    assert row["n_requests"] == 2 and row["message"] == "rows" and row["basis"] is None
    assert row["base_hash"] == BASE_HASH and row["operation"] == "commit"
    rows = list(repo.db.query("select * from requests order by position"))
    assert [(r["commit_id"], r["set_index"], r["position"], r["subject"]) for r in rows] == [
        (c.id, 0, 0, "s5-subject-0"), (c.id, 0, 1, "s5-subject-1")]
    assert rows[0]["target_true"] == "Paris" and rows[0]["prompt"] == "{} is located in"
    assert [r["subject"] for r in repo.find_requests(subject="s5-subject-1")] == ["s5-subject-1"]
    assert len(repo.find_requests(contains="subject")) == 2
    assert repo.find_requests(prompt="nothing") == []
    kinds = {r["id"]: r["kind"] for r in repo.db["objects"].rows}
    assert kinds[c.id] == "commit" and kinds[c.update_sets[0].requests] == "requests"
    assert {o for o, k in kinds.items() if k != "snapshot"} == set(c.object_ids())


def _vm_steps(db, run) -> int:
    """SQLite's virtual-machine steps (in tens) that `run` costs: the rows it reads."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.conn.set_progress_handler(count, 10)
    try:
        run()
    finally:
        db.conn.set_progress_handler(None, 10)
    return steps


def test_find_requests_by_subject_and_prompt_reads_the_subject_s_rows():
    """A (subject, prompt) look-up went by the prompt's index, which the facts share ('{}
    is located in': every fake fact's), reading every row of the prompt: 2,000 facts cost
    it about 200 times what the subject's rows do. The subject's index finds its few."""
    repo = memory_repo()
    commit_on_head(repo, fake_result(1, n=1000))
    c = commit_on_head(repo, fake_result(2, n=1000))
    key = {"subject": "s2-subject-7", "prompt": "{} is located in"}
    rows = repo.find_requests(**key)
    assert [(r["commit_id"], r["position"], r["target_new"]) for r in rows] == [
        (c.id, 7, "s2-city-7")]
    assert repo.find_requests(subject="s2-subject-7", prompt="{} plays") == []
    by_key = _vm_steps(repo.db, lambda: repo.find_requests(**key))
    by_subject = _vm_steps(repo.db, lambda: repo.find_requests(subject=key["subject"]))
    # by the prompt's index: about 1,000 against 4
    assert by_key <= 2 * by_subject + 10, (by_key, by_subject)


def test_bytes_per_commit_counts_only_what_a_commit_introduces():
    repo = memory_repo()
    c1 = commit_on_head(repo, fake_result(1))
    size = sum(repo.objects.size(o) for o in c1.object_ids())
    assert repo.commit_size(c1.id) == size > 0
    # a replay of c1's facts shares its requests and zs objects: not counted again
    replay = fake_result(2, requests=fake_result(1).requests)
    replay.zs = fake_result(1).zs
    c2 = commit_on_head(repo, replay)
    assert c2.update_sets[0].requests == c1.update_sets[0].requests
    assert c2.update_sets[0].zs == c1.update_sets[0].zs
    new = [c2.id] + [r.object for r in c2.update_sets[0].layers.values()]
    assert repo.commit_size("HEAD") == sum(repo.objects.size(o) for o in new)


def history_c1_c2_c3(repo):
    results = [fake_result(i, n=2) for i in (1, 2, 3)]
    ids = [commit_on_head(repo, r, message=f"c{i}", time=100.0 + i).id
           for i, r in enumerate(results, 1)]
    return results, ids


def subjects(facts):
    return [f.request.subject for f in facts]


def test_update_chain_and_facts_of_a_normal_history():
    repo = memory_repo()
    results, (c1, c2, c3) = history_c1_c2_c3(repo)
    chain = repo.update_chain(c3)
    assert len(chain) == 3
    for got, r in zip(chain, results):
        assert_same_updates(got, r.updates)
    assert [(s.commit, s.index) for s in repo.chain_sets(c3)] == [(c1, 0), (c2, 0), (c3, 0)]
    assert len(repo.update_chain(c1)) == 1
    facts = repo.facts_at(c3)
    assert subjects(facts) == [r.subject for res in results for r in res.requests]
    assert [(f.commit, f.position) for f in facts[:3]] == [(c1, 0), (c1, 1), (c2, 0)]
    assert same_bits(repo.zs_of(facts), torch.cat([r.zs for r in results]))
    keys = repo.chain_keys(c3)
    assert same_bits(keys[2], torch.cat([r.updates[2].keys for r in results]))


def test_revert_shaped_commit():
    """Revert C2 on C1, C2, C3: basis = C1, one set = C3's facts replayed from its zs."""
    repo = memory_repo()
    results, (c1, c2, c3) = history_c1_c2_c3(repo)
    facts3 = [f for f in repo.facts_at(c3) if f.commit == c3]
    replay = fake_result(33, requests=[f.request for f in facts3])
    replay.zs = repo.zs_of(facts3)
    r = repo.write_commit([replay], parents=[c3], basis=c1, message="revert c2",
                          operation="revert", info={"reverted": c2, "replayed": [c3]})
    assert repo.resolve("HEAD") == r.id and repo.resolve("HEAD^") == c3
    chain = repo.update_chain(r.id)
    assert len(chain) == 2
    assert_same_updates(chain[0], results[0].updates)
    assert_same_updates(chain[1], replay.updates)
    assert subjects(repo.facts_at(r.id)) == subjects(repo.facts_at(c1)) + subjects(facts3)
    assert not set(subjects(repo.facts_at(r.id))) & {q.subject for q in results[1].requests}
    assert same_bits(repo.zs_of(repo.facts_at(r.id)), torch.cat([results[0].zs, results[2].zs]))


def test_revert_of_the_last_commit_needs_no_update_set():
    repo = memory_repo()
    _, (_, c2, c3) = history_c1_c2_c3(repo)
    r = repo.write_commit([], parents=[c3], basis=c2, message="revert c3", operation="revert")
    assert len(repo.update_chain(r.id)) == 2
    assert subjects(repo.facts_at(r.id)) == subjects(repo.facts_at(c2))
    assert repo.commit_size(r.id) == repo.objects.size(r.id)


def test_squash_shaped_commit():
    """Squash C2..C3 onto C1: basis = C1, one set for all their facts; main moves from C3."""
    repo = memory_repo()
    _, (c1, c2, c3) = history_c1_c2_c3(repo)
    range_facts = [f for f in repo.facts_at(c3) if f.commit in (c2, c3)]
    squash = fake_result(23, requests=[f.request for f in range_facts])
    squash.zs = repo.zs_of(range_facts)
    s = repo.write_commit([squash], parents=[c1], basis=c1, message="squash",
                          operation="squash", expected=c3)
    assert repo.log() == [repo.get_commit(s.id), repo.get_commit(c1)]
    chain = repo.update_chain("HEAD")
    assert len(chain) == 2 and chain[1][1].rank == 4
    assert subjects(repo.facts_at("HEAD")) == subjects(repo.facts_at(c3))
    assert {f.commit for f in repo.facts_at("HEAD")} == {c1, s.id}
    # squash everything into one root commit
    root = repo.write_commit([squash], parents=[], basis=None, message="all", expected=s.id)
    assert len(repo.update_chain("HEAD")) == 1 and repo.log() == [repo.get_commit(root.id)]


def test_merge_shaped_commit():
    """main: C1-A, side: C1-B; merge: basis = merge base C1, one set for the union."""
    repo = memory_repo()
    c1 = commit_on_head(repo, fake_result(1, n=2), time=1.0).id
    repo.switch("side", create=True)
    b = commit_on_head(repo, fake_result(2, n=2), time=2.0).id
    repo.switch("main")
    a = commit_on_head(repo, fake_result(3, n=2), time=3.0).id
    assert repo.merge_base("main", "side") == c1 and repo.merge_base(a, c1) == c1
    assert repo.is_ancestor(c1, "side") and not repo.is_ancestor(a, "side")
    union = [f for f in repo.facts_at(a) + repo.facts_at(b) if f.commit != c1]
    solved = fake_result(4, requests=[f.request for f in union])
    solved.zs = repo.zs_of(union)
    m = repo.write_commit([solved], parents=[a, b], basis=c1, message="merge side",
                          operation="merge")
    assert len(repo.update_chain(m.id)) == 2
    assert sorted(subjects(repo.facts_at(m.id))) == sorted(
        set(subjects(repo.facts_at(a))) | set(subjects(repo.facts_at(b))))
    assert [c.message for c in repo.log()] == ["merge side", "edit", "edit", "edit"]
    assert [c.id for c in repo.log()] == [m.id, a, b, c1]
    assert [c.id for c in repo.log(first_parent=True)] == [m.id, a, c1]
    assert [c.id for c in repo.log("side")] == [b, c1]
    assert [c.id for c in repo.log(limit=2)] == [m.id, a]


def test_log_is_topological_even_with_skewed_clocks():
    repo = memory_repo()
    ids = [commit_on_head(repo, seed=i, time=t).id for i, t in enumerate([50.0, 10.0, 30.0])]
    assert [c.id for c in repo.log()] == ids[::-1]


def test_a_later_request_for_the_same_fact_replaces_the_earlier():
    repo = memory_repo()
    commit_on_head(repo, fake_result(1, n=3))
    moved = Request(subject="s1-subject-1", prompt="{} is located in", target_new="Rome")
    c2 = commit_on_head(repo, fake_result(2, requests=[moved]))
    facts = repo.facts_at("HEAD")
    assert len(facts) == 3 and facts[-1].request.target_new == "Rome"
    assert (facts[-1].commit, facts[-1].position) == (c2.id, 0)
    assert subjects(facts) == ["s1-subject-0", "s1-subject-2", "s1-subject-1"]


def test_bad_results_are_refused_before_anything_is_indexed():
    repo = memory_repo()
    nan = fake_result(1)
    nan.updates[2].U[0, 0] = float("nan")
    with pytest.raises(NumericalError, match="layer 2 U"):
        commit_on_head(repo, nan)
    shapes = fake_result(1)
    shapes.updates[1].keys = shapes.updates[1].keys[:2]
    with pytest.raises(ValidationError, match="keys of shape"):
        commit_on_head(repo, shapes)
    few_zs = fake_result(1)
    few_zs.zs = few_zs.zs[:1]
    with pytest.raises(ValidationError, match="z-vectors for 3 requests"):
        commit_on_head(repo, few_zs)
    with pytest.raises(ValidationError, match="unknown commit"):
        repo.write_commit([fake_result(1)], parents=["f" * 64], basis=None, message="x",
                          expected=None)
    stats = fake_result(1)
    stats.stats_ids = {1: "abc"}
    with pytest.raises(ValidationError, match="statistics abc of layer 1"):
        commit_on_head(repo, stats)
    with pytest.raises(ValidationError, match="metrics.es"):
        commit_on_head(repo, metrics={"es": torch.ones(3)})
    assert repo.db["commits"].count == 0 and repo.db["requests"].count == 0
    assert repo.head().commit is None


def test_statistics_are_recorded_and_referenced():
    repo = memory_repo()
    x = torch.randn(50, D_IN, dtype=torch.float64)
    mom2 = x.T @ x / 50  # symmetric, as E[k kᵀ] is
    stats = Statistics(1, mom2, 1000, '{"source": "self"}')
    rec = repo.put_statistics(stats)
    assert (rec.id, rec.layer, rec.n_tokens) == (stats.id, 1, 1000)
    assert repo.put_statistics(stats) == rec  # stored once
    back = repo.get_statistics(stats.id, 1)
    # stored as the upper triangle in float32: equal to float32 rounding, exactly symmetric
    assert back.mom2.dtype == torch.float64 and torch.equal(back.mom2, back.mom2.T)
    assert same_bits(back.mom2, mom2.float().double()) and back.description == stats.description
    assert repo.objects.size(rec.object) < D_IN * D_IN * 8 * 0.6
    result = fake_result(1)
    result.stats_ids = {1: stats.id}
    c = commit_on_head(repo, result)
    assert c.update_sets[0].stats == {1: stats.id}
    assert [r.id for r in repo.statistics()] == [stats.id]


def test_status_counts_the_commits_on_their_records_not_their_request_lists(monkeypatch):
    """status counts the commits on the checked graph (each record read once and compared
    with its row, 5c89304: a damaged row misreported the count), but it never reads what
    is heavy outside HEAD's state chain: the side commits' request lists and z-vectors."""
    from memstore.store import queries

    repo = memory_repo()
    c1 = commit_on_head(repo, seed=1).id
    repo.create_branch("side", c1)
    repo.switch("side")
    side = [commit_on_head(repo, seed=s).id for s in (2, 3, 4)]
    repo.switch("main")
    c2 = commit_on_head(repo, seed=5).id
    merge = repo.write_commit([fake_result(6)], parents=[c2, side[-1]], basis=c1,
                              message="merge", operation="merge")
    heavy = {oid for c in (*side, c2) for u in repo.get_commit(c).update_sets
             for oid in (u.requests, u.zs)}
    assert len(heavy) == 8
    repo.forget_cached()
    read = []
    real = repo.objects.get_bytes
    monkeypatch.setattr(repo.objects, "get_bytes", lambda oid, *a: read.append(oid) or
                        real(oid, *a))
    s = queries.status(repo)
    assert s["n_commits"] == 6 and s["n_facts"] == 6 and s["head"] == merge.id
    assert set(read) & {*side, c2}  # the records: counted on them
    assert not set(read) & heavy


def test_a_commit_record_whose_author_is_not_text_is_corrupt():
    from memstore.store.commits import Commit, CorruptRecordError

    repo = memory_repo()
    c = commit_on_head(repo, seed=1, author="Ada <ada@example.org>")
    d = repo.objects.get_json(c.id)
    assert d["author"] == "Ada <ada@example.org>"
    assert Commit.from_json(c.id, d).author == "Ada <ada@example.org>"
    with pytest.raises(CorruptRecordError, match="author must be a string"):
        Commit.from_json(c.id, d | {"author": 5})


def test_a_commits_summary_is_the_first_line_of_its_message():
    """One name for it (blame's `summary`, a revert's and a squash's default message): it
    was written out three times, in blame and twice in rewrite."""
    repo = memory_repo()
    c = commit_on_head(repo)
    for message, summary in (("\n  Fix the tongue\n\nwhy it was wrong\n", "Fix the tongue"),
                             ("one line", "one line"), (" \n\t\n", ""), ("", "")):
        assert dataclasses.replace(c, message=message).summary == summary


def test_parents_and_basis_are_the_commits_a_record_names():
    """What a walk of the history follows: the parents, then the basis where there is one
    (a revert's or a merge's is no parent; a root commit's is None, the base weights)."""
    def made(parents, basis):
        return make_commit(parents=parents, base="b", basis=basis, update_sets=[],
                           message="", time=0.0, operation="commit")[0]

    p1, p2, other = "1" * 64, "2" * 64, "3" * 64
    assert made([], None).parents_and_basis == ()
    assert made([p1], p1).parents_and_basis == (p1, p1)
    assert made([p1, p2], other).parents_and_basis == (p1, p2, other)
    assert made([p1], None).parents_and_basis == (p1,)


def test_every_record_make_commit_writes_is_read_back_as_canonical():
    """2c6ea2d refuses a record whose bytes are not the canonical JSON of what they parse
    to: no record memstore writes may fail it. Seeded random records (a hypothesis-style
    loop): messages and names of any code point but surrogates (controls, U+2028, BOM,
    combining marks, astral), times and metrics of any finite float (subnormals, -0.0,
    1e16, 1e22, random bit patterns), ints to 10**300, numpy and torch scalars, NaN/inf,
    keys of ints, floats, bools and None (plain() makes them strings), nested lists and
    tuples: each stored, read back and parsed by Commit.from_json."""
    import math
    import random
    import struct

    import numpy as np

    from memstore.store.commits import Commit, put_update_set
    from memstore.store.objects import MemoryObjectStore, plain

    rng = random.Random(20261206)
    store = MemoryObjectStore()
    base_set = put_update_set(store, fake_result(0))
    special = [0.0, -0.0, 1.0, 1e16, 1e22, 1e-7, 5e-324, 1.7976931348623157e308,
               2.0 ** 53 + 2, 0.1, -2.2250738585072014e-308, 123456789012345680.0]
    points = [0, 9, 10, 13, 0x1f, 0x22, 0x2f, 0x5c, 0x7f, 0x85, 0xa0, 0x301, 0x2028, 0x2029,
              0xfeff, 0xfffe, 0xffff, 0x1f600, 0x10ffff]
    letters = "éÅßøΩж中日ﬁ\u0301한😀"

    def a_float():
        k = rng.randrange(4)
        if k == 0:
            return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if k == 1:
            return rng.choice(special)
        if k == 2:
            return math.ldexp(rng.random(), rng.randint(-1074, 1023))
        return rng.uniform(-1e6, 1e6)

    def a_text(n):
        cs = [rng.choice(points) if rng.random() < .3 else rng.randrange(0x110000)
              for _ in range(n)]
        return "".join(chr(0x20 if 0xd800 <= c <= 0xdfff else c) for c in cs)

    def a_scalar():
        return rng.choice([
            a_float, lambda: rng.randint(-2 ** 70, 2 ** 70) * 10 ** rng.randint(0, 230),
            lambda: np.float64(a_float()), lambda: np.float32(a_float() % 1e30),
            lambda: np.int64(rng.randint(-2 ** 63, 2 ** 63 - 1)),
            lambda: torch.tensor(a_float(), dtype=torch.float64),
            lambda: rng.choice([True, False, None, np.bool_(True), float("nan"), -math.inf]),
            lambda: a_text(rng.randint(0, 8))])()

    def a_key():
        return rng.choice([lambda: a_text(rng.randint(0, 6)), lambda: rng.randint(-99, 99),
                           a_float, lambda: rng.choice([True, None])])()

    def a_value(depth=0):
        k = rng.randrange(4) if depth < 3 else 0
        if k <= 1:
            return a_scalar()
        if k == 2:
            return {a_key(): a_value(depth + 1) for _ in range(rng.randint(0, 4))}
        return (tuple if k == 3 and rng.random() < .5 else list)(
            a_value(depth + 1) for _ in range(rng.randint(0, 3)))

    def a_name():
        return "".join(rng.choice(letters) for _ in range(rng.randint(1, 8))) + " <é@x.org>"

    def a_time():
        t = a_float()
        return t if math.isfinite(t) else 0.0

    for _ in range(150):
        update_set = dataclasses.replace(base_set, info=plain({a_key(): a_value()}, "info"))
        commit, data = make_commit(
            parents=[], base=BASE_HASH, basis=None, update_sets=[update_set],
            message=a_text(rng.randint(0, 30)), time=a_time(), operation="commit",
            metrics={a_key(): a_value() for _ in range(rng.randint(0, 5))},
            info={a_key(): a_value()}, author=rng.choice([None, a_name()]),
            committer=rng.choice([None, a_name()]),
            author_time=rng.choice([None, a_time()]))
        oid = store.put_bytes(data)
        assert Commit.from_json(oid, store.get_json(oid)) == commit
