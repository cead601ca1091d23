"""mountfs/fs/errnos.py: the one table from mountfs errors to errno (docs/SEMANTICS.md, "Errors"), without a kernel.

What a real mount answers for each errno is checked in tests/daemon/test_semantics.py;
here every error class is checked against the table, including classes added later.
"""

from __future__ import annotations

import errno
import inspect
import logging

import pytest

from mountfs import errors
from mountfs.fs.errnos import errno_for

# docs/SEMANTICS.md's errno table, written out by class: the test's own copy, not ERRNO's
EXPECTED: dict[type[BaseException], int] = {
    errors.VersionGone: errno.ESTALE,  # an inode of a version that left the catalog
    errors.NotFound: errno.ENOENT,  # no such name
    errors.ObjectNotFound: errno.EIO,  # a pack or external source missing: damage, not absence
    errors.PermissionDenied: errno.EACCES,  # a source or store the policy refuses
    errors.IntegrityError: errno.EIO,  # damaged data
    errors.TransientStoreError: errno.EIO,  # the 10 s read deadline, store errors after retries
    errors.StoreError: errno.EIO,
    errors.SourceChanged: errno.EIO,  # an external source changed since it was added
    errors.StateError: errno.EROFS,
    errors.IsADirectory: errno.EISDIR,  # read() of a folder
    errors.UsageError: errno.EINVAL,
    errors.DiskFull: errno.ENOSPC,  # the cache's disk full while a table is imported
    errors.LocalDiskError: errno.EIO,
    errors.MountfsError: errno.EIO,
}

ALL_CLASSES = sorted((c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.MountfsError)),
                     key=lambda c: c.__name__)


def _expected(cls: type[BaseException]) -> int:
    """The errno of the nearest class in the table: a class appended to errors.py inherits its base's."""
    return next(EXPECTED[base] for base in cls.__mro__ if base in EXPECTED)


@pytest.mark.allow_warnings  # EIO and ENOSPC are logged at ERROR
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_has_the_errno_of_the_table(cls: type[errors.MountfsError]) -> None:
    assert errno_for(cls("boom"), "read ino=5") == _expected(cls)


@pytest.mark.allow_warnings
@pytest.mark.parametrize("exc", [RuntimeError("bug"), KeyError("k"), OSError(errno.ENOENT, "a local file"),
                                 ValueError("bad")], ids=lambda e: type(e).__name__)
def test_anything_unexpected_is_eio_with_a_traceback(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    # an OSError from inside the daemon is not the caller's ENOENT: the file is listed, so it is damage
    assert errno_for(exc, "lookup 'x'") == errno.EIO
    [rec] = [r for r in caplog.records if r.name == "mountfs.fs.errnos"]
    assert rec.levelno == logging.ERROR and "lookup 'x': unexpected error" in rec.getMessage()
    assert rec.exc_info is not None and rec.exc_info[1] is exc


@pytest.mark.allow_warnings
def test_eio_and_enospc_are_logged_the_callers_own_errors_are_not(caplog: pytest.LogCaptureFixture) -> None:
    errno_for(errors.NotFound("no such name"), "lookup 'a'")
    errno_for(errors.VersionGone("left"), "getattr 7")
    errno_for(errors.PermissionDenied("refused"), "read ino=3")
    assert [r for r in caplog.records if r.name == "mountfs.fs.errnos"] == []
    errno_for(errors.IntegrityError("chunk damaged"), "read ino=9 off=0 size=10")
    errno_for(errors.DiskFull("no space left"), "lookup 'v'")
    logged = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records if r.name == "mountfs.fs.errnos"]
    assert logged == [(logging.ERROR, "read ino=9 off=0 size=10: chunk damaged", None),
                      (logging.ERROR, "lookup 'v': no space left", None)]
