"""The one LMDB environment of a cache directory, shared by every cache table.

``mountfs/cache/`` is the only package that opens LMDB (DESIGN.md §2), and this
module is the only place in it that calls ``lmdb.open``.  A cache directory
looks like this::

    <dir>/index/data.mdb, lock.mdb   the LMDB environment (this module)
    <dir>/chunks/<hex[:2]>/<hex>     chunk bytes, several chunks per file (chunks.py)
    <dir>/tmp/                       temp files being written; swept here on first open

Sub-databases are named; each table module opens its own with
:meth:`CacheEnv.db`.  ``meta`` is shared: keys are prefixed by their owner
(``layout``, ``chunks.bytes``, ...).

LMDB forbids opening one environment twice in a process (its fcntl locks are
per process), so :func:`open_env` hands out one reference-counted
:class:`CacheEnv` per directory.  The CLI and the daemon are different
processes using the same directory: LMDB's own locking (``lock=True``)
serialises their writers.  An environment opened before ``fork()`` cannot be
used, closed or reopened in the child without corrupting the parent's reader
table, so in a forked child it raises :class:`CacheUnusable`; open caches after
forking, or use the ``spawn`` start method.

A folder this user cannot write (its mode, a read-only mount) and a full map
are :class:`LocalDiskError`: nothing is wrong with what the folder holds (it
may hold complete local copies), so the advice never is to remove it.  The map
does not grow: :data:`MAP_SIZE` is sparse and far beyond what an index of
chunks and file tables needs, and growing it would mean stopping every
transaction of every process using the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
from typing import Any, Iterator

import lmdb

from ..errors import CacheUnusable, LocalDiskError

#: Version of the directory layout and of the shared ``meta`` keys.  Bump it
#: when an older mountfs could misread what a newer one writes.
LAYOUT_VERSION = 2

#: Sparse on Linux: the file grows only as pages are used.
MAP_SIZE = 64 << 30
MAX_DBS = 16
#: Every thread of the daemon with an open read transaction holds a slot.
MAX_READERS = 512

_LAYOUT_KEY = b"layout"
_TMP_STALE = 3600.0  # a temp file this old belongs to a crashed writer
#: LMDB errors that mean the files are damaged, not that the call was wrong.
_DAMAGED = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError,
            lmdb.VersionMismatchError, lmdb.PanicError)
#: errno values meaning this user may not write there (mode bits, a read-only mount)
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _unusable(directory: str, why: str, fix: str | None = None) -> CacheUnusable:
    """The error for an index that cannot be read; the default fix rebuilds only
    what can be fetched again (`mountfs cache clear` itself cannot open such an index)."""
    if fix is None:
        fix = (f"stop what uses it, then remove {os.path.join(directory, 'index')} and "
               f"{os.path.join(directory, 'chunks')} (cached chunks are fetched again; "
               f"local copies in {os.path.join(directory, 'copies')} are kept)")
    return CacheUnusable(f"the cache at {directory} cannot be used: {why}; {fix}")


def not_writable(directory: str, exc: BaseException) -> LocalDiskError:
    """The error for a cache folder this user cannot write; what it holds is fine."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return LocalDiskError(
        f"the cache folder {directory} is not writable ({why}): make it writable for this user, "
        f"or set MOUNTFS_CACHE_DIR (cache_dir in the config file) to a folder that is"
    )


def _writable(path: str) -> bool:
    """Whether this process may write the folder ``path`` and the files in it."""
    effective = os.access in os.supports_effective_ids
    names = [path] + [os.path.join(path, n) for n in ("data.mdb", "lock.mdb")]
    return all(os.access(n, os.W_OK, effective_ids=effective) for n in names if os.path.exists(n))


class CacheEnv:
    """One open LMDB environment plus its named sub-databases.

    Get one from :func:`open_env` and give it back with :func:`release_env`;
    never construct it directly.  Transactions must be short (one call of a
    cache method) and must not be nested within one thread.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._refs = 0
        self._dbs: dict[str, Any] = {}
        # mdb_dbi_open must not run concurrently in one process.
        self._db_lock = threading.Lock()
        path = os.path.join(directory, "index")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            if exc.errno not in DENIED:
                raise
            raise not_writable(directory, exc) from None
        try:
            self._env = lmdb.open(
                path,
                map_size=MAP_SIZE,
                max_dbs=MAX_DBS,
                max_readers=MAX_READERS,
                lock=True,
                # One fsync per commit instead of two: a power cut may lose the
                # last commit but never breaks the B-tree (ACI, not D), and the
                # cache tolerates a lost index entry.
                metasync=False,
            )
        except lmdb.Error as exc:
            if not _writable(path):
                raise not_writable(directory, exc) from None
            raise _unusable(directory, f"its index does not open ({exc})") from exc
        try:
            self._check_layout()
        except BaseException:
            self._env.close()
            raise

    def _check_layout(self) -> None:
        try:
            meta = self.db("meta")
            with self._env.begin(write=True) as txn:
                found = txn.get(_LAYOUT_KEY, db=meta)
                if found is None:
                    if txn.stat(meta)["entries"] or len(self._env.dbs(txn)) > 1:
                        # Data without a layout key: not ours, or half-written.
                        raise _unusable(self.directory, "its index has no layout version")
                    txn.put(_LAYOUT_KEY, str(LAYOUT_VERSION).encode(), db=meta)
                elif found == b"1":
                    self._upgrade_from_1(txn, meta)
                elif found != str(LAYOUT_VERSION).encode():
                    raise _unusable(
                        self.directory,
                        f"its layout version is {found.decode(errors='replace')}, "
                        f"this mountfs reads version {LAYOUT_VERSION}",
                        "use the mountfs that wrote it, or set MOUNTFS_CACHE_DIR to another folder",
                    )
        except lmdb.MapFullError as exc:
            raise self._full() from exc
        except lmdb.Error as exc:
            raise _unusable(self.directory, f"its index is damaged ({exc})") from exc

    def _upgrade_from_1(self, txn: lmdb.Transaction, meta: Any) -> None:
        """Layout 1 kept one file per chunk; layout 2 files hold many chunks.  A
        cache may forget: the old chunks are dropped, file tables stay."""
        for name in (b"chunks", b"lru"):
            txn.drop(self._env.open_db(name, txn=txn, create=True), delete=False)
        for key in (b"chunks.bytes", b"chunks.count"):
            txn.delete(key, db=meta)
        chunk_dir = os.path.join(self.directory, "chunks")
        if os.path.isdir(chunk_dir):
            os.makedirs(os.path.join(self.directory, "tmp"), exist_ok=True)
            os.rename(chunk_dir, os.path.join(self.directory, "tmp", f"trash-layout1-{os.getpid()}"))
        txn.put(_LAYOUT_KEY, str(LAYOUT_VERSION).encode(), db=meta)

    @property
    def env(self) -> lmdb.Environment:
        """The LMDB environment; raises :class:`CacheUnusable` in a forked child."""
        if self.pid != _pid:
            raise _unusable(self.directory, "it was opened before fork() in the parent process",
                            "open the cache in the child after fork(), or use the 'spawn' start method")
        return self._env

    @contextlib.contextmanager
    def begin(self, write: bool = False) -> Iterator[lmdb.Transaction]:
        """A transaction committed on success, aborted on error; damage becomes
        :class:`CacheUnusable`, a full map :class:`LocalDiskError`.  Keep it short
        and never nest write txns in a thread."""
        try:
            with self.env.begin(write=write) as txn:
                yield txn
        except lmdb.MapFullError as exc:
            raise self._full() from exc
        except _DAMAGED as exc:
            raise _unusable(self.directory, f"its index is damaged ({exc})") from exc

    def _full(self) -> LocalDiskError:
        return LocalDiskError(
            f"the cache index {os.path.join(self.directory, 'index')} is full "
            f"({MAP_SIZE / (1 << 30):g} GiB): run `mountfs cache clear` (cached chunks are fetched again; "
            f"local copies are kept), or set MOUNTFS_CACHE_DIR to another folder"
        )

    def db(self, name: str, **flags: Any) -> Any:
        """The named sub-database ``name`` (created if missing), opened once per process."""
        handle = self._dbs.get(name)
        if handle is None:
            with self._db_lock:
                handle = self._dbs.get(name)
                if handle is None:
                    try:
                        handle = self.env.open_db(name.encode(), create=True, **flags)
                    except lmdb.MapFullError as exc:  # creating it is a write
                        raise self._full() from exc
                    self._dbs[name] = handle
        return handle


_registry: dict[str, CacheEnv] = {}
_registry_lock = threading.Lock()
_pid = os.getpid()


def _after_fork_in_child() -> None:
    # Entries stay in the registry so that opening the same directory again in
    # the child gives our clear error rather than py-lmdb's "already open".
    global _pid, _registry_lock
    _pid = os.getpid()
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def open_env(directory: str) -> CacheEnv:
    """Open (or share) the environment of cache ``directory``; pair with :func:`release_env`."""
    key = os.path.realpath(directory)
    with _registry_lock:
        cenv = _registry.get(key)
        if cenv is None:
            cenv = CacheEnv(key)
            _registry[key] = cenv
            _sweep_tmp(os.path.join(key, "tmp"))
        _ = cenv.env  # raises in a forked child
        cenv._refs += 1
        return cenv


def release_env(cenv: CacheEnv) -> None:
    """Drop one reference; the last one closes the environment."""
    with _registry_lock:
        cenv._refs -= 1
        if cenv._refs > 0:
            return
        if _registry.get(cenv.directory) is cenv:
            del _registry[cenv.directory]
        if cenv.pid == _pid:
            cenv._env.close()


def _sweep_tmp(tmp_dir: str) -> None:
    """Remove temp files (``<pid>.<random>.tmp``) and ``trash-*`` folders left by
    crashed writers or a crashed clear; once per process and directory."""
    now = time.time()
    with contextlib.suppress(FileNotFoundError):
        names = os.listdir(tmp_dir)
        for name in names:
            path = os.path.join(tmp_dir, name)
            if name.startswith("trash-"):
                shutil.rmtree(path, ignore_errors=True)
                continue
            with contextlib.suppress(OSError, ValueError):
                age = now - os.stat(path).st_mtime
                # A live pid may be in another pid namespace (a container), so
                # only age alone condemns a file whose writer seems alive.
                if age > _TMP_STALE or (age > 60 and not _alive(int(name.split(".")[0]))):
                    os.unlink(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    return True
