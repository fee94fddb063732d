"""Remotes for the tests (a pytest plugin: `pytest_plugins = ["remote_fixtures"]`): a folder,
and S3 buckets served on 127.0.0.1 by moto's standalone server (ThreadedMotoServer) in this
process, reached through s3fs as any S3 endpoint.

moto checks PutObject's If-Match / If-None-Match and then stores the object without a lock,
so two conditional PUTs on the same key in the same instant could both pass its check; S3
evaluates the condition atomically. The server here serialises PutObject, so that the
tests check what memstore relies on S3 for, not a race of the emulator."""
from __future__ import annotations

import itertools
import logging
import os
import threading
import urllib.request

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1",  # fail fast when unreachable
}
_BUCKETS = itertools.count()
_MEMORY = itertools.count()  # in-memory fsspec stores, one per test


class S3Server:
    """moto's ThreadedMotoServer on a free port of 127.0.0.1, PutObject made atomic."""

    def __init__(self) -> None:
        from moto.s3.responses import S3Response
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        lock = threading.Lock()
        real = S3Response.put_object

        def put_object(self, *args, **kwargs):
            with lock:
                return real(self, *args, **kwargs)

        S3Response.put_object = put_object
        self._unpatch = lambda: setattr(S3Response, "put_object", real)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def new_bucket(self) -> str:
        import boto3

        name = f"team-{next(_BUCKETS)}"
        boto3.client("s3", endpoint_url=self.endpoint, **_client_kwargs()).create_bucket(
            Bucket=name)
        return name

    def require_auth(self, on: bool) -> None:
        """Makes the server check credentials (ours are not known to it: 403) or not, through
        moto's server API."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth",
                                     data=b"0" if on else b"inf", method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=60).read()

    def stop(self) -> None:
        self.server.stop()
        self._unpatch()


def _client_kwargs() -> dict:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_ENV["AWS_DEFAULT_REGION"]}


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(params=["file", "s3"])
def remote_url(request, tmp_path) -> str:
    from remote_support import new_remote

    return new_remote(request.param, tmp_path, request)[0]


def _pair(tmp_path, url: str):
    from remote_support import make_repo

    a = make_repo(tmp_path / "a", url)
    b = make_repo(tmp_path / "b", url)
    yield a, b, url
    a.close()
    b.close()


@pytest.fixture
def pair(tmp_path, remote_url):
    """Two repositories sharing the remote `remote_url`, and the URL."""
    yield from _pair(tmp_path, remote_url)


@pytest.fixture(params=["file", "s3", "memory"])
def any_pair(request, tmp_path):
    """Two repositories sharing a remote of each kind (a folder, S3, fsspec's memory
    store), and its URL."""
    if request.param == "memory":
        url = f"memory://pair-{next(_MEMORY)}/repo"
    else:
        from remote_support import new_remote

        url = new_remote(request.param, tmp_path, request)[0]
    yield from _pair(tmp_path, url)


@pytest.fixture(params=["file", "s3", "memory"])
def transport(request, tmp_path):
    """An empty store of each kind: a folder, an S3 bucket, fsspec's memory filesystem."""
    from memstore.remote.transport import open_transport

    if request.param == "file":
        url = str(tmp_path / "remote")
    elif request.param == "s3":
        url = f"s3://{request.getfixturevalue('s3_server').new_bucket()}/repo"
    else:
        url = f"memory://store-{next(_MEMORY)}/repo"
    return open_transport(url)
