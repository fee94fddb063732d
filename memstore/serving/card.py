"""The model card (`README.md`) of an export: Hugging Face front matter, then what the export
holds and how to rebuild it.

The Hub reads the YAML front matter: `base_model` (a Hub id; left out when the base is a local
model with no known id), `base_model_relation` (`adapter` for a LoRA adapter, `finetune` for
weights that were changed), `library_name` and `tags`. The body says which revision and base
(by content hash) the export was made from, the settings, the facts it writes (a table, cut at
`MAX_FACT_ROWS` rows), the efficacy measured when each commit was made, and the command that
rebuilds it. Strings are written as JSON strings, which are valid YAML scalars.

`verify` renders the card again and compares it byte for byte: a change to the text it
renders for the same inputs (here or in memstore.serving.peft.serving_lines) must raise
memstore.store.export_card.TEMPLATE, so that earlier exports' cards are not compared."""
from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store.commits import summary

CARD = "README.md"
MAX_FACT_ROWS = 200
# Hub ids of the models memstore knows by name (memstore.models.loading.DEFAULT_MODEL).
HUB_IDS = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@dataclass(frozen=True)
class Fact:
    subject: str
    prompt: str
    old: str | None
    new: str | None  # None: the export removes the fact


@dataclass(frozen=True)
class CommitRecord:
    id: str
    message: str
    metrics: dict[str, Any]


@dataclass
class Card:
    title: str
    kind: str  # "peft", "gguf" or "full"
    base_spec: str
    base_hash: str
    rev: str
    commit: str | None
    since: str | None  # the state the export applies to; None: the base model
    settings: Any
    facts: list[Fact]
    commits: list[CommitRecord]
    command: str  # the export command that rebuilds it
    out: str  # the output path in that command
    sections: list[tuple[str, list[str]]] = field(default_factory=list)  # (title, lines)
    runtime: tuple[str, ...] = ()  # --device, --dtype the export was built in, when named


_LIBRARY = {"peft": "peft", "gguf": "gguf", "full": "transformers"}
_RELATION = {"peft": "adapter", "gguf": "finetune", "full": "finetune"}
_WHAT = {"peft": "a PEFT LoRA adapter", "gguf": "a GGUF model (llama.cpp)",
         "full": "a Hugging Face checkpoint"}


def hub_id(base_spec: str) -> str | None:
    """The Hub id of the base, when it is known: a model memstore names. Any other spec is
    a local path (memstore loads nothing from the Hub), relative to where `init` ran: one of
    the form owner/name is not a Hub id, wherever the export runs."""
    return HUB_IDS.get(base_spec)


def cell(text: Any) -> str:
    """A markdown table cell: one line, pipes escaped."""
    if text is None:
        return "–"
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def _metric(m: dict[str, Any], key: str) -> str:
    v = m.get(key)
    return f"{v:.3f}" if isinstance(v, (int, float)) else "–"


def front_matter(card: Card) -> list[str]:
    tags = ["memstore", "model-editing", "memit", "knowledge-editing"]
    tags += {"peft": ["lora"], "gguf": ["gguf"], "full": []}[card.kind]
    hub = hub_id(card.base_spec)
    lines = ["---"]
    if hub is not None:
        lines.append(f"base_model: {json.dumps(hub)}")
    lines += [f"base_model_relation: {_RELATION[card.kind]}",
              f"library_name: {_LIBRARY[card.kind]}", "tags:"]
    lines += [f"- {t}" for t in tags] + ["---"]
    return lines


def facts_section(facts: Sequence[Fact]) -> list[str]:
    written = [f for f in facts if f.new is not None]
    removed = [f for f in facts if f.new is None]
    title = f"## Facts ({len(written)} written" + (f", {len(removed)} removed)" if removed else ")")
    rows = [(f.subject, f.prompt, f"{cell(f.old)} → {cell(f.new) if f.new else '(removed)'}")
            for f in [*written, *removed][:MAX_FACT_ROWS]]
    lines = [title, ""] + table(["subject", "prompt", "old → new"], rows)
    if len(facts) > MAX_FACT_ROWS:
        lines += ["", f"… and {len(facts) - MAX_FACT_ROWS} more (`memstore diff` lists them all)."]
    return lines


def _earlier(m: dict[str, Any]) -> str:
    e = m.get("earlier")
    if not isinstance(e, dict) or not e.get("n"):
        return "–"
    return (f"{_metric(e, 'recalled_before')} → {_metric(e, 'recalled')} "
            f"({e['n']} of {e.get('live', e['n'])})")


def commits_section(commits: Sequence[CommitRecord]) -> list[str]:
    rows = [(f"`{c.id[:12]}`", summary(c.message),
             c.metrics.get("n", "–"), _metric(c.metrics, "efficacy"),
             _metric(c.metrics, "p_new_before"), _metric(c.metrics, "p_new"),
             _earlier(c.metrics))
            for c in commits]
    return (["## Efficacy measured at commit time", "",
             ("ES over the commit's requests that have target_true; P(new) is the mean "
              "probability of the new target, before → after the edit; earlier facts: the "
              "share of a sample of the facts written before the commit that the model "
              "recalls (every target token its top choice), before → after."), ""]
            + table(["commit", "message", "n (ES)", "ES", "P(new) before", "P(new) after",
                     "earlier facts recalled"], rows))


def render(card: Card) -> str:
    """The card's text."""
    hub = hub_id(card.base_spec)
    applies = ("the base model" if card.since is None
               else f"the state of commit `{card.since}` (export it with `memstore export`)")
    lines = front_matter(card) + ["", f"# {card.title}", "",
                                  (f"{_WHAT[card.kind][0].upper()}{_WHAT[card.kind][1:]} made by "
                                  "memstore: knowledge edits written into the weights with MEMIT "
                                  "and kept as versioned commits."), ""]
    lines += table(["", ""], [
        ("revision", f"`{card.rev}` = " + (f"commit `{card.commit}`" if card.commit
                                            else "the base model")),
        ("applies to", applies),
        ("base model", f"`{card.base_spec}`" + (f" ({hub})" if hub else "")),
        ("base content hash", f"`{card.base_hash}`"),
    ])
    if hub is not None:
        lines += ["", (f"The base is memstore's `{card.base_spec}` exactly (content hash above): "
                  f"where that is a quantized file, its weights differ from the Hub's {hub}, and "
                  "the edit is exact on memstore's base only.")]
    lines += [""] + facts_section(card.facts) + [""] + commits_section(card.commits)
    for title, body in card.sections:
        lines += ["", f"## {title}", "", *body]
    lines += ["", "## Settings", "", "```json",
              json.dumps(card.settings, indent=2, sort_keys=True), "```",
              "", "## Rebuild", "", "In the memstore repository this was exported from:", "",
              "```console", card.command,
              shlex.join(["memstore", "verify", card.out, *card.runtime]), "```", ""]
    return "\n".join(lines)
