"""Requests: the facts to write, and their validation (before any work is done)."""
from __future__ import annotations

from collections.abc import Iterable
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

    def describe(self) -> str:
        return f"request {self.subject!r} / {self.prompt!r} -> {self.target_new!r}"

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


def check_request(request: Request, where: str = "") -> None:
    """Checks that need no tokenizer. `where` names the request's origin (e.g. 'line 3')."""
    at = f"{where}: " if where else ""
    if not isinstance(request.subject, str) or not request.subject.strip():
        raise ValidationError(f"{at}empty subject in {request.describe()}")
    if not isinstance(request.target_new, str) or not request.target_new.strip():
        raise ValidationError(f"{at}empty target_new in {request.describe()}")
    if not isinstance(request.prompt, str) or request.prompt.count("{}") != 1:
        raise ValidationError(
            f"{at}the prompt must contain exactly one '{{}}' where the subject goes: "
            f"{request.describe()}"
        )
    try:
        request.prompt.format(request.subject)
    except (IndexError, KeyError, ValueError) as e:
        raise ValidationError(f"{at}prompt cannot be formatted ({e}): {request.describe()}")


def check_consistent(requests: Iterable[Request]) -> None:
    """No two requests with the same (subject, prompt) and different targets."""
    seen: dict[tuple[str, str], Request] = {}
    for r in requests:
        k = fact_key(r)
        other = seen.get(k)
        if other is not None and other.target_new != r.target_new:
            raise ValidationError(
                f"conflicting requests: {r.subject!r} / {r.prompt!r} -> "
                f"{other.target_new!r} and {r.target_new!r}"
            )
        seen[k] = r


def validate_requests(requests: list[Request], tokenizer=None) -> None:
    """Everything that can be checked before any work. With a tokenizer, also checks that
    the subject's tokens can be located in the prompt."""
    if not requests:
        raise ValidationError("no requests to write")
    for i, r in enumerate(requests):
        check_request(r, where=f"request {i + 1}")
    check_consistent(requests)
    if tokenizer is not None:
        from .tokens import subject_last_token

        for r in requests:
            subject_last_token(tokenizer, r.prompt, r.subject, context=r.describe())


__all__ = ["Request", "check_consistent", "check_request", "fact_key", "field", "validate_requests"]
