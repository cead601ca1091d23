"""The one table from mountfs errors to errno; anything unexpected is EIO."""

from __future__ import annotations

import errno
import logging

from .. import errors

log = logging.getLogger(__name__)

ERRNO: list[tuple[type[BaseException], int]] = [
    (errors.NotFound, errno.ENOENT),
    (errors.ObjectNotFound, errno.EIO),  # a pack missing from the store: damage, not absence
    (errors.PermissionDenied, errno.EACCES),
    (errors.IntegrityError, errno.EIO),
    (errors.StoreError, errno.EIO),
    (errors.SourceChanged, errno.EIO),
    (errors.StateError, errno.EROFS),
    (errors.UsageError, errno.EINVAL),
    (errors.LocalDiskError, errno.EIO),
    (errors.MountfsError, errno.EIO),
]


def errno_for(exc: BaseException, what: str) -> int:
    """errno for ``exc``; logs it (with a traceback when it was not a mountfs error)."""
    for cls, code in ERRNO:
        if isinstance(exc, cls):
            if code == errno.EIO:
                log.error("%s: %s", what, exc)
            return code
    log.error("%s: unexpected error", what, exc_info=exc)
    return errno.EIO
