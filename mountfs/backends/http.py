"""Read-only HTTP(S) sources for external files (``add_external_files("https://...")``).

Only what external files need: whole and ranged GETs, and a HEAD that gives
size and an ETag (or Last-Modified) so a changed source is noticed.  A web
server has no listing, so a URL names one file.
"""

from __future__ import annotations

from typing import Callable, Iterator, NoReturn
from urllib.parse import urljoin

import urllib3

from ..errors import ObjectNotFound, PermissionDenied, StoreError, TransientStoreError, UsageError
from .base import Backend, ObjectInfo

_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
_REDIRECTS = 3


class HttpBackend(Backend):
    """GETs under a base URL; keys are the paths below it."""

    def __init__(self, base_url: str, check: Callable[[str], None] | None = None):
        """``check`` (a restricted process) judges every redirect's target before it is requested."""
        self.url = base_url.rstrip("/")
        self._check = check
        # retries are the retry wrapper's job; redirects are followed here, one hop at a time
        retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=0)
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=16, retries=retries, timeout=_TIMEOUT)

    def _request(self, method: str, key: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        target = url = f"{self.url}/{key}"
        # redirects are followed (CDNs use them), each target checked before it is asked:
        # a redirect must not lead a restricted process to a host it may not reach
        for _ in range(_REDIRECTS + 1):
            try:
                resp = self._pool.request(method, url, headers=headers, preload_content=True, redirect=False)
            except urllib3.exceptions.HTTPError as exc:
                raise TransientStoreError(f"{method} {url} failed: {type(exc).__name__}") from None
            location = resp.get_redirect_location()
            if not location:
                break
            url = urljoin(url, location)
            if not url.startswith(("http://", "https://")):
                raise StoreError(f"{method} {target}: redirected to {url}, which is not an HTTP(S) URL")
            if self._check is not None:
                self._check(url)
        else:
            raise StoreError(f"{method} {target}: more than {_REDIRECTS} redirects")
        if 300 <= resp.status < 400:
            raise StoreError(f"{method} {target}: HTTP {resp.status} without a Location to follow")
        if resp.status == 404 or resp.status == 410:
            raise ObjectNotFound(f"{target} does not exist (HTTP {resp.status})")
        if resp.status in (401, 403):
            raise PermissionDenied(f"{target}: access denied (HTTP {resp.status})")
        if resp.status in (429,) or resp.status >= 500:
            raise TransientStoreError(f"{method} {target}: HTTP {resp.status}")
        if resp.status >= 400:
            raise StoreError(f"{method} {target}: HTTP {resp.status}")
        if url.endswith("/") and not target.endswith("/"):
            # redirected to a folder's index page: not a file
            raise ObjectNotFound(f"{target} is a folder page, not a file")
        return resp

    def get(self, key: str) -> bytes:
        return self._request("GET", key).data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        resp = self._request("GET", key, {"Range": f"bytes={offset}-{offset + length - 1}"})
        data = resp.data
        if resp.status == 200:  # the server ignored Range
            data = data[offset:offset + length]
        return data

    def stat(self, key: str) -> ObjectInfo:
        resp = self._request("HEAD", key)
        size = int(resp.headers.get("Content-Length", "0"))
        tag = resp.headers.get("ETag") or resp.headers.get("Last-Modified") or ""
        return ObjectInfo(key, size, tag.strip('"'))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        raise UsageError(f"{self.url}/{prefix} cannot be listed: HTTP has no folders; give the URL of each file")

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise PermissionDenied(f"{self.url} is read-only: HTTP sources can only be read")

    put = put_if_absent = delete = _read_only

    def close(self) -> None:
        self._pool.clear()
