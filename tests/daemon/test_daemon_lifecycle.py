"""Daemons that start, stop, die and come back; single-version mounts; new versions; warmup; the cache.

Each test has its own store, cache and runtime folder; every daemon is
stopped by PID and every mount unmounted by the ``h`` fixture.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mfs import (Harness, assert_same_tree, build, drop_page_cache, pid_alive, random_tree, sha,
                 tree_files, wait_for, wait_refreshes, write)

from mountfs.daemon import mounts
from mountfs.store.layout import Pack

pytestmark = pytest.mark.fuse


def _read_all(root: Path | str, src: Path | str) -> int:
    return assert_same_tree(root, src)


def _settle(d) -> None:
    """Wait until the daemon has written what it fetched to its cache (readers are served first)."""
    wait_for(lambda: d.status()["inflight_fetches"] == 0, 10, "the cache writes to finish")


def _runtime_gone(h: Harness, mp: str) -> bool:
    files = mounts.RuntimeFiles(h.run_dir, mp)
    return not os.path.exists(files.socket) and not os.path.exists(files.info)


def test_new_version_appears_draft_never(h: Harness, tmp_path: Path) -> None:
    v1 = build("vision", "cats", random_tree(tmp_path / "v1", seed=1, files=4))
    mp = h.mountpoint()
    d = h.start(mp, how="mountfsd")
    cats = Path(mp) / "vision" / "cats"
    assert set(os.listdir(cats)) == {"1.0.0", "latest"}
    assert os.readlink(cats / "latest") == "1.0.0"

    draft = build("vision", "cats", random_tree(tmp_path / "draft", seed=2, files=2), finalize=False)  # 1.0.1
    fresh = build("vision", "cats", None, finalize=False, upload=False)  # 1.0.2, nothing uploaded
    hidden = build("secret", "plans", random_tree(tmp_path / "hidden", seed=3, files=2), finalize=False)
    src3 = random_tree(tmp_path / "v3", seed=4, files=5)
    v3 = build("vision", "cats", src3)  # 1.0.3, finalized while mounted
    assert v3.version == "1.0.3"
    # the second refresh to end from now began after the finalize: it shows the version
    wait_refreshes(d)
    assert "1.0.3" in os.listdir(cats)
    assert os.readlink(cats / "latest") == "1.0.3"
    assert_same_tree(cats / "1.0.3", src3)
    assert_same_tree(cats / "latest", src3)
    assert v3.id in os.listdir(Path(mp) / ".by-id")
    assert_same_tree(Path(mp) / ".by-id" / v3.id, src3)

    # a new project appears at the top too
    src4 = random_tree(tmp_path / "v4", seed=5, files=3)
    build("audio/clips", "dogs", src4, version="0.1")
    wait_for(lambda: "audio" in os.listdir(mp), 10, "a new project to appear")
    assert_same_tree(Path(mp) / "audio/clips/dogs/0.1", src4)

    # drafts never appear, however many refreshes pass
    wait_refreshes(d)
    assert set(os.listdir(cats)) == {"1.0.0", "1.0.3", "latest"}
    for ds in (draft, fresh, hidden):
        assert ds.id not in os.listdir(Path(mp) / ".by-id")
        assert not os.path.exists(Path(mp) / ".by-id" / ds.id)
    assert not os.path.exists(cats / "1.0.1") and not os.path.exists(cats / "1.0.2")
    assert "secret" not in os.listdir(mp)

    # ... until finalized: then it appears, and latest stays the highest version
    draft.finalize()
    wait_for(lambda: "1.0.1" in os.listdir(cats), 10, "the finalized draft to appear")
    assert_same_tree(cats / "1.0.1", tmp_path / "draft")
    assert os.readlink(cats / "latest") == "1.0.3"
    assert v1.id in os.listdir(Path(mp) / ".by-id")
    assert not d.log_problems(), d.log_problems()


@pytest.mark.allow_warnings  # the one warning about the unreachable catalog
def test_unreachable_catalog_is_reported_once_and_recovers(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=3)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.start(mp, how="mountfsd")
    assert_same_tree(Path(mp) / "p/n/1.0.0", src)
    store = Path(os.environ["MOUNTFS_STORE"])
    away = store.with_name(store.name + ".away")
    store.rename(away)
    try:
        # two refreshes fail (at about +2 s and +6 s: the wait doubles), reported once
        wait_for(lambda: d.status()["catalog"]["failures"] >= 2, 30, "two catalog refreshes to fail")
        assert "no mountfs store at" in d.status()["catalog"]["error"]
        # what was mounted is still there, served from the cache
        assert_same_tree(Path(mp) / "p/n/1.0.0", src)
    finally:
        away.rename(store)
    failed = [line for line in d.log_problems() if "catalog refresh failed" in line]
    assert len(failed) == 1, d.log_problems()
    assert "still served" in failed[0]
    wait_for(lambda: "catalog refresh works again" in d.log_text(), 40, "the refresh to recover")
    assert d.status()["catalog"]["error"] == ""
    src2 = random_tree(tmp_path / "v2", seed=2, files=2)
    build("p", "n", src2)
    wait_for(lambda: "1.0.1" in os.listdir(Path(mp) / "p/n"), 10, "a new version to appear after recovery")
    assert_same_tree(Path(mp) / "p/n/1.0.1", src2)


def test_single_version_mount_and_umount(h: Harness, tmp_path: Path) -> None:
    src1 = random_tree(tmp_path / "v1", seed=1, files=8, big=3 << 20)
    v1 = build("vision", "cats", src1)
    src2 = random_tree(tmp_path / "v2", seed=2, files=3)
    v2 = build("vision", "cats", src2, parents=[v1.id])
    draft = build("vision", "cats", None, finalize=False, upload=False)

    mp1, mp2 = h.mountpoint("one"), h.mountpoint("two")
    d1 = h.mount("vision/cats/1.0.0", mp1)
    d2 = h.mount(v2.id, mp2)
    assert d1.pid != d2.pid
    _read_all(mp1, src1)
    expect2 = tmp_path / "expect2"
    subprocess.run(["cp", "-r", str(src1), str(expect2)], check=True)
    subprocess.run(["cp", "-r", f"{src2}/.", str(expect2)], check=True)
    _read_all(mp2, expect2)  # the child has its parent's files too
    st = os.stat(mp1)
    assert stat_mode(st) == 0o555
    rows = {r["mountpoint"]: r for r in h.cli_json("status")}
    assert rows[mp1]["dataset"] == v1.id and rows[mp1]["pid"] == d1.pid
    assert rows[mp2]["dataset"] == v2.id and rows[mp2]["pid"] == d2.pid

    # already mounted, a draft, a missing folder: one clear error each
    err = h.cli("mount", "vision/cats/1.0.1", mp1, code=None)
    assert err.returncode != 0 and "mounted" in err.stderr and "Traceback" not in err.stderr
    err = h.cli("mount", "--id", draft.id, h.mountpoint("three"), code=None)
    assert err.returncode != 0 and "Traceback" not in err.stderr, err.stderr
    assert not mounts.mounted_fuse(h.mountpoint("three"))
    not_a_dir = tmp_path / "work" / "plain-file"
    not_a_dir.write_text("x")
    h.mountpoints.add(str(not_a_dir))
    err = h.cli("mount", v1.id, str(not_a_dir), code=None)
    assert err.returncode != 0 and "Traceback" not in err.stderr, err.stderr
    assert not mounts.mounted_fuse(str(not_a_dir))

    out = h.cli("umount", mp1).stdout
    assert "unmounted" in out
    assert not mounts.mounted_fuse(mp1)
    wait_for(lambda: not pid_alive(d1.pid), 10, "the daemon to exit")
    assert _runtime_gone(h, mp1)
    assert os.listdir(mp1) == []
    res = h.cli("umount", mp1, code=3)
    assert "nothing is mounted" in res.stderr
    # the other mount is untouched
    assert sha(Path(mp2) / "big" / "blob.bin") == sha(src1 / "big" / "blob.bin")
    h.cli("umount", mp2)
    wait_for(lambda: not pid_alive(d2.pid), 10, "the daemon to exit")
    assert h.cli_json("status") == []
    for d in (d1, d2):
        assert not d.log_problems(), d.log_problems()


def stat_mode(st: os.stat_result) -> int:
    return st.st_mode & 0o7777


@pytest.mark.allow_warnings
def test_sigkill_stale_mount_cleanup_and_restart(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=10, big=4 << 20)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.start(mp)
    _read_all(Path(mp) / "p/n/1.0.0", src)
    _settle(d)
    first = d.status()
    assert first["bytes_fetched"] >= 4 << 20
    cache_before = h.cli_json("cache", "info")

    d.terminate(signal.SIGKILL)
    assert mounts.mounted_fuse(mp)
    assert mounts.is_stale(mp)
    for probe in (os.statvfs, os.listdir):  # (stat may still be answered from the kernel's attribute cache)
        with pytest.raises(OSError) as info:
            probe(mp)
        assert info.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    rows = h.cli_json("status")
    assert rows == [{"mountpoint": mp, "pid": d.pid, "dead": True}]
    assert "dead" in h.cli("status").stdout

    assert "unmounted" in h.cli("umount", mp).stdout
    assert not mounts.mounted_fuse(mp)
    assert os.listdir(mp) == []
    assert _runtime_gone(h, mp)

    # a restarted daemon on the same mountpoint serves from the cache it left: nothing is fetched
    d2 = h.start(mp)
    _read_all(Path(mp) / "p/n/1.0.0", src)
    [second] = h.cli_json("status")
    assert second["pid"] == d2.pid
    assert second["bytes_fetched"] == 0 and second["fetches"] == 0
    assert second["bytes_read"] > 0
    assert h.cli_json("cache", "info")["count"] == cache_before["count"]
    assert not d2.log_problems(), d2.log_problems()

    # killed again, and restarted without `mountfs umount`: the daemon cleans the stale mount itself
    d2.terminate(signal.SIGKILL)
    d3 = h.start(mp)
    assert sha(Path(mp) / "p/n/latest/big/blob.bin") == sha(src / "big/blob.bin")
    assert d3.status()["bytes_fetched"] == 0
    assert any("stale" in line for line in d3.log_problems())
    h.cli("umount", mp)
    wait_for(lambda: not pid_alive(d3.pid), 10, "the daemon to exit")
    assert not mounts.mounted_fuse(mp)


def test_warmup_then_reads_fetch_nothing(h: Harness, tmp_path: Path) -> None:
    src1 = random_tree(tmp_path / "v1", seed=1, files=12, big=3 << 20)
    v1 = build("vision", "cats", src1)
    src2 = random_tree(tmp_path / "v2", seed=2, files=6)
    build("vision", "cats", src2)
    src3 = random_tree(tmp_path / "v3", seed=3, files=3)
    build("audio", "speech", src3)
    mp = h.mountpoint()
    d = h.start(mp)
    # a dataset folder: both versions and the `latest` link inside it
    out = h.cli("warmup", f"{mp}/vision/cats").stdout
    assert "warmed up" in out
    st = d.status()
    fetched = st["bytes_fetched"]
    assert fetched >= sum(os.path.getsize(p) for p in tree_files(src1).values())
    for key, src in (("1.0.0", src1), ("1.0.1", src2), ("latest", src2)):
        _read_all(Path(mp) / "vision/cats" / key, src)
    _read_all(Path(mp) / ".by-id" / v1.id, src1)
    assert d.status()["bytes_fetched"] == fetched
    # warming up one version through .by-id, then the whole catalog: nothing left to fetch there
    h.cli("warmup", f"{mp}/.by-id/{v1.id}")
    assert d.status()["bytes_fetched"] == fetched
    h.cli("warmup", mp)
    [after] = h.cli_json("status")
    _read_all(Path(mp) / "audio/speech/1.0.0", src3)
    [now] = h.cli_json("status")
    assert now["bytes_fetched"] == after["bytes_fetched"] and now["fetches"] == after["fetches"]
    assert now["bytes_read"] > after["bytes_read"]
    res = h.cli("warmup", str(tmp_path), code=None)
    assert res.returncode != 0 and "not inside a mountfs mount" in res.stderr
    assert not d.log_problems(), d.log_problems()


def test_warmup_single_version_mount(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=10, big=2 << 20)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.mount("p/n", mp)
    h.cli("warmup", f"{mp}/train")
    part = d.status()["bytes_fetched"]
    assert 0 < part < sum(os.path.getsize(p) for p in tree_files(src).values())
    h.cli("warmup", mp)
    fetched = d.status()["bytes_fetched"]
    _read_all(mp, src)
    assert d.status()["bytes_fetched"] == fetched


def test_large_directory_through_the_kernel(h: Harness, tmp_path: Path) -> None:
    """3000 entries: the kernel pages through readdir (resuming at offsets the daemon handed out)."""
    src = tmp_path / "many"
    src.mkdir()
    for i in range(3000):
        (src / f"item_{i:05d}.txt").write_bytes(b"%d\n" % i)
    build("p", "many", src)
    mp = h.mountpoint()
    h.start(mp)
    root = Path(mp) / "p/many/1.0.0"
    names = os.listdir(root)
    assert len(names) == 3000 and sorted(names) == sorted(os.listdir(src))
    listed = subprocess.run(["ls", "-1f", str(root)], capture_output=True, text=True, check=True, timeout=60)
    assert {n for n in listed.stdout.splitlines() if n not in (".", "..")} == set(names)
    with os.scandir(root) as it:
        sizes = {e.name: e.stat().st_size for e in it}
    assert sizes == {n: (src / n).stat().st_size for n in names}
    for i in (0, 1234, 2999):
        assert (root / f"item_{i:05d}.txt").read_bytes() == b"%d\n" % i


def test_cache_commands(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=8, big=4 << 20)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.start(mp)
    empty = h.cli_json("cache", "info")
    assert empty["size"] == 0 and empty["count"] == 0 and empty["directory"] == h.env["MOUNTFS_CACHE_DIR"]
    _read_all(Path(mp) / "p/n/1.0.0", src)
    info = h.cli_json("cache", "info")
    assert info["size"] >= 4 << 20 and info["count"] > 0
    assert info["max_size"] == 20 << 30
    assert "chunks" in h.cli("cache", "info").stdout

    assert "evicted" in h.cli("cache", "evict", "--to", "1M").stdout
    assert h.cli_json("cache", "info")["size"] <= 1 << 20
    assert "cleared" in h.cli("cache", "clear").stdout
    cleared = h.cli_json("cache", "info")
    assert cleared["size"] == 0 and cleared["count"] == 0
    # the mount fetches again what it needs, and still gives the right bytes
    before = d.status()["bytes_fetched"]
    drop_page_cache(Path(mp) / "p/n/1.0.0")
    _read_all(Path(mp) / "p/n/1.0.0", src)
    assert d.status()["bytes_fetched"] >= before + (4 << 20)
    assert h.cli_json("cache", "info")["size"] >= 4 << 20
    assert not d.log_problems(), d.log_problems()


def test_tiny_cache_still_right_bytes(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v1", seed=1, files=12, max_size=200_000)
    for i in range(3):
        write(src / "big" / f"part{i}.bin", os.urandom((4 << 20) + i * 12345))
    build("p", "n", src)
    total = sum(os.path.getsize(p) for p in tree_files(src).values())
    assert total > 12 << 20
    env = dict(h.env, MOUNTFS_CACHE_SIZE="3M")
    mp = h.mountpoint()
    d = h.start(mp, env=env)
    root = Path(mp) / "p/n/1.0.0"
    for _ in range(2):
        _read_all(root, src)
        drop_page_cache(root)
    # several readers at once while the cache keeps evicting
    want = {rel: sha(p) for rel, p in tree_files(src).items()}
    with ThreadPoolExecutor(6) as pool:
        got = dict(zip(want, pool.map(lambda rel: sha(root / rel), want)))
    assert got == want
    st = d.status()
    assert st["cache"]["max_size"] == 3 << 20
    assert st["cache"]["evictions"] > 0
    assert st["bytes_fetched"] >= 2 * total  # nothing fits: everything was fetched again
    info = json.loads(h.cli("cache", "info", "--json", env=env).stdout)
    assert info["size"] <= 3 << 20
    assert not d.log_problems(), d.log_problems()


def test_corrupted_pack_gives_eio_never_wrong_bytes(h: Harness, tmp_path: Path) -> None:
    src1 = random_tree(tmp_path / "v1", seed=1, files=4, big=6 << 20)
    v1 = build("p", "damaged", src1)
    src2 = random_tree(tmp_path / "v2", seed=2, files=6)
    build("p", "healthy", src2)  # another upload: another pack
    from mountfs.session import current

    sess = current()
    entry = next(e for e in sess.store().get_manifest(v1.id, v1.record.manifest_digest) if e.path == "big/blob.bin")
    assert len(entry.chunks) >= 3
    bad = entry.chunks[2]
    pack = Path(h.env["MOUNTFS_STORE"]) / Pack(bad.pack).key
    data = bytearray(pack.read_bytes())
    for k in range(bad.offset + 100, bad.offset + 200):
        data[k] ^= 0x55
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))
    good_end = entry.chunks[0].size + entry.chunks[1].size

    mp = h.mountpoint()
    d = h.start(mp)
    path = Path(mp) / "p/damaged/1.0.0/big/blob.bin"
    want = (src1 / "big/blob.bin").read_bytes()
    errors = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in range(0, len(want), 256 << 10):
            try:
                got = os.pread(fd, 256 << 10, off)
            except OSError as exc:
                assert exc.errno == errno.EIO, exc
                errors += 1
                continue
            assert got == want[off:off + len(got)], f"wrong bytes at {off}"
        # the damaged chunk itself, again and again: always EIO (a failure is never cached)
        for _ in range(3):
            with pytest.raises(OSError) as info:
                os.pread(fd, 4096, good_end + 10)
            assert info.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert errors > 0
    with pytest.raises(OSError) as info:
        path.read_bytes()
    assert info.value.errno == errno.EIO
    res = subprocess.run(["cat", str(path)], capture_output=True, timeout=60)
    assert res.returncode != 0 and b"Input/output error" in res.stderr
    assert res.stdout == want[:len(res.stdout)]
    # everything else still reads
    _read_all(Path(mp) / "p/healthy/1.0.0", src2)
    for rel, full in tree_files(src1).items():
        if rel != "big/blob.bin":
            assert (Path(mp) / "p/damaged/1.0.0" / rel).read_bytes() == Path(full).read_bytes()
    assert d.status()["fetch_errors"] > 0
    problems = d.log_problems()
    assert any(bad.pack in line for line in problems if " ERROR " in line), problems
