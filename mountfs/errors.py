"""The exception hierarchy of mountfs.

Every error a user can cause carries a one-line message that names the problem
and the fix. Only the CLI turns these into exit codes; the SDK raises them and
the daemon maps them to errno (see ``mountfs.fs``).
"""

from __future__ import annotations


class MountfsError(Exception):
    """Root of all mountfs errors: ``str(err)`` is the user-facing message."""

    exit_code = 1


class UsageError(MountfsError):
    """Bad input from the caller: a malformed name, version, path or option."""

    exit_code = 2


class ConfigError(MountfsError):
    """The configuration file or environment holds something unusable."""

    exit_code = 2


class NotFound(MountfsError):
    """A dataset, version or file that was asked for does not exist."""

    exit_code = 3


class StateError(MountfsError):
    """The operation does not fit the dataset's status (e.g. adding to a finalized one)."""

    exit_code = 4


class Conflict(MountfsError):
    """Someone else already owns what was asked for (e.g. a duplicate version)."""

    exit_code = 5


class IntegrityError(MountfsError):
    """Stored bytes do not match their digest: corrupted pack, chunk or manifest."""

    exit_code = 6


class SourceChanged(MountfsError):
    """A local or external source file changed while or after it was added."""

    exit_code = 7


class LocalDiskError(MountfsError):
    """Writing to local disk failed (full disk, permissions) while building a copy."""

    exit_code = 8


class CacheUnusable(MountfsError):
    """The cache directory's index is corrupt, from another layout, or not usable here."""

    exit_code = 10


# --- storage errors: backends map their service's errors onto these ---------


class StoreError(MountfsError):
    """A storage service failed in a way the caller should see."""

    exit_code = 9


class ObjectNotFound(StoreError):
    """The object does not exist in the store."""


class AlreadyExists(StoreError):
    """A conditional create found the object already there."""


class PermissionDenied(StoreError):
    """The credentials in use may not do this."""


class TransientStoreError(StoreError):
    """A failure worth retrying: timeouts, throttling, connection resets, 5xx."""


class DiskFull(LocalDiskError):
    """The local disk, the user's quota or the cache index is full (ENOSPC at a mount)."""


# --- conditions of a mount's tree (mountfs.fs maps them to their own errno) --


class IsADirectory(UsageError):
    """A file operation (a read) was asked of a directory (EISDIR at a mount)."""


class VersionGone(NotFound):
    """A version left the catalog (its pointer deleted) while a mount still held its inodes (ESTALE)."""


# --- ClearML parity ----------------------------------------------------------


class UnknownArgument(UsageError, TypeError, ValueError):
    """A keyword argument the call does not take: a TypeError as Python's own, a ValueError as ClearML raises."""


# --- garbage collection --------------------------------------------------------


class StoreLocked(Conflict):
    """Another process holds a lock on the store that this operation cannot share (gc vs. an upload)."""
