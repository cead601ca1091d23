"""A store in a Google Cloud Storage bucket: ``gs://bucket/prefix``.

Settings arrive typed from ``Config.gs_options`` (config.py ranks the
sources).  Where to connect: the config's ``[gs] endpoint``, else
``STORAGE_EMULATOR_HOST``, an emulator, which gets anonymous credentials and a
placeholder project, else Google.  Credentials otherwise: the config's
``[gs] credentials_json`` (a key file path), else
``GOOGLE_APPLICATION_CREDENTIALS``, else Google's standard chain (gcloud's
application-default login, the metadata server).  The project comes from
``[gs] project``, ``GOOGLE_CLOUD_PROJECT`` or the credentials.

The client's own retries are switched off: ``RetryingBackend`` decides when to
try again, and a retry hidden in here would turn a conditional create whose
answer was lost into a false "already exists".  Error text carries status
codes, server messages and key names, never credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import google.api_core.exceptions as gexc
import google.auth
import google.auth.exceptions
import requests.adapters
import requests.exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from ..config import Config
from ..errors import AlreadyExists, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError, UsageError
from .base import Backend, ObjectInfo, Prefixed, first_line, in_key_order
from .retry import BUDGET


_TRANSIENT_STATUS = (gexc.TooManyRequests, gexc.InternalServerError, gexc.ServiceUnavailable, gexc.BadGateway,
                     gexc.GatewayTimeout)
# the request may not have reached the server, or its answer was lost
_TRANSIENT_NET = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                  requests.exceptions.ChunkedEncodingError, google.auth.exceptions.TransportError,
                  ConnectionError, TimeoutError, DataCorruption)
_ERRORS = (gexc.GoogleAPIError, google.auth.exceptions.GoogleAuthError, requests.exceptions.RequestException,
           InvalidResponse, DataCorruption, OSError)
#: resumable uploads send the file in pieces of this size (a multiple of 256 KiB)
_CHUNK_QUANTUM = 256 << 10
_ANONYMOUS_PROJECT = "mountfs-emulator"


@dataclass
class GsSettings:
    """Everything needed to open one GCS store; built by ``GsBackend.from_url``."""

    bucket: str
    prefix: str = ""
    #: ``http://host:port`` of an emulator or another endpoint; ``None`` for Google
    endpoint: str | None = None
    emulator: bool = False
    #: path of a service-account (or other) key file; the path is no secret
    credentials_json: str | None = None
    project: str | None = None
    connect_timeout: float = BUDGET.connect_timeout
    read_timeout: float = BUDGET.read_timeout
    #: uploads above 8 MiB go resumable, in chunks of this size
    chunk_size: int = 16 << 20
    #: sockets kept for parallel readers (requests' default of 10 would make
    #: urllib3 discard connections under a mount's ~32 reader threads)
    max_pool_connections: int = 64


def _split_url(url: str) -> tuple[str, str]:
    """``gs://bucket[/prefix]`` -> (bucket, prefix)."""
    if not url.startswith("gs://"):
        raise UsageError(f"not a gs URL: {url!r}")
    parts = [p for p in url[len("gs://"):].split("/") if p]
    if not parts:
        raise UsageError(f"GCS store URL {url!r} names no bucket: use gs://bucket/prefix")
    return parts[0], "/".join(parts[1:])


def _settings_from_config(url: str, config: Config | None) -> GsSettings:
    """The URL's bucket and prefix with the config's typed settings (``Config.gs_options``)."""
    bucket, prefix = _split_url(url)
    opts = (config or Config()).gs_options()
    s = GsSettings(bucket=bucket, prefix=prefix, endpoint=opts.endpoint, emulator=opts.emulator,
                   credentials_json=opts.credentials_json, project=opts.project)
    # tuning knobs the config leaves unset keep the defaults above
    if opts.connect_timeout is not None:
        s.connect_timeout = opts.connect_timeout
    if opts.read_timeout is not None:
        s.read_timeout = opts.read_timeout
    if opts.max_pool_connections is not None:
        s.max_pool_connections = opts.max_pool_connections
    if opts.chunk_size is not None:
        s.chunk_size = max(_CHUNK_QUANTUM, opts.chunk_size - opts.chunk_size % _CHUNK_QUANTUM)
    return s


class GsBackend(Prefixed, Backend):
    """Objects are GCS objects under ``bucket/prefix/``; one client shared by all threads."""

    def __init__(self, settings: GsSettings) -> None:
        self.bucket_name = settings.bucket
        self._root_at(f"gs://{self.bucket_name}", settings.prefix)
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._chunk_size = settings.chunk_size
        # Google lists in UTF-8 byte order (= Python's str order); an emulator
        # or other endpoint need not, so its listing is sorted here
        self._sorted_by_server = settings.endpoint is None
        try:
            credentials, project = self._credentials(settings)
            self._client = storage.Client(
                project=project, credentials=credentials,
                client_options={"api_endpoint": settings.endpoint} if settings.endpoint else None)
        except (google.auth.exceptions.GoogleAuthError, OSError, ValueError) as exc:
            raise self._map(exc, "open", "") from exc
        # the client's requests session (google-cloud-core's ``_http``) gets a
        # pool as large as our reader threads
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=settings.max_pool_connections)
        for scheme in ("https://", "http://"):
            self._client._http.mount(scheme, adapter)
        self._bucket = self._client.bucket(self.bucket_name)

    @classmethod
    def from_url(cls, url: str, config: Config | None = None) -> "GsBackend":
        """Open ``gs://bucket/prefix`` with ``config``'s settings (``Config.gs_options``)."""
        return cls(_settings_from_config(url, config))

    @staticmethod
    def _credentials(s: GsSettings) -> tuple[Any, str | None]:
        # google-auth ships py.typed but leaves these two unannotated
        if s.emulator:
            return AnonymousCredentials(), s.project or _ANONYMOUS_PROJECT  # type: ignore[no-untyped-call]
        scopes = ["https://www.googleapis.com/auth/devstorage.read_write"]
        if s.credentials_json:
            credentials, project = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                s.credentials_json, scopes=scopes)
        else:
            credentials, project = google.auth.default(scopes=scopes)
        return credentials, s.project or project

    # --- errors --------------------------------------------------------------

    def _map(self, exc: BaseException, op: str, key: str) -> StoreError:
        """Turn a google-cloud error into our error family, with a message that names the fix."""
        what = f"GCS {op} of {key!r} in {self.url}" if key else f"GCS {op} on {self.url}"
        if isinstance(exc, gexc.GoogleAPICallError):
            detail = f"{exc.code}: {first_line(exc.message)}"
            if isinstance(exc, gexc.NotFound):
                if "bucket" in exc.message.lower() and "does not exist" in exc.message.lower():
                    return StoreError(f"{what} failed: bucket {self.bucket_name!r} does not exist; "
                                      "create it or fix the store URL")
                return ObjectNotFound(f"object {key!r} is not in the store {self.url}")
            if isinstance(exc, gexc.PreconditionFailed):
                return AlreadyExists(f"object {key!r} already exists in the store {self.url}")
            if isinstance(exc, (gexc.Forbidden, gexc.Unauthorized)):
                return PermissionDenied(f"{what} was refused ({detail}); check the credentials for this store "
                                        "([gs] credentials_json or GOOGLE_APPLICATION_CREDENTIALS)")
            if isinstance(exc, _TRANSIENT_STATUS) or (exc.code or 0) >= 500:
                return TransientStoreError(f"{what} failed ({detail})")
            return StoreError(f"{what} failed ({detail})")
        if isinstance(exc, InvalidResponse):
            # a status the upload/download helper did not expect
            status = getattr(getattr(exc, "response", None), "status_code", 0) or 0
            cls = TransientStoreError if status >= 500 or status == 429 else StoreError
            return cls(f"{what} failed (HTTP {status})")
        if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
            return PermissionDenied(f"{what}: no usable Google credentials ({first_line(str(exc))}); set "
                                    "[gs] credentials_json or GOOGLE_APPLICATION_CREDENTIALS, or run "
                                    "`gcloud auth application-default login`")
        if isinstance(exc, google.auth.exceptions.RefreshError):
            return PermissionDenied(f"{what}: the credentials were refused ({first_line(str(exc))})")
        if isinstance(exc, _TRANSIENT_NET):
            return TransientStoreError(f"{what} failed: {type(exc).__name__}: {first_line(str(exc))}")
        return StoreError(f"{what} failed: {type(exc).__name__}: {first_line(str(exc))}")

    def _blob(self, key: str, chunk_size: int | None = None) -> storage.Blob:
        # no chunk size for downloads: with one the client fetches in ranged
        # pieces and skips the checksum check of the whole object
        return self._bucket.blob(self._key(key), chunk_size=chunk_size)

    # --- the interface -------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            data: bytes = self._blob(key).download_as_bytes(retry=None, timeout=self._timeout)
            return data
        except _ERRORS as exc:
            raise self._map(exc, "get", key) from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            self.stat(key)  # still report a missing object
            return b""
        try:
            data: bytes = self._blob(key).download_as_bytes(start=offset, end=offset + length - 1,
                                                            retry=None, timeout=self._timeout)
        except gexc.RequestRangeNotSatisfiable:
            # 416: the range starts at or past the end (incl. empty objects);
            # a missing object is a 404 before any range is looked at
            return b""
        except _ERRORS as exc:
            raise self._map(exc, "ranged get", key) from exc
        if len(data) > length:
            # a server that ignored Range sent the whole object
            data = data[offset:offset + length]
        return data

    def put(self, key: str, data: bytes | memoryview) -> None:
        try:
            self._blob(key).upload_from_string(bytes(data), retry=None, timeout=self._timeout)
        except _ERRORS as exc:
            raise self._map(exc, "put", key) from exc

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        # up to 8 MiB in one request, above that a resumable upload in
        # chunk_size pieces: either way the object appears whole or not at all
        try:
            self._blob(key, self._chunk_size).upload_from_file(fh, size=size, retry=None, timeout=self._timeout)
        except _ERRORS as exc:
            raise self._map(exc, "upload", key) from exc

    def put_if_absent(self, key: str, data: bytes) -> None:
        # ifGenerationMatch=0: "only if no live object has this name", checked
        # atomically by the server (412 otherwise), so one racing creator wins
        try:
            self._blob(key).upload_from_string(bytes(data), if_generation_match=0, retry=None, timeout=self._timeout)
        except _ERRORS as exc:
            raise self._map(exc, "conditional put", key) from exc

    def delete(self, key: str) -> None:
        try:
            self._blob(key).delete(retry=None, timeout=self._timeout)
        except gexc.NotFound:
            pass
        except _ERRORS as exc:
            raise self._map(exc, "delete", key) from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return in_key_order(self._pages(prefix), self._sorted_by_server)

    def _pages(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for blob in self._client.list_blobs(self._bucket, prefix=self._root + prefix,
                                                retry=None, timeout=self._timeout):
                yield self._info(blob.name[len(self._root):], blob)
        except gexc.NotFound as exc:
            raise StoreError(f"GCS list on {self.url} failed: bucket {self.bucket_name!r} does not exist; "
                             "create it or fix the store URL") from exc
        except _ERRORS as exc:
            raise self._map(exc, "list", prefix or "/") from exc

    def stat(self, key: str) -> ObjectInfo:
        blob = self._blob(key)
        try:
            blob.reload(retry=None, timeout=self._timeout)
        except _ERRORS as exc:
            raise self._map(exc, "stat", key) from exc
        return self._info(key, blob)

    @staticmethod
    def _info(key: str, blob: storage.Blob) -> ObjectInfo:
        # the generation changes on every write of the name, so it is the tag
        return ObjectInfo(key, int(blob.size or 0), str(blob.generation or ""),
                          blob.updated.timestamp() if blob.updated else 0.0)

    def close(self) -> None:
        try:
            self._client.close()
        except AttributeError:  # pragma: no cover - older clients have no close()
            pass
