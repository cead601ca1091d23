"""The store (mountfs/store/store.py) on a real folder backend: its chunk index and the keys it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from mountfs.backends import open_backend
from mountfs.store.layout import PackIndex
from mountfs.store.packs import PackedChunk, encode_footer
from mountfs.store.store import Store

PID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


@pytest.mark.allow_warnings
def test_index_objects_named_for_no_pack_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A chunk indexed under a name that is no pack id would go into the next manifest, which then cannot be read."""
    store = Store(open_backend(str(tmp_path / "store")))
    footer = encode_footer([PackedChunk(b"\1" * 16, 0, 10, 10, 0)])
    store.backend.put(PackIndex(PID).key, footer)
    store.backend.put("index/notapack", encode_footer([PackedChunk(b"\2" * 16, 0, 10, 10, 0)]))
    index = store.chunk_index()
    assert {d: r.pack for d, r in index.items()} == {b"\1" * 16: PID}
    assert caplog.text.count("skipping index object index/notapack") == 1
    store.chunk_index()  # listed again: warned once
    assert caplog.text.count("skipping index object index/notapack") == 1
