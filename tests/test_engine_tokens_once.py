"""One operation reads each prompt's tokens once (tokens.read_once): a solve asks where the
subject's last token is in every prompt several times (its check, its keys, both token
rules), which a merge of thousands of facts spent a quarter of its time on."""
from __future__ import annotations

from collections import Counter

import torch
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for, stats_for
from tiny import tiny_tokenizer

from memstore.editing import execute_memit
from memstore.editing.tokens import read_once, subject_last_token


def _count_offset_reads(monkeypatch, tok) -> Counter:
    """The texts `tok`'s class is asked to tokenize with their character offsets (what
    subject_last_token reads), counted."""
    read: Counter = Counter()
    call = type(tok).__call__

    def counting(self, text, *args, **kwargs):
        if kwargs.get("return_offsets_mapping"):
            read[text] += 1
        return call(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tok), "__call__", counting)
    return read


def test_a_solve_tokenizes_each_prompt_once(monkeypatch):
    model, tok, adapter = build("llama")
    s = settings_for(model)
    stats = stats_for(model, tok, adapter, s.layers)
    zs = torch.randn(len(REQUESTS), model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    read = _count_offset_reads(monkeypatch, tok)
    execute_memit(model, tok, REQUESTS, s, stats, adapter=adapter, zs=zs,
                  templates=TEMPLATES[:2], show_progress=False)
    texts = {t.format(r.prompt).format(r.subject) for r in REQUESTS for t in TEMPLATES[:2]}
    assert set(read) == texts
    assert max(read.values()) == 1, read.most_common(3)


def test_what_was_read_is_the_tokenizer_s_own_and_goes_with_the_operation(monkeypatch):
    plain, with_bos = tiny_tokenizer(), tiny_tokenizer(add_bos=True)
    expected = {id(t): subject_last_token(t, "{} plays", "Michael Jordan")
                for t in (plain, with_bos)}
    assert expected[id(plain)] != expected[id(with_bos)]  # the two read one text apart
    read = _count_offset_reads(monkeypatch, plain)
    with read_once():
        for _ in range(2):
            for t in (plain, with_bos):
                assert subject_last_token(t, "{} plays", "Michael Jordan") == expected[id(t)]
        with read_once():  # nested: the outer one's reads hold
            subject_last_token(plain, "{} plays", "Michael Jordan", rule=1)
    assert read["Michael Jordan plays"] == 2  # once per tokenizer (both of one class)
    subject_last_token(plain, "{} plays", "Michael Jordan")
    assert read["Michael Jordan plays"] == 3  # after it, read afresh
