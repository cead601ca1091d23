"""ingest: finding the local files ``add_files`` adds (scan) and chunking them in parallel (cut_all).

Names the format cannot hold are in tests/security/test_ingest_names.py; add_files' own counting in
tests/sdk/test_changes.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mountfs import ingest
from mountfs.errors import UsageError
from mountfs.store.chunker import cut_file
from mountfs.store.format import ChunkParams


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for rel, data in {"top.txt": b"t", "b.bin": b"bb", "d1/x.bin": b"xxx", "d1/y.txt": b"yyyy",
                      "d1/deep/z.bin": b"z" * 5, "d2/w.txt": b"w" * 6}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _dpaths(found: list[tuple[str, str, int]]) -> list[str]:
    return [dpath for _, dpath, _ in found]


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot add .*nope: no such file or directory"):
        ingest.scan(str(tmp_path / "nope"))


def test_scan_gives_source_dataset_path_and_size_sorted_by_dataset_path(src: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(src.parent)
    found = ingest.scan("src")  # a relative path: sources come back absolute
    assert found == sorted(found, key=lambda t: t[1])
    assert found[0] == (str(src / "b.bin"), "b.bin", 2)
    assert {dpath: (full, size) for full, dpath, size in found}["d1/deep/z.bin"] == (str(src / "d1/deep/z.bin"), 5)
    assert _dpaths(found) == ["b.bin", "d1/deep/z.bin", "d1/x.bin", "d1/y.txt", "d2/w.txt", "top.txt"]
    monkeypatch.setenv("HOME", str(src.parent))
    assert ingest.scan("~/src") == found


def test_a_wildcard_matches_the_name_or_the_relative_path(src: Path) -> None:
    assert _dpaths(ingest.scan(str(src), wildcard="*.bin")) == ["b.bin", "d1/deep/z.bin", "d1/x.bin"]
    assert _dpaths(ingest.scan(str(src), wildcard="d1/*.txt")) == ["d1/y.txt"]
    assert _dpaths(ingest.scan(str(src), wildcard=["top.*", "d2/*"])) == ["d2/w.txt", "top.txt"]
    assert ingest.scan(str(src), wildcard="d1") == []  # a folder's name alone matches no file
    assert _dpaths(ingest.scan(str(src), wildcard=[])) == _dpaths(ingest.scan(str(src)))  # no pattern: all


def test_not_recursive_takes_the_folders_own_files(src: Path) -> None:
    assert _dpaths(ingest.scan(str(src), recursive=False)) == ["b.bin", "top.txt"]
    assert _dpaths(ingest.scan(str(src / "d1"), recursive=False)) == ["x.bin", "y.txt"]


def test_dataset_path_and_local_base_folder_place_the_files(src: Path) -> None:
    assert _dpaths(ingest.scan(str(src / "d1"), dataset_path="in/here/")) == [
        "in/here/deep/z.bin", "in/here/x.bin", "in/here/y.txt"]
    # relative to the base folder instead of the folder added
    assert _dpaths(ingest.scan(str(src / "d1" / "deep"), local_base_folder=str(src))) == ["d1/deep/z.bin"]
    assert _dpaths(ingest.scan(str(src / "d1" / "x.bin"), local_base_folder=str(src), dataset_path="p")) == [
        "p/d1/x.bin"]
    # a single file's base is its own folder
    assert ingest.scan(str(src / "d1" / "x.bin")) == [(str(src / "d1" / "x.bin"), "x.bin", 3)]
    with pytest.raises(UsageError, match=r"top.txt is not inside local_base_folder .*d1; pick a folder that contains it"):
        ingest.scan(str(src / "top.txt"), local_base_folder=str(src / "d1"))


def test_only_regular_files_are_found(src: Path, tmp_path: Path) -> None:
    os.mkfifo(src / "a-fifo")
    (src / "dangling").symlink_to(tmp_path / "gone")
    (src / "file-link").symlink_to(src / "d2" / "w.txt")  # followed: the file it names
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "e.txt").write_bytes(b"e")
    (src / "folder-link").symlink_to(elsewhere)  # not descended into
    found = {dpath: size for _, dpath, size in ingest.scan(str(src))}
    assert "a-fifo" not in found and "dangling" not in found and "folder-link/e.txt" not in found
    assert found["file-link"] == 6


def test_cut_all_yields_in_input_order_whatever_the_workers(tmp_path: Path) -> None:
    files = []
    for i in range(23):
        path = tmp_path / f"f{i:02d}"
        path.write_bytes(os.urandom(1000 + 7919 * i))
        files.append((str(path), f"f{i:02d}", path.stat().st_size))
    params = ChunkParams(min_size=4096, avg_size=8192, max_size=16384)
    seen: list[int] = []
    parallel = list(ingest.cut_all(files, params, max_workers=4, progress=seen.append, batch=2, batch_bytes=30_000))
    assert [(src, dpath) for src, dpath, _ in parallel] == [(src, dpath) for src, dpath, _ in files]
    assert sum(seen) == sum(size for *_, size in files)
    assert [cut for *_, cut in parallel] == [cut_file(src, params) for src, _, _ in files]
    serial = list(ingest.cut_all(files, params, max_workers=1))
    assert serial == parallel
    assert list(ingest.cut_all([], params, max_workers=4)) == []
