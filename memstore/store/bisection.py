"""Bisect: the first commit whose state answers a question wrongly, found by binary search.

git's `bisect run`, in one call: the candidates are BAD's ancestors (BAD included) that are
no GOOD's ancestors; each step asks the model, in the state of the candidate git would
test, the question (the greedy completion of a prompt, the tokens `ask` gives at that
revision; or ES over a facts file), and keeps the half that holds the first bad commit,
until one is left; a GOOD on another branch (no ancestor of BAD) has the merge bases of
BAD and the GOODs asked first, as git's check_merge_bases. The model is loaded once; a
state change applies the commit's update chain in memory (memstore.store.states), from the
last good state asked where the chain goes on from it (kept with `hold`), else from the
state the model is in or the base weights. Nothing is written to the repository.

The candidate to test is git's (bisect.c, find_bisection), so that a search goes as
`git bisect run` would on the same history: each candidate's weight is the number of
candidates it reaches (itself and its ancestors among them); walking the candidates oldest
first (git reverses its newest-first list), the merges weighed first, then each commit of
one parent from its parent's weight, the first one found about halfway (2 weight - N within
1) is taken, a root never; where none is, the first (oldest) of those that halve them best,
min(weight, N - weight) largest. A bad verdict keeps the candidate's weight (it
becomes BAD), a good one drops it.

torch and the model come in with the functions that use them: this module is imported by
the command line before any model is needed."""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import MemstoreError, ValidationError
from .schema import not_indexed

if TYPE_CHECKING:
    from .repository import Repository

BASE = None  # the state of no commit, as memstore.store.states names it
READ_ON_SLACK = 8  # tokens a read-on goes past TEXT's own length in the model's tokens


@dataclass(frozen=True)
class AnswerTest:
    """What makes a state good. `expect`: its completion, leading whitespace ignored,
    starts with TEXT (its leading whitespace ignored too: the model's answer brings its
    own space). `reject`: its completion does not contain TEXT, as written. One of the
    two; TEXT empty (or only whitespace for `expect`) is refused: every answer has it.
    TEXT and the completion are compared in Unicode NFC, as prompts and facts are read: a
    decomposed 'Zürich' is the same text as the model's composed one."""

    expect: str | None = None
    reject: str | None = None

    def __post_init__(self) -> None:
        if (self.expect is None) == (self.reject is None):
            raise ValidationError("give one of --expect TEXT and --reject TEXT")
        if self.expect is not None and not self.expect.strip():
            raise ValidationError("--expect: an empty TEXT (every answer starts with it)")
        if self.reject == "":
            raise ValidationError("--reject: an empty TEXT (every answer contains it)")

    def good(self, completion: str) -> bool:
        completion = unicodedata.normalize("NFC", completion)
        if self.expect is not None:
            return completion.lstrip().startswith(
                unicodedata.normalize("NFC", self.expect.lstrip()))
        return unicodedata.normalize("NFC", self.reject) not in completion

    def describe(self) -> str:
        """What a good state's answer does, for the lines that say an end is not what it
        was given as."""
        if self.expect is not None:
            return f"starts with {self.expect.lstrip()!r}"
        return f"does not contain {self.reject!r}"

    def text(self) -> str:
        """TEXT as answers are read for it (NFC; --expect's without leading whitespace)."""
        text = self.expect.lstrip() if self.expect is not None else self.reject
        return unicodedata.normalize("NFC", text)

    def forms(self) -> tuple[str, str]:
        """TEXT as an answer may spell it and still be read as TEXT: composed (NFC) and
        decomposed (NFD: an accented letter as its letter and combining marks, more
        characters, bytes and tokens)."""
        return self.text(), unicodedata.normalize("NFD", self.text())

    def reach(self, tokens: int | None = None) -> int:
        """Tokens enough to read TEXT to its end from where it may begin: its UTF-8 length
        (a token of a byte-level or SentencePiece vocabulary holds a byte or more;
        decomposed, the longer form) and one (a space or line break before it); where
        `tokens`, TEXT's length in the model's own tokens (the most of its forms, after a
        space too), is known, at most that and READ_ON_SLACK more (a greedy answer may
        cut a word otherwise than the tokenizer does), so that a long TEXT is not read on
        for hundreds of tokens (to the model's context) where the answer stays pending
        without saying it (only whitespace, say)."""
        reach = max(len(form.encode("utf-8")) for form in self.forms()) + 1
        return reach if tokens is None else min(reach, tokens + READ_ON_SLACK)

    def pending(self, completion: str) -> bool:
        """The completion ends where TEXT may go on: with --expect, what it says (no
        whitespace yet included) agrees with TEXT as far as it goes; with --reject, it ends
        with TEXT's beginning. A character cut in its bytes (decoded as U+FFFD) is one that
        may go on too. More tokens decide it."""
        completion = unicodedata.normalize("NFC", completion)
        said = completion.rstrip("\ufffd")
        if self.expect is not None:
            said, text = said.lstrip(), unicodedata.normalize("NFC", self.expect.lstrip())
            return len(said) < len(text) and text.startswith(said)
        text, cut = unicodedata.normalize("NFC", self.reject), said != completion
        return text not in said and (cut or any(said.endswith(text[:k])
                                                for k in range(1, len(text))))

    def decided(self, window: str, longer: str) -> bool:
        """Whether `longer`, the answer read on past `window` so far, decides the verdict
        that read_on(window, …) gets, whatever tokens follow: with --expect, it no longer
        ends where TEXT may go on (TEXT is there, or the answer left it); with --reject,
        TEXT is in what read_on keeps, or that is read to its end, or no TEXT begun in the
        window can still end there (the answer left each beginning)."""
        if self.expect is not None:
            return not self.pending(longer)
        judged, text = self.read_on(window, longer), unicodedata.normalize("NFC", self.reject)
        if text in judged:
            return True
        said = unicodedata.normalize("NFC", longer).rstrip("\ufffd")
        end = self._end(window)  # read_on keeps longer[:end]
        if len(said) >= end:
            return True
        return not any(text.startswith(said[p:])
                       for p in range(min(len(said), end - len(text)) + 1))

    def _end(self, window: str) -> int:
        """How much of the longer answer read_on keeps with --reject: up to where a TEXT
        begun in `window` ends."""
        window = unicodedata.normalize("NFC", window)
        said = window.rstrip("\ufffd")  # a character cut in its bytes: one more of the window
        return len(said) + (said != window) + len(self.reject) - 1

    def read_on(self, window: str, longer: str) -> str:
        """The answer judged where `window` (the --max-tokens tokens) is pending: `longer`,
        the same greedy answer read on (at most reach() tokens, until decided()); with
        --reject, cut where a TEXT begun in the window ends, so that one begun after it is
        not counted."""
        longer = unicodedata.normalize("NFC", longer)
        if self.expect is not None:
            return longer
        return longer[:self._end(window)]


class PromptQuestion:
    """The greedy completion of `prompt` (`max_tokens` tokens), as `ask` gives it (the
    prompt read in NFC and checked against the model's context), judged by `test`."""

    def __init__(self, prompt: str, test: AnswerTest, max_tokens: int = 20) -> None:
        if not prompt.strip():
            raise ValidationError("the prompt is empty")
        self.prompt = unicodedata.normalize("NFC", prompt)  # as ask reads it
        self.test, self.max_tokens = test, max_tokens
        self.room: int | None = None  # the tokens the context leaves after the prompt
        self.text_tokens: int | None = None  # TEXT's length in the model's tokens

    def check(self, base) -> None:
        from ..editing.requests import context_length
        from ..eval.scoring import special_prefix
        from .queries import check_prompts

        check_prompts(base, [self.prompt], self.max_tokens)
        self.text_tokens = max(  # as the answer may spell it: after its space, decomposed
            len(base.tokenizer(spelt, add_special_tokens=False)["input_ids"])
            for form in self.test.forms() for spelt in (form, " " + form))
        context = context_length(base.model)
        if context is not None:  # reading on stops at the end of the context
            used = len(special_prefix(base.tokenizer)) + len(
                base.tokenizer(self.prompt, add_special_tokens=False)["input_ids"])
            self.room = context - used

    def answer(self, base) -> tuple[bool, str]:
        """The verdict and the answer judged: the completion of --max-tokens tokens, or,
        where it ends where TEXT may go on (AnswerTest.pending), read on until TEXT is
        there or is not (AnswerTest.read_on), generation stopping once that is decided
        (AnswerTest.decided): a good state's answer cut short by --max-tokens is not
        counted bad."""
        from ..editing.progress import progress
        from ..eval.generation import greedy_generate

        def completion(tokens: int, stop=None, steps=None) -> str:
            return greedy_generate(base.model, base.tokenizer, [self.prompt],
                                   max_new_tokens=tokens, stop=stop, steps=steps)[0]

        window = completion(self.max_tokens)
        if not (self.test.pending(window) and self.past() > 0):
            return self.test.good(window), window
        # read on only until TEXT is decided (there, or left): the verdict those tokens
        # give is the one the whole past() tokens give, at a fraction of the steps
        # (on the answer past the window: a shorter one may decode otherwise than its end
        # in the window, ' Jose' before an accent)
        head = unicodedata.normalize("NFC", window).rstrip("\ufffd")
        tokens = self.max_tokens + self.past()
        with progress(total=tokens, desc="reading the answer on", unit="tok") as bar:
            longer = completion(tokens, steps=bar, stop=lambda so_far: (
                unicodedata.normalize("NFC", so_far).startswith(head)
                and self.test.decided(window, so_far)))
        answer = self.test.read_on(window, longer)
        return self.test.good(answer), answer

    def past(self) -> int:
        """The tokens a pending answer is read on past --max-tokens: AnswerTest.reach() (of
        TEXT's tokens, once check() has counted them), or fewer where the model's context
        ends first."""
        reach = self.test.reach(self.text_tokens)
        return reach if self.room is None else max(0, min(reach, self.room - self.max_tokens))

    def said(self, answer: str) -> str:
        return f"its answer {answer!r}"

    def rule(self, answer: str) -> str:
        rule = f"a good one {self.test.describe()}"
        if self.test.expect is not None and self.test.pending(answer):  # EOS or the context
            past, end = self.past(), (" (the model's context ends there)"
                                      if self.past() < self.test.reach(self.text_tokens)
                                      else "")
            rule += (f"; the answer, read {past} tokens past --max-tokens {self.max_tokens}"
                     f"{end}, still ends where TEXT may go on")
        return rule


class FactsQuestion:
    """ES over the facts of a file (CounterFact or memstore's; those with target_true): the
    share whose target_new the model prefers to target_true on the fact's prompt, the
    efficacy `eval FILE` reports (paraphrases and neighbours are not asked); good at
    `threshold` or above."""

    def __init__(self, path: str, threshold: float = 1.0) -> None:
        import dataclasses

        if not 0 < threshold <= 1:  # NaN too, which every comparison fails: no state good
            raise ValidationError(f"--threshold {threshold}: an ES above 0 and at most 1")

        from ..eval.data import load_records, parse_counterfact_record, source_name

        self.name = source_name(path)
        raw = load_records(path)
        if not raw:
            raise ValidationError(f"{self.name}: no records")
        if any("src" in r and "answers" in r for _, r in raw):
            raise ValidationError(f"{self.name} is a zsRE file: --facts measures ES, which "
                                  "needs each fact's target_true (CounterFact or memstore "
                                  "facts files)")
        records = [parse_counterfact_record(r, where) for where, r in raw]
        self.records = [dataclasses.replace(
            rec, request=dataclasses.replace(rec.request, paraphrases=(), neighborhood=()))
            for rec in records
            if rec.request.target_true not in (None, rec.request.target_new)]
        if not self.records:
            raise ValidationError(f"{self.name}: no fact has a target_true other than its "
                                  "target_new: ES compares the two")
        self.threshold = threshold

    def check(self, base) -> None:
        from ..editing.requests import check_fits, context_length, request_texts

        for rec in self.records:
            check_fits(base.tokenizer, request_texts(rec.request, rec.where),
                       context_length(base.model))

    def answer(self, base) -> tuple[bool, float]:
        from ..eval.metrics import counterfact_metrics

        es = counterfact_metrics(base.model, base.tokenizer, self.records)["efficacy"]
        return es >= self.threshold, es

    def said(self, answer: float) -> str:
        return f"its ES over the {len(self.records)} facts of {self.name} is {answer:.3f}"

    def rule(self, answer: float) -> str:
        return f"a good one is at least --threshold {self.threshold:g}"


@dataclass(frozen=True)
class Step:
    """One state asked: `commit` (BASE: the base model), its answer (a completion, or an
    ES) and verdict, and for a search step git's counts: `left`, the revisions left to test
    after this one (where it is good), and `steps`, roughly how many steps that takes."""

    commit: str | None
    answer: str | float
    good: bool
    left: int | None = None
    steps: int | None = None


@dataclass(frozen=True)
class Bisection:
    good: tuple[Step, ...]  # the GOOD ends, checked first
    bad: Step  # the BAD end
    steps: tuple[Step, ...]  # the search, in order
    first_bad: str  # the first bad commit
    first_bad_answer: str | float
    merge_bases: tuple[Step, ...] = ()  # asked after the ends, where a GOOD is on a branch


def estimate_steps(n: int) -> int:
    """git's estimate_bisect_steps: roughly how many steps N candidates take."""
    if n < 3:
        return 0
    e = 1 << (n.bit_length() - 1)  # the largest power of two not above n
    steps = e.bit_length() - 1
    return steps if e < 3 * (n - e) else steps - 1


def reach(g: dict[str, tuple[tuple[str, ...], float]], candidates: set[str]) -> dict[str, int]:
    """Each candidate's ancestors among `candidates`, itself included, as a bit set over
    their order (newest first). A parent outside the candidates is a GOOD's ancestor, and
    so are all of its own: the walk stops there."""
    order = sorted(candidates, key=lambda c: (-g[c][1], c))
    bit = {c: 1 << i for i, c in enumerate(order)}
    bits: dict[str, int] = {}
    for start in order:
        stack = [start]
        while stack:  # parents first, without recursion (a long history)
            c = stack[-1]
            if c in bits:
                stack.pop()
                continue
            todo = [p for p in g[c][0] if p in candidates and p not in bits]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            value = bit[c]
            for p in g[c][0]:
                if p in candidates:
                    value |= bits[p]
            bits[c] = value
    return bits


def pick(g: dict[str, tuple[tuple[str, ...], float]], candidates: set[str],
         bits: dict[str, int]) -> tuple[str, int]:
    """The candidate to test and its weight, as git's find_bisection picks it (the module's
    docstring): merges weighed first, then single strands of pearls from their known
    parent, each checked for halfway as it is weighed; else the oldest of the best."""
    order = sorted(candidates, key=lambda c: (g[c][1], c))  # git's list, reversed: oldest first
    n = len(order)
    inside = {c: list(dict.fromkeys(p for p in g[c][0] if p in candidates)) for c in order}

    def halfway(w: int) -> bool:
        return abs(2 * w - n) <= 1 or abs(2 * w - n) < n // 1024

    weight = {c: 1 for c in order if not inside[c]}  # roots: not checked for halfway
    for c in order:
        if len(inside[c]) > 1:  # a merge: its ancestors counted
            weight[c] = bits[c].bit_count()
            if halfway(weight[c]):
                return c, weight[c]
    while len(weight) < n:
        for c in order:
            if c not in weight and inside[c][0] in weight:
                weight[c] = weight[inside[c][0]] + 1
                if halfway(weight[c]):
                    return c, weight[c]
    at = max(range(n), key=lambda i: (min(weight[order[i]], n - weight[order[i]]), -i))
    return order[at], weight[order[at]]


def members(bits: int, order: Sequence[str]) -> set[str]:
    return {c for i, c in enumerate(order) if bits >> i & 1}


def bisect(repo: Repository, question: PromptQuestion | FactsQuestion, good: Sequence[str],
           bad: str | None = None,
           on_step: Callable[[str, Step], None] | None = None,
           first_parent: bool = False) -> Bisection:
    """The first commit between the GOOD revisions ('base': the base model) and BAD (None:
    HEAD) whose state's answer to `question` is bad. The ends are checked
    first, and the search refused where a GOOD is bad or BAD good, as git's; then, where a
    GOOD is no ancestor of BAD, their merge bases, as git's (one that is bad refused).
    `on_step` hears of each state asked: ('good' or 'bad', the step) for the ends,
    ('merge base', it), ('step', it) for the search. `first_parent`: the candidates are
    those on BAD's first-parent line, as git's --first-parent."""
    from .history import ancestors_of, best_common, checked_graph
    from .states import check_base, open_base, state_commit, state_of

    if not good:
        raise ValidationError("give a --good revision: one whose state answers as it should")
    bad_commit = state_commit(repo, bad)
    if bad_commit is BASE:
        raise ValidationError(f"the bad revision {bad or 'HEAD'!r} is the base model: there "
                              "is no commit before it to find")
    good_commits = [state_commit(repo, rev) for rev in good]
    g = checked_graph(repo.store)
    reached = ancestors_of(g, [bad_commit], indexed=True)
    for rev, c in zip(good, good_commits):
        if c == bad_commit:
            raise ValidationError(f"the good revision {rev!r} and the bad revision "
                                  f"{bad or 'HEAD'!r} are the same commit")
        if c is not BASE and c not in reached:
            if not any(repo.db.query("select 1 from commits where id = ?", [c])):
                raise not_indexed(c)  # damage (a ref naming it), not the user's revision
            if bad_commit in ancestors_of(g, [c], indexed=True):  # git's refusal too
                raise ValidationError(
                    f"the good revision {rev!r} ({c[:12]}) is a descendant of the bad "
                    f"revision {bad or 'HEAD'!r} ({bad_commit[:12]}), not an ancestor: "
                    "good and bad swapped?")
    known = [c for c in good_commits if c is not BASE]
    candidates = reached - (ancestors_of(g, known, indexed=True) if known else set())
    walk = g  # the ancestry the search walks
    if first_parent:  # git's --first-parent: BAD's first-parent line only, a merge one step
        walk, candidates = first_parents(g, bad_commit, candidates)
    # A GOOD on another branch (no ancestor of BAD): git tests the merge bases of BAD and
    # the GOODs first, for the answer may have broken before them and been mended on the
    # GOOD's side (no commit in common: the base model is theirs)
    diverged = [c for c in known if c not in reached]
    merge_bases: list[str | None] = []
    if diverged:
        merge_bases = [*best_common(g, [bad_commit], known)] or [BASE]
        merge_bases = [m for m in merge_bases if m not in good_commits]

    check_base(repo)
    question.check(open_base(repo, check=False))

    def asked(commit: str | None, left: int | None = None, steps: int | None = None) -> Step:
        state = state_of(repo, commit)
        verdict, answer = question.answer(state)
        if verdict and commit is not BASE:  # the candidates left go on from it: a state
            state.hold()  # to build them on (states.LoadedBase.set_sets), not the base's
            holding.append(state)
        return Step(commit, answer, verdict, left, steps)

    holding: list = []

    try:
        named: dict[str | None, str] = {}
        for rev, c in zip(good, good_commits):
            named.setdefault(c, rev)  # a commit named twice is asked once
        ends = []
        for c, rev in named.items():
            step = asked(c)
            if on_step is not None:
                on_step("good", step)
            if not step.good:
                raise MemstoreError(f"the good revision {rev!r} is bad: "
                                    f"{question.said(step.answer)} ({question.rule(step.answer)})")
            ends.append(step)
        bad_step = asked(bad_commit)
        if on_step is not None:
            on_step("bad", bad_step)
        if bad_step.good:
            raise MemstoreError(f"the bad revision {bad or 'HEAD'!r} is good: "
                                f"{question.said(bad_step.answer)} ({question.rule(bad_step.answer)})")
        bases = []
        for m in merge_bases:
            step = asked(m)
            if on_step is not None:
                on_step("merge base", step)
            if not step.good:
                raise MemstoreError(
                    f"the merge base {'(the base model)' if m is BASE else m[:12]} of the bad "
                    "revision and "
                    f"the good ones is bad: {question.said(step.answer)} "
                    f"({question.rule(step.answer)}); the answer was mended between it and "
                    f"{', '.join(repr(named[c]) for c in diverged)}, as git says")
            bases.append(step)

        def step(commit: str, left: int, rough: int) -> Step:
            done = asked(commit, left, rough)
            if on_step is not None:
                on_step("step", done)
            return done

        steps = search(walk, candidates, step)
        last_bad = next((s for s in reversed(steps) if not s.good), bad_step)
        return Bisection(tuple(ends), bad_step, tuple(steps), last_bad.commit, last_bad.answer,
                         tuple(bases))
    finally:
        for state in holding:
            state.release()  # the held state's memory


def first_parents(g: dict[str, tuple[tuple[str, ...], float]], bad: str, candidates: set[str]
                  ) -> tuple[dict[str, tuple[tuple[str, ...], float]], set[str]]:
    """The candidates on BAD's first-parent line, and the ancestry walked by first parents
    only (git's bisect --first-parent: a merge weighs as a commit of one parent)."""
    line: list[str] = []
    c: str | None = bad
    while c is not None and c in candidates:
        line.append(c)
        c = g[c][0][0] if g[c][0] else None
    return {c: (g[c][0][:1], g[c][1]) for c in line}, set(line)


def search(g: dict[str, tuple[tuple[str, ...], float]], candidates: set[str],
           ask: Callable[[str, int, int], Step]) -> list[Step]:
    """git's search over `candidates` (BAD and the commits it reaches that no GOOD does;
    `g`: the ancestry, id -> (parents, time)): `ask` hears of each commit to test with
    git's counts (the revisions left to test after it, roughly how many steps) and says
    whether its state is good. Returns the steps; the first bad commit is the last one
    found bad (BAD where none was)."""
    steps = []
    while len(candidates) > 1:
        order = sorted(candidates, key=lambda c: (-g[c][1], c))
        bits = reach(g, candidates)
        chosen, weight = pick(g, candidates, bits)
        done = ask(chosen, len(candidates) - weight - 1, estimate_steps(len(candidates)))
        steps.append(done)
        below = members(bits[chosen], order)
        candidates = candidates - below if done.good else below
    return steps

