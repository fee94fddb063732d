"""log's --grep/--author patterns, as git reads them: POSIX basic regular expressions by
default, extended ones with -E (glibc's regcomp, GNU operators included), translated to
Python's `re`. Each case below is what git 2.39's `log --grep` listed, or the reason it
gave for refusing the pattern ("fatal: command line, 'P': REASON"), over MESSAGES; the
last test asks the git installed here again. Python's `re`, which memstore used, reads
`a+b`, `a|b`, `(x)`, `{2}` and `\\d` otherwise in the basic dialect, and `\\d`, `[\\d]`,
`[[:digit:]]` and `\\<` otherwise in both."""
from __future__ import annotations

import os
import re
import shutil
import time

import children
import pytest

from memstore.store import posix_regex
from memstore.store.posix_regex import PatternError, compile_pattern, matches

MESSAGES = ["a+b", "aab", "a|b", "(x)", "x", "d5", "a\\b", "7 digits", "a{2}", "{",
            "*a star", "x$y", "café", "CAFÉ x*y", "first\nsecond line", "word_1 end",
            "a.b", "]x", "^start"]
B, E = "basic", "extended"
EVERY = list(range(len(MESSAGES)))
CASES = [  # dialect, pattern, the MESSAGES (indexes) git lists, or its reason
    (B, 'a+b', [0]),
    (E, 'a+b', [1]),
    (B, 'a\\+b', [1]),
    (E, 'a\\+b', [0]),
    (B, 'a|b', [2]),
    (E, 'a|b', [0, 1, 2, 6, 8, 10, 12, 16, 18]),
    (B, 'a\\|b', [0, 1, 2, 6, 8, 10, 12, 16, 18]),
    (B, '(x)', [3]),
    (E, '(x)', [3, 4, 11, 13, 17]),
    (B, '\\(x\\)', [3, 4, 11, 13, 17]),
    (B, 'a{2}', [8]),
    (E, 'a{2}', [1]),
    (B, 'a\\{2\\}', [1]),
    (E, 'a\\{2\\}', [8]),
    (B, '\\d', [5, 7, 14, 15]),  # the letter d: no digit escape
    (E, '\\d', [5, 7, 14, 15]),  # the letter d: no digit escape
    (B, '[[:digit:]]', [5, 7, 8, 15]),
    (E, '[\\d]', [5, 6, 7, 14, 15]),  # '\' is itself in brackets
    (B, '\\', 'Trailing backslash'),
    (E, '\\', 'Trailing backslash'),
    (B, '*a', [10]),
    (E, '*a', 'Invalid preceding regular expression'),
    (B, 'a**', 'Invalid preceding regular expression'),
    (E, 'a**', EVERY),
    (B, 'a\\{2', 'Unmatched \\{'),
    (E, 'a{2', 'Unmatched \\{'),
    (E, 'a{x}', 'Invalid content of \\{\\}'),
    (B, 'a\\{3,2\\}', 'Invalid content of \\{\\}'),
    (E, '{', 'Invalid preceding regular expression'),
    (B, '{', [8, 9]),
    (E, '}', [8]),
    (B, '\\(', 'Unmatched ( or \\('),
    (E, '(', 'Unmatched ( or \\('),
    (E, ')', [3]),
    (B, '\\)', 'Unmatched ( or \\('),
    (E, '\\(', [3]),
    (B, '[a', 'Unmatched [, [^, [:, [., or [='),
    (B, '[[:foo:]]', 'Invalid character class name'),
    (B, '[z-a]', 'Invalid range end'),
    (E, '[a-c-e]', 'Invalid range end'),
    (B, '[[.space.]]', 'Invalid collation character'),
    (B, '\\1', 'Invalid back reference'),
    (E, '(a)\\1', [1]),
    (B, '\\(a\\)\\1', [1]),
    (B, '^*', [10]),
    (B, '\\(^a\\)', [0, 1, 2, 6, 8, 16]),
    (B, 'a^', []),
    (E, '^+', 'Invalid preceding regular expression'),
    (B, 'x$y', [11]),
    (E, 'x$y', []),
    (B, 'x$', [4, 17]),
    (E, 'line$', [14]),
    (B, '^second', [14]),  # a line at a time
    (B, 'first.second', []),  # a line at a time
    (B, '[]x]', [3, 4, 11, 13, 17]),
    (B, '[^]a-z]', [0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18]),
    (B, 'caf[[:alpha:]]', [12]),
    (B, 'caf\\w', [12]),
    (E, '\\<x\\>', [3, 4, 11, 13, 17]),
    (B, '\\bd', [5, 7]),
    (B, '[[:upper:]][[:upper:]]', [13]),
    (E, 'a+?', EVERY),
    (E, 'a{,2}', EVERY),
    (E, '(a|b){2}', [1]),
    (B, '\\(a\\|b\\)\\{2\\}', [1]),
    (B, 'a\\.b', [16]),
    (B, '[.]b', [16]),
    (B, 'caf[é]', [12]),
    (B, '[a-é]', 'Invalid collation character'),  # C.UTF-8: no range ends past ASCII
    (E, '[é-a]', 'Invalid collation character'),
    (B, '[é-[:alpha:]]', 'Invalid range end'),
    (B, '^$', EVERY),  # git greps the record: the line before the message is empty
    (B, '[_-a]', [0, 1, 2, 6, 8, 10, 12, 15, 16, 18]),
]
ANY_CASE = [  # with -i: glibc reads the pattern upper-cased, a range's ends too
    (B, '[_-a]', 'Invalid range end'),
    (E, '[Z-a]', 'Invalid range end'),
    (E, '[A-z]', [i for i in EVERY if i != 9]),
    (B, '[0-Z]', [i for i in EVERY if i != 9]),
]


@pytest.mark.parametrize("dialect, pattern, listed, ignore_case",
                         [(*c, False) for c in CASES] + [(*c, True) for c in ANY_CASE])
def test_patterns_read_as_git_reads_them(dialect, pattern, listed, ignore_case):
    if isinstance(listed, str):
        with pytest.raises(PatternError, match=f"^{re.escape(listed)}$"):
            compile_pattern(pattern, dialect, ignore_case)
        return
    compiled = compile_pattern(pattern, dialect, ignore_case)
    assert [i for i, m in enumerate(MESSAGES) if matches(compiled, m)] == listed


def test_fixed_strings_and_any_case():
    assert matches(compile_pattern("a.b", "fixed"), "a.b")
    assert not matches(compile_pattern("a.b", "fixed"), "axb")
    assert matches(compile_pattern("CAF[[:alpha:]]", "basic", ignore_case=True), "café")
    assert matches(compile_pattern("[[:upper:]]", "extended", ignore_case=True), "x")
    assert matches(compile_pattern("\\d+", "perl"), "7")  # -P: Python's re


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_cases_are_what_git_lists(tmp_path):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "LC_ALL": "C.UTF-8"}

    def git(*args: str, check: bool = True):
        return children.run(["git", "-C", str(tmp_path), *args], env=env, check=check,
                            capture_output=True, text=True)

    git("init", "-q")
    for m in MESSAGES:
        git("commit", "-q", "--allow-empty", "-m", m)
    for dialect, pattern, listed, any_case in [(*c, False) for c in CASES] + [
            (*c, True) for c in ANY_CASE]:
        r = git("log", "--format=%x00%B", *(["-E"] if dialect == E else []),
                *(["-i"] if any_case else []), f"--grep={pattern}", check=False)
        if isinstance(listed, str):
            assert r.stderr.strip() == f"fatal: command line, '{pattern}': {listed}", pattern
        else:
            got = sorted(MESSAGES.index(x.strip("\n")) for x in r.stdout.split("\0") if x)
            assert got == listed, (dialect, pattern)


def test_a_search_past_the_limit_says_so(monkeypatch):
    """Python's re backtracks where glibc's does not: `(a+)+b` over a line of forty a's
    takes it hours (each a more doubles it), git's answer is at once. A search that runs
    past the limit stops with a PatternError that says so, rather than hang."""
    monkeypatch.setattr(posix_regex, "SEARCH_LIMIT_S", 0.05)
    for dialect, pattern, line in ((E, "(a+)+b", "a" * 24), (B, "\\(a*\\)*b", "a" * 22)):
        compiled = compile_pattern(pattern, dialect)
        start = time.monotonic()
        with pytest.raises(PatternError, match=f"^a search ran past 0.05 s on a text of "
                                               f"{len(line)} characters$"):
            matches(compiled, line)
        assert time.monotonic() - start < 1, pattern
    assert matches(compile_pattern("(a+)+b", E), "a" * 24 + "b")  # the timer is gone


def test_a_pattern_too_big_to_compile_soon_is_refused():
    """9,000 [[:alpha:]] (99,000 characters, 15 million in Python's form) compiled for
    minutes where git's took 0.04 s; the bound refuses it at once. A 100,000-character
    text is compiled."""
    start = time.monotonic()
    with pytest.raises(PatternError, match="^Regular expression too big here: "):
        compile_pattern("[[:alpha:]]" * 9000)
    assert time.monotonic() - start < 5
    assert matches(compile_pattern("ab" * 50_000, B), "x" + "ab" * 50_000)


def test_the_limit_leaves_the_caller_s_alarm_and_handler_as_they_were(monkeypatch):
    """A library caller's own SIGALRM handler and running ITIMER_REAL: the search's limit
    set its timer over the caller's and disarmed it after (the caller's alarm never
    came); it now leaves a running one alone (that search unbounded) and puts the caller's
    handler back."""
    import signal

    def callers(*_):
        raise AssertionError("the caller's alarm, during the search")

    before = signal.signal(signal.SIGALRM, callers)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30, 7)
        assert not matches(compile_pattern("b", B), "aaaa")
        delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
        assert 29 < delay <= 30 and interval == 7
        assert signal.getsignal(signal.SIGALRM) is callers
        monkeypatch.setattr(posix_regex, "SEARCH_LIMIT_S", 0.05)  # the caller's handler set
        with pytest.raises(PatternError, match="^a search ran past 0.05 s"):
            matches(compile_pattern("(a+)+b", E), "a" * 24)
        assert signal.getsignal(signal.SIGALRM) is callers
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def test_an_alarm_that_comes_as_the_search_ends_raises_nothing_after_it(monkeypatch):
    """The timer can run out between the search's end and its disarming: its handler then
    ran in the cleanup and raised its private exception out of search (a traceback in
    the CLI). Here the alarm comes inside the disarming call, as it can."""
    import signal

    real = signal.setitimer

    def late(which, seconds, *interval):
        if seconds == 0:
            signal.raise_signal(signal.SIGALRM)  # ran out just now
        return real(which, seconds, *interval)

    monkeypatch.setattr(posix_regex.signal, "setitimer", late)
    assert matches(compile_pattern("a", B), "xa")
    assert not posix_regex.search(compile_pattern("b", B), "xa")


def test_without_a_timer_the_search_runs_unbounded(monkeypatch):
    """Windows has no SIGALRM nor setitimer: the search runs there with no limit, rather
    than fail with an AttributeError; off the main thread too (no signal reaches it)."""
    import signal
    import threading

    monkeypatch.delattr(signal, "setitimer")
    monkeypatch.delattr(signal, "SIGALRM")
    assert matches(compile_pattern("a\\+b", B), "xaab")
    monkeypatch.undo()
    found = []
    t = threading.Thread(target=lambda: found.append(matches(compile_pattern("ab", B), "ab")))
    t.start()
    t.join()
    assert found == [True]
