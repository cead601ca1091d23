"""``Dataset.sync_folder`` (ClearML's meaning and counts) and a leading '/' in ``dataset_path`` meaning the root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
from sdkhelp import same_tree, write_files

from mountfs import Dataset, ingest
from mountfs.errors import NotFound, StateError, UsageError
from mountfs.session import Session
from mountfs.store.chunker import CutFile


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """path -> bytes the ingest cut (read and hashed) since the test began; the real ``cut_file`` does the work."""
    seen: dict[str, int] = {}
    real: Callable[..., CutFile] = ingest.cut_file

    def counting(path: str, *args: object, **kwargs: object) -> CutFile:
        cut = real(path, *args, **kwargs)
        seen[path] = seen.get(path, 0) + cut.size
        return cut

    monkeypatch.setattr(ingest, "cut_file", counting)
    return seen


def _edit(path: Path, data: bytes) -> None:
    """Rewrite ``path`` with a different mtime than it had (a coarse-clock filesystem could keep the same one)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(data)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_clearml_folder_sync_example(tmp_path: Path) -> None:
    """ClearML's example: create, sync_folder, upload, change the folder, sync_folder, upload, finalize."""
    folder = write_files(tmp_path / "folder", {"a.txt": b"a" * 100, "sub/b.txt": b"b" * 200, "sub/c.txt": b"c"})
    ds = Dataset.create(dataset_name="synced", dataset_project="p")
    assert ds.sync_folder(folder) == (0, 3, 0)
    ds.upload(show_progress=False)
    (folder / "sub" / "c.txt").unlink()
    _edit(folder / "a.txt", b"A" * 150)
    (folder / "new.txt").write_bytes(b"new")
    assert ds.sync_folder(local_path=folder, verbose=True) == (1, 1, 1)
    assert ds.is_dirty()
    ds.upload(show_progress=False)
    assert ds.finalize()
    got = Dataset.get(dataset_id=ds.id)
    assert got.list_files() == ["a.txt", "new.txt", "sub/b.txt"]
    same_tree(Path(got.get_local_copy() or ""), folder)


def test_a_child_synced_after_adds_edits_and_deletes_reads_only_what_changed(
    tmp_path: Path, bytes_read: dict[str, int]
) -> None:
    files = {f"keep/{i:02d}.bin": bytes([i]) * 50_000 for i in range(20)}
    files |= {"edit.bin": b"e" * 1000, "same-size.bin": b"s" * 1000, "gone/x.bin": b"x" * 10, "touched.bin": b"t" * 10}
    folder = write_files(tmp_path / "folder", files)
    parent = Dataset.create(dataset_name="d", dataset_project="p")
    parent.add_files(folder)
    parent.upload(show_progress=False)
    parent.finalize()
    bytes_read.clear()

    _edit(folder / "edit.bin", b"E" * 3000)
    _edit(folder / "same-size.bin", b"S" * 1000)  # same size, new mtime: changed
    (folder / "gone" / "x.bin").unlink()
    (folder / "gone").rmdir()
    (folder / "added.bin").write_bytes(b"+" * 70)
    st = (folder / "touched.bin").stat()
    os.utime(folder / "touched.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # content as it was

    child = Dataset.create(parent_datasets=[parent.id])
    assert child.sync_folder(folder) == (1, 1, 2)
    read = {os.path.relpath(p, folder): n for p, n in bytes_read.items()}
    # the 20 unchanged files (1 MB) were recognised by size and mtime, never read
    assert read == {"edit.bin": 3000, "same-size.bin": 1000, "added.bin": 70, "touched.bin": 10}
    assert child.list_added_files() == ["added.bin"]
    assert child.list_modified_files() == ["edit.bin", "same-size.bin"]
    assert child.list_removed_files() == ["gone/x.bin"]
    child.upload(show_progress=False)
    child.finalize()
    same_tree(Path(Dataset.get(dataset_id=child.id).get_local_copy() or ""), folder)

    # once more, nothing changed: nothing is read, the touched file's new mtime is the version's
    again = Dataset.create(parent_datasets=[child.id])
    bytes_read.clear()
    assert again.sync_folder(folder) == (0, 0, 0)
    assert bytes_read == {}
    assert again.file_entries_dict["touched.bin"].mtime_ns == (folder / "touched.bin").stat().st_mtime_ns


def test_verify_hashes_every_file_and_finds_what_size_and_mtime_miss(tmp_path: Path, bytes_read: dict[str, int]) -> None:
    folder = write_files(tmp_path / "folder", {"a.bin": b"a" * 500, "b.bin": b"b" * 700})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    ds.sync_folder(folder)
    ds.upload(show_progress=False)
    st = (folder / "a.bin").stat()
    (folder / "a.bin").write_bytes(b"A" * 500)
    os.utime(folder / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, mtime put back
    bytes_read.clear()
    assert ds.sync_folder(folder) == (0, 0, 0)  # trusted, as documented
    assert bytes_read == {}
    assert ds.sync_folder(folder, verify=True) == (0, 0, 1)
    assert sum(bytes_read.values()) == 1200
    ds.upload(show_progress=False)
    ds.finalize()
    assert Path(Dataset.get(dataset_id=ds.id).get_local_copy() or "", "a.bin").read_bytes() == b"A" * 500


def test_a_file_touched_between_two_syncs_before_upload_still_uploads(tmp_path: Path) -> None:
    """The upload reads the file it was cut from and checks its mtime: a second sync keeps that mtime current."""
    folder = write_files(tmp_path / "folder", {"a.bin": b"a" * 5000})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    ds.sync_folder(folder)
    st = (folder / "a.bin").stat()
    os.utime(folder / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    assert ds.sync_folder(folder) == (0, 0, 0)
    ds.upload(show_progress=False)
    assert ds.finalize()
    assert Path(Dataset.get(dataset_id=ds.id).get_local_copy() or "", "a.bin").read_bytes() == b"a" * 5000


def test_add_files_again_after_a_touch_keeps_the_upload_working(tmp_path: Path) -> None:
    """add_files shares the cutting with sync_folder: the same content with a new mtime refreshes the entry."""
    folder = write_files(tmp_path / "folder", {"a.bin": b"a" * 5000})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    assert ds.add_files(folder) == 1
    st = (folder / "a.bin").stat()
    os.utime(folder / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    assert ds.add_files(folder) == 0
    ds.upload(show_progress=False)
    assert ds.finalize()


def test_dataset_path_limits_the_sync_and_a_leading_slash_is_the_root(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "folder", {"one.txt": b"1", "deep/two.txt": b"2"})
    other = write_files(tmp_path / "other", {"o.txt": b"o"})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    ds.add_files(other, dataset_path="elsewhere")
    ds.add_files(other)  # o.txt at the root: outside "/sub/", so a sync there leaves it
    assert ds.sync_folder(folder, dataset_path="/sub/") == (0, 2, 0)
    assert ds.list_files() == ["elsewhere/o.txt", "o.txt", "sub/deep/two.txt", "sub/one.txt"]
    (folder / "deep" / "two.txt").unlink()
    assert ds.sync_folder(folder, dataset_path="sub") == (1, 0, 0)
    assert ds.list_files() == ["elsewhere/o.txt", "o.txt", "sub/one.txt"]
    # the whole dataset: what is not in the folder goes
    assert ds.sync_folder(folder, dataset_path="/") == (3, 1, 0)
    assert ds.list_files() == ["one.txt"]


def test_sync_removes_external_files_the_folder_does_not_have(tmp_path: Path) -> None:
    ext = write_files(tmp_path / "ext", {"e.bin": b"e" * 10})
    folder = write_files(tmp_path / "folder", {"f.bin": b"f"})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    ds.add_external_files(f"file://{ext}", dataset_path="links")
    assert ds.sync_folder(folder) == (1, 1, 0)
    assert ds.list_files() == ["f.bin"]


def test_bad_input_changes_nothing(tmp_path: Path, sess: Session) -> None:
    folder = write_files(tmp_path / "folder", {"sub/a.txt": b"a", "b.txt": b"b"})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    ds.add_files(write_files(tmp_path / "x", {"sub": b"a file where the sync wants a folder"}))
    ds.add_files(write_files(tmp_path / "y", {"y.txt": b"y"}))
    before = sess.catalog.read_draft_state(ds.id)
    with pytest.raises(UsageError, match="no such file or directory") as info:
        ds.sync_folder(tmp_path / "missing")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="not a folder"):
        ds.sync_folder(folder / "b.txt")
    with pytest.raises(UsageError, match="both a file and a folder"):
        ds.sync_folder(folder, dataset_path="sub")  # the file "sub" is not inside "sub/": it stays, and conflicts
    with pytest.raises(UsageError, match="escapes"):
        ds.sync_folder(folder, dataset_path="/../up")
    assert sess.catalog.read_draft_state(ds.id) == before
    assert Dataset.get(dataset_id=ds.id).list_files() == ["sub", "y.txt"]


def test_a_finalized_version_is_not_synced(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "folder", {"a.txt": b"a"})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    ds.sync_folder(folder)
    ds.finalize(auto_upload=True)
    with pytest.raises(StateError, match="finalized"):
        ds.sync_folder(folder)


def test_a_discarded_draft_is_gone_and_its_version_free(tmp_path: Path, sess: Session) -> None:
    ds = Dataset.create(dataset_name="d", dataset_project="p", dataset_version="2.0")
    ds.discard_draft()
    with pytest.raises(NotFound):
        Dataset.get(dataset_id=ds.id)
    assert sess.catalog.read_draft_state(ds.id) is None
    assert Dataset.list_datasets(only_completed=False) == []
    assert Dataset.create(dataset_name="d", dataset_project="p", dataset_version="2.0").version == "2.0"


def test_a_leading_slash_means_the_root_everywhere(tmp_path: Path) -> None:
    """The seed's ``dataset_path="/my_dataset/new_folder/"``: ClearML strips the '/', so does mountfs."""
    src = write_files(tmp_path / "src", {"a.txt": b"a", "b.txt": b"b"})
    ds = Dataset.create(dataset_name="d", dataset_project="p")
    assert ds.add_files(src, dataset_path="/my_dataset/new_folder/") == 2
    assert ds.add_external_files(f"file://{src}/a.txt", dataset_path="/links") == 1
    assert ds.list_files() == ["links/a.txt", "my_dataset/new_folder/a.txt", "my_dataset/new_folder/b.txt"]
    assert ds.list_files(dataset_path="/my_dataset") == ["my_dataset/new_folder/a.txt", "my_dataset/new_folder/b.txt"]
    assert ds.list_files(dataset_path="/links/*") == ["links/a.txt"]
    assert ds.remove_files("/my_dataset/new_folder/a.txt") == 1
    assert ds.remove_files("/links") == 1
    assert ds.list_files() == ["my_dataset/new_folder/b.txt"]
    with pytest.raises(UsageError, match="escapes"):
        ds.add_files(src, dataset_path="/../x")
