"""The patched pyfuse3 build (daemon/pyfuse3/build.sh) makes FUSE "no open" work.

A tiny read-only pyfuse3 filesystem, defined here and independent of mountfs,
serves N files from memory. In "noopen" mode its open() raises ENOSYS: the
kernel (FUSE_NO_OPEN_SUPPORT) then stops sending OPEN/RELEASE and sends READ
with fh 0, which the patched pyfuse3 turns into the inode (docs/FUSE.md item 5).
The server runs as a subprocess (this file, run as a script) and, once
unmounted, writes the request counts it saw to a JSON file.

Run the server by hand (for measurements):
    python tests/fs/test_noopen_build.py MOUNTPOINT noopen|open STATS.json [FILES] [SIZE]
(SIZE 0: sizes 1..20,000 bytes; stop it with fusermount3 -u MOUNTPOINT)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pyfuse3 = pytest.importorskip("pyfuse3")
pytest.importorskip("trio")

N_FILES = 200
TIMEOUT = 3600.0  # immutable content: long entry/attr timeouts


def file_size(i: int, size: int | None) -> int:
    return size if size is not None else 1 + (i * 7919) % 20_000


def file_bytes(i: int, size: int | None = None) -> bytes:
    n = file_size(i, size)
    block = hashlib.sha256(i.to_bytes(4, "little")).digest()
    return (block * (n // len(block) + 1))[:n]


# ----------------------------------------------------------------- the server

def serve(mountpoint: str, mode: str, stats_path: str, n_files: int, size: int | None) -> None:
    import trio

    noopen = mode == "noopen"
    if noopen and not getattr(pyfuse3, "MOUNTFS_NOOPEN_INO", False):
        sys.exit("noopen mode needs the patched pyfuse3 (daemon/pyfuse3/build.sh)")

    first = pyfuse3.ROOT_INODE + 1
    names = {f"f{i:04d}".encode(): first + i for i in range(n_files)}
    data = {first + i: file_bytes(i, size) for i in range(n_files)}
    stats = {"open": 0, "release": 0, "read": 0, "read_bad_fh": 0}
    read_inodes: set[int] = set()

    class Fs(pyfuse3.Operations):
        def __init__(self) -> None:
            super().__init__()
            self.handles: dict[int, int] = {}
            self.next_fh = 1  # never hand out fh 0: the patched read maps fh 0 to the inode

        def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
            a = pyfuse3.EntryAttributes()
            a.st_ino = inode
            if inode == pyfuse3.ROOT_INODE:
                a.st_mode = stat.S_IFDIR | 0o555
                a.st_nlink = 2
            else:
                a.st_mode = stat.S_IFREG | 0o444
                a.st_nlink = 1
                a.st_size = len(data[inode])
            a.st_uid, a.st_gid = os.getuid(), os.getgid()
            a.st_blksize = 4096
            a.st_blocks = (a.st_size + 511) // 512
            a.entry_timeout = a.attr_timeout = TIMEOUT
            return a

        async def getattr(self, inode, ctx=None):
            if inode != pyfuse3.ROOT_INODE and inode not in data:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return self._attr(inode)

        async def lookup(self, parent_inode, name, ctx=None):
            inode = names.get(bytes(name)) if parent_inode == pyfuse3.ROOT_INODE else None
            if inode is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return self._attr(inode)

        async def opendir(self, inode, ctx):
            if inode != pyfuse3.ROOT_INODE:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            return inode

        async def readdir(self, fh, start_id, token):
            entries = sorted(names.items())
            for idx in range(start_id, len(entries)):
                name, inode = entries[idx]
                if not pyfuse3.readdir_reply(token, name, self._attr(inode), idx + 1):
                    break

        async def releasedir(self, fh):
            pass

        async def open(self, inode, flags, ctx):
            stats["open"] += 1
            if noopen:
                raise pyfuse3.FUSEError(errno.ENOSYS)
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise pyfuse3.FUSEError(errno.EROFS)
            fh, self.next_fh = self.next_fh, self.next_fh + 1
            self.handles[fh] = inode
            return pyfuse3.FileInfo(fh=fh, keep_cache=True)

        async def read(self, fh, off, size):
            stats["read"] += 1
            inode = fh if noopen else self.handles.get(fh)
            if inode not in data:
                stats["read_bad_fh"] += 1
                raise pyfuse3.FUSEError(errno.EBADF)
            read_inodes.add(inode)
            return data[inode][off : off + size]

        async def release(self, fh):
            stats["release"] += 1
            self.handles.pop(fh, None)

    def dump(*_: object) -> None:  # on SIGUSR1 and at exit
        tmp = Path(stats_path + ".tmp")
        tmp.write_text(json.dumps(dict(stats, read_inodes=sorted(read_inodes))))
        tmp.rename(stats_path)

    signal.signal(signal.SIGUSR1, dump)
    options = set(pyfuse3.default_options) | {"fsname=noopentest", "ro"}
    pyfuse3.init(Fs(), mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    except BaseException:
        pyfuse3.close(unmount=True)
        raise
    pyfuse3.close(unmount=False)  # unmounted from outside (fusermount3 -u)
    dump()


# ---------------------------------------------------------- mounting helpers

def unmount(mnt: Path) -> None:
    """fusermount3 -u, else lazily; harmless when nothing is mounted there."""
    if subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True).returncode != 0:
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)


def mount(mnt: Path, mode: str, stats: Path, n_files: int = N_FILES, size: int | None = None):
    proc = subprocess.Popen(
        [sys.executable, __file__, str(mnt), mode, str(stats), str(n_files), str(size or 0)],
    )
    deadline = time.monotonic() + 30
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{mode} filesystem did not mount (exit {proc.returncode})")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen, mnt: Path) -> None:
    """Unmount (lazily if need be) and end the server by its PID.

    Unmounts unconditionally: a crashed server leaves a mount that
    os.path.ismount() cannot see ("Transport endpoint is not connected").
    """
    try:
        unmount(mnt)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        unmount(mnt)


def snapshot(proc: subprocess.Popen, stats_file: Path) -> dict:
    """The server's counts so far (it writes them on SIGUSR1)."""
    stats_file.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not stats_file.exists():
        assert time.monotonic() < deadline, "server did not write its stats"
        time.sleep(0.02)
    return json.loads(stats_file.read_text())


def read_all(mnt: Path, n_files: int, threads: int = 8) -> list[bytes]:
    def one(i: int) -> bytes:
        with open(mnt / f"f{i:04d}", "rb") as f:
            return f.read()

    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(one, range(n_files)))


# ---------------------------------------------------------------- the tests

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse"),
    pytest.mark.skipif(shutil.which("fusermount3") is None, reason="no fusermount3"),
]

PATCHED = bool(getattr(pyfuse3, "MOUNTFS_NOOPEN_INO", False))


def run_mode(tmp_path: Path, mode: str) -> tuple[dict, dict]:
    """List and read every file twice with 8 threads; counts after the cold and the warm pass."""
    mnt, stats_file = tmp_path / "mnt", tmp_path / "stats.json"
    mnt.mkdir()
    proc = mount(mnt, mode, stats_file)
    try:
        assert sorted(os.listdir(mnt)) == [f"f{i:04d}" for i in range(N_FILES)]
        got = read_all(mnt, N_FILES)
        cold = snapshot(proc, stats_file)
        got_warm = read_all(mnt, N_FILES)
        for i in range(N_FILES):
            want = file_bytes(i)
            assert got[i] == want, f"f{i:04d}: wrong bytes (cold)"
            assert got_warm[i] == want, f"f{i:04d}: wrong bytes (warm)"
    finally:
        stop(proc, mnt)
    assert proc.returncode == 0, f"server exited {proc.returncode}"
    return cold, json.loads(stats_file.read_text())


@pytest.mark.skipif(
    not PATCHED,
    reason="installed pyfuse3 lacks the no-open change (no pyfuse3.MOUNTFS_NOOPEN_INO); "
    "install it with daemon/pyfuse3/build.sh",
)
def test_noopen_reads_get_inode(tmp_path: Path) -> None:
    cold, end = run_mode(tmp_path, "noopen")
    # the first ENOSYS switches the mount to no-open; a few racing threads may still ask
    assert 1 <= cold["open"] <= 8, cold
    assert cold["release"] == 0 and cold["read_bad_fh"] == 0, cold
    # every READ came with fh 0, turned into the inode: each file's inode was seen
    first = pyfuse3.ROOT_INODE + 1
    assert cold["read_inodes"] == list(range(first, first + N_FILES))
    # warm pass: no OPEN and no RELEASE, and (the kernel kept every file's cache) no READ
    # beyond a few pages evicted by memory pressure meanwhile
    assert end["open"] == cold["open"] and end["release"] == 0 and end["read_bad_fh"] == 0, (cold, end)
    assert end["read"] - cold["read"] <= N_FILES // 4, (cold, end)


def test_normal_open_control(tmp_path: Path) -> None:
    """The fallback (stock pyfuse3): one OPEN and one RELEASE per file per pass."""
    cold, end = run_mode(tmp_path, "open")
    assert cold["open"] == N_FILES and cold["read_bad_fh"] == 0, cold
    assert len(cold["read_inodes"]) == N_FILES
    assert end["open"] == end["release"] == 2 * N_FILES, end
    # keep_cache: the warm pass is served from the page cache (unless memory
    # pressure evicted some of it meanwhile: allow a few stray reads)
    assert end["read"] - cold["read"] <= N_FILES // 4, (cold, end)


if __name__ == "__main__":
    mnt_, mode_, stats_ = sys.argv[1:4]
    n_ = int(sys.argv[4]) if len(sys.argv) > 4 else N_FILES
    size_ = int(sys.argv[5]) if len(sys.argv) > 5 and int(sys.argv[5]) > 0 else None
    serve(mnt_, mode_, stats_, n_, size_)
