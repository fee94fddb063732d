import pytest
import torch
from test_store_support import BASE_HASH, D_IN, commit_on_head, fake_result

from memstore.editing.statistics import Statistics
from memstore.errors import MemstoreError
from memstore.store.objects import TEMP_PREFIX
from memstore.store.repository import Repository


@pytest.fixture
def repo(tmp_path):
    return Repository.init(tmp_path, "fake", BASE_HASH)


def writable(repo, oid):
    path = repo.objects.path(oid)
    path.chmod(0o644)
    return path


def test_fsck_passes_on_a_sound_repository(repo):
    commit_on_head(repo, seed=1)
    commit_on_head(repo, seed=2)
    repo.create_tag("v1")
    assert repo.fsck() == [] and repo.fsck(verify=False) == []


def test_fsck_finds_a_corrupt_object(repo):
    c = commit_on_head(repo, seed=1)
    layer = c.update_sets[0].layers[2].object
    path = writable(repo, layer)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the tensor data
    path.write_bytes(bytes(data))
    problems = repo.fsck()
    assert f"object {layer} is corrupt (its content does not match its name)" in problems
    assert any(f"commit {c.id[:12]}: object {layer} of update set 0 is corrupt" in p
               for p in problems)
    with pytest.raises(MemstoreError, match="corrupt"):
        Repository.open(repo.root).update_chain("HEAD")


def test_fsck_finds_a_missing_object_and_a_missing_commit(repo):
    c1 = commit_on_head(repo, seed=1)
    c2 = commit_on_head(repo, seed=2)
    zs = c1.update_sets[0].zs
    writable(repo, zs).unlink()
    writable(repo, c2.id).unlink()
    problems = repo.fsck()
    assert f"commit {c1.id[:12]}: object {zs} of update set 0 is missing" in problems
    assert f"commit {c2.id[:12]}: its object is missing" in problems
    assert f"object {zs} is indexed but missing" in problems


def test_fsck_finds_inconsistent_index_rows(repo):
    c = commit_on_head(repo, seed=1)
    repo.db.execute("update requests set subject = 'forged' where position = 0")
    repo.db.execute("insert into refs (name, target) values ('refs/tags/t', ?)", ["e" * 64])
    problems = repo.fsck()
    assert f"commit {c.id[:12]}: request rows disagree with the record (3 rows, 3 requests); " \
           "`memstore fsck --repair` rebuilds them from it" in problems
    assert any(p.startswith(f"ref refs/tags/t points to {'e' * 64}, which is not a known "
                            "commit; ") for p in problems), problems


def test_gc_removes_only_unreachable_objects(repo):
    mom2 = torch.eye(D_IN, dtype=torch.float64)
    stats = repo.put_statistics(Statistics(1, mom2, 10, "sample"))
    c1 = commit_on_head(repo, seed=1)
    repo.switch("side", create=True)
    side = commit_on_head(repo, seed=2)
    repo.switch("main")
    c3 = commit_on_head(repo, seed=3)
    orphan = repo.objects.put_bytes(b"left by a crashed commit")
    temp = repo.objects.path(orphan).parent / (TEMP_PREFIX + "crashed")
    temp.write_bytes(b"half an object")
    before = set(repo.objects.iter())

    assert repo.gc().objects == [orphan]  # everything else is reachable
    assert not temp.exists()
    assert set(repo.objects.iter()) == before - {orphan}

    repo.delete_branch("side", force=True)  # writes one more ref snapshot
    snapshot = {r["object"] for r in repo.db.query("select object from snapshots")} - before
    preview = repo.gc(dry_run=True, expire=0)  # HEAD's reflog names it: expired now
    assert len(snapshot) == 1
    assert preview.commits == [side.id]
    assert set(repo.objects.iter()) == (before - {orphan}) | snapshot
    report = repo.gc(expire=0)
    assert report.commits == [side.id]
    shared = set(c1.object_ids()) | set(c3.object_ids())
    assert set(report.objects) == set(side.object_ids()) - shared
    assert report.bytes == preview.bytes > 0
    assert repo.objects.contains(stats.object)  # statistics are roots
    assert not repo.has_commit(side.id) and repo.find_requests(subject="s2-subject-0") == []
    assert repo.fsck() == []
    assert len(repo.update_chain("HEAD")) == 2 and repo.gc().objects == []


def test_gc_keeps_a_basis_that_is_no_ancestor(repo):
    c1 = commit_on_head(repo, seed=1)
    repo.switch("other", create=True)
    other = commit_on_head(repo, seed=2)
    repo.switch("main")
    # state = other's state + one set, recorded on main
    c = repo.write_commit([fake_result(3)], parents=[c1.id], basis=other.id, message="x")
    repo.delete_branch("other", force=True)
    assert repo.gc().commits == []
    assert len(repo.update_chain(c.id)) == 3 and repo.fsck() == []


def test_gc_refuses_a_damaged_history(repo):
    c1 = commit_on_head(repo, seed=1)
    commit_on_head(repo, seed=2)
    writable(repo, c1.id).unlink()
    with pytest.raises(MemstoreError, match="gc refused"):
        repo.gc()


def test_fsck_finds_a_commit_on_another_base_or_beyond_the_model(tmp_path):
    from memstore.store import config

    repo = Repository.init(tmp_path, "fake", BASE_HASH, {"n_layers": 2})
    c = commit_on_head(repo, seed=1)  # writes layers 1 and 2; the base has layers 0 and 1
    assert sorted(c.update_sets[0].layers) == [1, 2]
    problems = repo.fsck()
    assert problems == [(f"commit {c.id[:12]}: update set 0 writes layer 2, which the base "
                         "model (2 layers) lacks")]
    b = repo.base
    config.put(repo.db, config.BASE, config.base_json(b.spec, "f" * 64, None, {"n_layers": 3}))
    assert f"commit {c.id[:12]}: made on another base model than this repository's" \
        in repo.fsck(verify=False)


def test_fsck_while_a_gc_runs_reports_nothing(repo, monkeypatch):
    """fsck takes no lock: a gc in another process may remove objects it has listed (the
    index rows first, then the files). Those are not missing objects."""
    commit_on_head(repo, seed=1)
    repo.switch("side", create=True)
    side = commit_on_head(repo, seed=2)
    repo.switch("main")
    repo.delete_branch("side", force=True)
    checker = Repository.open(repo.root)  # as another process
    real, ran = checker.objects.chunks, []

    def chunks(oid, *args):
        if not ran:  # the objects are listed; gc runs before they are read
            ran.append(repo.gc(expire=0))  # HEAD's reflog names side: expired now
        return real(oid, *args)

    monkeypatch.setattr(checker.objects, "chunks", chunks)
    assert checker.fsck() == []
    assert ran[0].commits == [side.id] and ran[0].objects
    checker.close()


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("when", ["objects listed", "commits read"])
def test_fsck_while_a_commit_lands_reports_nothing(repo, monkeypatch, verify, when):
    """fsck takes no lock: another process may commit after fsck listed the objects, or
    read the commit rows. Its objects and rows are no damage (fsck said 'object … is
    indexed but missing' and 'its object is missing', or 'ref … points to …, which is not a
    known commit', exit 1, of a sound repository)."""
    from memstore.store import config, maintenance

    commit_on_head(repo, seed=1)
    checker = Repository.open(repo.root)  # as another process
    ran = []

    def another_commit():
        if not ran:
            ran.append(None)
            ran[0] = commit_on_head(repo, seed=2)

    if when == "objects listed":
        real_iter = checker.objects.iter
        monkeypatch.setattr(checker.objects, "iter",
                            lambda: (list(real_iter()), another_commit())[0])
    else:  # fsck reads the base record right after the commit rows, before the refs
        real_base = config.read_base
        monkeypatch.setattr(maintenance.config, "read_base",
                            lambda db: (another_commit(), real_base(db))[1])
    assert checker.fsck(verify=verify) == []
    assert ran and checker.head().commit == ran[0].id
    checker.close()


def test_gc_keeps_the_temporary_files_of_live_writers_and_other_hosts(repo):
    """gc removes the temporary files a dead process of this host left in the object store
    and those whose names carry no owner (an earlier memstore's), never a live process's (a
    writer on a file system whose lock does not reach gc), another host's, or a link."""
    import os

    from memstore import leftovers

    oid = repo.objects.put_bytes(b"an orphan")
    fan = repo.objects.path(oid).parent
    from pids import dead_pid

    gone = dead_pid()
    h = leftovers.HOST
    dead = [fan / f"{TEMP_PREFIX}{h}-{gone}-0123abcd", fan / f"{TEMP_PREFIX}abc_1234"]
    kept = [fan / f"{TEMP_PREFIX}{h}-{os.getpid()}-0123abcd",  # this process writes it
            fan / f"{TEMP_PREFIX}{h}-{os.getppid()}-0123abcd",  # a live process's
            fan / f"{TEMP_PREFIX}elsewhere-{gone}-0123abcd"]  # another host's
    for t in [*dead, *kept]:
        t.write_bytes(b"half an object")
    link = fan / f"{TEMP_PREFIX}{h}-{gone}-0123abce"
    link.symlink_to(kept[0])
    assert repo.gc(dry_run=True).temp_files == 2
    report = repo.gc()
    assert report.temp_files == 2 and report.objects == [oid]
    assert not any(t.exists() for t in dead)
    assert all(t.read_bytes() == b"half an object" for t in kept) and link.is_symlink()
    assert sorted(fan.iterdir()) == sorted([*kept, link])


def test_fsck_hashes_a_large_object_without_reading_it_whole(repo):
    """Re-hashing reads each object a chunk at a time: fsck's peak memory on a 40 MiB object
    (a statistics or ΔW object of a big model is GBs) stays far below its size; a flipped
    byte at its end is still found."""
    import os
    import tracemalloc
    big = os.urandom(40 << 20)
    oid = repo.objects.put_bytes(big)
    del big
    tracemalloc.start()
    try:
        problems = repo.fsck()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (20 << 20), peak
    assert not any(oid in p for p in problems)
    path = writable(repo, oid)
    with open(path, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    assert f"object {oid} is corrupt (its content does not match its name)" in repo.fsck()


def test_repair_keeps_one_ref_snapshot_in_memory_not_all(repo, monkeypatch):
    """Every ref change writes a snapshot of all refs, kept until gc: with many tags and
    commits since, `fsck --repair` held every snapshot parsed while it rebuilt the index
    (597 MB against 323 MB now for 1,100 refs and 5,900 snapshots). It keeps their seq and
    time, and reads the refs and config again from the one it uses; the same index."""
    import gc
    import weakref

    from memstore.store import repair, snapshots

    first = commit_on_head(repo, seed=1).id
    for i in range(15):
        repo.create_tag(f"v{i}", first)
    for s in range(2, 8):
        commit_on_head(repo, seed=s)
    refs = sorted(repo.refs.all().items())
    repo.close()
    (repo.dir / "index.db").unlink()
    parsed: list[weakref.ref] = []
    alive: list[int] = []

    class Parsed(dict):
        pass

    real_parse, real_build = snapshots.parse, repair._build

    def parse(data):
        d = real_parse(data)
        if d is None:
            return None
        d = Parsed(d)
        parsed.append(weakref.ref(d))
        return d

    def build(*args):
        gc.collect()
        alive.append(sum(1 for p in parsed if p() is not None))
        return real_build(*args)

    monkeypatch.setattr(snapshots, "parse", parse)
    monkeypatch.setattr(repair, "_build", build)
    report = repair.repair(repo.root)
    assert report.source.startswith("snapshot") and len(parsed) > 20
    assert alive == [0]  # none of them held while the index is rebuilt
    with Repository.open(repo.root) as again:
        assert sorted(again.refs.all().items()) == refs and again.fsck() == []
