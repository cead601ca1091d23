"""Running one FUSE mount: the catalog (``mountfsd``) or a single version (``mountfs mount``)."""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

import pyfuse3
import trio

from ..cache.filetable import KIND_DIR, FileTables
from ..catalog import DatasetRecord
from ..config import Config
from ..errors import MountfsError, UsageError
from ..fs.namespace import Namespace
from ..cache import upper
from ..fs.operations import NO_OPEN_SUPPORTED, Operations
from ..fs.overlay import Overlay
from ..fs.writable import WritableOperations
from ..fs.reader import Reader
from ..fs.tree import KIND_LINK, ROOT, Tree
from ..session import Session
from ..store import ChunkRef, Store
from . import control, mounts
from .writable import WritableCopy

log = logging.getLogger(__name__)

#: how often the catalog is re-read, so new versions appear within seconds
REFRESH_SECONDS = 2.0
#: the longest wait between refreshes while the store cannot be reached
REFRESH_MAX_SECONDS = 30.0
WARMUP_BATCH = 64 << 20


def _sd_notify(cfg: Config, message: str) -> None:
    addr = cfg.notify_socket
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(addr)
            s.sendall(message.encode())
        except OSError as exc:
            log.info("sd_notify failed: %s", exc)


@dataclass
class RefreshStats:
    """How the catalog refreshes are going (``mountfs status``; tests wait on these counters)."""

    #: refreshes that read the catalog, whether or not it had changed
    refreshes: int = 0
    #: refreshes that failed, in all
    failures: int = 0
    #: the error of the refresh that failed last, while refreshes are failing ("" once one works)
    error: str = ""
    #: file tables of versions that left the catalog, dropped from the cache
    tables_dropped: int = 0
    #: when the catalog last read without error (time.time(); 0 = never)
    last_ok: float = 0.0


class Daemon:
    """Owns the tree, the reader and the mount for one mountpoint."""

    def __init__(self, session: Session, mountpoint: str, dataset_id: str | None = None, debug: bool = False,
                 writable: bool = False, nonempty: bool = False):
        self.sess = session
        self.cfg = session.config
        self.mountpoint = os.path.realpath(mountpoint)
        self.dataset_id = dataset_id
        self.debug = debug
        #: mount over a folder that has files in it (they are hidden while mounted)
        self.nonempty = nonempty
        #: this daemon made the mountpoint, so it removes it again after the unmount
        self.created_mountpoint = False
        self.runtime = mounts.RuntimeFiles(self.cfg.run_dir, self.mountpoint)
        self.started = time.time()
        self.tables = FileTables(self.cfg.cache_dir)
        single = session.catalog.get(dataset_id) if dataset_id else None
        if writable and single is None:
            raise UsageError("a writable copy needs --dataset <draft id>")
        #: a draft's writable copy (``writable.WritableCopy``), or None for a read-only mount
        self.copy: WritableCopy | None = None
        #: the version a writable copy was closed into (the daemon then stops)
        self.closed: DatasetRecord | None = None
        if single is not None and not single.is_final and not writable:
            raise UsageError(f"dataset {dataset_id} is not finalized; only finalized versions can be mounted")
        self.namespace = None if single else Namespace(session.catalog)
        # a root mount gets allow_other: other users read through it, so what a
        # store writer chose (external sources, a version's own store) is read
        # under the policy for serving others (SourcePolicy)
        self.serving_others = os.geteuid() == 0
        if writable:
            assert single is not None
            self.copy = WritableCopy(session, self.tables, single)
        self.tree = Tree(self.tables, self._store_for, self.namespace, single,
                         self.copy.vk if self.copy is not None else None)
        self.reader: Reader | None = None
        #: whether the FUSE thread got realtime scheduling (``mounts.realtime_thread``)
        self.realtime = False
        self.refresh = RefreshStats()
        #: dataset ids whose file tables to keep, when a drop of the others is due
        self._keep: set[str] | None = None

    def _store_for(self, record: DatasetRecord) -> Store:
        """The store of a version's packs: a record's ``storage`` is checked like an external source."""
        if record.storage:
            self.sess.source_policy(self.serving_others).check(record.storage, what=f"the store of version {record.id}")
        return self.sess.store(record.storage)

    # --- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        """Mount, serve until unmounted or signalled, then clean up."""
        inherited = mounts.created_by_a_dead_daemon(self.runtime)
        if not os.path.isdir(self.mountpoint):
            mounts.clean_stale(self.mountpoint)
        if mounts.mounted_fuse(self.mountpoint) and not mounts.clean_stale(self.mountpoint):
            raise UsageError(f"{self.mountpoint} is already mounted; run `mountfs umount {self.mountpoint}` first")
        if mounts.check_mountpoint(self.mountpoint, self.nonempty):
            mounts.create_mountpoint(self.mountpoint)
            self.created_mountpoint = True
            log.info("created mountpoint %s (removed again at unmount)", self.mountpoint)
        elif inherited:
            self.created_mountpoint = True
            log.info("mountpoint %s was created by a daemon that was killed; removed again at unmount",
                     self.mountpoint)
        try:
            self.runtime.prepare()
            trio.run(self._main)
        finally:
            self.runtime.remove()
            if self.created_mountpoint:  # unmounted by now; only an empty folder goes
                mounts.remove_mountpoint(self.mountpoint)
            if self.copy is not None:
                self.copy.close()
                self.tables.drop(self.copy.vk)  # imported again at the next mount
                if self.closed is not None:  # the version holds it all now
                    upper.discard(self.cfg.cache_dir, self.closed.id)
            self.tables.close()

    async def _main(self) -> None:
        if self.namespace is not None:
            # the first refresh before mounting, so the mount shows the catalog from the start;
            # if it fails the mount still comes up (.by-id alone) and the refresher keeps trying.
            # Dropping the tables of versions gone since the last run waits for the refresher
            await self._refresh_logged(drop_tables=False)
        async with trio.open_nursery() as nursery:
            source = functools.partial(self.sess.source, serving_others=self.serving_others)
            self.reader = Reader(self.tree, self.sess.cache, nursery, source=source)
            await self.tree.start()
            ops: pyfuse3.Operations
            # nosuid, nodev: whatever modes a store holds, nothing in the mount gains privileges;
            # pyfuse3.default_options holds default_permissions: the kernel enforces the modes for every user
            options = set(pyfuse3.default_options) | {"fsname=" + mounts.FSNAME, "subtype=mountfs",
                                                      "nosuid", "nodev"}
            if self.copy is not None:
                self.copy.overlay = Overlay(self.copy.upper, self.tables, self.copy.vk, self.reader.read,
                                            os.geteuid(), os.getegid())
                ops = WritableOperations(self.copy.overlay)
            else:
                ops = Operations(self.tree, self.reader)
                options.add("ro")
            if self.serving_others:
                options.add("allow_other")
            pyfuse3.init(ops, self.mountpoint, options)
            mounted = True
            try:
                await nursery.start(control.serve, self.runtime.socket, self._control, self.cfg.control_group)
                self.runtime.write_info({
                    "pid": os.getpid(), "mountpoint": self.mountpoint, "socket": self.runtime.socket,
                    "dataset": self.dataset_id or "", "store": self.sess.catalog_url, "started": self.started,
                    "created_mountpoint": self.created_mountpoint,
                })
                nursery.start_soon(self._signals)
                if self.namespace is not None:
                    nursery.start_soon(self._refresher)
                # pyfuse3.main() answers requests in this thread
                self.realtime = self.cfg.realtime and mounts.realtime_thread()
                nursery.start_soon(self._after_mount, getattr(ops, "no_open", False))
                await pyfuse3.main()
            finally:
                _sd_notify(self.cfg, "STOPPING=1")
                pyfuse3.close(unmount=mounted)
                nursery.cancel_scope.cancel()
                log.info("unmounted mountpoint=%s", self.mountpoint)

    async def _after_mount(self, no_open: bool) -> None:
        # anything touching the mountpoint needs pyfuse3.main() running to be answered
        read_ahead = False
        if os.geteuid() == 0:
            read_ahead = await trio.to_thread.run_sync(mounts.raise_read_ahead, self.mountpoint)
        log.info(
            "mounted mountpoint=%s dataset=%s store=%s no_open=%s read_ahead_1m=%s realtime=%s",
            self.mountpoint, self.dataset_id or "catalog", self.sess.catalog_url, no_open, read_ahead, self.realtime,
        )
        if self.cfg.realtime and not self.realtime:
            log.info("the FUSE thread runs at normal priority: realtime scheduling needs root or CAP_SYS_NICE")
        _sd_notify(self.cfg, "READY=1")

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for sig in signals:
                log.info("signal=%s: unmounting", signal.Signals(sig).name)
                pyfuse3.terminate()
                return

    async def _refresher(self) -> None:
        delay = REFRESH_SECONDS
        while True:
            await trio.sleep(delay)
            ok = await self._refresh_logged()
            # a failing store is retried with backoff, a working one every REFRESH_SECONDS
            delay = REFRESH_SECONDS if ok else min(delay * 2, REFRESH_MAX_SECONDS)

    async def _refresh_logged(self, drop_tables: bool = True) -> bool:
        """One refresh; any failure is logged once per run of failures and counted, never raised."""
        failing = bool(self.refresh.error)
        try:
            await self._refresh_once(drop_tables)
        except Exception as exc:
            self.refresh.failures += 1
            self.refresh.error = str(exc) or type(exc).__name__
            # reported once, then retried: a warning every 2 s would bury everything else in the log
            if not failing:
                what = ("catalog refresh failed (versions already mounted are still served; "
                        f"retrying every {REFRESH_MAX_SECONDS:.0f} s at most)")
                if isinstance(exc, MountfsError):
                    log.warning("%s: %s", what, exc)
                else:
                    log.error("%s: unexpected error", what, exc_info=exc)
            return False
        if failing:
            log.info("catalog refresh works again")
        self.refresh.error = ""
        return True

    async def _refresh_once(self, drop_tables: bool) -> None:
        """Build the next snapshot off the loop, publish it in the loop, drop the tables of versions that left.

        Catalog levels and version roots carry a 1 s entry/attr timeout and
        directory listings are not cached by the kernel, so the new snapshot
        needs no invalidation: the kernel asks again within a second.
        """
        assert self.namespace is not None
        snapshot = await trio.to_thread.run_sync(self.namespace.build)
        if snapshot is not None:
            self._keep = self.tree.publish(snapshot)  # one assignment, here in the event loop
        elif self.refresh.last_ok == 0.0:
            self._keep = set(self.namespace.current.records)  # first look: tables left by earlier runs
        self.refresh.refreshes += 1
        self.refresh.last_ok = time.time()
        if drop_tables and self._keep is not None:
            keep, self._keep = self._keep, None
            try:
                dropped = await trio.to_thread.run_sync(self.tables.retain, keep)
            except BaseException:
                self._keep = keep  # due again at the next refresh
                raise
            if dropped:
                log.info("dropped the file tables of %d versions no longer in the catalog", dropped)
                self.refresh.tables_dropped += dropped

    # --- control requests ------------------------------------------------------------------

    async def _control(self, req: dict[str, Any], send: control.Send) -> dict[str, Any]:
        op = req.get("op")
        if op == "status":
            return self.status()
        if op == "stop":
            pyfuse3.terminate()
            return {"stopping": True}
        if op == "warmup":
            return await self._warmup(str(req.get("path", "")), send)
        if op in ("diff", "close"):
            if self.copy is None:
                raise UsageError(f"{self.mountpoint} is a read-only mount, not a writable copy")
            if op == "diff":
                return self.copy.diff().as_dict()
            record, changes = await self.copy.finish()
            self.closed = record  # the copy stays frozen; `mountfs close` unmounts it next
            return {"id": record.id, "project": record.project, "name": record.name, "version": record.version,
                    **changes.as_dict()}
        raise UsageError(f"unknown control request {op!r}")

    def status(self) -> dict[str, Any]:
        stats = self.reader.stats if self.reader else None
        cache = self.sess.cache.stats()
        out: dict[str, Any] = {
            "pid": os.getpid(),
            "mountpoint": self.mountpoint,
            "dataset": self.dataset_id or "",
            # what a single-version mount serves, for people (empty for the catalog)
            "project": self.tree.single.project if self.tree.single else "",
            "name": self.tree.single.name if self.tree.single else "",
            "version": self.tree.single.version if self.tree.single else "",
            "store": self.sess.catalog_url,
            "uptime": round(time.time() - self.started, 1),
            "no_open": NO_OPEN_SUPPORTED,
            "realtime": self.realtime,
            "versions_mounted": [m.record.id for m in self.tree.mounted()],
            "reads": stats.reads if stats else 0,
            "read_hits": stats.hits if stats else 0,
            "chunk_misses": stats.misses if stats else 0,
            "read_ahead_hits": stats.hot_hits if stats else 0,
            "read_ahead_from_cache": stats.cache_loads if stats else 0,
            "bytes_read": stats.bytes_read if stats else 0,
            "bytes_fetched": stats.bytes_fetched if stats else 0,
            "fetches": stats.fetches if stats else 0,
            "fetch_errors": stats.errors if stats else 0,
            # reads that gave up on the store at their deadline (EIO)
            "read_timeouts": stats.timeouts if stats else 0,
            "inflight_fetches": stats.inflight if stats else 0,
            # read-ahead that follows the access pattern (mountfs/fs/reader.py): opens in path
            # order or not, folder batches, blocks taken along by shuffled misses, the two fetch
            # pools, read-ahead moved ahead for a waiting read, sequential windows (chunks)
            "read_pattern": {k: getattr(stats, k, 0) if stats else 0 for k in (
                "opens_in_order", "opens_shuffled", "dir_batches", "taken_blocks", "fetches_demand",
                "fetches_ahead", "promoted", "window_grows", "window_max")},
            # cache["corrupt"]: chunks read back from the cache that failed their digest (fetched again)
            "cache": cache,
        }
        if self.copy is not None:
            out["writable"] = self.copy.pending()
        if self.namespace is not None:
            out["catalog"] = {"versions": len(self.namespace.current.records), **asdict(self.refresh)}
        return out

    async def _warmup(self, rel: str, send: control.Send) -> dict[str, Any]:
        """Fetch every chunk under ``rel`` (a path inside the mount) into the cache."""
        assert self.reader is not None
        ino = ROOT
        for part in [p for p in rel.split("/") if p and p != "."]:
            ino = (await self.tree.lookup(ino, part)).ino
        files: list[int] = []
        total = 0
        todo = [ino]
        seen: set[int] = set()
        while todo:
            cur = todo.pop()
            if cur in seen:  # a version reached twice (by name and through .by-id)
                continue
            seen.add(cur)
            attr = await self.tree.getattr(cur)
            if attr.kind == KIND_LINK:  # `latest`: its target is warmed up as the version it names
                continue
            if attr.kind != KIND_DIR:
                files.append(cur)
                total += attr.size
                continue
            pos = 0
            while True:
                entries = await self.tree.readdir(cur, pos)
                if not entries:
                    break
                for _, child, pos in entries:
                    todo.append(child.ino)
        await send({"progress": 0, "total": total, "files": len(files)})
        done = 0
        batch: list[ChunkRef] = []
        batch_bytes = 0
        store: Store | None = None
        # path order is pack order: batches become a few large ranged reads, fetched in parallel
        for ino in sorted(files):
            m, node = self.tree.file(ino)
            if batch and store is not None and m.store is not store:  # one batch per store
                await self.reader.fetch(store, batch)
                batch = []
            store = m.store
            # big files are cut into batches too: a batch is what one fetch() waits for
            for c in node.chunks:
                if not self.sess.cache.contains(c.digest):
                    batch.append(c)
                batch_bytes += c.size
                if batch_bytes >= WARMUP_BATCH:
                    await self.reader.fetch(store, batch)
                    done += batch_bytes
                    batch, batch_bytes = [], 0
                    await send({"progress": done, "total": total})
        if batch and store is not None:
            await self.reader.fetch(store, batch)
        await send({"progress": total, "total": total})
        return {"files": len(files), "bytes": total}


def _fewer_malloc_arenas() -> None:
    # glibc gives each thread its own malloc arena; with a dozen fetch threads
    # moving MiB-sized buffers that fragments into tens of MiB of idle RSS
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def run(session: Session, mountpoint: str, dataset_id: str | None = None, debug: bool = False,
        writable: bool = False, nonempty: bool = False) -> None:
    """Entry point for ``mountfsd`` / ``mountfs daemon run`` / ``mountfs mount --foreground``."""
    _fewer_malloc_arenas()
    Daemon(session, mountpoint, dataset_id, debug, writable, nonempty).run()
