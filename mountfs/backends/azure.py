"""A store in an Azure Blob Storage container:
``azure://<account>.blob.core.windows.net/container/prefix`` (as ClearML writes it).

Settings arrive typed from ``Config.azure_options`` (config.py ranks the
sources).  Credentials, first found wins: the config's ``[azure]`` ``connection_string``,
``account_key`` or ``sas_token``; then ``AZURE_STORAGE_CONNECTION_STRING``,
``AZURE_STORAGE_KEY`` or ``AZURE_STORAGE_SAS_TOKEN`` from the environment;
then ``azure-identity``'s default chain when that package is installed;
else anonymous access (public containers only).  The endpoint is
``https://<host of the URL>`` unless the config's ``[azure] endpoint`` or the
connection string's ``BlobEndpoint`` names another, e.g. Azurite's
``http://127.0.0.1:10000/devstoreaccount1``.

The SDK's own retries are switched off: ``RetryingBackend`` decides when to try
again, and a hidden retry would turn a conditional create whose answer was
lost into a false "already exists".  Keys, SAS tokens and connection strings
never reach error text or reprs.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

import requests
import requests.adapters
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (AzureError, ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                   ResourceModifiedError, ResourceNotFoundError, ServiceRequestError,
                                   ServiceResponseError)
from azure.storage.blob import BlobServiceClient

from ..config import Config
from ..errors import (AlreadyExists, ConfigError, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError,
                      UsageError)
from .base import Backend, ObjectInfo, Prefixed, first_line, in_key_order
from .retry import BUDGET


_DENIED_CODES = {"AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch",
                 "AuthorizationResourceTypeMismatch", "InsufficientAccountPermissions", "AccountIsDisabled"}
_TRANSIENT_CODES = {"ServerBusy", "InternalError", "OperationTimedOut"}
_SAS_SIG = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)


@dataclass
class AzureSettings:
    """Everything needed to open one Azure store; built by ``AzureBackend.from_url``."""

    account: str
    container: str
    prefix: str = ""
    #: the host as written in the store URL, e.g. ``acct.blob.core.windows.net``
    host: str = ""
    #: service endpoint, e.g. ``https://acct.blob.core.windows.net`` or Azurite's
    #: ``http://127.0.0.1:10000/devstoreaccount1``
    endpoint: str = ""
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    #: only kept so it can be scrubbed from messages
    connection_string: str | None = field(default=None, repr=False)
    connect_timeout: float = BUDGET.connect_timeout
    read_timeout: float = BUDGET.read_timeout
    max_single_put_size: int = 32 << 20
    max_block_size: int = 8 << 20
    max_concurrency: int = 4
    #: sockets kept for parallel readers (requests' default of 10 would make
    #: urllib3 discard connections under a mount's ~32 reader threads)
    max_pool_connections: int = 64


def _split_url(url: str) -> tuple[str, str, str]:
    """``azure://host/container[/prefix]`` -> (host, container, prefix)."""
    if not url.startswith("azure://"):
        raise UsageError(f"not an azure URL: {url!r}")
    parts = [p for p in url[len("azure://"):].split("/") if p]
    if len(parts) < 2:
        raise UsageError(f"Azure store URL {url!r} names no container: "
                         "use azure://<account>.blob.core.windows.net/container/prefix")
    return parts[0], parts[1], "/".join(parts[2:])


def parse_connection_string(text: str) -> dict[str, str]:
    """``Key=Value;Key=Value`` -> dict with lower-case keys (values may contain ``=``)."""
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            fields[name.strip().lower()] = value.strip()
    return fields


def _settings_from_config(url: str, config: Config | None) -> AzureSettings:
    """The URL's account, container and prefix with the config's typed settings (``Config.azure_options``)."""
    host, container, prefix = _split_url(url)
    opts = (config or Config()).azure_options()
    account = host.split(".", 1)[0]
    s = AzureSettings(account=account, container=container, prefix=prefix, host=host,
                      account_key=opts.account_key, sas_token=opts.sas_token)
    conn_endpoint = ""
    if opts.connection_string:
        fields = parse_connection_string(opts.connection_string)
        named = fields.get("accountname")
        if named and named != account:
            # writing somewhere else than the URL says would be worse than failing
            raise ConfigError(f"the Azure connection string from {opts.credentials_from} is for account {named!r}, "
                              f"but the store URL names account {account!r}; fix one of them")
        s.connection_string = opts.connection_string
        s.account_key = fields.get("accountkey") or None
        s.sas_token = fields.get("sharedaccesssignature") or None
        if fields.get("blobendpoint"):
            conn_endpoint = fields["blobendpoint"]
        elif fields.get("endpointsuffix"):
            conn_endpoint = (f"{fields.get('defaultendpointsprotocol', 'https')}://"
                             f"{account}.blob.{fields['endpointsuffix']}")
    default = f"https://{host}" if "." in host else f"https://{account}.blob.core.windows.net"
    s.endpoint = (opts.endpoint or conn_endpoint or default).rstrip("/")
    # tuning knobs the config leaves unset keep the defaults above
    for name in ("connect_timeout", "read_timeout", "max_single_put_size", "max_block_size", "max_concurrency",
                 "max_pool_connections"):
        value = getattr(opts, name)
        if value is not None:
            setattr(s, name, value)
    return s


class AzureBackend(Prefixed, Backend):
    """Objects are block blobs under ``container/prefix/``; one thread-safe client."""

    def __init__(self, settings: AzureSettings) -> None:
        self.account = settings.account
        self.container_name = settings.container
        self._root_at(f"azure://{settings.host}/{self.container_name}", settings.prefix)
        self._secrets = [v for v in (settings.connection_string, settings.account_key, settings.sas_token) if v]
        self._concurrency = settings.max_concurrency
        # Azure lists in ordinal (byte) order, Python's str order for the
        # keys we write; another endpoint (Azurite) is sorted here to be safe
        self._sorted_by_server = settings.endpoint.endswith(".blob.core.windows.net")
        credential: Any
        if settings.account_key:
            credential = AzureNamedKeyCredential(settings.account, settings.account_key)
        elif settings.sas_token:
            credential = AzureSasCredential(settings.sas_token.lstrip("?"))
        else:
            credential = _default_credential()
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=settings.max_pool_connections)
        for scheme in ("https://", "http://"):
            session.mount(scheme, adapter)
        try:
            self._service = BlobServiceClient(
                settings.endpoint, credential=credential, session=session, session_owner=True,
                connection_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                retry_total=0,
                max_single_put_size=settings.max_single_put_size, max_block_size=settings.max_block_size,
            )
        except (ValueError, AzureError) as exc:
            raise self._fail(exc, "open", "")
        self._container = self._service.get_container_client(self.container_name)

    @classmethod
    def from_url(cls, url: str, config: Config | None = None) -> "AzureBackend":
        """Open ``azure://<account>.blob.core.windows.net/container/prefix`` with ``config``'s settings."""
        return cls(_settings_from_config(url, config))

    # --- errors --------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SAS_SIG.sub(r"\1***", text)

    def _map(self, exc: BaseException, op: str, key: str) -> StoreError:
        """Turn an azure-core error into our error family, with a message that names the fix."""
        what = f"Azure {op} of {key!r} in {self.url}" if key else f"Azure {op} on {self.url}"
        if isinstance(exc, HttpResponseError):
            code = str(_error_code(exc) or "")
            status = exc.status_code or 0
            detail = self._scrub(f"{code or status}: {first_line(exc.reason or str(exc.message))}")
            if code == "ContainerNotFound":
                return StoreError(f"{what} failed: container {self.container_name!r} does not exist; "
                                  "create it or fix the store URL")
            if isinstance(exc, ResourceNotFoundError) or status == 404:
                return ObjectNotFound(f"object {key!r} is not in the store {self.url}")
            if isinstance(exc, ResourceExistsError) or code in ("BlobAlreadyExists", "ConditionNotMet"):
                return AlreadyExists(f"object {key!r} already exists in the store {self.url}")
            if isinstance(exc, ClientAuthenticationError) or code in _DENIED_CODES or status in (401, 403):
                return PermissionDenied(f"{what} was refused ({detail}); check the account key, SAS token "
                                        "or connection string for this store")
            if isinstance(exc, ResourceModifiedError):
                # the blob changed under a multi-part read: reading again gets one version
                return TransientStoreError(f"{what} failed: the object changed while it was read")
            if code in _TRANSIENT_CODES or status in (408, 429) or status >= 500:
                return TransientStoreError(f"{what} failed ({detail})")
            return StoreError(f"{what} failed ({detail})")
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            # refused, reset, timed out: the request or its answer was lost
            return TransientStoreError(f"{what} failed: {type(exc).__name__}: {self._scrub(first_line(str(exc)))}")
        if isinstance(exc, ValueError):
            return StoreError(f"{what} failed: {self._scrub(first_line(str(exc)))}")
        return StoreError(f"{what} failed: {type(exc).__name__}: {self._scrub(first_line(str(exc)))}")

    def _fail(self, exc: BaseException, op: str, key: str) -> StoreError:
        """The mapped error, chained to ``exc`` unless ``exc``'s text holds a secret (e.g. a SAS URL)."""
        mapped = self._map(exc, op, key)
        text = "".join(traceback.format_exception(exc))
        if self._scrub(text) == text:
            mapped.__cause__ = exc
        else:
            mapped.__suppress_context__ = True
        return mapped

    # --- the interface -------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            return self._container.download_blob(self._key(key), max_concurrency=self._concurrency).readall()
        except AzureError as exc:
            raise self._fail(exc, "get", key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            self.stat(key)  # still report a missing object
            return b""
        try:
            return self._container.download_blob(self._key(key), offset=offset, length=length).readall()
        except HttpResponseError as exc:
            # 416: the range starts at or past the end (incl. empty blobs); a
            # missing blob is a 404 before any range is looked at
            if exc.status_code == 416 or _error_code(exc) == "InvalidRange":
                return b""
            raise self._fail(exc, "ranged get", key)
        except AzureError as exc:
            raise self._fail(exc, "ranged get", key)

    def put(self, key: str, data: bytes | memoryview) -> None:
        try:
            self._container.upload_blob(self._key(key), bytes(data), overwrite=True,
                                        max_concurrency=self._concurrency)
        except AzureError as exc:
            raise self._fail(exc, "put", key)

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        # up to max_single_put_size in one Put Blob; above it staged blocks
        # committed by one Put Block List: the blob appears whole or not at all
        try:
            self._container.upload_blob(self._key(key), fh, length=size, overwrite=True,
                                        max_concurrency=self._concurrency)
        except AzureError as exc:
            raise self._fail(exc, "upload", key)

    def put_if_absent(self, key: str, data: bytes) -> None:
        # overwrite=False sends If-None-Match: *; the service refuses (409
        # BlobAlreadyExists) atomically, so exactly one racing creator wins
        try:
            self._container.upload_blob(self._key(key), bytes(data), overwrite=False)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise AlreadyExists(f"object {key!r} already exists in the store {self.url}") from exc
        except AzureError as exc:
            raise self._fail(exc, "conditional put", key)

    def delete(self, key: str) -> None:
        try:
            self._container.delete_blob(self._key(key))
        except ResourceNotFoundError as exc:
            if _error_code(exc) == "ContainerNotFound":
                raise self._fail(exc, "delete", key)
        except AzureError as exc:
            raise self._fail(exc, "delete", key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return in_key_order(self._pages(prefix), self._sorted_by_server)

    def _pages(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for props in self._container.list_blobs(name_starts_with=self._root + prefix):
                yield ObjectInfo(props.name[len(self._root):], int(props.size or 0), str(props.etag or "").strip('"'),
                                 props.last_modified.timestamp() if props.last_modified else 0.0)
        except AzureError as exc:
            raise self._fail(exc, "list", prefix or "/")

    def stat(self, key: str) -> ObjectInfo:
        try:
            props = self._container.get_blob_client(self._key(key)).get_blob_properties()
        except AzureError as exc:
            raise self._fail(exc, "stat", key)
        return ObjectInfo(key, int(props.size or 0), str(props.etag or "").strip('"'),
                          props.last_modified.timestamp() if props.last_modified else 0.0)

    def close(self) -> None:
        self._service.close()


def _error_code(exc: HttpResponseError) -> str | None:
    """The storage service's error code, which azure-storage-blob sets on the errors it raises."""
    code = getattr(exc, "error_code", None)
    return None if code is None else str(code)


def _default_credential() -> Any:
    """azure-identity's chain (managed identity, az login, ...) when installed; else anonymous."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        return None
    return DefaultAzureCredential()
