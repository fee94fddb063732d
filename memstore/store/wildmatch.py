"""git's wildmatch, as `git branch --list` and `git tag -l` match a ref name against a
PATTERN (ref-filter.c's match_pattern: no WM_PATHNAME, no WM_CASEFOLD).

Python's fnmatch differs from it where a user can tell: `[^a]` is a set of '^' and 'a'
there, negation here as `[!a]` is in both; `\\` escapes the next character here (`v1\\.0`
matches v1.0), a literal there; `[[:digit:]]` and the other POSIX classes are classes
here; an unclosed `[` matches nothing here, itself there. As in git without
WM_PATHNAME, `*`, `**` and `?` match '/' too. One difference is kept on purpose: git
matches bytes, so `?` is one byte of a name's UTF-8; here it is one character."""
from __future__ import annotations

MATCH, NO_MATCH, ABORT_ALL = 0, 1, 2  # ABORT_ALL: the text ran out; no shorter `*` can help

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
    reads it for `branch --list` and `tag -l`."""
    return _match(pattern, 0, text, 0) == MATCH


def _match(p: str, i: int, t: str, j: int) -> int:
    """git's dowild from pattern index `i` and text index `j`."""
    while i < len(p):
        pc = p[i]
        if j == len(t) and pc != "*":
            return ABORT_ALL
        if pc == "*":
            while i < len(p) and p[i] == "*":  # '**' is '*' without WM_PATHNAME
                i += 1
            if i == len(p):
                return MATCH
            for k in range(j, len(t)):
                got = _match(p, i, t, k)
                if got != NO_MATCH:
                    return got
            return ABORT_ALL
        if pc == "[":
            i, matched = _bracket(p, i + 1, t[j])
            if matched is None:
                return ABORT_ALL  # malformed: unclosed, or an unknown [:class:]
            if not matched:
                return NO_MATCH
        elif pc == "?":
            pass
        else:
            if pc == "\\":  # the next character as itself; a trailing one matches nothing
                i += 1
                if i == len(p):
                    return NO_MATCH
            if t[j] != p[i]:
                return NO_MATCH
        i += 1
        j += 1
    return MATCH if j == len(t) else NO_MATCH


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
            i += 1
            if i >= len(p):
                return i, None
            pc = p[i]
            matched |= c == pc
        elif pc == "-" and prev and i + 1 < len(p) and p[i + 1] != "]":
            i += 1
            hi = p[i]
            if hi == "\\":
                i += 1
                if i >= len(p):
                    return i, None
                hi = p[i]
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
