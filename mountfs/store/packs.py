"""Packs: many chunks back to back, then a footer index.

Layout (see docs/FORMAT.md)::

    chunk bytes ... | footer | u32 footer length (LE) | b"MFSPACK1"

The footer is zstd(msgpack([[digest, offset, stored_len, raw_len, codec], ...])).
The same footer bytes are also written as ``index/<pack-id>`` so that the set
of chunks in a store can be known without reading every pack.  A pack's id is
the xxh3-128 of its bytes, so writing the same pack twice is harmless.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

import msgpack
import xxhash
import zstandard

from ..errors import IntegrityError

MAGIC = b"MFSPACK1"
CODEC_NONE = 0
CODEC_ZSTD = 1
_TRAILER = struct.Struct("<I8s")

_local = threading.local()
#: probe this much of a chunk first: incompressible data (most media) skips zstd cheaply
_PROBE = 64 << 10


def _compressor() -> zstandard.ZstdCompressor:
    # zstd contexts are not thread-safe; one per thread
    zc = getattr(_local, "zc", None)
    if zc is None:
        zc = _local.zc = zstandard.ZstdCompressor(level=3)
    return zc


@dataclass(frozen=True, slots=True)
class PackedChunk:
    """Where one chunk sits inside a pack."""

    digest: bytes
    offset: int
    length: int  # stored bytes
    size: int  # raw bytes
    codec: int


def encode_chunk(data: bytes | memoryview, compress: bool) -> tuple[bytes | memoryview, int]:
    """Compress when it pays (saves at least 1/8), else store raw."""
    if compress and len(data) >= 512:
        zc = _compressor()
        if len(data) > 2 * _PROBE and len(zc.compress(data[:_PROBE])) > _PROBE - _PROBE // 8:
            return data, CODEC_NONE
        packed = zc.compress(data)
        if len(packed) <= len(data) - len(data) // 8:
            return packed, CODEC_ZSTD
    return data, CODEC_NONE


def decode_chunk(stored: bytes | memoryview, codec: int, size: int, digest: bytes, where: str) -> bytes | memoryview:
    """Decompress and verify one chunk; ``IntegrityError`` naming ``where`` if it is damaged."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(stored, max_output_size=size) if codec == CODEC_ZSTD else stored
    except zstandard.ZstdError:
        raise IntegrityError(f"chunk {digest.hex()} in {where} does not decompress: the pack is corrupted") from None
    if len(raw) != size or xxhash.xxh3_128_digest(raw) != digest:
        raise IntegrityError(f"chunk {digest.hex()} in {where} fails its checksum: the pack is corrupted")
    return raw


class PackBuilder:
    """Accumulates encoded chunks until the pack is big enough to ship."""

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._entries: list[PackedChunk] = []
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, digest: bytes, stored: bytes | memoryview, size: int, codec: int) -> None:
        self._entries.append(PackedChunk(digest, self.nbytes, len(stored), size, codec))
        self._parts.append(stored)
        self.nbytes += len(stored)

    def finish(self) -> tuple[str, list[bytes | memoryview], bytes, list[PackedChunk]]:
        """Return (pack id, the pack's parts in order, footer bytes, entries).

        The parts are not joined: a pack of tens of MiB is hashed and written
        piece by piece instead of being copied once more.
        """
        footer = encode_footer(self._entries)
        parts = [*self._parts, footer, _TRAILER.pack(len(footer), MAGIC)]
        h = xxhash.xxh3_128()
        for part in parts:
            h.update(part)
        return h.hexdigest(), parts, footer, self._entries


def encode_footer(entries: list[PackedChunk]) -> bytes:
    rows = [[e.digest, e.offset, e.length, e.size, e.codec] for e in entries]
    return _compressor().compress(msgpack.packb(rows))


def decode_footer(footer: bytes, where: str) -> list[PackedChunk]:
    try:
        rows = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(footer, max_output_size=1 << 30))
        return [PackedChunk(bytes(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
    except (zstandard.ZstdError, ValueError, TypeError, IndexError, msgpack.UnpackException) as exc:
        raise IntegrityError(f"index of {where} is damaged ({exc}); run `mountfs verify`") from None


def footer_from_tail(tail: bytes, where: str) -> int:
    """Length of the footer given the pack's last 12 bytes."""
    if len(tail) < _TRAILER.size:
        raise IntegrityError(f"{where} is truncated")
    length, magic = _TRAILER.unpack(tail[-_TRAILER.size:])
    if magic != MAGIC:
        raise IntegrityError(f"{where} is not a mountfs pack (bad trailer)")
    return int(length)


TRAILER_SIZE = _TRAILER.size
