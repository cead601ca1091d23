"""A running catalog mount shows Dataset.rename and Dataset.move_to_project within a refresh or two, and a
move interrupted halfway shows every version under one of its names (a re-run then completes it)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from mfs import Harness, assert_same_tree, build, random_tree, wait_for, wait_refreshes

from mountfs import Dataset
from mountfs.backends.file import FileBackend
from mountfs.catalog import Catalog
from mountfs.session import current

pytestmark = pytest.mark.fuse


class Crash(Exception):
    """The writing process "dies" here."""


class CrashingBackend(FileBackend):
    """The store's real folder backend, failing every write after the first ``writes``."""

    def __init__(self, root: str, writes: int):
        super().__init__(root)
        self.left = writes

    def _count(self) -> None:
        if self.left <= 0:
            raise Crash()
        self.left -= 1

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._count()
        super().put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> None:
        self._count()
        super().put_if_absent(key, data)

    def delete(self, key: str) -> None:
        self._count()
        super().delete(key)


def _visible(mp: Path, place: str) -> set[str]:
    """The versions listed at ``mp/place`` (``latest`` left out); empty when the folder is not there."""
    try:
        return set(os.listdir(mp / place)) - {"latest"}
    except FileNotFoundError:
        return set()


def test_rename_and_move_show_in_a_running_mount(h: Harness, tmp_path: Path) -> None:
    src1 = random_tree(tmp_path / "v1", seed=1, files=6, max_size=200_000)
    v1 = build("p", "n", src1)
    src2 = random_tree(tmp_path / "v2", seed=2, files=4)
    v2 = build("p", "n", src2, parents=[v1.id])
    draft = build("p", "n", random_tree(tmp_path / "d", seed=3, files=2), finalize=False)
    mp = Path(h.mountpoint())
    d = h.start(str(mp))
    old = mp / "p" / "n"
    assert _visible(mp, "p/n") == {"1.0.0", "1.0.1"}
    rel = sorted(p.relative_to(src1) for p in src1.rglob("*") if p.is_file())[0]
    ino = os.stat(old / "1.0.0" / rel).st_ino
    fd = os.open(old / "1.0.0" / rel, os.O_RDONLY)
    try:
        started = time.monotonic()
        Dataset.rename("renamed", dataset_project="p", dataset_name="n")
        wait_refreshes(d)
        new = mp / "p" / "renamed"
        assert _visible(mp, "p/renamed") == {"1.0.0", "1.0.1"}
        assert os.readlink(new / "latest") == "1.0.1"
        # the old name's folder leaves once the kernel's 1 s entry timeout has passed
        wait_for(lambda: not old.exists(), 5, "the old name to leave the mount")
        assert time.monotonic() - started < 15
        assert os.stat(new / "1.0.0" / rel).st_ino == ino  # the same version, the same inodes
        assert os.pread(fd, 1 << 20, 0) == (src1 / rel).read_bytes()
        assert_same_tree(new / "1.0.0", src1)
        for f in (p for p in src2.rglob("*") if p.is_file()):  # the child: its parent's files and its own
            assert (new / "1.0.1" / f.relative_to(src2)).read_bytes() == f.read_bytes()

        Dataset.move_to_project("q/sub", dataset_project="p", dataset_name="renamed")
        wait_refreshes(d)
        moved = mp / "q" / "sub" / "renamed"
        assert _visible(mp, "q/sub/renamed") == {"1.0.0", "1.0.1"}
        wait_for(lambda: not (mp / "p").exists(), 5, "the emptied project to leave the mount")
        assert_same_tree(moved / "1.0.0", src1)
        assert sorted(os.listdir(mp / ".by-id")) == sorted([v1.id, v2.id])

        # the draft moved too: finalized now, it appears at the new place
        draft.upload(show_progress=False)
        draft.finalize()
        wait_refreshes(d)
        assert _visible(mp, "q/sub/renamed") == {"1.0.0", "1.0.1", "1.0.2"}
        assert os.readlink(moved / "latest") == "1.0.2"
    finally:
        os.close(fd)
    assert d.log_problems() == []


@pytest.mark.parametrize("writes", [4, 5], ids=["new-pointer-only", "record-moved"])
def test_a_move_interrupted_halfway_shows_every_version_once_and_a_rerun_completes(
        h: Harness, tmp_path: Path, writes: int) -> None:
    ids = {}
    for i in range(3):
        ds = build("p", "n", random_tree(tmp_path / f"v{i}", seed=i, files=3))
        ids[ds.version] = ds.id
    mp = Path(h.mountpoint())
    d = h.start(str(mp))
    assert _visible(mp, "p/n") == set(ids)
    # per version: new pointer, record, old pointer; 4 writes: 1.0.1 has both pointers; 5: its record moved too
    catalog = Catalog(CrashingBackend(current().catalog_url, writes))
    with pytest.raises(Crash):
        catalog.move_dataset("p", "n", "p", "m")
    wait_refreshes(d)
    wait_for(lambda: not (_visible(mp, "p/n") & _visible(mp, "p/m")), 5, "each version under one name")
    assert _visible(mp, "p/n") | _visible(mp, "p/m") == set(ids)
    assert "1.0.0" in _visible(mp, "p/m") and "1.0.2" in _visible(mp, "p/n")
    assert sorted(os.listdir(mp / ".by-id")) == sorted(ids.values())

    Dataset.rename("m", dataset_project="p", dataset_name="n")  # the same call again completes it
    wait_refreshes(d)
    assert _visible(mp, "p/m") == set(ids)
    wait_for(lambda: not (mp / "p" / "n").exists(), 5, "the old name to leave the mount")
    assert d.log_problems() == []
