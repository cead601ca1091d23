"""Reading a version: listings, differences to the parents, local copies, verification, metadata.

Mixed into ``mountfs.Dataset``; parameters mean what they mean in ClearML.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
from typing import Any, Iterable, Sequence

import xxhash

from . import localcopy
from .catalog import names
from .catalog.catalog import metadata_key
from .errors import MountfsError, NotFound, StateError, UsageError
from .session import progress_bar
from .store import FileEntry

log = logging.getLogger(__name__)


def _copy_workers(max_workers: int | None) -> int:
    # copies wait on the network more than on the CPU: keep a few requests in flight even on 2 cores
    return max(1, int(max_workers)) if max_workers else max(4, os.cpu_count() or 1)


def diff_tables(table: dict[str, FileEntry], parents: dict[str, FileEntry]) -> tuple[list[str], list[str], list[str]]:
    """(added, modified, removed) paths of ``table`` against the merged ``parents``."""
    added = sorted(p for p in table if p not in parents)
    modified = sorted(p for p in table if p in parents and table[p].digest != parents[p].digest)
    removed = sorted(p for p in parents if p not in table)
    return added, modified, removed


class VersionReading:
    """What every version offers, draft or final (the reading half of ``Dataset``)."""

    def list_files(self, dataset_path: str | None = None, recursive: bool = True, dataset_id: str | None = None) -> list[str]:
        """Paths of the files in this version, optionally filtered by a path or wildcard."""
        table = self._other(dataset_id)._table()
        if not dataset_path:
            paths = table if recursive else [p for p in table if "/" not in p]
            return sorted(paths)
        pattern = names.check_dataset_path(dataset_path, "dataset_path")
        return sorted(p for p in table if names.path_matches(p, pattern, recursive))

    def _other(self, dataset_id: str | None) -> "VersionReading":
        return self if not dataset_id or dataset_id == self.id else type(self).get(dataset_id=dataset_id)

    def list_added_files(self, dataset_id: str | None = None) -> list[str]:
        """Files in this version that none of its parents has."""
        ds = self._other(dataset_id)
        return diff_tables(ds._table(), ds._parent_table())[0]

    def list_modified_files(self, dataset_id: str | None = None) -> list[str]:
        """Files whose content differs from the parents'."""
        ds = self._other(dataset_id)
        return diff_tables(ds._table(), ds._parent_table())[1]

    def list_removed_files(self, dataset_id: str | None = None) -> list[str]:
        """Files the parents have that this version removed."""
        ds = self._other(dataset_id)
        return diff_tables(ds._table(), ds._parent_table())[2]

    def get_dependency_graph(self) -> dict[str, list[str]]:
        """id -> parent ids, for this version and all its ancestors."""
        graph: dict[str, list[str]] = {}
        todo = [self._rec]
        while todo:
            rec = todo.pop()
            if rec.id in graph:
                continue
            graph[rec.id] = list(rec.parents)
            todo.extend(self._sess.catalog.get(p) for p in rec.parents)
        return graph

    def _select(self, part: int | None, num_parts: int | None, files: Iterable[str] | None) -> list[FileEntry]:
        entries = sorted(self._table().values(), key=lambda e: e.path)
        if files is not None:
            wanted = [names.check_dataset_path(f, "file") for f in ([files] if isinstance(files, str) else files)]
            chosen = [e for e in entries if any(names.path_matches(e.path, w, True) for w in wanted)]
            missing = [w for w in wanted if not any(names.path_matches(e.path, w, True) for e in entries)]
            if missing:
                raise NotFound(f"{missing[0]!r} is not in dataset {self.id}; see `mountfs list --id {self.id}`")
            entries = chosen
        if num_parts is not None or part is not None:
            if num_parts is None or part is None or not (0 <= int(part) < int(num_parts)):
                raise UsageError(f"part must be in 0..num_parts-1 (got part={part}, num_parts={num_parts})")
            # contiguous slices balanced by bytes, so each part is a few large reads
            total = sum(e.size for e in entries) or 1
            out, offset = [], 0
            for i, e in enumerate(entries):
                share = (offset * num_parts // total) if total > 1 else (i * num_parts // max(1, len(entries)))
                if min(share, num_parts - 1) == part:
                    out.append(e)
                offset += e.size
            entries = out
        return entries

    def get_local_copy(
        self,
        use_soft_links: bool | None = None,
        part: int | None = None,
        num_parts: int | None = None,
        raise_on_error: bool = True,
        max_workers: int | None = None,
        files: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> str | None:
        """A read-only folder with this version's files, built from the local cache and reused when complete.

        :param part: with ``num_parts``, only slice ``part`` (0-based) of ``num_parts`` disjoint slices
        :param files: only these paths (or folders, or wildcards)
        :param max_workers: parallel fetch/write threads (default: logical cores)
        :param show_progress: show a progress bar while fetching
        """
        if use_soft_links:
            log.debug("use_soft_links: local copies are always plain files; ignored")
        try:
            if not self.is_final():
                raise StateError(f"dataset {self.id} is not finalized; get a local copy of a finalized version")
            entries = self._select(part, num_parts, files)
            suffix = ""
            if num_parts is not None:
                suffix += f".part{part}of{num_parts}"
            if files is not None:
                suffix += ".files-" + hashlib.sha1("\0".join(sorted(e.path for e in entries)).encode()).hexdigest()[:12]
            target = os.path.join(self._sess.config.cache_dir, "copies", self.id + suffix)
            with progress_bar(sum(e.size for e in entries), "fetching", show_progress) as advance:
                return localcopy.build_cached_copy(
                    entries, self.storage, self._sess.cache, target, max_workers=_copy_workers(max_workers),
                    progress=advance, source=self._sess.source,
                )
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("get_local_copy of %s failed: %s", self.id, exc)
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
        """Write this version's files into ``target_folder`` as plain writable files.

        :param overwrite: empty a non-empty ``target_folder`` first (else it is refused)
        :param show_progress: show a progress bar while copying
        """
        try:
            if not self.is_final():
                raise StateError(f"dataset {self.id} is not finalized; copy a finalized version")
            entries = self._select(part, num_parts, None)
            with progress_bar(sum(e.size for e in entries), "copying", show_progress) as advance:
                return localcopy.build_mutable_copy(
                    entries, self.storage, self._sess.cache, os.path.abspath(str(target_folder)),
                    overwrite=overwrite, max_workers=_copy_workers(max_workers), progress=advance,
                    source=self._sess.source,
                )
        except MountfsError as exc:
            if raise_on_error:
                raise
            log.error("get_mutable_local_copy of %s failed: %s", self.id, exc)
            return None

    def verify_dataset_hash(
        self, local_copy_path: str | None = None, skip_hash: bool = False, verbose: bool = False
    ) -> list[str]:
        """Check content against the recorded digests; return the paths that fail.

        With ``local_copy_path`` the files of that folder are checked (``skip_hash``:
        sizes only); without it every chunk of the version is read from the store
        and checked (``skip_hash`` does not apply there).
        """
        bad: list[str] = []
        entries = sorted(self._table().values(), key=lambda e: e.path)
        if local_copy_path:
            for e in entries:
                p = os.path.join(local_copy_path, e.path)
                try:
                    ok = os.path.getsize(p) == e.size
                    if ok and not skip_hash:
                        h = xxhash.xxh3_128()
                        with open(p, "rb") as fh:
                            for block in iter(lambda: fh.read(8 << 20), b""):
                                h.update(block)
                        ok = h.digest() == e.digest
                except OSError:
                    ok = False
                if not ok:
                    bad.append(e.path)
        else:
            bad = self._damaged_in_store(entries)
        for p in bad:
            if verbose:
                print(f"FAILED: {p}", file=sys.stderr)
        return bad

    def _damaged_in_store(self, entries: list[FileEntry]) -> list[str]:
        """Paths (in order) of stored files whose chunks fail their checks or do not hash to the file's digest.

        Chunks are read a batch at a time; a batch that fails is read again a
        piece at a time, so exactly the files holding a damaged chunk are named.
        """
        store = self.storage
        bad: dict[str, None] = {}  # an ordered set
        hashers: dict[str, Any] = {}
        for batch in localcopy.batches([e for e in entries if not e.is_external]):
            try:
                got: dict[bytes, bytes] | None = store.read_chunks({c.digest: c for p in batch for c in p.chunks}.values())
            except MountfsError:
                got = None
            for p in batch:
                path = p.entry.path
                if path in bad:
                    continue
                try:
                    data = got if got is not None else store.read_chunks(p.chunks)
                except MountfsError as exc:
                    log.error("verify %s: %s: %s", self.id, path, exc)
                    bad[path] = None
                    hashers.pop(path, None)
                    continue
                h = hashers.setdefault(path, xxhash.xxh3_128())
                for c in p.chunks:
                    h.update(data[c.digest])
                if p.last == len(p.entry.chunks):
                    del hashers[path]
                    if h.digest() != p.entry.digest:
                        bad[path] = None
        return list(bad)

    # ---------------------------------------------------------------- metadata

    def set_metadata(self, metadata: Any, metadata_name: str = "metadata", ui_visible: bool = True) -> None:
        """Attach a JSON-able object or a pandas DataFrame under ``metadata_name``."""
        names.check_component(metadata_name, "metadata_name")
        kind = "json"
        try:
            import pandas as pd
        except ImportError:
            pd = None
        if pd is not None and isinstance(metadata, pd.DataFrame):
            kind, data = "pandas", metadata.to_json(orient="table").encode()
        else:
            try:
                data = json.dumps(metadata).encode()
            except (TypeError, ValueError) as exc:
                raise UsageError(f"metadata {metadata_name!r} is not JSON-able ({exc}); pass dicts, lists, numbers, strings or a DataFrame") from None
        self._sess.catalog.backend.put(metadata_key(self.id, metadata_name, "json"), data)
        self._rec.metadata[metadata_name] = {"type": kind}
        self._sess.catalog.put(self._rec)

    def get_metadata(self, metadata_name: str = "metadata") -> Any:
        """The object stored by ``set_metadata`` under ``metadata_name`` (``None`` if there is none)."""
        info = self._rec.metadata.get(metadata_name)
        if info is None:
            return None
        data = self._sess.catalog.backend.get(metadata_key(self.id, metadata_name, "json"))
        if info.get("type") == "pandas":
            import pandas as pd

            return pd.read_json(io.StringIO(data.decode()), orient="table")
        return json.loads(data)
