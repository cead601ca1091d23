"""Mounting from Python: a finalized version read-only, or a draft as a writable copy (``Dataset.mount``).

The daemon is the same one ``mountfs mount`` starts (``daemon.mounts.start``);
closing a mounted writable copy (``Dataset.finalize``) asks that daemon, which
owns the copy's upper layer, and then mounts the new version read-only in its
place, as ``mountfs close DIR`` does.
"""

from __future__ import annotations

import logging
import os
from types import TracebackType

from ..cache import upper
from ..daemon.control import request
from ..daemon.mounts import mounted_fuse, serving, start, stop
from ..errors import StateError, UsageError
from .closing import DraftClosing
from .version import Version

log = logging.getLogger(__name__)

#: a close uploads what changed: as long as that takes
CLOSE_TIMEOUT = 24 * 3600.0


class MountedPath(str):
    """The mountpoint (a ``str``); as a context manager it unmounts on exit (a writable copy keeps its changes)."""

    mounting: "Mounting"

    def __new__(cls, path: str, mounting: "Mounting") -> "MountedPath":
        obj = super().__new__(cls, path)
        obj.mounting = mounting
        return obj

    def __enter__(self) -> "MountedPath":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if mounted_fuse(str(self)):
            self.mounting.unmount(str(self))


class Mounting:
    """Mounts of one version (module docstring)."""

    def __init__(self, version: Version) -> None:
        self._v = version

    @property
    def _run_dir(self) -> str:
        return self._v.session.config.run_dir

    def mount(self, path: str | os.PathLike[str]) -> MountedPath:
        v = self._v
        mountpoint = os.path.realpath(os.fspath(path))
        writable = not v.record.is_final
        if writable:
            if upper.busy(v.session.config.cache_dir, v.id):
                raise UsageError(f"draft {v.id} is already mounted writable; see `mountfs status`")
            if v.is_dirty():  # the copy reads every file through the cache
                DraftClosing(v).upload()
        start(self._run_dir, v.session.catalog_url, mountpoint, v.id, writable)
        log.info("mounted %s%s at %s", v.describe(), " writable" if writable else "", mountpoint)
        return MountedPath(mountpoint, self)

    def unmount(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            info = serving(self._run_dir, self._v.id)
            if info is None:
                raise UsageError(f"{self._v.describe()} is not mounted")
            path = str(info["mountpoint"])
        stop(self._run_dir, os.path.realpath(os.fspath(path)))

    def close_mounted(self, auto_upload: bool) -> bool:
        """Close the draft's mounted writable copy into the version; False when none is mounted.

        An unmounted copy with changes is refused: they would be lost."""
        v = self._v
        info = serving(self._run_dir, v.id)
        if info is None:
            if upper.has_changes(v.session.config.cache_dir, v.id):
                raise StateError(f"draft {v.id} has a writable copy with changes that is not mounted: mount it "
                                 f"(`mountfs mount --writable --id {v.id} DIR`) and close it, or drop them with "
                                 f"`mountfs close --discard-copy --id {v.id}`")
            return False
        if not auto_upload:
            raise StateError(f"dataset {v.id} is mounted as a writable copy: finalize(auto_upload=True) uploads "
                             "its changes and finalizes it")
        reply = request(str(info["socket"]), {"op": "close"}, timeout=CLOSE_TIMEOUT)
        if not reply.get("ok"):
            raise StateError(str(reply.get("error", "closing the writable copy failed")))
        mountpoint = str(info["mountpoint"])
        stop(self._run_dir, mountpoint)
        v.record = v.session.catalog.get(v.id)
        start(self._run_dir, v.session.catalog_url, mountpoint, v.id, writable=False)
        return True
