"""Looking at and damaging a remote behind memstore's back, for the tests."""
from __future__ import annotations

from pathlib import Path


def new_remote(kind: str, tmp_path: Path, request) -> tuple[str, dict[str, str]]:
    """A URL where nothing is yet (a folder, or a prefix in a new bucket), and the
    environment a process needs to reach it."""
    if kind == "file":
        return str(tmp_path / "remote"), {}
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.new_bucket()}/models/shared", server.env


def remote_files(url: str) -> dict[str, bytes]:
    """Everything stored at the remote (path → bytes), to prove a refusal wrote nothing."""
    from memstore.remote.transport import open_transport

    t = open_transport(url)
    return t.read_many(sorted(t.list("")))


def tamper(url: str, path: str, data: bytes | None) -> None:
    """Replaces (None: deletes) a file of the remote behind memstore's back."""
    from memstore.remote.transport import open_transport

    t = open_transport(url)
    if isinstance(getattr(t, "root", None), Path):
        target = t.root / path
        target.unlink() if data is None else target.write_bytes(data)
    elif data is None:
        t.fs.rm(t.full(path))
    else:
        t.fs.pipe_file(t.full(path), data)


def remove(url: str, path: str) -> None:
    tamper(url, path, None)


def make_repo(path, url: str, base_hash: str | None = None):
    """A repository on the fake base (layers 1 and 2) with `url` as its remote origin."""
    from test_store_support import BASE_HASH

    from memstore.editing.settings import EditSettings
    from memstore.remote import remotes
    from memstore.store.repository import Repository

    repo = Repository.init(path, "fake", base_hash or BASE_HASH,
                           settings=EditSettings(layers=(1, 2), mom2_weight=1e4))
    remotes.add(repo, "origin", url)
    return repo
