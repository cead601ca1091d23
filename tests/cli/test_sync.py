"""``mountfs sync``: clearml-data's sync (create, sync a folder, upload, close), on the folder store and SeaweedFS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.cli.draft import STATE_FILE


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _version_files(ds: Dataset) -> dict[str, bytes]:
    return _tree(Path(ds.get_local_copy() or ""))


def _edit(path: Path, data: bytes) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(data)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_sync_creates_uploads_and_closes_then_a_child_takes_the_changes(env, mountfs) -> None:
    out = mountfs("sync", "--project", "vision", "--name", "pets", "--folder", env.data,
                  "--tags", "raw", "jpeg", "--version", "2.0", "--chunk-size", "-1").stdout
    assert "0 removed, 4 added, 0 modified" in out and "finalized vision/pets 2.0" in out
    first = Dataset.get(dataset_project="vision", dataset_name="pets")
    assert first.is_final() and first.tags == ["raw", "jpeg"] and first.version == "2.0"
    assert _version_files(first) == _tree(env.data)
    assert not (env.work / STATE_FILE).exists()

    (env.data / "val" / "img_0003.jpg").unlink()
    _edit(env.data / "labels.csv", b"file,label\nimg_0001.jpg,dog\n")
    (env.data / "test").mkdir()
    (env.data / "test" / "img_0009.jpg").write_bytes(b"nine")
    result = mountfs("sync", "--parents", first.id, "--folder", env.data, "--verbose")
    assert "1 removed, 1 added, 1 modified" in result.stdout
    assert "removed: val/img_0003.jpg" in result.stderr and "modified: labels.csv" in result.stderr
    child = Dataset.get(dataset_project="vision", dataset_name="pets")
    assert child.id != first.id and child.version == "2.1" and child.is_final()
    assert _version_files(child) == _tree(env.data)
    assert child.list_removed_files() == ["val/img_0003.jpg"]


def test_nothing_changed_makes_no_version(env, mountfs) -> None:
    mountfs("sync", "--project", "p", "--name", "d", "--folder", env.data)
    parent = Dataset.get(dataset_project="p", dataset_name="d")
    out = mountfs("sync", "--parents", parent.id, "--folder", env.data).stdout
    assert "0 removed, 0 added, 0 modified" in out
    said = [line for line in out.splitlines() if "no version created" in line]
    assert len(said) == 1 and "deleted" in said[0], out
    assert [d["id"] for d in Dataset.list_datasets(only_completed=False)] == [parent.id]
    # the version number the discarded draft took is free again
    mountfs("sync", "--parents", parent.id, "--folder", env.data / "train")
    assert Dataset.get(dataset_project="p", dataset_name="d").version == "1.0.1"


def test_skip_close_leaves_a_remembered_draft_that_close_finishes(env, mountfs) -> None:
    result = mountfs("sync", "--project", "p", "--name", "d", "--folder", env.data, "--dataset-folder", "/all/",
                     "--skip-close")
    assert "left open" in result.stderr and (env.work / STATE_FILE).exists()
    draft = Dataset.get(dataset_project="p", dataset_name="d")
    assert not draft.is_final() and draft.list_files()[0] == "all/labels.csv"
    # a second sync into the remembered draft, after a change; then close uploads and finalizes
    (env.data / "labels.csv").unlink()
    assert "1 removed, 0 added, 0 modified" in mountfs("sync", "--folder", env.data, "--dataset-folder", "all",
                                                       "--skip-close").stdout
    mountfs("close")
    done = Dataset.get(dataset_id=draft.id)
    assert done.is_final()
    assert {f"all/{k}": v for k, v in _tree(env.data).items()} == _version_files(done)


def test_sync_into_a_draft_by_id(env, mountfs) -> None:
    ds_id = mountfs("create", "--project", "p", "--name", "d").stdout.strip()
    assert "0 removed, 4 added, 0 modified" in mountfs("sync", "--id", ds_id, "--folder", env.data).stdout
    assert Dataset.get(dataset_id=ds_id).is_final()


@pytest.mark.parametrize("args, says", [
    (["--project", "p", "--name", "d", "--folder", "missing"], "cannot sync missing: no such folder"),
    (["--project", "p", "--name", "d", "--folder", "{data}/labels.csv"], "not a folder"),
    (["--project", "p", "--folder", "{data}"], "--project and --name"),
    (["--project", "p", "--name", "d", "--folder", "{data}", "--dataset-folder", "../up"], "escapes the dataset"),
    (["--parents", "nosuchid", "--folder", "{data}"], "no dataset with id"),
    (["--folder", "{data}"], "no draft remembered here"),
])
def test_bad_input_is_one_line_and_creates_nothing(env, mountfs, empty_store, args: list[str], says: str) -> None:
    line = mountfs.fails("sync", *[a.format(data=env.data) for a in args], code=3 if "no dataset" in says else 2)
    assert says in line, line
    assert Dataset.list_datasets(only_completed=False) == []


def test_a_path_conflict_found_while_syncing_leaves_no_draft(env, mountfs) -> None:
    solo = env.data.parent / "solo"
    solo.mkdir()
    (solo / "x").write_bytes(b"a file named x")
    mountfs("sync", "--project", "p", "--name", "d", "--folder", solo)
    parent = Dataset.get(dataset_project="p", dataset_name="d")
    # the file x is not inside the dataset folder x/: it stays, and x cannot also be a folder
    line = mountfs.fails("sync", "--parents", parent.id, "--folder", env.data, "--dataset-folder", "x", code=2)
    assert "both a file and a folder" in line
    assert [d["id"] for d in Dataset.list_datasets(only_completed=False)] == [parent.id]


@pytest.mark.s3
def test_sync_on_seaweedfs(env, mountfs, seaweed_store: str) -> None:
    mountfs("sync", "--project", "p", "--name", "d", "--folder", env.data)
    first = Dataset.get(dataset_project="p", dataset_name="d")
    _edit(env.data / "train" / "img_0001.jpg", b"changed")
    assert "0 removed, 0 added, 1 modified" in mountfs("sync", "--parents", first.id, "--folder", env.data).stdout
    child = Dataset.get(dataset_project="p", dataset_name="d")
    assert _version_files(child) == _tree(env.data)
    assert "no version created" in mountfs("sync", "--parents", child.id, "--folder", env.data).stdout
    assert len(Dataset.list_datasets()) == 2
