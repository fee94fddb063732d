"""git's wildmatch, as `git branch --list` and `git tag -l` match a ref name against a
PATTERN (ref-filter.c's match_pattern: no WM_PATHNAME, no WM_CASEFOLD).

Python's fnmatch differs from it where a user can tell: `[^a]` is a set of '^' and 'a'
there, negation here as `[!a]` is in both; `\\` escapes the next character here (`v1\\.0`
matches v1.0), a literal there; `[[:digit:]]` and the other POSIX classes are classes
here; an unclosed `[` matches nothing here, itself there. As in git without
WM_PATHNAME, `*`, `**` and `?` match '/' too. As git's, it matches bytes: `?`, a set and
an escape each take one byte of the name's UTF-8, so `caf?` lists no `café` (two bytes
after `caf`) and `caf??` does."""
from __future__ import annotations

CLASSES = {  # git's sane_ctype: ASCII only
    "alnum": str.isalnum, "alpha": str.isalpha, "digit": str.isdigit,
    "lower": str.islower, "upper": str.isupper, "space": lambda c: c in " \t\n\v\f\r",
    "blank": lambda c: c in " \t", "cntrl": lambda c: ord(c) < 32 or ord(c) == 127,
    "graph": lambda c: 32 < ord(c) < 127, "print": lambda c: 32 <= ord(c) < 127,
    "punct": lambda c: 32 < ord(c) < 127 and not c.isalnum(),
    "xdigit": lambda c: c in "0123456789abcdefABCDEF",
}


def wildmatch(pattern: str, text: str) -> bool:
    """Whether `text` (a ref's short name) matches glob `pattern` as git's wildmatch
    reads it for `branch --list` and `tag -l`.

    git's dowild recurses once per `*`, trying each place the rest of the pattern could
    start; that is one Python frame per `*` (a RecursionError past ~1000 stars). As `*`
    matches every character here ('/' too), only the last `*` met ever needs to take more
    text: the rest is matched from the place after it, and on a mismatch that `*` takes
    one character more. It gives dowild's answers, its ABORT_ALL cuts included: the text
    running out under a pattern that needs more ends the match (a longer `*` leaves less),
    and so does a malformed set (unclosed, or an unknown [:class:]), which no text gets
    past.

    Both are matched as their UTF-8 bytes, as git's: each byte one character of a
    latin-1 string, so that a class (ASCII only) or a range compares byte values."""
    pattern, text = _bytes(pattern), _bytes(text)
    i = j = 0
    star_i = star_j = -1  # after the last '*': its pattern index, the text index it took
    while True:
        if i < len(pattern) and pattern[i] == "*":
            while i < len(pattern) and pattern[i] == "*":  # '**' is '*' without WM_PATHNAME
                i += 1
            if i == len(pattern):
                return True
            star_i, star_j = i, j
            continue
        if j == len(text):
            return i == len(pattern)
        step = _one(pattern, i, text[j]) if i < len(pattern) else None
        if step is False:
            return False  # malformed: git's ABORT_ALL
        if step is not None:
            i, j = step, j + 1
            continue
        if star_i < 0:
            return False
        star_j += 1  # the last '*' takes one character more
        i, j = star_i, star_j


def _bytes(s: str) -> str:
    """`s`'s UTF-8, one character a byte: an argument's undecodable bytes as they were
    given (Python's surrogate escapes), any other lone surrogate as UTF-8 writes it."""
    try:
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = s.encode("utf-8", "surrogatepass")
    return raw.decode("latin-1")


def _one(p: str, i: int, c: str) -> int | None | bool:
    """The pattern item at `p[i]` against text character `c`: the index after it where it
    matches, None where it does not, False where git aborts (a malformed set)."""
    pc = p[i]
    if pc == "[":
        i, matched = _bracket(p, i + 1, c)
        if matched is None:
            return False
        return i + 1 if matched else None
    if pc == "?":
        return i + 1
    if pc == "\\":  # the next character as itself; a trailing one matches nothing
        i += 1
        if i == len(p):
            return None
    return i + 1 if c == p[i] else None


def _escaped(p: str, i: int) -> tuple[int, str | None]:
    """`p[i]` is a backslash in a set: the index and the character it escapes, None for
    the character where the pattern ends there (git aborts the match)."""
    i += 1
    return i, (p[i] if i < len(p) else None)


def _bracket(p: str, i: int, c: str) -> tuple[int, bool | None]:
    """The set starting at `p[i]` (after '['): (the index of its closing ']', whether `c`
    is in it), or None for whether where git aborts the match."""
    negated = i < len(p) and p[i] in "!^"
    if negated:
        i += 1
    matched, prev, first = False, "", True
    while first or (i < len(p) and p[i] != "]"):  # a ']' first is itself, as in git
        first = False
        if i >= len(p):
            return i, None
        pc = p[i]
        if pc == "\\":
            i, pc = _escaped(p, i)
            if pc is None:
                return i, None
            matched |= c == pc
        elif pc == "-" and prev and i + 1 < len(p) and p[i + 1] != "]":
            i += 1
            hi = p[i]
            if hi == "\\":
                i, hi = _escaped(p, i)
                if hi is None:
                    return i, None
            matched |= prev <= c <= hi
            pc = ""  # no range starts at a range's end
        elif pc == "[" and p.startswith(":", i + 1):
            end = p.find("]", i + 2)
            if end < 0:
                return end, None
            if end - (i + 2) < 1 or p[end - 1] != ":":  # no ':]': '[' is itself
                matched |= c == "["
            else:
                test = CLASSES.get(p[i + 2:end - 1])
                if test is None:
                    return end, None
                matched |= c.isascii() and test(c)
                i, pc = end, ""
        else:
            matched |= c == pc
        prev = pc
        i += 1
    if i >= len(p):
        return i, None
    return i, matched != negated
