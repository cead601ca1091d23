"""Storage backends: the only modules that talk to a storage service.

``open_backend(url, config)`` picks the backend by the URL's scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from .base import Backend, ObjectInfo

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Backend", "ObjectInfo", "open_backend", "normalize_url"]


def normalize_url(url: str) -> str:
    """Canonical form of a store URL: folders become absolute paths."""
    import os

    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    return url.rstrip("/")


def open_backend(url: str, config: "Config | None" = None) -> Backend:
    """Open the backend for a store URL (folder path, file://, s3://, gs://, azure://)."""
    url = normalize_url(url)
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme == "file":
        from .file import FileBackend

        return FileBackend(url)
    if scheme == "s3":
        try:
            from .s3 import S3Backend
        except ImportError as exc:  # pragma: no cover - depends on install
            raise UsageError(f"s3 stores need boto3: {exc}") from None
        return S3Backend.from_url(url, config)
    raise UsageError(
        f"unsupported store URL {url!r}: use a folder path, file://, s3://bucket/prefix or s3://host:port/bucket/prefix"
    )
