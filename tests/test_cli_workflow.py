"""End to end through the CLI (in process, click's CliRunner): init, commits, log, show,
diff, branches, merge (clean, fast-forward, conflicting), revert, squash, export, verify,
ask, eval, fsck, gc."""
from __future__ import annotations

import json

import pytest
import transformers
from cli_support import (
    SETTINGS,
    copy_repo,
    facts_files,
    history_template,
    last_line,
    log_json,
    model_dir,
    ok,
    run,
    snapshot,
    tamper_hidden,
    write_facts,
)

from memstore.models.hashing import tensor_sha256
from memstore.store.repository import Repository


def facts_live(repo, rev="HEAD"):
    with Repository.open(repo) as r:
        return {(f.request.subject, f.request.prompt): f.request.target_new
                for f in r.facts_at(rev)}


def test_end_to_end(base, tmp_path):
    files = facts_files(base)
    repo = tmp_path / "repo"
    out = ok("init", repo, "--base", model_dir(base))
    assert "Initialized empty memstore repository" in out.stdout
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo)
    assert json.loads(ok("config", "--json", cwd=repo).stdout)["layers"] == [1, 2]
    assert log_json(repo) == []

    ids = []
    for k in "abc":
        r = ok("commit", files[k], "-m", f"facts {k}", cwd=repo)
        ids.append(last_line(r))
        assert len(ids[-1]) == 64 and "efficacy" in r.stdout
    log = log_json(repo)
    assert [e["id"] for e in log] == ids[::-1]
    assert [e["n_requests"] for e in log] == [2, 1, 2]
    assert log[0]["parents"] == [ids[1]] and log[2]["parents"] == []
    assert ok("log", "--oneline", cwd=repo).stdout.count("\n") == 3

    shown = json.loads(ok("show", ids[0], "--json", cwd=repo).stdout)
    assert [x["layer"] for x in shown["update_sets"][0]["layers"]] == [1, 2]
    assert all(x["rank"] == 2 and x["norm"] > 0 for x in shown["update_sets"][0]["layers"])
    assert shown["bytes"] > 0 and shown["metrics"]["n"] == 2
    assert 0 <= shown["metrics"]["efficacy"] <= 1 and shown["metrics"]["p_new"] > 0
    assert "‖ΔW‖_F" in ok("show", cwd=repo).stdout

    d = json.loads(ok("diff", ids[0], "HEAD", "--json", "--weights", "--probe",
                      "Michael Jordan plays", cwd=repo).stdout)
    assert {f["subject"] for f in d["added"]} == {"Michael Jordan", "Toko Yasuda", "Lionel Messi"}
    assert d["removed"] == [] and d["changed"] == []
    assert set(d["weights"]) == {"1", "2"} and all(v > 0 for v in d["weights"].values())
    assert d["revs"] == [ids[0], "HEAD"] and set(d["probe"][0]) == {"prompt", "rev1", "rev2"}
    assert d["probe"][0]["prompt"] == "Michael Jordan plays"  # a revision named "prompt" or
    assert isinstance(d["probe"][0]["rev2"], str)  # REV1 == REV2 overwrote keys before
    assert "no fact differs" in ok("diff", "HEAD", "HEAD", cwd=repo).stdout

    # a branch, a commit on it, a clean merge (a merge commit solved on the merge base)
    ok("branch", "feature", ids[1], cwd=repo)
    assert "* main" in ok("branch", cwd=repo).stdout
    ok("switch", "feature", cwd=repo)
    d_id = last_line(ok("commit", files["d"], "-m", "facts d", cwd=repo))
    ok("checkout", "main", cwd=repo)
    merged = last_line(ok("merge", "feature", cwd=repo))
    log = log_json(repo)
    assert log[0]["id"] == merged and log[0]["parents"] == [ids[2], d_id]
    assert log[0]["operation"] == "merge" and log[0]["n_requests"] == 3  # c (2) + d (1)
    live = facts_live(repo)
    assert live[("Honda Civic", "{} is produced by")] == "Apple" and len(live) == 6
    with Repository.open(repo) as r:
        assert r.get_commit(merged).basis == ids[1]  # the merge base
    earlier = json.loads(ok("show", merged, "--json", cwd=repo).stdout)["metrics"]["earlier"]
    assert (earlier["n"], earlier["live"]) == (3, 3)  # a and b: carried by C2, not solved
    assert "|\\" in ok("log", "--graph", "--oneline", cwd=repo).stdout

    # fast-forward
    ok("switch", "-c", "ff", cwd=repo)
    e_id = last_line(ok("commit", files["e"], cwd=repo))
    ok("switch", "main", cwd=repo)
    r = ok("merge", "ff", cwd=repo)
    assert "Fast-forward" in r.stdout and last_line(r) == e_id
    assert "Already up to date." in ok("merge", "main", cwd=repo).stdout  # itself
    assert len(log_json(repo)) == 6

    # revert C2 (facts b): its fact goes, the later facts stay
    rev = last_line(ok("revert", ids[1], cwd=repo))
    live = facts_live(repo)
    assert ("Michael Jordan", "{} plays") not in live and len(live) == 6
    entry = log_json(repo)[0]
    assert entry["id"] == rev and entry["operation"] == "revert"
    assert "cached z-vectors" in entry["message"] and ids[1] in entry["message"]

    # squash everything after C1 into one commit: same facts, one update set
    before = live
    tip = rev
    r = ok("squash", ids[0], cwd=repo)
    squashed = last_line(r)
    assert "efficacy before" in r.stderr
    log = log_json(repo)
    assert [e["id"] for e in log] == [squashed, ids[0]] and log[0]["n_requests"] == 6 - 2
    assert facts_live(repo) == before
    assert "no fact differs" in ok("diff", tip, "HEAD", cwd=repo).stdout

    # tags, export, verify, ask, eval
    ok("tag", "v1", cwd=repo)
    assert "v1" in ok("tag", cwd=repo).stdout
    out_dir = tmp_path / "export"
    ok("export", "v1", out_dir, cwd=repo)
    manifest = json.loads((out_dir / "memstore-manifest.json").read_text())
    assert manifest["commit"] == squashed and manifest["base"]["hash"]
    assert "OK" in ok("verify", out_dir, cwd=repo).stdout
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out_dir)
    name = "model.layers.2.mlp.down_proj.weight"
    assert tensor_sha256(loaded.state_dict()[name]) == manifest["tensors"][name]
    answers = json.loads(ok("ask", "Michael Jordan plays", "--compare", "base", "--json",
                            cwd=repo).stdout)["answers"]
    assert [a["rev"] for a in answers] == ["HEAD", "base"] and answers[1]["commit"] is None
    m = json.loads(ok("eval", files["c"], "--json", cwd=repo).stdout)
    assert m["n"] == 2 and 0 <= m["efficacy"] <= 1
    assert "efficacy" in ok("eval", files["c"], "--by-relation", cwd=repo).stdout

    # fsck, gc: the commits replaced by the squash (and the feature branches) go once
    # their branches are deleted
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    ok("branch", "-D", "feature", cwd=repo)
    ok("branch", "-D", "ff", cwd=repo)
    ok("reflog", "expire", "--expire=now", "--all", cwd=repo)  # HEAD's names them
    report = json.loads(ok("gc", "--json", cwd=repo).stdout)
    assert len(report["commits"]) == 6 and report["bytes"] > 0
    assert ok("fsck", cwd=repo).stdout.strip() == "ok"
    assert "OK" in ok("verify", out_dir, cwd=repo).stdout  # still rebuilds after gc
    st = json.loads(ok("status", "--json", cwd=repo).stdout)
    assert st["branch"] == "main" and st["n_facts"] == 6 and st["base"]["unchanged"] is True


def test_merge_conflict_is_listed_and_writes_nothing(history, tmp_path):
    repo, _ = history
    ok("branch", "other", cwd=repo)
    mine = write_facts(tmp_path / "mine.jsonl",
                       [("Michael Jordan", "{} plays", "golf", "basketball"),
                        ("Toko Yasuda", "{} plays the", "drums", "guitar")])
    theirs = write_facts(tmp_path / "theirs.jsonl",
                         [("Michael Jordan", "{} plays", "chess", "basketball"),
                          ("Toko Yasuda", "{} plays the", "flute", "guitar"),
                          ("Honda Civic", "{} is produced by", "Apple", "Honda")])
    c_mine = last_line(ok("commit", mine, "--supersede", cwd=repo))
    ok("switch", "other", cwd=repo)
    ok("commit", theirs, "--supersede", cwd=repo)
    ok("switch", "main", cwd=repo)
    before = snapshot(repo)
    r = run("merge", "other", cwd=repo)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in r.stderr
    assert lines[0].startswith("CONFLICT 'Michael Jordan' / '{} plays': 'golf' here, 'chess'")
    assert lines[1].startswith("CONFLICT 'Toko Yasuda'")
    assert lines[2].startswith("memstore: error: merge of other refused: 2 conflicting")
    assert "revert the commit that wrote it here" in lines[2]
    assert snapshot(repo) == before
    # the advice settles it, either way: this side's targets written on the other side ...
    agreed = copy_repo(repo, tmp_path / "agreed")
    ok("switch", "other", cwd=agreed)
    ok("commit", mine, "--supersede", cwd=agreed)
    ok("switch", "main", cwd=agreed)
    ok("merge", "other", cwd=agreed)
    with Repository.open(agreed) as r:
        live = {(f.request.subject, f.request.target_new) for f in r.facts_at(r.head().commit)}
    assert {("Michael Jordan", "golf"), ("Toko Yasuda", "drums"),
            ("Honda Civic", "Apple")} <= live
    # ... or, without this side's writes, the other side's targets win
    ok("revert", c_mine, cwd=repo)
    ok("merge", "other", cwd=repo)
    with Repository.open(repo) as r:
        live = {(f.request.subject, f.request.target_new) for f in r.facts_at(r.head().commit)}
    assert {("Michael Jordan", "chess"), ("Toko Yasuda", "flute"),
            ("Honda Civic", "Apple")} <= live


def test_verify_reports_a_changed_tensor(history, tmp_path):
    from safetensors.torch import load_file, save_file

    repo, ids = history
    out = tmp_path / "out"
    ok("export", ids[1], out, cwd=repo)
    r = run("export", out, cwd=repo)
    assert r.exit_code == 1 and "not empty" in r.stderr
    ok("export", "--force", out, cwd=repo)  # HEAD now
    assert json.loads((out / "memstore-manifest.json").read_text())["commit"] == ids[2]
    weights = out / "model.safetensors"
    tensors = load_file(weights)
    name = "model.layers.1.mlp.down_proj.weight"
    tensors[name][0, 0] += 1e-3
    save_file(tensors, weights, metadata={"format": "pt"})
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1
    assert r.stdout.strip().splitlines() == ["model.safetensors: differs from the manifest",
                                             f"{name}: differs from the rebuilt model"]



def test_verify_reports_a_tensor_of_another_dtype_or_shape_with_the_same_bytes(history, tmp_path):
    """A tensor's sha256 is of its bytes: a checkpoint holding a tensor as int32 (or bfloat16
    as float16, or [a, b] as [b, a]) with the same bytes passed verify's comparison with
    the rebuild ("OK: … identical", exit 0) once the manifest's file hash agreed (edited,
    or a format-1 manifest, which has none), while a loader read other weights."""

    import torch

    repo, _ = history
    out = tmp_path / "out"
    ok("export", out, cwd=repo)
    norm, down = "model.norm.weight", "model.layers.1.mlp.down_proj.weight"

    def relabel(tensors):
        tensors[norm] = tensors[norm].view(torch.int32)
        tensors[down] = tensors[down].reshape(tensors[down].shape[::-1]).contiguous()

    tamper_hidden(out, "model.safetensors", relabel)
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1, r.output
    assert r.stdout.strip().splitlines() == [
        (f"{down}: dtype or shape ('float32', (64, 32)) differs from the rebuilt model's "
         "('float32', (32, 64))"),
        (f"{norm}: dtype or shape ('int32', (32,)) differs from the rebuilt model's "
         "('float32', (32,))")]



def test_export_and_verify_of_the_base_name_the_base_model_in_words(history, tmp_path):
    """'Exported (base) (39 tensors)', 'identical to (base) rebuilt' (SmolLM2: 272 tensors):
    the base model said in words, where a commit's short id stands otherwise; --json keeps
    commit null."""
    repo, ids = history
    out = tmp_path / "out"
    assert ok("export", "base", out, cwd=repo).stdout.splitlines() == [
        f"Exported the base model (39 tensors) to {out}"]
    assert ok("verify", out, cwd=repo).stdout.splitlines()[-1].startswith(
        "OK: 39 tensors identical to the base model (built with ")
    assert json.loads(ok("verify", out, "--json", cwd=repo).stdout)["commit"] is None
    d = json.loads(ok("export", "base", out, "--force", "--json", cwd=repo).stdout)
    assert d["commit"] is None and d["tensors"] == 39
    tamper_hidden(out, "model.safetensors", lambda t: t["model.norm.weight"].add_(1))
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1 and f"{out}: 1 problem(s) against the base model and the " \
        "manifest" in r.stderr, r.output
    head = tmp_path / "head"  # a commit: its short id, as before
    assert ok("export", head, cwd=repo).stdout.splitlines() == [
        f"Exported {ids[2][:12]} (39 tensors) to {head}"]
    assert f"identical to {ids[2][:12]} rebuilt" in ok("verify", head, cwd=repo).stdout


def test_verify_of_a_state_without_update_sets_after_a_config_change(base, tmp_path):
    """A revert of every fact leaves a commit whose state holds no update set: its export
    records the repository's settings of the time (it has none of its own), and verify
    compared them with the settings of now: after `memstore config mom2_weight 5000`, which
    changes nothing in the commit, the faithful export failed ('settings: differ', exit 1)."""
    from cli_support import empty_template

    repo = copy_repo(empty_template(base), tmp_path / "repo")
    ok("commit", facts_files(base)["a"], cwd=repo)
    ok("revert", "HEAD", cwd=repo)
    ok("export", tmp_path / "full", cwd=repo)
    ok("export", tmp_path / "peft", "--format", "peft", "--since", "HEAD~1", cwd=repo)
    ok("config", "mom2_weight", "5000", cwd=repo)
    assert "OK: 39 tensors identical" in ok("verify", tmp_path / "full", cwd=repo).stdout
    assert "OK: 4 tensors identical" in ok("verify", tmp_path / "peft", cwd=repo).stdout


def test_eval_json_contract_measures_the_base_without_commits(base, tmp_path):
    from cli_support import empty_template

    repo = copy_repo(empty_template(base), tmp_path / "repo")
    facts = write_facts(tmp_path / "eval.jsonl", [
        ("Danielle Darrieux", "The mother tongue of {} is", "English", "French"),
        ("Michael Jordan", "{} plays", "soccer", "basketball")],
        extra={"paraphrases": ["Michael Jordan is a player of"],
               "neighborhood": ["Lionel Messi plays"]})
    m = json.loads(ok("eval", facts, "--json", cwd=repo).stdout)
    assert m["commit"] is None and m["n"] == 2
    for key in ("efficacy", "paraphrase", "neighborhood", "score"):
        assert 0.0 <= m[key] <= 1.0
    ok("commit", facts, "-m", "x", cwd=repo)
    edited = json.loads(ok("eval", facts, "--json", cwd=repo).stdout)
    base_again = json.loads(ok("eval", facts, "--json", "--rev", "base", cwd=repo).stdout)
    assert base_again == {**m, "rev": "base"}
    assert edited["efficacy_magnitude"] > m["efficacy_magnitude"]


def test_eval_detects_zsre(history, tmp_path):
    repo, _ = history
    records = [{"subject": "Michael Jordan", "src": "What does Michael Jordan play?",
                "answers": ["soccer"], "rephrase": "Michael Jordan plays which sport?",
                "loc": "nq question: who wrote the song", "loc_ans": "The String"}]
    path = tmp_path / "zsre.json"
    path.write_text(json.dumps(records))
    m = json.loads(ok("eval", path, "--json", cwd=repo).stdout)
    assert m["kind"] == "zsre" and m["n"] == 1
    for key in ("efficacy", "paraphrase", "neighborhood", "score", "specificity"):
        assert 0.0 <= m[key] <= 1.0
    # the text said neighborhood and specificity, the same number twice under two names
    rows = ok("eval", path, cwd=repo).stdout.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["efficacy", "paraphrase", "specificity", "score"]
    assert rows[2].split()[1] == f"{m['specificity']:.3f}"


def test_statistics_are_shared_between_repositories(base, tmp_path, monkeypatch):
    from cli_support import empty_template

    empty_template(base)  # computed them once, into the session's statistics cache

    def no_compute(*args, **kwargs):
        raise AssertionError("statistics computed again")

    monkeypatch.setattr("memstore.store.states.compute_statistics", no_compute)
    repo = tmp_path / "repo"
    ok("init", repo, "--base", model_dir(base))
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo)
    rows = json.loads(ok("stats", "--json", cwd=repo).stdout)
    assert [r["layer"] for r in rows] == [1, 2] and all(r["n_tokens"] == 400 for r in rows)
    # the sample is an object in the JSON, not a JSON text inside it
    assert all(r["sample"]["source"] == "wikipedia" and r["sample"]["tokens"] == 400 for r in rows)
    ok("config", "stats_tokens", "300", cwd=repo)  # another sample: not in the cache
    with pytest.raises(AssertionError, match="computed again"):
        run("stats", cwd=repo)


def test_a_statistics_sample_short_of_stats_tokens_is_a_warning(base, tmp_path):
    """A corpus that holds fewer tokens than stats_tokens asks is used whole, recorded with
    its real count, and the user is told; one that holds enough says nothing."""
    repo = tmp_path / "repo"
    ok("init", repo, "--base", model_dir(base))
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo)
    corpus = tmp_path / "small.txt"
    corpus.write_text("The river flows into the sea near the old town.\n" * 3)
    ok("config", "stats_source", corpus, cwd=repo)
    r = ok("stats", "--json", cwd=repo)
    first = json.loads(r.stdout)
    got = {row["n_tokens"] for row in first}
    assert len(first) == 2 and len(got) == 1 and 0 < got.pop() < 400
    assert "warning: the statistics sample" in r.stderr and "fewer than the 400" in r.stderr
    other = tmp_path / "other"  # the same sample, from the statistics cache: told as well
    ok("init", other, "--base", model_dir(base))
    for key, value in {**SETTINGS, "stats_source": corpus}.items():
        ok("config", key, value, cwd=other)
    assert "fewer than the 400" in ok("stats", cwd=other).stderr
    corpus.write_text("The river flows into the sea near the old town.\n" * 200)
    ok("config", "stats_source", corpus, cwd=repo)  # another file: another sample
    r = ok("stats", "--json", cwd=repo)
    rows = [row for row in json.loads(r.stdout) if row not in first]
    assert len(rows) == 2 and {row["n_tokens"] for row in rows} == {400}
    assert "warning" not in r.stderr


def test_every_command_has_help():
    from cli.main import cli

    for name in cli.commands:
        r = run(name, "--help")
        assert r.exit_code == 0 and r.stdout.startswith("Usage: ") and f" {name} " in r.stdout
        assert len(r.stdout.splitlines()) > 4


@pytest.mark.parametrize("tamper", ["extra weights", "index beside the weights", "config",
                                    "tokenizer", "listed file removed", "unlisted file"])
def test_verify_checks_what_a_loader_reads(history, tmp_path, tamper):
    """verify fails on every change a loader would see, not only on changed tensors."""
    import shutil

    repo, _ids = history
    out = tmp_path / "out"
    ok("export", out, cwd=repo)
    assert "OK" in ok("verify", out, cwd=repo).stdout
    if tamper == "extra weights":
        shutil.copy(out / "model.safetensors", out / "pytorch_model.bin")
        says = "pytorch_model.bin: an extra weight file"
    elif tamper == "index beside the weights":
        (out / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {}, "weight_map": {"lm_head.weight": "other.safetensors"}}))
        says = "model.safetensors.index.json: not written by an export"
    elif tamper == "config":
        cfg = json.loads((out / "config.json").read_text())
        cfg["rms_norm_eps"] = 0.5
        (out / "config.json").write_text(json.dumps(cfg))
        says = "config.json: differs from the rebuilt model's"
    elif tamper == "tokenizer":
        tok = json.loads((out / "tokenizer.json").read_text())
        tok["model"]["vocab"]["hello"] = 0
        (out / "tokenizer.json").write_text(json.dumps(tok))
        says = "tokenizer.json: differs from the rebuilt model's"
    elif tamper == "listed file removed":
        (out / "generation_config.json").unlink()
        says = "generation_config.json: listed in the manifest but missing"
    else:
        (out / "notes.txt").write_text("mine")
        says = "notes.txt: not part of the export"
    r = run("verify", out, cwd=repo)
    assert r.exit_code == 1 and says in r.stdout, r.output


def test_two_exports_into_one_new_folder_one_is_refused(history, tmp_path, monkeypatch):
    """The final step refuses to replace what appeared meanwhile: here a second export
    finishes while the first is rebuilding its state."""
    from memstore.store import checkpoint

    repo, ids = history
    out = tmp_path / "new"
    real = checkpoint.state_of
    inner = {}

    def state_of(r, commit):
        if not inner:
            inner["started"] = True
            checkpoint.export(r, ids[0], out)  # the other export lands first
        return real(r, commit)

    monkeypatch.setattr(checkpoint, "state_of", state_of)
    r = run("export", ids[2], out, cwd=repo)
    assert r.exit_code == 1 and "appeared or filled up while exporting" in r.stderr
    monkeypatch.undo()
    manifest = json.loads((out / "memstore-manifest.json").read_text())
    assert manifest["commit"] == ids[0]  # the first export to land is kept whole
    assert "OK" in ok("verify", out, cwd=repo).stdout
    assert [p.name for p in tmp_path.iterdir() if "memstore-tmp" in p.name] == []


def test_a_file_added_to_out_while_a_forced_export_runs_is_kept(history, tmp_path,
                                                                   monkeypatch):
    """--force checks OUT before the work and again at the rename: a file the user puts
    into the previous export meanwhile (or a file rewritten there) is not removed with it."""
    from memstore.store import checkpoint

    repo, ids = history
    out = tmp_path / "out"
    ok("export", ids[0], out, cwd=repo)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    real = checkpoint.state_of

    def state_of(r, commit):
        (out / "notes.txt").write_text("written while the export ran")
        return real(r, commit)

    monkeypatch.setattr(checkpoint, "state_of", state_of)
    r = run("export", ids[2], out, "--force", cwd=repo)
    assert r.exit_code == 1 and "changed while exporting; nothing was replaced" in r.stderr
    assert {f.name: f.read_bytes() for f in out.iterdir()} == {
        **before, "notes.txt": b"written while the export ran"}
    (out / "notes.txt").unlink()

    def rewrite(r, commit):
        (out / "README.md").write_text("the user's own card")
        return real(r, commit)

    monkeypatch.setattr(checkpoint, "state_of", rewrite)
    r = run("export", ids[2], out, "--force", cwd=repo)
    assert r.exit_code == 1 and "changed while exporting; nothing was replaced" in r.stderr
    assert (out / "README.md").read_text() == "the user's own card"
    assert [p.name for p in tmp_path.iterdir() if "memstore-" in p.name] == []


def test_tampered_cached_statistics_are_not_used(base, tmp_path, monkeypatch):
    """The shared statistics cache is checked against the hash recorded in each file's name:
    a tampered file is ignored (and said so), the statistics are recomputed."""
    from cli_support import SETTINGS
    from safetensors.torch import load as load_bytes
    from safetensors.torch import save as save_bytes

    cache = tmp_path / "stats-cache"
    monkeypatch.setenv("MEMSTORE_STATS_CACHE", str(cache))
    first = tmp_path / "first"
    ok("init", first, "--base", model_dir(base))
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=first)
    ok("stats", cwd=first)
    files = sorted(cache.glob("*.safetensors"))
    assert len(files) == 2
    victim = files[0]
    data = victim.read_bytes()
    t = load_bytes(data)
    t["mom2_triu"] = t["mom2_triu"] * 1000  # still a valid file, other values
    header_len = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + header_len])["__metadata__"]
    victim.write_bytes(save_bytes(t, metadata=meta))
    second = tmp_path / "second"
    ok("init", second, "--base", model_dir(base))
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=second)
    r = ok("stats", cwd=second)
    assert "ignored cached statistics" in r.stderr and "does not match its recorded hash" in r.stderr
    objects = [json.loads(ok("stats", "--list", "--json", cwd=d).stdout) for d in (first, second)]
    assert [o["object"] for o in objects[0]] == [o["object"] for o in objects[1]]


def test_a_fact_given_twice_in_one_commit_is_written_once(base, tmp_path):
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    fact = {"subject": "Apple A5", "prompt": "{} was created by", "target_new": "Microsoft"}
    other = {**fact, "subject": "Honda Civic", "target_new": "Apple"}
    f = tmp_path / "twice.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in (fact, other, fact, fact)) + "\n")
    r = ok("commit", f, cwd=repo)
    assert "2 repeated request(s) (the same subject, prompt and target) written once" in r.stderr
    assert log_json(repo)[0]["n_requests"] == 2


def test_branch_and_tag_speak_json_when_asked(base, tmp_path):
    from cli_support import empty_template

    repo = copy_repo(empty_template(base), tmp_path / "repo")
    assert json.loads(ok("branch", "--json", cwd=repo).stdout) == [
        # as the text: "* main (no commits yet)"
        {"name": "main", "commit": None, "remote": False, "current": True}]
    head = last_line(ok("commit", facts_files(base)["d"], cwd=repo))
    assert json.loads(ok("branch", "side", "--json", cwd=repo).stdout) == {
        "created": "side", "commit": head, "upstream": None}
    assert json.loads(ok("tag", "v1", "--json", cwd=repo).stdout) == {"created": "v1",
                                                                       "commit": head}
    assert json.loads(ok("branch", "-d", "side", "--json", cwd=repo).stdout) == {
        "deleted": "side", "commit": head}
    assert json.loads(ok("tag", "-d", "v1", "--json", cwd=repo).stdout)["deleted"] == "v1"


def test_completions_reach_the_terminal_without_control_characters():
    from cli.output import printable

    assert printable("red\x1b[31m text\x10", keep="\n") == "red\\x1b[31m text\\x10"
    assert printable("two\nlines\tand é", keep="\n\t") == "two\nlines\tand é"
    assert printable("tab\t", keep="") == "tab\\t"
    assert printable("\u202eevil \U0001f468\u200d\U0001f469") == "\\u202eevil \U0001f468\u200d\U0001f469"


def test_a_state_is_built_holding_one_update_set_at_a_time(history, monkeypatch):
    """Every state (commit, ask, eval, export, diff --weights) was built from the whole
    history's ΔW tensors loaded at once: peak memory grew with the number of commits (on the
    tiny model, export of 1,000 commits of 100 facts: 523 MB against 408 MB for 10; on
    SmolLM2, ~9 MB more per such commit). Each set's tensors are now read when applied."""
    import gc
    import weakref

    import torch

    from memstore.editing.apply import build_state
    from memstore.store import history as chain_history
    from memstore.store.queries import weight_diff
    from memstore.store.states import open_base, state_of

    repo, ids = history
    held: list[int] = []  # per set read, how many sets read before it are still in memory
    loaded: list[weakref.ref] = []
    real = chain_history.load_updates

    def counted(objects, update_set):
        if any(w() is not None for w in loaded):  # else nothing for a collect to free
            gc.collect()
        held.append(sum(1 for w in loaded if w() is not None))
        updates = real(objects, update_set)
        loaded.append(weakref.ref(next(iter(updates.values()))))
        return updates

    names = [f"model.layers.{l}.mlp.down_proj.weight" for l in (1, 2)]
    with Repository.open(repo) as r:
        want = build_state(open_base(r).pristine(names), open_base(r).adapter,
                           r.update_chain(ids[2]))
        monkeypatch.setattr(chain_history, "load_updates", counted)
        open_base(r).reset()
        base = state_of(r, ids[2])
        assert len(held) == 3 and max(held) <= 1, held
        assert all(torch.equal(base.parameter(n), want[n]) for n in names)
        held.clear()
        assert weight_diff(r, "base", ids[2])[1] > 0
        assert len(held) == 3 and max(held) <= 1, held


def test_diff_weights_says_so_where_both_states_are_the_base_weights(base, tmp_path):
    """After `revert HEAD` of the only commit (the README's session), `diff base --weights`
    printed the table's header and no row: neither state holds an update set."""
    from cli_support import empty_template

    repo = copy_repo(empty_template(base), tmp_path / "repo")
    ok("commit", facts_files(base)["a"], cwd=repo)
    ok("revert", "HEAD", cwd=repo)
    out = ok("diff", "base", "--weights", cwd=repo).stdout
    assert out.splitlines() == ["no fact differs",
                                "no weight differs: both states are the base model's weights"]
    assert json.loads(ok("diff", "base", "--weights", "--json", cwd=repo).stdout)["weights"] == {}
    rows = ok("diff", "base", "HEAD~1", "--weights", cwd=repo).stdout.splitlines()
    assert rows[-3] == "layer  ‖W2 − W1‖_F" and [r.split()[0] for r in rows[-2:]] == ["1", "2"]
