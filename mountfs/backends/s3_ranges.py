"""Ranged reads of an S3 store through obstore (the Rust ``object_store`` crate).

The daemon's fetch threads spend their time here.  botocore keeps the GIL for
~1.2-1.4 ms of Python per GET, which the thread answering FUSE requests
waits for; obstore moves the bytes in Rust with the GIL released.  Only reads
go this way (``S3Backend.get_ranges``): uploads, listings and deletes stay on
boto3, which measured as fast or faster there (``bench/transfer.py``).

Nothing about how a store is reached changes: the endpoint, region and
addressing come from the backend's resolved ``S3Settings``, and credentials
from the same boto3 session the rest of the backend signs with (static keys,
profiles, instance roles: refreshed when botocore refreshes them).  Retries
stay with ``RetryingBackend`` (obstore's own are off) and the per-attempt
timeouts are ``BUDGET``'s.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Callable

import obstore
import obstore.exceptions as obx
from obstore.store import S3Store

from ..errors import ObjectNotFound, PermissionDenied, StoreError, TransientStoreError
from .base import first_line

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config, S3Credential

#: the longest one ranged GET may take end to end (a coalesced range of many chunks on a slow link)
_WHOLE_REQUEST = 60.0
#: how long obstore may keep credentials that botocore can refresh before asking again
_REFRESHABLE_TTL = dt.timedelta(minutes=5)

#: the HTTP status in obstore's message of a refused request
_STATUS = re.compile(r"status code: (\d{3})")
# words of obstore/reqwest errors without a status that say the request or its
# answer was lost (timeouts, resets, refused connections): worth another attempt
_TRANSIENT_WORDS = ("timed out", "timeout", "connect", "error sending request", "reset", "broken pipe",
                    "incomplete", "error decoding response body", "unexpected eof")


class BotoCredentials:
    """obstore's credential provider over a boto3 session's credentials.

    ``credentials`` is a ``botocore.credentials.Credentials``; when it can
    refresh itself (roles, SSO, ``credential_process``) each call freezes the
    current set, which botocore renews before it expires.
    """

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._refreshable = hasattr(credentials, "refresh_needed")

    def __call__(self) -> "S3Credential":
        frozen = self._credentials.get_frozen_credentials()
        expires = dt.datetime.now(dt.timezone.utc) + _REFRESHABLE_TTL if self._refreshable else None
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
                "token": frozen.token, "expires_at": expires}


class ObstoreRanges:
    """Ranged GETs of one bucket's objects (full object names, the prefix already applied)."""

    def __init__(self, bucket: str, *, endpoint_url: str | None, region: str, path_style: bool,
                 credentials: Callable[[], "S3Credential"] | None, verify: bool, ca: bytes | None,
                 connect_timeout: float,
                 read_timeout: float, pool: int) -> None:
        config: S3Config = {"region": region, "virtual_hosted_style_request": not path_style}
        if endpoint_url:
            config["endpoint"] = endpoint_url
        client: ClientConfig = {
            "allow_http": bool(endpoint_url and endpoint_url.startswith("http://")),
            "allow_invalid_certificates": not verify,
            "connect_timeout": dt.timedelta(seconds=connect_timeout),
            # the longest silence, as botocore's read_timeout (BUDGET: an attempt at a
            # server that stopped answering ends within the read deadline) ...
            "read_timeout": dt.timedelta(seconds=read_timeout),
            # ... and a bound on the whole request, so a trickling answer ends too
            "timeout": dt.timedelta(seconds=max(_WHOLE_REQUEST, read_timeout)),
            "pool_max_idle_per_host": str(pool),
        }
        if ca:
            client["root_certificate"] = ca
        kwargs: dict[str, Any] = {}
        if credentials is None:
            config["skip_signature"] = True
        else:
            kwargs["credential_provider"] = credentials
        # one attempt: RetryingBackend is the only retry layer
        self._store = S3Store(bucket, config=config, client_options=client,
                              retry_config={"max_retries": 0, "retry_timeout": dt.timedelta(seconds=read_timeout)},
                              **kwargs)

    def read(self, name: str, offset: int, spans: list[tuple[int, int]]) -> list[bytes | memoryview]:
        """The bytes of each ``(start, length)`` of ``spans`` (relative to ``offset``), one ranged GET.

        Pieces past the end of the object come back short (or empty), as from boto3.
        """
        length = spans[-1][0] + spans[-1][1]
        try:
            blob = memoryview(obstore.get_range(self._store, name, start=offset, length=length))
        except obx.BaseError as exc:
            if _past_end(exc):
                return [b"" for _ in spans]
            raise
        return [blob[start:start + n] for start, n in spans]


def _status(exc: BaseException) -> int:
    found = _STATUS.search(str(exc))
    return int(found.group(1)) if found else 0


def _past_end(exc: BaseException) -> bool:
    # 416: the range starts at or past the end (incl. empty objects), as boto3's InvalidRange
    return _status(exc) == 416 or "wanted range starting" in str(exc).lower()


def map_error(exc: BaseException, what: str, key: str, url: str, bucket: str,
              scrub: Callable[[str], str]) -> StoreError:
    """obstore's error as the one the boto3 path raises for the same failure."""
    status = _status(exc)
    detail = scrub(first_line(str(exc)))
    if isinstance(exc, (obx.NotFoundError, FileNotFoundError)) or status == 404:
        if "nosuchbucket" in str(exc).lower():
            return StoreError(f"{what} failed: bucket {bucket!r} does not exist; create it or fix the store URL")
        return ObjectNotFound(f"object {key!r} is not in the store {url}")
    if isinstance(exc, (obx.PermissionDeniedError, obx.UnauthenticatedError, PermissionError)) or status in (401, 403):
        return PermissionDenied(f"{what} was refused ({detail}); check the access key and secret for this store")
    if status == 429 or status >= 500:
        return TransientStoreError(f"{what} failed ({detail})")
    if status:
        return StoreError(f"{what} failed ({detail})")
    if isinstance(exc, (TimeoutError, ConnectionError)) or any(w in str(exc).lower() for w in _TRANSIENT_WORDS):
        return TransientStoreError(f"{what} failed: {detail}")
    return StoreError(f"{what} failed: {detail}")
