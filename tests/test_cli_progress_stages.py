"""The quiet steps of the commands that load a model (README, "Progress"): on a terminal the
model load is one line of memstore's (transformers' own "Loading weights" bar silenced, for
that load only), a commit's template sampling has a bar, and verify's bars count what its
result line counts; off a terminal none of it is drawn."""
from __future__ import annotations

import io
import re

import pytest
import torch
import transformers
from cli_support import facts_files, model_dir, ok
from tiny import tiny_config, tiny_tokenizer
from tqdm.auto import tqdm

import memstore.editing.progress as progress_module
from memstore.store.states import forget_loaded


@pytest.fixture
def bars(monkeypatch):
    """Every bar or stage a command opens, as (bar, drawn): each counts into a buffer (not
    the terminal), drawn saying whether it would have been drawn. The model is loaded
    afresh, as a new process loads it."""
    opened: list[tuple[tqdm, bool]] = []

    def recorder(*args, **kwargs):
        drawn = not kwargs.pop("disable", False)
        # disable given: the CLI sets TQDM_DISABLE off a terminal (cli/main.py), and a tqdm
        # imported after it (a CLI test earlier in this worker) takes it as its default
        bar = tqdm(*args, **kwargs, disable=False, file=io.StringIO())
        opened.append((bar, drawn))
        return bar

    monkeypatch.setattr(progress_module, "tqdm", recorder)
    monkeypatch.delenv("MEMSTORE_QUIET", raising=False)
    forget_loaded()
    return opened


def named(opened, desc: str) -> list[tuple[tqdm, bool]]:
    return [(b, drawn) for b, drawn in opened if b.desc == desc]


@pytest.fixture
def transformers_bars():
    """The bars transformers makes in the test (through its tqdm hook), none drawn."""
    from transformers.utils import logging as hf_logging

    made: list[str] = []

    def hook(factory, args, kwargs):
        made.append(kwargs.get("desc"))
        return factory(*args, **{**kwargs, "disable": True})

    previous = hf_logging.set_tqdm_hook(hook)
    yield made
    hf_logging.set_tqdm_hook(previous)


def test_export_and_verify_count_the_tensors_their_result_lines_count(
        bars, transformers_bars, monkeypatch, tmp_path):
    """A model whose head is its embedding (tied, as SmolLM2's): the state dict names the
    one tensor twice, the export saves it once. verify's comparing bar counted the names
    (0/273 for SmolLM2, whose result line said 272 tensors); each of its bars now ends at
    its total, and the tensor bars at the result line's count. The model load is a stage,
    and so is export's write, where transformers' "Writing model shards 1/1" stayed on
    screen."""
    d = tmp_path / "tied"
    tok = tiny_tokenizer()
    cfg = tiny_config("llama", tok.backend_tokenizer.get_vocab_size())
    cfg.tie_word_embeddings = True
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(d)
    tok.save_pretrained(d)
    repo = tmp_path / "repo"
    ok("init", repo, "--base", d)
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True)
    forget_loaded()
    bars.clear()
    transformers_bars.clear()  # (the test's own save_pretrained above)
    line = ok("export", tmp_path / "out", cwd=repo).stdout
    n = int(re.search(r"\((\d+) tensors\)", line).group(1))
    assert n == len(model.state_dict()) - 1  # the tied head, saved once
    assert transformers_bars == []  # "Loading weights" and "Writing model shards": none
    assert [drawn for _, drawn in named(bars, "writing the weights")] == [True]
    [(bar, drawn)] = named(bars, "hashing the written tensors")
    assert drawn and (bar.n, bar.total) == (n, n)
    forget_loaded()
    bars.clear()
    line = ok("verify", tmp_path / "out", cwd=repo).stdout
    assert f"OK: {n} tensors" in line
    for desc in ("comparing tensors", "reading the export's tensors"):
        [(bar, drawn)] = named(bars, desc)
        assert drawn and (bar.n, bar.total) == (n, n), (desc, bar.n, bar.total)
    [(bar, drawn)] = named(bars, "hashing the base weights")
    assert drawn and bar.n == bar.total > 0
    assert [drawn for _, drawn in named(bars, f"loading the model {d}")] == [True]


def test_commit_shows_the_model_load_and_the_template_sampling(bars, base, history,
                                                               monkeypatch):
    """On a terminal, a commit's first seconds (loading the model, sampling the prefix
    templates from it: ~9 s on SmolLM2) had no bar; off one, nothing is drawn or said."""
    repo, _ = history
    files = facts_files(base)
    off_a_terminal = progress_module.on_terminal  # CliRunner's stderr is not one
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True)
    forget_loaded()
    bars.clear()  # (the history's template, built once per session, has commits)
    ok("commit", files["d"], cwd=repo)
    [(bar, drawn)] = named(bars, "sampling the templates")
    assert drawn and (bar.n, bar.total) == (4, 4)  # template_tokens, one step each
    loads = [b for b, _ in bars if b.desc.startswith("loading the model ")]
    assert len(loads) == 1 and named(bars, loads[0].desc)[0][1]
    monkeypatch.setattr(progress_module, "on_terminal", off_a_terminal)
    forget_loaded()
    bars.clear()
    err = ok("commit", files["e"], cwd=repo).stderr
    assert named(bars, "sampling the templates") and not any(d for _, d in bars)
    assert "\r" not in err and "loading" not in err and "sampling" not in err


def test_load_model_silences_transformers_bar_for_that_load_only(base):
    """transformers' "Loading weights" bar is off while memstore loads a model, through a
    tqdm hook put back after: the caller's hook and transformers' own setting are theirs
    again (disable_progress_bar would have turned them off for the whole program)."""
    from transformers.utils import logging as hf_logging

    from memstore.models.loading import load_model

    made: list[str] = []

    def caller_hook(factory, args, kwargs):
        made.append(kwargs.get("desc"))
        return factory(*args, **kwargs)

    d = str(model_dir(base))  # (saved once per session: transformers' "Writing" bar)
    enabled = hf_logging.is_progress_bar_enabled()
    previous = hf_logging.set_tqdm_hook(caller_hook)
    try:
        load_model(d)
        assert made == []  # "Loading weights" went through memstore's hook, disabled
        assert hf_logging.set_tqdm_hook(caller_hook) is caller_hook
        assert hf_logging.is_progress_bar_enabled() == enabled
        hf_logging.tqdm(range(1), desc="the caller's")  # the caller's bars are theirs
        assert made == ["the caller's"]
    finally:
        hf_logging.set_tqdm_hook(previous)


def test_overlapping_loads_put_the_callers_hook_back():
    """Two threads' loads that overlap (A begins, B begins, A ends, B ends, with an error):
    transformers' bars stay off until the last ends, then the caller's hook is back. Each
    putting back the hook it found left B's 'off' hook in place for the rest of the
    program."""
    from transformers.utils import logging as hf_logging

    from memstore.models.loading import transformers_bars_off

    made: list[str] = []

    def caller_hook(factory, args, kwargs):
        made.append(kwargs.get("desc"))
        return factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(caller_hook)
    try:
        a, b = transformers_bars_off(), transformers_bars_off()
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        hf_logging.tqdm(range(1), desc="during B's load")
        error = RuntimeError("B's load failed")
        assert b.__exit__(RuntimeError, error, error.__traceback__) is False  # (passed on)
        hf_logging.tqdm(range(1), desc="after both")
        assert made == ["after both"]
        assert hf_logging.set_tqdm_hook(caller_hook) is caller_hook
    finally:
        hf_logging.set_tqdm_hook(previous)
