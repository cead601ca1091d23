"""A draft's changes: adding local and external files, removing files.

Parameters mean what they mean in ClearML's ``Dataset`` (see ``sdk.dataset``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
from typing import Iterable, Sequence

from .. import ingest
from ..backends import ObjectInfo, normalize_url
from ..catalog import names
from ..errors import ObjectNotFound, UsageError
from ..session import default_workers, progress_bar, say
from ..store import ChunkRef, FileEntry
from ..store.manifest import tree_conflict
from .version import OTHER_STORE, Version, diff_tables

log = logging.getLogger(__name__)

#: (source URL, path in the dataset, what the source's store says about it)
Found = tuple[str, str, ObjectInfo]


class DraftChanges:
    """Edits the file table of one draft and saves it after each call."""

    def __init__(self, version: Version) -> None:
        self._v = version

    def add_files(
        self,
        path: str | os.PathLike[str],
        wildcard: str | Sequence[str] | None = None,
        local_base_folder: str | None = None,
        dataset_path: str | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> int:
        """Hash and chunk local files into the draft; how many were added or changed."""
        self._v.require_draft("add files")
        items = ingest.scan(str(path), wildcard, local_base_folder, dataset_path, recursive)
        if not items:
            log.info("add_files(%s): no files matched", path)
            return 0
        self._check_tree(dpath for _, dpath, _ in items)
        new, same = self._cut(items, verbose, max_workers, verbose or show_progress)
        del items
        return self._commit(new, refreshed=same)

    def add_external_files(
        self,
        source_url: str | Sequence[str],
        wildcard: str | Sequence[str] | None = None,
        dataset_path: str | Sequence[str] | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
    ) -> int:
        """Record files that stay at their source URL; how many were added or changed.

        ``dataset_path``: one folder for every URL, or (ClearML's) a list with one folder per URL.
        """
        self._v.require_draft("add external files")
        urls = [source_url] if isinstance(source_url, str) else list(source_url)
        patterns = [wildcard] if isinstance(wildcard, str) else (list(wildcard) if wildcard else None)
        if dataset_path is None or isinstance(dataset_path, str):
            prefixes = [names.check_dataset_path(dataset_path or "")] * len(urls)
        else:
            given = list(dataset_path)
            if len(given) != len(urls):
                raise UsageError(f"dataset_path has {len(given)} paths for {len(urls)} source URLs; "
                                 "give one path, or one path per URL")
            prefixes = [names.check_dataset_path(p or "") for p in given]
        found: list[Found] = []
        for url, prefix in zip(urls, prefixes):
            found.extend(self._expand_source(str(url), prefix, patterns, recursive))
        found.sort(key=lambda t: t[1])
        names.check_distinct((url, dpath) for url, dpath, _ in found)
        self._check_tree(dpath for _, dpath, _ in found)
        table = self._v.table()
        new: dict[str, FileEntry] = {}
        for url, dpath, info in found:
            old = table.get(dpath)
            if old is not None and old.url == url and old.etag == info.etag and old.size == info.size:
                continue
            new[dpath] = FileEntry(dpath, info.size, 0o444, int(info.mtime * 1e9), b"", [], url=url, etag=info.etag)
            if verbose:
                say(f"{'modified' if old else 'added'}: {dpath} -> {url}")
        return self._commit(new)

    def remove_files(self, dataset_path: str, recursive: bool = True, verbose: bool = False) -> int:
        """Drop the files matching a path, folder, wildcard or external source URL; how many."""
        self._v.require_draft("remove files")
        table = self._v.table()
        if "://" in dataset_path:
            # an external file's source URL (or a wildcard over URLs)
            url = dataset_path.rstrip("/")
            doomed = [p for p, e in table.items()
                      if e.url and fnmatch.fnmatchcase(e.url, url) or e.url.startswith(url + "/") and recursive]
        else:
            pattern = names.check_dataset_path(dataset_path, "dataset_path")
            doomed = [p for p in table if names.path_matches(p, pattern, recursive)]
        for p in doomed:
            del table[p]
        if doomed:
            self._v.save_state()
            self._v.mark_changed()
        if verbose:  # said once the change is saved
            for p in doomed:
                say(f"removed: {p}")
        return len(doomed)

    # --- sync ---

    def sync_folder(
        self,
        local_path: str | os.PathLike[str],
        dataset_path: str | os.PathLike[str] | None = None,
        verbose: bool = False,
        verify: bool = False,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> tuple[int, int, int]:
        """Make the draft's files under ``dataset_path`` what the folder holds; ``(removed, added, modified)``.

        A file whose size and mtime equal its entry's (the parent's, or an
        earlier sync's) is taken as unchanged without reading it; ``verify``
        hashes every file instead.  Everything is checked before the draft
        changes: a missing folder or a path conflict changes nothing.
        """
        self._v.require_draft("sync a folder")
        dataset_path = os.fspath(dataset_path) if dataset_path is not None else None  # ClearML takes a Path too
        items = ingest.scan(str(local_path), dataset_path=dataset_path)
        if not os.path.isdir(os.path.expanduser(str(local_path))):
            raise UsageError(
                f"cannot sync {names.shown_source(str(local_path))}: it is a file, not a folder; "
                "give the folder the dataset should match (or add the file with add_files)"
            )
        prefix = names.check_dataset_path(dataset_path or "")
        table = self._v.table()
        present = {dpath for _, dpath, _ in items}
        # a file at the prefix itself is not inside it: it stays, and the tree check below refuses the sync
        inside = (lambda p: True) if not prefix else (lambda p: p.startswith(prefix + "/"))
        gone = sorted(p for p in table if inside(p) and p not in present)
        self._check_tree(present, without=gone)
        todo = items if verify else [it for it in items if not _looks_unchanged(table.get(it[1]), it[0], it[2])]
        del items
        new, same = self._cut(todo, verbose, max_workers, verbose or show_progress)
        added = sum(1 for p in new if p not in table)
        self._commit(new, removed=gone, refreshed=same)
        if verbose:
            for p in gone:
                say(f"removed: {p}")
        log.info("sync_folder(%s): %d removed, %d added, %d modified, %d unchanged not read",
                 local_path, len(gone), added, len(new) - added, len(present) - len(todo))
        return len(gone), added, len(new) - added

    def take_tree(self, kept: dict[str, FileEntry], items: list[tuple[str, str, int]]) -> tuple[int, int, int]:
        """Make the draft's files exactly ``kept`` (entries as they are) plus ``items`` (local files, hashed and
        chunked here): a writable copy being closed.  Saved once; ``(removed, added, modified)`` against
        the table before."""
        self._v.require_draft("replace its files")
        table = self._v.table()
        new, same = self._cut(items, False, None, False)
        result = dict(kept)
        for _, dpath, _ in items:
            result[dpath] = new.get(dpath) or same.get(dpath) or table[dpath]
        added, modified, removed = diff_tables(result, table)
        before = dict(table)
        table.clear()
        table.update(result)
        try:
            self._v.save_state()
        except BaseException:
            table.clear()
            table.update(before)
            raise
        if added or modified or removed:
            self._v.mark_changed()
        return len(removed), len(added), len(modified)

    def discard(self) -> None:
        """Delete the draft: its state, record and version pointer (the version number is free again).

        For a draft that turned out to change nothing (``mountfs sync``); it
        holds no packs of its own then.  The record goes before the pointer: a
        crash between leaves a pointer without a record, which listings skip.
        """
        v = self._v
        v.require_draft("discard it")
        cat = v.session.catalog
        cat.drop_draft_state(v.id)
        cat.drop_record(v.id)
        cat.release(v.record.project, v.record.name, v.record.version)
        log.info("discarded draft %s", v.describe())

    # ------------------------------------------------------------- internals

    def _cut(
        self, items: list[tuple[str, str, int]], verbose: bool, max_workers: int | None, bar: bool
    ) -> tuple[dict[str, FileEntry], dict[str, FileEntry]]:
        """Hash and chunk ``items`` (``ingest.scan``'s): the entries of new content, and the draft's entries
        whose content is the same but whose mtime, mode or source file is not (refreshed, not counted as changes:
        an upload reads the file it was cut from, and checks its size and mtime)."""
        total = sum(size for _, _, size in items) if bar else 0
        table = self._v.table()
        new: dict[str, FileEntry] = {}
        same: dict[str, FileEntry] = {}
        with progress_bar(total, "hashing", bar) as advance:
            for src, dpath, cut in ingest.cut_all(items, self._v.store.params, default_workers(max_workers), advance):
                old = table.get(dpath)
                if old is not None and old.digest == cut.digest and not old.is_external:
                    local = bool(old.src) and not old.src.startswith(OTHER_STORE)  # still to be read from disk
                    if (old.mtime_ns, old.mode) != (cut.mtime_ns, cut.mode) or local and old.src != src:
                        same[dpath] = dataclasses.replace(old, mtime_ns=cut.mtime_ns, mode=cut.mode,
                                                          src=src if local else old.src)
                    continue
                # a one-chunk file's chunk digest is its file digest: share the object (millions of small files)
                chunks = [ChunkRef(cut.digest if d == cut.digest else d, s) for d, s in cut.chunks]
                new[dpath] = FileEntry(dpath, cut.size, cut.mode, cut.mtime_ns, cut.digest, chunks, src=src)
                if verbose:
                    say(f"{'modified' if old else 'added'}: {dpath}")
        return new, same

    def _check_tree(self, paths: Iterable[str], without: Iterable[str] = ()) -> None:
        """Refuse paths that would make one name both a file and a folder (``a`` and ``a/b``), before any work.

        ``without``: paths of the draft that go in the same change.
        """
        conflict = tree_conflict(sorted(set(self._v.table()).difference(without).union(paths)))
        if conflict:
            raise UsageError(
                f"cannot add these files: {conflict}; a path cannot be both a file and a folder: "
                "remove one with remove_files() or add under another dataset_path"
            )

    def _commit(
        self, new: dict[str, FileEntry], removed: Iterable[str] = (), refreshed: dict[str, FileEntry] | None = None,
    ) -> int:
        """Put ``new`` (and ``refreshed``) into the draft's table, drop ``removed``, and save it once; if that
        fails the table is as it was, and usable.  Returns ``len(new)``; ``refreshed`` alone is no change
        that needs an upload."""
        removed = list(removed)
        refreshed = refreshed or {}
        if not new and not removed and not refreshed:
            return 0
        table = self._v.table()
        before = {p: table.get(p) for p in [*new, *removed, *refreshed]}
        table.update(refreshed)
        table.update(new)
        for p in removed:
            del table[p]
        try:
            self._v.save_state()
        except BaseException:
            for p, e in before.items():
                if e is None:
                    table.pop(p, None)
                else:
                    table[p] = e
            raise
        if new or removed:
            self._v.mark_changed()
        return len(new)

    def _expand_source(self, url: str, prefix: str, patterns: list[str] | None, recursive: bool) -> list[Found]:
        """The one object at ``url``, or else every object under it as a folder."""
        url = normalize_url(url)
        if "://" not in url:
            url = "file://" + url
        sess = self._v.session
        info: ObjectInfo | None
        try:
            backend, key = sess.source(url)
            info = backend.stat(key)
        except (ObjectNotFound, UsageError):
            info = None
        if info is not None:  # one object
            name = url.rsplit("/", 1)[-1]
            if patterns and not ingest.matches(name, patterns):
                return []
            return [(url, names.found_path(prefix, name, url), info)]
        if url.startswith(("http://", "https://")):
            raise UsageError(f"cannot add {url}: it does not exist (HTTP sources must name files)")
        out: list[Found] = []
        for obj in sess.folder(url).list(""):
            rel = obj.key
            if not recursive and "/" in rel:
                continue
            if patterns and not ingest.matches(rel, patterns):
                continue
            out.append((f"{url}/{rel}", names.found_path(prefix, rel, f"{url}/{rel}"), obj))
        if not out:
            raise UsageError(f"cannot add {url}: no such object, and no objects under it as a folder")
        return out


def _looks_unchanged(entry: FileEntry | None, src: str, size: int) -> bool:
    """Whether the file at ``src`` has the size and mtime of the draft's ``entry`` for its path (a stat, no read)."""
    if entry is None or entry.is_external or entry.size != size:
        return False
    try:
        return os.stat(src).st_mtime_ns == entry.mtime_ns
    except OSError:
        return False  # gone meanwhile: cutting it reports that
