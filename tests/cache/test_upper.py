"""The upper layer of a writable copy: rows, listed folders, written extents, the lock, discarding."""

from __future__ import annotations

import random
import stat

import pytest

from mountfs.cache import upper
from mountfs.cache.upper import UPPER_BASE, UNode, Upper
from mountfs.errors import UsageError


@pytest.fixture
def up(tmp_path):
    u = Upper(upper.upper_dir(str(tmp_path), "d1"), "d1")
    yield u
    u.close()


def _extents(u: Upper, ino: int) -> list[tuple[int, int]]:
    return u.extents(ino)


def test_extents_merge_like_a_set_of_written_bytes(up):
    rng = random.Random(7)
    written = set()
    for _ in range(400):
        start = rng.randrange(0, 5000)
        end = start + rng.randrange(1, 200)
        up.change(lambda t, s=start, e=end: t.add_extent(5, s, e))
        written.update(range(start, end))
        got = _extents(up, 5)
        # disjoint, sorted, not touching, and exactly the bytes written
        assert all(a[1] < b[0] for a, b in zip(got, got[1:]))
        assert set().union(*(range(s, e) for s, e in got)) == written
    # another inode's extents are apart
    up.change(lambda t: t.add_extent(6, 0, 10))
    assert _extents(up, 6) == [(0, 10)]
    up.change(lambda t: t.clip_extents(5, 2500))
    assert all(e <= 2500 for _, e in _extents(up, 5))
    assert set().union(*(range(s, e) for s, e in _extents(up, 5))) == {b for b in written if b < 2500}
    up.change(lambda t: t.drop_extents(5))
    assert _extents(up, 5) == [] and _extents(up, 6) == [(0, 10)]


def test_rows_names_and_inode_numbers_survive_reopening(tmp_path):
    d = upper.upper_dir(str(tmp_path), "d2")
    u = Upper(d, "d2")

    def make(t):
        ino = t.new_ino()
        t.put(UNode(ino, stat.S_IFREG | 0o640, 1, 2, size=3, target=b"", data=True))
        t.link(1, b"a", ino)
        t.link(1, b"b\xff", 7)
        return ino

    ino = u.change(make)
    assert ino == UPPER_BASE
    u.save_lower(b"table", "digest1")
    u.close()
    u = Upper(d, "d2")
    try:
        assert u.node(ino).mode == stat.S_IFREG | 0o640 and u.node(ino).size == 3
        assert u.children(1) == [(b"a", ino), (b"b\xff", 7)]
        assert u.change(lambda t: t.new_ino()) == UPPER_BASE + 1
        assert u.load_lower() == b"table" and u.lower_digest() == "digest1"
        assert u.has_changes()
    finally:
        u.close()
    assert upper.has_changes(str(tmp_path), "d2")


def test_one_daemon_at_a_time_and_discard(tmp_path):
    d = upper.upper_dir(str(tmp_path), "d3")
    u = Upper(d, "d3")
    assert upper.busy(str(tmp_path), "d3")
    with pytest.raises(UsageError, match="already mounted writable"):
        Upper(d, "d3")
    with pytest.raises(UsageError, match="unmount it first"):
        upper.discard(str(tmp_path), "d3")
    u.close()
    assert not upper.busy(str(tmp_path), "d3")
    upper.discard(str(tmp_path), "d3")
    assert not upper.exists(str(tmp_path), "d3")
    assert not upper.has_changes(str(tmp_path), "d3")
