"""The seed page's examples (ClearML's clearml_data_sdk.md) for sync, delete, rename and move, as written there.

Only the import differs: ``from mountfs import Dataset`` instead of ``from clearml import Dataset``.
The calls below are the page's, argument for argument; the datasets they act on are
built first with the page's own names (spaces included).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sdkhelp import same_tree, write_files

from mountfs import Dataset
from mountfs.errors import NotFound, StateError, UsageError


def _version(tmp_path: Path, project: str, name: str, version: str, files: dict[str, bytes],
             parents: list[str] | None = None) -> Dataset:
    ds = Dataset.create(dataset_name=name, dataset_project=project, dataset_version=version,
                        parent_datasets=parents or [])
    ds.add_files(write_files(tmp_path / f"src-{project}-{name}-{version}", files))
    ds.upload(show_progress=False)
    assert ds.finalize()
    return ds


def test_syncing_local_storage(tmp_path: Path) -> None:
    """"A single point of truth ... that gets updated periodically. The folder changes will be reflected in a
    new dataset version": ``sync_folder(local_path=...)`` on a version, then again on its child."""
    folder = write_files(tmp_path / "truth", {"a.csv": b"1,2\n", "img/x.jpg": b"x" * 5000, "img/y.jpg": b"y"})
    dataset = Dataset.create(dataset_name="my dataset", dataset_project="example project")
    assert dataset.sync_folder(local_path=folder) == (0, 3, 0)
    dataset.upload()
    dataset.finalize()

    # the folder is updated; the next version follows it
    (folder / "img" / "y.jpg").unlink()
    (folder / "a.csv").write_bytes(b"1,2\n3,4\n")
    st = (folder / "a.csv").stat()
    os.utime(folder / "a.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    (folder / "b.csv").write_bytes(b"5,6\n")
    child = Dataset.create(dataset_name="my dataset", dataset_project="example project",
                           parent_datasets=[dataset.id])
    assert child.sync_folder(local_path=folder) == (1, 1, 1)  # ClearML's (removed, added, modified)
    child.upload()
    child.finalize()

    latest = Dataset.get(dataset_project="example project", dataset_name="my dataset")
    assert latest.id == child.id
    same_tree(Path(latest.get_local_copy() or ""), folder)
    assert Dataset.get(dataset_id=dataset.id).list_files() == ["a.csv", "img/x.jpg", "img/y.jpg"]


def test_deleting_datasets(tmp_path: Path) -> None:
    """The page's ``Dataset.delete(...)`` call, and its rules: several matches raise unless
    ``entire_dataset=True`` and ``force=True``; a parent needs ``force=True``."""
    v1 = _version(tmp_path, "example project", "example dataset", "1.0", {"a.txt": b"one"})
    v2 = _version(tmp_path, "example project", "example dataset", "2.0", {"b.txt": b"two"}, [v1.id])
    v3 = _version(tmp_path, "example project", "example dataset", "3.0", {"c.txt": b"three"}, [v2.id])

    Dataset.delete(
      dataset_id=None,
      dataset_project="example project",
      dataset_name="example dataset",
      force=False,
      dataset_version="3.0",
      entire_dataset=False
    )
    with pytest.raises(NotFound):
        Dataset.get(dataset_id=v3.id)
    assert Dataset.get(dataset_project="example project", dataset_name="example dataset").id == v2.id
    assert sorted(Dataset.get(dataset_id=v2.id).list_files()) == ["a.txt", "b.txt"]

    with pytest.raises(UsageError, match="entire_dataset=True and force=True"):
        Dataset.delete(dataset_project="example project", dataset_name="example dataset")
    with pytest.raises(StateError, match="force=True"):
        Dataset.delete(dataset_project="example project", dataset_name="example dataset", dataset_version="1.0")
    Dataset.delete(dataset_project="example project", dataset_name="example dataset", dataset_version="1.0",
                   force=True)
    # "Deleting a parent dataset may cause child datasets to lose data!" -- not here: the child reads back whole
    child = Dataset.get(dataset_id=v2.id)
    assert child.verify_dataset_hash() == []
    copy = Path(child.get_local_copy() or "")
    assert (copy / "a.txt").read_bytes() == b"one" and (copy / "b.txt").read_bytes() == b"two"

    Dataset.delete(dataset_project="example project", dataset_name="example dataset",
                   entire_dataset=True, force=True)
    assert Dataset.list_datasets(dataset_project="example project", only_completed=False) == []


def test_renaming_datasets(tmp_path: Path) -> None:
    """The page's ``Dataset.rename(...)``: "All the datasets with the given dataset_project and dataset_name
    will be renamed"."""
    v1 = _version(tmp_path, "Example project", "Example dataset", "1.0", {"a.txt": b"one"})
    v2 = _version(tmp_path, "Example project", "Example dataset", "1.1", {"b.txt": b"two"}, [v1.id])

    Dataset.rename(
      new_dataset_name="New name",
      dataset_project="Example project",
      dataset_name="Example dataset",
    )
    with pytest.raises(NotFound):
        Dataset.get(dataset_project="Example project", dataset_name="Example dataset")
    for v in (v1, v2):
        got = Dataset.get(dataset_id=v.id)
        assert (got.project, got.name, got.version) == ("Example project", "New name", v.version)
    assert Dataset.get(dataset_project="Example project", dataset_name="New name").id == v2.id
    assert sorted(Dataset.get(dataset_id=v2.id).list_files()) == ["a.txt", "b.txt"]


def test_moving_datasets_to_another_project(tmp_path: Path) -> None:
    """The page's ``Dataset.move_to_project(...)``: every version of the dataset moves."""
    v1 = _version(tmp_path, "Example project", "Example dataset", "1.0", {"a.txt": b"one"})
    v2 = _version(tmp_path, "Example project", "Example dataset", "1.1", {"b.txt": b"two"}, [v1.id])
    stays = _version(tmp_path, "Example project", "Other dataset", "1.0", {"o.txt": b"o"})

    Dataset.move_to_project(
      new_dataset_project="New project",
      dataset_project="Example project",
      dataset_name="Example dataset",
    )
    for v in (v1, v2):
        got = Dataset.get(dataset_id=v.id)
        assert (got.project, got.name, got.version) == ("New project", "Example dataset", v.version)
    assert Dataset.get(dataset_project="New project", dataset_name="Example dataset").id == v2.id
    assert [d["id"] for d in Dataset.list_datasets(dataset_project="Example project")] == [stays.id]
    assert (Path(Dataset.get(dataset_id=v2.id).get_local_copy() or "") / "a.txt").read_bytes() == b"one"


def test_accessing_datasets_with_a_tag_string(tmp_path: Path) -> None:
    """The page's ``Dataset.get(...)`` passes ``dataset_tags="my tag"``: one tag, not its characters."""
    ds = Dataset.create(dataset_name="Example Dataset", dataset_project="Example Project",
                        dataset_tags="my tag", dataset_version="1.2")
    ds.add_files(write_files(tmp_path / "src", {"a.txt": b"a"}))
    ds.upload()
    ds.finalize()
    dataset = Dataset.get(
            dataset_id=None,
            dataset_project="Example Project",
            dataset_name="Example Dataset",
            dataset_tags="my tag",
            dataset_version="1.2",
            only_completed=True,
            only_published=False,
    )
    assert dataset.id == ds.id and dataset.tags == ["my tag"]
