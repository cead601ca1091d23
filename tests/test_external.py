"""add_external_files: entries that keep their source URL (file:// and http:// here; S3 in tests/backends)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.errors import SourceChanged, UsageError


def _final(ds: Dataset) -> Dataset:
    ds.finalize(auto_upload=True)
    return Dataset.get(dataset_id=ds.id)


def test_folder_url_expands_and_copies(tree: Path) -> None:
    ds = Dataset.create(dataset_name="ext", dataset_project="p")
    assert ds.add_external_files(f"file://{tree}", dataset_path="remote") == 30
    assert ds.add_external_files(f"file://{tree}/d1", wildcard="f00*.bin", recursive=False) == 3
    ds = _final(ds)
    entry = ds.file_entries_dict["remote/d2/f002.bin"]
    assert entry.url == f"file://{tree}/d2/f002.bin" and entry.etag and entry.chunks == []
    copy = Path(ds.get_local_copy())
    for f in tree.rglob("*.bin"):
        assert (copy / "remote" / f.relative_to(tree)).read_bytes() == f.read_bytes()
    assert (copy / "f001.bin").read_bytes() == (tree / "d1" / "f001.bin").read_bytes()
    # nothing was uploaded for them
    assert not (Path(os.environ["MOUNTFS_STORE"]) / "packs").exists()


@pytest.mark.allow_warnings
def test_changed_source_is_reported_not_served(tree: Path, tmp_path: Path) -> None:
    ds = Dataset.create(dataset_name="ext", dataset_project="p")
    ds.add_external_files(f"file://{tree}/d0/f000.bin")
    ds = _final(ds)
    (tree / "d0" / "f000.bin").write_bytes(b"something else entirely")
    with pytest.raises(SourceChanged, match="changed since it was added"):
        ds.get_local_copy()
    with pytest.raises(SourceChanged):
        ds.get_mutable_local_copy(tmp_path / "m")


def test_remove_by_url_and_missing_sources(tree: Path) -> None:
    ds = Dataset.create(dataset_name="ext", dataset_project="p")
    ds.add_external_files(f"file://{tree}/d3")
    assert ds.remove_files(f"file://{tree}/d3/f003.bin") == 1
    assert ds.remove_files(f"file://{tree}/d3/*") == 6
    with pytest.raises(UsageError, match="no such object"):
        ds.add_external_files(f"file://{tree}/nope")


@pytest.fixture
def http_root(tree: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tree))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_sources(tree: Path, http_root: str) -> None:
    ds = Dataset.create(dataset_name="web", dataset_project="p")
    assert ds.add_external_files([f"{http_root}/d0/f004.bin", f"{http_root}/d1/f005.bin"], dataset_path="web") == 2
    with pytest.raises(UsageError, match="HTTP sources must name files"):
        ds.add_external_files(f"{http_root}/d0")
    ds = _final(ds)
    copy = Path(ds.get_local_copy())
    assert (copy / "web" / "f004.bin").read_bytes() == (tree / "d0" / "f004.bin").read_bytes()
    assert (copy / "web" / "f005.bin").read_bytes() == (tree / "d1" / "f005.bin").read_bytes()


def test_external_and_stored_files_mix(tree: Path, tmp_path: Path) -> None:
    ds = Dataset.create(dataset_name="mix", dataset_project="p")
    ds.add_files(tree / "d0", dataset_path="local")
    ds.add_external_files(f"file://{tree}/d1", dataset_path="ext")
    ds = _final(ds)
    child = Dataset.create(dataset_name="mix", dataset_project="p", parent_datasets=[ds.id])
    child.remove_files("local/f000.bin")
    child = _final(child)
    copy = Path(child.get_mutable_local_copy(tmp_path / "out"))
    assert sorted(p.name for p in (copy / "ext").iterdir()) == sorted(p.name for p in (tree / "d1").iterdir())
    assert not (copy / "local" / "f000.bin").exists() and (copy / "local" / "f004.bin").exists()
    assert child.verify_dataset_hash() == []
