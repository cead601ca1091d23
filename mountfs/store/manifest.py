"""Manifests: the complete, sorted file table of one version.

Layout (see docs/FORMAT.md)::

    b"MFSMAN" | u8 format | zstd( msgpack header, msgpack entry, msgpack entry, ... ) | xxh3-128 of all before

The header lists the packs referenced, so each chunk names its pack by a
small integer.  Entries are sorted by path.  The same encoding, with
``kind="draft"`` and the local source path filled in, holds a draft's
pending file table.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple

import msgpack
import xxhash
import zstandard

from ..errors import IntegrityError

MAGIC = b"MFSMAN"
MANIFEST_FORMAT = 1
_HASH_LEN = 16


class ChunkRef(NamedTuple):
    """One chunk of a file and where it is stored (``pack`` is "" until uploaded)."""

    digest: bytes
    size: int
    pack: str = ""
    offset: int = 0
    length: int = 0
    codec: int = 0


@dataclass(slots=True)
class FileEntry:
    """One file of a version."""

    path: str
    size: int
    mode: int = 0o644
    mtime_ns: int = 0
    #: xxh3-128 of the whole content (b"" for external files not read yet)
    digest: bytes = b""
    chunks: list[ChunkRef] = field(default_factory=list)
    #: external files (``add_external_files``): source URL and its ETag/generation
    url: str = ""
    etag: str = ""
    #: drafts only: the local path the content is read from at upload
    src: str = ""

    @property
    def is_external(self) -> bool:
        return bool(self.url)


def encode(entries: Iterable[FileEntry], kind: str = "manifest", meta: dict | None = None) -> bytes:
    """Encode entries (sorted here) into manifest bytes."""
    ordered = sorted(entries, key=lambda e: e.path)
    packs: dict[str, int] = {}
    for e in ordered:
        for c in e.chunks:
            if c.pack and c.pack not in packs:
                packs[c.pack] = len(packs)
    header = {"format": MANIFEST_FORMAT, "kind": kind, "count": len(ordered), "packs": list(packs), "meta": meta or {}}
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(level=6).stream_writer(buf, closefd=False) as zw:
        pk = msgpack.Packer()
        zw.write(pk.pack(header))
        for e in ordered:
            chunks = [[c.digest, c.size, packs[c.pack] if c.pack else -1, c.offset, c.length, c.codec] for c in e.chunks]
            zw.write(pk.pack([e.path, e.size, e.mode, e.mtime_ns, e.digest, chunks, e.url, e.etag, e.src]))
    body = MAGIC + bytes([MANIFEST_FORMAT]) + buf.getvalue()
    return body + xxhash.xxh3_128_digest(body)


def _body(data: bytes, where: str) -> bytes:
    if len(data) < len(MAGIC) + 1 + _HASH_LEN or not data.startswith(MAGIC):
        raise IntegrityError(f"manifest {where} is not a mountfs manifest (damaged or truncated)")
    body, check = data[:-_HASH_LEN], data[-_HASH_LEN:]
    if xxhash.xxh3_128_digest(body) != check:
        raise IntegrityError(f"manifest {where} fails its checksum: it is corrupted; restore it or delete the version")
    if body[len(MAGIC)] > MANIFEST_FORMAT:
        raise IntegrityError(f"manifest {where} has format {body[len(MAGIC)]}, newer than this mountfs; upgrade mountfs")
    return body[len(MAGIC) + 1:]


def iter_decode(data: bytes, where: str) -> tuple[dict, Iterator[FileEntry]]:
    """Verify and decode lazily: (header, entries in path order)."""
    body = _body(data, where)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body))
    unpacker = msgpack.Unpacker(reader, raw=False, max_buffer_size=256 << 20)
    try:
        header = next(unpacker)
    except (StopIteration, ValueError, zstandard.ZstdError) as exc:
        raise IntegrityError(f"manifest {where} is damaged ({exc})") from None
    packs = header["packs"]

    def entries() -> Iterator[FileEntry]:
        try:
            for row in unpacker:
                path, size, mode, mtime_ns, digest, chunks, url, etag, src = row
                refs = [ChunkRef(bytes(c[0]), c[1], packs[c[2]] if c[2] >= 0 else "", c[3], c[4], c[5]) for c in chunks]
                yield FileEntry(path, size, mode, mtime_ns, bytes(digest), refs, url, etag, src)
        except (ValueError, TypeError, IndexError, zstandard.ZstdError) as exc:
            raise IntegrityError(f"manifest {where} is damaged ({exc})") from None

    return header, entries()


def decode(data: bytes, where: str) -> tuple[dict, list[FileEntry]]:
    header, it = iter_decode(data, where)
    return header, list(it)
