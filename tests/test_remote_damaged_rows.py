"""What a push decides from the commits rows: a row naming a parent its record lacks
(damage fsck names) must not make a push leave out a commit the remote lacks."""
from __future__ import annotations

import json
import sqlite3

from cli_support import (
    copy_repo,
    error_line,
    facts_files,
    history_template,
    last_line,
    ok,
    run,
    snapshot,
)


def _set_parents(repo, commit: str, parents: list[str]) -> None:
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update commits set parents = ? where id = ?", (json.dumps(parents), commit))
    con.close()


def _tree(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_push_does_not_trust_a_row_claiming_the_remote_holds_a_commit(base, tmp_path):
    """The remote's branch at C3; main merges a topic commit X (on C2) the remote lacks.
    C3's row claiming X as a parent made the push count X as held (the remote's ancestors
    came from the rows, the walk over the records stopped at X): it sent the merge alone
    and moved the remote's main onto it, exit 0, a remote whose branch reaches a missing
    commit (`fsck origin`: 'its object is missing'). Refused now in one line, the remote
    untouched; the same push goes through once `fsck --repair` rebuilt the rows; a tag
    pushed onto such a history is refused the same way."""
    repo = copy_repo(history_template(base)[0], tmp_path / "repo")
    _, c2, c3 = history_template(base)[1]
    remote = tmp_path / "remote"
    ok("remote", "add", "origin", remote, cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("branch", "topic", c2, cwd=repo)
    ok("switch", "topic", cwd=repo)
    x = last_line(ok("commit", facts_files(base)["d"], "-m", "x", cwd=repo))
    ok("switch", "main", cwd=repo)
    m = last_line(ok("merge", "topic", "-m", "merge", cwd=repo))
    ok("tag", "v1", m, cwd=repo)
    _set_parents(repo, c3, [c2, x])
    before, there = snapshot(repo), _tree(remote)
    for args in (["push", "origin", "main"], ["push", "origin", "--tags"]):
        error_line(run(*args, cwd=repo), 1, f"commit {c3[:12]}: index row disagrees with "
                   "the record")
        assert _tree(remote) == there, args
        assert snapshot(repo) == before, args
    ok("fsck", "--repair", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("push", "origin", "--tags", cwd=repo)
    assert "missing" not in ok("fsck", "origin", cwd=repo).stdout
