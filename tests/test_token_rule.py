"""Token rules: a commit replays its keys where it read them. Memstore before 5 Dec 2026
read a subject whose last character is spelt with several byte tokens ('José' on the tiny
tokenizer) at the first of them, and kept an <eos> a tokenizer appends (token rule 1); today
it reads the last, <eos> dropped (rule 2). Commits record their rule; old records, which
say nothing, were made with rule 1 (before 415216c) or rule 2 (from it, c24c1f6 among them)."""
from __future__ import annotations

import contextlib

import pytest
import torch
import transformers
from cli_support import (
    copy_repo,
    empty_template,
    facts_files,
    last_line,
    ok,
    run,
    snapshot,
    write_facts,
)
from tiny import tiny_tokenizer

from memstore.editing import execute_memit
from memstore.editing.settings import EditSettings
from memstore.editing.tokens import read_alike, subject_last_token
from memstore.models.loading import prepare_tokenizer
from memstore.store import config
from memstore.store.repository import Repository

JOSE = [("José", "{} plays", "tennis", "football")]


@contextlib.contextmanager
def commits_by_rule_1():
    """Commits made inside read prompts by rule 1, as those of memstore before 5 Dec 2026
    (and this one's while `config token_rule 1` was taken): no command makes them now."""
    real = config.read_settings
    with pytest.MonkeyPatch.context() as m:
        m.setattr(config, "read_settings", lambda db: real(db).with_changes(token_rule=1))
        yield


def test_rule_1_reads_the_first_byte_token_and_rule_2_the_last():
    tok = tiny_tokenizer()
    n = len(tok("José").input_ids)
    ids1, at1 = subject_last_token(tok, "{} plays", "José", rule=1)
    ids2, at2 = subject_last_token(tok, "{} plays", "José", rule=2)
    assert ids1 == ids2 and (at1, at2) == (n - 2, n - 1)
    assert not read_alike(tok, ["{}"], "{} plays", "José")
    assert read_alike(tok, ["{}", "A b. {}"], "{} plays", "Michael Jordan")


def test_a_record_without_a_rule_was_made_by_rule_1_and_a_config_without_one_commits_by_2():
    d = EditSettings(layers=(1, 2), mom2_weight=20.0).to_dict()
    assert d["token_rule"] == 2
    del d["token_rule"]
    assert EditSettings.from_dict(d).token_rule == 1


def test_new_commits_read_by_today_s_rule_whatever_the_config(tmp_path_factory, tmp_path):
    """`config token_rule 1` is refused in one line, nothing changed; a config stored before
    the rule, or holding rule 1 (stored by this memstore while it took it), commits by 2."""
    repo_dir = copy_repo(empty_template(tmp_path_factory.getbasetemp()), tmp_path / "repo")
    with Repository.open(repo_dir) as repo:
        # today's rule is not stored (memstore before the rule, c24c1f6, reads the config)
        assert "token_rule" not in config.get(repo.db, config.SETTINGS)
        assert repo.settings.token_rule == 2
    before = snapshot(repo_dir)
    r = run("config", "token_rule", "1", cwd=repo_dir)
    assert r.exit_code == 2, r.output
    assert r.output.strip() == ("memstore: error: token_rule 1: new commits read prompts by "
                                "rule 2 (rule 1, memstore's before 5 Dec 2026, is kept for the "
                                "commits it made, which replay by it)")
    assert snapshot(repo_dir) == before
    ok("config", "token_rule", "2", cwd=repo_dir)
    with Repository.open(repo_dir) as repo:  # rule 1 stored (by this memstore before): today's
        config.put(repo.db, config.SETTINGS, {**config.get(repo.db, config.SETTINGS),
                                              "token_rule": 1})
        assert repo.settings.token_rule == 2


def _fresh(repo: Repository):
    model = transformers.AutoModelForCausalLM.from_pretrained(repo.base.path,
                                                              dtype=torch.float32).eval()
    model.requires_grad_(False)
    tok = transformers.AutoTokenizer.from_pretrained(repo.base.path)
    prepare_tokenizer(tok)
    return model, tok


def test_a_replayed_commit_reads_its_keys_by_its_own_rule(tmp_path_factory, tmp_path):
    """C1 (other facts), C2 ('José') committed by rule 1, the repository then on rule 2;
    reverting C1 replays C2 on the base from its cached z-vectors: its keys are read where
    C2 read them (the solve by rule 1), not by today's rule."""
    base = tmp_path_factory.getbasetemp()
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    with commits_by_rule_1():
        c1 = last_line(ok("commit", facts_files(base)["a"], "-m", "a", cwd=repo_dir))
        c2 = last_line(ok("commit", write_facts(tmp_path / "jose.jsonl", JOSE), "-m", "José",
                          cwd=repo_dir))
    reverted = last_line(ok("revert", c1, cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        s2 = repo.get_commit(c2).update_sets[0]
        assert s2.edit_settings.token_rule == 1
        stats = {l: repo.get_statistics(sid, l) for l, sid in s2.stats.items()}
        solved = {}
        for rule in (1, 2):
            model, tok = _fresh(repo)
            res = execute_memit(model, tok, repo.requests_of(c2),
                                s2.edit_settings.with_changes(token_rule=rule), stats,
                                zs=repo.zs_of_set(c2), templates=list(s2.templates),
                                show_progress=False)
            solved[rule] = res.updates
        got = repo.updates_of(reverted)
        assert repo.get_commit(reverted).update_sets[0].edit_settings.token_rule == 1
        for l, u in got.items():
            assert torch.equal(u.keys, solved[1][l].keys), l
            assert not torch.equal(u.keys, solved[2][l].keys), l


def jose_by_rule_1(base, tmp_path) -> tuple:
    """A repository whose first commit wrote 'José' by rule 1 and whose config is rule 2
    again; the commit's id."""
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    with commits_by_rule_1():
        c1 = last_line(ok("commit", write_facts(tmp_path / "jose.jsonl", JOSE), "-m", "José",
                          cwd=repo_dir))
    return repo_dir, c1


def test_squash_refuses_a_byte_split_fact_of_rule_1_with_facts_of_rule_2(tmp_path_factory,
                                                                         tmp_path):
    base = tmp_path_factory.getbasetemp()
    repo_dir, c1 = jose_by_rule_1(base, tmp_path)
    ok("commit", write_facts(tmp_path / "zoe.jsonl", [("Zoë", "{} plays", "chess", "golf")]),
       "-m", "Zoë", cwd=repo_dir)  # read apart too: rule 2 recorded
    before = snapshot(repo_dir)
    r = run("squash", "base", cwd=repo_dir)
    assert r.exit_code == 1, r.output
    assert (f"the request 'José' / '{{}} plays' -> 'tennis' (commit {c1[:12]}) was read by "
            "token rule 1; it cannot be solved with facts read by token rule 2") in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert snapshot(repo_dir) == before


def test_a_set_records_its_rule_only_where_it_decides_and_a_squash_reads_by_it(
        tmp_path_factory, tmp_path):
    """A set records token_rule only where some fact's reading depends on it (so memstore
    before the rule, c24c1f6, reads every other record); a squash of José (rule 1) with
    facts read alike reads José by rule 1, where its z-vector was optimised."""
    base = tmp_path_factory.getbasetemp()
    repo_dir, c1 = jose_by_rule_1(base, tmp_path)
    c2 = last_line(ok("commit", facts_files(base)["b"], "-m", "b", cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(c1).update_sets[0].settings["token_rule"] == 1
        assert "token_rule" not in repo.get_commit(c2).update_sets[0].settings
    squashed = last_line(ok("squash", "base", cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert repo.get_commit(squashed).update_sets[0].settings["token_rule"] == 1


@pytest.mark.parametrize("rule", [1, 2])
def test_facts_read_alike_by_both_rules_squash_whatever_their_rules(tmp_path_factory, tmp_path,
                                                                    rule):
    base = tmp_path_factory.getbasetemp()
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    with commits_by_rule_1() if rule == 1 else contextlib.nullcontext():
        ok("commit", facts_files(base)["a"], "-m", "a", cwd=repo_dir)
    ok("commit", facts_files(base)["b"], "-m", "b", cwd=repo_dir)
    ok("squash", "base", cwd=repo_dir)


def test_a_clone_of_a_history_of_rule_1_commits_by_rule_2(tmp_path_factory, tmp_path):
    """A clone takes its settings from the last commit's record; one made by rule 1 would
    have carried the old rule into every commit of the clone."""
    from cli_support import model_dir

    base = tmp_path_factory.getbasetemp()
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    with commits_by_rule_1():
        ok("commit", facts_files(base)["b"], "-m", "b", cwd=repo_dir)
    ok("remote", "add", "origin", f"file://{tmp_path / 'remote'}", cwd=repo_dir)
    ok("push", cwd=repo_dir)
    ok("clone", f"file://{tmp_path / 'remote'}", tmp_path / "clone", "--base", model_dir(base))
    with Repository.open(tmp_path / "clone") as repo:
        assert repo.settings.token_rule == 2
        assert repo.settings.z_steps == 5  # the rest is the last commit's


def test_rule_1_keeps_an_appended_eos_and_rule_2_drops_it():
    from tokenizers import processors

    tok = tiny_tokenizer(add_bos=True)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)])
    ids1, at1 = subject_last_token(tok, "{} plays", "Michael Jordan", rule=1)
    ids2, at2 = subject_last_token(tok, "{} plays", "Michael Jordan", rule=2)
    assert ids1 == ids2 + [eos] and at1 == at2
    assert not read_alike(tok, ["{}"], "{} plays", "Michael Jordan")


def test_a_set_recording_no_rule_is_not_replayed_where_the_rules_read_apart(
        tmp_path_factory, tmp_path, monkeypatch):
    """memstore before 415216c wrote its sets by rule 1 and said nothing; memstore from then
    until the rule was recorded (c24c1f6, which users have) by rule 2 and said nothing too.
    A replay of such a 'José' (revert of an earlier commit, squash) cannot tell where its
    keys were read: refused in one line, nothing written; one read alike replays."""
    base = tmp_path_factory.getbasetemp()
    repo_dir = copy_repo(empty_template(base), tmp_path / "repo")
    c1 = last_line(ok("commit", facts_files(base)["a"], "-m", "a", cwd=repo_dir))
    to_dict = EditSettings.to_dict
    with monkeypatch.context() as m:  # as c24c1f6 wrote them: rule 2, no token_rule
        m.setattr(EditSettings, "to_dict",
                  lambda self: {k: v for k, v in to_dict(self).items() if k != "token_rule"})
        c2 = last_line(ok("commit", write_facts(tmp_path / "jose.jsonl", JOSE), "-m", "José",
                          cwd=repo_dir))
        c3 = last_line(ok("commit", facts_files(base)["b"], "-m", "b", cwd=repo_dir))
    with Repository.open(repo_dir) as repo:
        assert "token_rule" not in repo.get_commit(c2).update_sets[0].settings
    before = snapshot(repo_dir)
    for args in (("revert", c1), ("squash", "base")):
        r = run(*args, cwd=repo_dir)
        assert r.exit_code == 1, r.output
        assert (f"the request 'José' / '{{}} plays' -> 'tennis' (commit {c2[:12]}) was written "
                "by a memstore that recorded no token rule") in r.output
        assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
        assert snapshot(repo_dir) == before
    ok("revert", c2, cwd=repo_dir)  # the way out: c3 ('Michael Jordan', read alike) replays
    assert c3[:12] in ok("log", "-n", "1", cwd=repo_dir).output
