"""Store.read_block: a pack range received into one buffer, and when it applies."""

from __future__ import annotations

import random

import pytest
import xxhash

from mountfs.errors import IntegrityError
from mountfs.store import ChunkRef, Store, block_length
from mountfs.store.packs import CODEC_NONE, CODEC_ZSTD, pack_key
from mountfs.store.store import COALESCE_GAP


def ref(offset: int, length: int, pack: str = "p", codec: int = CODEC_NONE, data: bytes = b"") -> ChunkRef:
    return ChunkRef(xxhash.xxh3_128_digest(data), length, pack, offset, length, codec)


def test_block_length_only_for_uncompressed_chunks_of_one_pack_close_together() -> None:
    assert block_length([ref(100, 10), ref(110, 20), ref(200, 5)]) == 105
    assert block_length([ref(0, 10), ref(10, 10, codec=CODEC_ZSTD)]) is None
    assert block_length([ref(0, 10), ref(10, 10, pack="q")]) is None
    assert block_length([ref(0, 10), ref(10 + COALESCE_GAP, 10)]) == COALESCE_GAP + 20
    assert block_length([ref(0, 10), ref(11 + COALESCE_GAP, 10)]) is None
    assert block_length([]) is None


@pytest.mark.allow_warnings
def test_read_block_returns_verified_views_and_refuses_damage(tmp_path) -> None:
    store = Store.open(str(tmp_path / "store"))
    rng = random.Random(5)
    chunks = [rng.randbytes(n) for n in (3000, 50_000, 7)]
    pack = rng.randbytes(100) + chunks[0] + rng.randbytes(40) + chunks[1] + chunks[2]
    offsets = [100, 3140, 53140]
    store.backend.put(pack_key("p"), pack)
    refs = [ref(off, len(c), data=c) for off, c in zip(offsets, chunks)]
    buf = memoryview(bytearray(block_length(refs)))
    got = store.read_block(refs, buf)
    assert {d: bytes(v) for d, v in got.items()} == {r.digest: c for r, c in zip(refs, chunks)}
    assert all(v.obj is buf.obj for v in got.values())  # views of the caller's buffer, no copies
    damaged = bytearray(pack)
    damaged[3200] ^= 1
    store.backend.put(pack_key("p"), bytes(damaged))
    with pytest.raises(IntegrityError, match=pack_key("p")):
        store.read_block(refs, buf)
    store.backend.delete(pack_key("p"))
    with pytest.raises(IntegrityError, match="missing"):
        store.read_block(refs, buf)
    store.close()
