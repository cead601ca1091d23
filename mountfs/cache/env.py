"""The one LMDB environment of a cache directory, shared by every cache table.

``mountfs/cache/`` is the only package that opens LMDB (DESIGN.md §2), and this
module is the only place in it that calls ``lmdb.open``.  A cache directory
looks like this::

    <dir>/index/data.mdb, lock.mdb   the LMDB environment (this module)
    <dir>/chunks/<hex[:2]>/<hex>     chunk bytes, several chunks per file (chunks.py)
    <dir>/tmp/                       temp files being written; swept here on first open
    <dir>/leases/<token>             locked by each live process using file tables (filetable.py)

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

A folder this user cannot write (its mode, a read-only mount) is
:class:`LocalDiskError`, a full disk or quota :class:`DiskFull`: nothing is
wrong with what the folder holds (it may hold complete local copies), so the
advice never is to remove it.

The map grows.  :data:`MAP_SIZE` is sparse and far beyond what an index of
chunks and file tables needs, yet a reader stuck in an old snapshot (a hung
process) keeps every page freed after it, and file tables of millions of files
add up: a write that finds the map full (``MapFullError``) doubles it, up to
:data:`MAX_MAP_SIZE`, and runs again (:meth:`CacheEnv.write`).  LMDB remaps the
file on a resize, which no transaction of this process may see, so every
transaction passes a gate (:meth:`CacheEnv.begin`) that a resize closes while
it waits for the open ones to end; passing it takes no lock (an append and a
pop on a list), under 0.1 us of a transaction's 2 us.  Another process adopts the bigger map
when its next transaction begins (``MapResizedError``).  Only past
:data:`MAX_MAP_SIZE` is a full map an error (:class:`DiskFull`, naming
`mountfs cache clear`, which empties the chunk index and the file tables).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

import lmdb

from ..errors import CacheUnusable, DiskFull, LocalDiskError, MountfsError

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Version of the directory layout and of the shared ``meta`` keys.  Bump it
#: when an older mountfs could misread what a newer one writes.
LAYOUT_VERSION = 2

#: The map a process opens with; sparse on Linux: the file grows only as pages are used.
MAP_SIZE = 64 << 30
#: A full map doubles up to this; beyond it a write raises :class:`DiskFull`.
MAX_MAP_SIZE = 1 << 40
#: How long a resize waits for the other threads' transactions to end (they are
#: short; a thread that nests one would otherwise wait for itself forever).
RESIZE_WAIT = 10.0
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
#: errno values meaning the disk (or this user's quota) is full
FULL = (errno.ENOSPC, errno.EDQUOT)


#: free bytes below which a failed LMDB write means a full disk (see :func:`disk_full`)
NEARLY_FULL = 1 << 20


def disk_full(exc: BaseException, folder: str | None = None) -> bool:
    """Whether ``exc`` says the local disk or quota under ``folder`` is full (an
    OSError or LMDB's own error).

    LMDB reports a short write of its pages as EIO ("TODO: Use which error
    code?" in ``mdb_page_flush``), and a write to a nearly full disk is short
    rather than failing with ENOSPC: so an LMDB I/O error on a file system with
    less than :data:`NEARLY_FULL` free counts as a full disk too."""
    if isinstance(exc, OSError):
        return exc.errno in FULL
    if not isinstance(exc, lmdb.Error):
        return False
    if isinstance(exc, lmdb.DiskError) or any(os.strerror(e) in str(exc) for e in FULL):
        return True
    if folder is not None and os.strerror(errno.EIO) in str(exc):
        try:
            st = os.statvfs(folder)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < NEARLY_FULL
    return False


def no_space(directory: str) -> DiskFull:
    """The error for a full disk under cache ``directory``."""
    return DiskFull(f"no space left in the cache at {directory}: free some disk space "
                    f"or lower the cache size (MOUNTFS_CACHE_SIZE)")


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


class _MapFull(DiskFull):
    """A write found the map full (:meth:`CacheEnv.write` grows it and runs again)."""


class CacheEnv:
    """One open LMDB environment plus its named sub-databases.

    Get one from :func:`open_env` and give it back with :func:`release_env`;
    never construct it directly.  Transactions must be short (one call of a
    cache method) and must not be nested within one thread.
    """

    def __init__(self, directory: str, sync: bool = True) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._refs = 0
        self._dbs: dict[str, Any] = {}
        # mdb_dbi_open must not run concurrently in one process.
        self._db_lock = threading.Lock()
        # The resize gate (module docstring).  Each open transaction of this
        # process holds one item of _open.  list.append and list.pop are each one
        # atomic step under the GIL, so passing the gate takes no lock: a thread
        # appends, then looks at _closing; a resize sets _closing, then waits for
        # _open to empty; so one of the two always sees the other.
        self._open: list[None] = []
        self._closing = False
        self._reopened = threading.Event()
        self._reopened.set()
        self._resize_lock = threading.Lock()  # one resize at a time
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
                # a writable copy's upper layer (cache/upper.py) commits every file operation and
                # makes them durable only when fsync asks (flush()): a killed process loses nothing
                # committed, a power cut what no fsync covered
                sync=sync,
            )
        except lmdb.Error as exc:
            if not _writable(path):
                raise not_writable(directory, exc) from None
            if disk_full(exc, directory):
                raise no_space(directory) from exc
            raise _unusable(directory, f"its index does not open ({exc})") from exc
        #: this process's map size (LMDB raises MAP_SIZE to what the file already holds)
        self.map_size: int = self._env.info()["map_size"]
        try:
            self._check_layout()
        except BaseException:
            self._env.close()
            raise

    def _check_layout(self) -> None:
        meta: Any = None

        def check(txn: lmdb.Transaction) -> None:
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
                    f"its layout version is {bytes(found).decode(errors='replace')}, "
                    f"this mountfs reads version {LAYOUT_VERSION}",
                    "use the mountfs that wrote it, or set MOUNTFS_CACHE_DIR to another folder",
                )

        try:
            meta = self.db("meta")
            self.write(check)
        except MountfsError:
            raise
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
        if os.path.isdir(chunk_dir):  # not on a second run of this after the map grew
            os.makedirs(os.path.join(self.directory, "tmp"), exist_ok=True)
            os.rename(chunk_dir, os.path.join(self.directory, "tmp", f"trash-layout1-{os.getpid()}"))
        txn.put(_LAYOUT_KEY, str(LAYOUT_VERSION).encode(), db=meta)

    @property
    def env(self) -> lmdb.Environment:
        """The LMDB environment; raises :class:`CacheUnusable` in a forked child.

        Use it for handles only: a transaction begun on it directly bypasses
        the resize gate (:meth:`begin`)."""
        if self.pid != _pid:
            raise _unusable(self.directory, "it was opened before fork() in the parent process",
                            "open the cache in the child after fork(), or use the 'spawn' start method")
        return self._env

    @contextlib.contextmanager
    def begin(self, write: bool = False) -> Iterator[lmdb.Transaction]:
        """A transaction committed on success, aborted on error; damage becomes
        :class:`CacheUnusable`, a full map or disk :class:`DiskFull`.  Keep it short
        and never nest txns in a thread.  Writes go through :meth:`write`, which
        grows a full map; a write begun here gets :class:`DiskFull` instead."""
        env = self.env
        while True:
            self._enter()
            try:
                txn = env.begin(write=write)
                break
            except lmdb.MapResizedError:
                # another process grew the map beyond ours: adopt its size, begin again
                self._leave()
                if not self._resize(lambda size: 0):
                    raise LocalDiskError(
                        f"the cache index {os.path.join(self.directory, 'index')} grew in another process "
                        f"and this one could not follow within {RESIZE_WAIT:g} s: try again") from None
            except BaseException:
                self._leave()
                raise
        try:
            with txn:
                yield txn
        except lmdb.MapFullError as exc:
            raise self._full() from exc
        except _DAMAGED as exc:
            raise _unusable(self.directory, f"its index is damaged ({exc})") from exc
        except lmdb.Error as exc:
            if disk_full(exc, self.directory):
                raise no_space(self.directory) from exc
            raise
        finally:
            self._leave()

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """``fn(txn)`` in a write transaction, committed; its result.

        If the map is full, the map grows and ``fn`` runs again in a new
        transaction (what it did to the index was rolled back; anything else it
        did, it must cope with seeing done).  Raises :class:`DiskFull` when the
        map may grow no further or the disk is full."""
        while True:
            seen = self.map_size
            try:
                with self.begin(write=True) as txn:
                    return fn(txn)
            except _MapFull:
                if not self._grow(seen):
                    raise

    def _grow(self, seen: int) -> bool:
        """Double a map found full at size ``seen`` (unless another thread did
        meanwhile); False if it may not grow or this process's transactions did not end."""
        def bigger(size: int) -> int | None:
            if size > seen:
                return None  # grown already
            return min(2 * size, MAX_MAP_SIZE) if size < MAX_MAP_SIZE else None

        if self.map_size >= MAX_MAP_SIZE and self.map_size <= seen:
            return False
        old = self.map_size
        if not self._resize(bigger):
            return False
        if self.map_size > old:
            log.info("cache index %s: map grown to %s", self.directory, _gib(self.map_size))
        return self.map_size > seen

    def _resize(self, new_size: Callable[[int], int | None]) -> bool:
        """Close the gate, wait for this process's transactions to end, then set the
        map to ``new_size(current)`` (``None``: leave it; ``0``: adopt the file's);
        False if they did not end within :data:`RESIZE_WAIT`."""
        with self._resize_lock:
            self._reopened.clear()
            self._closing = True
            try:
                deadline = time.monotonic() + RESIZE_WAIT
                while self._open:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.001)  # transactions are short; resizes are rare
                size = new_size(self.map_size)
                if size is not None:
                    self._env.set_mapsize(size)
                    self.map_size = self._env.info()["map_size"]
                return True
            finally:
                self._closing = False
                self._reopened.set()

    def _enter(self) -> None:
        while True:
            self._open.append(None)
            if not self._closing:
                return
            self._open.pop()  # a resize is waiting: let it run, then try again
            self._reopened.wait()

    def _leave(self) -> None:
        self._open.pop()

    def _full(self) -> _MapFull:
        return _MapFull(
            f"the cache index {os.path.join(self.directory, 'index')} is full "
            f"({_gib(self.map_size)}): run `mountfs cache clear` (cached chunks are fetched again; "
            f"local copies are kept), or set MOUNTFS_CACHE_DIR to another folder"
        )

    def flush(self) -> None:
        """Make every committed transaction durable (``fsync``), for environments opened with ``sync=False``."""
        self.env.sync(True)

    def db(self, name: str, **flags: Any) -> Any:
        """The named sub-database ``name`` (created if missing), opened once per process."""
        handle = self._dbs.get(name)
        if handle is None:
            with self._db_lock:
                handle = self._dbs.get(name)
                if handle is None:
                    # creating it is a write (and a handle is valid once its txn commits)
                    handle = self.write(lambda txn: self.env.open_db(name.encode(), txn=txn, create=True, **flags))
                    self._dbs[name] = handle
        return handle


def _gib(size: int) -> str:
    return f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else f"{size / (1 << 20):g} MiB"


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


def open_env(directory: str, sync: bool = True) -> CacheEnv:
    """Open (or share) the environment of cache ``directory``; pair with :func:`release_env`.

    ``sync=False``: commits are not fsynced until :meth:`CacheEnv.flush` (the first opening decides)."""
    key = os.path.realpath(directory)
    with _registry_lock:
        cenv = _registry.get(key)
        if cenv is None:
            cenv = CacheEnv(key, sync)
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
