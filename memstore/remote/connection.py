"""Opening a remote: its transport and its format marker, checked before anything moves.

Every operation starts here, so every one refuses the same things the same way, before it
writes anything: an unknown scheme or a missing backend (urls.check), a store that cannot
be reached or refuses us (RemoteError), a place that holds something else, a remote of a
newer layout, a remote of another base model."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import MemstoreError
from .folder import FolderTransport
from .layout import MARKER, VERSION, Marker
from .transport import Transport, open_transport


class NotARemoteError(MemstoreError):
    """The URL holds no memstore remote."""


@dataclass
class Remote:
    url: str
    transport: Transport
    marker: Marker | None  # None: nothing there yet (a push creates it)
    name: str | None = None

    @property
    def label(self) -> str:
        return f"remote {self.name!r} ({self.url})" if self.name else self.url

    def create(self, base_hash: str, base_spec: str, base_info: dict) -> bool:
        """Writes the marker of a new remote (the first push); if another push made it
        meanwhile, checks that one instead. Returns whether this call created it."""
        marker = Marker(VERSION, base_hash, base_spec, base_info)
        created = self.transport.create(MARKER, marker.to_bytes())
        if not created:
            marker = read_marker(self.transport, self.label)
            check_base(self, marker, base_hash)
        self.marker = marker
        return bool(created)


def read_marker(transport: Transport, label: str) -> Marker | None:
    data = transport.read(MARKER)
    if data is None:
        if _is_repository(transport):  # git clones a repository's folder; memstore cannot
            raise NotARemoteError(
                f"{label} is a memstore repository, not a remote (the files `memstore push` "
                "writes); in that repository `memstore remote add origin URL` and `memstore "
                "push`, then use URL")
        if transport.exists():
            raise NotARemoteError(f"{label} is not a memstore remote: it is not empty and has "
                                  f"no {MARKER}")
        return None
    return Marker.parse(data, label)


def _is_repository(transport: Transport) -> bool:
    """Whether the remote's place holds a repository (its folder, or its .memstore/)."""
    return transport.is_folder(".memstore") or (
        transport.read_small("index.db") is not None and transport.is_folder("objects"))


def check_base(remote: Remote, marker: Marker, base_hash: str) -> None:
    if marker.base_hash != base_hash:
        raise MemstoreError(
            f"{remote.label} holds a repository of another base model ({marker.base_spec}, "
            f"hash {marker.base_hash[:12]}; this one's is {base_hash[:12]}); nothing was "
            "changed")


def connect(url: str, name: str | None = None, *, base_hash: str | None = None,
            must_exist: bool = True) -> Remote:
    """The remote at `url`, its marker read and checked (against `base_hash` when given).
    With `must_exist`, an empty place is refused too (there is nothing to fetch)."""
    transport = open_transport(url)
    transport.remote_name = name
    remote = Remote(transport.url, transport, None, name)
    remote.marker = read_marker(transport, remote.label)
    if remote.marker is None and must_exist:
        if isinstance(transport, FolderTransport) and not transport.root.exists():
            raise NotARemoteError(f"{remote.label}: no such folder (a first `memstore push` "
                                  "to it creates the remote)")
        raise NotARemoteError(f"{remote.label} holds no memstore remote (nothing was pushed "
                              "to it yet)")
    if remote.marker is not None and base_hash is not None:
        check_base(remote, remote.marker, base_hash)
    return remote
