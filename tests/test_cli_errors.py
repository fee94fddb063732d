"""Every user mistake is ONE line on stderr ("memstore: error: …"), no traceback, a
non-zero exit status (2: bad input, 1: refused operation), and nothing written: the
repository's objects and index rows are the same before and after."""
from __future__ import annotations

import json
import shutil

import pytest
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    facts_files,
    history_template,
    make_model_dir,
    model_dir,
    ok,
    run,
    snapshot,
)
from safetensors.torch import load_file, save_file

FACT = {"subject": "Michael Jordan", "prompt": "{} plays", "target_new": "golf"}


@pytest.fixture
def repo(base, tmp_path):
    template, _ = history_template(base)
    return copy_repo(template, tmp_path / "repo")


def lines(tmp_path, name, *records) -> str:
    p = tmp_path / name
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return str(p)


def refused(repo, *args, code: int, says: str):
    """Runs `memstore ARGS` in `repo`; asserts the one-line error and that nothing changed."""
    before = snapshot(repo)
    line = error_line(run(*args, cwd=repo), code, says)
    assert snapshot(repo) == before
    return line


def test_bad_facts_files(repo, tmp_path):
    refused(repo, "commit", tmp_path / "nope.jsonl", code=2, says="nope.jsonl: no such file")
    bad_json = lines(tmp_path, "bad.jsonl", FACT, '{"subject": "x", "prompt"')
    refused(repo, "commit", bad_json, code=2, says="bad.jsonl line 2: invalid JSON")
    no_braces = lines(tmp_path, "nb.jsonl", {**FACT, "prompt": "Someone plays"})
    refused(repo, "commit", no_braces, code=2, says="line 1: field 'prompt' must contain '{}'")
    empty_subject = lines(tmp_path, "es.jsonl", FACT, {**FACT, "subject": " "})
    refused(repo, "commit", empty_subject, code=2, says="line 2: empty subject")
    empty_target = lines(tmp_path, "et.jsonl", {**FACT, "target_new": ""})
    refused(repo, "commit", empty_target, code=2, says="line 1: empty target_new")
    missing = lines(tmp_path, "mf.jsonl", {"subject": "x", "prompt": "{} is"})
    refused(repo, "commit", missing, code=2, says="line 1: missing field 'target_new'")
    within = lines(tmp_path, "cw.jsonl", FACT, {**FACT, "target_new": "chess"})
    refused(repo, "commit", within, code=2, says="conflicting requests: 'Michael Jordan'")
    empty = lines(tmp_path, "empty.jsonl", "")
    refused(repo, "commit", empty, code=2, says="empty.jsonl: no records")
    # the tokenizer check: the subject's last token runs on past it
    split = lines(tmp_path, "split.jsonl", {**FACT, "subject": "Micha", "prompt": "{}el plays"})
    refused(repo, "commit", split, code=2, says="cannot locate the subject 'Micha'")


def test_conflict_with_a_live_fact_needs_supersede(repo, tmp_path):
    other = lines(tmp_path, "other.jsonl", {**FACT, "prompt": "{} plays"})
    msg = refused(repo, "commit", other, code=2, says="conflicts with 'soccer', live since commit")
    assert "--supersede" in msg
    ok("commit", other, "--supersede", cwd=repo)


def test_unknown_revisions_and_bad_names(repo, tmp_path):
    for args in (("show", "nosuch"), ("revert", "nosuch"), ("diff", "nosuch", "HEAD"),
                 ("log", "nosuch"), ("export", "nosuch", tmp_path / "o"), ("squash", "HEAD~9"),
                 ("merge", "nosuch"), ("branch", "x", "nosuch"), ("ask", "hi", "--rev", "zz"),
                 ("switch", "nosuch")):
        refused(repo, *args, code=2, says="unknown revision")
    assert not (tmp_path / "o").exists()
    refused(repo, "branch", "a..b", code=2, says="invalid branch name 'a..b'")
    refused(repo, "branch", "refs/heads/x", code=2, says="invalid branch name")
    refused(repo, "tag", "../../escape", code=2, says="invalid tag name")
    refused(repo, "switch", "-c", "has space", code=2, says="invalid branch name")
    refused(repo, "switch", "-c", "new", "--detach", code=2,
            says="-c and --detach cannot be used together")
    refused(repo, "branch", "main", code=2, says="branch 'main' already exists")
    refused(repo, "branch", "-d", "main", code=1, says="cannot delete the current branch")
    ok("branch", "lone", "HEAD~1", cwd=repo)
    ok("switch", "lone", cwd=repo)
    ok("commit", facts_files(tmp_path)["e"], cwd=repo)
    ok("switch", "main", cwd=repo)
    refused(repo, "branch", "-d", "lone", code=1, says="`branch -D` deletes it anyway")
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    refused(repo, "branch", "origin/main", code=2,
            says="it would read as the branch 'main' of remote 'origin'")
    refused(repo, "squash", "HEAD", code=2, says="nothing to squash")


def test_bad_settings(repo):
    for args in (("nosuch", "1"), ("nosuch",)):  # the list names every key config takes
        line = refused(repo, "config", *args, code=2, says="unknown setting 'nosuch'")
        assert line.endswith("token_rule, device, dtype, device_map"), line
    refused(repo, "config", "z_steps", "many", code=2, says="invalid value 'many' for z_steps")
    refused(repo, "config", "layers", "2,9", code=2, says="the model has 4 layers")
    refused(repo, "config", "layers", "2,3", code=2, says="must be below 3, the model's last layer")
    refused(repo, "config", "layers", "x", code=2, says="invalid value 'x' for layers")
    refused(repo, "config", "history", "sometimes", code=2, says="history must be one of")
    refused(repo, "config", "stats_source", "nope.txt", code=2,  # the default named too
            says="no such file (give 'wikipedia', the built-in sample, 'self' or")
    for key, value, says in (("mom2_weight", "0", "mom2_weight must be > 0"),
                             ("mom2_weight", "-5", "mom2_weight must be > 0"),
                             ("mom2_weight", "nan", "mom2_weight must be finite"),
                             ("z_lr", "inf", "z_lr must be finite"),
                             ("clamp", "-inf", "clamp must be finite"),
                             ("template_tokens", "0", "template_tokens must be between 1"),
                             ("z_steps", "0", "z_steps must be between 1"),
                             ("seed", "-1", "seed must be between 0")):
        refused(repo, "config", key, value, code=2, says=says)
    binary = repo.parent / "corpus.txt"
    binary.write_bytes(bytes(range(256)) * 4)
    refused(repo, "config", "stats_source", binary, code=2, says="is not UTF-8 text")
    weights = repo.parent / "weights.bin"
    weights.write_bytes(b"\0" * 64)
    refused(repo, "config", "stats_source", weights, code=2, says="not a .txt or .jsonl file")


def test_usage_errors(repo, tmp_path):
    refused(repo, "commit", code=2, says="Missing argument 'FILE'")
    # export [REV] OUT_DIR with neither: OUT_DIR is missing (it said '[REV]', the optional one)
    refused(repo, "export", code=2, says="Missing argument 'OUT_DIR'")
    refused(repo, "log", "--bogus", code=2, says="No such option '--bogus'")
    refused(repo, "verify", code=2, says="give an exported OUT_DIR")
    refused(repo, "verify", tmp_path, code=2, says="has no memstore-manifest.json")
    r = run("-C", tmp_path / "missing", "log")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1


def test_refused_operations(base, repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused(repo, "export", out, code=1, says="is not empty (use --force")
    assert (out / "keep.txt").read_text() == "mine"
    refused(repo, "init", ".", code=1, says="a memstore repository already exists")
    nowhere = tmp_path / "plain"
    nowhere.mkdir()
    r = run("log", cwd=nowhere)
    assert r.exit_code == 1 and r.stderr.startswith("memstore: error: not a memstore repository")
    r = run("init", tmp_path / "new", "--base", tmp_path / "no-model")
    assert r.exit_code == 2 and "not found" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "new" / ".memstore").exists()
    empty = copy_repo(empty_template(base), tmp_path / "empty")
    refused(empty, "revert", "HEAD", code=2, says="nothing to revert")


def test_a_base_changed_on_disk_is_detected(base, tmp_path):
    model = make_model_dir(tmp_path / "model")
    repo = tmp_path / "repo"
    ok("init", repo, "--base", model)
    ok("config", "layers", "1,2", cwd=repo)
    facts = facts_files(base)
    # only touched: the cheap check fails, verify --base re-hashes and approves it again
    (model / "config.json").write_text((model / "config.json").read_text() + "\n")
    path = str(model.resolve())
    says = f"base model changed on disk since init: {path} (run memstore verify --base)"
    refused(repo, "commit", facts["b"], code=1, says=says)
    refused(repo, "export", tmp_path / "out", code=1, says=says)
    refused(repo, "export", tmp_path / "out", "--format", "peft", code=1, says=says)
    assert "CHANGED ON DISK" in ok("status", cwd=repo).stdout
    assert "base OK" in ok("verify", "--base", cwd=repo).stdout
    assert "unchanged on disk" in ok("status", cwd=repo).stdout
    # the same weights with another setting or chat template: verify --base fails (it said
    # 'base OK' and refreshed the recorded size and mtime), and the repository keeps them
    config = (model / "config.json").read_text()
    changed = json.loads(config) | {"rms_norm_eps": 0.5}
    (model / "config.json").write_text(json.dumps(changed, indent=1))
    (model / "tokenizer_config.json").write_text(
        (model / "tokenizer_config.json").read_text().replace("{", '{"chat_template": "x", ', 1))
    before = snapshot(repo)
    r = run("verify", "--base", cwd=repo)
    assert r.exit_code == 1 and "base OK" not in r.stdout, r.output
    assert ("config.json, tokenizer_config.json differ from init (its settings or tokenizer; "
            "the weights are the same)") in r.stderr
    assert snapshot(repo) == before
    refused(repo, "commit", facts["b"], code=1, says=says)
    (model / "config.json").write_text(config)
    tokenizer_config = (model / "tokenizer_config.json").read_text()
    r = run("verify", "--base", cwd=repo)
    assert r.exit_code == 1 and "base model changed" in r.stderr, r.output
    assert "tokenizer_config.json differ" in r.stderr and "config.json," not in r.stderr
    (model / "tokenizer_config.json").write_text(tokenizer_config.replace('"chat_template": "x", ', ""))
    assert "base OK" in ok("verify", "--base", cwd=repo).stdout  # as it was: approved again
    # really changed weights: verify --base fails
    w = load_file(model / "model.safetensors")
    w["model.norm.weight"] = w["model.norm.weight"] + 1
    save_file(w, model / "model.safetensors", metadata={"format": "pt"})
    refused(repo, "commit", facts["b"], code=1, says=says)
    before = snapshot(repo)
    r = run("verify", "--base", cwd=repo)
    assert r.exit_code == 1 and "base model changed" in r.stderr
    assert snapshot(repo) == before

    # damaged weights: one line from verify --base, as from init
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:100])
    r = run("verify", "--base", cwd=repo)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert "cannot load the model" in r.stderr and "Traceback" not in r.output


def test_a_damaged_model_is_refused_at_init_in_one_line(tmp_path):
    model = make_model_dir(tmp_path / "model")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    short = tmp_path / "short.gguf"
    short.write_bytes(b"GGUF\x03\x00\x00\x00")
    for i, spec in enumerate((model, short)):
        r = run("init", tmp_path / f"r{i}", "--base", spec)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
        assert r.stderr.startswith(f"memstore: error: cannot load the model '{spec}'"), r.stderr
        assert not (tmp_path / f"r{i}" / ".memstore").exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_model_with_non_finite_weights_is_refused_at_init(tmp_path, value):
    """It was recorded as a base; every edit then failed (or spread the NaN)."""
    model = make_model_dir(tmp_path / "model")
    w = load_file(model / "model.safetensors")
    name = "model.layers.1.mlp.up_proj.weight"
    w[name][3, 5] = value
    save_file(w, model / "model.safetensors", metadata={"format": "pt"})
    r = run("init", tmp_path / "r", "--base", model)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert f"its tensor {name} holds NaN or infinite values" in r.stderr
    assert not (tmp_path / "r" / ".memstore").exists()


def test_base_weights_changed_in_place_are_caught_by_export_and_verify(base, tmp_path):
    """Same size, same mtime: the cheap check passes, the hash of the loaded weights not."""
    import os

    model = make_model_dir(tmp_path / "model")
    repo = tmp_path / "repo"
    ok("init", repo, "--base", model)
    ok("config", "layers", "1,2", cwd=repo)
    ok("export", "base", tmp_path / "before", cwd=repo)  # no commits: HEAD names none
    weights = model / "model.safetensors"
    st = weights.stat()
    w = load_file(weights)
    w["model.norm.weight"] = w["model.norm.weight"] + 1
    save_file(w, weights, metadata={"format": "pt"})
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.stat().st_size == st.st_size
    assert "unchanged on disk" in ok("status", cwd=repo).stdout  # the cheap check passes
    from memstore.store.states import forget_loaded

    forget_loaded()  # as a new process would: the weights are read from disk again
    refused(repo, "export", "base", tmp_path / "after", code=1,
            says="the base model's weights changed on disk")
    assert not (tmp_path / "after").exists()
    refused(repo, "verify", tmp_path / "before", code=1,
            says="the base model's weights changed on disk")


def test_the_library_refuses_a_bad_message_or_requests_before_the_edit(repo):
    from memstore.editing import Request
    from memstore.errors import ValidationError
    from memstore.store import porcelain
    from memstore.store.repository import Repository

    before = snapshot(repo)
    fact = Request("Apple A5", "{} was created by", "Microsoft")
    with Repository.open(repo) as r:
        with pytest.raises(ValidationError, match="the commit message must be text"):
            porcelain.commit(r, [fact], None)
        with pytest.raises(ValidationError, match="expected a Request, got dict"):
            porcelain.commit(r, [fact.to_dict()], "m")
        padded = Request("Honda Civic", "{} is produced by", "Microsoft ")
        with pytest.raises(ValidationError, match="^request 2: target_new 'Microsoft ' begins"):
            porcelain.commit(r, [fact, padded], "m")
    assert snapshot(repo) == before  # refused before the edit: no objects left behind


def test_eval_of_a_zsre_file_names_the_record_that_lacks_a_field(repo, tmp_path):
    one = {"subject": "Watts Humphrey", "src": "What university did Watts Humphrey attend?",
           "answers": ["University of Michigan"], "rephrase": "Which university?",
           "loc": "nq question: who played desmond", "loc_ans": "Ian McShane"}
    two = {k: v for k, v in one.items() if k != "loc"}
    (tmp_path / "z.json").write_text(json.dumps([one, two]))
    refused(repo, "eval", tmp_path / "z.json", code=2, says="z.json record 2: missing field 'loc'")
    (tmp_path / "z.json").write_text(json.dumps([one]))
    refused(repo, "eval", tmp_path / "z.json", "--generation", code=2,
            says="z.json is a zsRE file: --by-relation and --generation measure CounterFact")


def test_config_help_names_every_setting(repo):
    from dataclasses import fields

    from memstore.editing.settings import EditSettings

    text = ok("config", "--help", cwd=repo).stdout
    assert [f.name for f in fields(EditSettings) if f"  {f.name} " not in text] == []
    assert "\n  Where the model runs" in text  # its own paragraph, lines kept


def test_an_empty_remote_or_branch_name_is_refused_not_taken_as_the_default(repo, tmp_path):
    ok("remote", "add", "origin", tmp_path / "store", cwd=repo)
    ok("push", cwd=repo)
    for args in (("push", ""), ("fetch", ""), ("pull", "")):
        refused(repo, *args, code=2, says="no remote ''")
    for args in (("push", "origin", ""), ("pull", "origin", "")):
        refused(repo, *args, code=2, says="invalid branch name '': it is empty")


def test_a_pull_of_a_branch_the_remote_lacks_fetches_nothing(repo, tmp_path):
    ok("remote", "add", "origin", tmp_path / "store", cwd=repo)
    ok("push", cwd=repo)
    ok("remote", "remove", "origin", cwd=repo)  # its remote-tracking branch goes too
    ok("remote", "add", "origin", tmp_path / "store", cwd=repo)
    refused(repo, "pull", "origin", "nosuch", code=2, says="remote 'origin' has no branch 'nosuch'")
    ok("switch", "-c", "local-only", cwd=repo)
    refused(repo, "pull", code=2, says="remote 'origin' has no branch 'local-only'")


def test_a_branch_name_a_remote_could_not_store_is_refused(repo, tmp_path):
    ok("branch", "team", cwd=repo)
    refused(repo, "branch", "team/alice", code=2,
            says="branch 'team' exists, and a remote stores a branch as a file")
    ok("branch", "-d", "team", cwd=repo)
    ok("branch", "team/alice", cwd=repo)
    refused(repo, "switch", "-c", "team", code=2, says="branch 'team/alice' exists")
    ok("tag", "team", cwd=repo)  # a tag is never pushed: no file to clash with
    refused(repo, "branch", "x/" + "é" * 128, code=2,
            says="a path component is longer than 255 bytes")
    ok("branch", "x/" + "é" * 127, cwd=repo)
    ok("remote", "add", "origin", tmp_path / "store", cwd=repo)
    ok("push", "origin", "team/alice", cwd=repo)
    ok("push", "origin", "x/" + "é" * 127, cwd=repo)


def test_no_branch_or_tag_may_hide_a_remote_branch(repo, tmp_path):
    ok("remote", "add", "origin", tmp_path / "store", cwd=repo)
    refused(repo, "tag", "origin/main", "HEAD~1", code=2,
            says="invalid tag name 'origin/main': it would read as the branch 'main' of remote")
    ok("tag", "originals/v1", cwd=repo)
    ok("branch", "team/alice", cwd=repo)
    refused(repo, "remote", "add", "team", tmp_path / "other", code=2,
            says="invalid remote name 'team': branch 'team/alice' would hide its branch 'alice'")
    refused(repo, "remote", "add", "originals", tmp_path / "other", code=2,
            says="tag 'originals/v1' would hide its branch 'v1'")
    ok("remote", "add", "tea", tmp_path / "other", cwd=repo)



def test_no_branch_or_tag_may_be_named_base(repo):
    """'base' is the base model's state in diff, squash, export, ask and eval: a tag 'base'
    made `squash base` squash onto the tag instead of into one root commit, and `diff base`
    compare with it, silently. One an older memstore let be made is refused there as
    ambiguous, nothing written; refs/tags/base names it, and once deleted 'base' is the
    base model again."""
    for args in (("branch", "base"), ("tag", "base", "HEAD~1"), ("switch", "-c", "base")):
        refused(repo, *args, code=2, says="invalid ")
    from memstore.store.repository import Repository

    with Repository.open(repo) as r:  # as an older memstore let a user make it
        tip = r.resolve("HEAD~1")
        r.refs.update("refs/tags/base", tip, expected=None)
    for args in (("squash", "base"), ("diff", "base"), ("export", "base", repo.parent / "x")):
        refused(repo, *args, code=2, says="revision 'base' is ambiguous")
    assert not (repo.parent / "x").exists()
    d = json.loads(ok("diff", "refs/tags/base", "--json", cwd=repo).stdout)
    assert [f["subject"] for f in d["added"]] == ["Toko Yasuda", "Lionel Messi"]
    ok("tag", "-d", "base", cwd=repo)
    assert len(json.loads(ok("diff", "base", "--json", cwd=repo).stdout)["added"]) == 5
    squash = json.loads(ok("squash", "base", "--json", cwd=repo).stdout)
    assert squash["parents"] == [] and len(squash["squashed"]) == 3

def test_an_empty_path_argument_is_refused_by_name(repo, tmp_path):
    for args, name in ((("commit", ""), "FILE"), (("eval", ""), "[FILE]"),
                       (("export", ""), "OUT_DIR"), (("export", "HEAD", ""), "OUT_DIR"),
                       (("verify", ""), "[OUT_DIR]"), (("init", "", "--base", "x"), "[PATH]"),
                       (("clone", tmp_path / "store", "", "--base", "x"), "DIRECTORY")):
        refused(repo, *args, code=2, says=f"Invalid value for '{name}': an empty path")


def test_templates_that_leave_no_room_in_the_context_are_refused_by_config(repo):
    """The tiny model's context is 128 positions: template_tokens 127 was stored, and every
    commit after it was refused."""
    refused(repo, "config", "template_tokens", "127", code=2,
            says="settings: template_tokens 127 leaves no room for a prompt and its target in "
                 "the model's context of 128 tokens")
    ok("config", "n_templates", "0", cwd=repo)  # no template in front: any length is unused
    ok("config", "template_tokens", "127", cwd=repo)
    refused(repo, "config", "n_templates", "2", code=2, says="template_tokens 127 leaves no room")
    ok("config", "template_tokens", "126", cwd=repo)
    ok("config", "n_templates", "2", cwd=repo)


@pytest.mark.parametrize("args", [("commit", "FACTS"), ("revert", "HEAD"), ("squash", "HEAD~1"),
                                  ("merge", "side")])
@pytest.mark.parametrize("message", ["", "  \n"])
def test_an_empty_message_is_refused_by_every_command_that_writes_one(base, tmp_path, args,
                                                                      message):
    """-m '' wrote a commit whose log line is blank (git aborts on an empty message)."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    ok("switch", "-c", "side", cwd=repo)
    ok("commit", facts_files(base)["e"], cwd=repo)  # a merge of side has something to write
    ok("switch", "main", cwd=repo)
    args = tuple(str(facts_files(base)["d"]) if a == "FACTS" else a for a in args)
    refused(repo, *args, "-m", message, code=2, says="Invalid value for '-m' / '--message': "
                                                     "an empty message")


@pytest.mark.parametrize("stats_first", [False, True])
def test_a_commit_on_statistics_of_fewer_tokens_than_key_dimensions_is_refused(
        repo, tmp_path, stats_first):
    """A corpus of a few lines gave E[kkᵀ] of fewer tokens than d_in, singular: the commit
    went through with a warning, wrote ΔW norms in the thousands and broke the model (on
    SmolLM2, 9 tokens: "The capital of Germany is 9 as I as Older"), reporting efficacy
    1.000. It is refused, before anything is stored; `stats` alone still only warns."""
    corpus = tmp_path / "small.txt"
    corpus.write_text("The river flows into the sea near the old town.\n")
    ok("config", "stats_source", corpus, cwd=repo)
    if stats_first:  # computed and stored by `stats`, with its warnings
        said = ok("stats", cwd=repo).stderr
        assert "warning: the statistics sample" in said
        assert "warning: a commit refuses these statistics: the statistics of layer 1 " in said
    before = snapshot(repo)
    r = run("commit", lines(tmp_path, "f.jsonl", {**FACT, "subject": "Anna"}), cwd=repo)
    last = r.stderr.strip().splitlines()[-1]  # after the note that they are being computed
    assert r.exit_code == 2 and "Traceback" not in r.stderr, r.stderr
    assert last.startswith("memstore: error: the statistics of layer 1 come from "), last
    assert "fewer than its 64 key dimensions" in last and "stats_source wikipedia" in last
    assert snapshot(repo) == before


def test_stats_warns_of_a_stats_tokens_below_the_key_dimensions(repo):
    """`stats` with stats_tokens below a layer's d_in (the corpus long enough) stored the
    statistics in silence, which every commit then refused: it warns, as the README says."""
    ok("config", "stats_tokens", "40", cwd=repo)  # the tiny model's d_in is 64
    said = ok("stats", cwd=repo).stderr
    assert "warning: a commit refuses these statistics: the statistics of layer 1 come from " \
           "40 tokens" in said and "fewer than its 64 key dimensions" in said, said
    ok("config", "stats_tokens", "64", cwd=repo)
    assert "refuses" not in ok("stats", cwd=repo).stderr


def test_init_in_the_base_model_or_another_repositorys_store_is_refused(base, repo, tmp_path):
    """`init MODEL --base MODEL` failed with 'base model changed on disk since init' after
    writing MODEL/.memstore, which it left there (every later use of that model folder as a
    base then failed the same way); `init REPO/.memstore/objects/ab` made a repository
    inside another one's object store. Both are refused now, before anything is written."""
    model = tmp_path / "model"
    shutil.copytree(model_dir(base), model)
    for path in (model, model / "sub"):
        error_line(run("init", path, "--base", model), 2, "is or is inside the base model")
    assert sorted(p.name for p in model.iterdir()) == sorted(
        p.name for p in model_dir(base).iterdir())
    # a fan-out folder the store does not hold (object ids carry a commit's time: which
    # two-hex-digit folders exist differs from run to run)
    objects = repo / ".memstore" / "objects"
    inner = next(objects / f"{i:02x}" for i in range(256) if not (objects / f"{i:02x}").exists())
    before = snapshot(repo)
    error_line(run("init", inner, "--base", model), 2,
               "is inside a repository's .memstore folder")
    assert snapshot(repo) == before and not inner.exists()


@pytest.mark.parametrize("fmt", ["full", "peft"])
def test_an_export_folder_that_cannot_be_made_is_named_as_given(repo, fmt):
    """A folder where none can be made was named by the temporary folder memstore makes
    beside it ('No such file or directory: /proc/.x.memstore-tmp-HOST-PID-…')."""
    line = refused(repo, "export", "HEAD", "/proc/memstore-x", "--format", fmt, code=1,
                   says="cannot write /proc/memstore-x: ")
    assert "memstore-tmp" not in line


@pytest.mark.parametrize("error, says", [
    (lambda torch: torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 "
        "GiB of which 1.20 GiB is free. Including non-PyTorch memory, this process has 77.9 "
        "GiB memory in use."),
     ("out of memory (CUDA out of memory. Tried to allocate 2.00 GiB), which memstore's "
      "estimate")),
    (lambda torch: RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 40000000000 bytes. Error code 12 (Cannot allocate "
        "memory)"),
     ("out of memory (DefaultCPUAllocator: can't allocate memory: you tried to allocate "
      "40000000000 bytes)")),
    (lambda torch: MemoryError(), "out of memory (Python could not allocate memory)"),
])
def test_running_out_of_memory_part_way_is_one_line(repo, base, monkeypatch, error, says):
    """An allocation that fails in the middle of a commit (a GPU shared with another job,
    a phase the memory estimate undercounts) was a traceback; it is one line naming what
    ran out, with what to do, and the commit writes nothing. Another RuntimeError is still
    a bug's traceback."""
    import torch

    from memstore.editing import memit

    def fail(*args, **kwargs):
        raise error(torch)

    monkeypatch.setattr(memit, "solve_layer", fail)
    refused(repo, "commit", facts_files(base)["d"], code=1, says=says)
    monkeypatch.setattr(memit, "solve_layer", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run("commit", facts_files(base)["d"], cwd=repo)


def test_a_corpus_line_with_a_number_of_thousands_of_digits_is_refused_in_one_line(repo,
                                                                                 tmp_path):
    """`config stats_source C.jsonl` reads its first text: a line {"text": 777…} of 5000
    digits was a ValueError traceback (no JSONDecodeError, which was all it caught)."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": ' + "7" * 5000 + "}\n")
    refused(repo, "config", "stats_source", corpus, code=2,
            says=f"{corpus} line 1: expected JSON with a 'text' field")


def test_a_folder_given_as_the_statistics_corpus_is_called_a_folder(repo, tmp_path):
    """It was refused as 'no such file'."""
    refused(repo, "config", "stats_source", tmp_path, code=2,
            says=f"statistics corpus '{tmp_path}' is a folder; give a .txt or .jsonl file")


def test_a_conflict_with_a_target_of_thousands_of_characters_is_one_short_line(repo,
                                                                                tmp_path):
    """The refusal quoted the whole target: a line of 100,000 characters."""
    long = {**FACT, "target_new": "y" * 100_000}
    line = refused(repo, "commit", lines(tmp_path, "t.jsonl", long), code=2,
                   says="conflicts with 'soccer', live since commit")
    assert len(line) < 600 and "'yyyyy" in line and "…" in line, line
