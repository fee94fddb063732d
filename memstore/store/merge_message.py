"""A merge commit's default message, in git 2.39's words (builtin/merge.c merge_name, then
fmt-merge-msg): what the merged revision is, named as typed, and the branch merged into.

    merge topic          Merge branch 'topic'              (into main or master: no "into")
    merge topic~1        Merge branch 'topic' (early part) (topic~N, topic^, topic^^: a
                                                           branch's name and a suffix)
    merge v1             Merge tag 'v1'
    merge origin/x       Merge remote-tracking branch 'origin/x'
    merge ID, v1~1       Merge commit 'ID'                 (anything else, as typed)
    (on side)            Merge branch 'topic' into side    (detached: "into HEAD")
    pull                 Merge branch 'main' of URL        (git's FETCH_HEAD line: the
                                                           remote's branch and its URL)

A leading `@{-N}` is read as the branch it names (`merge -`: "Merge branch 'topic'"), and
`@{upstream}`/`@{push}` as the remote-tracking branch (`origin/main`), as git's
interpret_branch_name reads them before the message is made."""
from __future__ import annotations

import re

from . import ref_marks
from .refs import HEADS, REMOTES, TAGS, Refs, dwim, split_suffix

# git's merge.suppressDest when it is not set: no " into BRANCH" for these
SUPPRESSED = ("main", "master")
_KINDS = ((HEADS, "branch"), (TAGS, "tag"), (REMOTES, "remote-tracking branch"))


def merge_message(refs: Refs, rev: str) -> str:
    """The message of a merge of `rev` (as typed) into the current branch."""
    return f"Merge {merged_kind(refs, rev)}" + _into(refs.head().branch)


def pull_message(branch: str, url: str, into: str | None) -> str:
    """The message of pull's merge of the remote's `branch`, fetched from `url`, into the
    current branch `into` (None: detached), git's: the URL without a password or user
    (`https://user:pw@host/x` is `https://host/x`), trailing slashes and a `.git` ending."""
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", url).rstrip("/")
    url = url[:-4] if url.endswith(".git") and len(url) > 5 else url  # (git: 4 < i)
    return f"Merge branch '{branch}' of {url}" + _into(into)


def _into(branch: str | None) -> str:
    return "" if branch in SUPPRESSED else f" into {branch or 'HEAD'}"


def merged_kind(refs: Refs, rev: str) -> str:
    """git's words for `rev`: "branch 'topic'", "branch 'topic' (early part)", "tag 'v1'",
    "remote-tracking branch 'origin/x'", else "commit 'REV'"."""
    name = _expanded(refs, rev)
    ref = next((r for r in dwim(name) if refs.read(r) is not None), None)
    kind = next((k for prefix, k in _KINDS if ref is not None and ref.startswith(prefix)), None)
    if kind is not None:
        return f"{kind} '{name}'"
    # `topic^`, `topic^^`, `topic~`, `topic~N`: a branch's early part (N not all zeros:
    # `topic~0` is the branch, named without its suffix, as git's)
    carets = len(name) - len(name.rstrip("^"))
    tilde = re.search(r"~([0-9]*)$", name) if not carets else None
    cut = carets or (len(tilde.group(0)) if tilde else 0)
    early = bool(carets) or bool(tilde and (tilde.group(1) == "" or tilde.group(1).strip("0")))
    if cut and refs.read(HEADS + name[:-cut]) is not None:
        return f"branch '{name[:-cut]}'" + " (early part)" * early
    return f"commit '{name}'"


def _expanded(refs: Refs, rev: str) -> str:
    """`rev` with a leading `@{-N}` as the branch it names (the commit's full id where HEAD
    was detached; `@{-1}@{1}` too, git's `main@{1}`) and a leading BRANCH@{upstream}/@{push}
    as its remote-tracking branch."""
    base, suffix = split_suffix(rev)
    prior = base[:base.find("}") + 1]  # a leading `@{-N}` (else prior_checkout: None)
    was = refs.prior_checkout(prior)
    base = base if was is None else was + base[len(prior):]
    marked = ref_marks.marked_ref(refs, base) if "@{" in base else None
    return base + suffix if marked is None else marked[len(REMOTES):] + suffix
