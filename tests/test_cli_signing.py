"""Signed commits (memstore.store.signing): `commit -S`, commit.gpgsign, verify-commit,
log/show --show-signature, merge/pull --verify-signatures, with SSH keys as git's
gpg.format ssh; the signature travels through a folder remote in the record."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import tempfile
import time

import children
import pytest
from cli_support import (
    copy_repo,
    empty_template,
    error_line,
    facts_files,
    last_line,
    ok,
    run,
    snapshot,
)

from memstore.store import signing
from memstore.store.repository import Repository

KEYGEN = "ssh-keygen"


def make_key(path):
    children.run([KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True)
    out = children.run([KEYGEN, "-l", "-f", f"{path}.pub"], capture_output=True, text=True,
                         check=True).stdout
    return path, out.split()[1]  # the key and its SHA256 fingerprint


@pytest.fixture
def keys(tmp_path, monkeypatch):
    """alice (allowed) and mallory (not), an allowed-signers file naming alice; git's
    config of this machine left out (an empty global one, no system one)."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    (tmp_path / "gitconfig").write_text("")
    d = tmp_path / "keys"
    d.mkdir()
    alice, mallory = make_key(d / "alice"), make_key(d / "mallory")
    allowed = d / "allowed_signers"
    allowed.write_text(f"alice@example.org {(d / 'alice.pub').read_text().split(' ', 2)[0]} "
                       f"{(d / 'alice.pub').read_text().split()[1]}\n")
    return {"alice": alice, "mallory": mallory, "allowed": allowed}


@pytest.fixture
def repo(base, tmp_path):
    return copy_repo(empty_template(base), tmp_path / "repo")


def configure(repo, keys, who="alice"):
    ok("config", "user.signingkey", keys[who][0], cwd=repo)
    ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=repo)


def verified(repo, *revs):
    return json.loads(run("verify-commit", "--json", *revs, cwd=repo).stdout)


def test_signed_commit_verifies_and_travels_through_a_folder_remote(repo, keys, base,
                                                                      tmp_path):
    configure(repo, keys)
    files = facts_files(base)
    signed = last_line(ok("commit", files["a"], "-S", cwd=repo))
    plain = last_line(ok("commit", files["b"], cwd=repo))
    r = run("verify-commit", signed, cwd=repo)
    fingerprint = keys["alice"][1]
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == (f'{signed[:12]} Good "memstore" signature for '
                                f"alice@example.org with key {fingerprint}")
    r = run("verify-commit", signed, plain, cwd=repo)  # one unsigned: exit status 1
    assert r.exit_code == 1 and r.stdout.splitlines()[1] == f"{plain[:12]} No signature"
    entries = json.loads(ok("log", "--json", "--show-signature", cwd=repo).stdout)
    assert [e["signature"] for e in entries] == [
        {"status": "none", "principal": None, "fingerprint": None, "reason": None},
        {"status": "good", "principal": "alice@example.org", "fingerprint": fingerprint,
         "reason": None}]
    assert all("signature" not in e for e in json.loads(ok("log", "--json", cwd=repo).stdout))
    text = ok("log", "--show-signature", cwd=repo).stdout.splitlines()
    assert text[text.index(f"commit {signed}") + 1].startswith('Good "memstore" signature')
    shown = json.loads(ok("show", signed, "--json", "--show-signature", cwd=repo).stdout)
    assert shown["signature"]["status"] == "good"
    # the signature is in the record: a push and a fetch carry it, and it still verifies
    url = str(tmp_path / "remote")
    ok("remote", "add", "origin", url, cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    other = copy_repo(empty_template(base), tmp_path / "other")
    ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=other)
    ok("remote", "add", "origin", url, cwd=other)
    ok("fetch", cwd=other)
    assert [v["status"] for v in verified(other, "origin/main~1", "origin/main")] == [
        "good", "none"]


def test_commit_gpgsign_signs_every_command_that_writes_a_commit(repo, keys, base):
    configure(repo, keys)
    ok("config", "commit.gpgsign", "true", cwd=repo)
    files = facts_files(base)
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    c2 = last_line(ok("commit", files["b"], "--no-gpg-sign", cwd=repo))
    rv = last_line(ok("revert", c1, cwd=repo))  # signed where commits are written, not per
    assert [v["status"] for v in verified(repo, c1, c2, rv)] == ["good", "none", "good"]
    ok("config", "commit.gpgsign", "false", cwd=repo)
    ok("switch", "-c", "topic", "HEAD~1", cwd=repo)
    ok("commit", files["c"], cwd=repo)
    ok("switch", "main", cwd=repo)
    merged = last_line(ok("merge", "topic", "-S", cwd=repo))
    assert [v["status"] for v in verified(repo, "topic", merged)] == ["none", "good"]


def test_git_config_names_the_key_where_its_gpg_format_is_ssh(repo, keys, base, tmp_path):
    (tmp_path / "gitconfig").write_text(
        f"[user]\n\tsigningkey = {keys['alice'][0]}\n[commit]\n\tgpgsign = true\n"
        f"[gpg \"ssh\"]\n\tallowedSignersFile = {keys['allowed']}\n")
    files = facts_files(base)
    unsigned = last_line(ok("commit", files["a"], cwd=repo))  # gpg.format openpgp: not ours
    with open(tmp_path / "gitconfig", "a") as f:
        f.write("[gpg]\n\tformat = ssh\n")
    signed = last_line(ok("commit", files["b"], cwd=repo))
    assert [v["status"] for v in verified(repo, unsigned, signed)] == ["none", "good"]


def test_a_key_not_allowed_a_tampered_signature_and_another_namespace(repo, keys, base):
    configure(repo, keys, "mallory")
    files = facts_files(base)
    by_mallory = last_line(ok("commit", files["a"], "-S", cwd=repo))
    r = run("verify-commit", by_mallory, cwd=repo)
    assert r.exit_code == 1
    assert r.stdout.strip() == (f"{by_mallory[:12]} Signature by key {keys['mallory'][1]}, "
                                "which is not in the allowed signers "
                                "(gpg.ssh.allowedSignersFile)")
    with Repository.open(repo) as store:
        record = store.objects.get_json(by_mallory)
        # another record under mallory's signature (a message changed, well hashed: a push
        # of someone who rewrote it), a signature with a changed byte, a "git" signature
        changed = dict(record, message="not what was signed")
        body = record["signature"].splitlines()
        body[3] = body[3][:10] + ("A" if body[3][10] != "A" else "B") + body[3][11:]
        flipped = dict(record, signature="\n".join(body) + "\n")
        as_git = children.run([KEYGEN, "-Y", "sign", "-f", str(keys["alice"][0]), "-n", "git"],
                                input=signing.payload(record), capture_output=True,
                                check=True).stdout.decode()
        in_git = dict(record, signature=as_git)
        ids = [store.objects.put_json(x) for x in (changed, flipped, in_git)]
        statuses = [signing.verify_commit(store.db, store.objects, i).status for i in ids]
    assert statuses == ["bad", "bad", "bad"]


def test_a_record_edited_after_signing_fails_its_hash_first(repo, keys, base):
    configure(repo, keys)
    c = last_line(ok("commit", facts_files(base)["a"], "-S", cwd=repo))
    path = next(p for p in (repo / ".memstore" / "objects").rglob(f"*{c[4:]}*") if p.is_file())
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"message":"', b'"message":"X'))
    # the hash message wins: the bytes are not the object's, said before any signature
    err = error_line(run("verify-commit", c, cwd=repo), 1, c)
    assert "signature" not in err.lower()


def test_merge_and_pull_verify_signatures_refuse_an_unsigned_tip(repo, keys, base, tmp_path):
    configure(repo, keys)
    files = facts_files(base)
    ok("commit", files["a"], "-S", cwd=repo)
    ok("switch", "-c", "topic", cwd=repo)
    ok("commit", files["b"], "-S", cwd=repo)
    ok("commit", files["c"], cwd=repo)  # the tip unsigned, the commit below it signed
    ok("switch", "main", cwd=repo)
    before = snapshot(repo)
    err = error_line(run("merge", "topic", "--verify-signatures", cwd=repo), 1,
                     "No signature; not merged (--verify-signatures)")
    assert err.startswith("memstore: error: topic (")
    assert snapshot(repo) == before
    ok("switch", "topic", cwd=repo)
    ok("config", "user.signingkey", keys["mallory"][0], cwd=repo)
    ok("commit", files["d"], "-S", cwd=repo)  # signed, by a key not allowed
    ok("switch", "main", cwd=repo)
    before = snapshot(repo)
    error_line(run("merge", "topic", "--verify-signatures", cwd=repo), 1,
               "not in the allowed signers")
    assert snapshot(repo) == before
    # pull: the fetched tip checked before it is merged, the fetch kept
    url = str(tmp_path / "remote")
    ok("remote", "add", "origin", url, cwd=repo)
    ok("push", "origin", "topic", cwd=repo)
    other = copy_repo(empty_template(base), tmp_path / "other")
    ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=other)
    ok("remote", "add", "origin", url, cwd=other)
    r = run("pull", "--verify-signatures", "origin", "topic", cwd=other)
    assert r.exit_code == 1 and "not in the allowed signers" in r.stderr, r.output
    with Repository.open(other) as o:
        assert o.head().commit is None  # nothing merged
        assert o.refs.read("refs/remotes/origin/topic") is not None  # the fetch kept
    ok("config", "user.signingkey", keys["alice"][0], cwd=repo)
    ok("switch", "topic", cwd=repo)
    tip = last_line(ok("commit", files["e"], "-S", cwd=repo))
    ok("push", "origin", "topic", cwd=repo)
    ok("pull", "--verify-signatures", "origin", "topic", cwd=other)
    with Repository.open(other) as o:
        assert o.head().commit == tip


def test_signing_errors_are_one_line_and_write_nothing(repo, keys, base, tmp_path,
                                                      monkeypatch):
    files = facts_files(base)

    def refused(says: str, *options: str) -> None:
        before = snapshot(repo)
        error_line(run("commit", files["a"], *options, cwd=repo), 1, says)
        assert snapshot(repo) == before  # no object, no row: refused before the edit

    refused("no user.signingkey configured", "-S")
    ok("config", "user.signingkey", tmp_path / "nowhere", cwd=repo)
    refused("no readable file there", "-S")
    (tmp_path / "garbage").write_text("not a key\n")
    ok("config", "user.signingkey", tmp_path / "garbage", cwd=repo)
    ok("config", "commit.gpgsign", "true", cwd=repo)
    refused("not an SSH key ssh-keygen can read")
    error_line(run("config", "commit.gpgsign", "maybe", cwd=repo), 2, "not a boolean")
    ok("config", "user.signingkey", keys["alice"][0], cwd=repo)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with monkeypatch.context() as m:
        m.setenv("PATH", str(bin_dir))
        refused("ssh-keygen is not installed", "-S")
        # one that reads the key but fails to sign (an agent gone, a passphrase not given):
        # found at the write, after the edit; its objects are orphans for gc, no commit
        fake = bin_dir / "ssh-keygen"
        fake.write_text('#!/bin/sh\n[ "$1" = -l ] && exit 0\n'
                        'echo "Couldn\'t sign message: agent refused operation" >&2\n'
                        'exit 255\n')
        fake.chmod(0o755)
        before = snapshot(repo)["rows"]
        error_line(run("commit", files["a"], "-S", cwd=repo), 1,
                   "ssh-keygen could not sign with user.signingkey")
        assert snapshot(repo)["rows"] == before
    signed = last_line(ok("commit", files["a"], "-S", cwd=repo))
    ok("config", "gpg.ssh.allowedSignersFile", tmp_path / "no-such-file", cwd=repo)
    error_line(run("verify-commit", signed, cwd=repo), 1, "gpg.ssh.allowedSignersFile")


def test_commit_gpgsign_without_a_key_refuses_revert_squash_and_pick_before_the_work(
        repo, keys, base, monkeypatch):
    from memstore.store import porcelain

    files = facts_files(base)
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    ok("switch", "-c", "topic", cwd=repo)
    picked = last_line(ok("commit", files["b"], cwd=repo))
    ok("switch", "main", cwd=repo)
    ok("commit", files["c"], cwd=repo)
    ok("config", "commit.gpgsign", "true", cwd=repo)
    def begun(*args, **kwargs):
        raise AssertionError("the work began before the key was checked")

    for name in ("revert", "squash", "cherry_pick"):  # the work (a replay, a solve)
        monkeypatch.setattr(porcelain, name, begun)
    before = snapshot(repo)
    for args in (("revert", c1), ("squash", c1), ("cherry-pick", picked)):
        error_line(run(*args, cwd=repo), 1, "no user.signingkey configured")
    assert snapshot(repo) == before


def test_the_signature_is_an_optional_key_of_the_record():
    """A record written without signing has no `signature` key (the bytes, and so the id,
    of every commit made before signing existed); a signed one holds it, outside the bytes
    it signs; a record whose signature is not an armored SSH signature is refused."""
    from memstore.store.commits import Commit, CorruptRecordError, make_commit
    from memstore.store.objects import canonical_json, hash_bytes

    given = {}

    def sign(data: bytes) -> str:
        given["data"] = data
        return "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"

    fields = {"parents": [], "base": "b" * 64, "basis": None, "update_sets": [],
              "message": "m", "time": 1.5, "operation": "commit", "author": "A <a@x>"}
    plain, data = make_commit(**fields)
    signed, signed_data = make_commit(**fields, sign=sign)
    record = json.loads(data)
    assert "signature" not in record and plain.id == hash_bytes(canonical_json(record))
    assert given["data"] == data == signing.payload(json.loads(signed_data))
    assert signed.id == hash_bytes(signed_data) != plain.id
    assert Commit.from_json(signed.id, json.loads(signed_data)).signature == signed.signature
    with pytest.raises(CorruptRecordError, match="signature"):
        Commit.from_json("c" * 64, dict(record, signature=5))


def test_verify_commit_of_an_object_that_is_no_commit_record_is_damage(repo):
    """A branch set to an object that is no commit record (a tensor's bytes, a JSON record
    of another kind: a damaged index): verify-commit read the object as a record without
    parsing it, a UnicodeDecodeError traceback for the tensor and "No signature", as a
    verdict, for the other. Each is damage now, in one line, as show says it (not a
    commit of format 1, or not a well-formed commit record)."""
    objects = [p for p in (repo / ".memstore" / "objects").rglob("*") if p.is_file()]
    tensor = next(p for p in objects if not p.read_bytes().startswith(b"{"))
    other = next(p for p in objects if p.read_bytes().startswith(b"{"))
    for path in (tensor, other):
        oid = path.parent.name + path.name
        con = sqlite3.connect(repo / ".memstore" / "index.db")
        with con:
            con.execute("insert or replace into refs (name, target) values "
                        "('refs/heads/main', ?)", (oid,))
        con.close()
        for args in (("verify-commit", "main"), ("verify-commit", "--json", "main")):
            error_line(run(*args, cwd=repo), 1, f"object {oid} is not a")


def _signed_record(key, namespace="memstore", when=1.5):
    """A record (verify reads no other field of it) signed as commit -S signs one."""
    record = {"format": 1, "parents": [], "message": "m", "time": when}
    signature = children.run([KEYGEN, "-Y", "sign", "-f", str(key), "-n", namespace],
                               input=signing.payload(record), capture_output=True,
                               check=True).stdout.decode()
    return dict(record, signature=signature)


def test_allowed_signers_lines_are_read_as_git_reads_them(repo, keys):
    """A principal quoted with a space in it ("Alice Liddell" ssh-ed25519 …), which git
    finds Good: find-principals' output was split at spaces and the halves tried as
    principals, a BAD verdict for a good signature. A key the file allows only in other
    namespaces (namespaces="git"): refused, but said as BAD ("it does not match the
    commit's record") where the record is intact and the signature good: not allowed, with
    ssh-keygen's reason, as git says "Could not verify signature" and the reason."""
    alice_pub = " ".join((keys["alice"][0].parent / "alice.pub").read_text().split()[:2])
    record = _signed_record(keys["alice"][0])
    configure(repo, keys)
    for line, status, principal in (
            (f'"Alice Liddell" {alice_pub}', "good", "Alice Liddell"),
            (f'alice@example.org namespaces="git" {alice_pub}', "not-allowed", None),
            (f"alice@example.org {alice_pub}", "good", "alice@example.org")):
        keys["allowed"].write_text(line + "\n")
        with Repository.open(repo) as store:
            verdict = signing.verify(store.db, record)
        assert (verdict.status, verdict.principal) == (status, principal), line
        assert verdict.fingerprint == keys["alice"][1]
    keys["allowed"].write_text(f'alice@example.org namespaces="git" {alice_pub}\n')
    with Repository.open(repo) as store:
        said = signing.verify(store.db, record).line()
    assert said == (f"Signature by key {keys['alice'][1]}, which is not allowed: "
                    f"{keys['allowed']}:1: key is not permitted for use in "
                    'signature namespace "memstore"')
    with Repository.open(repo) as store:  # a changed record stays BAD under that line
        assert signing.verify(store.db, dict(record, message="x")).status == "bad"


def test_a_merge_or_pull_that_writes_no_commit_needs_no_key_nor_a_signed_tip(repo, keys,
                                                                              base, tmp_path):
    """As git: a fast-forward (merge, pull; -S or commit.gpgsign) writes no commit and
    needs no usable key, where memstore refused it ('no readable file there'); merge and
    pull --verify-signatures of a commit merged already say "Already up to date.", exit 0,
    where memstore refused its missing signature. A merge that writes a commit is still
    refused before the work."""
    files = facts_files(base)
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    c2 = last_line(ok("commit", files["b"], cwd=repo))  # neither signed
    configure(repo, keys)
    for args in (("merge", "--verify-signatures", c1), ("merge", "--verify-signatures", c2)):
        assert ok(*args, cwd=repo).stdout.splitlines() == ["Already up to date.", c2]
    url = str(tmp_path / "remote")
    ok("remote", "add", "origin", url, cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    assert ok("pull", "--verify-signatures", "origin", "main", cwd=repo).stdout \
        .splitlines()[-2:] == ["Already up to date.", c2]
    ok("config", "commit.gpgsign", "true", cwd=repo)
    ok("config", "user.signingkey", tmp_path / "nowhere", cwd=repo)
    for branch, how in (("ff1", ()), ("ff2", ("-S",))):
        ok("switch", "-c", branch, c1, cwd=repo)
        assert last_line(ok("merge", "main", *how, cwd=repo)) == c2
        ok("switch", "-c", f"{branch}-pull", c1, cwd=repo)
        assert last_line(ok("pull", "origin", "main", *how, cwd=repo)) == c2
    ok("switch", "-c", "apart", c1, cwd=repo)
    ok("commit", files["c"], "--no-gpg-sign", cwd=repo)
    ok("switch", "-c", "behind", c1, cwd=repo)
    for branch, args in (("apart", ("merge", "main")), ("behind", ("merge", "--no-ff", "main"))):
        ok("switch", branch, cwd=repo)
        before = snapshot(repo)
        error_line(run(*args, cwd=repo), 1, "no readable file there")
        assert snapshot(repo) == before


@pytest.fixture
def agent(tmp_path, monkeypatch, keys):
    """An ssh-agent of this test's own, holding alice's key (SSH_AUTH_SOCK set to it)."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if sock.exists():
                break
            time.sleep(0.01)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        children.run(["ssh-add", "-q", str(keys["alice"][0])], check=True,
                       capture_output=True)
        yield sock
    finally:
        proc.terminate()
        children.wait(proc)


def test_a_literal_signing_key_as_git_s_signs_with_the_key_in_ssh_agent(repo, keys, base,
                                                                        tmp_path, agent,
                                                                        monkeypatch):
    """git's user.signingkey may be the public key itself ("ssh-ed25519 AAAA…", or
    "key::…"), its private half in ssh-agent (git writes it to a temporary file and signs
    with -U): memstore took it for a path, and every commit under such a git config's
    commit.gpgsign was refused ('no readable file there'); `memstore config` made a path of
    it. Signed now as git signs, the key file in a private temporary folder removed after."""
    pub = {who: " ".join((keys[who][0].parent / f"{who}.pub").read_text().split()[:2])
           for who in ("alice", "mallory")}
    (tmp_path / "gitconfig").write_text(
        f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = {pub['alice']}\n"
        f"[gpg \"ssh\"]\n\tallowedSignersFile = {keys['allowed']}\n")
    signed = last_line(ok("commit", facts_files(base)["a"], "-S", cwd=repo))
    assert [v["status"] for v in verified(repo, signed)] == ["good"]
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    record = {"format": 1, "parents": [], "message": "m", "time": 1.5}
    for who, status in (("alice", "good"), ("mallory", None)):
        ok("config", "user.signingkey", f"key::{pub[who]}", cwd=repo)
        with Repository.open(repo) as store:
            assert signing.get(store.db, signing.KEY) == f"key::{pub[who]}"  # no path
            sign = signing.signer(store.db, True)
            if status is None:  # a key no agent holds: one line, at the write, as git's
                with pytest.raises(signing.SigningError, match="Couldn't find key in agent"):
                    sign(signing.payload(record))
            else:
                verdict = signing.verify(store.db, dict(
                    record, signature=sign(signing.payload(record))))
                assert (verdict.status, verdict.fingerprint) == (status, keys[who][1])
        assert list(temp.iterdir()) == []  # the key file's folder removed


def test_config_help_names_the_signing_settings():
    """`config KEY VALUE` takes the three signing settings (README's config row), and
    `config --help` listed the editor's and the runtime's only."""
    text = ok("config", "--help").stdout
    assert [k for k in signing.KEYS if f"  {k} " not in text] == []


def test_a_key_bounded_in_time_is_judged_at_the_commit_s_time_as_git(repo, keys):
    """A key the allowed-signers file bounds with valid-before (a key retired in a
    rotation): git's verify-commit judges each commit at its committer time
    (-Overify-time), so the commits it signed while valid stay good; memstore judged them
    at the moment it checked, and every one said "not in the allowed signers"."""
    alice_pub = " ".join((keys["alice"][0].parent / "alice.pub").read_text().split()[:2])
    configure(repo, keys)
    keys["allowed"].write_text(
        f'alice@example.org valid-after="20200101",valid-before="20250101" {alice_pub}\n')
    day = 86400
    cases = {1718000000.0: "good",  # 2024-06-10, inside the window
             1735689600.0 + 30 * day: "not-allowed",  # 2025-01-31, after it
             1577836800.0 - 30 * day: "not-allowed"}  # 2019-12-02, before it
    with Repository.open(repo) as store:
        got = {when: signing.verify(store.db, _signed_record(keys["alice"][0], when=when))
               .status for when in cases}
    assert got == cases


def test_a_key_in_git_s_revocation_file_is_not_allowed(repo, keys, tmp_path):
    """gpg.ssh.revocationFile (git passes it to ssh-keygen -Y verify as -r): memstore did not
    read it, so a key revoked there, still in the allowed-signers file, stayed good. Now
    not allowed, saying so, whether the file lists public keys or is a KRL; one set but
    not there is refused (git would warn and verify without it: the key good again)."""
    record = _signed_record(keys["alice"][0])
    configure(repo, keys)
    listed = tmp_path / "revoked.pub"
    listed.write_text((keys["alice"][0].parent / "alice.pub").read_text())
    krl = tmp_path / "revoked.krl"
    children.run([KEYGEN, "-q", "-k", "-f", str(krl), str(listed)], check=True,
                   capture_output=True)
    for revoked in (listed, krl):
        ok("config", "gpg.ssh.revocationFile", revoked, cwd=repo)
        with Repository.open(repo) as store:
            verdict = signing.verify(store.db, record)
        assert verdict.status == "not-allowed"
        assert verdict.line().endswith(f"the key is revoked (gpg.ssh.revocationFile "
                                       f"{revoked})")
    (tmp_path / "gitconfig").write_text(f'[gpg "ssh"]\n\trevocationFile = {krl}\n')
    ok("config", "gpg.ssh.revocationFile", "", cwd=repo)  # git's, where unset here
    with Repository.open(repo) as store:
        assert signing.verify(store.db, record).status == "not-allowed"
    krl.unlink()
    with Repository.open(repo) as store, pytest.raises(signing.SigningError,
                                                       match="no readable file there"):
        signing.verify(store.db, record)
    (tmp_path / "gitconfig").write_text("")
    with Repository.open(repo) as store:
        assert signing.verify(store.db, record).status == "good"


def test_with_no_allowed_signers_file_log_still_lists_and_no_key_is_allowed(repo, keys,
                                                                             base):
    """No gpg.ssh.allowedSignersFile set (a fresh clone of a signed history): log
    --show-signature and show --show-signature refused the whole output in one error line;
    git lists the history, each signature "No principal matched", exit 0. Now each signed
    commit is not allowed, saying why; verify-commit exits 1 with that line; a file set but
    not there is still refused."""
    ok("config", "user.signingkey", keys["alice"][0], cwd=repo)
    signed = last_line(ok("commit", facts_files(base)["a"], "-S", cwd=repo))
    entries = json.loads(ok("log", "--json", "--show-signature", cwd=repo).stdout)
    assert [e["signature"]["status"] for e in entries] == ["not-allowed"]
    reason = "no gpg.ssh.allowedSignersFile is configured"
    assert entries[0]["signature"]["reason"].startswith(reason)  # --json says why too
    assert verified(repo, signed)[0]["reason"] == entries[0]["signature"]["reason"]
    said = f"Signature by key {keys['alice'][1]}, which is not allowed: {reason}"
    text = ok("log", "--show-signature", cwd=repo).stdout.splitlines()
    assert text[1].startswith(said), text
    assert ok("show", "--show-signature", cwd=repo).stdout.splitlines()[1].startswith(said)
    r = run("verify-commit", signed, cwd=repo)
    assert r.exit_code == 1 and r.stdout.startswith(f"{signed[:12]} {said}"), r.output
    ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"].parent / "gone", cwd=repo)
    error_line(run("log", "--show-signature", cwd=repo), 1, "no readable file there")


def test_a_signed_record_in_other_bytes_is_damage_not_another_good_commit(repo, keys, base):
    """The signature signs the canonical payload rebuilt from the record's content, so the
    same record in other bytes (keys reordered, spaces, an escape: each another id) verified
    Good under a commit id nobody signed, and was read as a commit by show and log. A
    record whose bytes are not the canonical JSON of what they hold is damage now, where
    records are parsed; the canonical one still verifies."""
    configure(repo, keys)
    signed = last_line(ok("commit", facts_files(base)["a"], "-S", cwd=repo))
    with Repository.open(repo) as store:
        record = store.objects.get_json(signed)
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        variants = [json.dumps(record).encode(),  # spaces
                    json.dumps(dict(reversed(record.items())), separators=(",", ":"),
                               ensure_ascii=False).encode(),  # key order
                    text.replace('"format":1', '"form\\u0061t":1').encode()]  # an escape
        ids = [store.objects.put_bytes(v) for v in variants]
    assert len(set(ids) | {signed}) == 4
    for oid in ids:
        con = sqlite3.connect(repo / ".memstore" / "index.db")
        with con:
            con.execute("insert or replace into refs (name, target) values "
                        "('refs/heads/variant', ?)", (oid,))
        con.close()
        for args in (("verify-commit", "variant"), ("show", "variant")):
            error_line(run(*args, cwd=repo), 1, f"object {oid} is a commit record in other "
                                                "bytes")
    assert verified(repo, signed)[0]["status"] == "good"


def test_config_lists_the_signing_settings_and_which_git_supplied(repo, keys, tmp_path):
    """`config` with no key listed the editor's and the runtime's settings only, though the
    README's row names the signing ones and `config KEY` shows each: they are listed last
    now, those git's config supplied marked so (--json: from_git), an unset one none."""
    (tmp_path / "gitconfig").write_text(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = "
                                        f"{keys['alice'][0]}\n[commit]\n\tgpgsign = true\n")
    ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=repo)
    ok("config", "commit.gpgsign", "false", cwd=repo)  # the repository's wins over git's
    values = json.loads(ok("config", "--json", cwd=repo).stdout)
    assert {k: values[k] for k in (*signing.KEYS, "from_git")} == {
        "user.signingkey": str(keys["alice"][0]),
        "gpg.ssh.allowedSignersFile": str(keys["allowed"]), "commit.gpgsign": "false",
        "gpg.ssh.revocationFile": None, "from_git": ["user.signingkey"]}
    lines = {line.split()[0]: line for line in ok("config", cwd=repo).stdout.splitlines()}
    assert lines["user.signingkey"].split() == ["user.signingkey", str(keys["alice"][0]),
                                                "#", "from", "git's", "config"]
    assert lines["gpg.ssh.allowedSignersFile"].split() == ["gpg.ssh.allowedSignersFile",
                                                           str(keys["allowed"])]
    assert lines["commit.gpgsign"].split() == ["commit.gpgsign", "false"]
    assert lines["gpg.ssh.revocationFile"].split() == ["gpg.ssh.revocationFile", "none"]
    for key in signing.KEYS:  # the listing says what `config KEY` says
        assert ok("config", key, cwd=repo).stdout.split() == lines[key].split()[1:2]


def test_commit_gpgsign_without_a_key_refuses_a_rebase_before_the_work(repo, base,
                                                                      monkeypatch):
    """rebase under commit.gpgsign with no usable key solved its first pick and failed only
    at the write; its key is checked before the weights are loaded and solved now (after
    the plan on the facts, which says whether a pick writes a commit), as revert's,
    squash's and cherry-pick's. A rebase that writes no commit (up to date, a
    fast-forward) needs no key, as git's."""
    from memstore.store import rebase

    files = facts_files(base)
    ok("commit", files["a"], cwd=repo)
    ok("switch", "-c", "topic", cwd=repo)
    ok("commit", files["b"], cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("commit", files["c"], cwd=repo)
    ok("config", "commit.gpgsign", "true", cwd=repo)

    def begun(*args, **kwargs):
        raise AssertionError("the work began before the key was checked")

    monkeypatch.setattr(rebase, "state_of", begun)
    monkeypatch.setattr(rebase, "solve_pick", begun)
    ok("switch", "topic", cwd=repo)
    before = snapshot(repo)
    error_line(run("rebase", "main", cwd=repo), 1, "no user.signingkey configured")
    assert snapshot(repo) == before
    ok("rebase", "main~1", cwd=repo)  # up to date: no commit written, no key needed
    ok("switch", "-c", "behind", "main~1", cwd=repo)
    ok("rebase", "main", cwd=repo)  # a fast-forward


def test_a_key_that_needs_its_passphrase_says_to_add_it_to_ssh_agent(repo, base, tmp_path):
    """ssh-keygen reads a key's passphrase from its standard input, which holds the record:
    a passphrase-protected key failed with its "Enter passphrase: Load key …: incorrect
    passphrase supplied to decrypt private key". One line now says the key needs its
    passphrase, and to add it to ssh-agent and name its public key; nothing committed."""
    key = tmp_path / "locked"
    children.run([KEYGEN, "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)],
                   check=True)
    ok("config", "user.signingkey", key, cwd=repo)
    before = snapshot(repo)["rows"]
    err = error_line(run("commit", facts_files(base)["a"], "-S", cwd=repo), 1,
                     f"user.signingkey {key} needs its passphrase")
    assert f"`ssh-add {key}`" in err and f"`memstore config user.signingkey {key}.pub`" in err
    assert "Enter passphrase" not in err
    assert snapshot(repo)["rows"] == before


def test_a_malformed_signing_row_is_set_again_with_config(repo, keys):
    """The signing row damaged (not a table): each command reading it said to set it again
    with `memstore config`, and `config KEY VALUE` was a TypeError or ValueError traceback
    (dict() of the row). It sets the row again now, the listing refusing until then."""
    configure(repo, keys)
    for damaged in ("7", '"text"', "[1, 2]"):
        con = sqlite3.connect(repo / ".memstore" / "index.db")
        with con:
            con.execute("update config set value = ? where key = 'signing'", (damaged,))
        con.close()
        error_line(run("config", cwd=repo), 1, "config row 'signing' is malformed; set the "
                                               "signing settings again")
        ok("config", "user.signingkey", keys["alice"][0], cwd=repo)
        values = json.loads(ok("config", "--json", cwd=repo).stdout)
        assert (values["user.signingkey"], values["gpg.ssh.allowedSignersFile"]) == (
            str(keys["alice"][0]), None)
        ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=repo)


def test_a_fetch_refuses_a_signed_record_in_other_bytes(repo, keys, base, tmp_path):
    """A remote branch naming the same signed record in other bytes (spaces: another id,
    well hashed): fetch took it, and verify-commit called the commit nobody signed Good.
    The fetch refuses it now, in one line naming the object, nothing fetched."""
    from remote_support import tamper

    from memstore.remote.layout import object_path

    configure(repo, keys)
    signed = last_line(ok("commit", facts_files(base)["a"], "-S", cwd=repo))
    url = str(tmp_path / "remote")
    ok("remote", "add", "origin", url, cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    with Repository.open(repo) as store:
        variant = json.dumps(store.objects.get_json(signed)).encode()
    vid = hashlib.sha256(variant).hexdigest()
    (tmp_path / "remote" / object_path(vid)).parent.mkdir(exist_ok=True)
    tamper(url, object_path(vid), variant)
    tamper(url, "refs/heads/variant", f"{vid}\n".encode())
    other = copy_repo(empty_template(base), tmp_path / "other")
    ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=other)
    ok("remote", "add", "origin", url, cwd=other)
    before = snapshot(other)
    error_line(run("fetch", cwd=other), 1, f"object {vid} is not a commit")
    assert snapshot(other) == before


def test_a_rebase_that_writes_no_commit_needs_no_usable_key(repo, base, tmp_path):
    """commit.gpgsign on and user.signingkey naming a file that is no key: a rebase that
    writes no commit (up to date, a fast-forward, or every pick dropped because the
    upstream holds its facts already; pull --rebase too) works, as git's, which signs only
    what it commits. One whose picks write a commit is refused on the key before its
    work."""
    files = facts_files(base)
    ok("commit", files["a"], cwd=repo)
    ok("switch", "-c", "topic", cwd=repo)
    ok("commit", files["b"], cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("commit", files["b"], cwd=repo)  # main holds topic's facts: topic's pick is dropped
    ok("commit", files["c"], cwd=repo)
    junk = tmp_path / "not-a-key"
    junk.write_text("no key here\n")
    ok("config", "user.signingkey", junk, cwd=repo)
    ok("config", "commit.gpgsign", "true", cwd=repo)
    ok("switch", "topic", cwd=repo)
    ok("rebase", "main", cwd=repo)  # every pick dropped: main's tip, nothing written
    refs = Repository.open(repo).refs
    assert refs.read("refs/heads/topic") == refs.read("refs/heads/main")
    ok("rebase", "main~1", cwd=repo)  # up to date
    ok("switch", "-c", "behind", "main~1", cwd=repo)
    ok("rebase", "main", cwd=repo)  # a fast-forward
    ok("remote", "add", "origin", str(tmp_path / "remote"), cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("switch", "-c", "again", "main~2", cwd=repo)
    ok("commit", files["b"], "--no-gpg-sign", cwd=repo)
    ok("pull", "--rebase", "origin", "main", cwd=repo)  # its pick dropped: no commit
    assert Repository.open(repo).refs.read("refs/heads/again") == refs.read("refs/heads/main")
    for branch in ("ahead", "ahead-pull"):
        ok("switch", "-c", branch, "main~2", cwd=repo)
        ok("commit", files["d"], "--no-gpg-sign", cwd=repo)
        before = snapshot(repo)
        args = ("rebase", "main") if branch == "ahead" else ("pull", "--rebase", "origin",
                                                              "main")
        error_line(run(*args, cwd=repo), 1, "user.signingkey")
        assert snapshot(repo) == before


def test_a_git_setting_that_is_no_utf8_text_is_one_line(repo, keys, base, tmp_path):
    """git's config holding a value that is no UTF-8 text (a key path in another encoding):
    `config` (listing it since 013efa8), `config KEY` and a commit ended in a
    UnicodeDecodeError traceback (git_config.read decoded strictly); one line now, naming the
    setting, nothing written."""
    (tmp_path / "gitconfig").write_bytes(b"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = "
                                         b"\xff\xfe-key\n")
    before = snapshot(repo)
    for args in (("config",), ("config", "--json"), ("config", "user.signingkey"),
                 ("commit", facts_files(base)["a"], "-S")):
        error_line(run(*args, cwd=repo), 2, "git's config user.signingkey is not UTF-8 text")
    assert snapshot(repo) == before
    (tmp_path / "gitconfig").write_bytes(b"[user]\n\tname = \xe9milie\n")
    error_line(run("commit", facts_files(base)["a"], cwd=repo), 2,
               "git's config user.name is not UTF-8 text")
    assert snapshot(repo) == before


def test_git_s_bare_commit_gpgsign_signs(repo, keys, base, tmp_path):
    """git reads a bare `gpgsign` (no `= VALUE`) under [commit] as true and signs;
    memstore read its empty value as unset and signed nothing (reproduced: `config
    commit.gpgsign` said none, the commit unsigned)."""
    (tmp_path / "gitconfig").write_text(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = "
                                        f"{keys['alice'][0]}\n[commit]\n\tgpgsign\n")
    ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=repo)
    assert ok("config", "commit.gpgsign", cwd=repo).stdout.split() == ["true"]
    ok("commit", facts_files(base)["a"], cwd=repo)
    ok("verify-commit", "HEAD", cwd=repo)


def test_s_and_no_gpg_sign_decide_for_revert_squash_pick_and_rebase(repo, keys, base):
    """revert, squash, cherry-pick and rebase followed commit.gpgsign only: git's -S and
    --no-gpg-sign were refused as unknown options. They decide for one command now, as for
    commit and merge, -S's key checked before the work."""
    from memstore.store import porcelain, rebase

    files = facts_files(base)
    c1 = last_line(ok("commit", files["a"], cwd=repo))
    ok("switch", "-c", "topic", cwd=repo)
    picked = last_line(ok("commit", files["b"], cwd=repo))
    ok("branch", "topic2", cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("commit", files["c"], cwd=repo)
    ok("branch", "two", cwd=repo)

    def begun(*args, **kwargs):
        raise AssertionError("the work began before the key was checked")

    ok("switch", "topic", cwd=repo)
    before = snapshot(repo)  # no key configured: -S refused before the work
    with pytest.MonkeyPatch.context() as m:
        for name in ("revert", "squash", "cherry_pick"):
            m.setattr(porcelain, name, begun)
        m.setattr(rebase, "state_of", begun)
        m.setattr(rebase, "solve_pick", begun)
        for args in (("rebase", "main"), ("revert", c1), ("squash", c1),
                     ("cherry-pick", "main")):
            error_line(run(*args, "-S", cwd=repo), 1, "no user.signingkey configured")
    assert snapshot(repo) == before
    configure(repo, keys)
    for flag, status, branch, side in (("-S", "good", "main", "topic"),
                                       ("--no-gpg-sign", "none", "two", "topic2")):
        ok("config", "commit.gpgsign", "false" if flag == "-S" else "true", cwd=repo)
        ok("switch", branch, cwd=repo)
        made = [last_line(ok("squash", "HEAD~1", flag, cwd=repo))]
        ok("switch", side, cwd=repo)
        ok("rebase", branch, flag, cwd=repo)
        made.append(Repository.open(repo).refs.read(f"refs/heads/{side}"))
        ok("switch", branch, cwd=repo)
        made.append(last_line(ok("cherry-pick", picked, flag, cwd=repo)))
        made.append(last_line(ok("revert", c1, flag, cwd=repo)))
        assert [v["status"] for v in verified(repo, *made)] == [status] * 4, flag


def test_a_signing_value_that_does_not_print_is_refused_in_one_line(repo, keys):
    """`config user.signingkey $'a\\nb'` was taken and listed over two lines (the next one
    a setting of no name); a value holding a newline, a tab or another character that does
    not print is refused now, exit status 2, nothing written."""
    configure(repo, keys)
    before = snapshot(repo)
    for key in signing.KEYS:
        for value in (f"{keys['alice'][0]}\nb", "a\tb", "true\r", "x\x1b[2Jy", "a\u2028b"):
            error_line(run("config", key, value, cwd=repo), 2, f"{key}: {value!r}")
    assert snapshot(repo) == before
    listed = ok("config", cwd=repo).stdout.splitlines()
    assert [line.split()[0] for line in listed if line.split()[0] in signing.KEYS] == list(
        signing.KEYS)


def test_a_signing_row_entry_that_is_no_string_is_one_line(repo, keys, base, tmp_path):
    """{"user.signingkey": 5} in the repository's signing row (set by hand) was passed over
    for git's value, silently: commits signed with another key than the one the user set.
    It is one line naming the row and `memstore config KEY VALUE` now, as a malformed row
    is, and `config KEY VALUE` sets it again; so is a value over two lines that `config`
    took before it refused them."""
    git_key = tmp_path / "git-key"
    (tmp_path / "gitconfig").write_text(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = "
                                        f"{git_key}\n")
    configure(repo, keys)
    for damaged in (5, None, f"{keys['alice'][0]}\nb"):  # the last: one taken before
        con = sqlite3.connect(repo / ".memstore" / "index.db")
        with con:
            row = json.loads(con.execute("select value from config where key = 'signing'")
                             .fetchone()[0])
            con.execute("update config set value = ? where key = 'signing'",
                        (json.dumps(row | {"user.signingkey": damaged}),))
        con.close()
        before = snapshot(repo)
        for args in (("config",), ("config", "user.signingkey"),
                     ("commit", facts_files(base)["a"], "-S")):
            error_line(run(*args, cwd=repo), 1, f"config row 'signing' holds {damaged!r} "
                                                "for user.signingkey; set it again "
                                                "(`memstore config user.signingkey VALUE`)")
        assert snapshot(repo) == before
        ok("config", "user.signingkey", keys["alice"][0], cwd=repo)
        assert ok("config", "user.signingkey", cwd=repo).stdout.strip() == str(
            keys["alice"][0])


def test_git_s_signing_value_that_does_not_print_is_one_line(repo, keys, tmp_path):
    """git's user.signingkey holding a newline (`signingkey = "a\\nb"`) was listed by
    `memstore config` over two lines, the second a setting of no name; it is one line
    saying to set it again with git now, as a value no UTF-8 text is (f721bfb)."""
    (tmp_path / "gitconfig").write_text('[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = '
                                        f'"{keys["alice"][0]}\\nb"\n')
    for args in (("config",), ("config", "--json"), ("config", "user.signingkey")):
        error_line(run(*args, cwd=repo), 2, f"git's config user.signingkey holds "
                                            f"'{keys['alice'][0]}\\nb'")
    (tmp_path / "gitconfig").write_text(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = "
                                        f"{keys['alice'][0]}\n")
    assert ok("config", "user.signingkey", cwd=repo).stdout.strip() == str(keys["alice"][0])


@pytest.mark.parametrize("text", ["[user\n\tname = x\n", '[user]\n\tname = "x\n'])
def test_a_malformed_git_config_stops_every_command_that_reads_it(repo, keys, base, tmp_path,
                                                                   text):
    """A bad line in git's config (`[user`, an unterminated `name = "x`) read as unset:
    commit.gpgsign off (the commit silently unsigned), the author the login's. git stops
    ("fatal: bad config line 1 in file …", 128); so does memstore now, in one line naming
    the file in git's words, nothing written: the writers, `config`, verify-commit and a
    command that only moves a ref (its reflog entry records the author), and a push before
    it writes the remote (its remote-tracking branch is logged here after), and a rename
    before it deletes the old name."""
    ok("config", "user.signingkey", keys["alice"][0], cwd=repo)  # the allowed signers: git's
    c1 = last_line(ok("commit", facts_files(base)["a"], "-S", cwd=repo))
    remote = tmp_path / "remote"
    ok("remote", "add", "origin", remote, cwd=repo)
    ok("push", "origin", "main", cwd=repo)
    ok("commit", facts_files(base)["c"], cwd=repo)

    def remote_files():
        return {str(p): p.read_bytes() for p in sorted(remote.rglob("*")) if p.is_file()}

    on_remote = remote_files()
    bad = tmp_path / "gitconfig"
    bad.write_text(text)
    line = text.count("\n") if '"' in text else 1
    git = subprocess.run(["git", "config", "--get", "user.name"], capture_output=True,
                         text=True, check=False)
    assert git.returncode == 128 and f"bad config line {line} in file {bad}" in git.stderr
    before = snapshot(repo)
    for args in (("commit", facts_files(base)["b"]), ("commit", facts_files(base)["b"], "-S"),
                 ("revert", c1), ("config",), ("config", "--json"),
                 ("config", "commit.gpgsign"), ("verify-commit", c1), ("branch", "side"),
                 ("push", "origin", "main"),  # the remote moved, then stopped: not now
                 # a branch deleted, then the new one refused: the deletion's snapshot
                 # object was left, which fsck --repair took after an index loss
                 ("branch", "-m", "main", "trunk"), ("remote", "rename", "origin", "up")):
        error_line(run(*args, cwd=repo), 2, f"git's config cannot be read (bad config line "
                                            f"{line} in file {bad})")
    assert snapshot(repo) == before and remote_files() == on_remote
    bad.write_text("")  # mended: the same commands run
    ok("branch", "side", cwd=repo)
    ok("commit", facts_files(base)["b"], cwd=repo)


def test_s_with_a_key_attached_signs_with_that_key(repo, keys, base):
    """git's `-S<keyid>` and `--gpg-sign=<keyid>` (the key for that command, over
    user.signingkey) were refused: -S was a flag. Now as git's in every command that signs:
    attached only, a bare -S never takes the next word (`commit -S FILE` signs FILE's
    commit with the configured key); a key that is not there is one line, nothing written."""
    configure(repo, keys, "mallory")  # the configured key: not an allowed signer
    alice = keys["alice"][0]
    files = facts_files(base)
    before = snapshot(repo)
    for args in (("commit", "-S/nowhere", files["a"]), ("commit", files["a"],
                                                         "--gpg-sign=/nowhere")):
        error_line(run(*args, cwd=repo), 1, "--gpg-sign /nowhere: no readable file there")
    error_line(run("commit", files["a"], "--gpg-sign=", cwd=repo), 2, "--gpg-sign: '' is no key")
    assert snapshot(repo) == before
    c1 = last_line(ok("commit", f"-S{alice}", files["a"], cwd=repo))
    c2 = last_line(ok("commit", "-S", files["b"], cwd=repo))  # bare: the configured key
    c3 = last_line(ok("commit", files["c"], f"--gpg-sign={alice}", cwd=repo))
    ok("switch", "-c", "side", c1, cwd=repo)
    s1 = last_line(ok("commit", files["d"], "--no-gpg-sign", cwd=repo))
    ok("commit", files["e"], "--no-gpg-sign", cwd=repo)
    ok("switch", "main", cwd=repo)
    made = [last_line(ok("cherry-pick", f"--gpg-sign={alice}", s1, cwd=repo)),
            last_line(ok("revert", f"-S{alice}", c2, cwd=repo))]
    ok("switch", "side", cwd=repo)
    ok("rebase", f"-S{alice}", "main", cwd=repo)  # s1 dropped (main holds d), e picked
    made.append(Repository.open(repo).refs.read("refs/heads/side"))
    made.append(last_line(ok("squash", f"-S{alice}", "HEAD~1", cwd=repo)))
    ok("switch", "main", cwd=repo)
    made.append(last_line(ok("merge", "--no-ff", f"-S{alice}", "side", cwd=repo)))
    assert [v["status"] for v in verified(repo, c1, c2, c3, *made)] == [
        "good", "not-allowed", "good", "good", "good", "good", "good", "good"]


def test_config_key_value_keeps_or_refuses_another_setting_s_damaged_entry(repo, keys):
    """`config KEY VALUE` rewrote the signing row with the entries that were strings only:
    another setting's 5 or null (set by hand) was dropped silently, where every other path
    refuses it in one line (`config`, a commit). It is refused in those words now, nothing
    written, unless KEY is that setting (setting it again is the fix the line names); an
    entry of no signing setting is kept as it was."""
    configure(repo, keys)

    def damage(**entries):
        con = sqlite3.connect(repo / ".memstore" / "index.db")
        with con:
            row = json.loads(con.execute("select value from config where key = 'signing'")
                             .fetchone()[0])
            con.execute("update config set value = ? where key = 'signing'",
                        (json.dumps(row | entries),))
        con.close()

    def row():
        return Repository.open(repo).get_config("signing")

    for damaged in (5, None, "a\nb"):
        damage(**{"gpg.ssh.allowedSignersFile": damaged, "future.setting": 7})
        before = snapshot(repo)
        for args in (("config", "commit.gpgsign", "true"), ("config", "user.signingkey", ""),
                     ("config",)):
            error_line(run(*args, cwd=repo), 1, f"config row 'signing' holds {damaged!r} for "
                                                "gpg.ssh.allowedSignersFile; set it again")
        assert snapshot(repo) == before
        ok("config", "gpg.ssh.allowedSignersFile", keys["allowed"], cwd=repo)
        ok("config", "commit.gpgsign", "true", cwd=repo)
        assert row() == {"user.signingkey": str(keys["alice"][0]), "commit.gpgsign": "true",
                         "gpg.ssh.allowedSignersFile": str(keys["allowed"]),
                         "future.setting": 7}


@pytest.mark.parametrize("words, sign", [
    (["-S"], True), (["--gpg-sign"], True), (["-Skey"], "key"), (["--gpg-sign=key"], "key"),
    (["-S=key"], "=key"), (["-SS"], "S"), (["-pSkey"], "key"), (["-pS"], True),
    (["--no-gpg-sign"], False), (["-Skey", "--no-gpg-sign"], False),
    (["--no-gpg-sign", "-Skey"], "key"), ([], None)])
def test_sign_words_are_read_as_git_s_parse_options_reads_them(words, sign):
    """-S, --gpg-sign and --no-gpg-sign are one click parameter: as two sharing the name
    `sign`, click 8.4.0-8.4.2 (pyproject allows click>=8.1) read a bare -S as
    --no-gpg-sign's False, and `commit -S` wrote an unsigned commit, exit status 0. The
    words as git 2.39 reads them: the key attached only, after short flags too (git's
    `pull -pSKEY`, `commit -qSKEY`: -p, then the key), the last of them deciding."""
    from cli.main import cli

    for name in ("commit", "revert", "squash", "merge", "cherry-pick", "rebase", "pull"):
        assert [(p.opts, p.secondary_opts) for p in cli.commands[name].params
                if p.name == "sign"] == [(["-S", "--gpg-sign"], ["--no-gpg-sign"])], name
    ctx = cli.commands["pull"].make_context("pull", [*words, "origin"])
    assert ctx.params["sign"] == sign
    assert ctx.params["remote_name"] == "origin"  # a bare -S takes no word


@pytest.mark.parametrize("script", ["exec sleep 5\n", None])
def test_a_git_that_does_not_answer_or_cannot_run_is_not_read_as_unset(repo, keys, base,
                                                                         tmp_path, monkeypatch,
                                                                         script):
    """`git config` that ran past its limit (an include on a hung network folder, say) or
    could not be run (Exec format error) was read as unset, as a malformed config was
    before d84fe0b: commit.gpgsign off, the commit written unsigned. Refused in one line
    now, nothing written, as git's config that cannot be read."""
    from memstore.store import git_config

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_bytes(b"#!/bin/sh\n" + script.encode() if script else b"\x7fELF")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setattr(git_config, "TIMEOUT", 0.5)
    said = ("`git config` did not answer in 0.5 s" if script
            else f"{fake / 'git'}: Exec format error")
    before = snapshot(repo)
    for args in (("commit", facts_files(base)["a"]), ("commit", "-S", facts_files(base)["a"]),
                 ("config",)):
        error_line(run(*args, cwd=repo), 2, f"git's config cannot be read ({said})")
    assert snapshot(repo) == before
