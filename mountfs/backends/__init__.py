"""Storage backends: the only modules that talk to a storage service.

``open_backend(url, config)`` picks the backend by the URL's scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import UsageError
from .base import Backend, ObjectInfo

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Backend", "ObjectInfo", "open_backend", "open_source", "normalize_url"]


def normalize_url(url: str) -> str:
    """Canonical form of a store URL: folders become absolute paths."""
    import os

    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    scheme, rest = url.split("://", 1)
    if scheme in _STORE_SCHEMES and ("@" in rest.split("/", 1)[0] or "?" in rest):
        # a store URL is shown in status, logs and dataset records: credentials
        # in it (user:secret@host, a SAS query) would travel with all of them
        raise UsageError(f"the {scheme}:// URL holds credentials (user@ or ?query); remove them from the URL "
                         f"and put them in the config file's [{scheme}] section or the environment")
    return f"{scheme}://{rest.rstrip('/')}"


_STORE_SCHEMES = frozenset({"s3", "gs", "azure"})


def open_backend(url: str, config: "Config | None" = None, check: "Callable[[str], None] | None" = None) -> Backend:
    """Open the backend for a store URL (folder path, file://, s3://, gs://, azure://).

    ``check`` (external files of a restricted process) is given to the folder
    and HTTP backends, which judge with it what they actually open or are redirected to.
    """
    url = normalize_url(url)
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme == "file":
        from .file import FileBackend

        return FileBackend(url, check)
    if scheme == "s3":
        try:
            from .s3 import S3Backend
        except ImportError as exc:  # pragma: no cover - depends on install
            raise UsageError(f"s3 stores need boto3: {exc}") from None
        return S3Backend.from_url(url, config)
    if scheme == "gs":
        try:
            from .gs import GsBackend
        except ImportError as exc:  # pragma: no cover - depends on install
            raise UsageError(f"gs stores need google-cloud-storage (pip install 'mountfs[gs]'): {exc}") from None
        return GsBackend.from_url(url, config)
    if scheme == "azure":
        try:
            from .azure import AzureBackend
        except ImportError as exc:  # pragma: no cover - depends on install
            raise UsageError(f"azure stores need azure-storage-blob (pip install 'mountfs[azure]'): {exc}") from None
        return AzureBackend.from_url(url, config)
    if scheme in ("http", "https"):
        from .http import HttpBackend

        return HttpBackend(url, check)
    raise UsageError(
        f"unsupported store URL {url!r}: use a folder path, file://, s3://bucket/prefix, "
        "s3://host:port/bucket/prefix, gs://bucket/prefix or azure://<account>.blob.core.windows.net/container/prefix"
    )


def open_source(url: str, config: "Config | None" = None,
                check: "Callable[[str], None] | None" = None) -> tuple[Backend, str]:
    """The backend of the folder holding the object at ``url``, and the object's key in it.

    External files (``add_external_files``) are addressed by full URLs; this
    splits one into a backend rooted at its parent and the last component.
    """
    url = normalize_url(url)
    parent, _, name = url.rpartition("/")
    if "://" not in url:
        parent = parent or "/"
    if not name or not parent or parent.endswith(":/") or parent.endswith(":"):
        raise UsageError(f"{url!r} does not name an object: give a URL like s3://bucket/path/file")
    return open_backend(parent, config, check), name
