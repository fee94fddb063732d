"""Remote URLs: which fsspec backend serves one, checked before anything is contacted.

A plain path is a folder remote (stored absolute, so that `-C` or another working
directory does not change what it names; one written relative into the remotes row by hand
is taken from the repository's root: `anchored`). Credentials never go into a URL: they would be
stored in the repository's index; they come from the environment or fsspec's
configuration, as the backend reads them."""
from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlsplit

from ..errors import ValidationError

FOLDER_PROTOCOLS = ("file", "local")
S3_PROTOCOLS = ("s3", "s3a")


def protocol(url: str) -> str:
    """The URL's scheme ('file' for a plain path)."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def normalise(url: str) -> str:
    """The URL as recorded: a plain or file:// path made absolute, any other URL as given,
    without a trailing slash."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("a remote URL is required")
    url = url.strip()
    if protocol(url) in FOLDER_PROTOCOLS:
        path = url.split("://", 1)[1] if "://" in url else url
        return os.path.abspath(os.path.expanduser(path))
    head, rest = url.split("://", 1)
    return f"{head}://{rest.rstrip('/')}"


def anchored(url: str, root: str | os.PathLike | None) -> str:
    """A URL of the remotes row as it is used: a relative folder path (written by hand:
    `remote add` records absolute ones) taken from the repository's root folder `root`,
    not from the working directory, which would make it name another folder from each;
    any other URL (and one with no path at all, refused when used) as it is."""
    if root is None or protocol(url) not in FOLDER_PROTOCOLS:
        return url
    path = os.path.expanduser(url.split("://", 1)[1] if "://" in url else url)
    if not path.strip() or os.path.isabs(path):
        return url
    return os.path.abspath(os.path.join(root, path))


def check(url: str) -> str:
    """`url` normalised, after checking that fsspec knows its scheme, that the backend is
    installed (else: the package to install) and that it carries no password."""
    url = normalise(url)
    scheme = protocol(url)
    if scheme in FOLDER_PROTOCOLS:
        return url
    if not url.split("://", 1)[1].strip("/"):  # e.g. http:// or s3://: no bucket, host, path
        raise ValidationError(f"remote URL {url!r} names no place after {scheme}://")
    try:
        urlsplit(url)
    except ValueError as e:  # 'http://[::1': a traceback from remote add, fetch, clone
        raise ValidationError(f"remote URL {url[:100]!r} is not a valid URL ({e})") from None
    if _secret(url):
        raise ValidationError(
            f"remote URL {_hide(url)} holds a password or a secret; give credentials through "
            "the environment or fsspec's configuration, never in the URL")
    from fsspec.registry import get_filesystem_class, known_implementations, registry

    if scheme not in known_implementations and scheme not in registry:
        raise ValidationError(f"unknown URL scheme {scheme!r} in {url!r}: no fsspec backend "
                              "serves it (e.g. file://, s3://, gcs://, abfs://, memory://)")
    try:
        get_filesystem_class(scheme)
    except ImportError:
        package = known_implementations[scheme]["class"].split(".", 1)[0]
        raise ValidationError(f"remote URL {url}: the fsspec backend for {scheme}:// is not "
                              f"installed (pip install {package})") from None
    return url


_SECRET_PARAM = re.compile(r"(secret|passw|token|key|signature|credential)", re.IGNORECASE)


def _secret(url: str) -> bool:
    """A password before the host (read up to the last '@': a secret may hold '/', '?' or
    '#', where urlsplit would end the host early) or a query parameter named like one."""
    rest = url.split("://", 1)[-1]
    if "@" in rest and ":" in rest.rsplit("@", 1)[0]:
        return True
    query = urlsplit(url).query
    return any(_SECRET_PARAM.search(k) for k, _ in parse_qsl(query, keep_blank_values=True))


def _hide(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        user, host = rest.rsplit("@", 1)
        rest = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else rest
    url = f"{scheme}{sep}{rest}"
    return url.split("?", 1)[0] + ("?***" if "?" in url else "")
