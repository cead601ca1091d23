"""A version's local copies: the cached read-only folder, and plain writable copies.

The folders themselves are built by ``mountfs.localcopy``; this part chooses
the files (a slice, a selection), names the cached folder and maps ClearML's
parameters.  Parameters mean what they mean in ClearML's ``Dataset``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Iterable

from .. import localcopy
from ..catalog import names
from ..errors import MountfsError, NotFound, StateError, UsageError
from ..session import default_workers, progress_bar
from ..store import FileEntry
from .version import Version

log = logging.getLogger(__name__)

#: copies wait on the network more than on the CPU: at least this many requests in flight, even on 2 cores
MIN_COPY_WORKERS = 4


def copy_workers(max_workers: int | None) -> int:
    """``max_workers`` when given, else the logical cores but at least ``MIN_COPY_WORKERS``."""
    return default_workers(max_workers) if max_workers else max(MIN_COPY_WORKERS, default_workers(None))


def select(
    entries: Iterable[FileEntry], part: int | None, num_parts: int | None, files: str | Iterable[str] | None,
    dataset_id: str = "",
) -> list[FileEntry]:
    """The entries (in path order) matching ``files`` (paths, folders or wildcards), then slice ``part``
    of ``num_parts``: contiguous slices balanced by bytes, so each part is a few large reads."""
    chosen = sorted(entries, key=lambda e: e.path)
    if files is not None:
        wanted = [names.check_dataset_path(f, "file") for f in ([files] if isinstance(files, str) else files)]
        missing = [w for w in wanted if not any(names.path_matches(e.path, w, True) for e in chosen)]
        if missing:
            raise NotFound(f"{missing[0]!r} is not in dataset {dataset_id}; see `mountfs list --id {dataset_id}`")
        chosen = [e for e in chosen if any(names.path_matches(e.path, w, True) for w in wanted)]
    if num_parts is None and part is None:
        return chosen
    if num_parts is None or part is None or not (0 <= int(part) < int(num_parts)):
        raise UsageError(f"part must be in 0..num_parts-1 (got part={part}, num_parts={num_parts})")
    n, k = int(num_parts), int(part)
    total = sum(e.size for e in chosen) or 1
    out, offset = [], 0
    for i, e in enumerate(chosen):
        share = (offset * n // total) if total > 1 else (i * n // max(1, len(chosen)))
        if min(share, n - 1) == k:
            out.append(e)
        offset += e.size
    return out


class LocalCopies:
    """Puts one finalized version's files on local disk."""

    def __init__(self, version: Version) -> None:
        self._v = version

    def get_local_copy(
        self,
        part: int | None = None,
        num_parts: int | None = None,
        raise_on_error: bool = True,
        max_workers: int | None = None,
        files: str | Iterable[str] | None = None,
        show_progress: bool = False,
    ) -> str | None:
        """The cached read-only folder of the chosen files, built when it is not complete.

        Read-only throughout: no file keeps a write bit and every folder is
        0555, so nothing can be added to, changed in or removed from the copy
        that later calls reuse; ``get_mutable_local_copy`` makes a writable one."""
        v = self._v
        try:
            entries = self._entries("get a local copy of", part, num_parts, files)
            suffix = ""
            if num_parts is not None:
                suffix += f".part{part}of{num_parts}"
            if files is not None:
                suffix += ".files-" + hashlib.sha1("\0".join(sorted(e.path for e in entries)).encode()).hexdigest()[:12]
            sess = v.session
            target = os.path.join(sess.config.cache_dir, "copies", v.id + suffix)
            with progress_bar(sum(e.size for e in entries), "fetching", show_progress) as advance:
                return localcopy.build_cached_copy(
                    entries, v.store, sess.cache, target, max_workers=copy_workers(max_workers),
                    progress=advance, source=sess.source,
                )
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("get_local_copy of %s failed: %s", v.id, exc)
            return None

    def get_mutable_local_copy(
        self,
        target_folder: str | os.PathLike[str],
        overwrite: bool = False,
        part: int | None = None,
        num_parts: int | None = None,
        raise_on_error: bool = True,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> str | None:
        """Write the chosen files into ``target_folder`` as plain writable files."""
        v = self._v
        try:
            entries = self._entries("copy", part, num_parts, None)
            with progress_bar(sum(e.size for e in entries), "copying", show_progress) as advance:
                return localcopy.build_mutable_copy(
                    entries, v.store, v.session.cache, os.path.abspath(str(target_folder)),
                    overwrite=overwrite, max_workers=copy_workers(max_workers), progress=advance,
                    source=v.session.source,
                )
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("get_mutable_local_copy of %s failed: %s", v.id, exc)
            return None

    def _entries(
        self, action: str, part: int | None, num_parts: int | None, files: str | Iterable[str] | None
    ) -> list[FileEntry]:
        if not self._v.record.is_final:
            raise StateError(f"dataset {self._v.id} is not finalized; {action} a finalized version")
        return select(self._v.table().values(), part, num_parts, files, self._v.id)
