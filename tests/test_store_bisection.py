"""memstore.store.bisection's search, without a model: on histories of many shapes (long
strands, merges of merges, several roots, a culprit anywhere) the commits it tests, its
counts and the first bad commit it names are those of `git bisect run` on a git history of
the same shape (tests/bisect_support.py)."""
from __future__ import annotations

import random

import pytest
from bisect_support import Graph, git_bisect

from memstore.store.bisection import Step, search
from memstore.store.history import ancestors_of


def history(seed: int, n: int, merges: float, roots: float) -> Graph:
    """n commits, each with one parent among the recent ones, two (a merge) with
    probability `merges`, none (another root) with probability `roots`."""
    rng = random.Random(seed)
    g: Graph = {}
    ids: list[str] = []
    for i in range(n):
        recent = ids[-8:]
        if not ids or rng.random() < roots:
            parents: tuple[str, ...] = ()
        elif len(recent) > 1 and rng.random() < merges:
            parents = tuple(rng.sample(recent, 2))
        else:
            parents = (rng.choice(recent),)
        c = f"{seed:04x}{i:060x}"
        g[c] = (parents, 1_700_000_000.0 + i * 7.5)
        ids.append(c)
    return g


@pytest.mark.parametrize("seed, n, merges, roots", [
    (1, 12, 0.0, 0.0),    # one strand
    (3, 25, 0.3, 0.0),    # merges
    (4, 30, 0.5, 0.05),   # merges of merges, several roots
    (6, 7, 0.6, 0.3),
])
def test_search_tests_the_commits_git_bisect_tests(seed, n, merges, roots, tmp_path):
    g = history(seed, n, merges, roots)
    head = list(g)[-1]
    g[head] = (tuple(dict.fromkeys((*g[head][0], *list(g)[-4:-1]))), g[head][1])  # reach more
    candidates = ancestors_of(g, [head])
    rng = random.Random(seed)
    for k, culprit in enumerate(rng.sample(sorted(candidates), min(2, len(candidates)))):
        bad_ones = {c for c in candidates if culprit in ancestors_of(g, [c])}
        asked, first = bisected(g, head, candidates, bad_ones)
        assert first == culprit
        assert (asked, first) == git_bisect(g, head, bad_ones, tmp_path / str(k) / "git")


@pytest.mark.parametrize("seed", [5, 11, 23])
def test_with_good_commits_inside_the_history_the_search_is_gits(seed, tmp_path):
    """--good REV... in the middle of a history with merges: the candidates are HEAD's
    ancestors that are no GOOD's, some of them with a parent among the GOODs' ancestors
    (weighed from the candidates alone); the commits tested and the counts are git's
    with the same good commits."""
    rng = random.Random(seed)
    g = history(seed, 24, 0.4, 0.05)
    head = list(g)[-1]
    g[head] = (tuple(dict.fromkeys((*g[head][0], *list(g)[-4:-1]))), g[head][1])
    goods = rng.sample(sorted(ancestors_of(g, [head]) - {head}), 2)
    candidates = ancestors_of(g, [head]) - ancestors_of(g, goods)
    assert len(candidates) >= 4
    culprit = rng.choice(sorted(candidates))
    bad_ones = {c for c in candidates if culprit in ancestors_of(g, [c])}
    asked, first = bisected(g, head, candidates, bad_ones)
    assert first == culprit and len(asked) >= 2
    assert (asked, first) == git_bisect(g, head, bad_ones, tmp_path / "git", goods)


@pytest.mark.parametrize("seed", [3, 4, 7])
def test_first_parent_search_is_gits_first_parent(seed, tmp_path):
    """--first-parent on histories with merges (of merges): the candidates are HEAD's
    first-parent line, a merge weighed as a commit of one parent; the commits tested, the
    counts and the commit named (a merge, where the culprit came in on a merged branch)
    are those of `git bisect start --first-parent`."""
    from memstore.store.bisection import first_parents

    rng = random.Random(seed)
    g = history(seed, 30, 0.5, 0.0)
    head = list(g)[-1]
    walk, line = first_parents(g, head, ancestors_of(g, [head]))
    assert len(line) >= 4 and any(len(g[c][0]) > 1 for c in line)
    off = sorted(ancestors_of(g, [head]) - line)
    for k, culprit in enumerate([rng.choice(off), rng.choice(sorted(line))]):
        bad_ones = {c for c in ancestors_of(g, [head]) if culprit in ancestors_of(g, [c])}
        asked, first = bisected(walk, head, line, bad_ones)
        assert first in line and first in bad_ones
        assert all(p not in bad_ones for p in walk[first][0])  # its first parent is good
        assert first == culprit if culprit in line else len(g[first][0]) > 1  # a merge
        assert (asked, first) == git_bisect(g, head, bad_ones, tmp_path / str(k) / "git",
                                            first_parent=True)


def bisected(g: Graph, head: str, candidates: set[str], bad_ones: set[str]
             ) -> tuple[list[tuple[str, int, int]], str]:
    """search's steps (commit, left, roughly) and the first bad commit it names."""
    asked: list[tuple[str, int, int]] = []

    def ask(commit: str, left: int, rough: int) -> Step:
        asked.append((commit, left, rough))
        return Step(commit, "", commit not in bad_ones, left, rough)

    steps = search(g, set(candidates), ask)
    return asked, next((s.commit for s in reversed(steps) if not s.good), head)


def test_where_no_commit_halves_them_the_oldest_of_the_best_is_tested(tmp_path):
    """Four roots merged at once: no candidate is about halfway (a root weighs 1, the merge
    5 of 5), so git tests the first of the best in its list, the oldest root."""
    g: Graph = {f"{i:064x}": ((), 100.0 + i) for i in range(4)}
    head = f"{9:064x}"
    g[head] = (tuple(g), 200.0)
    for culprit in (f"{2:064x}", head):
        bad_ones = {culprit} | {head}
        asked, first = bisected(g, head, set(g), bad_ones)
        assert first == culprit and asked[0][0] == f"{0:064x}"
        assert (asked, first) == git_bisect(g, head, bad_ones, tmp_path / culprit[-1] / "git")


def test_a_merge_about_halfway_is_tested_before_a_strand_that_is(tmp_path):
    """git weighs the merges first and takes the first one about halfway: here the merge M
    (4 of 9) before s3, older and also 4 of 9."""
    def c(name: str) -> str:
        return name.encode().hex().ljust(64, "0")

    shape = {"r1": (), "s1": ("r1",), "s2": ("s1",), "s3": ("s2",), "r2": (), "q": (),
             "q2": ("q",), "M": ("r2", "q2"), "head": ("s3", "M")}
    g: Graph = {c(k): (tuple(c(p) for p in ps), 100.0 + i)
                for i, (k, ps) in enumerate(shape.items())}
    bad_ones = {c("M"), c("head")}
    asked, first = bisected(g, c("head"), set(g), bad_ones)
    assert first == c("M") and asked[0][0] == c("M")
    assert (asked, first) == git_bisect(g, c("head"), bad_ones, tmp_path / "git")


def test_text_and_answer_are_compared_in_nfc():
    """--expect/--reject TEXT typed decomposed (a macOS file name pasted) is the same text
    as the model's composed answer, and the other way round."""
    import unicodedata

    from memstore.store.bisection import AnswerTest

    composed, decomposed = (unicodedata.normalize(f, "Zürich") for f in ("NFC", "NFD"))
    assert composed != decomposed
    for text, answer in [(decomposed, f" {composed}, in"), (composed, f" {decomposed}, in")]:
        assert AnswerTest(expect=text).good(answer)
        assert not AnswerTest(reject=text).good(answer)
        assert not AnswerTest(expect=text).good(" Bern")


@pytest.mark.parametrize("test, said, tokens, verdict, judged, generated", [
    # --expect TEXT that the answer reaches past --max-tokens: read on until TEXT is there
    ({"expect": "Paris, France"}, " Paris, France is", 4, True, " Paris, France", 14),
    ({"expect": " Zürich"}, " Zürich is", 3, True, " Zürich", 7),  # ü cut in its bytes
    ({"expect": "Paris"}, "\n Paris", 1, True, "\n Paris", 7),  # not begun in the window
    # ... or until the answer leaves it
    ({"expect": "Paris, France"}, " Paris, Texas", 4, False, " Paris, T", 9),
    # --reject TEXT begun in the window, ended after it: read on until it ends, bad
    ({"reject": "tennis"}, " plays tennis", 8, False, " plays tennis", 13),
    # ... or until the answer leaves it, good
    ({"reject": "tennis"}, " plays the ball", 8, True, " plays th", 9),
    # decided in the window: not read on
    ({"expect": "Paris"}, " Rome, Italy", 3, False, " Ro", None),
    ({"reject": "tennis"}, " plays golf and tennis", 8, True, " plays g", None),
])
def test_an_answer_cut_where_text_may_go_on_is_read_on(test, said, tokens, verdict, judged,
                                                        generated, monkeypatch):
    """A good state's answer cut by --max-tokens before TEXT could be read whole was
    judged bad mid-search (--expect: ' Par' does not start with 'Paris, France'; --reject:
    ' plays t' does not contain 'tennis'). Where the window ends where TEXT may go on, the
    same greedy answer is read on (at most TEXT's UTF-8 length, decomposed, and one more
    tokens) and
    judged (with --reject, up to where a TEXT begun in the window ends); one decided in the
    window is not read on, nor a TEXT begun after it counted. The reading on stops at the
    token that decides it (it ran the whole reach: 18 tokens for 'Paris, France' found at
    14), with the verdict that the whole reach gives. Here a token is a character, or a
    byte of a cut one."""
    import unicodedata
    from types import SimpleNamespace

    from memstore.eval import generation
    from memstore.store.bisection import AnswerTest, PromptQuestion

    asked: list[int] = []
    generated_tokens: list[int] = []  # the tokens each generation ran to

    def upto(tokens: int) -> str:
        data = said.encode()
        cut = data[:sum(len(ch.encode()) for ch in said[:tokens])]
        if tokens < len(said) and "ü" in said[tokens - 1:tokens]:
            cut = cut[:-1]  # the window ends inside ü's two bytes
        return cut.decode(errors="replace")

    def greedy(model, tokenizer, prompts, max_new_tokens, stop=None, steps=None):
        asked.append(max_new_tokens)
        for n in range(1, max_new_tokens + 1):  # stop asked of each token's text (generate
            # asks it a token late: test_reading_on_stops_only_where_the_next_token_…)
            if n == max_new_tokens or n >= len(said) or (stop is not None and stop(upto(n))):
                generated_tokens.append(n)
                return [upto(n)]

    monkeypatch.setattr(generation, "greedy_generate", greedy)
    question = PromptQuestion("Q", AnswerTest(**test), max_tokens=tokens)
    good, answer = question.answer(SimpleNamespace(model=None, tokenizer=None))
    assert (good, answer) == (verdict, judged)
    text = test.get("expect", test.get("reject")).lstrip()
    read_on = generated is not None
    decomposed = unicodedata.normalize("NFD", text)  # the longer form: 'Zürich' 8 bytes
    assert asked == [tokens] + [tokens + len(decomposed.encode()) + 1] * read_on
    assert generated_tokens == [tokens] + [generated] * read_on
    if read_on:  # the verdict and answer of the whole reach (as before): the same verdict
        whole = question.test.read_on(upto(tokens), upto(asked[-1]))
        assert question.test.good(whole) == verdict and whole.startswith(judged)


@pytest.mark.parametrize("room, asked_for, said", [
    (5, [3, 5], "read 2 tokens past --max-tokens 3 (the model's context ends there)"),
    (3, [3], "read 0 tokens past --max-tokens 3 (the model's context ends there)"),
])
def test_reading_on_stops_at_the_context_and_the_rule_says_how_far(room, asked_for, said,
                                                                   monkeypatch):
    """Where the model's context ends before TEXT's reach, the answer is read on as far as
    it goes, and the refusal says how far that was (it claimed TEXT's reach, 14 tokens)."""
    from types import SimpleNamespace

    from memstore.eval import generation
    from memstore.store.bisection import AnswerTest, PromptQuestion

    asked: list[int] = []

    def greedy(model, tokenizer, prompts, max_new_tokens, stop=None, steps=None):
        asked.append(max_new_tokens)
        return [" Paris, France is"[:max_new_tokens]]

    monkeypatch.setattr(generation, "greedy_generate", greedy)
    question = PromptQuestion("Q", AnswerTest(expect="Paris, France"), max_tokens=3)
    question.room = room  # as check() finds it: the context left after the prompt
    good, answer = question.answer(SimpleNamespace(model=None, tokenizer=None))
    assert (good, answer, asked) == (False, " Paris"[:room], asked_for)
    assert said in question.rule(answer)


@pytest.mark.parametrize("leaves", [False, True])
def test_reading_on_a_tiny_model_stops_at_the_token_that_decides(leaves):
    """The read-on past --max-tokens was generated to TEXT's reach (its UTF-8 length and
    one: 36 tokens here) even once TEXT was there, or the answer had left it; it now stops
    at the token after the one that decides it, with the verdict the whole reach gives.
    Counted in the model's forward passes (one a generated token) on a tiny model."""
    from types import SimpleNamespace

    from tiny import tiny_model, tiny_tokenizer

    from memstore.eval.generation import greedy_generate
    from memstore.store.bisection import AnswerTest, PromptQuestion

    model, tokenizer = tiny_model("gpt2", seed=1), tiny_tokenizer()
    prompt = "The capital of France is"
    full = greedy_generate(model, tokenizer, [prompt], 12)[0]
    agreed = full[:9]
    assert len(full) > len(agreed) and not full.startswith(agreed + "\u2603")
    # TEXT the answer says, or one it says 9 characters of and then leaves
    test = AnswerTest(expect=agreed + "\u2603" * 8 if leaves else agreed)
    question = PromptQuestion(prompt, test, max_tokens=2)
    window = greedy_generate(model, tokenizer, [prompt], 2)[0]
    assert test.pending(window)  # the premise: 2 tokens leave TEXT undecided
    decides = next(k for k in range(1, 13)
                   if len(greedy_generate(model, tokenizer, [prompt], k)[0]) >
                   len(agreed) - (not leaves))
    steps: list[int] = []
    hook = model.register_forward_hook(lambda *_: steps.append(1))
    try:
        good, answer = question.answer(SimpleNamespace(model=model, tokenizer=tokenizer))
        read_on = len(steps)
        whole = test.read_on(window, greedy_generate(model, tokenizer, [prompt],
                                                     2 + question.past())[0])
    finally:
        hook.remove()
    # one token past the deciding one, which shows that it did not rewrite the answer
    assert read_on == 2 + decides + 1 < 2 + question.past()
    assert len(steps) - read_on == 2 + question.past() == 2 + len(test.expect.encode()) + 1
    assert good is test.good(whole) is not leaves and whole.startswith(answer)
    assert answer == greedy_generate(model, tokenizer, [prompt], decides + 1)[0]


@pytest.mark.parametrize("expect, max_tokens", [("José is", 6), ("Jose", 3)])
def test_reading_on_stops_only_where_the_next_token_cannot_rewrite_the_answer(expect,
                                                                           max_tokens):
    """Decoding one more token may rewrite the text decoded so far: on a byte-level
    vocabulary ' Jose' and a combining acute (two byte tokens) read ' José' in NFC. The
    read-on stopped at ' Jose' as decided: 'Jose' was good at once where the whole reach
    says ' José is' (bad), and 'José is', whose window (6 tokens) is pending, stopped at
    the 4th token (' Jose', before the window's end: bad) where the whole reach is good.
    Generated as generate does, token by token through its stopping criteria."""
    from types import SimpleNamespace

    import torch
    from tiny import tiny_tokenizer

    from memstore.eval.generation import greedy_generate
    from memstore.store.bisection import AnswerTest, PromptQuestion

    tokenizer = tiny_tokenizer()
    script = tokenizer.encode(" Jose\u0301 is in Paris", add_special_tokens=False)

    class Scripted(torch.nn.Module):
        """Greedy generation of a fixed answer, calling the stopping criteria per token."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(1, 1)

        def get_input_embeddings(self):
            return self.embed

        def generate(self, input_ids, attention_mask, generation_config, stopping_criteria):
            for token in script[:generation_config.max_new_tokens]:
                input_ids = torch.cat([input_ids, torch.tensor([[token]])], dim=1)
                if stopping_criteria is not None and stopping_criteria(input_ids, None).all():
                    break
            return input_ids

    base = SimpleNamespace(model=Scripted(), tokenizer=tokenizer)
    test = AnswerTest(expect=expect)
    question = PromptQuestion("Q", test, max_tokens=max_tokens)
    window = greedy_generate(base.model, tokenizer, ["Q"], max_tokens)[0]
    assert test.pending(window)  # the premise: read on
    whole = test.read_on(window, greedy_generate(base.model, tokenizer, ["Q"],
                                                 max_tokens + question.past())[0])
    good, answer = question.answer(base)
    assert good is test.good(whole) is (expect == "José is")
    assert whole.startswith(answer) and len(answer) > len(" José")


def test_reading_on_judges_no_answer_shorter_than_the_window(monkeypatch):
    """The read-on's first tokens are the window's own, and a shorter answer may decode
    otherwise than the window's beginning ('Jose' before a horn and an acute that NFC puts
    on the e): ' Jose' left TEXT and was judged, bad, before the window (6 tokens, TEXT as
    far as it goes) was read. The stop is asked here of every text so far, as generate
    does."""
    import unicodedata
    from types import SimpleNamespace

    from memstore.eval import generation
    from memstore.store.bisection import AnswerTest, PromptQuestion

    said = [" J", " Jo", " Jos", " Jose", " Jose\u031b", " Jose\u031b\u0301", " Jose\u031b\u0301 is",
            " Jose\u031b\u0301 is in"]
    text = unicodedata.normalize("NFC", "Jose\u031b\u0301 is")
    assert not text.startswith("Jose")  # the premise: the 4th token's text left TEXT

    def greedy(model, tokenizer, prompts, max_new_tokens, stop=None, steps=None):
        for n in range(1, max_new_tokens + 1):
            if n == max_new_tokens or n == len(said) or (stop is not None and stop(said[n - 1])):
                return [said[n - 1]]

    monkeypatch.setattr(generation, "greedy_generate", greedy)
    test = AnswerTest(expect=text)
    assert test.pending(said[5])
    good, answer = PromptQuestion("Q", test, max_tokens=6).answer(SimpleNamespace(model=None,
                                                                                 tokenizer=None))
    assert (good, answer) == (True, unicodedata.normalize("NFC", said[6]))


def test_reading_on_is_bounded_by_texts_own_tokens_and_shows_a_bar(monkeypatch):
    """A long TEXT was read on to its UTF-8 length and one (480 tokens for 479 characters),
    that is to the model's context, wherever the answer stayed pending without saying it
    (here a state that answers spaces only), with no bar on a terminal. The read-on now
    goes at most TEXT's length in the model's own tokens (counted by check()) and
    READ_ON_SLACK more, and a terminal shows a bar of its tokens. Counted in forward passes
    (one a generated token) on a tiny model."""
    import io
    from types import SimpleNamespace

    from tiny import tiny_model, tiny_tokenizer

    from memstore.editing import progress
    from memstore.store.bisection import READ_ON_SLACK, AnswerTest, PromptQuestion

    model, tokenizer = tiny_model("gpt2", seed=1), tiny_tokenizer()
    space = tokenizer.convert_tokens_to_ids("\u0120")

    def spaces_only(module, args, out):  # a degenerate state: every next token a space
        out.logits[...] = -1e4
        out.logits[..., space] = 0.0

    text = "capital" + " capital" * 59
    own = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    question = PromptQuestion("The capital of France is", AnswerTest(expect=text), 2)
    base = SimpleNamespace(model=model, tokenizer=tokenizer)
    question.check(base)
    room = question.room - question.max_tokens  # how far the context let it read before
    assert question.past() == own + READ_ON_SLACK < min(room, len(text) + 1)

    bars = []

    class Recorded(progress.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=io.StringIO(), **kwargs)
            bars.append(self)

    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    monkeypatch.setattr(progress, "tqdm", Recorded)
    steps: list[int] = []
    hooks = [model.register_forward_hook(spaces_only),
             model.register_forward_hook(lambda *_: steps.append(1))]
    try:
        good, answer = question.answer(base)
    finally:
        for hook in hooks:
            hook.remove()
    assert not good and answer == " " * (2 + own + READ_ON_SLACK)
    assert len(steps) == 2 + 2 + own + READ_ON_SLACK  # the window, then the read-on
    reading = [b for b in bars if getattr(b, "desc", None) == "reading the answer on"]
    assert len(reading) == 1 and reading[0].n == reading[0].total == 2 + own + READ_ON_SLACK
    assert question.rule(answer).endswith(f"read {own + READ_ON_SLACK} tokens past "
                                          "--max-tokens 2, still ends where TEXT may go on")


@pytest.mark.parametrize("text, max_tokens", [("Thành phố Hồ Chí Minh", 2),
                                              ("Đường Lê Lợi, Hồ Chí Minh", 1)])
def test_an_answer_in_decomposed_characters_is_read_to_its_end(text, max_tokens):
    """TEXT is read in NFC, and its bound (its UTF-8 length and one; its tokens and
    READ_ON_SLACK) was counted on its composed form alone, where an answer may spell it
    decomposed (NFD: a Vietnamese letter with two combining marks is 5 bytes, not 3) and
    after the space it brings. A good state answering TEXT decomposed was cut short of
    it and counted bad: 'Thành phố Hồ Chí Minh' (33 tokens of the tiny byte-level
    vocabulary) at 2 + 28, the composed form's 27 bytes and one; 'Đường Lê Lợi, Hồ Chí
    Minh' (42 tokens) at 1 + 36, and at 1 + 40 by the composed form's 32 tokens and
    READ_ON_SLACK, had the bytes alone been counted decomposed. The bounds now take the
    longest of its forms: read to its end, good. Generated by a tiny model whose every
    next token is forced to that answer's."""
    import unicodedata
    from types import SimpleNamespace

    from tiny import tiny_model, tiny_tokenizer

    from memstore.store.bisection import READ_ON_SLACK, AnswerTest, PromptQuestion

    model, tokenizer = tiny_model("gpt2", seed=1), tiny_tokenizer()

    def tokens(spelt: str) -> int:
        return len(tokenizer(spelt, add_special_tokens=False)["input_ids"])

    decomposed = unicodedata.normalize("NFD", text)
    said = tokenizer(f" {decomposed} is", add_special_tokens=False)["input_ids"]
    step = [0]

    def answers(module, args, kwargs, out):  # the state's greedy answer, decomposed
        step[0] = 0 if kwargs["input_ids"].shape[1] > 1 else step[0] + 1
        out.logits[:, -1] = -1e4
        out.logits[:, -1, said[min(step[0], len(said) - 1)]] = 0.0

    question = PromptQuestion("The largest city of Vietnam is", AnswerTest(expect=text),
                              max_tokens)
    base = SimpleNamespace(model=model, tokenizer=tokenizer)
    question.check(base)
    needed = tokens(f" {decomposed}")
    # the premise: the composed form's bounds cut it
    assert max_tokens + min(len(text.encode()) + 1, tokens(text) + READ_ON_SLACK) < needed
    hook = model.register_forward_hook(answers, with_kwargs=True)
    try:
        good, answer = question.answer(base)
    finally:
        hook.remove()
    assert good and answer.lstrip().startswith(text)


def test_the_read_on_bar_changes_no_token_and_draws_only_on_a_terminal(monkeypatch, capsys):
    """generate's `steps` (16a7fef: the bar of bisect's read-on, a streamer that counts):
    the same texts with a bar as without, greedy and sampled, for prompts of two lengths
    (padded), and the bar moved once a forward pass. Bisect's read-on draws it on stderr
    only (stdout stays --json's); off a terminal nothing is drawn and generate is given
    no streamer (the eval path's `steps` is None: no streamer either)."""
    import io
    from types import SimpleNamespace

    from tiny import tiny_model, tiny_tokenizer

    from memstore.editing import progress
    from memstore.eval.generation import generate
    from memstore.store.bisection import AnswerTest, PromptQuestion

    model, tokenizer = tiny_model("gpt2", seed=1), tiny_tokenizer()
    prompts = ["The capital of France is", "Paris"]
    passes: list[int] = []
    hook = model.register_forward_hook(lambda *_: passes.append(1))
    try:
        for sampled in ({}, {"top_k": 5, "seed": 3}):
            plain = generate(model, tokenizer, prompts, max_new_tokens=7, **sampled)
            passes.clear()
            bar = progress.tqdm(total=7, file=io.StringIO(), disable=False)
            assert generate(model, tokenizer, prompts, max_new_tokens=7, steps=bar,
                            **sampled) == plain
            assert bar.n == len(passes) > 1
    finally:
        hook.remove()

    streamers: list = []
    real = model.generate

    def recorded(*args, **kwargs):
        streamers.append(kwargs.get("streamer"))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", recorded)
    said = generate(model, tokenizer, prompts[:1], max_new_tokens=12)[0]
    question = PromptQuestion(prompts[0], AnswerTest(expect=said), 2)  # read on past 2
    base = SimpleNamespace(model=model, tokenizer=tokenizer)
    question.check(base)
    for terminal in (False, True):
        monkeypatch.setattr(progress, "on_terminal", lambda terminal=terminal: terminal)
        streamers.clear()
        capsys.readouterr()
        good, _ = question.answer(base)
        out, err = capsys.readouterr()
        assert good and out == "" and len(streamers) == 2  # the window, the read-on
        assert ("reading the answer on" in err) is terminal, err
        assert (streamers[-1] is not None) is terminal and streamers[0] is None
