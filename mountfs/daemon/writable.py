"""A draft's writable copy in the daemon: which files it starts from, what changed, and closing it.

The lower table is the draft's files when the copy was first mounted (kept in
the upper layer, ``Upper.save_lower``), so the upper layer's inode numbers keep
meaning the same files however often the copy is remounted, and a ``close``
interrupted after it replaced the draft's table runs again from the same start
(docs/SEMANTICS.md, "Writable copies").
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from ..cache import upper as upper_mod
from ..cache.filetable import FileTables, version_key
from ..catalog import DatasetRecord
from ..errors import StateError, UsageError
from ..fs.overlay import Overlay
from ..sdk.changes import DraftChanges
from ..sdk.closing import DraftClosing
from ..sdk.version import Version, is_pending
from ..session import Session
from ..store import FileEntry
from ..store import manifest as manifest_codec

log = logging.getLogger(__name__)


@dataclass
class Changes:
    """What a writable copy changed against the files it started from (``mountfs diff``)."""

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: kinds a version cannot hold (symbolic links, FIFOs, sockets, devices): left out at close
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "modified": self.modified, "removed": self.removed, "skipped": self.skipped}


class WritableCopy:
    """The lower table and upper layer of one draft's writable copy (the overlay is made once the reader runs)."""

    def __init__(self, sess: Session, tables: FileTables, record: DatasetRecord) -> None:
        if record.is_final:
            raise UsageError(f"dataset {record.id} is finalized: mount a new child of it with "
                             "`mountfs mount --writable <version> DIR`")
        self.sess = sess
        self.record = record
        self.tables = tables
        # not the version's own key: once closed, the version's table is its manifest, not this
        self.vk = version_key(f"{record.id}/writable")
        self.upper = upper_mod.Upper(upper_mod.upper_dir(sess.config.cache_dir, record.id), record.id)
        try:
            self.lower = self._lower()
            # in path order, as every table is imported: the inode numbers follow from it
            self.tables.import_version(self.vk, [self.lower[p] for p in sorted(self.lower)], 0)
        except BaseException:
            self.upper.close()
            raise
        self.overlay: Overlay | None = None

    def _lower(self) -> dict[str, FileEntry]:
        """The files the copy starts from: kept in the upper layer once it holds changes."""
        current = Version(self.sess, self.record).table()
        if any(is_pending(e) for e in current.values()):
            raise StateError(f"draft {self.record.id} has files that are not uploaded: run "
                             f"`mountfs upload --id {self.record.id}` first")
        digest = upper_mod.lower_digest(current[p] for p in sorted(current))
        saved = self.upper.load_lower()
        if saved is not None and self.upper.has_changes():
            if self.upper.lower_digest() != digest and not self.upper.closing():
                raise StateError(
                    f"the writable copy of draft {self.record.id} holds changes made over other files than the "
                    "draft has now (it was changed with add_files/remove_files while unmounted): run "
                    f"`mountfs close --discard-copy --id {self.record.id}` to drop the copy's changes")
            entries = manifest_codec.decode(saved, f"{self.upper.directory}/lower.mfs")[1]
            return {e.path: e for e in entries}
        self.upper.save_lower(manifest_codec.encode(current.values(), kind="draft"), digest)
        return dict(current)

    def close(self) -> None:
        if self.overlay is not None:
            self.overlay.close()
        self.upper.close()

    # --- what changed -----------------------------------------------------------

    def _plan(self) -> tuple[dict[str, FileEntry], list[tuple[str, int, Any]], Changes]:
        """(entries kept as they are, files to cut: (path, inode, row), the changes) of the copy now."""
        ov = self.overlay
        assert ov is not None
        paths = ov.lower_paths()
        kept: dict[str, FileEntry] = {}
        cut: list[tuple[str, int, Any]] = []
        ch = Changes()
        seen_lower: set[str] = set()
        for path, st, row in ov.walk():
            if stat.S_ISDIR(st.mode):
                continue
            if not stat.S_ISREG(st.mode):
                ch.skipped.append(path)
                continue
            if row is None or not row.data:
                src = paths.get(row.lower if row is not None else st.ino)
                if src is None:
                    raise StateError(f"{path}: its content is not in the draft's table; the copy is damaged")
                e = self.lower[src]
                seen_lower.add(src)
                if src != path or row is not None:
                    e = replace(e, path=path, mode=st.mode & 0o777, mtime_ns=st.mtime_ns)
                kept[path] = e
                was = self.lower.get(path)
                if was is None:
                    ch.added.append(path)
                elif src != path or (was.mode & 0o777, was.mtime_ns) != (e.mode & 0o777, e.mtime_ns):
                    ch.modified.append(path)  # other content at this path, or only a new mode or mtime
                continue
            cut.append((path, st.ino, row))
            (ch.modified if path in self.lower else ch.added).append(path)
        ch.removed = sorted(p for p in self.lower if p not in kept and p not in {c[0] for c in cut})
        ch.added.sort()
        ch.modified.sort()
        return kept, cut, ch

    def diff(self) -> Changes:
        return self._plan()[2]

    async def finish(self) -> tuple[DatasetRecord, Changes]:
        """Turn the copy into the draft's files, upload what the store lacks and finalize (``mountfs close``)."""
        ov = self.overlay
        assert ov is not None
        busy = ov.writers()
        if busy:
            names = {ino: p for p, st, _ in ov.walk() for ino in [st.ino] if ino in busy}
            shown = ", ".join(sorted(names.get(i, f"inode {i}") for i in busy)[:5])
            raise StateError(f"files are open for writing in the copy: {shown}; close them and run "
                             "`mountfs close` again")
        ov.frozen = True
        try:
            await ov.fsync_all()
            kept, cut, ch = self._plan()
            for path, ino, row in cut:
                if row.lower:  # a large file that kept unchanged ranges in the store
                    await ov.materialize(row)
            record = await trio.to_thread.run_sync(self._seal, kept, cut, ch)
        except BaseException:
            ov.frozen = False
            raise
        return record, ch  # frozen for good: the draft is a version now

    def _seal(self, kept: dict[str, FileEntry], cut: list[tuple[str, int, Any]], ch: Changes) -> DatasetRecord:
        items: list[tuple[str, str, int]] = []
        for path, ino, row in cut:
            data = self.upper.data_path(ino)
            os.truncate(data, row.size)
            # what the version records; the upload checks the file's size and mtime against it
            os.chmod(data, (row.mode & 0o777) | 0o400)
            os.utime(data, ns=(row.mtime_ns, row.mtime_ns))
            items.append((data, path, row.size))
        version = Version(self.sess, self.sess.catalog.get(self.record.id))
        self.upper.set_closing(True)
        DraftChanges(version).take_tree(kept, items)
        DraftClosing(version).finalize(auto_upload=True)
        log.info("closed writable copy of %s: %d added, %d modified, %d removed, %d skipped",
                 version.describe(), len(ch.added), len(ch.modified), len(ch.removed), len(ch.skipped))
        return version.record

    def pending(self) -> dict[str, Any]:
        nodes, held = self.upper.pending()
        return {"draft": self.record.id, "changed_nodes": nodes, "upper_bytes": held, "upper": self.upper.directory}
