"""The model card (README.md) of an export, as `export` writes it and `verify` rebuilds it.

The card is rendered from two sources: the repository (the facts the export writes, the
commits in its chain with their messages and the efficacy measured when each was made, the
base's hash, the adapter's family) and the export's manifest, for what the export command
decided and the repository cannot say again: the revision's name as given (`rev`), the
output path as given and the --device/--dtype flags it ran with (`card`: `out`,
`runtime`), the base's spec (a clone may name the same base otherwise), the settings, and
the figures measured at export (an adapter's rank and per-layer error, the efficacy after
truncation, a GGUF's re-quantisation figures). Nothing in it depends on the time, the
machine or the folder it is rebuilt in, so `verify` renders it again from the repository
and the manifest and compares it byte for byte (the manifest's fields are checked on their
own where the repository can say them again).

The card's wording is memstore's and may change between versions: the record keeps the
TEMPLATE it was written with, and a card of another template is not compared (a note).
Raise TEMPLATE with any change to the text a card renders for the same inputs (here, in
memstore.serving.card or memstore.serving.peft.serving_lines): tests/test_card_template.py
records the sha256 of a fixed set of cards per TEMPLATE, and fails on a change without it."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ..serving import card as cards
from .difference import chain_difference, fact_changes
from .export_target import MANIFEST, missing
from .repository import Repository
from .states import BASE

GGUF_FILE = "model.gguf"
TEMPLATE = 4  # of the card's text: see above (2, 3: StarCoder2's vLLM line; 4: the base's row)


def rebuild_command(commit: str | None, out: str, format: str, since: str | None = None,
                    max_rank: int | None = None, gguf_dtype: str | None = None,
                    runtime: tuple[str, ...] = ()) -> str:
    parts = ["memstore", "export", commit or "base", out]
    if format != "full":
        parts += ["--format", format]
    parts += ["--since", since] if since else []
    parts += ["--max-rank", str(max_rank)] if max_rank is not None else []
    parts += ["--gguf-dtype", gguf_dtype] if gguf_dtype and gguf_dtype != "f32" else []
    return shlex.join(parts + list(runtime))  # a path with a space or a quote: one argument


def make_card(repo: Repository, kind: str, rev: str, commit: str | None, since: str | None,
              out: str, command: str, sections: list[tuple[str, list[str]]],
              runtime: tuple[str, ...], base_spec: str, settings: Any) -> str:
    plus, _ = chain_difference(repo, commit, since)
    facts = [cards.Fact(c.subject, c.prompt, c.old, c.new)
             for c in fact_changes(repo, commit, since)]
    commits = [cards.CommitRecord(c, repo.get_commit(c).message, repo.get_commit(c).metrics)
               for c in dict.fromkeys(ref.commit for ref in plus)]
    title = f"{Path(out).name}: {rev} ({commit[:12] if commit else 'base'})"
    return cards.render(cards.Card(title, kind, base_spec, repo.base.hash, rev, commit, since,
                                   settings, facts, commits, command, out, sections, runtime))


def by_layer(layers: dict[str, Any]) -> list[tuple[str, Any]]:
    """A manifest's per-layer records in the order of the layers: the manifest is written
    with sorted keys, so verify reads layer "10" before "9"."""
    return sorted(layers.items(), key=lambda item: int(item[0]))


def adapter_lines(rank: int, layers: dict[str, dict[str, Any]],
                  truncation: dict[str, Any] | None) -> list[str]:
    """The card's account of the adapter: rank, and per layer the rank kept and the error."""
    how = "exact" if truncation is None else "truncated (`--max-rank`)"
    lines = [f"Rank {rank} (lora_alpha = r: scale 1), {how}.", ""]
    lines += cards.table(["layer", "module", "rank of ΔW", "kept", "relative Frobenius error"],
                         [(l, r["module"], r["numerical_rank"], r["rank"], f"{r['error']:.4g}")
                          for l, r in by_layer(layers)])
    if truncation and truncation.get("n_facts"):
        e, t = truncation["exact"], truncation["truncated"]
        lines += ["", (f"On the {truncation['n_facts']} facts it writes (edit prompts only): "
                       f"ES {cards.cell(e['efficacy'])} exact → {cards.cell(t['efficacy'])} "
                       f"truncated; mean P(new) {e['p_new']:.3f} → {t['p_new']:.3f}.")]
    return lines


def gguf_lines(dtype: str, layers: dict[str, dict[str, Any]]) -> list[str]:
    """The card's account of a GGUF export: what the file holds, and per edited layer how
    much of ΔW re-quantising to the base's type would keep."""
    rows = [(l, r["tensor"], r["base_type"],
             "not measured" if r["requantized"] is None else
             f"{r['requantized']['kept']:.3f} / {r['requantized']['error']:.3f}")
            for l, r in by_layer(layers)]
    body = [(f"`{GGUF_FILE}`: the base GGUF with the edited ffn_down tensors in "
            f"{dtype.upper()}, every other tensor and all metadata as in the base file."), ""]
    return body + cards.table(["layer", "tensor", "base type",
                               "re-quantised: kept / error of ΔW"], rows)


def card_record(out: str, runtime: tuple[str, ...]) -> dict[str, Any]:
    """The manifest's `card`: the output path and the runtime flags the card names, and
    the template of its text."""
    return {"out": out, "runtime": list(runtime), "template": TEMPLATE}


def card_of(repo: Repository, manifest: dict[str, Any]) -> str:
    """The card of the export `manifest` describes (one with a `card` record): what export
    writes, and what verify compares the export's README.md with."""
    from ..serving.peft import serving_lines
    from .peft_export import family_of

    m = json.loads(json.dumps(manifest, sort_keys=True))  # as verify reads it back
    kind = m.get("export_format", "full")
    out, runtime = m["card"]["out"], tuple(m["card"]["runtime"])
    commit, rev = m["commit"], m["rev"]
    since = m.get("since") if kind == "peft" else BASE
    dtype = m["gguf"]["dtype"] if kind == "gguf" else None
    command = rebuild_command(commit, out, kind, since, m.get("max_rank"), dtype, runtime)
    sections: list[tuple[str, list[str]]] = []
    if kind == "peft":
        sections = [("Adapter", adapter_lines(m["rank"], m["layers"], m.get("truncation"))),
                    ("Serving", serving_lines(m["rank"], family_of(repo).name, out, since))]
    elif kind == "gguf":
        sections = [("GGUF", gguf_lines(dtype, m["layers"]))]
    return make_card(repo, kind, rev, commit, since, out, command, sections, runtime,
                     m["base"]["spec"], m.get("settings"))


def _is_record(r: Any) -> bool:
    return (isinstance(r, dict) and isinstance(r.get("out"), str)
            and isinstance(r.get("runtime"), list)
            and all(isinstance(f, str) for f in r["runtime"]))


def card_problems(repo: Repository, out: Path, manifest: dict[str, Any]
                  ) -> tuple[list[str], list[str]]:
    """(problems, notes) of the export's README.md against the card rebuilt from the
    repository and the manifest. A manifest with no `card` record (an export without a
    card, or one by an earlier memstore, which did not record it) gets a note where the
    export lists a card, which is then not compared."""
    listed = cards.CARD in manifest.get("files", {})
    if "card" not in manifest:
        if listed:
            return [], [(f"{cards.CARD}: not compared with the repository (the manifest, "
                         "written by an earlier memstore, does not record the card's output "
                         "path)")]
        return [], []
    if not _is_record(manifest["card"]):
        raise ValidationError(f"{out / MANIFEST}: damaged manifest (card)")
    path = out / cards.CARD
    if missing(path):  # when listed: listed_file_problems says so
        return ([] if listed else [f"{cards.CARD}: missing from the export"]), []
    template = manifest["card"].get("template")
    if template != TEMPLATE:
        return [], [(f"{cards.CARD}: not compared with the repository (written with "
                     f"template {template!r} of memstore's card text, this memstore writes "
                     f"{TEMPLATE})")]
    try:
        want = card_of(repo, manifest)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError):
        return [(f"{cards.CARD}: cannot be rebuilt (the manifest's figures it shows are "
                 "damaged)")], []
    if path.read_bytes() != want.encode("utf-8"):
        return [f"{cards.CARD}: differs from the card rebuilt from the repository"], []
    return [], []
