import json
import re
import sqlite3

import pytest
from test_store_support import commit_on_head, fake_result, memory_repo

from memstore.errors import MemstoreError, ValidationError
from memstore.store.refs import HEADS, RefConflictError, Refs, check_ref_name
from memstore.store.schema import open_index, transaction

BAD_NAMES = {
    "": "empty",
    "a..b": "'..'",
    "/abs": "empty path component",
    "/etc/passwd": "empty path component",
    "trailing/": "empty path component",
    "a//b": "empty path component",
    "-dash": "starts with '-'",
    "has space": "space",
    "tab\there": "control character",
    "nul\x00": "control character",
    "del\x7f": "control character",
    "tilde~1": "'~'",
    "caret^": r"'\^'",
    "co:lon": "':'",
    "what?": r"'\?'",
    "star*": r"'\*'",
    "br[acket": r"'\['",
    "back\\slash": r"'\\\\'",
    "x.lock": "'.lock'",
    "dir/x.lock": "'.lock'",
    ".hidden": "starts with '.'",
    "a/.b": "starts with '.'",
    "dot.": "ends with '.'",
    "a@{b": "'@{'",
    "@": "'@{' or is '@'",
    "HEAD": "reserved",
    "refs/heads/x": "short name",
    # shown as something else, or breaking a line (git accepts these)
    "a\u2028b": "U\\+2028",
    "main\u202e": "U\\+202E",
    "ma\u200bin": "U\\+200B",
    "a\u00a0b": "U\\+00A0",
    "a\x85b": "U\\+0085",
}


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_ref_names_are_refused_naming_the_input(name):
    with pytest.raises(ValidationError, match=BAD_NAMES[name]) as e:
        check_ref_name(name, "branch")
    assert repr(name) in str(e.value) and "invalid branch name" in str(e.value)


@pytest.mark.parametrize("name", ["main", "feature/x-1", "v1.0", "a.b/c_d", "émoji-ü", "x@y",
                                  "日本語", "ab\u0301"])
def test_good_ref_names(name):
    assert check_ref_name(name) == name


def test_a_branch_differing_from_another_only_by_case_is_refused(repo3):
    """A remote on a case-insensitive disk would store 'Main' and 'main' as one file."""
    repo, _ = repo3
    with pytest.raises(ValidationError, match="branch 'main' exists, and a remote on a "
                                              "case-insensitive disk"):
        repo.create_branch("Main")
    repo.create_tag("MAIN")  # tags are not pushed
    assert "Main" not in repo.branches()


def test_a_branch_or_tag_named_before_a_rule_can_still_be_deleted(repo3):
    """A name that an older memstore accepted (a zero-width space in it) is refused for new
    refs, but the refs that hold it can be switched to and deleted."""
    repo, (_, c1, _) = repo3
    for ref in ("refs/heads/ma\u200bin", "refs/tags/v\u200b1"):
        repo.refs.update(ref, c1, expected=None)
    with pytest.raises(ValidationError, match="U\\+200B"):
        repo.create_branch("other\u200b")
    assert repo.switch("ma\u200bin").ref == "refs/heads/ma\u200bin"
    repo.switch("main")
    assert repo.delete_branch("ma\u200bin") == c1 and repo.delete_tag("v\u200b1") == c1
    assert set(repo.refs.all()) == {"refs/heads/main", "refs/tags/v1"}
    with pytest.raises(ValidationError, match="U\\+200B"):  # gone: the rule again
        repo.delete_branch("ma\u200bin")


@pytest.fixture
def repo3():
    """main: c0 - c1 - c2, tag v1 at c1."""
    repo = memory_repo()
    ids = [commit_on_head(repo, seed=i, time=1000.0 + i).id for i in range(3)]
    repo.create_tag("v1", ids[1])
    return repo, ids


def test_revisions(repo3):
    repo, (c0, c1, c2) = repo3
    assert repo.resolve("HEAD") == repo.resolve("main") == repo.resolve("refs/heads/main") == c2
    assert repo.resolve(c1) == c1
    assert repo.resolve(c1[:4]) == c1 and repo.resolve(c1[:10].upper()) == c1
    assert repo.resolve("v1") == repo.resolve("refs/tags/v1") == c1
    assert repo.resolve("HEAD~1") == repo.resolve("HEAD^") == repo.resolve("main~") == c1
    assert repo.resolve("HEAD~2") == repo.resolve("HEAD^^") == repo.resolve("v1~1") == c0
    assert repo.resolve("HEAD~1^1") == c0 and repo.resolve("HEAD^0") == c2


@pytest.mark.parametrize("rev", ["nope", "HEAD~3", "HEAD^2", "abc", "main~x", "~1", "HEAD^^^^",
                                 "0000", "v1..main", "",
                                 # digits of other scripts (int() reads them): not git's
                                 "HEAD~\u0661", "HEAD^\uff11", "main~\u0967"])
def test_unknown_revisions(repo3, rev):
    repo, _ = repo3
    with pytest.raises(ValidationError, match=re.escape(f"unknown revision {rev!r}")):
        repo.resolve(rev)


def test_ambiguous_prefix(repo3):
    repo, _ = repo3
    for suffix in "12":  # two index rows sharing the prefix "abcd"
        repo.db["commits"].insert({"id": "abcd" + suffix * 60, "parents": "[]",
                                   "base_hash": "x", "time": 0, "message": "",
                                   "operation": "commit"})
    with pytest.raises(ValidationError, match="unknown revision 'abcd'.*ambiguous"):
        repo.resolve("abcd")
    assert repo.resolve("abcd1") == "abcd" + "1" * 60


def test_merge_parent_selection():
    repo = memory_repo()
    a = commit_on_head(repo, seed=1).id
    repo.switch("side", create=True)
    b = commit_on_head(repo, seed=2).id
    repo.switch("main")
    m = repo.write_commit([fake_result(3)], parents=[a, b], basis=a, message="merge")
    assert repo.resolve("HEAD^1") == a and repo.resolve("HEAD^2") == b
    assert json.loads(repo.db["commits"].get(m.id)["parents"]) == [a, b]


def test_branches_tags_and_switch(repo3):
    repo, (c0, c1, c2) = repo3
    assert repo.head().branch == "main" and repo.head().commit == c2
    assert repo.create_branch("old", "HEAD~2") == c0
    assert repo.branches() == {"main": c2, "old": c0} and repo.tags() == {"v1": c1}
    with pytest.raises(ValidationError, match="branch 'old' already exists"):
        repo.create_branch("old")
    repo.create_branch("old", c1, force=True)
    head = repo.switch("old")
    assert head.ref == "refs/heads/old" and head.commit == c1
    with pytest.raises(MemstoreError, match="current branch 'old'"):
        repo.delete_branch("old")
    head = repo.switch("HEAD")  # as `git checkout HEAD`: stays on the branch
    assert head.ref == "refs/heads/old" and head.commit == c1
    head = repo.switch("v1")  # a tag: detached
    assert head.ref is None and head.branch is None and head.commit == c1
    new = commit_on_head(repo, seed=9)  # a commit on a detached HEAD moves HEAD only
    assert repo.head().commit == new.id and repo.branches()["old"] == c1
    repo.switch("main")
    assert repo.delete_branch("old") == c1  # merged into main
    repo.create_branch("tip", new.id)
    with pytest.raises(MemstoreError, match="not merged"):
        repo.delete_branch("tip")
    assert repo.delete_branch("tip", force=True) == new.id
    assert repo.delete_tag("v1") == c1 and repo.tags() == {}
    with pytest.raises(ValidationError, match="no tag 'v1'"):
        repo.delete_tag("v1")
    with pytest.raises(ValidationError, match="invalid tag name"):
        repo.create_tag("bad..name")



def test_ref_checks_walk_the_history_once_however_many_refs(monkeypatch):
    """`branch -d` (is it merged into another ref?) and a switch away from a detached HEAD
    (what no ref holds?) walked the history once per ref, and `branch -d` read the whole
    commits table once per ref too: refused after 17 s with 1,100 tags on 4,200 commits.
    One walk now: each commit is looked up once, whatever the number of refs."""
    from memstore.store import history

    repo = memory_repo()
    ids = [commit_on_head(repo, seed=i).id for i in range(6)]
    for i in range(20):
        repo.create_tag(f"t{i}", ids[i % 3])
    repo.switch(ids[-2], detach=True)
    lone = commit_on_head(repo, seed=99).id
    repo.create_branch("lone", lone)
    repo.switch("main")
    walks: list[list[str]] = []  # per graph read, the commits looked up in it

    class Counted(dict):
        def __getitem__(self, key):
            walks[-1].append(key)
            return super().__getitem__(key)

    real = history.graph

    def counted(db):
        walks.append([])
        return Counted(real(db))

    monkeypatch.setattr(history, "graph", counted)
    with pytest.raises(MemstoreError, match="not merged"):
        repo.delete_branch("lone")
    assert len(walks) == 1 and len(walks[0]) <= len(ids)  # the other refs' ancestors, once
    repo.delete_branch("lone", force=True)
    walks.clear()
    checked = history._Checked.__getitem__  # held_by_no_ref walks the checked graph

    def counted_checked(self, key):
        walks[-1].append(key)
        return checked(self, key)

    monkeypatch.setattr(history._Checked, "__getitem__", counted_checked)
    assert repo.held_by_no_ref(lone) == [lone]
    # one graph: the refs' walk (each commit once), then log's of `lone`'s history (a few
    # lookups per commit), not a walk per ref (21 refs)
    assert len(walks) == 1 and 0 < len(walks[0]) <= 5 * (len(ids) + 1)


def test_unborn_branch():
    repo = memory_repo()
    assert repo.head().commit is None and repo.head().branch == "main"
    assert repo.log() == []
    with pytest.raises(ValidationError, match="unknown revision 'HEAD'"):
        repo.resolve("HEAD")
    first = commit_on_head(repo)
    assert first.parents == () and repo.branches() == {"main": first.id}


def test_compare_and_swap_refuses_a_moved_branch(repo3):
    repo, (c0, c1, c2) = repo3
    n_commits = repo.db["commits"].count
    # the commit started when main was at c1, but main is at c2 now
    with pytest.raises(RefConflictError, match="main moved from .* to .*nothing was changed"):
        repo.write_commit([fake_result(7)], parents=[c1], basis=c1, message="late")
    assert repo.resolve("main") == c2 and repo.db["commits"].count == n_commits
    assert repo.db["requests"].count == 3 * n_commits
    with pytest.raises(RefConflictError):
        repo.update_ref("HEAD", c0, expected=c1)
    repo.update_ref("HEAD", c0, expected=c2)  # a reset
    assert repo.resolve("main") == c0


def test_compare_and_swap_between_two_processes_views(tmp_path):
    from test_store_support import BASE_HASH

    from memstore.store.repository import Repository

    Repository.init(tmp_path, "fake", BASE_HASH)
    a, b = Repository.open(tmp_path), Repository.open(tmp_path)
    start = b.head().commit  # b starts its (slow) edit here
    commit_on_head(a, seed=1)
    with pytest.raises(RefConflictError):
        b.write_commit([fake_result(2)], parents=[start] if start else [], basis=start,
                       message="lost update?")
    assert b.log()[0].message == "edit" and len(b.log()) == 1


def test_refs_update_must_run_in_a_transaction_with_the_rows(repo3):
    repo, (c0, _, c2) = repo3
    with pytest.raises(RuntimeError), transaction(repo.db):
        repo.refs.update("refs/heads/main", c0, expected=c2)
        raise RuntimeError("crash before commit")
    assert repo.resolve("main") == c2


def test_criss_cross_merges_nested_too_deep_are_refused_in_one_line(monkeypatch):
    """Each nested criss-cross merge is one level of the virtual merge base's recursion: past
    Python's stack (about a thousand levels) the merge was a RecursionError traceback."""
    from memstore.errors import MemstoreError
    from memstore.store import history

    repo = memory_repo()
    rows = [{"id": f"{i:064x}", "parents": "[]", "base_hash": "x", "time": float(i),
             "message": "", "operation": "commit"} for i in (1, 2)]
    a, b = rows[0]["id"], rows[1]["id"]
    for level in range(1, 1200):  # a_n merges (a, b), b_n merges (b, a): bases {a, b}
        na, nb = f"{2 * level + 1:064x}", f"{2 * level + 2:064x}"
        rows += [{**rows[0], "id": na, "parents": json.dumps([a, b]), "time": 2.0 * level + 1},
                 {**rows[0], "id": nb, "parents": json.dumps([b, a]), "time": 2.0 * level + 2}]
        a, b = na, nb
    repo.db["commits"].insert_all(rows)
    monkeypatch.setattr(history, "facts_at", lambda store, c: [])
    with pytest.raises(MemstoreError, match="nested too deep to follow"):
        history.merge_base_targets(repo.store, a, b)
    shallow_a, shallow_b = rows[6]["id"], rows[7]["id"]  # three levels: merged as before
    assert history.merge_base_targets(repo.store, shallow_a, shallow_b) == {}


def test_a_branch_a_thousand_levels_deep_is_checked_against_the_folders_above_it(tmp_path):
    """A new branch is refused beside another that is a folder of it ('a/a' and 'a/a/…'):
    the check bound one SQL parameter per level of the name, so a name of 1,000 levels
    broke SQLite's 999 before 3.32 (OperationalError: too many SQL variables; the limit
    set to that here) and the prefixes it wrote out took memory in the square of the depth.
    One query now: a branch above is found, one that only starts like a component is not."""
    db = open_index(tmp_path / "index.db", create=True)
    db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    refs = Refs(db)
    deep = "/".join(["a"] * 1000)
    refs.check_new_name(HEADS + deep)
    with transaction(db):
        refs.update(HEADS + "a/a", "0" * 64, None)
        refs.update(HEADS + "b/ab", "0" * 64, None)
    with pytest.raises(ValidationError, match="branch 'a/a' exists"):
        refs.check_new_name(HEADS + deep)
    with pytest.raises(ValidationError, match="branch 'a/a' exists"):
        refs.check_new_name(HEADS + "a")  # the folder of a branch
    refs.check_new_name(HEADS + "/".join(["b"] * 1000))  # b/ab starts it, holds no b/b
    refs.check_new_name(HEADS + "b/a")
    refs.check_new_name(HEADS + "a/a", ignoring=HEADS + "a/a")  # a rename's own old name


def test_the_folder_check_is_the_per_level_rule_for_wildcards_case_and_unicode(tmp_path):
    """The folder check (one query since d32f8cb, one parameter a level before it) refuses a
    new branch exactly where a branch here is a folder of it, or it a folder of a branch:
    SQL's LIKE wildcards ('%', '_') match only themselves, case and accents are told apart
    (a case twin is a check of its own), a branch that only starts like a component ('b/ab'
    beside 'b/a') is none, nor one sorted inside the range the query reads ('a-b' and
    'a.b' sort between 'a' and 'a/…')."""
    db = open_index(tmp_path / "index.db", create=True)
    refs = Refs(db)
    here = ["a%", "x_/y", "b/ab", "é", "Ünï/cödé", "a-b", "a.b", "q/r/s", "100%/t"]
    with transaction(db):
        for name in here:
            refs.update(HEADS + name, "0" * 64, None)
    tries = ["a%/b", "ab/c", "a/b", "aa%/b", "x_", "x/y", "xy/y", "x_/y/z", "x%/y/z",
             "b/a", "b/ab/c", "b/a_", "b/a%/c", "é/x", "e/x", "Ünï", "Ünï/cödé/x", "Üni/x",
             "a/x", "a-b/x", "a.b/x", "a-/x", "q", "q/r", "q/r/s/t", "q/r_", "100%",
             "100_/t/u", "10%/t", "100%/t/u/v", "a%b/c", "q/r/st", "Ünï/cödéx/y"]

    def folder_of(a: str, b: str) -> bool:
        return b.startswith(a + "/")

    for name in tries:
        clashing = sorted(r for r in here if folder_of(r, name) or folder_of(name, r))
        try:
            refs.check_new_name(HEADS + name)
        except ValidationError as e:
            assert "the folder of another" in str(e) and clashing, (name, str(e))
            assert re.search(r"branch '(.*)' exists", str(e))[1] in clashing, (name, str(e))
        else:
            assert not clashing, name


def test_fsck_reads_the_snapshots_once_however_many_ref_rows_are_damaged(monkeypatch):
    """fsck asked, for each ref row holding no commit id, whether a snapshot holds that ref
    sound, and read every snapshot to say no: 0.15 s for 20 such rows beside 60 snapshots.
    The snapshots are now read once for all the rows; the lines are those of the lookup
    one row at a time (a row a snapshot holds: the repair; the others: the hand-set way)."""
    from memstore.store import snapshots

    repo = memory_repo()
    commit_on_head(repo, seed=0)
    for i in range(4):
        repo.create_branch(f"b{i}", "main")
    for _ in range(8):
        repo.create_tag("t", force=True)  # each ref write records a snapshot
    for i in range(4):  # b0's name a snapshot holds sound; b1-b3 renamed to names none saw
        name = f"refs/heads/{'b0' if i == 0 else f'x{i}'}"
        repo.db.execute("update refs set target = 'garbage', name = ? where name = ?",
                        [name, f"refs/heads/b{i}"])
    snaps = len(list(repo.db.query("select seq from snapshots")))
    reads = []
    real = snapshots.parse
    monkeypatch.setattr(snapshots, "parse", lambda data: reads.append(1) or real(data))
    problems = repo.fsck(verify=False)
    assert problems == [
        ("ref refs/heads/b0 holds 'garbage', not a commit id; `memstore fsck --repair` "
         "takes its row from the newest snapshot"),
        *(f"ref refs/heads/x{i} holds 'garbage', not a commit id; no snapshot holds it "
          f"sound: `memstore branch -f x{i} REV` sets it" for i in (1, 2, 3))]
    assert snaps >= 10 and len(reads) <= snaps + 1  # one read of each, and the newest's
