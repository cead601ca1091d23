"""Bad input gets a clear error and loses nothing (DESIGN.md §8)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.errors import (
    Conflict,
    IntegrityError,
    LocalDiskError,
    NotFound,
    SourceChanged,
    StateError,
    UsageError,
)


def _final(src: Path, name: str = "ds") -> Dataset:
    ds = Dataset.create(dataset_name=name, dataset_project="p")
    ds.add_files(src)
    ds.finalize(auto_upload=True)
    return ds


@pytest.mark.parametrize("bad", ["../outside", "a/../../b", "/abs/path", ".."])
def test_paths_escaping_the_dataset(tree: Path, bad: str) -> None:
    ds = Dataset.create(dataset_name="x", dataset_project="p")
    with pytest.raises(UsageError, match="absolute|escapes"):
        ds.add_files(tree, dataset_path=bad)
    with pytest.raises(UsageError, match="absolute|escapes"):
        ds.remove_files(bad)
    assert ds.list_files() == []


def test_missing_path(tmp_path: Path) -> None:
    ds = Dataset.create(dataset_name="x", dataset_project="p")
    with pytest.raises(UsageError, match="no such file"):
        ds.add_files(tmp_path / "nope")


@pytest.mark.parametrize("name,project", [("a/b", "p"), ("", "p"), (".hidden", "p"), ("ok", "p/../q"), ("ok", "")])
def test_names_that_cannot_be_directories(name: str, project: str) -> None:
    with pytest.raises(UsageError):
        Dataset.create(dataset_name=name, dataset_project=project)


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


def test_file_changed_after_add_is_refused_at_upload(tree: Path) -> None:
    ds = Dataset.create(dataset_name="x", dataset_project="p")
    ds.add_files(tree)
    victim = tree / "d1" / "f005.bin"
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(1, 1))
    with pytest.raises(SourceChanged, match="f005.bin changed after it was added"):
        ds.upload(show_progress=False)
    assert not ds.is_final()
    ds.add_files(victim, local_base_folder=tree)
    ds.finalize(auto_upload=True)
    assert Path(ds.get_local_copy(), "d1", "f005.bin").read_bytes() == bytes(data)


@pytest.mark.allow_warnings
def test_parents_must_exist_and_be_final(tree: Path) -> None:
    with pytest.raises(NotFound, match="no dataset with id"):
        Dataset.create(dataset_name="c", dataset_project="p", parent_datasets=["0123456789abcdef0000"])
    draft = Dataset.create(dataset_name="d", dataset_project="p")
    with pytest.raises(StateError, match="not finalized"):
        Dataset.create(dataset_name="c", dataset_project="p", parent_datasets=[draft.id])
    with pytest.raises(StateError, match="not finalized"):
        draft.get_local_copy()
    assert draft.get_local_copy(raise_on_error=False) is None


@pytest.mark.parametrize("version", ["1.x", "v1", "1..2", "", "1.0-rc1"])
def test_malformed_version(version: str) -> None:
    with pytest.raises(UsageError, match="malformed version"):
        Dataset.create(dataset_name="x", dataset_project="p", dataset_version=version)


def test_duplicate_version() -> None:
    Dataset.create(dataset_name="x", dataset_project="p", dataset_version="1.0")
    with pytest.raises(Conflict, match="already exists"):
        Dataset.create(dataset_name="x", dataset_project="p", dataset_version="1.0")


@pytest.mark.allow_warnings
def test_corrupted_pack_is_never_served(tree: Path) -> None:
    ds = _final(tree)
    pack = next(p for p in (Path(os.environ["MOUNTFS_STORE"]) / "packs").rglob("*") if p.is_file())
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 0x01
    pack.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"packs/{pack.parent.name}/{pack.name}"):
        ds.get_local_copy()
    copies = Path(os.environ["MOUNTFS_CACHE_DIR"]) / "copies"
    assert not any(copies.glob("*.complete")) and not any(copies.glob("*.building-*"))
    assert ds.verify_dataset_hash() != []


def test_corrupted_manifest_names_the_object(tree: Path) -> None:
    ds = _final(tree)
    manifest = Path(os.environ["MOUNTFS_STORE"]) / "datasets" / ds.id / "manifest"
    raw = bytearray(manifest.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    manifest.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"datasets/{ds.id}/manifest"):
        Dataset.get(dataset_id=ds.id).list_files()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_full_disk_while_building_a_local_copy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}.bin").write_bytes(os.urandom(1 << 20))
    ds = _final(src)
    copies = Path(os.environ["MOUNTFS_CACHE_DIR"]) / "copies"
    copies.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(copies)], check=True)
    try:
        with pytest.raises(LocalDiskError, match="no space left"):
            ds.get_local_copy()
        assert os.listdir(copies) == []  # nothing half-built left, nothing marked complete
    finally:
        subprocess.run(["umount", str(copies)], check=True)
    assert Path(ds.get_local_copy(), "f3.bin").read_bytes() == (src / "f3.bin").read_bytes()
