"""cli.datasets: create, add, remove, upload, close (finalize), publish and squash."""

from __future__ import annotations

from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.cli.draft import STATE_FILE
from mountfs.errors import Conflict, NotFound, SourceChanged, StateError, UsageError


@pytest.fixture
def finalized(env, mountfs) -> str:
    ds_id = mountfs("create", "--project", "p", "--name", "n", "--version", "1.0").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs("close")
    return ds_id


# ---------------------------------------------------------------------- create


def test_create_needs_a_name_or_parents(env, mountfs):
    line = mountfs.fails("create", "--name", "n", code=UsageError.exit_code)
    assert "--project and --name" in line and "--parents" in line
    assert not (env.work / STATE_FILE).exists()


def test_malformed_version(env, mountfs):
    line = mountfs.fails("create", "--project", "p", "--name", "n", "--version", "1.x", code=UsageError.exit_code)
    assert "1.x" in line
    assert not (env.work / STATE_FILE).exists()


def test_duplicate_version(env, mountfs, finalized):
    line = mountfs.fails("create", "--project", "p", "--name", "n", "--version", "1.0", code=Conflict.exit_code)
    assert "1.0" in line and "already exists" in line


def test_create_still_works_where_the_draft_cannot_be_remembered(env, mountfs):
    (env.work / STATE_FILE).mkdir()  # something in the way of the state file
    result = mountfs("create", "--project", "p", "--name", "n")
    ds_id = result.stdout.strip()
    assert "could not remember it in this folder" in result.stderr and f"pass --id {ds_id}" in result.stderr
    assert Dataset.get(dataset_id=ds_id).status == "draft"
    mountfs("add", "--id", ds_id, "--files", env.data / "labels.csv")
    mountfs("close", "--id", ds_id)


# ------------------------------------------------------------------ add, remove


def test_add_needs_files_or_links(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    assert "give --files PATH... and/or --links URL..." in mountfs.fails("add", code=UsageError.exit_code)


def test_add_missing_path_changes_nothing(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    line = mountfs.fails("add", "--files", env.data / "labels.csv", env.work / "missing.bin", code=UsageError.exit_code)
    assert "missing.bin" in line
    assert mountfs.json("list") == []  # the existing first path was not added either


def test_dataset_folder_escaping(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    line = mountfs.fails("add", "--files", env.data, "--dataset-folder", "../outside", code=UsageError.exit_code)
    assert "'..'" in line
    mountfs.fails("add", "--files", env.data, "--dataset-folder", "/../abs", code=UsageError.exit_code)  # '/' is the root
    mountfs.fails("remove", "--files", "a/../../b", code=UsageError.exit_code)
    assert mountfs.json("list") == []


def test_add_links_keeps_files_where_they_are(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    out = mountfs("add", "--links", f"file://{env.data}/train", f"file://{env.data}/labels.csv",
                  "--dataset-folder", "ext", "--wildcard", "*.jpg", "img_0001*").stdout
    assert out.startswith("2 files added or changed")
    assert [f["path"] for f in mountfs.json("list")] == ["ext/img_0001.jpg", "ext/img_0002.jpg"]
    assert mountfs("add", "--links", f"file://{env.data}", "--non-recursive").stdout.startswith("1 file ")
    assert [f["path"] for f in mountfs.json("list")] == ["ext/img_0001.jpg", "ext/img_0002.jpg", "labels.csv"]
    mountfs("close")
    entry = Dataset.get(dataset_id=ds_id).file_entries_dict["ext/img_0002.jpg"]
    assert entry.url == f"file://{env.data}/train/img_0002.jpg"
    copy = Path(mountfs("get", "--id", ds_id).stdout.strip())
    assert (copy / "ext" / "img_0002.jpg").read_bytes() == (env.data / "train" / "img_0002.jpg").read_bytes()


def test_remove_by_folder_wildcard_and_not_recursively(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    mountfs("add", "--files", env.data)
    assert mountfs("remove", "--files", "*.jpg", "--non-recursive").stdout.startswith("0 files removed")
    assert mountfs("remove", "--files", "train/*.jpg", "labels.csv").stdout.startswith("3 files removed")
    assert [f["path"] for f in mountfs.json("list")] == ["val/img_0003.jpg"]


# ------------------------------------------------------------ upload and close


def test_upload_to_another_store(env, mountfs, tmp_path):
    other = tmp_path / "other-store"
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs("add", "--files", env.data)
    assert mountfs("upload", "--storage", other, "--chunk-size", "1").stdout == f"uploaded p/n 1.0.0 ({ds_id})\n"
    assert mountfs.json("info")["storage"] == str(other)
    mountfs("close")
    assert any((other / "packs").rglob("*")) and not (env.store / "packs").exists()
    mountfs("verify", "--id", ds_id)


def test_close_no_upload_with_pending_files(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs("add", "--files", env.data)
    line = mountfs.fails("close", "--no-upload", code=StateError.exit_code)
    assert "mountfs upload" in line
    assert mountfs.json("info", "--id", ds_id)["status"] == "draft"
    assert (env.work / STATE_FILE).exists()  # still the current draft


def test_source_changed_before_upload(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    src = env.data / "labels.csv"
    mountfs("add", "--files", src)
    src.write_text("rewritten after add, before upload\n")
    line = mountfs.fails("close", code=SourceChanged.exit_code)
    assert "labels.csv" in line
    mountfs("add", "--files", src)  # adding it again fixes it
    mountfs("close")


# ------------------------------------------------------------ publish, squash


def test_publish_needs_a_finalized_version(env, mountfs, finalized):
    draft = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs.fails("publish", "--id", draft, code=StateError.exit_code)
    # by name it is the most recent finalized version, not the newer draft
    assert mountfs("publish", "--project", "p", "--name", "n").stdout == f"published p/n 1.0 ({finalized})\n"
    assert mountfs.json("info", "--id", finalized)["status"] == "published"


def test_squash_merges_versions_into_one_without_parents(env, mountfs, finalized, tmp_path):
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "labels.csv").write_text("file,label\nimg_0001.jpg,dog\n")
    second = mountfs("create", "--project", "p", "--name", "m").stdout.strip()
    mountfs("add", "--files", changed)
    mountfs("close")
    result = mountfs("squash", "--name", "both", "--ids", finalized, second)
    squashed = result.stdout.strip()
    assert result.stderr == f"squashed 2 versions into p/both 1.0.0 ({squashed})\n"
    info = mountfs.json("info", "--id", squashed)
    assert (info["status"], info["parents"], info["file_count"]) == ("completed", [], 4)
    copy = Path(mountfs("get", "--id", squashed).stdout.strip())
    assert (copy / "labels.csv").read_text() == "file,label\nimg_0001.jpg,dog\n"  # the later version wins
    flat = mountfs("squash", "--name", "flat", "--ids", second)  # one version: flattened into a root version
    assert flat.stderr == f"squashed 1 version into p/flat 1.0.0 ({flat.stdout.strip()})\n"
    mountfs.fails("squash", "--name", "x", "--ids", finalized, "0000deadbeef0000", code=NotFound.exit_code)


def test_chunk_size_minus_one_is_clearml_data_for_the_default(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs("add", "--files", env.data)
    assert "--chunk-size 0" in mountfs.fails("upload", "--chunk-size", "0", code=UsageError.exit_code)
    mountfs("upload", "--chunk-size", "-1")
    mountfs("close", "--chunk-size", "-1")
    assert mountfs.json("info", "--id", ds_id)["file_count"] == 4
    mountfs("verify", "--id", ds_id)


def test_squash_verbose_names_where_each_file_came_from(env, mountfs, finalized, tmp_path):
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "labels.csv").write_text("file,label\nimg_0001.jpg,dog\n")
    second = mountfs("create", "--project", "p", "--name", "m").stdout.strip()
    mountfs("add", "--files", changed)
    mountfs("close")
    result = mountfs("squash", "--name", "both", "--ids", finalized, second, "--verbose")
    squashed = result.stdout.strip()
    assert result.stderr.splitlines() == [
        f"{second}\tlabels.csv", f"{finalized}\ttrain/img_0001.jpg", f"{finalized}\ttrain/img_0002.jpg",
        f"{finalized}\tval/img_0003.jpg", f"squashed 2 versions into p/both 1.0.0 ({squashed})",
    ]
