"""Bad input gets a clear error and loses nothing (DESIGN.md §8).

Most cases live in the test file of the module that refuses them (tests/sdk/test_changes.py,
test_lifecycle.py, test_closing.py, tests/test_ingest.py, tests/test_localcopy.py); these two are the
store's (chunker, manifest).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.errors import IntegrityError, SourceChanged


def _final(src: Path, name: str = "ds") -> Dataset:
    ds = Dataset.create(dataset_name=name, dataset_project="p")
    ds.add_files(src)
    ds.finalize(auto_upload=True)
    return ds


def test_file_growing_while_added_is_detected(tmp_path: Path) -> None:
    growing = tmp_path / "log.bin"
    growing.write_bytes(os.urandom(64 << 20))
    stop = threading.Event()
    block = os.urandom(1 << 16)

    def writer() -> None:
        with open(growing, "ab", buffering=0) as fh:
            while not stop.is_set():
                fh.write(block)
                time.sleep(0.0005)

    t = threading.Thread(target=writer)
    t.start()
    start = growing.stat().st_size
    while growing.stat().st_size == start:  # the writer is really appending
        time.sleep(0.001)
    try:
        ds = Dataset.create(dataset_name="x", dataset_project="p")
        with pytest.raises(SourceChanged, match="changed while"):
            ds.add_files(growing)
    finally:
        stop.set()
        t.join()
    assert ds.list_files() == []


def test_corrupted_manifest_names_the_object(tree: Path) -> None:
    ds = _final(tree)
    manifest = Path(os.environ["MOUNTFS_STORE"]) / "datasets" / ds.id / "manifest"
    raw = bytearray(manifest.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    manifest.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"datasets/{ds.id}/manifest"):
        Dataset.get(dataset_id=ds.id).list_files()
