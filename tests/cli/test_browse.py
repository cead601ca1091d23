"""cli.browse: search, info, list, get, verify and tree, as people and scripts see them."""

from __future__ import annotations

import json
import os

import pytest

from mountfs import Dataset
from mountfs.errors import IntegrityError, LocalDiskError, NotFound, StateError, UsageError
from mountfs.store.layout import Pack


def _version(env, mountfs, name: str = "n", files=None) -> str:
    ds_id = mountfs("create", "--project", "p", "--name", name).stdout.strip()
    mountfs("add", "--files", *(files or [env.data]))
    mountfs("close")
    return ds_id


@pytest.fixture
def finalized(env, mountfs) -> str:
    return _version(env, mountfs)


# ---------------------------------------------------------------------- search


def test_search_table_shows_drafts_without_counts(env, mountfs, finalized):
    draft = mountfs("create", "--project", "p", "--name", "later").stdout.strip()
    lines = mountfs("search", "--all").stdout.splitlines()
    header, rows = lines[0], {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {finalized, draft}
    assert rows[draft].split()[4:7] == ["draft", "-", "-"]
    assert rows[finalized].split()[4:8] == ["completed", "4", "3.5", "KiB"]
    # FILES and SIZE are right-aligned: their cells end where their headers end
    for column, draft_cell, final_cell in (("FILES", "-", "4"), ("SIZE", "-", "3.5 KiB")):
        end = header.index(column) + len(column)
        assert rows[draft][:end].endswith(f" {draft_cell}") and rows[finalized][:end].endswith(f" {final_cell}")


def test_search_with_no_match_says_so_on_stderr(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    result = mountfs("search")
    assert result.stdout == "" and result.stderr == "no datasets match (drafts are shown with --all)\n"
    assert mountfs("search", "--all", "--tags", "nope").stderr == "no datasets match\n"
    assert mountfs.json("search") == []


def test_json_output_is_json_only(env, mountfs, finalized):
    for cmd in ("search", "info", "list"):
        args = (cmd,) if cmd == "search" else (cmd, "--id", finalized)
        result = mountfs(*args, "--json")
        json.loads(result.stdout)


# ------------------------------------------------------------------ info, list


def test_info_of_a_draft_counts_its_current_state(env, mountfs, finalized):
    mountfs("create", "--parents", finalized)
    mountfs("remove", "--files", "val")
    (env.data / "new.txt").write_text("new")
    mountfs("add", "--files", env.data / "new.txt")
    doc = mountfs.json("info")
    assert (doc["status"], doc["file_count"], doc["pending_upload"]) == ("draft", 4, True)
    assert doc["changes"] == {"added": 1, "modified": 0, "removed": 1}
    assert doc["finalized"] is None and doc["storage"] == str(env.store)
    shown = dict(line.split(":", 1) for line in mountfs("info").stdout.splitlines())
    assert shown["status"].strip() == "draft (files not uploaded yet)"
    assert shown["changes"].strip() == "1 added, 0 modified, 1 removed"
    assert shown["parents"].strip() == finalized and shown["finalized"].strip() == "-"
    # every value starts in one column
    lines = mountfs("info").stdout.splitlines()
    assert len({len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}) == 1


def test_list_shows_sizes_aligned_and_a_total(env, mountfs, finalized):
    assert mountfs("list", "--id", finalized, "--filter", "train").stdout.splitlines() == [
        "   SIZE  PATH",
        " 1000 B  train/img_0001.jpg",
        "2.0 KiB  train/img_0002.jpg",
        f"2 files, 2.9 KiB in p/n 1.0.0 ({finalized})",
    ]


# ------------------------------------------------------------------------- get


def test_copy_into_non_empty_folder(env, mountfs, finalized):
    target = env.work / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    line = mountfs.fails("get", "--id", finalized, "--copy", target, code=UsageError.exit_code)
    assert "not empty" in line and "--overwrite" in line
    assert (target / "keep.txt").read_text() == "mine"


def test_copy_under_a_regular_file(env, mountfs, finalized):
    blocker = env.work / "file"
    blocker.write_text("x")
    line = mountfs.fails("get", "--id", finalized, "--copy", blocker / "sub", code=LocalDiskError.exit_code)
    assert "Not a directory" in line


def test_get_refuses_options_that_do_not_go_together(env, mountfs, finalized):
    mountfs.fails("get", "--id", finalized, "--part", "0", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--part", "2", "--num-parts", "2", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--overwrite", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--copy", env.work / "x", "--files", "labels.csv", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--files", "no/such/file", code=NotFound.exit_code)
    assert "v2" in mountfs.fails("get", "--project", "p", "--name", "n", "--version", "v2", code=UsageError.exit_code)


def test_get_and_verify_need_a_finalized_version(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs.fails("get", "--id", ds_id, code=StateError.exit_code)
    mountfs.fails("verify", "--id", ds_id, code=StateError.exit_code)
    # by name, "most recent" means the most recent finalized version
    mountfs.fails("get", "--project", "p", "--name", "n", code=NotFound.exit_code)


# ---------------------------------------------------------------------- verify


def test_verify_reports_failing_files(env, mountfs, finalized):
    copy = env.work / "copy"
    mountfs("get", "--id", finalized, "--copy", copy)
    (copy / "train" / "img_0002.jpg").write_bytes(b"\xff\xd8jpeg-TWO" * 200)  # same size, other bytes
    os.remove(copy / "labels.csv")
    result = mountfs("verify", "--id", finalized, "--local-copy", copy, code=6)
    assert result.stdout.splitlines() == ["labels.csv", "train/img_0002.jpg"]
    assert result.stderr.startswith("mountfs: error: 2 of 4 files failed verification")
    # sizes only: the rewritten image passes, the missing file does not
    assert mountfs("verify", "--id", finalized, "--local-copy", copy, "--skip-hash", code=6).stdout.splitlines() == ["labels.csv"]


@pytest.mark.allow_warnings  # the damaged pack is read twice, with a warning
def test_verify_of_several_versions_names_the_version_of_each_failure(env, mountfs, finalized):
    (env.data / "other").mkdir()
    (env.data / "other" / "own.bin").write_bytes(b"only in the other version" * 100)  # a chunk of its own
    other = _version(env, mountfs, "other", [env.data / "other", env.data / "labels.csv"])
    ok = mountfs("verify", "--id", finalized, other)
    assert ok.stdout == "" and ok.stderr == "verified 6 files of 2 datasets: all match\n"
    victim = Dataset.get(dataset_id=other).file_entries_dict["own.bin"].chunks[0]
    pack = env.store / Pack(victim.pack).key
    data = bytearray(pack.read_bytes())
    data[victim.offset] ^= 0xFF
    pack.write_bytes(bytes(data))
    result = mountfs("verify", "--id", finalized, other, code=IntegrityError.exit_code)
    assert result.stdout.splitlines() == [f"{other}\town.bin"]
    assert result.stderr.splitlines()[-1] == "mountfs: error: 1 of 6 files failed verification"


def test_verify_refuses_options_that_do_not_go_together(env, mountfs, finalized):
    assert "--skip-hash needs --local-copy" in mountfs.fails("verify", "--id", finalized, "--skip-hash",
                                                             code=UsageError.exit_code)
    assert "one dataset" in mountfs.fails("verify", "--id", finalized, finalized, "--local-copy", env.work,
                                          code=UsageError.exit_code)
    assert "not both" in mountfs.fails("verify", "--id", finalized, finalized, "--project", "p",
                                       code=UsageError.exit_code)


# ------------------------------------------------- clearml-data's option names


def test_search_by_ids_drafts_and_exact_project(env, mountfs, finalized):
    nested = mountfs("create", "--project", "p/sub", "--name", "deep").stdout.strip()
    mountfs("add", "--files", env.data / "labels.csv")
    mountfs("close")
    draft = mountfs("create", "--project", "p", "--name", "later").stdout.strip()
    ids = lambda *args: {d["id"] for d in mountfs.json("search", *args)}  # noqa: E731
    assert ids("--ids", finalized, draft) == {finalized}  # drafts only with --all
    assert ids("--ids", finalized, draft, "--not-only-completed") == {finalized, draft}
    assert ids("--project", "p") == {finalized, nested}
    assert ids("--project", "p", "--non-recursive-project-search") == {finalized}


def test_list_with_several_filters_and_only_the_modified_files(env, mountfs, finalized):
    assert [f["path"] for f in mountfs.json("list", "--id", finalized, "--filter", "val", "*.csv")] == [
        "labels.csv", "val/img_0003.jpg"]
    (env.data / "labels.csv").write_text("file,label\nimg_0001.jpg,dog\n")
    (env.work / "new.txt").write_text("new")
    child = mountfs("create", "--parents", finalized).stdout.strip()
    mountfs("add", "--files", env.data / "labels.csv", env.work / "new.txt")
    mountfs("remove", "--files", "val")
    mountfs("close")
    assert [f["path"] for f in mountfs.json("list", "--id", child, "--modified")] == ["labels.csv", "new.txt"]
    lines = mountfs("list", "--id", child, "--modified", "--filter", "*.txt", "train").stdout.splitlines()
    assert lines[1:] == [" 3 B  new.txt", f"1 file, 3 B added or modified in p/n 1.0.1 ({child})"]


def test_get_verbose_lists_the_files_on_stderr(env, mountfs, finalized):
    result = mountfs("get", "--id", finalized, "--verbose", "--files", "train")
    folder = result.stdout.strip()
    assert os.path.isdir(folder)
    assert result.stderr.splitlines() == [
        "train/img_0001.jpg", "train/img_0002.jpg", f"2 files of p/n 1.0.0 ({finalized}) in {folder}"]


def test_verify_under_clearml_data_names(env, mountfs, finalized):
    copy = env.work / "copy"
    mountfs("get", "--id", finalized, "--copy", copy)
    (copy / "train" / "img_0002.jpg").write_bytes(b"\xff\xd8jpeg-TWO" * 200)  # same size, other bytes
    assert mountfs("verify", "--id", finalized, "--folder", copy, code=6).stdout == "train/img_0002.jpg\n"
    ok = mountfs("verify", "--id", finalized, "--folder", copy, "--filesize", "--verbose")
    assert ok.stderr.splitlines() == [
        f"p/n 1.0.0 ({finalized}): 4 files checked in {copy}, sizes only, 0 failed",
        "verified 4 files of 1 dataset: all match",
    ]
    assert mountfs("verify", "--id", finalized, "--verbose").stderr.splitlines()[0] == (
        f"p/n 1.0.0 ({finalized}): 4 files checked in the store, 0 failed")


# ------------------------------------------------------------------------ tree


def _child(mountfs, *parents: str) -> str:
    ds_id = mountfs("create", "--project", "p", "--name", f"c{len(parents)}", "--parents", *parents).stdout.strip()
    mountfs("close")
    return ds_id


def test_tree_of_a_root_is_its_own_line(env, mountfs, finalized):
    assert mountfs("tree", "--id", finalized).stdout == f"p/n 1.0.0 ({finalized}) completed\n"
    # by name too, the latest version
    assert mountfs("tree", "--project", "p", "--name", "n").stdout == f"p/n 1.0.0 ({finalized}) completed\n"


def test_tree_shows_a_shared_grandparent_once(env, mountfs, finalized):
    a, b = _child(mountfs, finalized), _version(env, mountfs, name="b")
    b2 = mountfs("create", "--project", "p", "--name", "b2", "--parents", finalized).stdout.strip()
    mountfs("close")
    child = mountfs("create", "--project", "p", "--name", "kid", "--parents", a, b2).stdout.strip()
    assert b  # an unrelated dataset stays out of the tree
    assert mountfs("tree", "--id", child).stdout.splitlines() == [
        f"p/kid 1.0.0 ({child}) draft",
        f"├── p/c1 1.0.0 ({a}) completed",
        f"│   └── p/n 1.0.0 ({finalized}) completed",
        f"└── p/b2 1.0.0 ({b2}) completed",
        f"    └── p/n 1.0.0 ({finalized}) (see above)",
    ]
    doc = mountfs.json("tree", "--id", child)
    assert doc["id"] == child
    assert doc["graph"] == {child: [a, b2], a: [finalized], b2: [finalized], finalized: []}
    assert doc["nodes"][child] == {"project": "p", "name": "kid", "version": "1.0.0", "status": "draft"}
    assert set(doc["nodes"]) == set(doc["graph"])
    assert doc["nodes"][finalized]["status"] == "completed"


def test_tree_names_a_deleted_parent_by_id(env, mountfs, finalized):
    child = _child(mountfs, finalized)
    mountfs("delete", "--id", finalized, "--force", "--no-gc")
    assert mountfs("tree", "--id", child).stdout.splitlines() == [
        f"p/c1 1.0.0 ({child}) completed", f"└── ? ({finalized}) deleted",
    ]
    doc = mountfs.json("tree", "--id", child)
    assert doc["graph"] == {child: [finalized]}
    assert doc["nodes"][finalized] == {"project": None, "name": None, "version": None, "status": "deleted"}


def test_tree_with_a_bad_selector_is_one_line(env, mountfs, finalized):
    assert "no dataset matches" in mountfs.fails("tree", "--project", "p", "--name", "zzz", code=NotFound.exit_code)
    assert "not both" in mountfs.fails("tree", "--id", finalized, "--name", "n", code=UsageError.exit_code)


# ------------------------------------------------------------- --json additions


def test_verify_json_gives_checked_and_failed_per_version(env, mountfs, finalized):
    other = _version(env, mountfs, name="o", files=[env.data / "labels.csv"])
    result = mountfs("verify", "--id", finalized, other, "--json")
    assert json.loads(result.stdout) == [
        {"id": finalized, "checked": 4, "failed": []}, {"id": other, "checked": 1, "failed": []},
    ]
    copy = env.work / "copy"
    mountfs("get", "--id", finalized, "--copy", copy)
    (copy / "labels.csv").write_text("changed")
    bad = mountfs("verify", "--id", finalized, "--local-copy", copy, "--json", code=IntegrityError.exit_code)
    assert json.loads(bad.stdout) == [{"id": finalized, "checked": 4, "failed": ["labels.csv"]}]
    assert bad.stderr.startswith("mountfs: error: 1 of 4 files failed")
