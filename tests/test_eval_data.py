"""Readers: the real evaluation files, format detection, and one-line errors."""
import json
from pathlib import Path

import pytest

from memstore.editing.requests import Request
from memstore.errors import ValidationError
from memstore.eval.data import (
    read_counterfact,
    read_counterfact_records,
    read_requests_file,
    read_zsre,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} absent")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- real files -------------------------------------------------------------------------------


@needs_data
def test_counterfact_rome_format():
    records = read_counterfact_records(DATA / "counterfact-dev.json")
    assert len(records) == 821
    first = records[0]
    r = first.request
    assert (r.case_id, r.subject, r.prompt, r.relation_id) == (18, "Porsche 911", "{}, created by", "P176")
    assert (r.target_new, r.target_true) == ("Honda", "Porsche")
    assert len(r.paraphrases) == 2 and len(r.neighborhood) == 10
    assert r.neighborhood[0] == "Porsche RS Spyder is produced by"
    assert len(first.generation_prompts) == 10 and len(first.attribute_prompts) == 10
    assert all(rec.request.prompt.count("{}") == 1 for rec in records)


@needs_data
def test_reduced_format_matches_rome_format():
    rome = {r.case_id: r for r in read_counterfact(DATA / "counterfact-dev.json")}
    reduced = read_counterfact(DATA / "counterfact-easyedit-dev.json")
    assert len(reduced) == 11018
    shared = [r for r in reduced if r.case_id in rome]
    assert len(shared) == 821
    for r in shared:
        full = rome[r.case_id]
        assert (r.prompt, r.subject, r.target_new, r.target_true) == (
            full.prompt, full.subject, full.target_new, full.target_true
        )
        assert len(r.paraphrases) == 1 and len(r.neighborhood) == 1


@needs_data
def test_zsre():
    records = read_zsre(DATA / "zsre-dev.json")
    assert len(records) == 500
    first = records[0]
    assert first.request.prompt == "When was the inception of {}?"
    assert first.request.subject == "IAAF Combined Events Challenge"
    assert first.request.target_new == "1998"
    assert first.request.paraphrases == ("When was the IAAF Combined Events Challenge launched?",)
    assert first.loc_ans == "The String" and first.loc.startswith("nq question: ")


@needs_data
@pytest.mark.parametrize(
    "name, count",
    [("counterfact-dev.json", 821), ("counterfact-easyedit-dev.json", 11018), ("zsre-dev.json", 500)],
)
def test_read_requests_file_detects_every_format(name, count):
    requests = read_requests_file(DATA / name)
    assert len(requests) == count
    assert all(isinstance(r, Request) and r.prompt.count("{}") == 1 for r in requests)


# -- memstore's own format and detection ----------------------------------------------------------


def test_memstore_jsonl_and_mixed_formats(tmp_path):
    own = Request("Paris", "{} is the capital of", "Italy", "France", ("Paris is in",), ("Lyon is in",))
    rome = {
        "case_id": 7,
        "requested_rewrite": {
            "prompt": "The mother tongue of {} is", "subject": "Danielle Darrieux",
            "relation_id": "P103", "target_new": {"str": "English"}, "target_true": {"str": "French"},
        },
        "paraphrase_prompts": ["Danielle Darrieux speaks"],
        "neighborhood_prompts": ["Léon Blum speaks"],
    }
    reduced = {"prompt": "Toko Yasuda plays the", "subject": "Toko Yasuda", "target_new": "piano",
               "ground_truth": "guitar", "rephrase_prompt": "Toko Yasuda is a", "locality_prompt": "X plays"}
    bare = {"subject": "Rome", "prompt": "Rome, the capital of", "target_new": "Spain"}
    path = write_lines(tmp_path / "facts.jsonl", [json.dumps(x) for x in (own.to_dict(), rome, reduced, bare)])
    got = read_requests_file(path)
    assert got[0] == own
    assert got[1] == Request("Danielle Darrieux", "The mother tongue of {} is", "English", "French",
                             ("Danielle Darrieux speaks",), ("Léon Blum speaks",), 7, "P103")
    assert got[2] == Request("Toko Yasuda", "{} plays the", "piano", "guitar", ("Toko Yasuda is a",), ("X plays",))
    assert got[3] == Request("Rome", "{}, the capital of", "Spain")


def test_subject_replaced_once_and_targets_kept_as_given():
    [r] = read_counterfact([{"subject": "Jordan", "prompt": "Jordan of Jordan plays",
                            "target_new": "golf  club", "target_true": "basketball"}])
    assert r.prompt == "{} of Jordan plays"
    assert r.target_new == "golf  club"  # scoring adds the space before it
    with pytest.raises(ValidationError, match=r"^record 1: target_new 'golf ' begins or ends"):
        read_counterfact([{"subject": "Jordan", "prompt": "{} plays", "target_new": "golf "}])


def test_json_list_file(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps([{"subject": "A", "prompt": "{} is", "target_new": "b"}]))
    assert read_requests_file(path) == [Request("A", "{} is", "b")]


# -- errors ---------------------------------------------------------------------------------------


def error_of(path) -> str:
    with pytest.raises(ValidationError) as e:
        read_requests_file(path)
    return str(e.value)


GOOD = '{"subject": "A", "prompt": "{} is", "target_new": "b"}'


def test_invalid_json_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "facts.jsonl", [GOOD, "", '{"subject": "A", "prompt": '])
    assert error_of(path).startswith("facts.jsonl line 3: invalid JSON (")


def test_missing_field_names_line(tmp_path):
    path = write_lines(tmp_path / "facts.jsonl", [GOOD, '{"subject": "A", "prompt": "{} is"}'])
    assert error_of(path) == "facts.jsonl line 2: missing field 'target_new'"


def test_missing_nested_field_in_json_list(tmp_path):
    rome = {"requested_rewrite": {"prompt": "{} is", "subject": "A", "target_new": {"id": "Q1"}}}
    path = tmp_path / "cf.json"
    path.write_text(json.dumps([json.loads(GOOD), rome]))
    assert error_of(path) == "cf.json record 2: missing field 'requested_rewrite.target_new.str'"


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"subject": "A", "prompt": "{} is", "target_new": 3}', "field 'target_new' must be a string"),
        ('{"subject": "A", "prompt": "B is", "target_new": "c"}', "must contain '{}' or the subject 'A'"),
        ('{"subject": "A", "prompt": "{} is", "target_new": " "}', "empty target_new"),
        ('{"subject": "A", "prompt": "{} is", "target_new": "c", "paraphrases": [1]}',
         "field 'paraphrases' must be a list of strings"),
        ("[1, 2]", "expected a JSON object, got a list"),
    ],
)
def test_bad_records(tmp_path, line, message):
    path = write_lines(tmp_path / "f.jsonl", [GOOD, line])
    got = error_of(path)
    assert got.startswith("f.jsonl line 2: ") and message in got


def test_bad_json_list_reports_line(tmp_path):
    path = tmp_path / "cf.json"
    path.write_text('[\n  {"subject": "A"},\n  oops\n]')
    assert error_of(path).startswith("cf.json line 3: invalid JSON (")


def test_missing_and_empty_files(tmp_path):
    assert error_of(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: no such file"
    assert error_of(write_lines(tmp_path / "empty.jsonl", [""])) == "empty.jsonl: no records"


def test_empty_targets_and_answers_are_named_by_record(tmp_path):
    flat = tmp_path / "f.jsonl"
    flat.write_text(json.dumps({"subject": "Paris", "prompt": "{} is in", "target_new": "Rome",
                                "target_true": ""}) + "\n")
    with pytest.raises(ValidationError, match="f.jsonl line 1: empty target_true"):
        read_counterfact_records(flat)
    one = {"subject": "Watts Humphrey", "src": "What university did Watts Humphrey attend?",
           "answers": ["University of Michigan"], "rephrase": "Which university?",
           "loc": "nq question: who played desmond", "loc_ans": "Ian McShane"}
    z = [one, {**one, "loc_ans": " "}]
    (tmp_path / "z.json").write_text(json.dumps(z))
    with pytest.raises(ValidationError, match="z.json record 2: field 'loc_ans' is empty"):
        read_zsre(tmp_path / "z.json")


@pytest.mark.parametrize("blank", ["", " \n"])
def test_blank_generation_prompt_is_refused(tmp_path, blank):
    """GE generates from every generation prompt: an empty one gave `memstore eval
    --generation` a traceback from the model (no input ids)."""
    record = {"requested_rewrite": {"prompt": "The capital of {} is", "subject": "France",
                                    "target_new": {"str": "Rome"},
                                    "target_true": {"str": "Paris"}},
              "paraphrase_prompts": ["France's capital is"],
              "generation_prompts": ["France is", blank]}
    path = tmp_path / "cf.json"
    path.write_text(json.dumps([record]))
    with pytest.raises(ValidationError) as e:
        read_counterfact_records(path)
    assert str(e.value) == "cf.json record 1: generation_prompts 2 is blank"
    record["generation_prompts"] = ["France is"]
    path.write_text(json.dumps([record]))
    assert read_counterfact_records(path)[0].generation_prompts == ("France is",)


def test_a_locality_answer_other_than_the_true_object_is_refused(tmp_path):
    """NS compares the true object with target_new on the locality prompt: a record whose
    locality_ground_truth is another object was scored against the edit's true object
    instead, without a word."""
    record = {"case_id": 1, "subject": "Danielle Darrieux", "target_new": "English",
              "prompt": "The mother tongue of Danielle Darrieux is", "ground_truth": "French",
              "rephrase_prompt": "Danielle Darrieux speaks",
              "locality_prompt": "The mother tongue of Michael Jordan is",
              "locality_ground_truth": "English"}
    path = tmp_path / "ee.json"
    path.write_text(json.dumps([record]))
    with pytest.raises(ValidationError) as e:
        read_counterfact_records(path)
    assert str(e.value).startswith("ee.json record 1: locality_ground_truth 'English' is not "
                                   "the true object 'French'")
    path.write_text(json.dumps([{**record, "locality_ground_truth": "French"}]))
    r = read_counterfact_records(path)[0].request
    assert (r.target_true, r.neighborhood) == ("French", ("The mother tongue of Michael Jordan is",))


def test_target_true_and_ground_truth_that_differ_are_refused(tmp_path):
    """ground_truth is EasyEdit's name for target_true: given both, ground_truth was
    dropped without a word, and ES/PS/NS measured against target_true alone."""
    fact = {"subject": "France", "prompt": "The capital of {} is", "target_new": "Rome",
            "target_true": "Paris"}
    path = write_lines(tmp_path / "f.jsonl", [json.dumps({**fact, "ground_truth": "Lyon"})])
    with pytest.raises(ValidationError) as e:
        read_counterfact_records(path)
    assert str(e.value) == ("f.jsonl line 1: target_true 'Paris' and ground_truth 'Lyon' "
                            "(EasyEdit's name for it) differ")
    path = write_lines(tmp_path / "f.jsonl", [json.dumps({**fact, "ground_truth": "Paris"})])
    assert read_counterfact_records(path)[0].request.target_true == "Paris"


def test_an_easyedit_record_with_an_unknown_field_is_told_easyedit_fields(tmp_path):
    """An EasyEdit record with a field of neither format was told memstore's own fields
    (target_true, paraphrases, neighborhood), not the EasyEdit names it was written in."""
    record = {"prompt": "Toko Yasuda plays the", "subject": "Toko Yasuda", "target_new": "piano",
              "ground_truth": "guitar", "source": "wiki"}
    path = write_lines(tmp_path / "ee.jsonl", [json.dumps(record)])
    with pytest.raises(ValidationError) as e:
        read_requests_file(path)
    assert ("unknown field 'source' (the fields of EasyEdit's format are subject, prompt, "
            "target_new, ground_truth, rephrase_prompt, locality_prompt, locality_ground_truth, "
            "case_id, relation_id)") in str(e.value)
