"""ClearML's parameters of upload and add_external_files (issue 15): ``preview``, ``upload_as_external_links``,
``dataset_path`` as a list (one folder per URL) and ``read_hash``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdkhelp import write_files

from mountfs import Dataset
from mountfs.errors import UsageError


def test_dataset_path_as_a_list_puts_each_url_in_its_folder(tmp_path: Path) -> None:
    one = write_files(tmp_path / "one", {"a.csv": b"1", "sub/b.csv": b"2"})
    two = write_files(tmp_path / "two", {"c.csv": b"3"})
    ds = Dataset.create(dataset_name="ext", dataset_project="p")
    added = ds.add_external_files([f"file://{one}", f"file://{two}/c.csv"], dataset_path=["/first", "second/deep"],
                                  read_hash=True)
    assert added == 3
    assert ds.list_files() == ["first/a.csv", "first/sub/b.csv", "second/deep/c.csv"]
    assert ds.link_entries_dict["second/deep/c.csv"].link == f"file://{two}/c.csv"
    with pytest.raises(UsageError, match="dataset_path has 1 paths for 2 source URLs"):
        ds.add_external_files([f"file://{one}", f"file://{two}"], dataset_path=["x"])
    assert ds.list_files() == ["first/a.csv", "first/sub/b.csv", "second/deep/c.csv"]  # nothing half added
    ds.upload(show_progress=False, preview=False)
    assert ds.finalize()
    copy = Path(Dataset.get(dataset_id=ds.id).get_local_copy() or "")
    assert (copy / "second" / "deep" / "c.csv").read_bytes() == b"3"


def test_upload_as_external_links_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    ds = Dataset.create(dataset_name="links", dataset_project="p")
    ds.add_files(write_files(tmp_path / "src", {"a": b"a"}))
    with pytest.raises(UsageError, match=r"upload_as_external_links=True\) is not supported.*add_external_files"):
        ds.upload(show_progress=False, upload_as_external_links=True)
    assert ds.is_dirty()
    ds.upload(show_progress=False, preview=True, upload_as_external_links=False)
    assert not ds.is_dirty() and ds.finalize()
