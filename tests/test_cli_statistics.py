"""The statistics E[k kᵀ] a solve uses are those of the repository's base, in the precision
it runs in, and a second-moment matrix: the shared cache keeps other models' and other
dtypes' apart, and `fetch --with-stats` and `fsck REMOTE` refuse records and tensors that
are not the statistics they claim to be."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_support import SETTINGS, copy_repo, error_line, model_dir, ok, run
from remote_support import remote_files, tamper

from memstore.editing.statistics import pack_symmetric
from memstore.remote.layout import object_path
from memstore.store.objects import hash_bytes, tensors_to_bytes
from memstore.store.repository import Repository


def _repo(path: Path, model: Path) -> Path:
    ok("init", path, "--base", model)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=path)
    return path


def _matrices(path: Path) -> dict[tuple[str, int], torch.Tensor]:
    with Repository.open(path) as r:
        return {(s.id, s.layer): r.get_statistics(s.id, s.layer).mom2 for s in r.statistics()}


def test_the_shared_cache_gives_no_statistics_of_another_dtype_or_model(base, tmp_path,
                                                                        monkeypatch):
    """Statistics computed in bfloat16 (`stats --dtype bfloat16`) were taken from the shared
    cache by every later float32 repository of the base (1% off the float32 ones, which the
    same commands gave in a fresh cache), and another model's cache files renamed to this
    model's names were taken as its statistics: the cache files record both."""
    import transformers
    from tiny import tiny_config, tiny_tokenizer

    cache = tmp_path / "stats-cache"
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", str(cache))
    half = _repo(tmp_path / "half", model_dir(base))
    ok("stats", "--dtype", "bfloat16", cwd=half)
    full = _repo(tmp_path / "full", model_dir(base))
    r = ok("stats", cwd=full)
    assert "computing the statistics" in r.stderr  # none of float32 in the cache
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", "off")
    alone = _repo(tmp_path / "alone", model_dir(base))
    ok("stats", cwd=alone)
    got, want, bf16 = _matrices(full), _matrices(alone), _matrices(half)
    assert got.keys() == want.keys() and not bf16.keys() & want.keys()  # bf16: another sample
    by_layer = {layer: m for (_, layer), m in want.items()}
    assert {layer for _, layer in bf16} == set(by_layer)
    for k in want:
        assert torch.equal(got[k], want[k])
    for (_, layer), m in bf16.items():
        assert not torch.equal(m, by_layer[layer])
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", str(cache))
    # another model of the same shape, whose cache files are given this model's names
    other = tmp_path / "other-model"
    tok = tiny_tokenizer()
    torch.manual_seed(1)
    transformers.AutoModelForCausalLM.from_config(
        tiny_config("llama", tok.backend_tokenizer.get_vocab_size(), layers=4)).save_pretrained(other)
    tok.save_pretrained(other)
    second = _repo(tmp_path / "second", other)
    with Repository.open(second) as rr:
        prefix = rr.base.hash[:16]
    for p in cache.glob("*.safetensors"):
        p.unlink()
    ok("stats", cwd=_repo(tmp_path / "third", model_dir(base)))
    for p in cache.glob("*.safetensors"):
        p.rename(cache / (prefix + p.name[16:]))
    r = ok("stats", cwd=second)
    assert "computed on another base model" in r.stderr and "computing the statistics" in r.stderr
    for k, m in _matrices(second).items():
        assert not torch.equal(m, want[k])

def test_statistics_of_another_dtype_are_another_sample_in_the_repository(base, tmp_path,
                                                                          monkeypatch):
    """`stats --dtype bfloat16` stored its matrices under the sample id a float32 commit asks
    for, so every later float32 commit and replay solved with bfloat16's statistics (ΔW off
    by up to 1-2%): the dtype is now part of a sample's description where it is not float32
    (float32's ids are as before), and a float32 commit computes and records its own."""
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", "off")
    repo = _repo(tmp_path / "repo", model_dir(base))
    ok("stats", "--dtype", "bfloat16", cwd=repo)
    listed = json.loads(ok("stats", "--list", "--json", cwd=repo).stdout)
    assert listed and all('"dtype": "bfloat16"' in r["description"] for r in listed), listed
    half = _matrices(repo)
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"subject": "Apple A5", "prompt": "{} was created by",
                                 "target_new": "Microsoft"}) + "\n")
    ok("commit", facts, "-m", "f32", cwd=repo)
    alone = _repo(tmp_path / "alone", model_dir(base))
    ok("stats", cwd=alone)
    want = _matrices(alone)
    with Repository.open(repo) as r:
        used = set(r.get_commit(r.head().commit).update_sets[0].stats.values())
    assert used == {sid for sid, _ in want}  # float32's id, as a float32 repository's
    got = _matrices(repo)
    assert got.keys() == half.keys() | want.keys()
    for k in want:
        assert torch.equal(got[k], want[k])


@pytest.mark.parametrize("damage", ["nan", "negative"])
def test_fetched_statistics_must_be_a_second_moment_matrix(pushed, base, tmp_path, damage):
    """A statistics record on the remote naming a tensor with a NaN or a negative diagonal
    was cloned with --with-stats, exit 0, fsck ok; then, with the NaN, every commit and
    replay of the clone failed ('the layer solve produced non-finite values'), for good;
    with -I as E[kkᵀ], they were solved against it, exit 0."""
    _, url = pushed
    path = min(p for p in remote_files(url) if p.startswith("statistics/"))
    record = json.loads(remote_files(url)[path])
    d = 64  # the tiny model's MLP width
    m = torch.eye(d, dtype=torch.float64)
    m[3, 3] = float("nan") if damage == "nan" else -1.0
    data = tensors_to_bytes({"mom2_triu": pack_symmetric(m)})
    record["object"] = hash_bytes(data)
    obj = Path(url) / object_path(record["object"])
    obj.parent.mkdir(exist_ok=True)
    obj.write_bytes(data)
    tamper(url, path, json.dumps(record).encode())
    target = tmp_path / "clone"
    line = error_line(run("clone", url, target, "--base", model_dir(base), "--with-stats"), 1,
                      f"{path}: its object is not a second-moment matrix")
    assert "non-finite values or a negative diagonal" in line
    assert not target.exists()


def test_fsck_of_a_remote_checks_a_statistics_record_against_its_id(pushed, base, tmp_path):
    """A record whose description is not the one its id hashes: `fsck REMOTE` said ok, while
    every `fetch --with-stats` of it was refused."""
    repo, url = pushed
    path = min(p for p in remote_files(url) if p.startswith("statistics/"))
    record = json.loads(remote_files(url)[path])
    record["description"] = record["description"].replace('"tokens": 400', '"tokens": 4000')
    tamper(url, path, json.dumps(record).encode())
    says = f"{path} is damaged (its description does not match its id)"
    for r in (run("fsck", url), run("fsck", "origin", cwd=repo)):
        assert r.exit_code == 1 and says in r.stdout, r.output
    target = tmp_path / "clone"
    error_line(run("clone", url, target, "--base", model_dir(base), "--with-stats"), 1, says)
    assert not target.exists()


@pytest.mark.parametrize("damage", ["description", "garbage", "other layer"])
def test_fsck_remote_repair_writes_a_damaged_statistics_record_again(pushed, base, tmp_path,
                                                                    damage):
    """`fsck REMOTE --repair` rewrote damaged objects but not a damaged statistics record,
    which every `fetch --with-stats` went on refusing; it is written again from this
    repository's record of the same sample and layer."""
    repo, url = pushed
    files = remote_files(url)
    paths = sorted(p for p in files if p.startswith("statistics/"))
    path = paths[0]
    record = json.loads(files[path])
    if damage == "description":
        record["description"] = record["description"].replace('"tokens": 400', '"tokens": 4000')
        data = json.dumps(record).encode()
    elif damage == "garbage":
        data = b"\x00 not json"
    else:
        data = files[paths[1]]
    tamper(url, path, data)
    if damage == "garbage":  # two records: the count said in the plural
        tamper(url, paths[1], data)
    assert run("fsck", "origin", cwd=repo).exit_code == 1
    r = ok("fsck", "origin", "--repair", cwd=repo)
    said = ("rewrote 2 damaged statistics records on the remote" if damage == "garbage" else
            "rewrote 1 damaged statistics record on the remote")
    assert said in r.stderr and r.stdout.strip() == "ok"
    assert all(remote_files(url)[p] == files[p] for p in paths)
    ok("clone", url, tmp_path / "clone", "--base", model_dir(base), "--with-stats")
    got, want = _matrices(tmp_path / "clone"), _matrices(repo)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)



def _committed_on_a_corpus(base, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A repository with one commit whose statistics come from a corpus file of its own
    (the shared cache off), and the corpus."""
    from cli_support import empty_template, facts_files

    monkeypatch.setenv("MEMSTORE_STATS_CACHE", "off")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 100)
    repo = copy_repo(empty_template(base), tmp_path / "repo")
    ok("config", "stats_source", corpus, cwd=repo)
    ok("commit", facts_files(base)["d"], cwd=repo)
    return repo, corpus


@pytest.mark.parametrize("corpus_then", ["changed", "gone"])
def test_fsck_repair_computes_no_statistics_of_another_sample(base, tmp_path, monkeypatch,
                                                             corpus_then):
    """`fsck --repair` of a clone fetched without --with-stats recomputes the statistics its
    commits name from their settings: with their corpus changed since, it computed and
    stored statistics of the new text that no commit names, and said 'rebuilt … 2
    statistics records', exit 0, the ones named still missing; with it gone, it failed
    (exit 2) after rebuilding the index. Now it says which cannot be recomputed here."""
    repo, corpus = _committed_on_a_corpus(base, tmp_path, monkeypatch)
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    clone = tmp_path / "clone"
    ok("clone", tmp_path / "remote", clone, "--base", model_dir(base))
    if corpus_then == "changed":
        corpus.write_text("Another text entirely, about cats and dogs.\n" * 100)
    else:
        corpus.unlink()
    r = ok("fsck", "--repair", cwd=clone)
    with Repository.open(repo) as rr:
        [sid] = {s.id for s in rr.statistics() if "corpus.txt" in s.description}
    assert f"statistics {sid} cannot be recomputed here" in r.stderr
    assert "fetch them with `memstore fetch --with-stats`" in r.stderr
    assert ok("stats", "--list", "--json", cwd=clone).stdout.strip() == "[]"


def test_fsck_repair_keeps_statistics_stored_before_their_records(base, tmp_path,
                                                                   monkeypatch):
    """A repository made before statistics records (schema m003) has statistics rows that
    name no record object. `fsck --repair` of such a healthy repository rebuilt the index
    from the object store alone and dropped them: it computed them again (minutes on a real
    model; stored another way, other bits) or, with their corpus changed since, lost them
    for good (the next gc deleted their objects) and said 'ok'. Their rows now get records."""
    import sqlite3

    repo, corpus = _committed_on_a_corpus(base, tmp_path, monkeypatch)
    before = _matrices(repo)
    with Repository.open(repo) as r:  # as an older memstore left them: rows, no records
        records = [s.record for s in r.statistics() if "corpus.txt" in s.description]
        paths = [r.objects.path(rid) for rid in records]
    assert len(records) == 2
    with sqlite3.connect(repo / ".memstore" / "index.db") as db:
        db.execute("update statistics set record = null")
    for p in paths:
        p.unlink()
    corpus.write_text("Another text entirely, about cats and dogs.\n" * 100)
    r = ok("fsck", "--repair", cwd=repo)
    assert "cannot be recomputed" not in r.stderr and "computing" not in r.stderr, r.stderr
    for _ in ("repaired", "then collected"):
        after = _matrices(repo)
        assert set(after) == set(before)
        assert all(torch.equal(after[k], m) for k, m in before.items())
        ok("gc", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"


def test_a_statistics_row_that_disagrees_with_its_record_is_not_used(base, tmp_path):
    """The index rows of layers 1 and 2 naming each other's tensor (a damaged index.db):
    fsck said ok and every solve used layer 2's E[kkᵀ] for layer 1 and back, exit 0. The
    row is now checked against its record object, by fsck and before use."""
    import sqlite3

    from cli_support import empty_template, facts_files, snapshot

    repo = copy_repo(empty_template(base), tmp_path / "repo")
    want = _matrices(repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    (o1,), (o2,) = con.execute("select object from statistics order by layer").fetchall()
    with con:
        con.execute("update statistics set object = ? where layer = 1", (o2,))
        con.execute("update statistics set object = ? where layer = 2", (o1,))
    con.close()
    says = "index row disagrees with its record; run `memstore fsck --repair`"
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and f"layer 1: {says}" in r.stdout and f"layer 2: {says}" in r.stdout
    before = snapshot(repo)
    error_line(run("commit", facts_files(base)["d"], cwd=repo), 1,
               "disagrees with its record; run `memstore fsck --repair`")
    assert snapshot(repo) == before
    ok("fsck", "--repair", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    got = _matrices(repo)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_a_corpus_written_to_while_its_statistics_run_gives_those_of_its_hash(
        base, tmp_path, monkeypatch):
    """The corpus was hashed for the sample's id, then read again for the text: a file
    rewritten in between (a corpus regenerated while a long commit computes them) gave
    statistics of the new text under the old text's id, in the repository and the shared
    cache, where every repository using the old text took them. It is read once now."""
    import memstore.editing.statistics as engine

    monkeypatch.setenv("MEMSTORE_STATS_CACHE", str(tmp_path / "cache"))
    old = "The quick brown fox jumps over the lazy dog.\r\n\u2028 Hello\n\n" * 60
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(old, encoding="utf-8", newline="")
    real = engine.describe_source

    def rewritten_meanwhile(*args, **kw):
        d = real(*args, **kw)
        corpus.write_text("Other words about cats, rivers and mountains.\n" * 60)
        return d

    first = _repo(tmp_path / "first", model_dir(base))
    ok("config", "stats_source", corpus, cwd=first)
    monkeypatch.setattr(engine, "describe_source", rewritten_meanwhile)
    ok("stats", cwd=first)
    monkeypatch.setattr(engine, "describe_source", real)
    corpus.write_text(old, encoding="utf-8", newline="")
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", "off")
    second = _repo(tmp_path / "second", model_dir(base))
    ok("config", "stats_source", corpus, cwd=second)
    ok("stats", cwd=second)
    got, want = _matrices(first), _matrices(second)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert list(engine.corpus_texts(str(corpus), corpus.read_bytes())) == \
        list(engine.corpus_texts(str(corpus)))


def test_a_cache_file_is_taken_for_its_own_model_and_dtype_only(tmp_path):
    """What the cache folder holds is matched on the base's whole hash (not only the 16
    characters of its name) and the dtype; an older file that says neither is passed over."""
    from safetensors.torch import save as save_bytes

    from memstore.editing.statistics import (
        Statistics,
        cache_prefix,
        load_cached,
        save_cached,
        sha256,
    )

    st, model = Statistics(1, torch.eye(4, dtype=torch.float64), 10, "test"), "0" * 64
    save_cached(st, tmp_path, model)
    assert load_cached(tmp_path, model, 1, st.id, 4)[0] is not None
    assert load_cached(tmp_path, model, 1, st.id, 4, "bfloat16") == (None, [])
    other = "0" * 16 + "1" * 48  # the same file names
    found, problems = load_cached(tmp_path, other, 1, st.id, 4)
    assert found is None and len(problems) == 1 and "computed on another base model" in problems[0]
    for p in tmp_path.iterdir():
        p.unlink()
    old = save_bytes({"mom2_triu": pack_symmetric(st.mom2)},
                     metadata={"layer": "1", "n_tokens": "10", "description": "test", "dim": "4"})
    (tmp_path / f"{cache_prefix(model, 1, st.id)}{sha256(old)}.safetensors").write_bytes(old)
    assert load_cached(tmp_path, model, 1, st.id, 4) == (None, [])


def test_a_fetched_statistics_record_naming_another_layers_tensor_is_refused(pushed, base,
                                                                           tmp_path):
    """Layers 1 and 2 have matrices of one size: a remote record of layer 1 naming layer 2's
    tensor was fetched and every solve of the clone used layer 2's E[kkᵀ] at layer 1,
    exit 0. The tensor object now says its layer."""
    _, url = pushed
    files = remote_files(url)
    records = {json.loads(files[p])["layer"]: (p, json.loads(files[p]))
               for p in files if p.startswith("statistics/")}
    path, record = records[1]
    record["object"] = records[2][1]["object"]
    tamper(url, path, json.dumps(record).encode())
    target = tmp_path / "clone"
    error_line(run("clone", url, target, "--base", model_dir(base), "--with-stats"), 1,
               f"{path}: its object holds layer 2's statistics")
    assert not target.exists()


def test_a_statistics_record_naming_another_layers_tensor_is_not_used(base, tmp_path):
    """Rows and records of layers 1 and 2 consistently naming each other's tensor (what a
    damaged copy or a hand-made record can say): every solve used them crossed, exit 0."""
    import sqlite3

    from cli_support import empty_template, facts_files, snapshot

    repo = copy_repo(empty_template(base), tmp_path / "repo")
    want = _matrices(repo)
    with Repository.open(repo) as r:
        rows = {row["layer"]: dict(row) for row in
                r.db.query("select * from statistics order by layer")}
        new = {}
        for layer, other in ((1, 2), (2, 1)):
            rec = json.loads(r.objects.get_bytes(rows[layer]["record"]))
            rec["object"] = rows[other]["object"]
            new[layer] = (rec["object"], r.objects.put_json(rec))
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        for layer, (obj, rid) in new.items():
            con.execute("update statistics set object = ?, record = ? where layer = ?",
                        (obj, rid, layer))
            con.execute("insert or ignore into objects (id, size, kind) values (?, 0, ?)",
                        (rid, "statistics-record"))
    con.close()
    before = snapshot(repo)
    error_line(run("commit", facts_files(base)["d"], cwd=repo), 1,
               "holds layer 2's matrix; run `memstore fsck --repair`")
    assert snapshot(repo) == before
    r = run("fsck", cwd=repo)
    assert r.exit_code == 1 and "layer 1: its object" in r.stdout
    assert "holds layer 1's matrix" in r.stdout, r.stdout
    ok("fsck", "--repair", cwd=repo)
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    ok("commit", facts_files(base)["d"], cwd=repo)  # each layer its own matrix again
    got = _matrices(repo)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
