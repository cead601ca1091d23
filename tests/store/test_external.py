"""External files (mountfs/store/external.py): entries that keep their source URL instead of chunks.

First the two checks every read of a source goes through (check_unchanged, read_range) on a real
folder, then add_external_files end to end (file:// and http:// here; S3 in
tests/backends/test_sdk_on_s3.py).  Which sources a process may read (SourcePolicy) is
tests/security/test_external_policy.py.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.backends.file import FileBackend
from mountfs.errors import SourceChanged, UsageError
from mountfs.store.external import check_unchanged, read_range
from mountfs.store.manifest import FileEntry

CONTENT = bytes(range(256)) * 40


def _added(tmp_path: Path) -> tuple[FileBackend, FileEntry]:
    """A source file and its entry as add_external_files records it (size and tag at the time)."""
    (tmp_path / "src.bin").write_bytes(CONTENT)
    source = FileBackend(tmp_path)
    info = source.stat("src.bin")
    return source, FileEntry("ext/src.bin", info.size, url=f"file://{tmp_path}/src.bin", etag=info.etag)


def test_an_unchanged_source_is_served(tmp_path: Path) -> None:
    source, entry = _added(tmp_path)
    check_unchanged(source, "src.bin", entry)
    assert read_range(source, "src.bin", entry, 100, 50) == CONTENT[100:150]
    assert read_range(source, "src.bin", entry, len(CONTENT) - 5, 100) == CONTENT[-5:]
    assert read_range(source, "src.bin", entry, len(CONTENT), 10) == b""


def test_a_source_of_another_size_or_tag_is_refused(tmp_path: Path) -> None:
    source, entry = _added(tmp_path)
    (tmp_path / "src.bin").write_bytes(CONTENT + b"more")
    with pytest.raises(SourceChanged, match=f"file://{tmp_path}/src.bin changed since it was added .*"
                                            f"size {len(CONTENT)} -> {len(CONTENT) + 4}.*add it again"):
        check_unchanged(source, "src.bin", entry)
    # same size, new content: the tag (mtime here, an ETag or generation in a bucket) tells
    (tmp_path / "src.bin").write_bytes(CONTENT[::-1])
    os.utime(tmp_path / "src.bin", ns=(1, 1))
    with pytest.raises(SourceChanged, match="tag"):
        check_unchanged(source, "src.bin", entry)
    # an entry recorded without a tag (a server that gave none) is checked by size alone
    check_unchanged(source, "src.bin", FileEntry(entry.path, entry.size, url=entry.url))


def test_a_short_or_long_answer_is_never_served(tmp_path: Path) -> None:
    source, entry = _added(tmp_path)
    (tmp_path / "src.bin").write_bytes(CONTENT[:1000])  # shrank after the check
    with pytest.raises(SourceChanged, match="returned 0 bytes where 100 were expected"):
        read_range(source, "src.bin", entry, 5000, 100)
    (tmp_path / "src.bin").write_bytes(CONTENT + b"grown")  # grew: the entry's end is where it ends
    with pytest.raises(SourceChanged, match="returned 10 bytes where 5 were expected"):
        read_range(source, "src.bin", entry, len(CONTENT) - 5, 10)


# --- add_external_files ---------------------------------------------------------------------------


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
