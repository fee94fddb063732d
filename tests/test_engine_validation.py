"""Validation before any work: each mistake is an error naming the request; NaN/inf is an
error, never a silent bad edit."""
import pytest
import torch
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for, stats_for
from transformers import BatchEncoding

from memstore.editing import Request, execute_memit, validate_requests
from memstore.editing.solve import solve_layer
from memstore.errors import NumericalError, ValidationError


@pytest.fixture(scope="module")
def tiny():
    return build("gpt2")


@pytest.mark.parametrize("request_, message", [
    (Request("Paris", "The capital of France", "Rome"), "must contain exactly one '{}'"),
    (Request("Paris", "{} and {} are", "Rome"), "must contain exactly one '{}'"),
    (Request("Paris", "{{}} is in", "Rome"), "must contain exactly one '{}'"),
    (Request("  ", "{} is in", "Rome"), "empty subject"),
    (Request("Paris", "{} is in", ""), "empty target_new"),
    (Request("Micha", "{}el plays", "chess"), "cannot locate the subject 'Micha'"),
])
def test_each_mistake_names_the_request(tiny, request_, message):
    _, tok, _ = tiny
    with pytest.raises(ValidationError, match=message) as e:
        validate_requests([REQUESTS[0], request_], tok)
    if "locate" not in message:
        assert "request 2" in str(e.value)


def test_contradicting_requests_are_refused(tiny):
    _, tok, _ = tiny
    a = Request("Paris", "{} is in", "France")
    with pytest.raises(ValidationError, match="conflicting requests: 'Paris' / '{} is in'"):
        validate_requests([a, Request("Paris", "{} is in", "Italy")], tok)
    validate_requests([a, a, Request("Paris", "{} is the capital of", "Italy")], tok)


def test_no_requests_is_an_error(tiny):
    with pytest.raises(ValidationError, match="no requests"):
        validate_requests([], tiny[1])


def test_validation_happens_before_any_work(tiny, monkeypatch):
    model, tok, ad = tiny
    s = settings_for(model)
    stats = stats_for(model, tok, ad, s.layers)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from memstore.editing import memit

    monkeypatch.setattr(memit, "compute_zs", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValidationError):
        execute_memit(model, tok, [REQUESTS[0], Request("x", "no braces", "y")], s, stats,
                      templates=TEMPLATES, show_progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_inputs_that_would_fail_halfway_are_refused_first(tiny):
    """Statistics of another layer or width, z-vectors of another width, bad templates,
    requests that are not Requests or hold non-text: a ValidationError before any weight
    changes (the statistics of a wrong width failed in the second layer's solve, after the
    first layer was written)."""
    from dataclasses import replace

    model, tok, ad = tiny
    s = settings_for(model)
    stats = stats_for(model, tok, ad, s.layers)
    l1, l2 = s.layers
    width = model.config.get_text_config().hidden_size
    zs = torch.zeros(len(REQUESTS), width)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cases = [
        ({"stats": {l1: stats[l1], l2: replace(stats[l2], mom2=stats[l2].mom2[:4, :4])}},
         f"statistics for layer {l2}: expected"),
        ({"stats": {l1: stats[l2], l2: stats[l1]}}, f"got layer {l2}'s"),
        ({"zs": zs[:, :3]}, f"expected a tensor of n × {width}"),
        ({"zs": zs.tolist()}, "got list"),
        ({"templates": []}, "templates: expected a non-empty list"),
        ({"templates": ["hello"]}, "with one '{}'"),
        ({"requests": [{"subject": "a", "prompt": "{} b", "target_new": "c"}]},
         "expected a Request, got dict"),
        ({"requests": [Request("Paris", "{} is in", "Rome", target_true=5)]},
         "target_true must be text, not int"),
        ({"requests": [Request("Paris", "{} is in", "Rome", paraphrases=("  ",))]},
         "paraphrases 1 is blank"),
        ({"requests": [Request("Paris \udc80", "{} is in", "Rome")]}, "lone surrogate"),
    ]
    for change, says in cases:
        args = {"stats": stats, "zs": zs, "templates": TEMPLATES, "requests": REQUESTS, **change}
        with pytest.raises(ValidationError, match=says):
            execute_memit(model, tok, args["requests"], s, args["stats"], zs=args["zs"],
                          templates=args["templates"], show_progress=False)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), says


def test_layers_out_of_range_are_refused(tiny):
    model, tok, _ad = tiny
    s = settings_for(model, layers=(2, 7))
    with pytest.raises(ValidationError, match="layer 7 out of range"):
        execute_memit(model, tok, REQUESTS, s, {}, templates=TEMPLATES, show_progress=False)


def test_non_finite_values_are_errors(tiny):
    model, tok, ad = tiny
    s = settings_for(model)
    stats = stats_for(model, tok, ad, s.layers)
    bad = torch.full((len(REQUESTS), model.config.get_text_config().hidden_size), float("nan"))
    with pytest.raises(NumericalError):
        execute_memit(model, tok, REQUESTS, s, stats, zs=bad, templates=TEMPLATES,
                      show_progress=False)
    a = torch.eye(4, dtype=torch.float64)
    with pytest.raises(NumericalError):
        solve_layer(a, torch.ones(2, 4), torch.tensor([[1.0, float("inf")], [0.0, 0.0]]))


class SegmentingTokenizer:
    """A tokenizer that cuts text into the given pieces (to mimic BPE merges)."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def __call__(self, text, return_offsets_mapping=False):
        assert "".join(self.pieces) == text
        offsets, at = [], 0
        for p in self.pieces:
            offsets.append((at, at + len(p)))
            at += len(p)
        return BatchEncoding({"input_ids": list(range(len(self.pieces))), "offset_mapping": offsets})


def test_subject_whose_last_token_runs_into_punctuation_is_located():
    from memstore.editing.tokens import subject_last_token

    merged = SegmentingTokenizer(["tronc", ",", " Inc", ".,", " whose", " headquarters"])
    _ids, at = subject_last_token(merged, "{}, whose headquarters", "tronc, Inc.")
    assert at == 3  # the ".," token holds the subject's last character
    word = SegmentingTokenizer(["Michael", " plays"])
    with pytest.raises(ValidationError, match="runs on past it"):
        subject_last_token(word, "{}el plays", "Micha")


def test_escaped_braces_before_the_subject_do_not_move_its_token(tiny):
    """'{{' formats to one '{': the subject's last token was looked for as many characters
    further on as the prompt escaped braces before it (a punctuation token after it was
    taken as the key), and '{{}}' (a literal '{}', no subject at all) was keyed at '}'."""
    from memstore.editing.tokens import subject_last_token

    _, tok, _ = tiny
    for prompt in ("In {{20}} {}, , , , played", "{{x}}{} ... played"):
        ids, at = subject_last_token(tok, prompt, "Michael Jordan")
        plain, at_plain = subject_last_token(tok, "{}", "Michael Jordan")
        assert tok.decode(ids[: at + 1]).endswith("Michael Jordan"), prompt
        assert ids[at] == plain[at_plain]


def test_a_prompt_that_fits_only_without_its_prefix_template_is_refused(tiny):
    """The bare prompt and its target fit the context (128 positions), a sampled prefix
    template in front does not: GPT-2's position table failed with an IndexError halfway
    through the z-vectors (a RoPE model read past its context without a word)."""
    model, tok, ad = tiny
    s = settings_for(model)
    stats = stats_for(model, tok, ad, s.layers)
    prompt = "{} plays"
    while len(tok(Request("Michael Jordan", prompt + " the", "soccer").text + " soccer")
              .input_ids) <= 128:
        prompt += " the"
    r = Request("Michael Jordan", prompt, "soccer")
    validate_requests([r], tok, 128)  # alone it fits
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValidationError, match=r"^request 1 behind the sampled prefix template 1: "
                                              r"\d+ tokens, longer than the model's context of "
                                              r"128 tokens$"):
        execute_memit(model, tok, [r], s, stats, templates=TEMPLATES, show_progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("subject", ["José", "東京", "Jordan 🎸"])
def test_a_last_character_spelt_with_several_byte_tokens_is_keyed_at_the_last(tiny, subject):
    """The byte-level tokenizer spells 'é' (2 bytes), '京' (3) or '🎸' (4) with one token per
    byte, each given the character's whole span: the key was read at the first of them,
    before the subject's end (the reference reads the last)."""
    from memstore.editing.tokens import subject_last_token

    _, tok, _ = tiny
    ids, at = subject_last_token(tok, "{}, plays", subject)
    assert at == len(tok(subject).input_ids) - 1
    assert tok.decode(ids[: at + 1]) == subject and tok.decode(ids[: at]) != subject


def test_a_tokenizer_that_ends_every_text_with_eos_reads_the_target_after_the_prompt():
    """With add_eos_token (a Llama tokenizer may set it), the z-vectors' rows were
    'prompt <eos> target' and the KL prompts ended in <eos>: the edit was optimised for the
    target after an end of text, which no prompt gives (scoring reads 'prompt target')."""
    from tiny import tiny_tokenizer
    from tokenizers import processors

    from memstore.editing.zs import build_rows

    bos_only = tiny_tokenizer(add_bos=True)
    with_eos = tiny_tokenizer(add_bos=True)
    bos, eos = with_eos.bos_token_id, with_eos.eos_token_id
    with_eos.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)])
    assert with_eos("Michael Jordan plays").input_ids[-1] == eos
    r = [Request("Michael Jordan", "{} plays", "soccer")]
    got, want = build_rows(with_eos, r, TEMPLATES), build_rows(bos_only, r, TEMPLATES)
    assert eos not in got.input_ids.tolist()[0]
    for name in ("input_ids", "attention_mask", "subject_pos", "tgt_pos", "tgt_id"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name


def test_a_text_of_few_characters_but_many_tokens_is_counted(tiny):
    """A character may be several tokens ('東' is 3 bytes, 3 tokens here): a prompt of 45
    characters passed as short for a context of 128 tokens and GPT-2 failed with an
    IndexError (commit, eval and ask alike)."""
    _, tok, _ = tiny
    prompt = "{} plays " + "東" * 40 + " and"
    r = Request("Michael Jordan", prompt, "soccer")
    assert len(r.text) < 128 < len(tok(r.text).input_ids)
    with pytest.raises(ValidationError, match=r"^request 1: \d+ tokens, longer than the "
                                              r"model's context of 128 tokens$"):
        validate_requests([r], tok, 128)


def test_a_subject_that_fits_as_the_prompt_but_not_in_the_kl_prompt_is_refused(tiny):
    """The prompt '{}' and a one-token target: the request fits the 128 positions, but its
    subject in the KL prompt '{} is a' is longer, and GPT-2 failed with an IndexError."""
    model, tok, ad = tiny
    s = settings_for(model)
    stats = stats_for(model, tok, ad, s.layers)
    subject = "Jordan"
    while len(tok(subject + " x the").input_ids) <= 128:
        subject += " x"
    r = Request(subject, "{}", "the")
    validate_requests([r], tok, 128)  # alone it fits
    assert len(tok(subject + " is a").input_ids) > 128
    with pytest.raises(ValidationError, match=r"^request 1 in the KL prompt '\{\} is a': \d+ "
                                              r"tokens, longer than the model's context"):
        execute_memit(model, tok, [r], s, stats, templates=["{}"], show_progress=False)
