"""The model card's text is pinned to export_card.TEMPLATE: verify compares a card byte for
byte with the card rendered again, and skips (with a note) those of another template, so a
change to the text a card renders for the same inputs without raising TEMPLATE would fail
every earlier export's verify. Here a fixed, fully specified set of exports (every format,
both kinds of base, every family's serving lines, each branch of the adapter and GGUF
sections) is rendered through export_card.card_of, as export and verify render it, and the
sha256 of the whole text is compared with the one recorded for the current TEMPLATE."""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

from memstore.editing.requests import Request
from memstore.store import export_card
from memstore.store.history import LiveFact, SetRef

# sha256 of `rendered()` for each TEMPLATE: a new TEMPLATE records its hash here
CARD_SHA256 = {
    1: "74b3c6a4a8f44d305919f85cee78b107bb45f282cbdc2c1f2d6b63fb433a4e7a",
    2: "788b0a7a5b2f83a4239ae682f1acd03ab61b83484d6507a4a02429ce788ff11e",
    3: "155e590acee0a887e59b58133be2e4b18d714e7a1cd22f79db5fe042b5d86d82",
    4: "a066e7463b9a7573a8f31dde246118e96815801befd979707b8f78bffe3bd92b",
}

C1, C2 = "1" * 64, "2" * 64
# the families whose cards are rendered: a fixed list, so that a new family (whose cards no
# earlier export holds) does not change the hash
FAMILIES = ("gpt2", "gptj", "gpt_neox", "llama", "phi3", "phi", "smollm3", "starcoder2",
            "stablelm", "granite", "cohere", "gemma", "gemma2", "gemma3", "olmo2")


def fact(subject: str, new: str, true: str | None = None) -> Request:
    return Request(subject, "{} plays | the", new, true)


class Repository:
    """What the card reads of a repository: two commits, C2 on C1."""

    def __init__(self, model_type: str):
        self.base = SimpleNamespace(hash="ab" * 32, info={"model_type": model_type})

    def chain_sets(self, rev: str) -> list[SetRef]:
        return [SetRef(c, 0, None) for c in (C1, C2)[:(C1, C2).index(rev) + 1]]

    def facts_at(self, rev: str) -> list[LiveFact]:
        facts = {C1: [fact("Jordan", "soccer", "basketball"), fact("Messi", "golf")],
                 C2: [fact("Jordan", "tennis", "basketball"), fact("Ronaldo", "chess")]}[rev]
        return [LiveFact(r, rev, 0, i) for i, r in enumerate(facts)]

    def get_commit(self, c: str):
        metrics = {C1: {"n": 2, "efficacy": 1.0, "p_new_before": 0.0123, "p_new": 0.8765},
                   C2: {"n": 2, "efficacy": 0.5, "p_new": 2 / 3, "earlier": {
                       "n": 3, "live": 9, "recalled_before": 1.0, "recalled": 1 / 3}}}[c]
        return SimpleNamespace(message=f"commit {c[0]}\n\nbody", metrics=metrics)


def manifest(kind: str, **fields) -> dict:
    return {"export_format": kind, "commit": C2, "rev": "main~0", "base": {"spec": "smollm2-135m"},
            "settings": {"layers": [3, 4], "mom2_weight": 15000.0, "kl_factor": 0.0625},
            "card": {"out": "../out dir/facts", "runtime": ["--device", "cpu"],
                     "template": export_card.TEMPLATE}, **fields}


ADAPTER = {"rank": 4, "layers": {"3": {"module": "model.layers.3.mlp.down_proj",
                                       "numerical_rank": 4, "rank": 4, "error": 0.0},
                                 "4": {"module": "model.layers.4.mlp.down_proj",
                                       "numerical_rank": 3, "rank": 3, "error": 1.5e-7}}}
TRUNCATED = {"rank": 600, "max_rank": 600, "since": C1,
             "layers": {"3": {"module": "m", "numerical_rank": 700, "rank": 600,
                              "error": 0.0123456}},
             "truncation": {"n_facts": 2, "exact": {"efficacy": 1.0, "p_new": 0.9},
                            "truncated": {"efficacy": 0.5, "p_new": 0.45}}}
GGUF = {"gguf": {"dtype": "f16"},
        "layers": {"3": {"tensor": "blk.3.ffn_down.weight", "base_type": "Q8_0",
                         "requantized": {"kept": 0.91234, "error": 0.0876}},
                   "4": {"tensor": "blk.4.ffn_down.weight", "base_type": "F32",
                         "requantized": None}}}


def rendered() -> str:
    cards = [export_card.card_of(Repository("llama"), manifest("full")),
             export_card.card_of(Repository("llama"), {**manifest("full", commit=None),
                                                       "base": {"spec": "/models/tiny"}}),
             export_card.card_of(Repository("llama"), manifest("gguf", **GGUF)),
             export_card.card_of(Repository("llama"), manifest("peft", **TRUNCATED))]
    for family in FAMILIES:
        cards += [export_card.card_of(Repository(family), manifest("peft", since=None, **ADAPTER)),
                  export_card.card_of(Repository(family), manifest("peft", since=C1, **ADAPTER))]
    return "\n\f\n".join(cards)


def test_the_cards_text_is_pinned_to_its_template():
    got = hashlib.sha256(rendered().encode("utf-8")).hexdigest()
    raise_it = (f"the text a card renders for the same inputs changed: raise "
                f"memstore.store.export_card.TEMPLATE (now {export_card.TEMPLATE}), so that "
                "verify does not compare earlier exports' cards with it, and record "
                f"{export_card.TEMPLATE + 1}: {got!r} in CARD_SHA256 here")
    assert export_card.TEMPLATE in CARD_SHA256, (
        f"record {export_card.TEMPLATE}: {got!r} in CARD_SHA256 here")
    assert got == CARD_SHA256[export_card.TEMPLATE], raise_it


def test_the_rendering_covers_each_branch():
    """The hash above pins every branch of the card's text: these inputs reach them."""
    text = rendered()
    for part in ("base_model: \"HuggingFaceTB/SmolLM2-135M-Instruct\"", "`/models/tiny`",
                 "## GGUF", "not measured", "truncated (`--max-rank`)", "rank 600 is above",
                 "does not support LoRA yet", "--enable-lora --max-lora-rank 8",
                 "llama.cpp has no gptj model", "not through `convert_lora_to_gguf.py`",
                 "convert_lora_to_gguf.py", "2 written, 1 removed",
                 "The base is the state of commit", "'../out dir/facts' --format peft --since",
                 "memstore verify '../out dir/facts' --device cpu", "1.000 → 0.333 (3 of 9)"):
        assert part in text, part


def test_a_card_of_layers_past_9_verifies_as_written(tmp_path):
    """The manifest is written with sorted keys, so an export's `layers` ("9", "10") is read
    back by verify as "10", "9": the card rendered at export (layers 9, 10, as built) was
    rendered again with its rows the other way round, and a fresh PEFT or GGUF export of a
    model edited at layers 9 and 10 (the default band of a 36- to 40-layer model: 4–10,
    4–11) failed verify ('README.md: differs from the card rebuilt from the repository')."""
    from memstore.serving.card import CARD
    from memstore.store.export_target import MANIFEST, write_manifest

    def layer(i: int, kind: str) -> dict:
        return ({"module": f"model.layers.{i}.mlp.down_proj", "numerical_rank": 1, "rank": 1,
                 "error": 0.0} if kind == "peft" else
                {"tensor": f"blk.{i}.ffn_down.weight", "base_type": "F32", "requantized": None})

    for kind, fields in (("peft", {"rank": 1}), ("gguf", {"gguf": {"dtype": "f32"}})):
        out = tmp_path / kind
        out.mkdir()
        m = manifest(kind, layers={str(i): layer(i, kind) for i in (8, 9, 10, 11)}, **fields)
        (out / CARD).write_text(export_card.card_of(Repository("llama"), m), encoding="utf-8")
        write_manifest(out, m)  # as export writes them, and verify reads them
        read = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        assert export_card.card_problems(Repository("llama"), out, read) == ([], [])
        rows = [line for line in (out / CARD).read_text().splitlines() if line.startswith("| ")]
        assert [r.split(" | ")[0] for r in rows if r[2:4] in ("8 ", "9 ", "10", "11")] == [
            "| 8", "| 9", "| 10", "| 11"]
