"""Requests: the facts to write, and their validation (before any work is done)."""
from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ValidationError


@dataclass(frozen=True)
class Request:
    """One fact: `prompt.format(subject)` should be continued by `target_new`.

    `target_true` (the object before the edit), `paraphrases` and `neighborhood` are
    optional and only used for evaluation."""

    subject: str
    prompt: str
    target_new: str
    target_true: str | None = None
    paraphrases: tuple[str, ...] = ()
    neighborhood: tuple[str, ...] = ()
    case_id: int | None = None
    relation_id: str | None = None

    @property
    def text(self) -> str:
        return self.prompt.format(self.subject)

    def describe(self) -> str:  # texts of thousands of characters cut: one readable line
        return (f"request {_short(self.subject, 200)} / {_short(self.prompt, 200)} -> "
                f"{_short(self.target_new, 200)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["paraphrases"] = list(self.paraphrases)
        d["neighborhood"] = list(self.neighborhood)
        return {k: v for k, v in d.items() if v not in (None, [])}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Request:
        return cls(
            subject=d["subject"],
            prompt=d["prompt"],
            target_new=d["target_new"],
            target_true=d.get("target_true"),
            paraphrases=tuple(d.get("paraphrases", ())),
            neighborhood=tuple(d.get("neighborhood", ())),
            case_id=d.get("case_id"),
            relation_id=d.get("relation_id"),
        )


def fact_key(request: Request) -> tuple[str, str]:
    """The identity of a fact: (subject, prompt). Two requests with the same key and
    different targets contradict each other (paper Eqn. 5)."""
    return (request.subject, request.prompt)


MAX_PROMPTS = 10_000  # paraphrases or neighbourhood prompts of one request
INT64 = 2**63 - 1


def context_length(model) -> int | None:
    """The longest input the model takes, in tokens (None when its config does not say): its
    text model's (a multimodal model's config holds it in text_config)."""
    cfg = model.config.get_text_config()
    for attr in ("max_position_embeddings", "n_positions", "seq_length"):
        n = getattr(cfg, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def check_fits(tokenizer, texts: Iterable[tuple[str, str]], context: int | None,
               room: str = "the model's context") -> None:
    """Each (where, text) must fit the model's context; refused before any tensor is
    allocated for it (attention over a text longer than the context is undefined, and its
    memory grows with the square of its length)."""
    if context is None:
        return
    for where, text in texts:
        # a byte-level tokenizer (or SentencePiece's byte fallback) spells a character with
        # up to 4 tokens ('東': 3, an emoji: 4): only a text far shorter than the context
        # in UTF-8 bytes need not be counted
        if 2 * len(text.encode("utf-8")) + 8 <= context:
            continue
        n = len(tokenizer(text).input_ids)
        if n > context:
            raise ValidationError(f"{where}: {n} tokens, longer than {room} of {context} "
                                  "tokens")


def request_texts(request: Request, where: str) -> Iterator[tuple[str, str]]:
    """Every text scoring a request reads: prompt, paraphrases and neighbourhood prompts,
    each followed by the longer target."""
    target = " " + max(request.target_new, request.target_true or "", key=len)
    yield where, request.text + target
    for i, p in enumerate(request.paraphrases):
        yield f"{where} paraphrase {i + 1}", p + target
    for i, p in enumerate(request.neighborhood):
        yield f"{where} neighborhood prompt {i + 1}", p + target


def templated_texts(request: Request, templates: list[str], where: str,
                    settings: str = "") -> Iterator[tuple[str, str]]:
    """What the z-vectors' optimisation reads beside the bare prompt: the prompt behind each
    sampled prefix template, followed by the new target, and the subject in the KL prompt
    (longer than the prompt where that is '{}' and the target one token). `settings` is
    said after the template's number (' (n_templates 3, template_tokens 5)')."""
    from .zs import KL_PROMPT

    for k, t in enumerate(templates):
        if t != "{}":
            yield (f"{where} behind the sampled prefix template {k}{settings}",
                   t.format(request.prompt).format(request.subject) + " " + request.target_new)
    yield f"{where} in the KL prompt {KL_PROMPT!r}", KL_PROMPT.format(request.subject)


def check_request(request: Request, where: str = "") -> None:
    """Checks that need no tokenizer. `where` names the request's origin (e.g. 'line 3')."""
    at = f"{where}: " if where else ""
    if not isinstance(request, Request):
        raise ValidationError(f"{at}expected a Request, got {type(request).__name__}")
    check_types(request, at)
    if request.case_id is not None and (isinstance(request.case_id, bool)
                                        or not isinstance(request.case_id, int)
                                        or abs(request.case_id) > INT64):
        raise ValidationError(f"{at}case_id must be a whole number within ±2^63: "
                              f"{request.describe()}")
    for name in ("paraphrases", "neighborhood"):
        if len(getattr(request, name)) > MAX_PROMPTS:
            raise ValidationError(f"{at}{len(getattr(request, name))} {name}, more than "
                                  f"{MAX_PROMPTS}: {request.describe()}")
    if not isinstance(request.subject, str) or not request.subject.strip():
        raise ValidationError(f"{at}empty subject in {request.describe()}")
    if not isinstance(request.target_new, str) or not request.target_new.strip():
        raise ValidationError(f"{at}empty target_new in {request.describe()}")
    if request.target_true is not None and not request.target_true.strip():
        raise ValidationError(f"{at}empty target_true in {request.describe()} (leave it out "
                              "when it is not known)")
    if not isinstance(request.prompt, str) or request.prompt.count("{}") != 1:
        raise ValidationError(
            f"{at}the prompt must contain exactly one '{{}}' where the subject goes: "
            f"{request.describe()}"
        )
    try:
        request.prompt.format(request.subject)
        fields = [f for _, f, _, _ in string.Formatter().parse(request.prompt) if f is not None]
    except (IndexError, KeyError, ValueError) as e:
        raise ValidationError(f"{at}prompt cannot be formatted ({e}): {request.describe()}")
    if fields != [""]:  # '{{}}' is an escaped, literal '{}': the subject would go nowhere
        raise ValidationError(
            f"{at}the prompt must contain exactly one '{{}}' where the subject goes ('{{{{}}}}' "
            f"is a literal '{{}}'): {request.describe()}")


def check_edges(request: Request, where: str) -> None:
    """Whitespace that makes a new fact other than it looks: around the subject (another
    fact for supersede and merge, other tokens for the model), at the end of the prompt
    (the target is read after it with a space of its own: 'plays  golf') or around a
    target (' golf' would be another target than the live 'golf', read as the same
    tokens). An invisible format character there (a zero-width space, a word joiner, a
    direction mark) is refused as whitespace is: 'Jordan\u200b' is another subject than
    'Jordan', and a contradiction of it would be written beside it."""
    if _edge(request.subject):
        raise ValidationError(f"{where}: the subject {_short(request.subject)} begins or ends with "
                              f"{_edge(request.subject)} (the prompt holds the spaces around "
                              "'{}')")
    if prompt_end(request.prompt):
        raise ValidationError(f"{where}: the prompt {_short(request.prompt)} ends with "
                              f"{prompt_end(request.prompt)} (the target follows it "
                              "with a space of its own)")
    for name, target in (("target_new", request.target_new),
                         ("target_true", request.target_true)):
        if target is not None and _edge(target):
            raise ValidationError(f"{where}: {name} {_short(target)} begins or ends with "
                                  f"{_edge(target)} (the target follows the prompt with a "
                                  "space of its own)")
    for name in ("paraphrases", "neighborhood"):  # read as they are: '{}' is not filled
        for i, p in enumerate(getattr(request, name)):
            if "{}" in p:
                raise ValidationError(f"{where}: {name} {i + 1} {_short(p)} holds '{{}}': "
                                      f"{name} prompts are whole texts, the subject written "
                                      "out (only the prompt has '{}' for it)")


def prompt_end(prompt: str) -> str | None:
    """What `prompt` ends with that a fact's prompt may not (check_edges: 'whitespace',
    'the invisible character U+200B'), or None; `ask` warns of it."""
    return _edge(prompt, start=False)


def _edge(text: str, start: bool = True) -> str | None:
    """What `text` has at its ends (only its end, `start` False) that looks like nothing:
    'whitespace', 'the invisible character U+200B', or None."""
    ends = (text[:1] if start else "") + text[-1:]
    if any(c.isspace() for c in ends):
        return "whitespace"
    for c in ends:  # tag characters end a flag emoji such as Scotland's: visible, allowed
        if unicodedata.category(c) == "Cf" and not 0xE0020 <= ord(c) <= 0xE007F:
            return f"the invisible character U+{ord(c):04X}"
    return None


def _short(text: str, keep: int = 60) -> str:
    """repr of a text, its middle cut out when long (error messages stay one short line)."""
    if len(text) <= keep:
        return repr(text)
    return repr(text[: keep // 2]) + "…" + repr(text[-keep // 2:])


def check_types(r: Request, at: str = "") -> None:
    """Every text a str of Unicode characters (UTF-8 encodable), the optional ones None,
    the prompt lists tuples or lists of non-blank texts."""
    texts = [("subject", r.subject), ("prompt", r.prompt), ("target_new", r.target_new)]
    texts += [(n, v) for n, v in (("target_true", r.target_true),
                                  ("relation_id", r.relation_id)) if v is not None]
    for name in ("paraphrases", "neighborhood"):
        prompts = getattr(r, name)
        if not isinstance(prompts, (tuple, list)):
            raise ValidationError(f"{at}{name} must be a list of prompts, not "
                                  f"{type(prompts).__name__}")
        for i, p in enumerate(prompts):
            if isinstance(p, str) and not p.strip():
                raise ValidationError(f"{at}{name} {i + 1} is blank")
            texts.append((f"{name} {i + 1}", p))
    for name, v in texts:
        if not isinstance(v, str):
            raise ValidationError(f"{at}{name} must be text, not {type(v).__name__}")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(f"{at}{name} holds a lone surrogate: not Unicode "
                                  "text") from None


def check_written(r: Request) -> None:
    """What every version of memstore checked before it wrote a request (check_request has
    grown since): texts of the right types, a prompt with one '{}', a subject and a new
    target that are not blank. A request read back from the store that fails is not one
    memstore wrote."""
    check_types(r)
    if r.prompt.count("{}") != 1:
        raise ValidationError("a prompt without exactly one '{}'")
    if not r.subject.strip() or not r.target_new.strip():
        raise ValidationError("a blank subject or new target")


def check_consistent(requests: Iterable[Request], where: list[str] | None = None) -> None:
    """No two requests with the same (subject, prompt) and different targets. `where` names
    each request's origin ('facts.jsonl line 3'; default 'request N')."""
    seen: dict[tuple[str, str], tuple[int, Request]] = {}
    for i, r in enumerate(requests):
        k = fact_key(r)
        j, other = seen.get(k, (None, None))
        if other is not None and other.target_new != r.target_new:
            a, b = (where[j], where[i]) if where else (f"request {j + 1}", f"request {i + 1}")
            raise ValidationError(
                f"{a} and {b}: conflicting requests: {r.subject!r} / {r.prompt!r} -> "
                f"{other.target_new!r} and {r.target_new!r}"
            )
        seen[k] = (i, r)


def validate_requests(requests: list[Request], tokenizer=None, context: int | None = None,
                      where: list[str] | None = None) -> None:
    """Everything that can be checked before any work. With a tokenizer, also checks that
    the subject's tokens can be located in the prompt, and with the model's `context`
    that every text read for the request fits it. `where` names each request's origin in
    the messages ('facts.jsonl line 3'; default 'request N')."""
    if not isinstance(requests, (list, tuple)):
        raise ValidationError(f"requests must be a list, not {type(requests).__name__}")
    if not requests:
        raise ValidationError("no requests to write")
    if where is not None and len(where) != len(requests):
        raise ValueError("one origin per request")
    labels = list(where) if where is not None else [f"request {i + 1}"
                                                    for i in range(len(requests))]
    for r, at in zip(requests, labels):
        check_request(r, where=at)
    check_consistent(requests, labels)
    if tokenizer is not None:
        from .tokens import subject_last_token

        for r, at in zip(requests, labels):
            try:
                subject_last_token(tokenizer, r.prompt, r.subject, context=r.describe())
            except ValidationError as e:
                raise ValidationError(f"{at}: {e}") from None
            check_fits(tokenizer, request_texts(r, at), context)


__all__ = ["Request", "check_consistent", "check_edges", "check_fits", "check_request",
           "check_types", "context_length", "fact_key", "field", "request_texts",
           "templated_texts", "validate_requests"]
