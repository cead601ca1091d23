"""Finding and chunking local files for ``Dataset.add_files``."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

from .catalog.names import check_dataset_path
from .errors import UsageError
from .store.chunker import CutFile, cut_file
from .store.format import ChunkParams


def matches(rel: str, patterns: list[str] | None) -> bool:
    if not patterns:
        return True
    base = posixpath.basename(rel)
    return any(fnmatch.fnmatch(base, p) or fnmatch.fnmatch(rel, p) for p in patterns)


def scan(
    path: str,
    wildcard: str | Iterable[str] | None = None,
    local_base_folder: str | None = None,
    dataset_path: str | None = None,
    recursive: bool = True,
) -> list[tuple[str, str]]:
    """(absolute source path, path inside the dataset) of every file to add, sorted by dataset path."""
    patterns = [wildcard] if isinstance(wildcard, str) else (list(wildcard) if wildcard else None)
    prefix = check_dataset_path(dataset_path or "")
    src = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(src):
        raise UsageError(f"cannot add {path}: no such file or directory")
    base = os.path.abspath(os.path.expanduser(local_base_folder)) if local_base_folder else None
    if os.path.isdir(src):
        base = base or src
        found = []
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            if not recursive and dirpath != src:
                dirnames[:] = []
                continue
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                if not os.path.isfile(full):
                    continue  # sockets, fifos, dangling links
                found.append(full)
    else:
        base = base or os.path.dirname(src)
        found = [src]
    out = []
    for full in found:
        rel = os.path.relpath(full, base).replace(os.sep, "/")
        if rel.startswith("../") or rel == "..":
            raise UsageError(f"{full} is not inside local_base_folder {local_base_folder}; pick a folder that contains it")
        if not matches(rel, patterns):
            continue
        out.append((full, check_dataset_path(posixpath.join(prefix, rel) if prefix else rel)))
    out.sort(key=lambda t: t[1])
    return out


def cut_all(
    items: list[tuple[str, str]],
    params: ChunkParams,
    max_workers: int,
    progress: Callable[[int], None] | None = None,
    batch: int = 256,
) -> Iterator[tuple[str, str, CutFile]]:
    """Chunk every file in parallel (hashing and chunking release the GIL); yields in input order.

    Work is handed out in batches so a million files do not become a million
    futures, and results are yielded as they come so the caller can drop them.
    """

    def one_batch(part: list[tuple[str, str]]) -> list[tuple[str, str, CutFile]]:
        out = []
        for src, dpath in part:
            cut = cut_file(src, params)
            if progress:
                progress(cut.size)
            out.append((src, dpath, cut))
        return out

    parts = (items[i:i + batch] for i in range(0, len(items), batch))
    if max_workers <= 1 or len(items) <= batch:
        for part in parts:
            yield from one_batch(part)
        return
    with ThreadPoolExecutor(max_workers) as pool:
        # keep a bounded number of batches in flight
        pending = []
        for part in parts:
            pending.append(pool.submit(one_batch, part))
            if len(pending) > 2 * max_workers:
                yield from pending.pop(0).result()
        for f in pending:
            yield from f.result()
