"""One catalog daemon (`mountfs daemon run`) over a multi-version local store, read every way a job reads.

The daemon is shared by the module (it is only read); the tests that change
the catalog or stop daemons live in test_daemon_lifecycle.py.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import multiprocessing
import os
import random
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest
from mfs import (Catalog, Daemon, Harness, assert_same_tree, drop_page_cache, environment, expect_oserror, harness,
                 short_run_dir, standard_catalog, tree_files)

pytestmark = pytest.mark.fuse


@dataclass
class Shared:
    h: Harness
    daemon: Daemon
    mnt: Path
    cat: Catalog
    tmp: Path

    def expected(self, rel: str) -> Path:
        """Source file for a path inside the mount (through a version path or .by-id)."""
        parts = rel.split("/")
        if parts[0] == ".by-id":
            for key, (dataset_id, src) in self.cat.versions.items():
                if dataset_id == parts[1]:
                    return src.joinpath(*parts[2:])
            raise KeyError(rel)
        for key, (_, src) in self.cat.versions.items():
            if rel.startswith(key + "/"):
                return src / rel[len(key) + 1:]
        raise KeyError(rel)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("catalog")
    env = dict(os.environ, MOUNTFS_STORE=str(root / "store"), MOUNTFS_CACHE_DIR=str(root / "cache"),
               MOUNTFS_CONFIG=os.devnull, MOUNTFS_RUN_DIR=short_run_dir())
    env.pop("MOUNTFS_CACHE_SIZE", None)
    with environment(env):
        cat = standard_catalog(root / "src")
    work = root / "work"
    work.mkdir()
    with harness(env, work) as h:
        mnt = h.mountpoint()
        d = h.start(mnt, how="daemon-run")
        yield Shared(h, d, Path(mnt), cat, root)
        problems = d.log_problems()
    assert not problems, problems


def test_catalog_layout(shared: Shared) -> None:
    mnt, cat = shared.mnt, shared.cat
    assert set(os.listdir(mnt)) == {".by-id", "vision", "audio"}
    assert set(os.listdir(mnt / "vision")) == {"cats", "det"}
    assert set(os.listdir(mnt / "vision" / "cats")) == {"1.0.0", "1.0.1", "latest"}
    assert set(os.listdir(mnt / "vision" / "det" / "boxes")) == {"2.0", "latest"}
    latest = mnt / "vision" / "cats" / "latest"
    assert latest.is_symlink() and os.readlink(latest) == "1.0.1"
    assert os.readlink(mnt / "audio" / "speech" / "latest") == "1.0.0"
    assert os.path.realpath(latest) == str(mnt / "vision" / "cats" / "1.0.1")
    ids = {dataset_id for dataset_id, _ in cat.versions.values()}
    assert set(os.listdir(mnt / ".by-id")) == ids
    for draft in cat.drafts:
        assert not os.path.exists(mnt / ".by-id" / draft)
    assert not os.path.exists(mnt / "vision" / "cats" / "1.0.2")  # the draft's version
    for key, (dataset_id, src) in cat.versions.items():
        want = sorted(tree_files(src))
        assert sorted(tree_files(mnt / key)) == want, key
        assert sorted(tree_files(mnt / ".by-id" / dataset_id)) == want, key
    assert sorted(tree_files(latest)) == sorted(tree_files(cat.src("vision/cats/1.0.1")))
    assert "f1_000.bin" in os.listdir(mnt / "vision/cats/1.0.0") and "f1_000.bin" not in os.listdir(latest)
    with pytest.raises(FileNotFoundError):
        os.stat(mnt / "vision" / "nope")
    st = os.stat(mnt / "vision" / "cats" / "1.0.0")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o555


def test_cp_r_is_byte_exact(shared: Shared) -> None:
    out = shared.tmp / "cp"
    out.mkdir(exist_ok=True)
    for n, key in enumerate(shared.cat.versions):
        subprocess.run(["cp", "-r", str(shared.mnt / key), str(out / f"v{n}")], check=True, timeout=60)
        assert assert_same_tree(out / f"v{n}", shared.cat.src(key)) > 0
    dataset_id = shared.cat.id("vision/cats/1.0.1")
    subprocess.run(["cp", "-r", str(shared.mnt / ".by-id" / dataset_id), str(out / "by-id")], check=True, timeout=60)
    assert_same_tree(out / "by-id", shared.cat.src("vision/cats/1.0.1"))
    subprocess.run(["cp", "-rL", str(shared.mnt / "vision/cats/latest"), str(out / "latest")], check=True, timeout=60)
    assert_same_tree(out / "latest", shared.cat.src("vision/cats/1.0.1"))


def test_cat_is_byte_exact(shared: Shared) -> None:
    key = "vision/cats/1.0.0"
    files = tree_files(shared.cat.src(key))
    rels = sorted(files)
    for rel in rels[:6] + ["big/blob.bin", "empty", "names/with space.txt"]:
        got = subprocess.run(["cat", str(shared.mnt / key / rel)], capture_output=True, check=True, timeout=60).stdout
        assert got == Path(files[rel]).read_bytes(), rel
    got = subprocess.run(["cat", *(str(shared.mnt / key / r) for r in rels)], capture_output=True, check=True,
                         timeout=60).stdout
    assert got == b"".join(Path(files[r]).read_bytes() for r in rels)


def test_walk_and_read_everything(shared: Shared) -> None:
    seen = 0
    for dirpath, dirnames, filenames in os.walk(shared.mnt):
        for f in filenames:
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, shared.mnt)
            with open(full, "rb") as fh:
                assert fh.read() == shared.expected(rel).read_bytes(), rel
            seen += 1
    total = sum(len(tree_files(src)) for _, src in shared.cat.versions.values())
    assert seen == 2 * total  # every version by name and by id; `latest` is a link os.walk does not follow
    # again from the daemon's cache rather than the kernel's page cache
    before = shared.daemon.status()
    drop_page_cache(shared.mnt / "vision" / "cats")
    for rel, full in tree_files(shared.mnt / "vision" / "cats").items():
        assert Path(full).read_bytes() == shared.expected("vision/cats/" + rel).read_bytes(), rel
    after = shared.daemon.status()
    assert after["reads"] > before["reads"], "dropping the page cache should send reads to the daemon"
    assert after["bytes_fetched"] == before["bytes_fetched"]


def test_mmap_is_byte_exact(shared: Shared) -> None:
    path = shared.mnt / "vision/cats/1.0.0/big/blob.bin"
    want = shared.expected("vision/cats/1.0.0/big/blob.bin").read_bytes()
    drop_page_cache(path)
    rng = random.Random(11)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert len(m) == len(want)
        for _ in range(200):
            off = rng.randrange(len(want))
            n = rng.randint(1, 300_000)
            assert m[off:off + n] == want[off:off + n], (off, n)
        assert m[:] == want
        assert m[-1:] == want[-1:]


def test_random_preads(shared: Shared) -> None:
    rng = random.Random(12)
    for rel in ("vision/cats/1.0.1/big/blob.bin", "audio/speech/1.0.0/long.wav", "vision/cats/1.0.1/labels.csv"):
        path = shared.mnt / rel
        want = shared.expected(rel).read_bytes()
        drop_page_cache(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            for _ in range(300):
                off = rng.choice([rng.randrange(len(want) + 10), rng.randrange(0, len(want), 1 << 20) - 1,
                                  max(0, len(want) - rng.randint(1, 5000))])
                off = max(0, off)
                n = rng.choice([1, 2, 4095, 4096, 65536, 1 << 20, rng.randint(1, 3 << 20)])
                assert os.pread(fd, n, off) == want[off:off + n], (rel, off, n)
            assert os.pread(fd, 100, len(want)) == b""
            assert os.pread(fd, 100, len(want) + 12345) == b""
        finally:
            os.close(fd)


def _ls(path: Path) -> dict[str, tuple[str, int, int, str]]:
    """name -> (mode string, size, mtime ns, link target) from `ls -ln --time-style=full-iso`."""
    out = subprocess.run(["ls", "-lna", "--time-style=full-iso", "--quoting-style=literal", str(path)],
                         capture_output=True, text=True, check=True, timeout=30, env=dict(os.environ, TZ="UTC")).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        perms, _links, _uid, _gid, size, day, clock, tz, name = line.split(maxsplit=8)
        target = ""
        if perms.startswith("l"):
            name, target = name.split(" -> ")
        whole, frac = clock.split(".")
        secs = int(datetime.fromisoformat(f"{day}T{whole}{tz[:3]}:{tz[3:]}").timestamp())
        rows[name] = (perms, int(size), secs * 10**9 + int(frac.ljust(9, "0")), target)
    return rows


def test_ls_l_sizes_modes_mtimes(shared: Shared) -> None:
    key = "vision/cats/1.0.0"
    src = shared.cat.src(key)
    for sub in ("", "bin", "names", "train", "a/b/c/d", "big"):
        rows = _ls(shared.mnt / key / sub)
        names = set(os.listdir(src / sub))
        assert set(rows) - {".", ".."} == names, sub
        for name in names:
            st = os.stat(src / sub / name)
            perms, size, mtime_ns, _ = rows[name]
            if stat.S_ISDIR(st.st_mode):
                assert perms == "dr-xr-xr-x", (sub, name)
                continue
            want_mode = stat.S_IFREG | ((stat.S_IMODE(st.st_mode) & ~0o222) or 0o444)
            assert perms == stat.filemode(want_mode), (sub, name, perms)
            assert size == st.st_size, (sub, name)
            assert mtime_ns == st.st_mtime_ns, (sub, name)
    assert _ls(shared.mnt / key / "bin")["run.sh"][0] == "-r-xr-xr-x"
    rows = _ls(shared.mnt / "vision" / "cats")
    assert rows["latest"][0].startswith("l") and rows["latest"][3] == "1.0.1"
    assert rows["1.0.0"][0] == rows["1.0.1"][0] == "dr-xr-xr-x"
    # write attempts below must not have changed anything: compare stat of everything again
    for rel, full in tree_files(shared.mnt / key).items():
        assert os.stat(full).st_size == os.stat(src / rel).st_size


def test_concurrent_readers_of_one_large_file(shared: Shared) -> None:
    rel = "audio/speech/1.0.0/long.wav"
    path = shared.mnt / rel
    want = hashlib.sha256(shared.expected(rel).read_bytes()).hexdigest()
    size = path.stat().st_size
    drop_page_cache(path)

    def sequential(block: int) -> str:
        h = hashlib.sha256()
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(block):
                h.update(chunk)
        return h.hexdigest()

    def scattered(seed: int) -> str:
        # preads of every 256 KiB piece in a random order, reassembled
        pieces = list(range(0, size, 256 << 10))
        random.Random(seed).shuffle(pieces)
        buf = bytearray(size)
        fd = os.open(path, os.O_RDONLY)
        try:
            for off in pieces:
                data = os.pread(fd, 256 << 10, off)
                buf[off:off + len(data)] = data
        finally:
            os.close(fd)
        return hashlib.sha256(buf).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(sequential, b) for b in (4096, 65536, 1 << 20, 3 << 20)]
        futures += [pool.submit(scattered, s) for s in range(4)]
        assert [f.result(timeout=120) for f in futures] == [want] * 8


def test_same_version_by_name_and_by_id_concurrently(shared: Shared) -> None:
    """One version reached by two paths at once (catalog name and .by-id), from several threads."""
    key = "vision/cats/1.0.1"
    roots = [shared.mnt / key, shared.mnt / ".by-id" / shared.cat.id(key), shared.mnt / "vision/cats/latest"]
    want = {rel: Path(p).read_bytes() for rel, p in tree_files(shared.cat.src(key)).items()}

    def walk(root: Path) -> int:
        n = 0
        for _ in range(5):
            for rel, data in want.items():
                assert (root / rel).read_bytes() == data, (root, rel)
                n += 1
            assert set(tree_files(root)) == set(want)
        return n

    with ThreadPoolExecutor(6) as pool:
        assert sum(f.result(timeout=120) for f in [pool.submit(walk, r) for r in roots * 2]) == 30 * len(want)


# --- a PyTorch-style loader --------------------------------------------------------------------

class FileDataset:
    """Like a ``torch.utils.data.Dataset``: items are files read by path (torch itself is not needed)."""

    def __init__(self, root: str):
        self.paths = sorted(tree_files(root).values())

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[str, str]:
        with open(self.paths[i], "rb") as fh:
            return os.path.basename(self.paths[i]), hashlib.sha256(fh.read()).hexdigest()


_dataset: FileDataset | None = None


def _worker_init(root: str) -> None:
    global _dataset
    _dataset = FileDataset(root)


def _load(i: int) -> tuple[int, str, str]:
    assert _dataset is not None
    name, digest = _dataset[i]
    return i, name, digest


def test_multiprocess_loader(shared: Shared) -> None:
    key = "vision/cats/1.0.1"
    root = str(shared.mnt / "vision/cats/latest")
    local = FileDataset(str(shared.cat.src(key)))
    want = [local[i] for i in range(len(local))]
    drop_page_cache(shared.mnt / key)
    ctx = multiprocessing.get_context("fork")  # what torch's DataLoader uses on Linux
    with ctx.Pool(4, initializer=_worker_init, initargs=(root,)) as pool:
        got = pool.map(_load, range(len(local)), chunksize=2)
        pids = set(pool.map(_pid, range(16), chunksize=1))
    assert [(name, digest) for _, name, digest in sorted(got)] == want
    assert len(pids) > 1


def _pid(_: int) -> int:
    import time

    time.sleep(0.02)
    return os.getpid()


# --- writes are refused --------------------------------------------------------------------------

def test_writes_refused(shared: Shared) -> None:
    mnt = shared.mnt
    vdir = mnt / "vision/cats/1.0.0"
    f = vdir / "labels.csv"
    before_bytes = f.read_bytes()
    before_list = {p: sorted(os.listdir(p)) for p in (mnt, mnt / "vision", vdir, vdir / "train")}
    before_stat = os.stat(f)

    expect_oserror(open, f, "wb")
    expect_oserror(open, f, "ab")
    expect_oserror(open, f, "r+b")
    expect_oserror(os.open, str(f), os.O_RDONLY | os.O_TRUNC)
    expect_oserror(open, vdir / "new.txt", "wb")
    expect_oserror(os.mkdir, vdir / "newdir")
    expect_oserror(os.mkdir, mnt / "newproject")
    expect_oserror(os.mkdir, mnt / "vision" / "cats" / "9.9.9")
    expect_oserror(os.unlink, f)
    expect_oserror(os.rmdir, vdir / "names")
    expect_oserror(os.rename, f, vdir / "moved.csv")
    expect_oserror(os.rename, mnt / "vision", mnt / "renamed")
    expect_oserror(os.unlink, mnt / "vision/cats/latest")
    expect_oserror(os.symlink, "x", vdir / "link")
    expect_oserror(os.link, f, vdir / "hard")
    expect_oserror(os.chmod, f, 0o777)
    expect_oserror(os.truncate, f, 0)
    expect_oserror(os.utime, f, (1, 1))
    for argv in (["touch", str(f)], ["touch", str(vdir / "touched")], ["rm", "-f", str(f)], ["mkdir", str(vdir / "m")],
                 ["rm", "-rf", str(vdir / "train")], ["cp", "/etc/hostname", str(vdir / "x")]):
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert res.returncode != 0, argv
        assert any(s in res.stderr for s in ("Read-only file system", "Permission denied", "Operation not permitted")), (
            argv, res.stderr)

    assert f.read_bytes() == before_bytes
    assert {p: sorted(os.listdir(p)) for p in before_list} == before_list
    after_stat = os.stat(f)
    assert (after_stat.st_mode, after_stat.st_size, after_stat.st_mtime_ns) == (
        before_stat.st_mode, before_stat.st_size, before_stat.st_mtime_ns)
    # reading with O_RDONLY still works, and access(W_OK) says no
    assert not os.access(f, os.W_OK) and os.access(f, os.R_OK)
    with pytest.raises(OSError) as info:
        os.open(str(vdir / "absent"), os.O_WRONLY | os.O_CREAT, 0o644)
    assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def test_status_cli(shared: Shared) -> None:
    rows = shared.h.cli_json("status")
    assert len(rows) == 1
    row = rows[0]
    assert row["pid"] == shared.daemon.pid and row["mountpoint"] == str(shared.mnt)
    assert row["dataset"] == "" and row["ok"] is True
    assert set(row["versions_mounted"]) <= {i for i, _ in shared.cat.versions.values()}
    for k in ("reads", "read_hits", "bytes_read", "bytes_fetched", "fetches", "fetch_errors", "cache"):
        assert k in row, k
    assert row["fetch_errors"] == 0
    # the control socket is owner-only
    sock = shared.daemon.runtime.socket
    assert stat.S_ISSOCK(os.stat(sock).st_mode) and stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    vfs = os.statvfs(shared.mnt)
    assert vfs.f_bsize > 0 and vfs.f_namemax == 255
    table = shared.h.cli("status").stdout
    assert str(shared.mnt) in table and str(shared.daemon.pid) in table and "catalog" in table
