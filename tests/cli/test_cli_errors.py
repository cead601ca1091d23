"""Every failure is one line on stderr, ``mountfs: error: ...``, and the error's exit code; never a traceback."""

from __future__ import annotations

import json

import pytest

from mountfs import Dataset
from mountfs.cli.draft import STATE_FILE
from mountfs.errors import Conflict, LocalDiskError, NotFound, SourceChanged, StateError, UsageError


@pytest.fixture
def finalized(env, mountfs) -> str:
    ds_id = mountfs("create", "--project", "p", "--name", "n", "--version", "1.0").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs("close")
    return ds_id


def test_unknown_id(env, mountfs):
    for cmd in (("info",), ("list",), ("get",), ("verify",), ("publish",), ("add", "--files", env.data), ("close",)):
        line = mountfs.fails(*cmd, "--id", "0000deadbeef0000", code=NotFound.exit_code)
        assert "0000deadbeef0000" in line


def test_unknown_name(env, mountfs, finalized):
    assert "p/nope" in mountfs.fails("get", "--project", "p", "--name", "nope", code=NotFound.exit_code)
    mountfs.fails("list", "--project", "p", "--name", "n", "--version", "9.9", code=NotFound.exit_code)


def test_add_missing_path_changes_nothing(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    line = mountfs.fails("add", "--files", env.data / "labels.csv", env.work / "missing.bin", code=UsageError.exit_code)
    assert "missing.bin" in line
    assert mountfs.json("list") == []  # the existing first path was not added either


def test_add_to_finalized(env, mountfs, finalized):
    line = mountfs.fails("add", "--id", finalized, "--files", env.data, code=StateError.exit_code)
    assert "finalized" in line and f"--parents {finalized}" in line
    mountfs.fails("remove", "--id", finalized, "--files", "labels.csv", code=StateError.exit_code)
    mountfs.fails("upload", "--id", finalized, code=StateError.exit_code)


def test_malformed_version(env, mountfs):
    line = mountfs.fails("create", "--project", "p", "--name", "n", "--version", "1.x", code=UsageError.exit_code)
    assert "1.x" in line
    assert not (env.work / STATE_FILE).exists()
    mountfs.fails("get", "--project", "p", "--name", "n", "--version", "v2", code=UsageError.exit_code)


def test_duplicate_version(env, mountfs, finalized):
    line = mountfs.fails("create", "--project", "p", "--name", "n", "--version", "1.0", code=Conflict.exit_code)
    assert "1.0" in line and "already exists" in line


def test_close_no_upload_with_pending_files(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs("add", "--files", env.data)
    line = mountfs.fails("close", "--no-upload", code=StateError.exit_code)
    assert "mountfs upload" in line
    assert mountfs.json("info", "--id", ds_id)["status"] == "draft"
    assert (env.work / STATE_FILE).exists()  # still the current draft


def test_copy_into_non_empty_folder(env, mountfs, finalized):
    target = env.work / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    line = mountfs.fails("get", "--id", finalized, "--copy", target, code=UsageError.exit_code)
    assert "not empty" in line and "--overwrite" in line
    assert (target / "keep.txt").read_text() == "mine"


def test_dataset_folder_escaping(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    line = mountfs.fails("add", "--files", env.data, "--dataset-folder", "../outside", code=UsageError.exit_code)
    assert "'..'" in line
    mountfs.fails("add", "--files", env.data, "--dataset-folder", "/abs", code=UsageError.exit_code)
    mountfs.fails("remove", "--files", "a/../../b", code=UsageError.exit_code)
    assert mountfs.json("list") == []


def test_draft_where_a_final_version_is_needed(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs.fails("get", "--id", ds_id, code=StateError.exit_code)
    mountfs.fails("verify", "--id", ds_id, code=StateError.exit_code)
    mountfs.fails("publish", "--id", ds_id, code=StateError.exit_code)
    # by name, "most recent" means the most recent finalized version
    mountfs.fails("get", "--project", "p", "--name", "n", code=NotFound.exit_code)


def test_bad_option_combinations(env, mountfs, finalized):
    mountfs.fails("create", "--name", "n", code=UsageError.exit_code)
    mountfs.fails("list", code=UsageError.exit_code)  # no dataset named, none remembered
    mountfs.fails("list", "--version", "1.0", code=UsageError.exit_code)
    mountfs.fails("info", "--id", finalized, "--project", "p", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--part", "0", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--part", "2", "--num-parts", "2", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--overwrite", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--copy", env.work / "x", "--files", "labels.csv", code=UsageError.exit_code)
    mountfs.fails("get", "--id", finalized, "--files", "no/such/file", code=NotFound.exit_code)
    mountfs.fails("verify", "--id", finalized, "--skip-hash", code=UsageError.exit_code)


def test_remembered_draft_from_another_store(env, mountfs, tmp_path):
    mountfs("--storage", tmp_path / "elsewhere", "create", "--project", "p", "--name", "n")
    line = mountfs.fails("add", "--files", env.data, code=NotFound.exit_code)
    assert "elsewhere" in line and "--storage" in line


def test_damaged_state_file(env, mountfs):
    (env.work / STATE_FILE).write_text("{not json")
    assert STATE_FILE in mountfs.fails("upload", code=2)


def test_copy_under_a_regular_file(env, mountfs, finalized):
    blocker = env.work / "file"
    blocker.write_text("x")
    line = mountfs.fails("get", "--id", finalized, "--copy", blocker / "sub", code=LocalDiskError.exit_code)
    assert "Not a directory" in line


def test_os_error_is_one_line(env, mountfs, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/srv/store/datasets")

    monkeypatch.setattr(Dataset, "list_datasets", staticmethod(denied))
    assert mountfs.fails("search", code=1) == "mountfs: error: /srv/store/datasets: Permission denied"


def test_unexpected_exception(env, mountfs, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("something broke\ninside")

    monkeypatch.setattr(Dataset, "list_datasets", staticmethod(boom))
    line = mountfs.fails("search", code=1)
    assert line == "mountfs: error: unexpected RuntimeError: something broke inside (rerun with --debug for the traceback)"
    debug = mountfs("--debug", "search", code=1)
    assert "Traceback" in debug.stderr and debug.stderr.splitlines()[-1].startswith("mountfs: error: unexpected RuntimeError")


def test_json_output_is_json_only(env, mountfs, finalized):
    for cmd in ("search", "info", "list"):
        args = (cmd,) if cmd == "search" else (cmd, "--id", finalized)
        result = mountfs(*args, "--json")
        json.loads(result.stdout)


def test_source_changed_before_upload(env, mountfs):
    mountfs("create", "--project", "p", "--name", "n")
    src = env.data / "labels.csv"
    mountfs("add", "--files", src)
    src.write_text("rewritten after add, before upload\n")
    line = mountfs.fails("close", code=SourceChanged.exit_code)
    assert "labels.csv" in line
    mountfs("add", "--files", src)  # adding it again fixes it
    mountfs("close")


def test_cache_commands_need_no_store(env, mountfs, monkeypatch):
    # the cache is local: a store that cannot be reached must not stop info, evict or clear
    import xxhash

    from mountfs.cache import ChunkCache

    with ChunkCache(str(env.cache), 1 << 30) as cache:
        cache.put(xxhash.xxh3_128_digest(b"chunk"), b"chunk")
    monkeypatch.setenv("MOUNTFS_STORE", "s3://127.0.0.1:9/nowhere")
    assert mountfs.json("cache", "info")["count"] > 0
    mountfs("cache", "evict", "--to", "0")
    mountfs("cache", "clear")
    assert mountfs.json("cache", "info")["count"] == 0
