"""Ref names as git's revisions spell them (`git help revisions`, <refname>): `heads/main`,
`tags/v1`, `remotes/origin/main`, `refs/heads/main`, with any suffix, in every command that
takes a REV; and which ref wins where two rules match, checked against git itself on a git
repository of the same shape."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess

import children
import pytest
from cli_support import error_line, log_json, ok, run

from memstore.store import posix_regex

# what each revision names, as an index into (C1, C2, C3); the repository: main at C3,
# tag v1 at C2, branch topic at C1, origin/main at C3 (a folder remote)
REVS = ["heads/main", "refs/heads/main", "tags/v1", "refs/tags/v1", "heads/topic",
        "remotes/origin/main", "refs/remotes/origin/main", "heads/main~2", "tags/v1^",
        "heads/main^1~1", "heads/main@{1}", "tags/v1~0"]


def git_repo(where) -> callable:
    """A git repository of the history's shape (three empty commits on main, tag v1 at the
    second, branch topic at the first, origin/main at the third); its git(ARGS)."""
    assert shutil.which("git"), "git is needed here (CI clones with it)"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(where), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": os.environ["PATH"]}
    where.mkdir()

    def git(*args: str, ok_only: bool = True) -> subprocess.CompletedProcess:
        return children.run(["git", *args], cwd=where, env=env, check=ok_only,
                            capture_output=True, text=True)

    git("init", "-q", "-b", "main")
    for m in ("facts a", "facts b", "facts c"):
        git("commit", "-q", "--allow-empty", "-m", m)
    git("tag", "v1", "HEAD~1")
    git("branch", "topic", "HEAD~2")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    return git


@pytest.fixture
def both(history, tmp_path):
    repo, ids = history
    ok("tag", "v1", "HEAD~1", cwd=repo)
    ok("branch", "topic", "HEAD~2", cwd=repo)
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    git = git_repo(tmp_path / "git")
    shas = git("rev-list", "--reverse", "main").stdout.split()
    return repo, ids, git, shas


def named(repo, rev: str) -> str:
    return json.loads(ok("log", "--json", "-n", "1", rev, cwd=repo).stdout)[0]["id"]


def test_ref_names_resolve_as_gits(both):
    repo, ids, git, shas = both
    for rev in REVS:
        want = shas.index(git("rev-parse", "--verify", "-q", rev).stdout.strip())
        assert ids.index(named(repo, rev)) == want, rev


def test_the_ambiguous_name_takes_gits_first_rule_with_its_warning(both):
    """A branch 'tags/v1' beside tag v1: `tags/v1` is refs/tags/v1 (git's refs/NAME before
    refs/heads/NAME), warned about in git's words; `heads/tags/v1` the branch (and so for a
    branch 'heads/main')."""
    repo, ids, git, shas = both
    for name in ("tags/v1", "heads/main"):  # heads/main: refs/heads/main before the branch
        ok("branch", name, "HEAD~2", cwd=repo)
        git("branch", name, "HEAD~2")
    for rev in ("tags/v1", "heads/tags/v1", "refs/heads/tags/v1", "tags/v1~1", "heads/main",
                "heads/heads/main", "heads/main^", "tags/v1@{0}", "heads/main@{0}"):  # the first with a log
        g = git("rev-parse", rev)
        r = ok("log", "--json", "-n", "1", rev, cwd=repo)
        assert ids.index(json.loads(r.stdout)[0]["id"]) == shas.index(g.stdout.strip()), rev
        assert r.stderr == g.stderr, rev
    assert "refname 'tags/v1' is ambiguous." in git("rev-parse", "tags/v1").stderr
    for rev in ("tags/v1", "heads/main", "heads/tags/v1"):  # rebase's UPSTREAM warned too
        g, r = git("rebase", rev), ok("rebase", rev, cwd=repo)  # (main: up to date)
        assert "up to date" in r.stdout and "up to date" in g.stdout, rev
        # git's says it twice (UPSTREAM read, then --onto's default, the same); memstore's
        # once, as each command's revision (Refs.warn)
        assert r.stderr.splitlines() == sorted(set(g.stderr.splitlines())), rev
        assert ("ambiguous" in r.stderr) == (rev != "heads/tags/v1"), rev


def test_every_command_taking_a_rev_takes_them(both):
    repo, (c1, c2, c3), git, _ = both
    assert json.loads(ok("show", "--json", "tags/v1", cwd=repo).stdout)["id"] == c2
    assert run("diff", "tags/v1", "heads/main", cwd=repo).exit_code == 0
    assert run("merge", "tags/v1", cwd=repo).exit_code == 0  # an ancestor: up to date
    # `reflog show tags/v1`: a tag has no log, nothing listed, exit 0, as git's
    g = git("reflog", "show", "tags/v1")
    r = run("reflog", "show", "tags/v1", cwd=repo)
    assert (r.exit_code, r.stdout, g.returncode, g.stdout) == (0, "", 0, "")
    mine = ok("reflog", "show", "heads/main", cwd=repo).stdout  # named as typed, as git's
    assert mine.split()[1] == git("reflog", "show", "heads/main").stdout.split()[1]
    assert mine.replace("heads/main@", "main@") == ok("reflog", "show", "main", cwd=repo).stdout
    ok("reset", "heads/main~1", cwd=repo)
    assert named(repo, "HEAD") == c2
    ok("switch", "--detach", "tags/v1~1", cwd=repo)
    assert named(repo, "HEAD") == c1
    ok("switch", "main", cwd=repo)
    assert named(repo, "heads/main@{1}") == c3 and named(repo, "@{-1}") == c1


@pytest.mark.parametrize("rev, says", [
    ("tags/nope", "unknown revision"), ("heads/v1", "unknown revision"),
    ("tags/main", "unknown revision"), ("heads/main@{9}", "only has"),
    ("heads/main@{u}", "no such branch: 'heads/main'")])  # git's words: @{u} takes a branch
def test_a_rule_naming_nothing_is_refused_as_in_git(both, rev, says):
    repo, _, git, _ = both
    g = git("log", "-1", rev, ok_only=False)
    assert g.returncode != 0 and says in g.stderr, g.stderr
    error_line(run("log", "-n", "1", rev, cwd=repo), 2, says)


def older_tag(repo, name: str, commit: str) -> None:
    """A tag `name` beside the branch of that name, as an older memstore let one be made
    (this one refuses the second of the two: `already the name of a branch`)."""
    db = sqlite3.connect(repo / ".memstore" / "index.db")
    with db:
        db.execute("insert into refs (name, target) values (?, ?)", ["refs/tags/" + name, commit])
    db.close()


def test_a_branch_and_a_tag_of_one_name_read_as_gits(both):
    """Branch v1 at C1 (with its reflog) beside tag v1 at C2: a revision takes the tag, with
    git's warning; v1@{0} the branch's log (the tag has none), unwarned; `reflog show v1`
    the branch's, warned; `switch v1` the branch, warned, `--detach` its commit (git's
    checkout takes a branch's name as the branch); a new branch's START refused."""
    repo, (c1, c2, c3), git, shas = both
    ok("tag", "-d", "v1", cwd=repo)
    ok("branch", "v1", "HEAD~2", cwd=repo)
    older_tag(repo, "v1", c2)
    git("branch", "v1", "HEAD~2")
    for rev in ("v1", "v1~1", "v1^0", "v1@{0}", "heads/v1", "tags/v1", "refs/heads/v1"):
        g = git("rev-parse", rev)
        r = ok("log", "--json", "-n", "1", rev, cwd=repo)
        assert (c1, c2, c3).index(json.loads(r.stdout)[0]["id"]) == \
            shas.index(g.stdout.strip()), rev
        assert r.stderr == g.stderr, rev
    assert "refname 'v1' is ambiguous." in git("rev-parse", "v1").stderr
    r = ok("show", "--json", "v1", cwd=repo)
    assert json.loads(r.stdout)["id"] == c2 and r.stderr == git("show", "-s", "v1").stderr
    g, r = git("reflog", "show", "v1"), ok("reflog", "show", "v1", cwd=repo)
    assert r.stderr == g.stderr and r.stdout.split()[1] == g.stdout.split()[1] == "v1@{0}:"
    assert r.stdout.split()[0] == c1[:12]
    g, r = git("switch", "v1"), ok("switch", "v1", cwd=repo)
    assert r.stderr.splitlines()[0] == g.stderr.splitlines()[0]
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["branch"] == "v1"
    git("switch", "main"), ok("switch", "main", cwd=repo)
    g, r = git("switch", "--detach", "v1"), ok("switch", "--detach", "v1", cwd=repo)
    assert shas.index(git("rev-parse", "HEAD").stdout.strip()) == 0 and named(repo, "HEAD") == c1
    assert r.stderr.splitlines()[0] == g.stderr.splitlines()[0]
    git("switch", "main"), ok("switch", "main", cwd=repo)
    for args in (["branch", "x", "v1"], ["switch", "-c", "x", "v1"], ["branch", "-f", "topic", "v1"]):
        g = git(*args, ok_only=False)
        assert g.returncode == 128 and "fatal: ambiguous object name: 'v1'" in g.stderr
        error_line(run(*args, cwd=repo), 2, "ambiguous object name: 'v1' (refs/tags/v1 and "
                   "refs/heads/v1)")  # git's words, one line: git warns first
    assert named(repo, "topic") == c1 and run("log", "-n", "1", "x", cwd=repo).exit_code == 2


def test_a_full_commit_id_names_the_commit_before_a_ref_so_named(both):
    """A branch named as C2's full id, at C1 (git makes one without a word, and so does
    memstore): the id is C2, with git's warning and a note; heads/ID and ID@{0} the
    branch's; `switch ID` the branch, as git's. A command resolving an id again (REF@{N}'s
    entry, HEAD's commit) neither warns nor reads a ref so named: `log ID@{0}` read the
    tag named as C1's id there."""
    repo, (c1, c2, c3), git, shas = both
    g2, g1 = shas[1], shas[0]
    ok("branch", c2, "HEAD~2", cwd=repo), git("branch", g2, "HEAD~2")
    ok("tag", c1, "HEAD", cwd=repo), git("tag", g1, "HEAD")
    for mine, theirs in ((c2, g2), (c2 + "~1", g2 + "~1"), ("heads/" + c2, "heads/" + g2),
                         (c2 + "@{0}", g2 + "@{0}"), (c2.upper(), g2.upper()), (c1, g1)):
        g = git("rev-parse", theirs)
        r = ok("log", "--json", "-n", "1", mine, cwd=repo)
        assert (c1, c2, c3).index(json.loads(r.stdout)[0]["id"]) == \
            shas.index(g.stdout.strip()), mine
        lines = [line.replace(g2, c2).replace(g1, c1).replace(g2.upper(), c2.upper())
                 for line in g.stderr.splitlines()]
        assert r.stderr.splitlines()[:1] == lines[:1], mine
        assert ("full commit id names that commit" in r.stderr) == (len(lines) > 1), mine
    g, r = git("reflog", "show", g2), ok("reflog", "show", c2, cwd=repo)
    assert r.stdout.split()[0] == c1[:12] and shas.index(git("rev-parse", g.stdout.split()[0])
                                                         .stdout.strip()) == 0
    assert r.stderr.splitlines()[0] == g.stderr.splitlines()[0].replace(g2, c2)
    g, r = git("switch", g2), ok("switch", c2, cwd=repo)
    assert r.stderr.splitlines()[0] == g.stderr.splitlines()[0].replace(g2, c2)
    assert json.loads(ok("status", "--json", cwd=repo).stdout)["branch"] == c2
    ok("switch", "main", cwd=repo)
    ok("tag", "-d", c1, cwd=repo)
    ok("branch", c3, cwd=repo)  # named as HEAD's commit, which commands read again
    for detached in (False, True):  # HEAD read as a branch's value, or as HEAD's own
        ok("switch", *(["--detach"] if detached else []), "main", cwd=repo)
        for args in (["log", "-n", "1"], ["show"], ["merge", c1], ["blame"], ["log", "main"]):
            assert ok(*args, cwd=repo).stderr == "", (args, detached)
    error_line(run("log", "-n", "1", "0" * 64, cwd=repo), 2, "unknown revision")
    ok("branch", "0" * 64, cwd=repo)  # an id no commit here has: the commit, not the branch
    r = run("log", "-n", "1", "0" * 64, cwd=repo)
    assert r.exit_code == 2 and "no commit here has that id" in r.stderr


def test_a_ref_named_as_an_abbreviated_id_wins_warned_as_gits(both):
    """A branch named as the first 7 digits of C2's id, at C1: git's rule takes the ref, and
    warns; a hex name that abbreviates no commit, unwarned."""
    repo, (c1, c2, c3), git, shas = both
    ok("branch", c2[:7], "HEAD~2", cwd=repo), git("branch", shas[1][:7], "HEAD~2")
    ok("branch", "abcdef0", "HEAD~2", cwd=repo), git("branch", "abcdef0", "HEAD~2")
    for mine, theirs in ((c2[:7], shas[1][:7]), (c2[:7] + "@{0}", shas[1][:7] + "@{0}"),
                         (c2[:8], shas[1][:8]), ("abcdef0", "abcdef0")):
        g = git("rev-parse", theirs)
        r = ok("log", "--json", "-n", "1", mine, cwd=repo)
        assert (c1, c2, c3).index(json.loads(r.stdout)[0]["id"]) == \
            shas.index(g.stdout.strip()), mine
        assert r.stderr == g.stderr.replace(shas[1][:7], c2[:7]), mine
    g, r = git("reflog", "show", shas[1][:7]), ok("reflog", "show", c2[:7], cwd=repo)
    assert r.stderr == g.stderr.replace(shas[1][:7], c2[:7]) != ""


def test_a_merge_message_names_the_merged_revision_as_gits(both):
    """git 2.39's message names the revision as typed, with what it is (`Merge branch
    'heads/main' into side`, `Merge tag 'v1'`, `Merge remote-tracking branch 'origin/main'`,
    `Merge commit 'ID'`; a branch with `~N` or `^`: `Merge branch 'main' (early part)`), and
    `@{-1}` (`-`) by the branch it reads; ` into main` and ` into master` left out, a
    detached HEAD's ` into HEAD`; memstore's the same, word for word (it wrote `Merge NAME
    into BRANCH` for each); the reflog entry says `merge @{-1}`, as git's."""
    repo, ids, git, shas = both
    ok("branch", "-u", "origin/main", "main", cwd=repo)
    for key, value in (("remote.origin.url", "."), ("branch.main.remote", "origin"),
                       ("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
                       ("branch.main.merge", "refs/heads/main")):  # (git's origin: no remote)
        git("config", key, value)
    ok("switch", "-c", "side", "HEAD~2", cwd=repo), git("switch", "-c", "side", "HEAD~2")
    for rev in ("heads/main", "@{-1}", "-", "main@{u}", "main", "main~1", "main^", "main~0", "main~01",
                "@{-1}~1", "heads/main~1", "v1", "origin/main", "origin/main~1", "ID~1",
                "main@{0}", "@{-1}@{0}", "@{-1}@{u}"):
        for where in ("main", "side") if rev.startswith(("@{-1}", "-")) else ():
            ok("switch", where, cwd=repo), git("switch", where)  # so that @{-1} is main
        ok("merge", "--no-ff", rev.replace("ID", ids[2]), cwd=repo)  # (ID: C3's)
        git("merge", "--no-ff", "--no-edit", rev.replace("ID", shas[2]))
        said = git("log", "-1", "--format=%s").stdout.strip().replace(shas[2], ids[2])
        assert log_json(repo, "-n", "1")[0]["message"] == said, rev
        mine = ok("reflog", "-n", "1", cwd=repo).stdout.split(": ")[0].split(" ", 1)[1]
        assert mine == git("reflog", "-1").stdout.split(": ")[0].split(" ", 1)[1] \
            .replace(shas[2], ids[2]), rev
        ok("reset", ids[0], cwd=repo), git("reset", "-q", "--hard", "HEAD~1")
    for args in (["switch", "-c", "master"], ["switch", "--detach", "side"]):  # (at C1)
        ok(*args, cwd=repo), git(*args)
        ok("merge", "--no-ff", "main", cwd=repo), git("merge", "--no-ff", "--no-edit", "main")
        said = git("log", "-1", "--format=%s").stdout.strip()  # (none, then ` into HEAD`)
        assert log_json(repo, "-n", "1")[0]["message"] == said, args
        ok("switch", "side", cwd=repo), git("switch", "side")


def test_a_full_id_is_warned_about_where_typed_and_only_there(both):
    """Branches named as every commit's full id: the warning names what the command line
    spells, as git's (`diff main ID` where main is at ID too: memstore took the id for one
    it had read itself and said nothing), and no id the command reads on its own (`revert`
    and `log --fact` warned of the ids of the states they read; git's say nothing)."""
    repo, ids, git, shas = both
    for mine, theirs in zip(ids, shas):
        ok("branch", mine, "HEAD~2", cwd=repo), git("branch", theirs, "HEAD~2")
    assert "ambiguous" not in ok("revert", "HEAD", cwd=repo).stderr  # (C3's state read)
    assert ok("log", "--fact", "Porsche", cwd=repo).stderr == \
        git("log", "-G", "Porsche").stderr == ""  # (C3's and C2's states read)
    ok("reset", "HEAD~1", cwd=repo)
    for args in (["diff", "main", "{3}"], ["log", "main..{3}"], ["log", "-n", "1", "{1}..main"]):
        g = git(*(a.format(*[None, *shas]) for a in args))
        r = ok(*(a.format(*[None, *ids]) for a in args), cwd=repo)
        first = g.stderr.splitlines()[0]
        for mine, theirs in zip(ids, shas):
            first = first.replace(theirs, mine)
        assert r.stderr.splitlines()[0] == first, args


def test_a_new_branch_s_start_named_as_a_full_id_is_the_ref_as_gits(both):
    """git's `branch`, `switch -c` and `branch -f` read START by the ref rules first (its
    dwim_ref): a branch named as C2's full id, at C1, is START C1 there, warned, where any
    other command reads the commit C2 (memstore made the new branch at C2)."""
    repo, ids, git, shas = both
    ok("branch", ids[1], "HEAD~2", cwd=repo), git("branch", shas[1], "HEAD~2")
    for args in (["branch", "x", "{}"], ["switch", "-c", "y", "{}"], ["branch", "-f", "x", "{}"]):
        g = git(*(a.format(shas[1]) for a in args))
        r = ok(*(a.format(ids[1]) for a in args), cwd=repo)
        assert r.stderr.splitlines()[0] == g.stderr.splitlines()[0].replace(shas[1], ids[1])
        new = args[2 if args[1] == "-c" else -2]
        want = shas.index(git("rev-parse", "refs/heads/" + new).stdout.strip())
        assert ids.index(named(repo, "refs/heads/" + new)) == want == 0, args
        git("switch", "-q", "main"), ok("switch", "main", cwd=repo)


# `@` alone is HEAD; ^{} and ^{commit} name the commit; ^{/REGEX} the youngest commit it
# reaches whose message matches (an extended expression over the whole message, which ends
# in a newline in git's: `facts a$` matches none); `@@{0}` is HEAD@{0}
PEELED = ["@", "@~1", "@^", "@^{}", "@^{commit}", "main^{}", "main~1^{commit}", "@^{}^",
          "main^{/facts a}", "main^{/facts [ab]}~1", "@^{/!-facts c}", "@^{/}", "v1^{/c|b}",
          "@@{0}", "heads/main^{/^facts}^",
          # git's regcomp without REG_NEWLINE: a negated bracket takes the message's newline
          "main^{/facts a[^x]}", "@^{/a[^b]$}"]
PEEL_REFUSED = ["main^{/facts a$}", "main^{/nomatch}", "main^{/!x}", "main^{foo}",
                "^{/facts}", "@^{/(}"]


def test_at_and_peeled_revisions_name_what_gits_do(both, monkeypatch):
    repo, ids, git, shas = both
    for rev in PEELED:
        want = shas.index(git("rev-parse", "--verify", "-q", rev).stdout.strip())
        assert ids.index(named(repo, rev)) == want, rev
    for rev in PEEL_REFUSED:
        assert git("rev-parse", "--verify", "-q", rev, ok_only=False).returncode != 0, rev
        error_line(run("log", "-n", "1", rev, cwd=repo), 2, "unknown revision")
    # a REGEX may hold '..': log reads it as one revision where it names one, and a range
    # splits at the first '..', as git's handle_dotdot
    for rev in ("main^{/fa..s b}", "main^{/facts a}..main^{/f..ts b}",
                "main^{/facts a}...main^{/f..ts b}"):
        want = [shas.index(s) for s in git("rev-list", rev).stdout.split()]
        assert [ids.index(c["id"]) for c in log_json(repo, rev)] == want, rev
    assert git("rev-list", "main^{/fa..s b}..@", ok_only=False).returncode != 0  # A's: no
    error_line(run("log", "main^{/fa..s b}..@", cwd=repo), 2, "unknown revision")
    error_line(run("log", "main^{/fa..zz}", cwd=repo), 2, "no commit it reaches has a "
               "message that matches 'fa..zz'")  # the whole's reason, not 'main^{/fa''s
    for kind in ("tree", "blob", "tag"):  # objects memstore has none of (git's have trees)
        error_line(run("show", f"@^{{{kind}}}", cwd=repo), 2, f"names a {kind} object, and "
                   "memstore has none")
    # wherever a revision is read: reset, diff, branch START; push's `@` is HEAD's branch
    ok("branch", "x", "@~2", cwd=repo)
    assert named(repo, "x") == ids[0]
    assert ok("diff", "@~2", "@", cwd=repo).stdout == ok("diff", "HEAD~2", "HEAD", cwd=repo).stdout
    assert "Everything up-to-date" in ok("push", "origin", "@", cwd=repo).output
    error_line(run("push", "origin", "@:other", cwd=repo), 2, "HEAD is branch 'main'")
    ok("reset", "@^{/facts b}", cwd=repo)
    assert named(repo, "HEAD") == ids[1]
    # `reflog show @` is HEAD's, labelled so, as git's
    g, r = git("reflog", "show", "-1", "@"), ok("reflog", "show", "-n", "1", "@", cwd=repo)
    assert r.stdout.split(":")[0].split()[1] == g.stdout.split(":")[0].split()[1] == "HEAD@{0}"
    # git 2.39.5 makes a branch `@` (and a tag), which the revision `@` never names (HEAD
    # still): memstore refuses the name
    git("branch", "@", "HEAD~1")
    assert git("rev-parse", "@").stdout == git("rev-parse", "HEAD").stdout
    for args in (["branch", "@"], ["tag", "@"]):
        error_line(run(*args, cwd=repo), 2, "invalid")
    # a search past posix_regex's limit: one line naming the commit and the way out, as
    # log --grep's (Python's re backtracks for minutes over `facts b` here)
    monkeypatch.setattr(posix_regex, "SEARCH_LIMIT_S", 0.05)
    error_line(run("log", "-n", "1", "@^{/(.*.*.*.*.*.*.*)*Z}", cwd=repo), 2,
               f"commit {ids[1][:12]}: a search ran past 0.05 s on a text of 8 characters; "
               "a pattern whose repetitions nest")
    # ^{/REGEX} reads the message from the commit's record, as `log --grep`, not from an
    # index row that says otherwise
    db = sqlite3.connect(repo / ".memstore" / "index.db")
    with db:
        db.execute("update commits set message = 'facts zzz' where id = ?", [ids[0]])
    db.close()
    assert named(repo, "main^{/facts a}") == ids[0]
    error_line(run("log", "-n", "1", "main^{/zzz}", cwd=repo), 2, "no commit it reaches")
    # and walks the parents the records name, as `~1` does: a row naming none is damage
    db = sqlite3.connect(repo / ".memstore" / "index.db")
    with db:
        db.execute("update commits set parents = '[]' where id = ?", [ids[1]])
    db.close()
    for rev in ("main~1", "main^{/facts a}"):
        error_line(run("log", "-n", "1", rev, cwd=repo), 1, "index row disagrees with the record")
