"""What `memstore commit FILE` makes of what a user may feed it: a mistake is refused in
ONE line naming the file, the line and the problem (exit 2, nothing written); what an
editor or another tool writes routinely (a byte order mark, CRLF line endings, blank lines,
the decomposed spelling of a name) is read as the user meant it."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    history_template,
    last_line,
    log_json,
    model_dir,
    ok,
    run,
    snapshot,
)
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from cli.main import cli
from memstore.errors import ValidationError
from memstore.eval.data import read_requests_file

# Not on the history template's branch (facts a, b, c); "Michael Jordan" / "{} plays" is.
FACT = {"subject": "Honda Civic", "prompt": "{} is produced by", "target_new": "Apple"}
OTHER = {"subject": "Apple A5", "prompt": "{} was created by", "target_new": "Microsoft"}
LIVE = {"subject": "Michael Jordan", "prompt": "{} plays", "target_new": "soccer"}


@pytest.fixture
def repo(base, tmp_path):
    template, _ = history_template(base)
    return copy_repo(template, tmp_path / "repo")


def facts(tmp_path, name: str, *records, sep: bytes = b"\n", head: bytes = b"") -> str:
    p = tmp_path / name
    body = sep.join(r if isinstance(r, bytes) else
                    (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)).encode()
                    for r in records)
    p.write_bytes(head + body + sep)
    return str(p)


def refused(repo, file: str, says: str) -> str:
    before = snapshot(repo)
    line = error_line(run("commit", file, cwd=repo), 2, says)
    assert snapshot(repo) == before
    return line


def test_a_byte_order_mark_and_crlf_line_endings_are_read(repo, tmp_path):
    f = facts(tmp_path, "win.jsonl", FACT, b"", OTHER, sep=b"\r\n", head=b"\xef\xbb\xbf")
    ok("commit", f, cwd=repo)
    assert log_json(repo)[0]["n_requests"] == 2
    listed = facts(tmp_path, "win.json", json.dumps([FACT]).encode(), head=b"\xef\xbb\xbf")
    assert [r.subject for r in read_requests_file(listed)] == ["Honda Civic"]


def test_bytes_that_are_not_utf8_are_named_by_line(repo, tmp_path):
    f = facts(tmp_path, "latin1.jsonl", FACT, '{"subject": "Jos\u00e9"}'.encode("latin-1"))
    refused(repo, f, "latin1.jsonl line 2: not UTF-8 text (byte 0xe9 at column 17)")


def test_a_field_given_twice_is_refused_not_last_one_wins(repo, tmp_path):
    twice = b'{"subject": "Honda Civic", "prompt": "{} is produced by", ' \
            b'"target_new": "Apple", "target_new": "Sony"}'
    refused(repo, facts(tmp_path, "twice.jsonl", OTHER, twice),
            "twice.jsonl line 2: field 'target_new' given twice")
    nested = {"requested_rewrite": {"prompt": "{} is produced by", "subject": "Honda Civic",
                                    "target_new": {"str": "Apple"}}}
    raw = json.dumps([nested]).replace('{"str": "Apple"}', '{"str": "Apple", "str": "Sony"}')
    refused(repo, facts(tmp_path, "twice.json", raw), "twice.json record 1: field 'str' given twice")


@pytest.mark.parametrize("key, hint", [("targt_true", "did you mean 'target_true'?"),
                                       ("paraphrase", "did you mean 'paraphrases'?"),
                                       ("source", "the fields are subject, prompt, target_new")])
def test_an_unknown_field_is_refused_not_ignored(repo, tmp_path, key, hint):
    f = facts(tmp_path, "typo.jsonl", OTHER, {**FACT, key: "Honda"})
    line = refused(repo, f, f"typo.jsonl line 2: unknown field {key!r} ({hint}")
    assert line.endswith(")")


def test_whitespace_around_the_subject_or_ending_the_prompt_is_refused(repo, tmp_path):
    # 'Michael Jordan ' would be another fact than the live 'Michael Jordan': no conflict
    padded = facts(tmp_path, "pad.jsonl", {**LIVE, "subject": "Michael Jordan ",
                                           "target_new": "golf"})
    refused(repo, padded, "pad.jsonl line 1: the subject 'Michael Jordan ' begins or ends "
                          "with whitespace")
    lead = facts(tmp_path, "lead.jsonl", {**FACT, "subject": "\tHonda Civic"})
    refused(repo, lead, "lead.jsonl line 1: the subject '\\tHonda Civic' begins or ends")
    trail = facts(tmp_path, "trail.jsonl", OTHER, {**FACT, "prompt": "{} is produced by "})
    refused(repo, trail, "trail.jsonl line 2: the prompt '{} is produced by ' ends with "
                         "whitespace")


def test_an_invisible_character_at_an_edge_is_refused_as_whitespace_is(repo, tmp_path):
    # 'Michael Jordan\u200b' was another fact than the live 'Michael Jordan': its
    # contradiction was written beside it, exit 0, both live
    zw = facts(tmp_path, "zw.jsonl", {**LIVE, "subject": "Michael Jordan\u200b",
                                      "target_new": "golf"})
    refused(repo, zw, "zw.jsonl line 1: the subject 'Michael Jordan\\u200b' begins or ends "
                      "with the invisible character U+200B")
    joiner = facts(tmp_path, "wj.jsonl", OTHER, {**FACT, "target_new": "\u2060Apple"})
    refused(repo, joiner, "wj.jsonl line 2: target_new '\\u2060Apple' begins or ends with the "
                          "invisible character U+2060")
    mark = facts(tmp_path, "rlm.jsonl", {**FACT, "prompt": "{} is produced by\u200f"})
    refused(repo, mark, "rlm.jsonl line 1: the prompt '{} is produced by\\u200f' ends with the "
                        "invisible character U+200F")
    flag = "Scotland \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert ok("commit", facts(tmp_path, "flag.jsonl", {**FACT, "subject": flag}), cwd=repo)


def test_ask_warns_of_a_prompt_ending_as_a_facts_may_not_and_answers_it(repo):
    """`ask "The capital of Kenya is "` answered '2018' on SmolLM2 with no word, where
    commit refuses that prompt: one warning line on stderr, the answer still given (a user
    may mean it). A final newline is taken as meant; the same prompt without the space,
    nothing."""
    r = ok("ask", "The capital of Kenya is ", "--max-tokens", "1", cwd=repo)
    said = ("warning: the prompt ends with whitespace (asked as written; the model expects "
            "the answer's first word to bring its own space, and commit refuses such a prompt "
            "in a fact)")
    assert r.stderr.splitlines() == [said]
    assert r.stdout.startswith("The capital of Kenya is ") and len(r.stdout.splitlines()) == 1
    for meant in ("The capital of Kenya is", "Q: the capital of Kenya?\n"):
        assert ok("ask", meant, "--max-tokens", "1", cwd=repo).stderr == ""
    zw = ok("ask", "The capital of Kenya is\u200b", "--max-tokens", "1", "--json", cwd=repo)
    assert zw.stderr.startswith("warning: the prompt ends with the invisible character "
                                "U+200B (asked as written")
    assert json.loads(zw.stdout)["prompt"] == "The capital of Kenya is\u200b"


def test_a_mistake_in_a_long_prompt_is_one_readable_line(repo, tmp_path):
    # the prompt was repeated whole, twice: a 2,000-character prompt made a line of 4,189
    long = {**FACT, "subject": "Hond", "prompt": "{}a Civic is produced by" + " the" * 500}
    line = refused(repo, facts(tmp_path, "long.jsonl", long),
                   "long.jsonl line 1: cannot locate the subject 'Hond'")
    assert len(line) < 700 and "…" in line


def test_a_paraphrase_with_braces_for_the_subject_is_refused(repo, tmp_path):
    # paraphrases are scored as written: '{} makes cars' measured the paraphrase score on
    # the text '{} makes cars', exit 0
    para = facts(tmp_path, "para.jsonl", {**FACT, "paraphrases": ["{} makes cars"]})
    refused(repo, para, "para.jsonl line 1: paraphrases 1 '{} makes cars' holds '{}': "
                        "paraphrases prompts are whole texts")
    near = facts(tmp_path, "near.jsonl", OTHER, {**FACT, "neighborhood": ["Toyota", "{} is"]})
    refused(repo, near, "near.jsonl line 2: neighborhood 2 '{} is' holds '{}'")


def test_the_decomposed_spelling_of_a_name_is_the_same_fact(repo, tmp_path):
    nfc, nfd = "Jos\u00e9 Mourinho", unicodedata.normalize("NFD", "Jos\u00e9 Mourinho")
    assert nfc != nfd
    fact = {"subject": nfc, "prompt": "{} plays", "target_new": "chess"}
    both = facts(tmp_path, "both.jsonl", fact, {**fact, "subject": nfd, "target_new": "golf"})
    refused(repo, both, "both.jsonl line 1 and both.jsonl line 2: conflicting requests")
    same = facts(tmp_path, "same.jsonl", fact, {**fact, "subject": nfd})
    r = json.loads(ok("commit", same, "--json", cwd=repo).stdout)
    assert r["n_facts"] == 1 and r["message"] == "1 fact from same.jsonl"  # written once
    # a later file in the other spelling contradicts the live fact
    later = facts(tmp_path, "later.jsonl", {**fact, "subject": nfd, "target_new": "golf"})
    refused(repo, later, "later.jsonl line 1: 'José Mourinho' / '{} plays' -> 'golf' "
                         "conflicts with 'chess', live since commit")
    assert ok("show", "HEAD", "--json", cwd=repo).stdout.count(nfd) == 0


def test_a_prompt_whose_only_braces_are_escaped_is_refused(repo, tmp_path):
    # '{{}}' formats to a literal '{}': the subject was written nowhere in the prompt, and
    # the fact keyed at the '}' token, exit 0
    f = facts(tmp_path, "esc.jsonl", OTHER, {**FACT, "prompt": "{{}} is produced by"})
    refused(repo, f, "esc.jsonl line 2: the prompt must contain exactly one '{}' where the "
                     "subject goes ('{{}}' is a literal '{}')")


def test_checks_made_with_the_model_name_the_line(repo, tmp_path):
    long = {**FACT, "prompt": "{} is produced by" + " a" * 300}
    f = facts(tmp_path, "long.jsonl", OTHER, "", long)  # a blank line 2: line 3 is record 2
    refused(repo, f, "long.jsonl line 3: ")
    split = facts(tmp_path, "split.jsonl", OTHER, OTHER, {**FACT, "subject": "Hond",
                                                          "prompt": "{}a Civic is produced by"})
    # the repeated line 1/2 is written once: the origin of line 3 must survive it
    refused(repo, split, "split.jsonl line 3: cannot locate the subject 'Hond'")
    live = facts(tmp_path, "live.jsonl", OTHER, {**LIVE, "target_new": "golf"})
    refused(repo, live, "live.jsonl line 2: 'Michael Jordan' / '{} plays' -> 'golf' "
                        "conflicts with 'soccer'")


@pytest.mark.parametrize("value, kind", [("[1]", "a list"), ("3", "a number"),
                                         ("null", "null"), ('"x"', "a string")])
def test_a_line_that_is_not_an_object_says_what_it_is(repo, tmp_path, value, kind):
    refused(repo, facts(tmp_path, "v.jsonl", FACT, value),
            f"v.jsonl line 2: expected a JSON object, got {kind}")


def test_one_object_over_several_lines_is_told_apart_from_broken_json(repo, tmp_path):
    pretty = facts(tmp_path, "pretty.json", json.dumps(FACT, indent=2))
    refused(repo, pretty, "pretty.json: one JSON object over several lines; a facts file "
                          "holds one object per line (JSONL) or a JSON list")
    broken = facts(tmp_path, "broken.jsonl", '{\n  "subject": "Honda Civic",')
    refused(repo, broken, "broken.jsonl line 1: invalid JSON")


def test_a_target_the_model_already_predicts_is_written_as_a_fact(base, tmp_path):
    """Not an error (README, Commands: commit): the fact is recorded, strengthened, and
    protected against a contradiction like any other."""
    repo = copy_repo(empty_template(base), tmp_path / "empty")
    for subject, prompt in [("Honda Civic", "{} plays the"), ("Apple A5", "{} plays"),
                            ("Porsche 911", "{} was created by")]:
        got = json.loads(ok("ask", prompt.format(subject), "--max-tokens", "1", "--json",
                            cwd=repo).stdout)
        predicted = got["answers"][0]["completion"]
        if predicted.startswith(" ") and predicted.strip().isalpha():
            break
    else:  # the tiny random model's next token is no word for any of them
        pytest.skip("no prompt whose next token is a word")
    fact = {"subject": subject, "prompt": prompt, "target_new": predicted.strip()}
    c = last_line(ok("commit", facts(tmp_path, "known.jsonl", fact), cwd=repo))
    assert log_json(repo)[0]["id"] == c
    refused(repo, facts(tmp_path, "contra.jsonl", {**fact, "target_new": "Sony"}),
            "conflicts with")


def test_the_library_reader_refuses_in_one_line(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_bytes(b'{"subject": "A", "prompt": "{} is", "target_new": "b", "neighbourhood": []}\n')
    with pytest.raises(ValidationError, match=r"^f.jsonl line 1: unknown field 'neighbourhood' "
                                              r"\(did you mean 'neighborhood'\?\)$"):
        read_requests_file(p)


def test_whitespace_around_a_target_is_refused(repo, tmp_path):
    # ' golf' reads as the tokens of 'golf' but would be another target than the live one
    lead = facts(tmp_path, "lead.jsonl", {**LIVE, "target_new": " soccer"})
    refused(repo, lead, "lead.jsonl line 1: target_new ' soccer' begins or ends with whitespace")
    true = facts(tmp_path, "true.jsonl", OTHER, {**FACT, "target_true": "Honda\n"})
    refused(repo, true, "true.jsonl line 2: target_true 'Honda\\n' begins or ends")


def stdin_commit(repo, data: bytes, *args: str):
    return CliRunner().invoke(cli, ["-C", str(repo), "commit", "-", *args], input=data,
                              catch_exceptions=False)


def test_facts_are_read_from_standard_input_for_a_dash(repo, tmp_path):
    data = (json.dumps(FACT) + "\n\n" + json.dumps(OTHER) + "\n").encode()
    r = stdin_commit(repo, data, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["n_facts"] == 2 and d["message"] == "2 facts from stdin"
    added = json.loads(ok("show", "HEAD", "--json", cwd=repo).stdout)["facts"]["added"]
    assert {f["subject"] for f in added} == {"Honda Civic", "Apple A5"}
    # a mistake read from stdin is named by its line there, and changes nothing
    before = snapshot(repo)
    bad = stdin_commit(repo, b"\n" + json.dumps({**LIVE, "subject": "Michael Jordan "}).encode())
    error_line(bad, 2, "stdin line 2: the subject 'Michael Jordan ' begins or ends")
    error_line(stdin_commit(repo, b""), 2, "stdin: no records")
    assert snapshot(repo) == before


def test_eval_reads_standard_input_once_for_a_dash(repo, tmp_path):
    """`memstore eval -` read stdin to tell zsRE from CounterFact, then again to parse it:
    the second read found nothing, and it printed n = 0 and no metrics, exit 0."""
    zsre = {"subject": "Michael Jordan", "src": "What sport does Michael Jordan play?",
            "answers": ["basketball"], "rephrase": "Which sport is Michael Jordan's?",
            "loc": "nq question: who wrote the song", "loc_ans": "The String"}
    files = {"cf.jsonl": [{**LIVE, "target_true": "basketball", "paraphrases": ["He plays"]},
                          {**FACT, "target_true": "Honda"}],
             "zsre.json": [zsre, {**zsre, "answers": ["soccer"]}]}
    for name, records in files.items():
        path = tmp_path / name
        if name.endswith(".json"):
            path.write_text(json.dumps(records))
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        from_file = json.loads(ok("eval", path, "--json", cwd=repo).stdout)
        r = CliRunner().invoke(cli, ["-C", str(repo), "eval", "-", "--json"],
                               input=path.read_bytes(), catch_exceptions=False)
        assert r.exit_code == 0, r.output
        from_stdin = json.loads(r.stdout)
        assert from_stdin["n"] == 2 and from_stdin["efficacy"] is not None
        assert from_stdin == from_file
    error_line(CliRunner().invoke(cli, ["-C", str(repo), "eval", "-"], input=b""), 2,
               "stdin: no records")


def test_eval_names_both_reasons_a_fact_is_skipped(repo, tmp_path):
    """A fact whose target_true is its target_new cannot be compared and is skipped like
    one without target_true; the line said all were 'without target_true'."""
    f = facts(tmp_path, "cf.jsonl", {**FACT, "target_true": "Apple"}, OTHER,
              {**LIVE, "target_true": "basketball"})
    first = ok("eval", f, cwd=repo).stdout.splitlines()[0]
    assert first.endswith("n = 1 (2 skipped: no target_true, or it is target_new)")


def test_eval_by_relation_shows_a_relation_with_control_characters_escaped(repo, tmp_path):
    """A relation_id is the file's text: its line break started a line of the table (and
    an escape sequence reached the terminal)."""
    f = facts(tmp_path, "cf.jsonl", {**FACT, "target_true": "Honda",
                                     "relation_id": "P1\nforged row\x1b[2J"})
    out = ok("eval", f, "--by-relation", cwd=repo).stdout
    row = [line for line in out.splitlines() if "P1" in line]
    assert len(row) == 1 and "P1\\nforged row\\x1b[2J" in row[0], out
    assert "\x1b" not in out and "forged" not in out.replace(row[0], "")


def test_a_file_named_dash_is_not_stdin_for_the_library(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text(json.dumps(FACT) + "\n")
    assert [r.subject for r in read_requests_file(Path("-"))] == ["Honda Civic"]


def test_a_prompt_that_fits_only_without_the_prefix_templates_is_refused(repo, base, tmp_path):
    # the prompt and its target fill the tiny model's 128 positions; the z-vectors read it
    # behind a sampled prefix too: GPT-2 failed there with a traceback, this RoPE model
    # read past its context and the commit exited 0
    tok = AutoTokenizer.from_pretrained(model_dir(base))
    prompt = FACT["prompt"]
    while len(tok((prompt + " the").format(FACT["subject"]) + " Apple").input_ids) <= 128:
        prompt += " the"
    f = facts(tmp_path, "full.jsonl", OTHER, {**FACT, "prompt": prompt})
    ok("config", "mom2_weight", "1", cwd=repo)  # a warning: said only once the checks pass
    refused(repo, f, "full.jsonl line 2 behind the sampled prefix template 1 (n_templates 1, "
                     "template_tokens 4): ")


def test_eval_names_the_line_of_a_record_too_long_for_the_model(repo, tmp_path):
    long = {**FACT, "prompt": "{} is produced by" + " a" * 300}
    f = facts(tmp_path, "ev.jsonl", OTHER, "", "", long)  # two blank lines: record 2 on line 4
    before = snapshot(repo)
    error_line(run("eval", f, cwd=repo), 2, "ev.jsonl line 4: ")
    assert snapshot(repo) == before


def test_eval_live_lists_facts_quoted_as_show_does(base, tmp_path):
    # a line break or a terminal escape in a fact (one pulled from a remote, say) was
    # printed as it is by the listing of the facts not recalled: '\r' moved the cursor
    # back over the fact, an escape on a terminal could erase or recolour the line
    repo = copy_repo(empty_template(base), tmp_path / "empty")
    fact = {**FACT, "target_new": "Apple\r\x1b[2Kall facts recalled"}
    ok("commit", facts(tmp_path, "ctl.jsonl", fact), cwd=repo)
    out = ok("eval", "--live", cwd=repo).stdout
    assert "\r" not in out and "\x1b" not in out and "not recalled (1;" in out
    assert "'Honda Civic' / '{} is produced by' -> 'Apple\\r\\x1b[2Kall facts recalled'" in out


def test_eval_generation_leaves_room_for_the_tokens_it_generates(repo, tmp_path):
    # 90 tokens are generated after each prompt: a prompt that fit the context alone ran
    # past it (GPT-2's position table: an IndexError traceback; this RoPE model: exit 0)
    long = {**FACT, "target_true": "Honda", "prompt": "{} is produced by" + " the" * 40}
    f = facts(tmp_path, "gen.jsonl", {**OTHER, "target_true": "Google"}, long)
    ok("eval", f, cwd=repo)  # the scoring reads the prompts alone: they fit
    before = snapshot(repo)
    error_line(run("eval", f, "--generation", cwd=repo), 2,
               "gen.jsonl line 2 generation prompt: ")
    assert "longer than the 128-token context less the 90 tokens --generation writes, a room " \
           "of 38 tokens" in run("eval", f, "--generation", cwd=repo).stderr
    assert snapshot(repo) == before


def test_a_filled_in_prompt_with_braces_of_its_own_is_read_as_written(tmp_path):
    # the EasyEdit format: the subject written in the prompt, which became '{}' while the
    # prompt's own braces stayed format fields ('In {x}, …': 'prompt cannot be formatted')
    f = facts(tmp_path, "filled.jsonl",
              {"subject": "Honda Civic", "prompt": "In {x} and }{, Honda Civic is produced by",
               "target_new": "Apple"})
    (r,) = read_requests_file(f)
    assert r.prompt == "In {{x}} and }}{{, {} is produced by"
    assert r.text == "In {x} and }{, Honda Civic is produced by"


def test_the_memory_estimate_counts_the_facts_that_share_one_key(repo, base, tmp_path,
                                                                 monkeypatch):
    # facts about one subject at the start of their prompts share one key, so one δ, and
    # are optimised in one chunk however many: 3,000 of them peaked at 2.2 GB against
    # 0.6 GB for 3,000 subjects on a tiny GPT-2, while the estimate counted z_chunk of them
    from memstore.editing import default_settings, memory
    from memstore.models.adapters import get_adapter
    from memstore.store import porcelain

    seen = []

    def spy(*args, **kwargs):
        seen.append(args[6] if len(args) > 6 else kwargs.get("largest_group"))
        raise ValidationError("estimated")

    monkeypatch.setattr(porcelain, "estimate_memory", spy)
    many = [{**FACT, "prompt": "{} is produced by" + " the" * i} for i in range(60)]
    refused(repo, facts(tmp_path, "one.jsonl", *many, OTHER), "estimated")
    assert seen == [60]
    model = AutoModelForCausalLM.from_pretrained(model_dir(base))
    s = default_settings(model, z_chunk=8)
    steps = [memory.estimate(model, get_adapter(model), s, 61, largest_group=g)
             .terms["z-vector steps"] for g in (1, 60)]
    assert steps[1] > steps[0]


def test_the_memory_estimate_counts_the_facts_own_suffixes_and_targets(repo, base, tmp_path,
                                                                       monkeypatch):
    # each z-vector step runs every row from the subject's last token to the target's last
    # but one, padded to the longest: the estimate assumed 16 tokens (and 4 of target)
    # whatever the facts, so for 16 facts whose prompts ran 93 tokens past the subject it
    # counted 0.56 GiB of z-vector steps on a 12-layer Llama of width 512, which peaked at
    # 3.2 GiB (found by the precision and width audit)
    from memstore.editing import memory
    from memstore.store import porcelain

    seen = []

    def spy(*args, **kwargs):
        seen.append(memory.estimate(*args, **kwargs).terms["z-vector steps"])
        raise ValidationError("estimated")

    monkeypatch.setattr(porcelain, "estimate_memory", spy)
    tok = AutoTokenizer.from_pretrained(model_dir(base))
    tail = " the" * 40
    target = " and".join([" Apple"] * 10)
    assert len(tok(tail).input_ids) == 40 and len(tok(target).input_ids) > 4 * 4
    for name, fact in (("short", FACT), ("prompt", {**FACT, "prompt": "{} is" + tail}),
                       ("target", {**FACT, "target_new": target.strip()})):
        refused(repo, facts(tmp_path, f"{name}.jsonl", fact), "estimated")
    short, long_prompt, long_target = seen
    assert long_prompt > 2 * short and long_target > 2 * short


def test_eval_of_zsre_counts_the_question_mark_it_reads_after_loc(repo, base, tmp_path):
    # specificity scores loc_ans after 'loc?': the check counted 'loc loc_ans', one token
    # short, so a question filling the context to the last token ran past it (exit 0 here)
    tok = AutoTokenizer.from_pretrained(model_dir(base))
    loc = "nq question: who wrote the song"
    while len(tok(f"{loc} the Apple").input_ids) <= 128:
        loc += " the"
    assert len(tok(f"{loc}? Apple").input_ids) > 128
    one = {"subject": "Honda Civic", "src": "Who produces Honda Civic?", "answers": ["Apple"],
           "loc": loc, "loc_ans": "Apple"}
    (tmp_path / "z.json").write_text(json.dumps([one]))
    before = snapshot(repo)
    error_line(run("eval", tmp_path / "z.json", cwd=repo), 2, "z.json record 1 loc: ")
    assert snapshot(repo) == before


def test_ask_and_probe_read_prompts_in_nfc_as_facts_are(base, tmp_path, monkeypatch):
    """Facts are read in Unicode NFC; a prompt typed with a decomposed 'é' reached the model
    as other tokens than the fact's, so `ask` and `diff --probe` did not show what the fact
    does."""
    import unicodedata

    from memstore.eval import generation

    repo = copy_repo(empty_template(base), tmp_path / "empty")
    seen: list[str] = []
    real = generation.greedy_generate

    def spy(model, tokenizer, prompts, **kw):
        seen.extend(prompts)
        return real(model, tokenizer, prompts, **kw)

    monkeypatch.setattr(generation, "greedy_generate", spy)
    decomposed = unicodedata.normalize("NFD", "The café Josée is in")
    ok("ask", decomposed, "--max-tokens", "1", cwd=repo)
    ok("diff", "base", "--probe", decomposed, "--max-tokens", "1", cwd=repo)
    assert seen and all(p == unicodedata.normalize("NFC", decomposed) for p in seen)


def test_a_number_of_thousands_of_digits_is_refused_in_one_line(repo, tmp_path):
    """Python's json reads a number into an int, and refuses one of more than 4300 digits
    with a ValueError that is no JSONDecodeError: it was a traceback (as a line, in a JSON
    list, and in a broken first line's check for one object over several lines)."""
    digits = "7" * 5000
    refused(repo, facts(tmp_path, "n.jsonl", digits), "n.jsonl line 1: a number of more than")
    refused(repo, facts(tmp_path, "c.jsonl", f'{{"case_id": {digits}, ' + json.dumps(FACT)[1:]),
            "c.jsonl line 1: a number of more than")
    refused(repo, facts(tmp_path, "l.json", f"[{digits}]"), "l.json: a number of more than")
    refused(repo, facts(tmp_path, "b.jsonl", "{", f'"x": {digits}}}'),
            "b.jsonl line 1: invalid JSON")
