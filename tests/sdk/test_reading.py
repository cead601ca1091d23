"""sdk.reading: listings, differences to the parents, lineage and verification of one version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sdkhelp import write_files

from mountfs import Dataset
from mountfs.sdk.lifecycle import by_id
from mountfs.sdk.reading import VersionReading
from mountfs.session import Session
from mountfs.store.layout import Pack


def _reading(sess: Session, ds: Dataset) -> VersionReading:
    return VersionReading(by_id(sess, ds.id), lambda dataset_id: by_id(sess, dataset_id))


def test_list_files(sess: Session, finalized) -> None:
    ds = finalized({"top.txt": b"t", "img/a.jpg": b"a", "img/deep/b.jpg": b"b", "img/c.png": b"c"})
    reading = _reading(sess, ds)
    assert reading.list_files() == ["img/a.jpg", "img/c.png", "img/deep/b.jpg", "top.txt"]
    assert reading.list_files(recursive=False) == ["top.txt"]
    assert reading.list_files("img/*.jpg") == ["img/a.jpg", "img/deep/b.jpg"]
    assert reading.list_files("img/*.jpg", recursive=False) == ["img/a.jpg"]
    assert reading.list_files("img/deep") == ["img/deep/b.jpg"]
    other = finalized({"only.txt": b"o"}, name="other")
    assert reading.list_files(dataset_id=other.id) == ["only.txt"]


def test_changes_against_the_merged_parents(sess: Session, finalized, tmp_path: Path) -> None:
    a = finalized({"kept": b"1", "changed": b"old", "gone": b"x"})
    b = finalized({"from_b": b"b"}, name="b")
    child = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[a.id, b.id])
    child.add_files(write_files(tmp_path / "new", {"changed": b"new", "added": b"+"}))
    child.remove_files("gone")
    reading = _reading(sess, child)
    assert reading.changes() == (["added"], ["changed"], ["gone"])
    assert reading.changes(dataset_id=a.id) == (["changed", "gone", "kept"], [], [])


def test_dependency_graph_of_a_diamond(sess: Session, finalized) -> None:
    root = finalized({"r": b"r"}, name="root")
    left = finalized({"l": b"l"}, name="left", parent_datasets=[root.id])
    right = finalized({"x": b"x"}, name="right", parent_datasets=[root.id])
    top = Dataset.create(dataset_name="top", dataset_project="p", parent_datasets=[left.id, right.id])
    assert _reading(sess, top).get_dependency_graph() == {
        top.id: [left.id, right.id], left.id: [root.id], right.id: [root.id], root.id: [],
    }


def test_verify_a_local_copy(sess: Session, finalized, tmp_path: Path) -> None:
    ds = finalized({"same": b"s" * 100, "flipped": b"f" * 100, "shorter": b"x" * 100, "missing": b"m"})
    copy = Path(ds.get_mutable_local_copy(tmp_path / "copy"))
    (copy / "flipped").write_bytes(b"F" + b"f" * 99)  # same size, other content
    (copy / "shorter").write_bytes(b"x")
    os.unlink(copy / "missing")
    reading = _reading(sess, ds)
    assert reading.verify_dataset_hash(str(copy)) == ["flipped", "missing", "shorter"]
    assert reading.verify_dataset_hash(str(copy), skip_hash=True) == ["missing", "shorter"]


@pytest.mark.allow_warnings  # the damaged read is retried once, with a warning
def test_verify_in_the_store_names_exactly_the_damaged_files(sess: Session, finalized, capsys) -> None:
    ds = finalized({f"f{i}": bytes([i]) * 2000 + os.urandom(16) for i in range(5)})
    reading = _reading(sess, ds)
    assert reading.verify_dataset_hash() == []
    victim = ds.file_entries_dict["f2"].chunks[0]
    pack = Path(os.environ["MOUNTFS_STORE"]) / Pack(victim.pack).key
    data = bytearray(pack.read_bytes())
    data[victim.offset] ^= 0xFF
    pack.write_bytes(bytes(data))
    assert reading.verify_dataset_hash(verbose=True) == ["f2"]
    assert "FAILED: f2" in capsys.readouterr().err
