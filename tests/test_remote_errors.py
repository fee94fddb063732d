"""Bad input to the remote commands: ONE line on stderr naming the input and the problem, a
non-zero exit status, and nothing written, neither in the repository nor on the remote
(nor a clone's folder left behind)."""
from __future__ import annotations

import json
from pathlib import Path

import fsspec.config
import pytest
from cli_support import (
    copy_repo,
    error_line,
    history_template,
    make_model_dir,
    model_dir,
    ok,
    run,
    snapshot,
)
from remote_support import remote_files, tamper

from memstore.remote.layout import MARKER, object_path

pytest_plugins = ["remote_fixtures"]  # s3_server, remote_url


@pytest.fixture
def repo(base, tmp_path):
    template, _ = history_template(base)
    return copy_repo(template, tmp_path / "repo")


@pytest.fixture
def pushed(repo, remote_url):
    ok("remote", "add", "origin", remote_url, cwd=repo)
    ok("push", cwd=repo)
    return repo, remote_url


def refused(*args, code: int, says: str, repo=None, url=None) -> str:
    """Runs `memstore ARGS` (in `repo` when given); asserts one error line saying `says`,
    exit status `code`, and that neither `repo` nor the remote at `url` changed."""
    before = snapshot(repo) if repo is not None else None
    remote_before = remote_files(url) if url is not None else None
    line = error_line(run(*args, cwd=repo), code, says)
    if repo is not None:
        assert snapshot(repo) == before
    if url is not None:
        assert remote_files(url) == remote_before
    return line


def test_bad_remote_urls_and_names(repo):
    refused("remote", "add", "x", "foo://bucket/path", code=2, repo=repo,
            says="unknown URL scheme 'foo' in 'foo://bucket/path'")
    for url in ("http://", "s3://", "memory:///"):  # were accepted, naming nothing
        refused("remote", "add", "x", url, code=2, repo=repo, says="names no place after")
    refused("remote", "add", "x", "gcs://bucket/path", code=2, repo=repo,
            says="the fsspec backend for gcs:// is not installed (pip install gcsfs)")
    refused("remote", "add", "x", "s3://KEY:SECRET@bucket/path", code=2, repo=repo,
            says="holds a password or a secret; give credentials through the environment")
    # a secret with '/', '?' or '#' (urlsplit ends the host there), or in the query
    for url in ("s3://AKIAX:wJalr/XUtnFEMI@bucket/p", "s3://AKIAX:se?cret@bucket/p",
                "s3://AKIAX:se#cret@bucket/p", "s3://bucket/p?secret_key=ABC"):
        line = refused("remote", "add", "x", url, code=2, repo=repo, says="holds a password")
        assert not any(x in line for x in ("XUtnFEMI", "se?cret", "se#cret", "ABC")), line
    refused("remote", "add", "a/b", "/tmp/x", code=2, repo=repo,
            says="invalid remote name 'a/b': it contains '/'")
    ok("remote", "add", "origin", "/tmp/somewhere", cwd=repo)
    refused("remote", "add", "origin", "/tmp/elsewhere", code=2, repo=repo,
            says="remote 'origin' already exists (/tmp/somewhere)")
    refused("remote", "remove", "nope", code=2, repo=repo, says="no remote 'nope'")
    refused("fetch", "nope", code=2, repo=repo, says="no remote 'nope'; known: origin")
    # git's two slips: a branch where the remote belongs, REMOTE/BRANCH as one word
    refused("push", "main", code=2, repo=repo, says="no remote 'main' ('main' is a branch: the "
            "remote comes first, `origin main`); known: origin")
    for args in (("pull", "origin/main"), ("push", "origin/main"), ("fetch", "origin/main")):
        refused(*args, code=2, repo=repo, says="no remote 'origin/main' (REMOTE/BRANCH: the "
                "remote is 'origin', its branch 'main'); known: origin")
    refused("push", "main/x", code=2, repo=repo, says="no remote 'main/x'; known: origin")
    # fsck takes a name or a URL: a word that is neither is not read as a folder
    refused("fsck", "nope", code=2, repo=repo, says="no remote 'nope' and no folder of that name")


@pytest.mark.parametrize("row", [[1], {"origin": 5}, "origin"])
def test_a_hand_edited_remotes_row_is_one_line(repo, row):
    """A remotes row that is not names and URLs was a traceback ('list' object has no
    attribute 'items') from remote, push, fetch and status."""
    import sqlite3

    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("insert or replace into config (key, value) values ('remotes', ?)",
                    (json.dumps(row),))
    con.close()
    before = snapshot(repo)
    for args in (["remote"], ["push"], ["fetch"], ["pull"], ["remote", "add", "x", "/tmp/x"]):
        error_line(run(*args, cwd=repo), 1, "the repository's remotes (config row 'remotes') "
                                            "are malformed")
    r = ok("status", cwd=repo)
    assert r.stderr.startswith("warning: the repository's remotes") and "Traceback" not in r.output
    assert snapshot(repo) == before


def test_a_relative_folder_in_the_remotes_row_is_taken_from_the_repository(repo, tmp_path,
                                                                           monkeypatch):
    """A relative path written by hand into the remotes row named a folder under the
    working directory: fetched from the repository's root it found the remote, from a
    folder within it another (none there). It is taken from the root now, from anywhere;
    `remote add` records the path it is given absolute (from where it ran)."""
    import sqlite3

    ok("remote", "add", "team", tmp_path / "team", cwd=repo)
    ok("push", "team", cwd=repo)
    con = sqlite3.connect(repo / ".memstore" / "index.db")
    with con:
        con.execute("update config set value = ? where key = 'remotes'",
                    (json.dumps({"team": "file://../team"}),))
    con.close()
    (repo / "sub").mkdir()
    for folder in (repo, repo / "sub"):
        monkeypatch.chdir(folder)
        assert f"From {tmp_path / 'team'}\n" in ok("fetch", "team").stdout
    ok("remote", "add", "up", "../../up")  # from repo/sub
    assert ok("remote", "--json", cwd=repo).stdout.count(str(tmp_path / "up")) == 1


def test_nothing_to_push(repo, tmp_path):
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    refused("push", "origin", "nobranch", code=2, repo=repo,  # not "has no commits"
            says="no branch 'nobranch'")
    ok("switch", "--detach", "HEAD", cwd=repo)
    refused("push", code=2, repo=repo, says="HEAD is detached: name the branch to push")
    refused("push", "origin", "HEAD", code=2, repo=repo,  # git's habit, as git refuses it
            says="HEAD is detached: name the branch to push")
    assert not (tmp_path / "remote").exists()
    ok("switch", "main", cwd=repo)
    out = ok("push", "-u", "origin", "HEAD", cwd=repo).stdout  # the current branch
    assert " * [new branch]               main         -> main" in out.splitlines()
    assert "branch 'main' set up to track 'origin/main'." in out


def test_unreachable_missing_and_unauthorised_stores(repo, s3_server, monkeypatch):
    bucket = s3_server.new_bucket()
    ok("remote", "add", "origin", f"s3://{bucket}/shared", cwd=repo)
    ok("remote", "add", "nobucket", "s3://no-such-bucket/shared", cwd=repo)
    refused("push", "nobucket", code=1, repo=repo, says="bucket 'no-such-bucket' does not exist")
    s3_server.require_auth(True)
    try:
        refused("push", code=1, repo=repo, says=f"remote s3://{bucket}/shared: cannot")
        msg = refused("fetch", code=1, repo=repo, says="access denied")
        assert "InvalidAccessKeyId" in msg or "Forbidden" in msg
    finally:
        s3_server.require_auth(False)
    assert remote_files(f"s3://{bucket}/shared") == {}
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": "http://127.0.0.1:9"})
    refused("push", code=1, repo=repo,
            says=f"remote s3://{bucket}/shared: cannot read {MARKER}: the store is unreachable "
                 "(EndpointConnectionError")


def test_a_remote_of_another_base_or_of_a_newer_layout(pushed, base, tmp_path):
    repo, url = pushed
    other_model = make_model_dir(tmp_path / "other-model")
    (other_model / "model.safetensors").unlink()
    import torch
    import transformers
    from tiny import tiny_config, tiny_tokenizer

    torch.manual_seed(1)  # the same architecture, other weights: another base
    cfg = tiny_config("llama", tiny_tokenizer().backend_tokenizer.get_vocab_size())
    cfg.num_hidden_layers = 4
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(other_model)
    target = tmp_path / "clone"
    line = refused("clone", url, target, "--base", other_model, code=1, url=url,
                   says="; give this machine's copy of that model with --base")  # git has none
    assert "is not the base model of" in line and f"the remote's base ({model_dir(base)}) is" in line
    assert not target.exists()
    # the same weights with another setting: a clone would write and serve another model
    import shutil

    same = tmp_path / "same-weights"
    shutil.copytree(model_dir(base), same)
    config = json.loads((same / "config.json").read_text())
    (same / "config.json").write_text(json.dumps(config | {"rope_theta": 1.0}))
    refused("clone", url, target, "--base", same, code=1, url=url,
            says="has the weights of the base model of")
    assert not target.exists()
    (same / "config.json").write_text(json.dumps(config, indent=4))  # spacing is no change
    ok("clone", url, target, "--base", same)
    shutil.rmtree(target)
    other = tmp_path / "other"
    ok("init", other, "--base", other_model)
    ok("remote", "add", "origin", url, cwd=other)
    refused("fetch", code=1, repo=other, url=url, says="holds a repository of another base model")
    marker = json.loads(remote_files(url)[MARKER])
    tamper(url, MARKER, json.dumps({**marker, "version": 9}).encode())
    for args in (("fetch",), ("push", "--force"), ("pull",)):
        refused(*args, code=1, repo=repo, url=url,
                says="has remote layout version 9, newer than this memstore reads (1)")
    refused("clone", url, target, "--base", model_dir(base), code=1, url=url,
            says="newer than this memstore reads")
    assert not target.exists()


@pytest.mark.parametrize("version", [0, -3, True])
def test_a_marker_whose_version_no_layout_has_is_damaged(pushed, version):
    """Layouts are numbered from 1: version 0, a negative one or `true` (a bool is an int
    to Python) were read as version 1."""
    repo, url = pushed
    marker = json.loads(remote_files(url)[MARKER])
    tamper(url, MARKER, json.dumps({**marker, "version": version}).encode())
    refused("fetch", code=1, repo=repo, url=url, says=f"{MARKER} is damaged")


def test_clone_refusals_leave_no_folder(pushed, base, tmp_path):
    repo, url = pushed
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    refused("clone", url, busy, "--base", model_dir(base), code=1, url=url,
            says="it exists and is not an empty folder")
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]
    # the one line, not 'Cloning into…' before it (said once the folder is found fit, as git)
    assert run("clone", url, busy, "--base", model_dir(base)).stdout == ""
    refused("clone", tmp_path / "nothing-here", tmp_path / "c1", "--base", model_dir(base),
            code=1, says=f"({tmp_path / 'nothing-here'}): no such folder (a first `memstore "
                         "push` to it creates the remote)")  # a mistyped path
    (tmp_path / "nothing-yet").mkdir()  # an empty folder: nothing was pushed to it yet
    refused("clone", tmp_path / "nothing-yet", tmp_path / "c1", "--base", model_dir(base),
            code=1, says="holds no memstore remote (nothing was pushed to it yet)")
    # a teammate's repository (as git clones one), or its .memstore: said so, with the way out
    for path in (repo, repo / ".memstore"):
        refused("clone", path, tmp_path / "c1", "--base", model_dir(base), code=1, repo=repo,
                says=f"({path}) is a memstore repository, not a remote (the files `memstore "
                     "push` writes); in that repository `memstore remote add origin URL`")
    ok("remote", "add", "mate", tmp_path / "c2", cwd=repo)
    ok("init", tmp_path / "c2", "--base", model_dir(base))
    mate = snapshot(tmp_path / "c2")
    refused("push", "mate", code=1, repo=repo, says="is a memstore repository, not a remote")
    assert snapshot(tmp_path / "c2") == mate and not (tmp_path / "c2" / MARKER).exists()
    assert not (tmp_path / "c1").exists()
    # a tampered object: refused, naming it; the half-made clone is removed again
    from memstore.store.repository import Repository

    with Repository.open(repo) as r:
        victim = r.get_commit(r.head().commit).update_sets[0].zs
    tamper(url, object_path(victim), b"tampered")
    target = tmp_path / "deep" / "c2"
    refused("clone", url, target, "--base", model_dir(base), code=1, url=url,
            says=f"object {victim} from remote 'origin' ({url}) is corrupt")
    assert not (tmp_path / "deep").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    refused("clone", url, empty, "--base", model_dir(base), code=1, url=url, says="is corrupt")
    assert run("clone", url, empty, "--base", model_dir(base)).stdout == \
        f"Cloning into {empty}...\n"
    assert list(empty.iterdir()) == []
    r = run("fsck", url)
    assert r.exit_code == 1 and f"object {victim} is corrupt" in r.stdout


def planted_branch(url: str, branch: str, data: bytes) -> str:
    """`data` stored on the remote as a well-hashed object, named by a new branch."""
    import hashlib
    import os

    oid = hashlib.sha256(data).hexdigest()
    if "://" not in url:
        os.makedirs(os.path.dirname(os.path.join(url, object_path(oid))), exist_ok=True)
    tamper(url, object_path(oid), data)
    tamper(url, f"refs/heads/{branch}", oid.encode() + b"\n")
    return oid


def test_a_damaged_or_hostile_remote_is_refused_in_one_line(pushed):
    """JSON nested past Python's recursion limit, a well-hashed object that is no commit,
    a branch name no repository may hold, and (in a folder) a file that never ends."""
    import os

    repo, url = pushed
    marker = remote_files(url)[MARKER]
    tamper(url, MARKER, b"[" * 100_000)
    refused("fetch", code=1, repo=repo, url=url, says=f"{MARKER} is damaged")
    tamper(url, MARKER, marker)
    oid = planted_branch(url, "deep", b"[" * 100_000 + b"]" * 100_000)
    refused("fetch", code=1, repo=repo, url=url, says=f"object {oid} is not a commit")
    tamper(url, "refs/heads/deep", None)
    tamper(url, "refs/heads/a..b", remote_files(url)["refs/heads/main"])
    refused("fetch", code=1, repo=repo, url=url, says="the branch name 'a..b' is not valid")
    tamper(url, "refs/heads/a..b", None)
    tamper(url, "refs/heads/big", b"0" * 5000)  # read whole before the check
    refused("fetch", code=1, repo=repo, url=url, says="refs/heads/big holds 5000 bytes")
    tamper(url, "refs/heads/big", None)
    if "://" not in url:  # a folder: a pipe where a branch should be
        os.mkfifo(os.path.join(url, "refs", "heads", "pipe"))
        refused("fetch", code=1, repo=repo, says="is not a regular file")


@pytest.mark.parametrize("damage", ["time", "layer", "stats", "settings", "template"])
def test_a_well_hashed_but_malformed_commit_is_not_fetched(pushed, damage):
    """A record from another store is checked field by field before it is taken in (each
    of these was fetched, then failed with a traceback in log, show, export or fetch)."""

    from memstore.store.objects import canonical_json

    repo, url = pushed
    tip = remote_files(url)["refs/heads/main"].decode().strip()
    record = json.loads(remote_files(url)[object_path(tip)])
    s = record["update_sets"][0]
    if damage == "time":
        record["time"] = "yesterday"
    elif damage == "layer":
        s["layers"]["../9"] = next(iter(s["layers"].values()))
    elif damage == "stats":
        s["stats"] = {"1": [1]}
    elif damage == "settings":
        s["settings"] = {**s["settings"], "mom2_weight": -5}
    else:
        s["templates"] = [5]
    oid = planted_branch(url, "bad", canonical_json(record))
    refused("fetch", code=1, repo=repo, url=url, says=f"object {oid} is not a commit")
    r = run("fsck", url)
    assert r.exit_code == 1 and f"commit {oid[:12]}" in r.stdout, r.output


def test_fsck_of_a_remote_lists_the_branch_files_a_fetch_refuses(pushed):
    """A branch name no repository may hold, or a branch file too large to be an id (a
    commit id after 5000 spaces), was 'ok' for fsck while fetch, pull and clone refused it."""
    repo, url = pushed
    main = remote_files(url)["refs/heads/main"]
    for path, data, says in (("refs/heads/a..b", main, "the branch name 'a..b' is not valid"),
                             ("refs/heads/-x", main, "the branch name '-x' is not valid"),
                             ("refs/heads/big", b" " * 5000 + main,
                              "refs/heads/big holds 5065 bytes, not a commit id")):
        tamper(url, path, data)
        refused("fetch", code=1, repo=repo, url=url, says=says)
        r = run("fsck", url)
        assert r.exit_code == 1 and says in r.stdout, r.output
        tamper(url, path, None)
    assert run("fsck", url).exit_code == 0


def test_fsck_of_a_remote_reports_a_folder_at_head(repo, tmp_path):
    """A folder where HEAD belongs (empty, or holding files: on any store) read as no HEAD,
    and fsck said ok, though no push writes HEAD there again."""
    from memstore.remote.transport import open_transport

    says = "HEAD is a folder, not the file naming the branch a clone checks out"
    folder, memory = str(tmp_path / "team"), "memory://head-folder/team"
    for name, url in (("team", folder), ("memory", memory)):
        ok("remote", "add", name, url, cwd=repo)
        ok("push", name, cwd=repo)
        tamper(url, "HEAD", None)
    (Path(folder) / "HEAD").mkdir()
    t = open_transport(memory)
    t.fs.pipe_file(t.full("HEAD/x"), b"ref: refs/heads/main\n")
    for url in (folder, memory):
        r = run("fsck", url)
        assert r.exit_code == 1 and r.stdout.startswith(says), r.output


def test_the_way_out_of_a_damaged_remote_ref_names_the_remote(repo, tmp_path):
    """fetch and fsck (given the remote's name or its URL) wrote `memstore push --delete
    --force REMOTE …`, the word REMOTE, though the repository names that remote; a URL no
    remote of the repository has keeps the word (push takes a name, not a URL)."""
    url = tmp_path / "team"
    ok("remote", "add", "team", url, cwd=repo)
    ok("push", "team", cwd=repo)
    (url / "refs/heads/main").write_bytes(b"x" * 5000)
    out = ("`memstore push --delete --force {0} refs/heads/main` removes it, "
           "`push --force {0} main` replaces it")
    error_line(run("fetch", "team", cwd=repo), 1, out.format("team"))
    for target in ("team", str(url)):
        r = run("fsck", target, cwd=repo)
        assert r.exit_code == 1 and out.format("team") in r.stdout, r.output
        r = run("fsck", target, "--repair", cwd=repo)  # the check after the repair too
        line = (f"remote {url}: refs/heads/main holds 5000 bytes, not a commit id; "
                + out.format("team"))
        assert r.exit_code == 1 and line in r.stdout.splitlines(), r.output
    r = run("fsck", str(url), cwd=tmp_path)  # no repository here
    assert r.exit_code == 1 and out.format("REMOTE") in r.stdout, r.output


def test_a_branch_an_older_memstore_named_is_passed_over(pushed, base, tmp_path):
    """A branch whose name holds a zero-width space, pushed by a memstore of before the rule
    against such names (cd5f049): every fetch, pull and clone of the shared remote was
    refused, and memstore has no command to remove a remote's branch. They pass it over in
    one warning line and take the rest; fsck of the remote still lists it."""
    repo, url = pushed
    main = remote_files(url)["refs/heads/main"]
    tamper(url, "refs/heads/zw\u200bx", main)
    for args in (("fetch",), ("pull",)):
        r = run(*args, cwd=repo)
        assert r.exit_code == 0, r.output
        assert r.stderr.strip().splitlines() == [(
            f"warning: remote {url}: branch 'zw\\u200bx' passed over: it contains U+200B, a "
            "character that does not show as itself (an older memstore accepted it); remove "
            "it there, under refs/heads/")], r.stderr
    assert run("log", "-n", "1", "origin/zw\u200bx", cwd=repo).exit_code != 0
    r = run("clone", url, tmp_path / "clone", "--base", model_dir(base))
    assert r.exit_code == 0 and "passed over" in r.stderr, r.output
    assert run("log", "-n", "1", "origin/main", cwd=tmp_path / "clone").exit_code == 0
    r = run("fsck", url)
    assert r.exit_code == 1 and "the branch name 'zw\\u200bx' is not valid" in r.stdout, r.output


@pytest.mark.parametrize("damage", ["other layer", "huge count", "bool layer"])
def test_a_statistics_record_is_checked_against_its_path_and_types(pushed, base, tmp_path,
                                                                    damage):
    """SAMPLE.1.json holding layer 2's record was cloned as layer 1's statistics (layer 2's
    tensor solved layer 1's next edit); a token count past SQLite's integer was a traceback."""
    repo, url = pushed
    ok("push", "--with-stats", cwd=repo)
    one, two = sorted(p for p in remote_files(url) if p.startswith("statistics/"))
    record = json.loads(remote_files(url)[two])
    if damage == "other layer":
        path, says = one, f"{one} is damaged (it holds the record of layer 2"
    elif damage == "huge count":
        path, says = two, f"{two} is damaged (a negative or oversized"
        record["n_tokens"] = 10**30
    else:
        path, says = two, f"{two} is damaged (layer is not an integer)"
        record["layer"] = True
    tamper(url, path, json.dumps(record).encode())
    target = tmp_path / "clone"
    refused("clone", url, target, "--base", model_dir(base), "--with-stats", code=1, url=url,
            says=says)
    assert not target.exists()
    r = run("fsck", url)
    assert r.exit_code == 1 and says in r.stdout, r.output


def test_a_folder_remote_is_not_read_through_a_symbolic_link(repo, tmp_path):
    """A link in a folder remote (a branch to a file of this machine, refs/ to a folder of
    it) was followed: fetch, clone and fsck printed the file's first bytes in their error."""
    import os

    url = str(tmp_path / "remote")
    ok("remote", "add", "origin", url, cwd=repo)
    ok("push", cwd=repo)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("TOP-SECRET-token-0123456789")
    main = os.path.join(url, "refs", "heads", "main")
    saved = Path(main).read_bytes()
    for link, target in ((main, outside / "secret"),
                         (os.path.join(url, "refs"), outside)):
        moved = link + ".saved"
        os.rename(link, moved)
        os.symlink(target, link)
        line = refused("fetch", code=1, repo=repo, says=f"{link} is a symbolic link")
        assert "SECRET" not in line
        r = run("fsck", url)
        assert r.exit_code == 1 and "is a symbolic link" in r.output and "SECRET" not in r.output
        os.unlink(link)
        os.rename(moved, link)
    assert Path(main).read_bytes() == saved and ok("fsck", url).stdout.strip() == "ok"


@pytest.mark.parametrize("command", ["fetch", "pull"])
def test_a_fetch_refused_for_its_statistics_keeps_nothing_of_the_history(pushed, base,
                                                                        tmp_path, command):
    """The statistics came after the history, as a step of their own: a damaged record
    refused `fetch --with-stats` with the remote's commits and origin/main already stored."""
    repo, url = pushed
    ok("push", "--with-stats", cwd=repo)
    record = min(p for p in remote_files(url) if p.startswith("statistics/"))
    tamper(url, record, b"{}")
    fresh = tmp_path / "fresh"  # a new repository of the same base, no statistics yet
    ok("init", fresh, "--base", model_dir(base))
    ok("remote", "add", "origin", url, cwd=fresh)
    args = [command, "--with-stats"] + (["origin", "main"] if command == "pull" else [])
    refused(*args, code=1, repo=fresh, url=url, says=f"{record} is damaged")  # no change


def test_fsck_repair_of_a_remote_from_the_command_line(pushed, tmp_path):
    """`fsck origin --repair` writes back a damaged object (one line on stderr saying how
    many), then checks the remote (`ok`); outside a repository it is refused in one line,
    the remote unchanged; --json lists what it rewrote."""
    repo, url = pushed
    files = remote_files(url)
    victim = next(p for p in sorted(files) if p.startswith("objects/"))
    tamper(url, victim, files[victim][:-1] + bytes([files[victim][-1] ^ 0xFF]))
    r = run("fsck", "origin", cwd=repo)
    assert r.exit_code == 1 and "is corrupt" in r.stdout
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    before = remote_files(url)
    error_line(run("fsck", url, "--repair", cwd=outside), 1, "not a memstore repository")
    assert remote_files(url) == before
    r = run("fsck", "origin", "--repair", cwd=repo)
    assert r.exit_code == 0 and r.stdout.strip() == "ok", r.output
    assert "rewrote 1 object (" in r.stderr and remote_files(url) == files
    r = run("fsck", "origin", "--repair", "--json", cwd=repo)
    assert json.loads(r.stdout) == {"ok": True, "problems": [], "rewritten": []}
    assert "rewrote 0 objects (0 B)" in r.stderr


def test_a_first_push_makes_the_remote_s_folder_not_the_folders_above_it(repo, tmp_path):
    """A typo in a folder remote's path (/tmp/typo/deep/remote) made the whole tree of
    folders on the first push; the remote's own folder is made, as the README says, and a
    folder above it that is not there is named, nothing written."""
    url = tmp_path / "typo" / "deep" / "remote"
    ok("remote", "add", "origin", url, cwd=repo)
    ok("tag", "v1", cwd=repo)
    for args in (["push", "-u", "origin", "main"], ["push", "--tags", "origin"]):
        refused(*args, code=1, repo=repo, says=f"remote {url}: no such folder {url.parent} "
                "(a first `memstore push` creates the remote's own folder, not the folders "
                "above it: check the path, or create them)")
        assert not (tmp_path / "typo").exists()
    url.parent.mkdir(parents=True)
    ok("push", "-u", "origin", "main", cwd=repo)
    assert (url / MARKER).is_file()
