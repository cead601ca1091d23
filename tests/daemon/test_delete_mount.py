"""A running catalog mount drops versions removed by Dataset.delete within a refresh or two, and the child of a
deleted parent stays whole in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mfs import Harness, assert_same_tree, build, random_tree, wait_for, wait_refreshes

from mountfs import Dataset

pytestmark = pytest.mark.fuse


def _visible(mp: Path, place: str) -> set[str]:
    """The versions listed at ``mp/place`` (``latest`` left out); empty when the folder is not there."""
    try:
        return set(os.listdir(mp / place)) - {"latest"}
    except FileNotFoundError:
        return set()


def test_deleted_versions_leave_a_running_mount_and_a_child_stays_whole(h: Harness, tmp_path: Path) -> None:
    src1 = random_tree(tmp_path / "v1", seed=1, files=6, max_size=200_000)
    parent = build("p", "n", src1)
    src2 = random_tree(tmp_path / "v2", seed=2, files=4)
    child = build("p", "n", src2, parents=[parent.id])
    other = build("p", "other", random_tree(tmp_path / "o", seed=3, files=2))
    mp = Path(h.mountpoint())
    d = h.start(str(mp))
    assert _visible(mp, "p/n") == {"1.0.0", "1.0.1"}

    Dataset.delete(dataset_id=parent.id, force=True)
    wait_refreshes(d)
    wait_for(lambda: _visible(mp, "p/n") == {"1.0.1"}, 5, "the deleted parent to leave the mount")
    assert sorted(os.listdir(mp / ".by-id")) == sorted([child.id, other.id])
    assert os.readlink(mp / "p" / "n" / "latest") == "1.0.1"
    # the child: its parent's files and its own, byte for byte
    for src in (src1, src2):
        for f in (p for p in src.rglob("*") if p.is_file()):
            assert (mp / "p" / "n" / "1.0.1" / f.relative_to(src)).read_bytes() == f.read_bytes()
    assert_same_tree(mp / ".by-id" / other.id, tmp_path / "o")

    Dataset.delete(dataset_project="p", dataset_name="n", entire_dataset=True, force=True)
    wait_refreshes(d)
    wait_for(lambda: not (mp / "p" / "n").exists(), 5, "the deleted dataset to leave the mount")
    assert sorted(os.listdir(mp / ".by-id")) == [other.id]
    assert _visible(mp, "p/other") == {"1.0.0"}
    assert d.log_problems() == []
