"""Which commands start a store, and the configuration's errors, as a user meets them (issue 16).

Only a command that makes a dataset (create, sync) starts a store, and says so
once; every other command pointed at a place with no store says "no mountfs
store at ..." and writes nothing there, not even into a data folder.  A data
store given with --storage is reached when the draft is made.  A broken config
file, a typo in a key, a missing MOUNTFS_CONFIG and an unusable cache size each
get one line naming where they came from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mountfs import session

from .conftest import Cli, Env

NO_STORE = "mountfs: error: no mountfs store at {} (no mountfs.json): set MOUNTFS_STORE or --storage"

#: commands that read (or change what exists) and so never start a store
READERS = [
    ("search",), ("search", "--all", "--json"), ("info", "--project", "p", "--name", "n"), ("info", "--id", "0000"),
    ("list", "--project", "p", "--name", "n"), ("get", "--project", "p", "--name", "n"),
    ("verify", "--project", "p", "--name", "n"), ("tree", "--project", "p", "--name", "n"),
    ("compare", "--source", "a", "--target", "b"), ("rename", "--project", "p", "--name", "n", "--new-name", "m"),
    ("move", "--project", "p", "--name", "n", "--new-project", "q"), ("delete", "--project", "p", "--name", "n"),
    ("gc",), ("gc", "--dry-run"), ("publish", "--id", "0000"),
    ("mount", "--project", "p", "--name", "n", "mp"),
]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_a_reading_command_on_a_missing_store_says_so_and_creates_nothing(env: Env, mountfs: Cli,
                                                                           args: tuple[str, ...]) -> None:
    line = mountfs.fails(*args, code=3)
    assert line.startswith(NO_STORE.format(env.store)), line
    assert "create a dataset to start a new store there" in line
    assert not env.store.exists(), "a read-only command created the store"
    assert not (env.work / "mp").exists()


def test_a_typo_in_the_store_variable_is_an_error(env: Env, mountfs: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    typo = env.work.parent / "typo"
    monkeypatch.setenv("MOUNTFS_STORE", str(typo))
    assert mountfs.fails("search", code=3).startswith(NO_STORE.format(typo))
    assert mountfs.fails("--storage", str(typo / "deeper"), "search", code=3).startswith(
        NO_STORE.format(typo / "deeper"))
    assert not typo.exists()


def test_a_data_folder_is_never_written_into(env: Env, mountfs: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _tree(env.data)
    monkeypatch.setenv("MOUNTFS_STORE", str(env.data))
    for args in (("search",), ("info", "--project", "p", "--name", "n"), ("gc",)):
        assert mountfs.fails(*args, code=3).startswith(NO_STORE.format(env.data))
    # a write refuses to start a store among someone's files (docs: README "Where the store is")
    for args in (("create", "--project", "p", "--name", "n"),
                 ("sync", "--folder", str(env.data), "--project", "p", "--name", "n")):
        line = mountfs.fails(*args, code=2)
        assert f"{env.data} holds files but is not a mountfs store (no mountfs.json)" in line, line
    assert _tree(env.data) == before, "nothing was written into the data folder"
    assert not (env.work / ".mountfs-dataset.json").exists()


def test_create_starts_the_store_and_says_so_once(env: Env, mountfs: Cli) -> None:
    created = f"mountfs: created a new mountfs store at {env.store}"
    first = mountfs("create", "--project", "p", "--name", "n")
    assert first.stderr.splitlines().count(created) == 1, first.stderr
    assert (env.store / "mountfs.json").is_file()
    second = mountfs("create", "--project", "p", "--name", "m")
    assert "created a new mountfs store" not in second.stderr
    assert mountfs("search", "--all").exit_code == 0


def test_an_empty_folder_is_started_as_a_store(env: Env, mountfs: Cli) -> None:
    env.store.mkdir()
    assert mountfs.fails("search", code=3).startswith(NO_STORE.format(env.store))
    out = mountfs("sync", "--folder", str(env.data), "--project", "p", "--name", "n")
    assert f"mountfs: created a new mountfs store at {env.store}" in out.stderr.splitlines()
    assert [d["name"] for d in mountfs.json("search")] == ["n"]


def test_the_sdk_reads_a_missing_store_as_empty_without_creating_it(env: Env) -> None:
    from mountfs import Dataset

    assert Dataset.list_datasets() == []
    assert not env.store.exists()
    Dataset.create(dataset_project="p", dataset_name="n")
    assert (env.store / "mountfs.json").is_file()


def test_a_store_in_the_config_must_be_text(env: Env, mountfs: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOUNTFS_STORE")
    Path(os.environ["MOUNTFS_CONFIG"]).write_text("store = 5\n")
    line = mountfs.fails("create", "--project", "p", "--name", "n", code=2)
    assert f"store in {os.environ['MOUNTFS_CONFIG']} must be a string (in quotes), not int 5" in line
    assert not (env.work / "5").exists()


@pytest.mark.allow_warnings  # the retry layer warns when it gives up on the unreachable endpoint
def test_create_with_an_unreachable_storage_makes_no_draft(env: Env, mountfs: Cli) -> None:
    Path(os.environ["MOUNTFS_CONFIG"]).write_text(
        '[s3.hosts."127.0.0.1:1"]\nkey = "test-key"\nsecret = "test-secret"\n')
    out = mountfs("create", "--project", "p", "--name", "n", "--storage", "s3://127.0.0.1:1/bucket/x", code=9)
    line = out.stderr.splitlines()[-1]
    assert line.startswith("mountfs: error: S3 get of 'mountfs.json' in s3://127.0.0.1:1/bucket/x failed"), line
    assert not (env.work / ".mountfs-dataset.json").exists(), "no draft was remembered"
    assert not env.store.exists(), "the catalog's store was not started for a draft that failed"


def test_create_with_a_new_storage_folder_starts_it(env: Env, mountfs: Cli) -> None:
    data_store = env.work.parent / "data-store"
    out = mountfs("create", "--project", "p", "--name", "n", "--storage", str(data_store))
    said = [line for line in out.stderr.splitlines() if "created a new mountfs store" in line]
    assert said == [f"mountfs: created a new mountfs store at {data_store}",
                    f"mountfs: created a new mountfs store at {env.store}"]
    assert (data_store / "mountfs.json").is_file()


def test_a_version_whose_data_store_vanished_is_not_recreated_by_reading(env: Env, mountfs: Cli) -> None:
    data_store = env.work.parent / "data-store"
    mountfs("create", "--project", "p", "--name", "n", "--storage", str(data_store))
    mountfs("add", "--files", env.data)
    mountfs("close")
    assert mountfs.json("info", "--project", "p", "--name", "n")["status"] == "completed"
    for p in sorted(data_store.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    data_store.rmdir()
    session._sessions.clear()  # as a new process would: nothing remembered of the store
    line = mountfs.fails("get", "--project", "p", "--name", "n", code=3)
    assert line.startswith(NO_STORE.format(data_store)), line
    assert not data_store.exists(), "reading a version started its vanished data store"
    mountfs("delete", "--project", "p", "--name", "n", "--force")  # its record can still go
    assert mountfs.json("search", "--project", "p") == []
    assert not data_store.exists()


def test_the_daemon_refuses_a_missing_store(env: Env, tmp_path: Path) -> None:
    mp = tmp_path / "mp"
    run = subprocess.run([sys.executable, "-m", "mountfs.daemon", "--mountpoint", str(mp)],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert run.returncode == 3, run.stderr
    assert f"mountfsd: error: no mountfs store at {env.store}" in run.stderr
    assert not env.store.exists() and not mp.exists()


# --- the configuration's errors ------------------------------------------------------------------


def test_a_config_file_that_is_not_utf8_is_named(env: Env, mountfs: Cli) -> None:
    cfg = os.environ["MOUNTFS_CONFIG"]
    Path(cfg).write_bytes(b'store = "caf\xe9"\n')
    line = mountfs.fails("search", code=2)
    assert line == f"mountfs: error: cannot read config file {cfg}: it is not UTF-8 text (byte 12); save it as UTF-8 TOML"


@pytest.mark.parametrize("text, message", [
    ('s3 = "x"\n', "s3 in {} must be a table ([s3] with its settings below it), not str 'x'"),
    ('[s3]\nhosts = 1\n', "s3.hosts in {} must be a table ([s3.hosts] with its settings below it), not int 1"),
    ('[s3.hosts]\n"h:1" = "k"\n', 's3.hosts."h:1" in {} must be a table'),
    ('mountfs = []\n', "mountfs in {} must be a table"),
    ('cache_dir = false\n', "cache_dir in {} must be a string (in quotes), not bool False"),
])
def test_a_setting_of_the_wrong_type_is_named_with_the_type_it_needs(env: Env, mountfs: Cli, text: str,
                                                                     message: str) -> None:
    cfg = os.environ["MOUNTFS_CONFIG"]
    Path(cfg).write_text(text)
    line = mountfs.fails("search", code=2)
    assert message.format(cfg) in line, line


@pytest.mark.allow_warnings
def test_unknown_settings_are_named_in_one_warning(env: Env, mountfs: Cli, caplog: pytest.LogCaptureFixture) -> None:
    cfg = os.environ["MOUNTFS_CONFIG"]
    Path(cfg).write_text('stor = "/x"\ncache_size = "2G"\n[s3]\nregin = "eu"\n[s3.hosts."h:1"]\nsecert = "s"\n'
                         '[mountfs]\nmountpiont = "/d"\n')
    mountfs("create", "--project", "p", "--name", "n")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f'config file {cfg}: unknown settings stor, mountfs.mountpiont, s3.regin, '
                        's3.hosts."h:1".secert ignored (a typo?)'], warnings


def test_a_missing_config_file_named_by_the_variable_is_an_error(env: Env, mountfs: Cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    missing = env.work / "nope.toml"
    monkeypatch.setenv("MOUNTFS_CONFIG", str(missing))
    line = mountfs.fails("search", code=2)
    assert line.startswith(f"mountfs: error: config file {missing} (named by MOUNTFS_CONFIG) does not exist"), line
    # /dev/null is the way to say "no config file"
    monkeypatch.setenv("MOUNTFS_CONFIG", os.devnull)
    mountfs("create", "--project", "p", "--name", "n")


def test_an_unusable_cache_size_breaks_only_what_needs_the_cache(env: Env, mountfs: Cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    mountfs("create", "--project", "p", "--name", "n")
    monkeypatch.setenv("MOUNTFS_CACHE_SIZE", "lots")
    assert mountfs("search", "--all", "--json").exit_code == 0
    line = mountfs.fails("cache", "info", code=2)
    assert line == ("mountfs: error: MOUNTFS_CACHE_SIZE: cannot read size 'lots': use a number with an optional "
                    "unit, e.g. 20G or 512M")
    Path(os.environ["MOUNTFS_CONFIG"]).write_text('cache_size = "much"\n')
    monkeypatch.delenv("MOUNTFS_CACHE_SIZE")
    assert f"cache_size in {os.environ['MOUNTFS_CONFIG']}: cannot read size 'much'" in mountfs.fails(
        "cache", "info", code=2)


@pytest.mark.parametrize("value, message", [
    ("0", "a chunk cache of 0 B is too small: give at least 1.0 MiB (one average chunk"),
    ("10", "a chunk cache of 10 B is too small: give at least 1.0 MiB"),
    ("1023K", "a chunk cache of 1023.0 KiB is too small"),
    ("99999999999999999999999T", "size '99999999999999999999999T' is more than 1.0 EiB"),
    ("2E", "cannot read size '2E'"),
])
def test_cache_sizes_out_of_range_are_refused(env: Env, mountfs: Cli, monkeypatch: pytest.MonkeyPatch, value: str,
                                              message: str) -> None:
    monkeypatch.setenv("MOUNTFS_CACHE_SIZE", value)
    line = mountfs.fails("cache", "info", code=2)
    assert line.startswith(f"mountfs: error: MOUNTFS_CACHE_SIZE: {message}"), line


def test_a_large_cache_size_prints_sanely(env: Env, mountfs: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOUNTFS_CACHE_SIZE", "1000P")
    assert "0 B of 1000.0 PiB" in mountfs("cache", "info").stdout
    monkeypatch.setenv("MOUNTFS_CACHE_SIZE", "1024P")
    assert "0 B of 1.0 EiB" in mountfs("cache", "info").stdout


def test_the_same_rules_on_an_object_store(env: Env, mountfs: Cli, seaweed_store: str) -> None:
    from mountfs.session import current

    assert mountfs.fails("search", code=3).startswith(NO_STORE.format(seaweed_store))
    backend = current()._backend(current().catalog_url)
    assert list(backend.list()) == [], "reading wrote nothing into the bucket"
    out = mountfs("create", "--project", "p", "--name", "n")
    assert f"mountfs: created a new mountfs store at {seaweed_store}" in out.stderr.splitlines()
    # a prefix already holding objects but no mountfs.json is not made a store
    other = seaweed_store.rsplit("/", 1)[0] + "/someones-data"
    current()._backend(other).put("photo.jpg", b"mine")
    line = mountfs.fails("--storage", other, "create", "--project", "p", "--name", "n", code=2)
    assert f"{other} holds files but is not a mountfs store" in line
    assert [o.key for o in current()._backend(other).list()] == ["photo.jpg"]
