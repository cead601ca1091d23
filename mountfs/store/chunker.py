"""Cutting files into content-defined chunks (FastCDC) named by xxh3-128."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import xxhash
from pyfastcdc import FastCDC

from ..errors import SourceChanged, UsageError
from .format import ChunkParams

digest_of = xxhash.xxh3_128_digest


@dataclass(slots=True)
class CutFile:
    """What chunking one local file produced."""

    size: int
    mtime_ns: int
    mode: int
    digest: bytes
    #: (chunk digest, chunk length) in file order
    chunks: list[tuple[bytes, int]]


class _Reader:
    """readinto() over a raw fd, so pyfastcdc streams without a Python-level buffer copy."""

    def __init__(self, fd: int):
        self.fd = fd

    def readinto(self, buf: memoryview) -> int:
        return os.readv(self.fd, [buf])


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ino, b.st_ctime_ns)


def cut_file(path: str, params: ChunkParams) -> CutFile:
    """Chunk and hash ``path``; raise ``SourceChanged`` if it changes meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise UsageError(f"cannot add {path}: no such file") from None
    except PermissionError:
        raise UsageError(f"cannot add {path}: permission denied") from None
    try:
        before = os.fstat(fd)
        cdc = FastCDC(params.avg_size - params.min_size, min_size=params.min_size, max_size=params.max_size, seed=params.seed)
        whole = xxhash.xxh3_128()
        chunks: list[tuple[bytes, int]] = []
        total = 0
        if before.st_size <= params.min_size:
            # the common small file: one read, one chunk
            data = os.pread(fd, before.st_size + 1, 0)
            whole.update(data)
            if data:
                chunks.append((digest_of(data), len(data)))
            total = len(data)
        else:
            for chunk in cdc.cut_stream(_Reader(fd)):
                whole.update(chunk.data)
                chunks.append((digest_of(chunk.data), chunk.length))
                total += chunk.length
        after = os.stat(path)
    finally:
        os.close(fd)
    if total != before.st_size or not _same_file(before, after):
        raise SourceChanged(f"{path} changed while it was being added; add it again once it is no longer written to")
    return CutFile(total, before.st_mtime_ns, before.st_mode & 0o7777, whole.digest(), chunks)


def read_source_chunks(
    path: str, size: int, mtime_ns: int, chunks: list[tuple[bytes, int]]
) -> Iterator[tuple[bytes, bytes]]:
    """Yield (digest, bytes) of a previously cut file, checking it did not change since."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise SourceChanged(f"{path} was added but is gone now; add it again or remove it from the dataset") from None
    try:
        st = os.fstat(fd)
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            raise SourceChanged(f"{path} changed after it was added; add it again before uploading")
        offset = 0
        for digest, length in chunks:
            data = os.pread(fd, length, offset)
            if len(data) != length or digest_of(data) != digest:
                raise SourceChanged(f"{path} changed after it was added; add it again before uploading")
            offset += length
            yield digest, data
    finally:
        os.close(fd)
