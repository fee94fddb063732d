"""What a push killed outright leaves on a remote, and the later push that removes it.

A folder remote's temporaries are `.tmp-<host>-<pid>-<random>` (as in the object store): the
first write of a push into a folder removes those of a dead process of this host, never a
live one's nor another machine's. Any other fsspec store is shared by machines whose pids
mean nothing there: its temporaries are `.tmp-<host>-<pid>-<random>-<UTC time>-<name>`,
and the first write into a folder removes those older than a day (and an earlier
memstore's `.tmp-<uuid>-<name>` the store says were modified that long ago), never a
younger one, which a push running now could be writing. S3 writes no temporary file: a
push killed while streaming leaves an incomplete multipart upload, which the first write of
a later push aborts once it is a day old."""
from __future__ import annotations

import datetime
import os

from pids import dead_pid
from remote_support import make_repo
from test_store_support import commit_on_head, fake_result

from memstore import leftovers
from memstore.remote.push import push
from memstore.remote.transport import open_transport
from memstore.store.objects import TEMP_PREFIX

pytest_plugins = ["remote_fixtures"]  # s3_server

DAY = 24 * 3600
HEAD = r"\.tmp-"


def stamped(name: str, age: float, host: str = "other-host") -> str:
    """A temporary name for `name` as a push on `host` would have made it `age` s ago."""
    made = datetime.datetime.fromtimestamp(leftovers.now() - age, datetime.UTC)
    return f"{TEMP_PREFIX}{host}-4242-0123abcd-{made:%Y%m%dT%H%M%SZ}-{name}"


def test_stamped_names_tell_their_age():
    name = leftovers.stamped_temp_name(TEMP_PREFIX, "-abc")
    assert name.startswith(f"{TEMP_PREFIX}{leftovers.owner_tag()}-")
    made = leftovers.made_at(name, HEAD, "-.+")
    assert abs(made - leftovers.now()) < 2 and not leftovers.stale(made)
    assert leftovers.stale(leftovers.made_at(stamped("abc", DAY + 60), HEAD, "-.+"))
    assert not leftovers.stale(leftovers.made_at(stamped("abc", DAY - 60), HEAD, "-.+"))
    for other in (f"{TEMP_PREFIX}{'0' * 32}-abc", f"{TEMP_PREFIX}h-1-0123abcd-abc",
                  f"{TEMP_PREFIX}h-1-0123abcd-20241301T000000Z-abc"):  # no time, month 13
        assert leftovers.made_at(other, HEAD, "-.+") is None
    assert not leftovers.stale(None)


def test_an_fsspec_store_drops_stale_temporaries_where_it_writes(monkeypatch):
    """memory://: a write into a folder removes the temporaries there older than a day
    (any host's), an earlier memstore's unstamped one modified more than a day ago; it
    keeps a younger one (a push running now), an unstamped one modified lately, and
    anything else; its own temporary is stamped and gone once the file is in place."""
    t = open_transport("memory://temporaries-1/repo")
    old, young = stamped("ab" * 31, DAY + 60), stamped("cd" * 31, DAY - 600)
    legacy_old, legacy_new = f"{TEMP_PREFIX}{'1' * 32}-x", f"{TEMP_PREFIX}{'2' * 32}-y"
    other = ".tmpfile"
    for name in (old, young, legacy_old, legacy_new, other):
        t.fs.pipe_file(t.full(f"objects/ab/{name}"), b"partial")
    t.fs.store[t.full(f"objects/ab/{legacy_old}")].modified = datetime.datetime.fromtimestamp(
        leftovers.now() - 2 * DAY, datetime.UTC)
    t.fs.pipe_file(t.full(f"refs/heads/{stamped('main', 3 * DAY)}"), b"x")  # not written into
    written = []
    # on the class, for this test only: fsspec keeps one instance per store, which an
    # attribute set on it (even one monkeypatch puts back) would shadow for later tests
    real = type(t.fs).pipe_file
    monkeypatch.setattr(type(t.fs), "pipe_file", lambda fs, path, data, **kw: (
        written.append(path), real(fs, path, data, **kw)))
    t.put("objects/ab/" + "ef" * 31, b"data")
    left = sorted(p.rsplit("/", 1)[-1] for p in t.fs.ls(t.full("objects/ab"), detail=False))
    assert left == sorted([young, legacy_new, other, "ef" * 31])
    assert t.list("refs/") == {} and len(t.fs.ls(t.full("refs/heads"))) == 1
    tmp = written[0].rsplit("/", 1)[-1]
    assert leftovers.made_at(tmp, HEAD, "-" + "ef" * 31) is not None
    assert tmp.startswith(f"{TEMP_PREFIX}{leftovers.owner_tag()}-")


def test_a_push_removes_a_killed_push_s_stale_temporaries(tmp_path):
    """End to end on memory://: a push killed between writing a branch's temporary and
    moving it into place left `refs/heads/.tmp-…-main`; the next push removes it once it is
    a day old, and not before."""
    url = "memory://temporaries-2/repo"
    repo = make_repo(tmp_path / "a", url)
    t = open_transport(url)
    young, old = stamped("main", 60), stamped("main", DAY + 60)
    for name in (young, old):
        t.fs.pipe_file(t.full(f"refs/heads/{name}"), b"0" * 64 + b"\n")
    commit_on_head(repo, fake_result(1))
    push(repo)
    left = {p.rsplit("/", 1)[-1] for p in t.fs.ls(t.full("refs/heads"), detail=False)}
    assert left == {"main", young}
    repo.close()


def test_a_folder_remote_drops_a_dead_writer_s_temporaries(tmp_path):
    """A folder remote: the first write into a folder removes the temporaries of a dead
    process of this host there, never a live process's, another host's, or a stamped one
    of any age (a folder remote's are never stamped)."""
    t = open_transport(str(tmp_path / "remote"))
    fan = tmp_path / "remote" / "objects" / "ab"
    fan.mkdir(parents=True)
    dead = f"{TEMP_PREFIX}{leftovers.HOST}-{dead_pid()}-0123abcd"
    alive = f"{TEMP_PREFIX}{leftovers.HOST}-{os.getppid()}-0123abcd"
    elsewhere = f"{TEMP_PREFIX}other-host-{dead_pid()}-0123abcd"
    for name in (dead, alive, elsewhere, stamped("x", 3 * DAY)):
        (fan / name).write_bytes(b"partial")
    t.put("objects/ab/" + "ef" * 31, b"data")
    assert sorted(p.name for p in fan.iterdir()) == sorted(
        [alive, elsewhere, stamped("x", 3 * DAY), "ef" * 31])


def test_s3_aborts_a_killed_push_s_stale_multipart_uploads(s3_server, monkeypatch):
    """S3: the first write of a transport aborts the incomplete multipart uploads under the
    remote's objects/ initiated more than a day ago; a younger one (a push streaming now)
    and one outside the remote are kept. (moto reports every upload as initiated at one
    fixed time: the clock is set from what it reports.)"""
    import boto3

    bucket = s3_server.new_bucket()
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)

    def start(key: str) -> None:
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)
        s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1,
                       Body=b"x" * 100)

    def uploads() -> list[str]:
        return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket)
                      .get("Uploads", []))

    ours, theirs = "repo/objects/ab/" + "cd" * 31, "elsewhere/objects/ab/" + "cd" * 31
    start(ours)
    start(theirs)
    initiated = s3.list_multipart_uploads(Bucket=bucket)["Uploads"][0]["Initiated"].timestamp()
    monkeypatch.setattr(leftovers, "now", lambda: initiated + DAY - 600)
    open_transport(f"s3://{bucket}/repo").put("refs/heads/main", b"0" * 64 + b"\n")
    assert uploads() == sorted([ours, theirs])  # under a day old: a push may be writing it
    monkeypatch.setattr(leftovers, "now", lambda: initiated + DAY + 60)
    open_transport(f"s3://{bucket}/repo").put_many({"objects/ef/" + "01" * 31: b"data"})
    assert uploads() == [theirs]
