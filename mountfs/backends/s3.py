"""A store in an S3 bucket: AWS (``s3://bucket/prefix``) or an S3-compatible
server such as MinIO or SeaweedFS (``s3://host:port/bucket/prefix``, parsed the
way ClearML does: a first component with a ``:`` is the endpoint).

Settings arrive typed from ``Config.s3_options`` (config.py ranks the
sources): credentials from the config's ``s3.hosts`` entry for the endpoint,
then its ``[s3]`` section, then the standard AWS chain (environment, profiles,
instance roles).  Only error codes and server messages reach error
text: never keys, and the secret is scrubbed from anything we format.
"""

from __future__ import annotations

import base64
import contextlib
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Mapping, Sequence, cast

import boto3
import boto3.exceptions
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

from ..config import AddressingStyle, Config
from ..errors import AlreadyExists, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError, UsageError
from .base import Backend, ObjectInfo, PartsReader, Prefixed, in_key_order, split_parts
from .retry import BUDGET

if TYPE_CHECKING:
    from .s3_ranges import ObstoreRanges


_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_DENIED = {"AccessDenied", "403", "401", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "ExpiredToken", "InvalidToken", "AccountProblem"}
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
              "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable", "503", "500"}
# network-level failures: the request may not have reached the server, or its
# answer was lost; both are worth another try
_TRANSIENT_BOTO = (botocore.exceptions.ConnectionError,  # refused, connect timeout, DNS
                   botocore.exceptions.HTTPClientError,  # reset, closed, read timeout
                   botocore.exceptions.ResponseStreamingError, botocore.exceptions.IncompleteReadError)
_BOTO_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
_MAX_PARTS = 10_000
#: a pack up to this size goes up in one PUT.  Packs are sent several at a time
#: anyway, and against SeaweedFS one PUT per 32 MiB pack was 5-10% faster than
#: 8 MiB parts, with a third less client CPU (fewer requests, no part threads)
_SINGLE_PUT_MAX = 64 << 20
#: a bigger pack (``chunk_size`` raised) is a multipart upload of parts this big
_PACK_PART = 8 << 20
_CREDENTIALS_BOTO = (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError,
                     botocore.exceptions.ProfileNotFound)


@dataclass
class S3Settings:
    """Everything needed to open one S3 store; built by ``S3Backend.from_url``."""

    bucket: str
    prefix: str = ""
    #: ``host:port`` for an S3-compatible server; empty for AWS
    host: str = ""
    endpoint_url: str | None = None
    #: ``"path"`` for S3-compatible servers; None lets boto choose (AWS)
    addressing_style: AddressingStyle | None = None
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    region: str | None = None
    verify: bool | str = True
    max_pool_connections: int = 64
    connect_timeout: float = BUDGET.connect_timeout
    read_timeout: float = BUDGET.read_timeout
    multipart_threshold: int = 32 << 20
    multipart_chunksize: int = 16 << 20
    multipart_concurrency: int = 4
    #: ranged reads through ``"boto3"`` or ``"obstore"`` (the GIL released while bytes move).  boto3 stays the
    #: default: through a mount obstore measured 0.98-1.06x boto3's MB/s at +14 MiB peak RSS (bench/data_plane.py),
    #: and it adds a CA bundle to its roots where boto3 replaces them (docs/SECURITY.md)
    data_plane: str = "boto3"


def _split_url(url: str) -> tuple[str, str, str]:
    """``s3://[host:port/]bucket[/prefix]`` -> (host, bucket, prefix)."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an s3 URL: {url!r}")
    parts = [p for p in url[len("s3://"):].split("/") if p]
    host = parts.pop(0) if parts and ":" in parts[0] else ""
    if not parts:
        raise UsageError(f"S3 store URL {url!r} names no bucket: "
                         "use s3://bucket/prefix or s3://host:port/bucket/prefix")
    return host, parts[0], "/".join(parts[1:])


def _settings_from_config(url: str, config: Config | None) -> S3Settings:
    """The URL's bucket and prefix with the config's typed settings for its endpoint (``Config.s3_options``)."""
    host, bucket, prefix = _split_url(url)
    opts = (config or Config()).s3_options(host)
    s = S3Settings(bucket=bucket, prefix=prefix, host=host, endpoint_url=opts.endpoint_url,
                   addressing_style=opts.addressing_style, key=opts.key, secret=opts.secret,
                   session_token=opts.session_token, profile=opts.profile, region=opts.region, verify=opts.verify)
    # tuning knobs the config leaves unset keep the defaults above
    for name in ("max_pool_connections", "connect_timeout", "read_timeout", "multipart_threshold",
                 "multipart_chunksize", "multipart_concurrency", "data_plane"):
        value = getattr(opts, name)
        if value is not None:
            setattr(s, name, value)
    return s


def _crc32(parts: Sequence[bytes | memoryview]) -> str:
    """The ``x-amz-checksum-crc32`` value of the concatenated ``parts``."""
    crc = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def _ignored_range(resp: Mapping[str, Any]) -> bool:
    """Did the server answer a ranged GET with the whole object (200, no Content-Range)?"""
    # typed as always there, but servers that ignore Range leave it out
    return "ContentRange" not in resp and resp.get("ResponseMetadata", {}).get("HTTPStatusCode") == 200


class _KeepOpen:
    """The caller's file, minus ``close``: boto3 closes what it uploads from,
    but the caller owns the file (and a retry must rewind and read it again)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return self._fh.seekable()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class S3Backend(Prefixed, Backend):
    """Objects are S3 objects under ``bucket/prefix/``; one thread-safe boto3 client."""

    def __init__(self, settings: S3Settings) -> None:
        self.bucket = settings.bucket
        self._root_at(f"s3://{settings.host}/{self.bucket}" if settings.host else f"s3://{self.bucket}",
                      settings.prefix)
        self._secrets = [v for v in (settings.secret, settings.session_token) if v]
        self._sorted_by_server = settings.endpoint_url is None
        style = settings.addressing_style
        boto_config = BotoConfig(
            # enough sockets for ~32 reader threads plus multipart uploads, so
            # urllib3 never discards connections ("pool is full")
            max_pool_connections=settings.max_pool_connections,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            # one attempt: RetryingBackend is the only retry layer (a stale pooled
            # connection too), and stacked retries would multiply its time budget
            retries={"total_max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": style} if style else None,
            # S3-compatible servers vary in support for the newer default
            # checksums; send them only when the operation requires them
            request_checksum_calculation="when_required" if settings.endpoint_url else "when_supported",
            response_checksum_validation="when_required" if settings.endpoint_url else "when_supported",
        )
        try:
            session = boto3.session.Session(
                aws_access_key_id=settings.key,
                aws_secret_access_key=settings.secret,
                aws_session_token=settings.session_token,
                profile_name=settings.profile if not settings.key else None,
                region_name=settings.region,
            )
            self._client = session.client("s3", endpoint_url=settings.endpoint_url,
                                          verify=settings.verify, config=boto_config)
            # Bodies we send with their own CRC32 (which the server checks) are
            # not also hashed with SHA-256 for the signature: over http botocore
            # otherwise always does, at 3x the CPU of the CRC.  This is what AWS
            # SDKs do by default over https.
            self._crc_client = session.client(
                "s3", endpoint_url=settings.endpoint_url, verify=settings.verify,
                # (merge replaces the whole s3 section, so the addressing style is repeated)
                config=boto_config.merge(BotoConfig(
                    s3={"addressing_style": style, "payload_signing_enabled": False} if style
                    else {"payload_signing_enabled": False})))
            # conditional creates wait in the server's queue for the key's lock (BUDGET)
            self._conditional_client = session.client(
                "s3", endpoint_url=settings.endpoint_url, verify=settings.verify,
                config=boto_config.merge(BotoConfig(
                    read_timeout=max(settings.read_timeout, BUDGET.conditional_write_timeout),
                    s3={"addressing_style": style, "payload_signing_enabled": False} if style
                    else {"payload_signing_enabled": False})))
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise self._map(exc, "open", "") from exc
        self._ranges = self._open_ranges(settings, session) if settings.data_plane == "obstore" else None
        self._multipart = (settings.multipart_threshold, settings.multipart_chunksize, settings.multipart_concurrency)

    def _open_ranges(self, settings: S3Settings, session: "boto3.session.Session") -> "ObstoreRanges | None":
        """obstore's reader for ``get_ranges``, reaching the endpoint boto3 resolved with its credentials.

        None (boto3 reads) where obstore is not installed.  A CA bundle
        (``verify`` / ``AWS_CA_BUNDLE``) is added to obstore's trusted roots; it
        does not matter for an ``http://`` endpoint.
        """
        ca: bytes | None = None
        if isinstance(settings.verify, str) and not (settings.endpoint_url or "").startswith("http://"):
            try:
                with open(settings.verify, "rb") as fh:
                    ca = fh.read()
            except OSError as exc:
                raise StoreError(f"S3 on {self.url}: cannot read the CA bundle {settings.verify!r} "
                                 f"({exc.strerror}); fix the host's 'verify' setting or AWS_CA_BUNDLE") from None
        try:
            from .s3_ranges import BotoCredentials, ObstoreRanges
        except ImportError:  # pragma: no cover - depends on install
            return None
        try:
            credentials = session.get_credentials()
        except _CREDENTIALS_BOTO as exc:
            raise self._map(exc, "open", "") from exc
        client = self._client
        # what boto3 resolved: the endpoint (AWS_ENDPOINT_URL, [s3.hosts], AWS's own), region, addressing
        endpoint = settings.endpoint_url
        region = client.meta.region_name or settings.region or "us-east-1"
        path_style = settings.addressing_style == "path"
        return ObstoreRanges(
            self.bucket, endpoint_url=endpoint, region=region, path_style=path_style,
            credentials=BotoCredentials(credentials) if credentials is not None else None,
            verify=settings.verify is not False, ca=ca, connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout, pool=settings.max_pool_connections)

    @classmethod
    def from_url(cls, url: str, config: Config | None = None) -> "S3Backend":
        """Open ``s3://bucket/prefix`` or ``s3://host:port/bucket/prefix`` with ``config``'s settings."""
        return cls(_settings_from_config(url, config))

    # --- errors --------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _map(self, exc: BaseException, op: str, key: str) -> StoreError:
        """Turn a botocore error into our error family, with a message that names the fix."""
        what = f"S3 {op} of {key!r} in {self.url}" if key else f"S3 {op} on {self.url}"
        if isinstance(exc, botocore.exceptions.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            detail = self._scrub(f"{code or status}: {err.get('Message') or 'no message'}")
            if code == "NoSuchBucket":
                return StoreError(f"{what} failed: bucket {self.bucket!r} does not exist; "
                                  "create it or fix the store URL")
            if code in _NOT_FOUND or (status == 404 and not code):
                return ObjectNotFound(f"object {key!r} is not in the store {self.url}")
            # 409 only with its conditional-write code: other conflicts are not "exists"
            if code in _EXISTS or status == 412:
                return AlreadyExists(f"object {key!r} already exists in the store {self.url}")
            if code in _DENIED or status in (401, 403):
                return PermissionDenied(f"{what} was refused ({detail}); "
                                        "check the access key and secret for this store")
            if code == "NotImplemented" or status == 501:
                return StoreError(f"{what} is not supported by this S3 server ({detail})")
            if code in _TRANSIENT or status == 429 or status >= 500:
                return TransientStoreError(f"{what} failed ({detail})")
            return StoreError(f"{what} failed ({detail})")
        if isinstance(exc, botocore.exceptions.SSLError):
            # a certificate problem does not heal by retrying
            return StoreError(f"{what} failed: TLS error ({self._scrub(str(exc))}); check the host's "
                              "'verify' setting or AWS_CA_BUNDLE")
        if isinstance(exc, _TRANSIENT_BOTO):
            return TransientStoreError(f"{what} failed: {self._scrub(str(exc))}")
        if isinstance(exc, _CREDENTIALS_BOTO):
            return PermissionDenied(
                f"{what}: no usable S3 credentials ({self._scrub(str(exc))}); set key/secret for this host in the "
                "config's [s3.hosts] or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
        return StoreError(f"{what} failed: {self._scrub(str(exc))}")

    # --- operations -----------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            # reading the body is where a dropped connection shows up
            data: bytes = resp["Body"].read()
            return data
        except _BOTO_ERRORS as exc:
            raise self._map(exc, "get", key) from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise StoreError(f"invalid range {offset}+{length} for {key!r}")
        if length == 0:
            self.stat(key)  # still report a missing object
            return b""
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                           Range=f"bytes={offset}-{offset + length - 1}")
            data: bytes = resp["Body"].read()
        except botocore.exceptions.ClientError as exc:
            # 416: the range starts at or past the end (incl. empty objects)
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise self._map(exc, "ranged get", key) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._map(exc, "ranged get", key) from exc
        if _ignored_range(resp):
            # a server that ignored Range sent the whole object
            data = data[offset:offset + length]
        return data

    def get_ranges(self, key: str, offset: int, spans: list[tuple[int, int]]) -> list[bytes | memoryview]:
        # the response is read piece by piece: no buffer of the whole range, and
        # reads of about a chunk reuse memory instead of faulting in fresh MiB
        if not spans:
            return []
        if self._ranges is not None:
            return self._obstore_ranges(key, offset, spans)
        length = spans[-1][0] + spans[-1][1]
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                           Range=f"bytes={offset}-{offset + length - 1}")
            body = resp["Body"]
            try:
                pos = 0
                if _ignored_range(resp):
                    pos = -offset  # a server that ignored Range sends the whole object
                out: list[bytes | memoryview] = []
                for start, n in spans:
                    while pos < start:  # a gap between wanted pieces
                        pos += len(body.read(min(start - pos, 1 << 20))) or (start - pos)
                    out.append(body.read(n))
                    pos = start + n
                return out
            finally:
                body.close()
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return [b"" for _ in spans]
            raise self._map(exc, "ranged get", key) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._map(exc, "ranged get", key) from exc

    def _obstore_ranges(self, key: str, offset: int, spans: list[tuple[int, int]]) -> list[bytes | memoryview]:
        from .s3_ranges import map_error

        assert self._ranges is not None
        if offset < 0:
            raise StoreError(f"invalid range {offset} for {key!r}")
        name = self._key(key)
        try:
            return self._ranges.read(name, offset, spans)
        except Exception as exc:  # obstore raises its own family and builtins (timeouts as OSError)
            raise map_error(exc, f"S3 ranged get of {key!r} in {self.url}", key, self.url, self.bucket,
                            self._scrub) from None

    def put(self, key: str, data: bytes | memoryview) -> None:
        self.put_parts(key, [data])

    def put_parts(self, key: str, parts: list[bytes | memoryview]) -> None:
        # streamed from the parts: a pack is never copied into one more buffer
        size = sum(len(p) for p in parts)
        try:
            if size <= _SINGLE_PUT_MAX:
                body = PartsReader(parts)
                self._crc_client.put_object(Bucket=self.bucket, Key=self._key(key), Body=cast(BinaryIO, body),
                                            ContentLength=body.size, ChecksumCRC32=_crc32(parts))
            else:
                self._put_multipart(key, split_parts(parts, _PACK_PART))
        except _BOTO_ERRORS as exc:
            raise self._map(exc, "put", key) from exc

    def _put_multipart(self, key: str, pieces: list[list[memoryview]]) -> None:
        """One object from several parts sent at once: a server that spends its time
        per request (SeaweedFS checksums and writes each body) works on several."""
        name = self._key(key)
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=name,
                                                         ChecksumAlgorithm="CRC32")["UploadId"]
        try:
            def send(n: int) -> tuple[int, str, str]:
                body = PartsReader(pieces[n])
                crc = _crc32(pieces[n])
                r = self._crc_client.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                 PartNumber=n + 1, Body=cast(BinaryIO, body), ContentLength=body.size,
                                                 ChecksumCRC32=crc)
                return n + 1, r["ETag"], crc

            with ThreadPoolExecutor(min(len(pieces), self._multipart[2])) as pool:
                done = list(pool.map(send, range(len(pieces))))
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag, "ChecksumCRC32": crc}
                                           for n, etag, crc in done]})
        except BaseException:
            with contextlib.suppress(*_BOTO_ERRORS):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        # boto3 switches to multipart above the threshold and completes it as
        # one atomic object; a failed upload is aborted by the transfer manager
        threshold, chunksize, concurrency = self._multipart
        transfer = TransferConfig(
            multipart_threshold=threshold,
            # S3 allows 10,000 parts: grow the parts rather than fail
            multipart_chunksize=max(chunksize, -(-size // _MAX_PARTS)),
            max_concurrency=concurrency,
        )
        # boto3 reads each part of a seekable file into memory: bound how
        # many parts are held at once (an s3transfer setting boto3 does not
        # take as an argument)
        transfer.max_in_memory_upload_chunks = concurrency + 1
        try:
            self._client.upload_fileobj(cast(BinaryIO, _KeepOpen(fh)), self.bucket, self._key(key), Config=transfer)
        except _BOTO_ERRORS as exc:
            raise self._map(exc, "upload", key) from exc
        except boto3.exceptions.S3UploadFailedError as exc:
            cause = exc.__cause__ or exc.__context__
            raise (self._map(cause, "upload", key) if cause else StoreError(self._scrub(str(exc)))) from exc

    def put_if_absent(self, key: str, data: bytes) -> None:
        # If-None-Match: * makes the server refuse (412) when the key exists,
        # atomically: exactly one of racing creators wins.  AWS has it since
        # 2024; SeaweedFS 4.x honours it (the contract's race test proves it);
        # a server that ignores it would silently overwrite, so test new ones.
        try:
            self._conditional_client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data),
                                                IfNoneMatch="*", ChecksumCRC32=_crc32([data]))
        except _BOTO_ERRORS as exc:
            raise self._map(exc, "conditional put", key) from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except _BOTO_ERRORS as exc:
            mapped = self._map(exc, "delete", key)
            if not isinstance(mapped, ObjectNotFound):
                raise mapped from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return in_key_order(self._pages(prefix), self._sorted_by_server)

    def _pages(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._root + prefix):
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"][len(self._root):], obj["Size"],
                                     obj.get("ETag", "").strip('"'), obj["LastModified"].timestamp())
        except _BOTO_ERRORS as exc:
            raise self._map(exc, "list", prefix or "/") from exc

    def stat(self, key: str) -> ObjectInfo:
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except _BOTO_ERRORS as exc:
            raise self._map(exc, "stat", key) from exc
        return ObjectInfo(key, resp["ContentLength"], resp.get("ETag", "").strip('"'), resp["LastModified"].timestamp())

    def close(self) -> None:
        for client in (self._client, self._crc_client, self._conditional_client):
            client.close()
