"""sdk.changes: adding local and external files to a draft, removing them (folders are listed through
Session.folder: tests/test_session.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdkhelp import write_files

from mountfs import Dataset
from mountfs.catalog import DRAFT, UPLOADED
from mountfs.errors import StateError, UsageError
from mountfs.sdk.changes import DraftChanges
from mountfs.sdk.lifecycle import by_id
from mountfs.session import Session


def test_added_files_are_saved_and_unchanged_ones_skipped(sess: Session, tmp_path: Path) -> None:
    src = write_files(tmp_path / "src", {"a.txt": b"a", "sub/b.txt": b"b" * 5000})
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    changes = DraftChanges(by_id(sess, draft.id))
    assert changes.add_files(src, dataset_path="top") == 2
    assert changes.add_files(src, dataset_path="top") == 0  # same content: nothing to do
    (src / "a.txt").write_bytes(b"changed")
    assert changes.add_files(src, dataset_path="top", wildcard="*.txt", recursive=False) == 1
    saved = by_id(sess, draft.id).table()  # what another process continues from
    assert sorted(saved) == ["top/a.txt", "top/sub/b.txt"]
    assert saved["top/a.txt"].size == len(b"changed")


def test_a_path_both_file_and_folder_is_refused_before_any_change(sess: Session, tmp_path: Path) -> None:
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    changes = DraftChanges(by_id(sess, draft.id))
    changes.add_files(write_files(tmp_path / "one", {"a": b"file"}))
    with pytest.raises(UsageError, match="a path cannot be both a file and a folder"):
        changes.add_files(write_files(tmp_path / "two", {"a/b": b"in a folder", "c": b"c"}))
    assert by_id(sess, draft.id).table().keys() == {"a"}


def test_a_change_after_upload_makes_the_draft_need_uploading_again(sess: Session, tmp_path: Path) -> None:
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    draft.add_files(write_files(tmp_path / "src", {"a": b"a"}))
    draft.upload(show_progress=False)
    assert sess.catalog.get(draft.id).status == UPLOADED
    changes = DraftChanges(by_id(sess, draft.id))
    assert changes.remove_files("a") == 1
    assert sess.catalog.get(draft.id).status == DRAFT


def test_remove_by_path_wildcard_and_source_url(sess: Session, tmp_path: Path) -> None:
    src = write_files(tmp_path / "src", {"keep.txt": b"k", "drop.bin": b"d", "dir/x.bin": b"x", "dir/y.txt": b"y"})
    ext = write_files(tmp_path / "ext", {"e1": b"1", "sub/e2": b"2"})
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    changes = DraftChanges(by_id(sess, draft.id))
    changes.add_files(src)
    changes.add_external_files(f"file://{ext}", dataset_path="ext")
    assert changes.remove_files("*.bin", recursive=False) == 1
    assert changes.remove_files("dir") == 2
    assert changes.remove_files(f"file://{ext}/sub") == 1
    assert sorted(by_id(sess, draft.id).table()) == ["ext/e1", "keep.txt"]


def test_a_finalized_version_refuses_changes(sess: Session, finalized, tmp_path: Path) -> None:
    changes = DraftChanges(by_id(sess, finalized({"a": b"a"}).id))
    with pytest.raises(StateError, match="cannot add files"):
        changes.add_files(tmp_path)
    with pytest.raises(StateError, match="cannot add external files"):
        changes.add_external_files("file:///nowhere")
    with pytest.raises(StateError, match="cannot remove files"):
        changes.remove_files("a")


def test_external_folders_expand_to_their_files(sess: Session, tmp_path: Path) -> None:
    ext = write_files(tmp_path / "ext", {"a.csv": b"1,2", "deep/b.csv": b"3,4", "deep/c.txt": b"no"})
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    changes = DraftChanges(by_id(sess, draft.id))
    assert changes.add_external_files(f"file://{ext}", wildcard="*.csv") == 2
    assert changes.add_external_files(f"file://{ext}", dataset_path="flat", recursive=False) == 1
    table = by_id(sess, draft.id).table()
    assert table["deep/b.csv"].url == f"file://{ext}/deep/b.csv" and table["flat/a.csv"].size == 3
    with pytest.raises(UsageError, match="no such object, and no objects under it as a folder"):
        changes.add_external_files(f"file://{tmp_path}/missing")


def test_add_files_options(tree: Path) -> None:
    (tree / "d0" / "keep.jpg").write_bytes(b"jpg")
    (tree / "d1" / "also.png").write_bytes(b"png")
    ds = Dataset.create(dataset_name="opts", dataset_project="p")
    assert ds.add_files(tree, wildcard="*.jpg") == 1
    assert ds.add_files(tree, wildcard=["*.png", "nothing*"], dataset_path="imgs") == 1
    assert ds.add_files(tree / "d2", local_base_folder=str(tree), recursive=False) == 7
    assert ds.add_files(tree / "d0" / "f000.bin", dataset_path="single") == 1
    assert ds.list_files() == sorted(
        ["d0/keep.jpg", "imgs/d1/also.png", "single/f000.bin"] + [f"d2/f{i:03d}.bin" for i in range(2, 30, 4)]
    )
    assert ds.remove_files("imgs") == 1


def test_paths_escaping_the_dataset_are_refused(tree: Path) -> None:
    # which paths escape is tests/catalog/test_names.py's; here: every way of adding or removing checks it
    ds = Dataset.create(dataset_name="x", dataset_project="p")
    for bad in ("../outside", "/../outside"):  # a leading '/' is the dataset root (ClearML), '..' still escapes
        with pytest.raises(UsageError, match="absolute|escapes"):
            ds.add_files(tree, dataset_path=bad)
        with pytest.raises(UsageError, match="absolute|escapes"):
            ds.remove_files(bad)
        with pytest.raises(UsageError, match="absolute|escapes"):
            ds.add_external_files(f"file://{tree}", dataset_path=bad)
    assert ds.list_files() == []
