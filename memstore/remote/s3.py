"""A remote on S3 (or a store that speaks its API), through s3fs.

A PUT is atomic on S3 (an object appears whole or not at all), so objects are written in
place; a large one streams as a multipart upload, by which the object appears only once it
is completed (one whose chunks fail their hash is aborted instead: nothing appears). A
branch moves by a conditional write, which S3 evaluates atomically: the ref is read with
its ETag (one GET gives both), and the new one is written with `If-Match: ETAG`, or
`If-None-Match: *` for a branch the remote does not have yet; 412 Precondition Failed or
409 ConditionalRequestConflict means someone else moved it first. A ref is deleted by a
conditional DeleteObject, `If-Match: ETAG`; a store that answers it with 501, or a
botocore that cannot send it, gets the single-writer delete (read, compare, remove).

s3fs drops any keyword its botocore does not know for an operation, which would silently
turn a compare-and-swap into a plain overwrite; so botocore's PutObject model is checked
for both condition headers before the first write, and a botocore without them is
refused. A store that answers the conditions with 501 Not Implemented offers no
compare-and-swap: it is treated as any other store (single-writer, fsspec_store), and the
push says so.

A push killed outright while it streams a large object (SIGKILL, a power cut) leaves its
multipart upload incomplete: invisible to listings, yet stored (and billed) until it is
aborted. S3 never writes a temporary file, so the first write of a transport aborts the
incomplete uploads under the remote's objects/ that were initiated more than a day ago
(leftovers.STALE_AFTER; one ListMultipartUploads request when there are none), never a
younger one, which a push still running could be writing. Best effort, as for the
temporaries of other stores: a store that refuses the listing or the abort (a policy
without s3:ListBucketMultipartUploads or s3:AbortMultipartUpload) lets the push go on.
A bucket lifecycle rule (AbortIncompleteMultipartUpload) does the same on S3's side."""
from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from .. import leftovers
from .fsspec_store import FsspecTransport
from .layout import OBJECTS, ref_bytes
from .transport import MAX_REF_BYTES, RefValue, RemoteError, StaleRefError

WRITE_BLOCK = 8 * 2**20  # a multipart upload's part (S3's least is 5 MiB): what it buffers
CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 bytes


def client_error_code(e: BaseException) -> str | None:
    """The S3 error code behind what s3fs raised (it keeps botocore's error as a cause)."""
    seen: BaseException | None = e
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            err = response.get("Error", {})
            return str(err.get("Code") or response.get("ResponseMetadata", {})
                       .get("HTTPStatusCode"))
        seen = seen.__cause__ or seen.__context__
    return None


@functools.cache
def check_conditional_writes() -> None:
    from botocore import __version__ as version
    from botocore.session import get_session

    members = get_session().get_service_model("s3").operation_model("PutObject") \
        .input_shape.members
    if "IfMatch" not in members or "IfNoneMatch" not in members:
        raise RemoteError(f"botocore {version} cannot send conditional writes, which a push "
                          "to S3 needs to lose no update; upgrade s3fs and botocore")


@functools.cache
def sends_conditional_deletes() -> bool:
    """Whether botocore's DeleteObject model has If-Match (s3fs would drop it otherwise,
    turning the delete into a plain one)."""
    from botocore.session import get_session

    return "IfMatch" in get_session().get_service_model("s3") \
        .operation_model("DeleteObject").input_shape.members


class S3Transport(FsspecTransport):
    guarantee = "compare-and-swap (conditional PutObject: If-Match on the ETag, If-None-Match)"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.bucket, _, self.prefix = self.root.partition("/")
        self.conditional = True  # until the store answers 501 to a condition
        self.conditional_delete = True  # until it answers 501 to a conditional delete
        self._uploads_checked = False  # stale multipart uploads aborted (`_abort_stale_uploads`)

    def _not_found(self, e: FileNotFoundError) -> None:
        if client_error_code(e) == "NoSuchBucket":  # no such key, or no such bucket
            raise RemoteError(f"remote {self.url}: bucket {self.bucket!r} does not "
                              "exist") from None

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def check_key(self, path: str) -> None:
        size = len(self.key(path).encode("utf-8", "surrogateescape"))
        if size > MAX_KEY_BYTES:  # S3 refuses the PUT; other writes of a push went before
            raise RemoteError(f"remote {self.url}: cannot store {path[:60]}…: its key would "
                              f"be {size} bytes, and S3 takes at most {MAX_KEY_BYTES}; "
                              "rename it")

    def _abort_stale_uploads(self) -> list[str]:
        """Aborts, once per transport, the multipart uploads under the remote's objects/
        initiated more than a day ago (a push killed while streaming); returns their keys.
        Best effort: what the store refuses is left."""
        if self._uploads_checked:
            return []
        self._uploads_checked = True
        try:
            uploads = self._uploads(self.key(OBJECTS))
        except Exception:  # noqa: BLE001 - not ours to list: the write goes on
            return []
        return [up["Key"] for up in uploads
                if leftovers.stale(up["Initiated"].timestamp()) and self._abort(up)]

    def _uploads(self, prefix: str) -> list[dict[str, Any]]:
        """The incomplete multipart uploads whose keys start with `prefix`."""
        out: list[dict[str, Any]] = []
        markers: dict[str, str] = {}
        while True:
            page = self.fs.call_s3("list_multipart_uploads", Bucket=self.bucket,
                                   Prefix=prefix, **markers)
            out += page.get("Uploads", [])
            if not page.get("IsTruncated"):
                return out
            markers = {"KeyMarker": page["NextKeyMarker"],
                       "UploadIdMarker": page["NextUploadIdMarker"]}

    def _abort(self, upload: dict[str, Any]) -> bool:
        try:
            self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=upload["Key"],
                            UploadId=upload["UploadId"])
        except Exception:  # noqa: BLE001 - gone meanwhile, or we may write but not abort
            return False
        return True

    def put(self, path: str, data: bytes) -> None:
        self._abort_stale_uploads()
        self._call(f"write {path}", self.fs.pipe_file, self.full(path), data)

    def put_stream(self, path: str, chunks: Iterable[bytes]) -> None:
        self._abort_stale_uploads()
        self._call(f"write {path}", self._put_stream, self.full(path), chunks)

    def _put_stream(self, full: str, chunks: Iterable[bytes]) -> None:
        """A multipart upload of WRITE_BLOCK parts (one PutObject when smaller), completed
        only when every chunk came; aborted when they raise (a hash that does not match)."""
        f = self.fs.open(full, "wb", block_size=WRITE_BLOCK)
        try:
            for chunk in chunks:
                f.write(chunk)
        except BaseException:
            try:
                f.discard()  # aborts the multipart upload; close() would complete it
            finally:
                f.closed = True  # discarded, and never to be closed (not even when freed)
            raise
        f.close()

    def put_many(self, files: dict[str, bytes]) -> None:
        if files:
            self._abort_stale_uploads()
            self._call("write objects", self.fs.pipe, {self.full(p): d for p, d in files.items()})

    def create(self, path: str, data: bytes) -> bool:
        done = self._conditional_put(path, data, {"IfNoneMatch": "*"})
        if done is None:  # the store cannot write conditionally: neither can pipe_file
            return self._create_checked(path, data)
        return done

    def read_ref(self, path: str, damaged: bool = False) -> RefValue:
        got = self._call(f"read {path}", self._get_with_etag, path)
        if got is None:
            return RefValue(None, None)
        data, size, etag = got
        return self.ref_value(path, data, size, etag, damaged)

    def _get_with_etag(self, path: str) -> tuple[bytes, int, str] | None:
        """The first MAX_REF_BYTES + 1 bytes of `path` (a ranged GET: a large file there
        is never read whole for a ref), its size and its ETag."""
        from fsspec.asyn import sync

        async def get(**ranged) -> tuple[bytes, int, str]:
            resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key(path),
                                          **ranged)
            try:
                data = await resp["Body"].read()
                whole = resp.get("ContentRange", "").rpartition("/")[2]
                return data, int(whole) if whole.isdigit() else len(data), resp["ETag"]
            finally:
                resp["Body"].close()

        try:
            try:
                return sync(self.fs.loop, get, Range=f"bytes=0-{MAX_REF_BYTES}")
            except Exception as e:  # an empty file has no byte 0: read whole (nothing)
                if client_error_code(e) not in ("InvalidRange", "416"):
                    raise
                return sync(self.fs.loop, get)
        except FileNotFoundError:
            return None

    def swap_ref(self, path: str, commit: str, expected: RefValue) -> None:
        self.check_room(path)
        condition = {"IfMatch": expected.token} if expected.exists \
            else {"IfNoneMatch": "*"}
        done = self._conditional_put(path, ref_bytes(commit), condition)
        if done is None:
            super().swap_ref(path, commit, expected)
        elif not done:
            now = self.held_now(path)
            if now != commit:  # else it was our own write, landed before a retry of it
                raise StaleRefError(path, now)

    def delete_ref(self, path: str, expected: RefValue) -> None:
        done = self._conditional_delete(path, expected.token)
        if done is None:  # read, compare, remove: single-writer
            super().delete_ref(path, expected)
        elif not done:
            raise StaleRefError(path, self.held_now(path))

    def _conditional_delete(self, path: str, etag: str) -> bool | None:
        """DeleteObject with `If-Match: etag`: True when deleted, False when the ref holds
        another ETag or is gone, None when the store or botocore cannot delete
        conditionally (it is then single-writer for the delete, and says so)."""
        if not self.conditional_delete or not sends_conditional_deletes():
            self.guarantee = FsspecTransport.guarantee
            return None
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key(path),
                            IfMatch=etag)
        except Exception as e:  # classified below by the S3 error code
            code = client_error_code(e)
            if code in CONFLICT_CODES or code in ("NoSuchKey", "404") \
                    or isinstance(e, FileNotFoundError):
                return False
            if code not in ("NotImplemented", "501"):
                raise self.failed(f"delete {path}", e) from e
            self.conditional_delete = False
            self.guarantee = FsspecTransport.guarantee
            return None
        finally:
            self.fs.invalidate_cache(self.full(path))
        return True

    def _conditional_put(self, path: str, data: bytes, condition: dict[str, Any]) -> bool | None:
        """PUT with `condition`: True when written, False when the condition did not hold,
        None when the store does not implement conditions (it is then single-writer)."""
        if not self.conditional:
            return None
        check_conditional_writes()
        try:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key(path), Body=data,
                            **condition)
        except Exception as e:  # classified below by the S3 error code
            code = client_error_code(e)
            if code in CONFLICT_CODES or code == "NoSuchKey" or isinstance(e, FileExistsError):
                return False
            if code not in ("NotImplemented", "501"):
                raise self.failed(f"write {path}", e) from e
            self.conditional = False
            self.guarantee = FsspecTransport.guarantee
            return None
        finally:
            self.fs.invalidate_cache(self.full(path))
        return True
