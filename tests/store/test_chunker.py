"""Content-defined chunking: lossless, deterministic, and local to an edit."""

from __future__ import annotations

import os
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mountfs.store.chunker import cut_file, digest_of
from mountfs.store.format import ChunkParams

SMALL = ChunkParams(min_size=4 << 10, avg_size=16 << 10, max_size=64 << 10)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=300_000), st.integers(0, 2**32))
def test_chunks_cover_the_file_exactly(tmp_path_factory, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    blob = data + rng.randbytes(rng.randint(0, 200_000))
    p = tmp_path_factory.mktemp("c") / "f"
    p.write_bytes(blob)
    cut = cut_file(str(p), SMALL)
    assert cut.size == len(blob) == sum(n for _, n in cut.chunks)
    assert cut.digest == digest_of(blob)
    offset = 0
    for d, n in cut.chunks:
        assert d == digest_of(blob[offset:offset + n])
        assert n <= SMALL.max_size
        offset += n
    assert cut_file(str(p), SMALL).chunks == cut.chunks


def test_one_byte_insert_changes_at_most_three_chunks(tmp_path: Path) -> None:
    blob = os.urandom(40 << 20)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(blob)
    mid = len(blob) // 2
    b.write_bytes(blob[:mid] + b"\x00" + blob[mid:])
    params = ChunkParams()
    before = {d for d, _ in cut_file(str(a), params).chunks}
    after = cut_file(str(b), params).chunks
    new = [d for d, _ in after if d not in before]
    assert 1 <= len(new) <= 3


def test_small_file_is_one_chunk(tmp_path: Path) -> None:
    p = tmp_path / "s"
    p.write_bytes(b"x" * 1000)
    assert len(cut_file(str(p), ChunkParams()).chunks) == 1
    p.write_bytes(b"")
    assert cut_file(str(p), ChunkParams()).chunks == []
