"""A remote's HEAD here and tags a fetch would clobber, as git 2.39 has them, through the
CLI on a folder remote: clone records refs/remotes/origin/HEAD naming origin/main (so
`origin` is a revision), `remote set-head -a|-d|BRANCH` sets it, `branch -r` lists it,
fetch and prune leave it, rename moves it, remove deletes it, fsck accepts it; `fetch
--tags` rejects a tag here at another commit (exit status 1, the rest fetched) unless
--force, which moves it."""
from __future__ import annotations

import json
import sqlite3

from cli_support import error_line, history_template, model_dir, ok, run, snapshot

from memstore.store.repository import Repository


def clone(base, url, target):
    return ok("clone", url, target, "--base", model_dir(base))


def rows(repo, like: str) -> list[tuple]:
    with Repository.open(repo) as r:
        return [(x["name"], x["target"], x["symbolic"]) for x in
                r.db.query("select * from refs where name like ? order by name", [like])]


def oneline(repo, rev: str) -> str:
    return ok("log", rev, "--oneline", cwd=repo).stdout


def cloned_on_side(base, tmp_path, pushed):
    """(the pushing repository, its clone tmp_path/a whose origin/HEAD names origin/side,
    the history's commit ids): branch side at the first commit, pushed and fetched."""
    repo, url = pushed
    ids = history_template(base)[1]
    a = tmp_path / "a"
    clone(base, url, a)
    ok("branch", "side", ids[0], cwd=repo)
    ok("push", "origin", "side", cwd=repo)
    ok("fetch", cwd=a)
    ok("remote", "set-head", "origin", "side", cwd=a)
    return repo, a, ids


def test_clone_records_origin_head_and_set_head_moves_it(base, tmp_path, pushed):
    repo, url = pushed
    ids = history_template(base)[1]
    a = tmp_path / "a"
    clone(base, url, a)
    assert rows(a, "refs/remotes/origin/HEAD") == [
        ("refs/remotes/origin/HEAD", None, "refs/remotes/origin/main")]
    # `origin` names origin/main through it (git's refs/remotes/NAME/HEAD rule)
    assert oneline(a, "origin") == oneline(a, "origin/main") != ""
    assert oneline(a, "main").startswith(  # log's decorations: git's order
        f"{ids[2][:12]} (HEAD -> main, origin/main, origin/HEAD) ")
    assert ok("branch", "-r", cwd=a).stdout.splitlines()[0] == "  origin/HEAD -> origin/main"
    assert "  remotes/origin/HEAD -> origin/main" in ok("branch", "-a", cwd=a).stdout.splitlines()
    assert ok("branch", "-l", "-r", "origin/H*", cwd=a).stdout == "  origin/HEAD -> origin/main\n"
    assert ok("fsck", cwd=a).stdout.strip().endswith("ok")
    # a lost index is rebuilt from the ref snapshot with it
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        (a / ".memstore" / name).unlink(missing_ok=True)
    ok("fsck", "--repair", cwd=a)
    assert oneline(a, "origin") == oneline(a, "origin/main")
    # a damaged row beside it: that row alone is taken from a snapshot, origin/HEAD kept
    ok("tag", "v0", ids[0], cwd=a)
    with sqlite3.connect(a / ".memstore" / "index.db") as con:
        con.execute("update refs set target = 'xyz' where name = 'refs/tags/v0'")
    con.close()
    out = ok("fsck", "--repair", cwd=a).output
    assert "refs/tags/v0 from the snapshot" in out and "origin/HEAD" not in out, out
    assert oneline(a, "origin") == oneline(a, "origin/main")
    ok("tag", "-d", "v0", cwd=a)
    # a branch made at `origin` or `origin/HEAD` tracks origin/main, as git's
    for start in ("origin", "origin/HEAD"):
        out = ok("switch", "-c", "t", start, cwd=a).output
        assert "set up to track 'origin/main'" in out, out
        ok("switch", "main", cwd=a)
        ok("branch", "-D", "t", cwd=a)
    # no reflog is kept of it (git's clone logs one): origin@{0} is origin/main, an entry
    # past it refused as a tag's is, not as a log `reflog expire` emptied ('is empty')
    assert oneline(a, "origin@{0}") == oneline(a, "origin/main")
    for command, rev in (("log", "origin@{1}"), ("log", "origin/HEAD@{1}"),
                         ("log", "origin@{yesterday}"), ("reflog", "origin@{1}")):
        said = error_line(run(command, rev, cwd=a), 2, rev)
        assert said.endswith(f"'{rev}': no reflog for '{rev.split('@')[0]}'"), said
    assert run("reflog", "exists", "origin/HEAD", cwd=a).exit_code == 1
    # a second branch there; set-head BRANCH points at it, quiet as git's
    ok("branch", "side", ids[0], cwd=repo)
    ok("push", "origin", "side", cwd=repo)
    error_line(run("remote", "set-head", "origin", "side", cwd=a), 2,
               "no remote-tracking branch origin/side")
    ok("fetch", cwd=a)
    assert ok("remote", "set-head", "origin", "side", cwd=a).stdout == ""
    assert oneline(a, "origin") == oneline(a, "origin/side") != oneline(a, "origin/main")
    # -a reads the remote's HEAD: main; in git's words
    assert ok("remote", "set-head", "origin", "-a", cwd=a).stdout == "origin/HEAD set to main\n"
    assert oneline(a, "origin") == oneline(a, "origin/main")
    # -d deletes it: `origin` is no revision then, and a fetch does not bring it back
    assert ok("remote", "set-head", "origin", "-d", cwd=a).stdout == ""
    error_line(run("log", "origin", cwd=a), 2, "unknown revision")
    ok("fetch", cwd=a)
    assert rows(a, "refs/remotes/origin/HEAD") == []
    ok("remote", "set-head", "origin", "--delete", cwd=a)  # none: nothing to do, as git's
    before = snapshot(a)
    for args, says in ((("nope", "-a"), "no remote 'nope'"), (("origin",), "give one of"),
                       (("origin", "-a", "main"), "give one of")):
        assert run("remote", "set-head", *args, cwd=a).exit_code == 2, args
        assert says in run("remote", "set-head", *args, cwd=a).output
    assert snapshot(a) == before
    # fetch --prune keeps it (git 2.39's fetch does not touch it)
    ok("remote", "set-head", "origin", "main", cwd=a)
    ok("push", "--delete", "origin", "side", cwd=repo)
    ok("fetch", "--prune", cwd=a)
    ok("remote", "prune", "origin", cwd=a)
    assert rows(a, "refs/remotes/origin/HEAD") == [
        ("refs/remotes/origin/HEAD", None, "refs/remotes/origin/main")]
    # rename moves it along, as git's; remove deletes it
    ok("remote", "rename", "origin", "up", cwd=a)
    assert rows(a, "refs/remotes/%HEAD") == [("refs/remotes/up/HEAD", None,
                                             "refs/remotes/up/main")]
    assert oneline(a, "up") == oneline(a, "up/main")
    assert ok("fsck", cwd=a).stdout.strip().endswith("ok")
    # branch -d -r up/HEAD deletes it alone, as git's; set-head HEAD (a loop) is refused
    assert ok("branch", "-d", "-r", "up/HEAD", cwd=a).stdout.startswith(
        "Deleted remote-tracking branch up/HEAD (was ")
    assert rows(a, "refs/remotes/%HEAD") == [] and oneline(a, "up/main") != ""
    ok("remote", "set-head", "up", "main", cwd=a)
    error_line(run("remote", "set-head", "up", "HEAD", cwd=a), 2, "invalid branch name 'HEAD'")
    assert oneline(a, "up") == oneline(a, "up/main")
    ok("remote", "remove", "up", cwd=a)
    assert rows(a, "refs/remotes/%") == []
    assert ok("fsck", cwd=a).stdout.strip().endswith("ok")


def test_a_dangling_origin_head_is_named_where_origin_is_no_revision(base, tmp_path, pushed):
    """origin/HEAD naming a branch fetch pruned (deleted on the remote): `origin` is no
    revision, as git's ('ignoring dangling symref'), the line saying why and the way out;
    fsck names it (git 2.39's: 'invalid sha1 pointer', exit 2), gc keeps it, set-head -a
    points it back."""
    repo, a, ids = cloned_on_side(base, tmp_path, pushed)
    ok("push", "--delete", "origin", "side", cwd=repo)
    # the prune says it, in git's words
    assert ok("remote", "prune", "-n", "origin", cwd=a).stdout.splitlines()[2:] == [
        f" * [would prune] origin/side  (was {ids[0][:12]})",
        " refs/remotes/origin/HEAD will become dangling!"]
    out = ok("fetch", cwd=a).stdout.splitlines()
    assert out[1:3] == [f" - {'[deleted]':<26} origin/side  (was {ids[0][:12]})",
                        "   (refs/remotes/origin/HEAD has become dangling)"], out
    before = snapshot(a)
    for args in (("log", "origin"), ("log", "origin/HEAD~1"), ("switch", "-c", "x", "origin")):
        error_line(run(*args, cwd=a), 2, "origin/HEAD names origin/side, which is not here "
                   "(git's 'dangling symref'); `memstore remote set-head origin -a`")
    assert error_line(run("log", "nope", cwd=a), 2, "nope") == \
        "memstore: error: unknown revision 'nope'"  # another name: no such line
    assert "origin/HEAD" not in oneline(a, "main")  # no decoration, as git's
    assert snapshot(a) == before
    r = run("fsck", cwd=a)
    assert r.exit_code == 1 and r.stdout.splitlines() == [DANGLING.format("side")], r.output
    ok("gc", cwd=a)
    assert rows(a, "refs/remotes/origin/HEAD") == [
        ("refs/remotes/origin/HEAD", None, "refs/remotes/origin/side")]
    # branch -d -r deletes it, said as git 2.39 says it (the ref it named)
    assert ok("branch", "-d", "-r", "origin/HEAD", cwd=a).stdout == (
        "Deleted remote-tracking branch origin/HEAD (was refs/remotes/origin/side).\n")
    assert rows(a, "refs/remotes/origin/HEAD") == []
    ok("remote", "set-head", "origin", "-a", cwd=a)
    assert oneline(a, "origin") == oneline(a, "origin/main") != ""
    assert ok("fsck", cwd=a).stdout == "ok\n"


def test_origin_with_no_head_recorded_names_set_head_in_its_refusal(pushed):
    """A remote made with `remote add` and a push (no clone) has no origin/HEAD: `origin`
    is no revision, as git 2.39.5's ('ambiguous argument 'origin': unknown revision', exit
    128, no refs/remotes/origin/HEAD), and the line names the way out; a name that is no
    remote's keeps the plain refusal."""
    repo, _ = pushed
    before = snapshot(repo)
    for rev in ("origin", "origin/HEAD", "origin~1"):
        assert error_line(run("log", rev, cwd=repo), 2, "") == (
            f"memstore: error: unknown revision {rev!r}: remote 'origin' has no HEAD recorded "
            "here (origin/HEAD: `clone` records it, `remote add` does not); `memstore remote "
            "set-head origin -a` reads it from the remote")
    assert error_line(run("log", "upstream", cwd=repo), 2, "") == \
        "memstore: error: unknown revision 'upstream'"
    assert snapshot(repo) == before
    ok("remote", "set-head", "origin", "-a", cwd=repo)
    assert oneline(repo, "origin") == oneline(repo, "main") != ""


DANGLING = ("ref refs/remotes/origin/HEAD names refs/remotes/origin/{}, which is not here "
            "(dangling: its branch was pruned or deleted); `memstore remote set-head origin "
            "-a` points it at the remote's HEAD again, `-d` deletes it")


def test_branch_json_lists_origin_head_as_symbolic_and_a_dangling_one_nowhere(
        base, tmp_path, pushed):
    """`branch -r --json` lists origin/HEAD where the text does, as a row of its own: the
    commit it names through its branch, and `target`, that branch (the other rows as they
    were). Once that branch is gone (`branch -d -r`, or a prune), git 2.39's `branch -r`
    and `-a` list it no more, nor does the JSON, and its fsck names it (exit 1 here);
    `remote set-head -d` is the way out."""
    _, a, ids = cloned_on_side(base, tmp_path, pushed)

    def row(name, commit, **more):
        return {"name": name, "commit": commit, "remote": True, "current": False, **more}

    listed = [row("origin/HEAD", ids[0], target="origin/side"), row("origin/main", ids[2]),
              row("origin/side", ids[0])]
    assert json.loads(ok("branch", "-r", "--json", cwd=a).stdout) == listed
    assert json.loads(ok("branch", "-a", "--json", cwd=a).stdout) == [
        {"name": "main", "commit": ids[2], "remote": False, "current": True}, *listed]
    assert json.loads(ok("branch", "-r", "--list", "*/H*", "--json", cwd=a).stdout) == \
        listed[:1]
    assert json.loads(ok("branch", "-r", "--list", "*/m*", "--json", cwd=a).stdout) == \
        listed[1:2]
    # its branch deleted here: listed nowhere, as git's (`branch -d -r` still takes it)
    ok("branch", "-d", "-r", "origin/side", cwd=a)
    assert ok("branch", "-r", cwd=a).stdout.splitlines() == [
        f"  origin/main          {ids[2][:12]} facts c"]
    assert "HEAD" not in ok("branch", "-a", cwd=a).stdout
    assert json.loads(ok("branch", "-r", "--json", cwd=a).stdout) == [row("origin/main", ids[2])]
    assert json.loads(ok("branch", "-r", "-l", "*/H*", "--json", cwd=a).stdout) == []
    r = run("fsck", "--json", cwd=a)
    assert r.exit_code == 1 and json.loads(r.stdout) == {
        "ok": False, "problems": [DANGLING.format("side")]}
    assert ok("remote", "set-head", "origin", "-d", cwd=a).stdout == ""
    assert rows(a, "refs/remotes/origin/HEAD") == []
    assert ok("fsck", cwd=a).stdout == "ok\n"


def test_set_head_a_of_a_remote_without_head_is_one_line(base, tmp_path, pushed):
    _, url = pushed
    a = tmp_path / "a"
    clone(base, url, a)
    head = tmp_path / "remote" / "HEAD"
    head.write_bytes(b"\xff garbage")  # damaged: said so, the remote named once
    before = snapshot(a)
    assert error_line(run("remote", "set-head", "origin", "-a", cwd=a), 1,
                      "its HEAD file names no branch") == (
        f"memstore: error: cannot determine the HEAD of remote 'origin' ({url}): its HEAD "
        "file names no branch; `memstore remote set-head origin BRANCH` names one")
    head.unlink()
    error_line(run("remote", "set-head", "origin", "-a", cwd=a), 1,
               f"cannot determine the HEAD of remote 'origin' ({url}): it has none;")
    assert snapshot(a) == before


def test_fetch_tags_rejects_a_tag_it_would_clobber_unless_forced(base, tmp_path, pushed):
    repo, url = pushed
    ids = history_template(base)[1]
    a = tmp_path / "a"
    clone(base, url, a)
    ok("tag", "v1", ids[0], cwd=a)  # here: v1 at C1; there: v1 at C2
    ok("tag", "v1", ids[1], cwd=repo)
    ok("tag", "v2", ids[2], cwd=repo)
    ok("push", "--tags", cwd=repo)
    # a plain fetch follows tags and keeps v1 with a warning, exit 0 (git's: silent, 0)
    got = ok("fetch", cwd=a)
    assert "would clobber existing tag" in got.stderr and "[rejected]" not in got.stdout
    ok("tag", "-d", "v2", cwd=a)
    # --tags: git's "! [rejected] v1 -> v1 (would clobber existing tag)", exit 1, v2 fetched
    r = run("fetch", "--tags", cwd=a)
    error_line(r, 1, f"fetch from origin rejected tag 'v1': it would clobber existing tag "
                     f"(it names {ids[0][:12]} here, {ids[1][:12]} there")
    assert f" ! {'[rejected]':<26} {'v1':<12} -> v1  (would clobber existing tag)" \
        in r.stdout.splitlines()
    assert f" * {'[new tag]':<26} {'v2':<12} -> v2" in r.stdout.splitlines()
    tags = {t["name"]: t["commit"] for t in json.loads(ok("tag", "--json", cwd=a).stdout)}
    assert tags == {"v1": ids[0], "v2": ids[2]}
    assert run("fetch", "-P", cwd=a).exit_code == 1  # git's -P is the tag refspec too
    r = run("fetch", "--all", "--tags", cwd=a)  # each remote's, said as its failure
    assert r.exit_code == 1 and "memstore: error: fetch from origin rejected tag 'v1'" in r.stderr
    # pull --tags: git's fetch fails there, so nothing is merged (main behind: no fast-forward)
    ok("reset", ids[1], cwd=a)
    r = run("pull", "--tags", cwd=a)
    error_line(r, 1, "fetch from origin rejected tag 'v1': it would clobber existing tag")
    assert "nothing merged" in r.stderr and "[rejected]" in r.stdout
    assert json.loads(ok("log", "--json", "-n", "1", cwd=a).stdout)[0]["id"] == ids[1]
    ok("pull", cwd=a)  # without --tags: merged, v1 kept with the warning
    assert json.loads(ok("log", "--json", "-n", "1", cwd=a).stdout)[0]["id"] == ids[2]
    # --force takes the remote's: git's "t [tag update]"
    r = ok("fetch", "--tags", "--force", cwd=a)
    assert f" t {'[tag update]':<26} {'v1':<12} -> v1" in r.stdout.splitlines()
    tags = {t["name"]: t["commit"] for t in json.loads(ok("tag", "--json", cwd=a).stdout)}
    assert tags == {"v1": ids[1], "v2": ids[2]}
    assert ok("fetch", "--tags", cwd=a).stderr == ""
    assert ok("fsck", cwd=a).stdout.strip().endswith("ok")


def test_a_remote_branch_head_x_comes_beside_origin_head(base, tmp_path, pushed):
    """A remote branch HEAD/x (a name git lets a branch have): git 2.39.5's clone of it
    fails whole ("'refs/remotes/origin/HEAD/x' exists; cannot create
    'refs/remotes/origin/HEAD'", exit 128) and its fetch beside origin/HEAD refuses that
    branch ('unable to update local ref', exit 1): its refs are files, and HEAD is one
    there. memstore's are rows, so origin/HEAD/x comes beside origin/HEAD, each its own
    revision, as any other branch does; fetch prunes it and leaves origin/HEAD."""
    repo, url = pushed
    ids = history_template(base)[1]
    a, b = tmp_path / "a", tmp_path / "b"
    clone(base, url, a)
    ok("branch", "HEAD/x", ids[0], cwd=repo)
    ok("push", "origin", "HEAD/x", cwd=repo)
    assert f" * {'[new branch]':<26} {'HEAD/x':<12} -> origin/HEAD/x" in \
        ok("fetch", cwd=a).stdout.splitlines()
    clone(base, url, b)
    for here in (a, b):
        assert ok("branch", "-r", cwd=here).stdout.splitlines() == [
            "  origin/HEAD -> origin/main", f"  origin/HEAD/x        {ids[0][:12]} facts a",
            f"  origin/main          {ids[2][:12]} facts c"]
        assert [(r["name"], r.get("target")) for r in json.loads(
            ok("branch", "-r", "--json", cwd=here).stdout)] == [
            ("origin/HEAD", "origin/main"), ("origin/HEAD/x", None), ("origin/main", None)]
        assert oneline(here, "origin") == oneline(here, "origin/main") != \
            oneline(here, "origin/HEAD/x") != ""
        assert ok("fsck", cwd=here).stdout == "ok\n"
    # deleting one leaves the other; set-head can name it; fetch prunes it alone
    ok("branch", "-d", "-r", "origin/HEAD", cwd=a)
    assert oneline(a, "origin/HEAD/x").startswith(ids[0][:12])
    ok("remote", "set-head", "origin", "HEAD/x", cwd=a)
    assert oneline(a, "origin") == oneline(a, "origin/HEAD/x")
    ok("remote", "set-head", "origin", "-a", cwd=a)
    ok("push", "--delete", "origin", "HEAD/x", cwd=repo)
    ok("fetch", cwd=a)
    assert rows(a, "refs/remotes/origin/HEAD%") == [
        ("refs/remotes/origin/HEAD", None, "refs/remotes/origin/main")]
