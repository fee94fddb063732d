"""`memstore config`: the editor settings future commits use and where the model runs,
read and changed without loading the model (the number of layers and the context are the
base's, recorded at init). No torch here: `config` answers in a fraction of a second."""
from __future__ import annotations

import os
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from ..editing.settings import EditSettings, check_layers
from ..errors import ValidationError
from ..models.runtime import KEYS as RUNTIME_KEYS
from ..models.runtime import Runtime
from . import signing
from .queries import current_settings
from .revisions import RUNTIME_KEY

if TYPE_CHECKING:
    from .repository import Repository


def derived_notes(repo: Repository) -> dict[str, str]:
    """Setting -> the line saying how it was derived from the model, for the settings that
    still have their derived value."""
    d = repo.base.info.get("derived")
    if not isinstance(d, dict) or not isinstance(d.get("why"), dict):
        return {}
    current, derived = current_settings(repo).to_dict(), d.get("settings", {})
    # a note stands while every setting it speaks of keeps its derived value
    speaks_of = {"stats_source": ("stats_source", "stats_tokens"),
                 "mom2_growth": ("mom2_growth", "mom2_growth_facts")}
    return {k: v for k, v in d["why"].items()
            if isinstance(v, str) and all(current.get(x) == derived.get(x)
                                          for x in speaks_of.get(k, (k,)))}


MAX_LAYERS = 10_000  # more than any model has


def _parse_layers(text: str) -> tuple[int, ...]:
    text = text.strip().strip("[]()")
    out: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if "-" in part[1:] or ".." in part:
            lo, hi = (int(x) for x in part.replace("..", "-").split("-", 1))
            if hi - lo > MAX_LAYERS:  # checked against the model later; never expanded first
                raise ValidationError(f"layers {part}: more than {MAX_LAYERS} layers")
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return tuple(out)


def parse_setting(key: str, text: str) -> Any:
    """The value of setting `key` from its command-line text."""
    known = {f.name: f for f in fields(EditSettings)}
    if key not in known:  # device, dtype and device_map are settings too (`config`)
        raise ValidationError(f"unknown setting {key!r}; known: "
                              f"{', '.join([*known, *RUNTIME_KEYS])}")
    kind = str(known[key].type)
    try:
        if key == "layers":
            return _parse_layers(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        what = "a comma-separated list of layer numbers (e.g. 3,4,5 or 3-8)" \
            if key == "layers" else f"a number ({kind})"
        raise ValidationError(f"invalid value {text!r} for {key}: expected {what}") from None
    if key == "stats_source":
        from ..editing.statistics import SOURCES, check_corpus  # a corpus file: read it

        if text not in SOURCES:
            return str(check_corpus(text))
    return text


def config(repo: Repository, key: str, value: str) -> EditSettings:
    """Changes one editor setting for future commits, validated through EditSettings and
    against the base's number of layers; or where the model runs (device, dtype,
    device_map: checked for form here, for availability when a model is loaded).

    The change is made again under the lock, to the values read there (what it read
    before, checked at once so that a refusal does not wait, may be older: another
    process's change since would be undone)."""
    if key in signing.KEYS:  # who signs commits, who is trusted (store.signing)
        with repo.lock():
            repo.set_config(signing.ROW, signing.changed(repo.db, key, value))
        return current_settings(repo)
    if key in RUNTIME_KEYS:
        _runtime_changed(repo, key, value)
        with repo.lock():
            repo.set_config(RUNTIME_KEY, _runtime_changed(repo, key, value))
        return current_settings(repo)
    parsed = parse_setting(key, value)
    if key == "token_rule" and parsed != EditSettings.token_rule:
        raise ValidationError(f"token_rule {value}: new commits read prompts by rule "
                              f"{EditSettings.token_rule} (rule 1, memstore's before 5 Dec "
                              "2026, is kept for the commits it made, which replay by it)")
    _settings_changed(repo, key, parsed)
    with repo.lock():
        new = _settings_changed(repo, key, parsed)
        repo.set_settings(new)
    return new


def _runtime_changed(repo: Repository, key: str, value: str) -> dict[str, Any]:
    stored = dict(repo.get_config(RUNTIME_KEY) or {})
    stored[key] = (None if value.lower() in ("", "none") and key == "device_map"
                   else value)
    if key == "device_map" and str(stored[key]).endswith(".json"):
        # a map file named from here: later commands, run from any folder, read this one
        stored[key] = os.path.abspath(value)
    Runtime(**stored, check_available=False)
    return stored


def _settings_changed(repo: Repository, key: str, parsed: Any) -> EditSettings:
    new = current_settings(repo).with_changes(**{key: parsed})
    n = repo.base.info.get("n_layers")
    if isinstance(n, int):
        check_layers(new.layers, n)
    context = repo.base.info.get("context")
    if isinstance(context, int) and new.n_templates > 0 and new.template_tokens + 2 > context:
        # a sampled template in front, then at least one token of prompt and of target
        raise ValidationError(f"settings: template_tokens {new.template_tokens} leaves no room "
                              f"for a prompt and its target in the model's context of "
                              f"{context} tokens")
    return new


def runtime_values(repo: Repository) -> dict[str, Any]:
    """The repository's stored device, dtype and device map (defaults where unset)."""
    stored = repo.get_config(RUNTIME_KEY) or {}
    return Runtime(**stored, check_available=False).to_dict()


def signing_settings(repo: Repository) -> dict[str, tuple[str | None, str | None]]:
    """Each signing setting (signing.KEYS) -> its value and where it was found: signing.
    REPOSITORY, signing.GIT (git's config supplied it), or (None, None) where unset."""
    return {key: signing.found(repo.db, key) for key in signing.KEYS}


def setting(repo: Repository, key: str) -> Any:
    """The current value of one editor setting (or of device, dtype, device_map, or a
    signing setting: the repository's, else git's)."""
    if key in signing.KEYS:
        return signing.get(repo.db, key)
    values = {**current_settings(repo).to_dict(), **runtime_values(repo)}
    if key not in values:
        raise ValidationError(f"unknown setting {key!r}; known: {', '.join(values)}")
    return values[key]
