"""Finding and chunking local files for ``Dataset.add_files``."""

from __future__ import annotations

import fnmatch
import itertools
import os
import posixpath
import stat
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

from .catalog.names import check_dataset_path, check_distinct, found_path, shown_source
from .errors import UsageError
from .store.chunker import CutFile, cut_file
from .store.format import ChunkParams
from .store.manifest import MAX_DEPTH


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
) -> list[tuple[str, str, int]]:
    """(absolute source path, path inside the dataset, size) of every file to add, sorted by dataset path.

    Names found on disk are stored as they are or refused (``names.found_path``):
    nothing is touched before every file has a storable, distinct dataset path.
    """
    patterns = [wildcard] if isinstance(wildcard, str) else (list(wildcard) if wildcard else None)
    prefix = check_dataset_path(dataset_path or "")
    src = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(src):
        raise UsageError(f"cannot add {shown_source(str(path))}: no such file or directory")
    base = os.path.abspath(os.path.expanduser(local_base_folder)) if local_base_folder else None
    if os.path.isdir(src):
        base = base or src
        found = _walk(src, recursive)
    else:
        base = base or os.path.dirname(src)
        found = [(src, os.stat(src).st_size)]
    out = []
    for full, size in found:
        rel = os.path.relpath(full, base).replace(os.sep, "/")
        if rel.startswith("../") or rel == "..":
            raise UsageError(f"{shown_source(full)} is not inside local_base_folder {local_base_folder}; pick a folder that contains it")
        if not matches(rel, patterns):
            continue
        out.append((full, found_path(prefix, rel, full), size))
    out.sort(key=lambda t: t[1])
    check_distinct((full, dpath) for full, dpath, _ in out)
    return out


def _walk(top: str, recursive: bool) -> list[tuple[str, int]]:
    """(path, size) of the regular files under ``top``, refusing a tree deeper than a dataset path may be.

    os.walk recurses once per level, so the depth is checked before it goes
    further down: a very deep tree is a clear error, not a RecursionError.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        if not recursive and dirpath != top:
            dirnames[:] = []
            continue
        if dirnames and dirpath.count(os.sep) - top.count(os.sep) >= MAX_DEPTH - 1:
            raise UsageError(
                f"cannot add {shown_source(top)}: {shown_source(dirpath)} is nested deeper than the {MAX_DEPTH} "
                "levels a dataset path may have; add a shallower folder"
            )
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            try:
                st = os.stat(full)
            except OSError:
                continue  # dangling links, files gone meanwhile
            if stat.S_ISREG(st.st_mode):  # not sockets, fifos
                found.append((full, st.st_size))
    return found


def cut_all(
    items: list[tuple[str, str, int]],
    params: ChunkParams,
    max_workers: int,
    progress: Callable[[int], None] | None = None,
    batch: int = 256,
    batch_bytes: int = 64 << 20,
) -> Iterator[tuple[str, str, CutFile]]:
    """Chunk every file in parallel (hashing and chunking release the GIL); yields in input order.

    Work is handed out in batches (at most ``batch`` files or about
    ``batch_bytes``) so a million files do not become a million futures and a
    few big files still spread over the workers; results are yielded as they
    come so the caller can drop them.
    """

    def one_batch(part: list[tuple[str, str, int]]) -> list[tuple[str, str, CutFile]]:
        out = []
        for src, dpath, _ in part:
            cut = cut_file(src, params)
            if progress:
                progress(cut.size)
            out.append((src, dpath, cut))
        return out

    batches = _batches(items, batch, batch_bytes)
    head = list(itertools.islice(batches, 2))
    parts = itertools.chain(head, batches)
    if max_workers <= 1 or len(head) <= 1:
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


def _batches(items: list[tuple[str, str, int]], count: int, nbytes: int) -> Iterator[list[tuple[str, str, int]]]:
    part: list[tuple[str, str, int]] = []
    size = 0
    for item in items:
        part.append(item)
        size += item[2]
        if len(part) >= count or size >= nbytes:
            yield part
            part, size = [], 0
    if part:
        yield part
