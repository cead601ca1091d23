"""`mountfs get --link DIR`: a folder of symbolic links into a running mount of the version, else the cached copy.

The mount cases use real FUSE mounts (`mountfs mount`, `mountfs daemon run`) through the harness of
tests/daemon (mfs.py), which stops every daemon by PID and unmounts, even when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from mountfs.cli import linkdir
from mountfs.daemon import mounts
from mountfs.errors import LocalDiskError, StateError, UsageError

# tests/daemon holds the real-mount harness (mfs.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from mfs import Harness, harness, short_run_dir  # noqa: E402

#: what `add --files env.data` stores (tests/cli/conftest.py), relative path -> the source file's name under data
FILES = ["labels.csv", "train/img_0001.jpg", "train/img_0002.jpg", "val/img_0003.jpg"]


@pytest.fixture
def run_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This test's own runtime folder (a short path: unix socket paths are limited), never the user's."""
    path = short_run_dir()
    monkeypatch.setenv("MOUNTFS_RUN_DIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def h(env, run_dir: str, tmp_path: Path) -> Iterator[Harness]:
    work = tmp_path / "harness"
    work.mkdir()
    with harness(dict(os.environ), work) as hh:
        yield hh


@pytest.fixture
def finalized(env, mountfs, run_dir) -> str:
    ds_id = mountfs("create", "--project", "p", "--name", "n", "--version", "1.0").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs("close")
    return ds_id


def _links(folder: Path) -> dict[str, str]:
    """relative path -> link target of every entry below ``folder``; asserts folders are real and files are links."""
    out = {}
    for top, dirs, names in os.walk(folder):
        for d in dirs:
            assert not os.path.islink(os.path.join(top, d)), f"{d} is a link, not a folder"
        for n in names:
            full = os.path.join(top, n)
            assert os.path.islink(full), f"{full} is a copy, not a symbolic link"
            out[os.path.relpath(full, folder)] = os.readlink(full)
    return out


def _check_bytes(env, folder: Path, paths: list[str]) -> None:
    for rel in paths:
        assert (folder / rel).read_bytes() == (env.data / rel).read_bytes(), rel


def test_without_a_mount_links_point_into_the_cached_copy(env, mountfs, finalized):
    where = env.work / "ds"
    result = mountfs("get", "--id", finalized, "--link", where)
    assert result.stdout == f"{where}\n"
    copy = env.cache / "copies" / finalized
    assert result.stderr == f"{where}: 4 links into the read-only cached copy at {copy}\n"
    links = _links(where)
    assert sorted(links) == FILES
    for rel, target in links.items():
        assert target == str(copy / rel)
        assert os.path.samefile(where / rel, copy / rel)
    _check_bytes(env, where, FILES)

    doc = mountfs.json("get", "--id", finalized, "--link", env.work / "again")
    assert doc == {"id": finalized, "path": str(env.work / "again"), "links_to": "cache", "source": str(copy),
                   "files": 4}
    # --verbose lists DIR's files on stderr, stdout stays DIR alone
    verbose = mountfs("get", "--id", finalized, "--link", env.work / "v", "--verbose")
    assert verbose.stdout == f"{env.work / 'v'}\n" and "4 files of p/n 1.0" in verbose.stderr


def test_files_and_parts_link_only_what_was_chosen(env, mountfs, finalized):
    where = env.work / "train-only"
    doc = mountfs.json("get", "--id", finalized, "--link", where, "--files", "train")
    assert sorted(_links(where)) == ["train/img_0001.jpg", "train/img_0002.jpg"] and doc["files"] == 2
    _check_bytes(env, where, ["train/img_0001.jpg", "train/img_0002.jpg"])
    parts = [sorted(_links(_part(env, mountfs, finalized, k))) for k in range(2)]
    assert sorted(parts[0] + parts[1]) == FILES and not set(parts[0]) & set(parts[1])


def _part(env, mountfs, ds_id: str, k: int) -> Path:
    where = env.work / f"part{k}"
    mountfs("get", "--id", ds_id, "--link", where, "--part", str(k), "--num-parts", "2")
    return where


def test_a_dir_that_is_not_an_empty_folder_is_refused_unless_overwrite(env, mountfs, finalized, tmp_path):
    mine = env.work / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    line = mountfs.fails("get", "--id", finalized, "--link", mine, code=UsageError.exit_code)
    assert line == (f"mountfs: error: cannot link into {mine}: it is a folder that is not empty; "
                    "pass --overwrite to replace it")
    assert os.listdir(mine) == ["keep.txt"] and (mine / "keep.txt").read_text() == "mine"
    # nothing was fetched for a refused DIR
    assert not (env.cache / "copies" / finalized).exists()

    a_file = env.work / "a-file"
    a_file.write_text("x")
    assert "it is a file" in mountfs.fails("get", "--id", finalized, "--link", a_file, code=UsageError.exit_code)
    assert a_file.read_text() == "x"

    # a link at DIR is never followed: refused, and with --overwrite the link itself is replaced
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = env.work / "planted"
    planted.symlink_to(outside, target_is_directory=True)
    line = mountfs.fails("get", "--id", finalized, "--link", planted, code=UsageError.exit_code)
    assert "it is a symbolic link" in line
    mountfs("get", "--id", finalized, "--link", planted, "--overwrite")
    assert not planted.is_symlink() and sorted(_links(planted)) == FILES
    assert os.listdir(outside) == []

    # an empty folder is used as it is; running again needs --overwrite, which rebuilds it
    empty = env.work / "empty"
    empty.mkdir()
    mountfs("get", "--id", finalized, "--link", empty)
    assert sorted(_links(empty)) == FILES
    assert "not empty" in mountfs.fails("get", "--id", finalized, "--link", empty, code=UsageError.exit_code)
    mountfs("get", "--id", finalized, "--link", mine, "--overwrite")
    assert sorted(_links(mine)) == FILES
    _check_bytes(env, mine, FILES)

    # a folder holding the copy the links would point into is not emptied for them
    line = mountfs.fails("get", "--id", finalized, "--link", env.cache, "--overwrite", code=UsageError.exit_code)
    assert "is inside it" in line and (env.cache / "copies" / finalized / "labels.csv").exists()
    assert "alternatives" in mountfs.fails("get", "--id", finalized, "--link", env.work / "x", "--copy",
                                           env.work / "c", code=UsageError.exit_code)


def test_a_draft_is_refused_as_get_refuses_it(env, mountfs, finalized):
    draft = mountfs("create", "--project", "p", "--name", "n", "--version", "2.0").stdout.strip()
    mountfs("add", "--files", env.data)
    where = env.work / "draft-links"
    line = mountfs.fails("get", "--id", draft, "--link", where, code=StateError.exit_code)
    assert f"dataset {draft} is not finalized" in line
    assert not os.path.lexists(where)
    # without --id the remembered draft is not taken either: the latest finalized version of the name is
    doc = mountfs.json("get", "--project", "p", "--name", "n", "--link", where)
    assert doc["id"] == finalized and sorted(_links(where)) == FILES


def test_links_are_made_below_dir_only_never_through_a_planted_link(tmp_path):
    where, outside, src = tmp_path / "where", tmp_path / "outside", tmp_path / "src"
    where.mkdir()
    outside.mkdir()
    (where / "train").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OSError):
        linkdir._make_links(str(where), str(src), ["labels.csv", "train/a.jpg"])
    assert os.listdir(outside) == []
    # a deep and wide tree needs as many descriptors as it is deep, not as it is wide
    wide = tmp_path / "wide"
    wide.mkdir()
    paths = [f"d{i:04d}/x/f" for i in range(2000)] + ["a-b/c", "a/b/c/d", "a.txt", "a/e"]
    linkdir._make_links(str(wide), str(src), paths)
    assert sorted(_links(wide)) == sorted(paths)
    assert os.readlink(wide / "a" / "b" / "c" / "d") == str(src / "a" / "b" / "c" / "d")


def test_a_dead_daemons_description_is_not_used(env, mountfs, finalized, run_dir, tmp_path):
    mp = str(tmp_path / "gone")
    files = mounts.RuntimeFiles(run_dir, mp)
    files.prepare()
    files.write_info({"pid": 999_999_999, "mountpoint": mp, "socket": files.socket, "dataset": finalized})
    assert mountfs.json("get", "--id", finalized, "--link", env.work / "ds")["links_to"] == "cache"


# --------------------------------------------------------------- real mounts


def test_with_a_single_version_mount_links_point_into_it(env, mountfs, finalized, h):
    mp = h.mountpoint("one")
    d = h.mount(finalized, mp)
    where = env.work / "ds"
    result = mountfs("get", "--id", finalized, "--link", where)
    assert result.stdout == f"{where}\n"
    assert result.stderr == f"{where}: 4 links into the mount at {mp}\n"
    links = _links(where)
    assert links == {rel: os.path.join(mp, rel) for rel in FILES}
    _check_bytes(env, where, FILES)
    # the mount serves the bytes: no cached copy was built
    assert not (env.cache / "copies" / finalized).exists()
    assert json.loads(mountfs("get", "--id", finalized, "--link", env.work / "j", "--json").stdout) == {
        "id": finalized, "path": str(env.work / "j"), "links_to": "mount", "source": mp, "files": 4}
    assert d.status()["bytes_read"] > 0

    # once it is unmounted, a new folder of links goes to the cached copy
    h.cli("umount", mp)
    doc = mountfs.json("get", "--id", finalized, "--link", env.work / "after")
    assert doc["links_to"] == "cache" and doc["source"] == str(env.cache / "copies" / finalized)
    _check_bytes(env, env.work / "after", FILES)


def test_a_mount_of_another_version_is_not_used(env, mountfs, finalized, h):
    other = mountfs("create", "--project", "p", "--name", "other", "--version", "1.0").stdout.strip()
    mountfs("add", "--files", env.data / "train")
    mountfs("close")
    h.mount(other, h.mountpoint("other"))
    assert mountfs.json("get", "--id", finalized, "--link", env.work / "ds")["links_to"] == "cache"


def test_with_a_catalog_mount_links_go_through_by_id(env, mountfs, finalized, h):
    mp = h.mountpoint("catalog")
    h.start(mp)
    doc = mountfs.json("get", "--project", "p", "--name", "n", "--link", env.work / "ds")
    root = os.path.join(mp, ".by-id", finalized)
    assert doc == {"id": finalized, "path": str(env.work / "ds"), "links_to": "mount", "source": root, "files": 4}
    assert _links(env.work / "ds") == {rel: os.path.join(root, rel) for rel in FILES}
    _check_bytes(env, env.work / "ds", FILES)
    assert not (env.cache / "copies" / finalized).exists()


@pytest.mark.s3
def test_on_seaweedfs_into_the_cache_then_into_a_mount(env, mountfs, run_dir, seaweed_store: str, h):
    ds_id = mountfs("create", "--project", "p", "--name", "n", "--version", "1.0").stdout.strip()
    mountfs("add", "--files", env.data)
    mountfs("close")
    assert mountfs.json("get", "--id", ds_id, "--link", env.work / "cached")["links_to"] == "cache"
    _check_bytes(env, env.work / "cached", FILES)
    mp = h.mountpoint("s3")
    h.mount(ds_id, mp)
    doc = mountfs.json("get", "--id", ds_id, "--link", env.work / "mounted")
    assert doc["links_to"] == "mount" and doc["source"] == mp
    assert _links(env.work / "mounted") == {rel: os.path.join(mp, rel) for rel in FILES}
    _check_bytes(env, env.work / "mounted", FILES)


def test_a_failure_halfway_is_one_line_and_leaves_dir_empty(env, mountfs, finalized, monkeypatch):
    real = linkdir._make_links

    def fail_after_one(where: str, source: str, paths: list[str]) -> None:
        real(where, source, paths[:1])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(linkdir, "_make_links", fail_after_one)
    where = env.work / "full"
    line = mountfs.fails("get", "--id", finalized, "--link", where, code=LocalDiskError.exit_code)
    assert line == f"mountfs: error: cannot link {where}: No space left on device"
    assert os.listdir(where) == []
