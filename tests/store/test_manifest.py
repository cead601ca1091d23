"""Manifest encoding (mountfs/store/manifest.py): round trips and corruption detection (packs: test_packs.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mountfs.errors import IntegrityError
from mountfs.store import manifest
from mountfs.store.manifest import ChunkRef, FileEntry

# valid stored paths (decoding refuses any other): folders without '.', so no file is also a folder
paths = st.builds(lambda dirs, name: "/".join([*dirs, name + ".f"]),
                  st.lists(st.text(alphabet="abcxyz_0123", min_size=1, max_size=6), max_size=3),
                  st.text(alphabet="abc.xyz_0123", min_size=1, max_size=8))


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(paths, st.tuples(st.integers(0, 2**40), st.integers(0, 0o7777), st.binary(min_size=16, max_size=16),
                                        st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.sampled_from(["a" * 32, "b" * 32])), max_size=4)),
                       max_size=30))
def test_round_trip_sorted(files) -> None:
    entries = [
        FileEntry(p, 10 * len(chunks), mode, size * 7, dig, [ChunkRef(d, 10, pack, 1, 2, 0) for d, pack in chunks])
        for p, (size, mode, dig, chunks) in files.items()
    ]
    header, out = manifest.decode(manifest.encode(entries), "test")
    assert header["count"] == len(entries)
    assert [e.path for e in out] == sorted(files)
    assert sorted(out, key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)


def test_every_flipped_byte_is_detected() -> None:
    data = manifest.encode([FileEntry("a", 1, digest=b"\0" * 16, chunks=[ChunkRef(b"\1" * 16, 1, "p", 0, 1, 0)])])
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(IntegrityError, match="manifest where"):
            manifest.decode(bytes(bad), "where")
