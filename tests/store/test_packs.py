"""Packs (mountfs/store/packs.py): chunk encoding, the builder, the footer and trailer, and damage found.

How packs are written to a store and indexed is test_upload.py; how a reader re-checks chunks from disk
is tests/cache/test_cache_integrity.py.
"""

from __future__ import annotations

import os
import random

import msgpack
import pytest
import xxhash
import zstandard

from mountfs.errors import IntegrityError
from mountfs.store.packs import (CODEC_NONE, CODEC_ZSTD, MAGIC, TRAILER_SIZE, PackBuilder, PackedChunk, decode_chunk,
                                 decode_footer, encode_chunk, encode_footer, footer_from_tail)


def _digest(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def _pack(chunks: list[bytes], compress: bool = True) -> tuple[str, bytes, bytes, list[PackedChunk]]:
    b = PackBuilder()
    for c in chunks:
        stored, codec = encode_chunk(c, compress)
        b.add(_digest(c), stored, len(c), codec)
    pack_id, parts, footer, entries = b.finish()
    return pack_id, b"".join(parts), footer, entries


def _read_pack(body: bytes, where: str = "packs/x") -> dict[bytes, bytes]:
    """Every chunk of a pack from its bytes alone, as `mountfs verify` reads one."""
    length = footer_from_tail(body[-TRAILER_SIZE:], where)
    entries = decode_footer(body[-TRAILER_SIZE - length:-TRAILER_SIZE], where)
    return {e.digest: bytes(decode_chunk(body[e.offset:e.offset + e.length], e.codec, e.size, e.digest, where))
            for e in entries}


# --- chunks -----------------------------------------------------------------------------------


def test_encode_compresses_only_when_it_pays() -> None:
    text = b"the same words again and again " * 1000
    noise = os.urandom(100_000)
    stored, codec = encode_chunk(text, True)
    assert codec == CODEC_ZSTD and len(stored) <= len(text) * 7 // 8
    assert encode_chunk(noise, True) == (noise, CODEC_NONE)
    assert encode_chunk(text, False) == (text, CODEC_NONE), "compression switched off"
    assert encode_chunk(b"a" * 511, True) == (b"a" * 511, CODEC_NONE), "not worth it below 512 bytes"
    # a head that barely compresses (media) skips zstd on the whole chunk
    big_noise = os.urandom(1 << 20)
    assert encode_chunk(big_noise, True) == (big_noise, CODEC_NONE)
    # saving less than an eighth is not worth the decompression at every read
    mostly_noise = b"\0" * 10_000 + os.urandom(90_000)
    assert encode_chunk(mostly_noise, True)[1] == CODEC_NONE


@pytest.mark.parametrize("compress", [True, False])
def test_decode_gives_back_the_chunk(compress: bool) -> None:
    for data in (b"", b"x", b"abc" * 10_000, os.urandom(70_000)):
        stored, codec = encode_chunk(memoryview(data), compress)
        assert bytes(decode_chunk(stored, codec, len(data), _digest(data), "p")) == data


def test_damaged_chunks_are_integrity_errors_naming_the_pack() -> None:
    data = b"abc" * 10_000
    stored, codec = encode_chunk(data, True)
    assert codec == CODEC_ZSTD
    flipped = bytearray(stored)
    flipped[len(flipped) // 2] ^= 0xFF
    raw_flipped = bytearray(data)
    raw_flipped[0] ^= 1
    cases = [
        (bytes(flipped), codec, len(data)),  # a compressed chunk with a flipped byte
        (b"not zstd at all", CODEC_ZSTD, len(data)),
        (stored, codec, len(data) - 1),  # the index says another size
        (bytes(raw_flipped), CODEC_NONE, len(data)),
        (data[:-1], CODEC_NONE, len(data)),  # cut short
    ]
    for stored_bytes, c, size in cases:
        with pytest.raises(IntegrityError, match=r"chunk [0-9a-f]{32} in packs/ab/x .*the pack is corrupted"):
            decode_chunk(stored_bytes, c, size, _digest(data), "packs/ab/x")


def test_a_chunk_cannot_decompress_past_its_size() -> None:
    # a crafted chunk of a few KiB that would expand to 1 GiB must not be expanded: its index says 1000 bytes
    zc = zstandard.ZstdCompressor().compressobj(size=1 << 30)
    zeros = bytes(1 << 20)
    bomb = b"".join(zc.compress(zeros) for _ in range(1024)) + zc.flush()
    assert len(bomb) < 100_000
    with pytest.raises(IntegrityError, match="corrupted"):
        decode_chunk(bomb, CODEC_ZSTD, 1000, _digest(b"\0" * 1000), "p")


# --- whole packs ---------------------------------------------------------------------------------


def test_pack_round_trip_and_corruption() -> None:
    chunks = [os.urandom(5000), b"z" * 50_000, b""]
    b = PackBuilder()
    for c in chunks:
        stored, codec = encode_chunk(c, True)
        b.add(xxhash.xxh3_128_digest(c), stored, len(c), codec)
    pack_id, parts, footer, entries = b.finish()
    body = b"".join(parts)
    assert xxhash.xxh3_128_hexdigest(body) == pack_id
    assert decode_footer(footer, "x") == entries
    assert entries[1].codec != CODEC_NONE and entries[1].length < 50_000
    for c, e in zip(chunks, entries):
        assert decode_chunk(body[e.offset:e.offset + e.length], e.codec, e.size, e.digest, "x") == c
    e = entries[0]
    bad = bytearray(body[e.offset:e.offset + e.length])
    bad[7] ^= 1
    with pytest.raises(IntegrityError, match="checksum"):
        decode_chunk(bytes(bad), e.codec, e.size, e.digest, "x")


def test_a_pack_reads_back_from_its_bytes_alone() -> None:
    rng = random.Random(4)
    chunks = [rng.randbytes(rng.randint(0, 20_000)) for _ in range(50)] + [b"q" * 30_000]
    pack_id, body, footer, entries = _pack(chunks)
    assert _read_pack(body) == {_digest(c): c for c in chunks}
    assert body.endswith(MAGIC) and body[-TRAILER_SIZE - len(footer):-TRAILER_SIZE] == footer
    # chunks lie back to back from the start, in the order added
    assert [e.offset for e in entries] == [sum(e.length for e in entries[:i]) for i in range(len(entries))]
    assert [e.digest for e in entries] == [_digest(c) for c in chunks]


def test_the_builder_keeps_the_chunks_unjoined_and_counts_them() -> None:
    b = PackBuilder()
    first = memoryview(os.urandom(1000))
    b.add(_digest(bytes(first)), first, 1000, CODEC_NONE)
    b.add(_digest(b"x"), b"x", 1, CODEC_NONE)
    assert (len(b), b.nbytes) == (2, 1001)
    _, parts, _, _ = b.finish()
    assert parts[0] is first, "a pack of tens of MiB is written piece by piece, never copied into one buffer"


def test_the_same_chunks_make_the_same_pack() -> None:
    # a pack id is its content's hash: writing it twice (a retried upload) is harmless
    chunks = [b"a" * 5000, os.urandom(3000)]
    assert _pack(chunks)[0] == _pack(chunks)[0]
    assert _pack(chunks)[0] != _pack(chunks[::-1])[0]


def test_a_damaged_or_cut_pack_is_found() -> None:
    chunks = [os.urandom(4000), b"y" * 40_000]
    _, body, footer, entries = _pack(chunks)
    with pytest.raises(IntegrityError, match="packs/x is truncated"):
        footer_from_tail(body[-5:], "packs/x")
    with pytest.raises(IntegrityError, match="not a mountfs pack"):
        footer_from_tail(body[:-1] + b"2", "packs/x")
    with pytest.raises(IntegrityError, match="not a mountfs pack"):
        _read_pack(body[:-100])  # cut: the last 12 bytes are no trailer
    damaged_footer = body[:-TRAILER_SIZE - len(footer)] + bytes(b ^ 0x55 for b in footer) + body[-TRAILER_SIZE:]
    with pytest.raises(IntegrityError, match="index of packs/x is damaged.*mountfs verify"):
        _read_pack(damaged_footer)
    for e in entries:  # a flipped byte in any chunk is that chunk's error
        bad = bytearray(body)
        bad[e.offset + e.length // 2] ^= 0x01
        with pytest.raises(IntegrityError, match=e.digest.hex()):
            _read_pack(bytes(bad))


@pytest.mark.parametrize("footer", [
    b"", b"garbage",
    zstandard.ZstdCompressor().compress(msgpack.packb([1, 2])),  # rows that are not rows
    zstandard.ZstdCompressor().compress(msgpack.packb([[b"d" * 16, 0]])),  # rows cut short
    zstandard.ZstdCompressor().compress(b"\xc1"),  # not msgpack
], ids=["empty", "not zstd", "not rows", "short rows", "not msgpack"])
def test_damaged_footers_are_integrity_errors(footer: bytes) -> None:
    with pytest.raises(IntegrityError, match="index of index/p is damaged"):
        decode_footer(footer, "index/p")


def test_the_footer_round_trips() -> None:
    entries = [PackedChunk(i.to_bytes(16, "big"), i * 100, 100, 200, i % 2) for i in range(300)]
    assert decode_footer(encode_footer(entries), "x") == entries
    assert decode_footer(encode_footer([]), "x") == []
