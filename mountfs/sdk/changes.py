"""A draft's changes: adding local and external files, removing files.

Parameters mean what they mean in ClearML's ``Dataset`` (see ``sdk.dataset``).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
from typing import Iterable, Sequence

from .. import ingest
from ..backends import ObjectInfo, normalize_url
from ..catalog import names
from ..errors import ObjectNotFound, UsageError
from ..session import default_workers, progress_bar
from ..store import ChunkRef, FileEntry
from ..store.manifest import tree_conflict
from .version import Version

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
        bar = verbose or show_progress
        total = sum(size for _, _, size in items) if bar else 0
        table = self._v.table()
        self._check_tree(dpath for _, dpath, _ in items)
        new: dict[str, FileEntry] = {}
        with progress_bar(total, "hashing", bar) as advance:
            for src, dpath, cut in ingest.cut_all(items, self._v.store.params, default_workers(max_workers), advance):
                old = table.get(dpath)
                if old is not None and old.digest == cut.digest and not old.is_external:
                    continue
                # a one-chunk file's chunk digest is its file digest: share the object (millions of small files)
                chunks = [ChunkRef(cut.digest if d == cut.digest else d, s) for d, s in cut.chunks]
                new[dpath] = FileEntry(dpath, cut.size, cut.mode, cut.mtime_ns, cut.digest, chunks, src=src)
                if verbose:
                    print(f"{'modified' if old else 'added'}: {dpath}", file=sys.stderr)
        del items
        return self._commit(new)

    def add_external_files(
        self,
        source_url: str | Sequence[str],
        wildcard: str | Sequence[str] | None = None,
        dataset_path: str | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
    ) -> int:
        """Record files that stay at their source URL; how many were added or changed."""
        self._v.require_draft("add external files")
        urls = [source_url] if isinstance(source_url, str) else list(source_url)
        patterns = [wildcard] if isinstance(wildcard, str) else (list(wildcard) if wildcard else None)
        prefix = names.check_dataset_path(dataset_path or "")
        found: list[Found] = []
        for url in urls:
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
                print(f"{'modified' if old else 'added'}: {dpath} -> {url}", file=sys.stderr)
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
            if verbose:
                print(f"removed: {p}", file=sys.stderr)
        if doomed:
            self._v.save_state()
            self._v.mark_changed()
        return len(doomed)

    # ------------------------------------------------------------- internals

    def _check_tree(self, paths: Iterable[str]) -> None:
        """Refuse paths that would make one name both a file and a folder (``a`` and ``a/b``), before any work."""
        conflict = tree_conflict(sorted(set(self._v.table()).union(paths)))
        if conflict:
            raise UsageError(
                f"cannot add these files: {conflict}; a path cannot be both a file and a folder: "
                "remove one with remove_files() or add under another dataset_path"
            )

    def _commit(self, new: dict[str, FileEntry]) -> int:
        """Put ``new`` into the draft's table and save it; if that fails the table is as it was, and usable."""
        if not new:
            return 0
        table = self._v.table()
        before = {p: table.get(p) for p in new}
        table.update(new)
        try:
            self._v.save_state()
        except BaseException:
            for p, e in before.items():
                if e is None:
                    del table[p]
                else:
                    table[p] = e
            raise
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
