"""Readers for facts files and evaluation data: memstore JSONL, CounterFact (ROME format and
EasyEdit's reduced format) and zsRE. Every reader returns `Request`s (plus the few extra
fields a benchmark needs); every bad input is a `ValidationError` naming the file and the
line (JSONL) or record (JSON list).

Targets are kept as given, without a leading space: scoring adds it (see `scoring.py`).
"""
from __future__ import annotations

import difflib
import json
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..editing.requests import Request, check_edges, check_request
from ..errors import ValidationError

Source = str | Path | Iterable[dict]


@dataclass(frozen=True)
class EvalRecord:
    """A CounterFact request with the prompts only the generation metrics use:
    `generation_prompts` (open-ended prompts about the subject, for fluency) and
    `attribute_prompts` (other subjects whose answer is `target_new`)."""

    request: Request
    generation_prompts: tuple[str, ...] = ()
    attribute_prompts: tuple[str, ...] = ()
    where: str = ""  # where it was read ('cf.json record 3'), for later checks' messages


@dataclass(frozen=True)
class ZsreRecord:
    """A zsRE record: the edit (`request.paraphrases` holds the rephrased question) and an
    unrelated question `loc` with its answer `loc_ans`, for specificity."""

    request: Request
    loc: str
    loc_ans: str
    where: str = ""  # where it was read ('zsre.jsonl line 3'), for later checks' messages


# -- loading raw records ------------------------------------------------------------------


def load_records(source: Source) -> list[tuple[str, dict]]:
    """(where, record) pairs from a JSON list file, a JSONL file, standard input ('-') or
    an iterable of dicts. `where` is e.g. 'facts.jsonl line 3', 'data.json record 2' or
    'stdin line 1' (1-based). A file is UTF-8
    (a byte order mark at its start is allowed), its lines end in LF or CRLF; a field given
    twice in one object is refused (JSON would keep the last one silently). Every text,
    keys included, is read in Unicode NFC: the composed and the decomposed spellings of a
    name are the same fact."""
    if not isinstance(source, (str, Path)):
        return [(f"record {i + 1}", _as_dict(r, f"record {i + 1}")) for i, r in enumerate(source)]
    name, raw = _read_source(source)
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark (Windows editors)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValidationError(f"{name} line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} "
                              f"at column {column})") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text, object_pairs_hook=_JsonObject.of)
        except json.JSONDecodeError as e:
            raise ValidationError(f"{name} line {e.lineno}: invalid JSON ({e.msg})") from None
        except RecursionError:
            raise ValidationError(f"{name}: JSON nested too deeply") from None
        except ValueError:  # json's int() of a number of more digits than Python converts
            raise ValidationError(f"{name}: {_LONG_NUMBER}") from None
        where = [f"{name} record {i + 1}" for i in range(len(data))]
        return [(w, _as_dict(r, w)) for w, r in zip(where, data)]
    out = []
    for n, line in enumerate(text.split("\n"), start=1):  # JSONL: "\n" only (U+2028 is text)
        if not line.strip():
            continue
        where = f"{name} line {n}"
        try:
            record = json.loads(line, object_pairs_hook=_JsonObject.of)
        except json.JSONDecodeError as e:
            if not out and _one_object(text):
                raise ValidationError(f"{name}: one JSON object over several lines; a facts "
                                      "file holds one object per line (JSONL) or a JSON "
                                      "list") from None
            raise ValidationError(f"{where}: invalid JSON ({e.msg})") from None
        except RecursionError:
            raise ValidationError(f"{where}: JSON nested too deeply") from None
        except ValueError:
            raise ValidationError(f"{where}: {_LONG_NUMBER}") from None
        out.append((where, _as_dict(record, where)))
    return out


_LONG_NUMBER = (f"a number of more than {sys.get_int_max_str_digits()} digits, more than "
                "Python reads")


def source_name(source: str | Path) -> str:
    """How messages name a facts file: its name, or 'stdin' for '-'."""
    return "stdin" if isinstance(source, str) and source == "-" else Path(source).name


def _read_source(source: str | Path) -> tuple[str, bytes]:
    """(name in messages, bytes) of a file, or of standard input for the text '-' (as
    other command-line tools read it; a `Path('-')` is a file of that name)."""
    if isinstance(source, str) and source == "-":
        try:
            return source_name(source), sys.stdin.buffer.read()
        except (OSError, ValueError) as e:  # closed, or a terminal gone
            raise ValidationError(f"stdin: cannot read ({e})") from None
    path = Path(source)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ValidationError(f"{path}: not a regular file (a device or a pipe)")
        return path.name, path.read_bytes()
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file") from None
    except OSError as e:
        raise ValidationError(f"{path}: cannot read ({e})") from None


def _one_object(text: str) -> bool:
    """Whether the text is a single JSON object (pretty-printed over several lines)."""
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


class _JsonObject(dict):
    """A JSON object as parsed, with the first field it (or an object inside it) gave
    twice, if any."""

    duplicate: str | None = None

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _JsonObject:
        d = cls(pairs)
        keys: set[str] = set()
        for k, v in pairs:
            inner = [v] if isinstance(v, _JsonObject) else v if isinstance(v, list) else []
            found = k if k in keys else next(
                (x.duplicate for x in inner if isinstance(x, _JsonObject) and x.duplicate), None)
            if found is not None:
                d.duplicate = found
                break
            keys.add(k)
        return d


def _nfc(value: Any) -> Any:
    """Every text in a parsed record in Unicode NFC (keys too)."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {_nfc(k): _nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    return value


def _as_dict(record: Any, where: str) -> dict:
    if not isinstance(record, dict):
        kind = {list: "a list", str: "a string", int: "a number", float: "a number",
                bool: "true or false", type(None): "null"}.get(type(record), type(record).__name__)
        raise ValidationError(f"{where}: expected a JSON object, got {kind}")
    if getattr(record, "duplicate", None) is not None:
        raise ValidationError(f"{where}: field {record.duplicate!r} given twice (JSON would "
                              "keep only the last)")
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{where}: holds a lone surrogate (an escape such as \\ud800 "
                              "that is no character): not Unicode text") from None
    return _nfc(record)


# -- field access with one-line errors -------------------------------------------------------


def _get(record: dict, key: str, where: str, kind: type = str, required: bool = True) -> Any:
    """`record[key]` where key may be dotted ('requested_rewrite.subject')."""
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            if required:
                raise ValidationError(f"{where}: missing field {key!r}")
            return None
        value = value[part]
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValidationError(f"{where}: field {key!r} must be a {_kind_name(kind)}")
    return value


def _strings(record: dict, key: str, where: str) -> tuple[str, ...]:
    """An optional list of strings (a single string is accepted as a list of one)."""
    value = record.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{where}: field {key!r} must be a list of strings")
    return tuple(value)


def _kind_name(kind: type) -> str:
    return {str: "string", dict: "JSON object", list: "list", int: "whole number"}.get(
        kind, kind.__name__
    )


def _template(prompt: str, subject: str, where: str, key: str = "prompt") -> str:
    """A prompt with '{}' where the subject goes. A prompt with the subject already filled in
    gets its first occurrence of the subject replaced."""
    if "{}" in prompt:
        return prompt
    if subject and subject in prompt:  # its own braces are text: escaped around the '{}'
        at = prompt.index(subject)
        return "{}".join(p.replace("{", "{{").replace("}", "}}")
                         for p in (prompt[:at], prompt[at + len(subject):]))
    raise ValidationError(
        f"{where}: field {key!r} must contain '{{}}' or the subject {subject!r}"
    )


def _case_id(record: dict, where: str) -> int | None:
    return _get(record, "case_id", where, int, required=False)


# -- one parser per format ------------------------------------------------------------------


def parse_counterfact(record: dict, where: str) -> EvalRecord:
    """A CounterFact record in the original ROME/MEMIT format."""
    rw = _get(record, "requested_rewrite", where, dict)
    subject = _get(record, "requested_rewrite.subject", where)
    request = Request(
        subject=subject,
        prompt=_template(_get(record, "requested_rewrite.prompt", where), subject, where,
                         "requested_rewrite.prompt"),
        target_new=_get(record, "requested_rewrite.target_new.str", where),
        target_true=_get(record, "requested_rewrite.target_true.str", where, required=False),
        paraphrases=_strings(record, "paraphrase_prompts", where),
        neighborhood=_strings(record, "neighborhood_prompts", where),
        case_id=_case_id(record, where),
        relation_id=_get(rw, "relation_id", where, required=False),
    )
    check_request(request, where)
    check_edges(request, where)
    generation_prompts = _strings(record, "generation_prompts", where)
    for i, p in enumerate(generation_prompts):
        if not p.strip():  # nothing to generate from: GE's generation would fail on it
            raise ValidationError(f"{where}: generation_prompts {i + 1} is blank")
    return EvalRecord(
        request,
        generation_prompts=generation_prompts,
        attribute_prompts=_strings(record, "attribute_prompts", where),
        where=where,
    )


FLAT_FIELDS = ("subject", "prompt", "target_new", "target_true", "paraphrases", "neighborhood",
               "case_id", "relation_id")
EASYEDIT_FIELDS = ("ground_truth", "rephrase_prompt", "locality_prompt",
                   "locality_ground_truth")


def _check_fields(record: dict, where: str) -> None:
    """A field memstore's format does not know is refused, not ignored: a misspelt optional
    field ('targt_true') would otherwise be dropped without a word."""
    known = FLAT_FIELDS + EASYEDIT_FIELDS
    # an EasyEdit record is told EasyEdit's fields, not memstore's own names for them
    easyedit = any(k in record for k in EASYEDIT_FIELDS)
    fields = (FLAT_FIELDS[:3] + EASYEDIT_FIELDS + FLAT_FIELDS[6:]) if easyedit else FLAT_FIELDS
    for key in record:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]!r}?" if close
                    else ("the fields of EasyEdit's format are " if easyedit
                          else "the fields are ") + ", ".join(fields))
            raise ValidationError(f"{where}: unknown field {key!r} ({hint})")


def parse_flat(record: dict, where: str) -> Request:
    """memstore's own format ({"subject", "prompt", "target_new", "target_true"?,
    "paraphrases"?, "neighborhood"?, "case_id"?, "relation_id"?}) and EasyEdit's reduced
    CounterFact format (the prompt with the subject filled in, "ground_truth",
    "rephrase_prompt", "locality_prompt", "locality_ground_truth"); any other field is
    refused."""
    _check_fields(record, where)
    subject = _get(record, "subject", where)
    target_true = _get(record, "target_true", where, required=False)
    ground_truth = _get(record, "ground_truth", where, required=False)
    if target_true is None:
        target_true = ground_truth
    elif ground_truth is not None and ground_truth != target_true:
        raise ValidationError(f"{where}: target_true {target_true!r} and ground_truth "
                              f"{ground_truth!r} (EasyEdit's name for it) differ")
    # NS scores every neighbourhood prompt for target_true against target_new: a locality
    # answer of its own would be measured as if it were target_true
    locality = _get(record, "locality_ground_truth", where, required=False)
    if locality is not None and locality != target_true:
        raise ValidationError(f"{where}: locality_ground_truth {locality!r} is not the true "
                              f"object {target_true!r}: the neighbourhood score (NS) compares "
                              "the true object with target_new on locality_prompt")
    request = Request(
        subject=subject,
        prompt=_template(_get(record, "prompt", where), subject, where),
        target_new=_get(record, "target_new", where),
        target_true=target_true,
        paraphrases=_strings(record, "paraphrases", where)
        + _strings(record, "rephrase_prompt", where),
        neighborhood=_strings(record, "neighborhood", where)
        + _strings(record, "locality_prompt", where),
        case_id=_case_id(record, where),
        relation_id=_get(record, "relation_id", where, required=False),
    )
    check_request(request, where)
    check_edges(request, where)
    return request


def parse_zsre(record: dict, where: str) -> ZsreRecord:
    """A zsRE record (MEND/ROME format). As in ROME, the target is `answers[0]` and the
    prompt is the question with the subject replaced by '{}' (first occurrence)."""
    subject = _get(record, "subject", where)
    answers = record.get("answers")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], str):
        raise ValidationError(f"{where}: field 'answers' must be a non-empty list of strings")
    request = Request(
        subject=subject,
        prompt=_template(_get(record, "src", where), subject, where, "src"),
        target_new=answers[0],
        paraphrases=_strings(record, "rephrase", where),
    )
    check_request(request, where)
    check_edges(request, where)
    loc, loc_ans = _get(record, "loc", where), _get(record, "loc_ans", where)
    for name, text in (("loc", loc), ("loc_ans", loc_ans)):
        if not text.strip():
            raise ValidationError(f"{where}: field {name!r} is empty")
    return ZsreRecord(request, loc=loc, loc_ans=loc_ans, where=where)


def parse_request(record: dict, where: str) -> Request:
    """One record of any supported format, detected by its fields."""
    if "requested_rewrite" in record:
        return parse_counterfact(record, where).request
    if "src" in record and "answers" in record:
        return parse_zsre(record, where).request
    return parse_flat(record, where)


# -- public readers ---------------------------------------------------------------------------


def read_requests_file(path: str | Path) -> list[Request]:
    """The requests in a facts file: memstore JSONL, CounterFact (ROME format or EasyEdit's
    reduced format) or zsRE, as a JSON list or JSONL, the format detected per record."""
    return [r for _, r in read_located_requests(path)]


def read_located_requests(path: str | Path) -> list[tuple[str, Request]]:
    """`read_requests_file`, each request with where it was read ('facts.jsonl line 3'), for
    the messages of the checks made later (tokens, context, facts live on the branch)."""
    records = load_records(path)
    if not records:
        raise ValidationError(f"{source_name(path)}: no records")
    return [(where, parse_request(r, where)) for where, r in records]


def read_counterfact_records(source: Source) -> list[EvalRecord]:
    """CounterFact in the ROME format or the reduced format (which has no generation or
    attribute prompts), from a file or from already-loaded records."""
    return [parse_counterfact_record(r, where) for where, r in load_records(source)]


def parse_counterfact_record(record: dict, where: str) -> EvalRecord:
    """One CounterFact record, in the ROME format or the reduced (or memstore's) format."""
    if "requested_rewrite" in record:
        return parse_counterfact(record, where)
    return EvalRecord(parse_flat(record, where), where=where)


def read_counterfact(source: Source) -> list[Request]:
    """The requests of a CounterFact file (see `read_counterfact_records`)."""
    return [r.request for r in read_counterfact_records(source)]


def read_zsre(source: Source) -> list[ZsreRecord]:
    """zsRE records (MEND/ROME format) from a file or from already-loaded records."""
    return [parse_zsre(r, where) for where, r in load_records(source)]


__all__ = [
    "EvalRecord",
    "ZsreRecord",
    "check_edges",
    "load_records",
    "parse_counterfact_record",
    "parse_zsre",
    "read_counterfact",
    "read_counterfact_records",
    "read_located_requests",
    "read_requests_file",
    "read_zsre",
    "source_name",
]
