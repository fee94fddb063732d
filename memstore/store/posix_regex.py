"""git's --grep/--author patterns (log): POSIX regular expressions, as glibc's regcomp
reads them with git's flags, translated to Python's `re`.

git compiles them as basic (BRE) by default, extended (ERE) with -E, as a fixed string with
-F; -P is PCRE, which Python's `re` stands for here. The dialects differ from Python's
where a user can tell: in BRE `a+b`, `a|b`, `(x)`, `{2}` are literal text and `\\+`, `\\|`,
`\\(x\\)`, `\\{2\\}` are the operators (GNU's, as git's); in both `\\d` is the letter d (there
is no digit escape: `[[:digit:]]`), a backslash inside brackets is itself, `[[:alpha:]]`
and the other POSIX classes are classes, `\\<` and `\\>` are word edges. Where glibc refuses
a pattern (`\\` alone: "Trailing backslash"; `a**` in BRE, `*a` in ERE: "Invalid preceding
regular expression") PatternError says it in glibc's words; where it reads a character as
itself (a leading `*` in BRE, a `)` with no `(` in ERE) so does the translation. One
glibc quirk is not copied: under -i an escaped ordinary letter (`\\d`, undefined in POSIX)
matches nothing there; here it is the letter, as without -i. Nor is another: glibc's `\\B`
with no character beside it in the pattern (`\\B`, `^\\B`) matches every line; here it
is Python's, a place that is no word boundary, as glibc's is where a character is beside
it (`\\B1`, `a\\Bb`).

git greps a message line by line, so a match lies within one line: `^` and `$` are a line's
start and end and `.` or `[^a]` never take a newline (`matches`). Classes are Unicode's,
as glibc's in a UTF-8 locale; a `[=x=]` equivalence class is x alone. The answers are
glibc's in C.UTF-8: a range with an end past ASCII (`[a-é]`) is refused there ("Invalid
collation character"), and here (a locale with collation rules, en_US.UTF-8, may read it
otherwise); with -i glibc reads the pattern upper-cased, a range's ends too, so `[_-a]`
is refused and `[0-Z]` takes no `_`.

Python's re backtracks where glibc does not (`(a+)+b` over forty a's: hours): a search
past SEARCH_LIMIT_S is a PatternError saying so, and a pattern whose Python form is over
MAX_SOURCE characters (thousands of POSIX classes: minutes to compile) is refused."""
from __future__ import annotations

import functools
import re
import signal
import threading
import unicodedata

DUP_MAX = 0x7FFF  # glibc's RE_DUP_MAX
SEARCH_LIMIT_S = 2.0  # one search of one line, past which PatternError says so
SLOW = ("a pattern whose repetitions nest or repeat a back reference can take that long: "
        "write it without")  # what a caller adds to that PatternError
MAX_SOURCE = 300_000  # characters of Python's form: re compiles 5-10 µs of each (a
# 100,000-character pattern: half a second; 9,000 [[:alpha:]], 15 million: minutes)

BADRPT = "Invalid preceding regular expression"
EBRACK = "Unmatched [, [^, [:, [., or [="
EPAREN = "Unmatched ( or \\("
EBRACE = "Unmatched \\{"
BADBR = "Invalid content of \\{\\}"
ERANGE = "Invalid range end"
ECTYPE = "Invalid character class name"
ECOLLATE = "Invalid collation character"
ESUBREG = "Invalid back reference"
EESCAPE = "Trailing backslash"
ESIZE = "Regular expression too big"


class PatternError(ValueError):
    """A pattern glibc's regcomp refuses; the message is its reason, in its words."""


def compile_pattern(pattern: str, dialect: str = "basic",
                    ignore_case: bool = False, lines: bool = True) -> re.Pattern:
    """`pattern` as git reads it in `dialect` (basic, extended, fixed or perl), compiled;
    PatternError where git would refuse it, or where Python's form is over MAX_SOURCE
    characters (its compile would take seconds to minutes; glibc's takes milliseconds).
    `lines` False: for a search over a whole text, as git's `^{/REGEX}` (regcomp without
    REG_NEWLINE): `.` and `[^a]` take a newline too."""
    if dialect == "fixed":
        source = re.escape(pattern)
    elif dialect == "perl":
        source = pattern
    else:
        try:
            source = translate(pattern, extended=dialect == "extended",
                               ignore_case=ignore_case, lines=lines)
        except RecursionError:  # groups nested past Python's stack
            raise PatternError(ESIZE) from None
    if len(source) > MAX_SOURCE:
        raise PatternError(f"{ESIZE} here: {len(source):,} characters in Python's form, "
                           f"over {MAX_SOURCE:,}")
    try:
        return re.compile(source, (re.IGNORECASE if ignore_case else 0)
                          | (0 if lines else re.DOTALL))
    except (re.error, RecursionError, OverflowError) as e:
        raise PatternError(str(e).splitlines()[0]) from None


class _Expired(Exception):
    pass


def search(pattern: re.Pattern, text: str) -> bool:
    """Whether `pattern` matches within `text`. Python's re backtracks where glibc's does
    not: `(a+)+b` over a line of forty a's takes it hours (twice as long for each a more),
    git none; so a search that runs past SEARCH_LIMIT_S is a PatternError that says so (in
    the main thread, where a timer's signal can stop it: the CLI's)."""
    return _bounded(lambda: pattern.search(text) is not None, text)


def matches(pattern: re.Pattern, text: str) -> bool:
    """Whether `pattern` matches within one of `text`'s lines, as git's grep looks (bounded
    as `search`, all the lines together). git greps the commit's whole record and takes the
    empty line between its headers and the message as the message's first, so a pattern
    that matches an empty line (`^$`) matches every commit there: here too."""
    lines = ("", *text.split("\n"))
    return _bounded(lambda: any(pattern.search(line) for line in lines), text)


def _bounded(run, text: str) -> bool:
    """`run()`, stopped by a timer past SEARCH_LIMIT_S: PatternError. Unbounded where no
    timer can stop it: off the main thread (a signal's handler runs there only), with no
    setitimer (Windows), while the caller's own ITIMER_REAL runs (left as it is) or its
    SIGALRM handler was set outside Python (not one signal.signal can put back)."""
    if (not hasattr(signal, "setitimer") or not hasattr(signal, "SIGALRM")
            or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0]
            or signal.getsignal(signal.SIGALRM) is None):
        return run()
    live = True

    def expire(*_) -> None:
        if live:  # not once the search is over: an alarm late to run raises nothing
            raise _Expired

    before = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, SEARCH_LIMIT_S)
        return run()
    except _Expired:
        raise PatternError(f"a search ran past {SEARCH_LIMIT_S:g} s on a text of "
                           f"{len(text)} characters") from None
    finally:
        live = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def translate(pattern: str, extended: bool, ignore_case: bool = False,
              lines: bool = True) -> str:
    """A POSIX basic (or, `extended`, extended) regular expression as Python's `re`
    source that matches the same text; PatternError where glibc's regcomp refuses it.
    `lines`: a negated bracket takes no newline (compile_pattern's)."""
    return _Translator(pattern, extended, ignore_case, lines).run()


class _Translator:
    def __init__(self, pattern: str, extended: bool, ignore_case: bool,
                 lines: bool = True) -> None:
        self.p, self.ere, self.i = pattern, extended, 0
        self.ignore_case, self.lines = ignore_case, lines
        self.opened = 0  # groups opened so far (their numbers)
        self.closed: set[int] = set()  # groups closed so far: those a back reference names

    def run(self) -> str:
        return self.alternation(nested=False)

    def alternation(self, nested: bool) -> str:
        branches = [self.branch(nested)]
        while self.at_alt():
            self.i += 1 if self.ere else 2
            branches.append(self.branch(nested))
        return "|".join(branches)

    def at_alt(self) -> bool:
        return self.p.startswith("|" if self.ere else "\\|", self.i)

    def at_close(self) -> bool:
        return self.p.startswith(")" if self.ere else "\\)", self.i)

    def branch(self, nested: bool) -> str:
        items: list[str] = []
        self.branch_start = self.i  # BRE's `^` is an anchor here only
        start = True  # a repetition here has nothing before it (after an anchor too)
        while self.i < len(self.p) and not self.at_alt() \
                and not (nested and self.at_close()):
            kind, text = self.item(start)
            if kind == "anchor":
                items.append(text)
                start = True
                continue
            items.append(text)
            start = False
            quantified = False
            while (q := self.repetition()) is not None:
                if quantified and not self.ere and q[0] in "*{":
                    raise PatternError(BADRPT)  # glibc's RE_CONTEXT_INVALID_DUP
                items[-1] = (f"(?:{items[-1]})" if quantified else items[-1]) + q[1]
                quantified = True
        return "".join(items)

    def repetition(self) -> tuple[str, str] | None:
        """The repetition operator at `i` (consumed): (its kind, Python's), else None."""
        p, i = self.p, self.i
        if i >= len(p):
            return None
        if p[i] == "*":
            self.i += 1
            return "*", "*"
        if self.ere and p[i] in "+?":
            self.i += 1
            return p[i], p[i]
        if not self.ere and p.startswith(("\\+", "\\?"), i):
            self.i += 2
            return p[i + 1], p[i + 1]
        if p.startswith("{" if self.ere else "\\{", i):
            self.i += 1 if self.ere else 2
            return "{", self.interval()
        return None

    def interval(self) -> str:
        """`{m,n}` after its opening brace: Python's form of it."""
        close = "}" if self.ere else "\\}"
        end = self.p.find(close, self.i)
        if end < 0:
            raise PatternError(EBRACE)
        body, self.i = self.p[self.i:end], end + len(close)
        m = re.fullmatch(r"([0-9]*)(,([0-9]*))?", body, re.ASCII)
        if not m or (not m[1] and not m[2]):
            raise PatternError(BADBR)
        low = int(m[1]) if m[1] else 0
        high = low if not m[2] else (int(m[3]) if m[3] else None)
        if high is not None and low > high:
            raise PatternError(BADBR)
        if (high if high is not None else low) > DUP_MAX:
            raise PatternError(ESIZE)
        return f"{{{low}}}" if m[2] is None else f"{{{low},{'' if high is None else high}}}"

    def item(self, start: bool) -> tuple[str, str]:
        """The atom or anchor at `i` (consumed): ("atom", re) or ("anchor", re)."""
        p, i = self.p, self.i
        c = p[i]
        ere = self.ere
        if c == "*" or ere and c in "+?{" or not ere and p.startswith(("\\+", "\\?", "\\{"), i):
            # a repetition with nothing to repeat: ERE refuses it; BRE reads `*`, `\+`,
            # `\?` as the character and refuses `\{`
            if ere or c == "\\" and p[i + 1] == "{":
                raise PatternError(BADRPT)
            self.i += 1 if c == "*" else 2
            return "atom", re.escape(p[self.i - 1])
        if c == "^" and (ere or i == self.branch_start):
            self.i += 1
            return "anchor", "^"
        if c == "$" and (ere or self.at_branch_end(i + 1)):
            self.i += 1
            return "anchor", "\\Z"  # a line's end: `matches` searches each line
        if c == ".":
            self.i += 1
            return "atom", "."
        if c == "[":
            self.i += 1
            return "atom", self.bracket()
        if ere and c == "(" or not ere and p.startswith("\\(", i):
            self.i += 1 if ere else 2
            self.opened += 1
            number = self.opened
            inner = self.alternation(nested=True)
            if not self.at_close():
                raise PatternError(EPAREN)
            self.i += 1 if ere else 2
            self.closed.add(number)
            return "atom", f"({inner})"
        if c == "\\":
            return self.escape()
        self.i += 1
        return "atom", re.escape(c)

    def at_branch_end(self, i: int) -> bool:
        return i == len(self.p) or self.p.startswith(("\\)", "\\|"), i)

    def escape(self) -> tuple[str, str]:
        p, i = self.p, self.i
        if i + 1 >= len(p):
            raise PatternError(EESCAPE)
        c = p[i + 1]
        self.i += 2
        if c in "123456789":
            if int(c) not in self.closed:
                raise PatternError(ESUBREG)
            return "atom", f"(?:\\{c})"  # a digit after it is a character
        words = {"w": "\\w", "W": "\\W", "s": "\\s", "S": "\\S"}
        if c in words:
            return "atom", words[c]
        edges = {"b": "\\b", "B": "\\B", "<": "\\b(?=\\w)", ">": "\\b(?<=\\w)",
                 "`": "\\A", "'": "\\Z"}
        if c in edges:
            return "anchor", edges[c]
        if c == ")" and not self.ere:
            raise PatternError(EPAREN)  # a close with no open (nested ones end the branch)
        return "atom", re.escape(c)

    def bracket(self) -> str:
        """A bracket expression after its '[': a Python class matching the same characters
        (never a newline, as git's REG_NEWLINE)."""
        p = self.p
        negated = self.i < len(p) and p[self.i] == "^"
        if negated:
            self.i += 1
        parts: list[str] = []
        first = True
        while True:
            if self.i >= len(p):
                raise PatternError(EBRACK)
            if p[self.i] == "]" and not first:
                self.i += 1
                break
            kind, lo = self.bracket_element(first)
            first = False
            if self.i + 1 < len(p) and p[self.i] == "-" and p[self.i + 1] != "]":
                if kind != "char":
                    raise PatternError(ERANGE)
                self.i += 1
                end_kind, hi = self.bracket_element(True)
                if end_kind != "char":
                    raise PatternError(ERANGE)
                if not (lo.isascii() and hi.isascii()):
                    raise PatternError(ECOLLATE)  # glibc in C.UTF-8: no multibyte ends
                if self.ignore_case:  # glibc's REG_ICASE reads the pattern upper-cased:
                    lo, hi = lo.upper(), hi.upper()  # [Z-a] and [_-a] are refused
                if ord(hi) < ord(lo):
                    raise PatternError(ERANGE)
                parts.append(f"{_in_class(lo)}-{_in_class(hi)}")
            else:
                parts.append(lo if kind == "class" else _in_class(lo))
        body = "".join(parts)
        if negated:
            return f"[^{body}\\n]" if self.lines else f"[^{body}]"
        return f"[{body}]"

    def bracket_element(self, hyphen_ok: bool) -> tuple[str, str]:
        """One element of a bracket expression: ("char", the character) or ("class", a
        Python class body)."""
        p, i = self.p, self.i
        if p.startswith(("[:", "[=", "[."), i):
            delim = p[i + 1]
            end = p.find(delim + "]", i + 2)
            if end < 0:
                raise PatternError(EBRACK)
            name, self.i = p[i + 2:end], end + 2
            if delim == ":":
                if name not in _CLASSES:
                    raise PatternError(ECTYPE)
                return "class", _class_body(name)
            if len(name.encode("utf-8", "surrogatepass")) != 1:
                raise PatternError(ECOLLATE)  # glibc: one byte, with no collation rules
            return ("char" if delim == "." else "equivalence"), name
        if p[i] == "-" and not hyphen_ok and not p.startswith("-]", i):
            raise PatternError(ERANGE)  # glibc: a '-' inside, neither first nor last
        self.i += 1
        return "char", p[i]


def _in_class(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


_CLASSES = {  # as glibc's in a UTF-8 locale: digits and hex digits are ASCII ones
    "alpha": str.isalpha,
    "digit": lambda c: "0" <= c <= "9",
    "alnum": lambda c: c.isalpha() or "0" <= c <= "9",
    "upper": str.isupper,
    "lower": str.islower,
    "xdigit": lambda c: c in "0123456789abcdefABCDEF",
    "space": lambda c: c.isspace() and not "\x1c" <= c <= "\x1f" and c not in "\x85\xa0",
    "blank": lambda c: c in " \t" or (unicodedata.category(c) == "Zs"
                                      and c not in "\xa0\u2007\u202f"),
    "cntrl": lambda c: unicodedata.category(c) == "Cc",
    "print": lambda c: c.isprintable(),
    "graph": lambda c: c.isprintable() and not c.isspace(),
    "punct": lambda c: c.isprintable() and not c.isspace() and not c.isalpha()
                       and not "0" <= c <= "9",
}


@functools.cache
def _class_body(name: str) -> str:
    """The Python class body (ranges) of the characters in POSIX class `name`."""
    test, ranges = _CLASSES[name], []
    # planes 0-3, and 14's tags and selectors: past them no character is in any class
    for block in (range(0x40001), range(0xE0000, 0xE1001)):
        start = None
        for code in block:
            inside = code < block[-1] and not 0xD800 <= code < 0xE000 and test(chr(code))
            if inside and start is None:
                start = code
            elif not inside and start is not None:
                ranges.append(_in_class(chr(start)) if start == code - 1
                              else f"{_in_class(chr(start))}-{_in_class(chr(code - 1))}")
                start = None
    return "".join(ranges)
