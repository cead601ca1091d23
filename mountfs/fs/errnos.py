"""The one table from mountfs errors to errno (docs/SEMANTICS.md); anything unexpected is EIO.

The first row whose class the error is an instance of wins, so a subclass
comes before its base.
"""

from __future__ import annotations

import errno
import logging

from .. import errors

log = logging.getLogger(__name__)

ERRNO: list[tuple[type[BaseException], int]] = [
    # the kernel may still hold inodes of a version that left the catalog (an open folder, a cwd)
    (errors.VersionGone, errno.ESTALE),
    (errors.NotFound, errno.ENOENT),
    # a pack, or an external file's source, missing from where it is read: the file is
    # listed (its stat succeeded) but its bytes are not there.  That is damage, not
    # absence: EIO, as mountpoint-s3 fails reads of an object deleted behind it
    (errors.ObjectNotFound, errno.EIO),
    # a source or store the operator's policy (or the credentials) refuse
    (errors.PermissionDenied, errno.EACCES),
    (errors.IntegrityError, errno.EIO),
    (errors.StoreError, errno.EIO),  # includes the 10 s read deadline (TransientStoreError)
    (errors.SourceChanged, errno.EIO),
    (errors.StateError, errno.EROFS),
    (errors.IsADirectory, errno.EISDIR),
    (errors.UsageError, errno.EINVAL),
    # the cache's disk (or quota) is full where nothing can be served without writing
    (errors.DiskFull, errno.ENOSPC),
    (errors.LocalDiskError, errno.EIO),
    (errors.MountfsError, errno.EIO),
]


def errno_for(exc: BaseException, what: str) -> int:
    """errno for ``exc``; logs it (with a traceback when it was not a mountfs error)."""
    for cls, code in ERRNO:
        if isinstance(exc, cls):
            if code in (errno.EIO, errno.ENOSPC):
                log.error("%s: %s", what, exc)
            return code
    log.error("%s: unexpected error", what, exc_info=exc)
    return errno.EIO
