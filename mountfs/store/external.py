"""External files: entries that point at a source URL instead of holding chunks, and which sources may be read."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import NoReturn, Sequence
from urllib.parse import unquote, urlsplit

from ..backends import Backend, normalize_url
from ..config import Config
from ..errors import PermissionDenied, SourceChanged
from .manifest import FileEntry

log = logging.getLogger(__name__)


def check_unchanged(backend: Backend, key: str, entry: FileEntry) -> None:
    """Refuse to serve a source whose size or ETag/generation differ from when it was added."""
    info = backend.stat(key)
    if info.size != entry.size or (entry.etag and info.etag != entry.etag):
        raise SourceChanged(
            f"external file {entry.url} changed since it was added to the dataset "
            f"(size {entry.size} -> {info.size}, tag {entry.etag!r} -> {info.etag!r}); "
            "add it again in a new version"
        )


def read_range(backend: Backend, key: str, entry: FileEntry, offset: int, length: int) -> bytes:
    """``length`` bytes of the source from ``offset``; a short answer is an error, never served."""
    data = backend.get_range(key, offset, length)
    expected = max(0, min(length, entry.size - offset))
    if len(data) != expected:
        raise SourceChanged(f"external file {entry.url} returned {len(data)} bytes where {expected} were expected; "
                            "it changed since it was added")
    return data


# --- which sources a process may read ----------------------------------------------

#: refusals logged once per URL; past this many the set starts over, so a flood cannot grow memory
_REFUSALS_KEPT = 4096


def _names_no_endpoint(scheme: str, netloc: str) -> bool:
    """Does the URL go to its service's configured endpoint, rather than to a host the URL names?"""
    if scheme == "s3":  # s3://host:port/bucket/... talks to http(s)://host:port
        return ":" not in netloc
    if scheme == "azure":  # the account's host is the URL's
        return netloc.endswith(".blob.core.windows.net") and not any(c in netloc for c in ":@")
    return scheme == "gs"


@dataclass(frozen=True)
class _Prefix:
    scheme: str  # "file" for local folders
    netloc: str  # "" = any host, bucket or account of the scheme
    path: str  # "" = everything; a folder otherwise (real path for "file"), without a trailing "/"
    #: False: only URLs that name no endpoint of their own (``_names_no_endpoint``)
    any_endpoint: bool = True

    def covers(self, scheme: str, netloc: str, path: str) -> bool:
        if scheme != self.scheme or (self.netloc and netloc != self.netloc):
            return False
        if not self.any_endpoint and not _names_no_endpoint(scheme, netloc):
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


#: what a process serving other users (a root mount, a daemon) reads when ``[external] allow`` is not set:
#: object stores at the endpoints the operator set up, whose credentials it was given to serve datasets;
#: never local files, web hosts, or an endpoint the URL itself names (their requests would carry the
#: signatures or SAS tokens of those credentials to any host)
_SERVING_DEFAULT = tuple(_Prefix(scheme, "", "", any_endpoint=False) for scheme in ("s3", "gs", "azure"))


def _local_prefix(folder: str) -> _Prefix:
    real = os.path.realpath(folder)
    return _Prefix("file", "", "" if real == "/" else real)


def _parse_prefix(text: str) -> _Prefix:
    """``/folder``, ``file:///folder``, ``file://`` or a ``scheme://host/path`` URL prefix."""
    if text.startswith("/"):
        return _local_prefix(text)
    scheme, _, rest = text.partition("://")
    if scheme.lower() == "file":
        return _local_prefix(rest or "/")
    netloc, _, path = rest.partition("/")
    return _Prefix(scheme.lower(), netloc.lower(), ("/" + path).rstrip("/") if path else "")


def _is_local(url: str) -> bool:
    return "://" not in url or url.lower().startswith("file://")


def _has_dot_segments(path: str) -> bool:
    # a server (and urllib3) may resolve them, so a/../b would leave the allowed prefix a/
    return any(part in (".", "..") for part in unquote(path).split("/"))


class SourcePolicy:
    """Which external-file URLs this process may read, judged at each read (the store is writable by others).

    ``allow`` (``[external] allow`` / ``MOUNTFS_EXTERNAL_ALLOW``) lists URL
    prefixes and local folders; ``None`` means the default: everything for a
    process acting for its own user only; for one serving other users,
    ``s3://``, ``gs://`` and ``azure://`` at their configured endpoints plus
    ``endpoints`` (URL prefixes the operator configured, e.g. S3 hosts).
    Local paths are judged by their real path, so ``..`` and symlinks cannot
    lead out of an allowed folder.
    """

    def __init__(self, allow: Sequence[str] | None, serving_others: bool, endpoints: Sequence[str] = ()) -> None:
        self.serving_others = serving_others
        self._prefixes: tuple[_Prefix, ...] | None = None
        if allow is not None:
            self._prefixes = tuple(_parse_prefix(p) for p in allow)
        elif serving_others:
            self._prefixes = _SERVING_DEFAULT + tuple(_parse_prefix(p) for p in endpoints)
        why = ("is under none of the prefixes in external.allow" if allow is not None else
               "is not from s3://, gs:// or azure:// at an endpoint this node configures, "
               "all a mount serving other users reads unless told otherwise")
        self._why = (f"{why}; to allow it, add a prefix of it to `allow` in the [external] table of config.toml "
                     "(or MOUNTFS_EXTERNAL_ALLOW)")
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Config, serving_others: bool) -> "SourcePolicy":
        """``cfg``'s policy: its ``external_allow``, or the default with the S3 endpoints it names."""
        hosts = list(cfg.s3_hosts)
        store = cfg.store.removeprefix("s3://") if cfg.store.startswith("s3://") else ""
        if ":" in store.split("/", 1)[0]:  # the catalog's own s3://host:port store
            hosts.append(store.split("/", 1)[0])
        return cls(cfg.external_allow, serving_others, [f"s3://{host}/" for host in hosts])

    @property
    def restricted(self) -> bool:
        """Whether some URLs are refused (backends then re-check what they actually open)."""
        return self._prefixes is not None

    def check(self, url: str, *, resolve: bool = True, what: str = "external file") -> None:
        """Raise ``PermissionDenied`` unless ``url`` may be read.

        ``resolve=False`` is for what is already resolved: the real path of an
        opened file, the target of a redirect.  ``what`` names the URL's role in
        the message: a record's ``storage`` (the store of a version's packs) is
        as much the store writer's choice as an external file's source.
        """
        if self._prefixes is None:
            return
        if _is_local(url):
            path = normalize_url(url)
            real = os.path.realpath(path) if resolve else path
            if not any(p.covers("file", "", real) for p in self._prefixes):
                self._refuse(url, (f"its real path is {real}, which " if real != path else "it ") + self._why, what)
            return
        parts = urlsplit(url)
        if _has_dot_segments(parts.path):
            self._refuse(url, "its path holds '.' or '..' segments, which a server may resolve out of any allowed "
                              "prefix; add the file by a URL without them", what)
        if not any(p.covers(parts.scheme.lower(), parts.netloc.lower(), parts.path) for p in self._prefixes):
            self._refuse(url, "it " + self._why, what)

    def _refuse(self, url: str, reason: str, what: str) -> NoReturn:
        msg = f"{what} {url} may not be read: {reason}"
        if self.serving_others:
            with self._lock:
                first = url not in self._refused
                if first:
                    if len(self._refused) >= _REFUSALS_KEPT:
                        self._refused.clear()
                    self._refused.add(url)
            if first:
                log.warning("%s", msg)
        raise PermissionDenied(msg)
