"""Helpers for the real-mount tests: start daemons, run the CLI, compare trees, clean up by PID.

A module of its own (not conftest.py), so test files can import it: pytest
drops ``conftest`` from sys.modules between folders.

Every daemon a test starts is recorded (its Popen, or the PID that
``mountfs mount`` wrote to the runtime folder) and every mountpoint too;
``Harness.close()`` stops the daemons by PID (SIGTERM, then SIGKILL) and
unmounts whatever is left, stale or not, even when the test failed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mountfs.daemon import control, mounts

BIN = Path(sys.executable).parent
MOUNTFS = str(BIN / "mountfs")
MOUNTFSD = str(BIN / "mountfsd")
#: how the catalog daemon is started
HOW = {
    "daemon-run": lambda mp: [MOUNTFS, "daemon", "run", "--mountpoint", mp],
    "mountfsd": lambda mp: [MOUNTFSD, "--mountpoint", mp],
    "module": lambda mp: [sys.executable, "-m", "mountfs.daemon", "--mountpoint", mp],
}
UP_TIMEOUT = 30.0


def short_run_dir() -> str:
    """A private runtime folder with a short path (unix socket paths are limited to 107 bytes)."""
    return tempfile.mkdtemp(prefix="mfs", dir="/tmp")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _is_our_daemon(pid: int, mountpoint: str) -> bool:
    """Is ``pid`` still a mountfs daemon serving ``mountpoint`` (not a recycled PID)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return any(b"mountfs" in a for a in argv) and os.fsencode(mountpoint) in argv


def stop_pid(pid: int, mountpoint: str, timeout: float = 10.0) -> None:
    """SIGTERM our daemon for ``mountpoint`` by PID, SIGKILL if it does not go within ``timeout``."""
    if not pid_alive(pid) or not _is_our_daemon(pid, mountpoint):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def force_unmount(mountpoint: str) -> None:
    for flags in ("-u", "-uz"):
        if not mounts.mounted_fuse(mountpoint):
            return
        subprocess.run(["fusermount3", flags, mountpoint], capture_output=True, timeout=30)


def drop_page_cache(path: str | os.PathLike[str]) -> None:
    """Forget the kernel's cached pages of one file (or every file below a folder): reads reach the daemon."""
    paths = [str(path)]
    if os.path.isdir(path):
        paths = [os.path.join(d, f) for d, _, files in os.walk(path) for f in files]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def tree_files(root: str | os.PathLike[str]) -> dict[str, str]:
    """relative path -> absolute path of every regular file below ``root`` (symlinks not followed)."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            full = os.path.join(d, f)
            out[os.path.relpath(full, root)] = full
    return out


def sha(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def assert_same_tree(got: str | os.PathLike[str], want: str | os.PathLike[str]) -> int:
    """Same relative paths, same bytes; returns the number of files compared."""
    g, w = tree_files(got), tree_files(want)
    assert sorted(g) == sorted(w), (sorted(set(g) ^ set(w)))[:20]
    for rel in w:
        assert Path(g[rel]).read_bytes() == Path(w[rel]).read_bytes(), rel
    return len(w)


def write(path: Path, data: bytes, mode: int = 0o644, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def random_tree(root: Path, seed: int, files: int = 12, max_size: int = 60_000, big: int = 0) -> Path:
    """Small random files in a few nested folders, plus one ``big`` file (several chunks) if asked."""
    rng = random.Random(seed)
    for i in range(files):
        sub = ["", "train", "train/cls_a", "val/x/y"][i % 4]
        write(root / sub / f"f{seed}_{i:03d}.bin", rng.randbytes(rng.randint(0, max_size)),
              mtime_ns=1_600_000_000_000_000_000 + rng.randrange(10**15))
    if big:
        write(root / "big" / "blob.bin", rng.randbytes(big))
    return root


def build(project: str, name: str, src: Path | None, version: str | None = None,
          parents: list[str] | None = None, finalize: bool = True, upload: bool = True,
          remove: list[str] = ()) -> Any:
    """A version from ``src`` with the SDK, in the current environment's store."""
    from mountfs import Dataset

    ds = Dataset.create(dataset_name=name, dataset_project=project, dataset_version=version,
                        parent_datasets=parents)
    for pattern in remove:
        ds.remove_files(pattern)
    if src is not None:
        ds.add_files(str(src))
    if upload:
        ds.upload(show_progress=False)
    if finalize:
        ds.finalize()
    return ds


def move_version(dataset_id: str, project: str, name: str) -> None:
    """Rename or move a version the way a store writer would: its record rewritten, its pointer moved."""
    from dataclasses import replace

    from mountfs.session import current

    catalog = current().catalog
    rec = catalog.get(dataset_id)
    catalog.claim(project, name, rec.version, dataset_id)
    catalog.put(replace(rec, project=project, name=name))
    catalog.release(rec.project, rec.name, rec.version)


def delete_version(dataset_id: str) -> tuple[str, str, str]:
    """Delete a version from the catalog (its pointer; the record and packs stay); returns its place."""
    from mountfs.session import current

    catalog = current().catalog
    rec = catalog.get(dataset_id)
    catalog.release(rec.project, rec.name, rec.version)
    return rec.project, rec.name, rec.version


def restore_version(dataset_id: str, place: tuple[str, str, str]) -> None:
    """Put a deleted version's pointer back."""
    from mountfs.session import current

    current().catalog.claim(place[0], place[1], place[2], dataset_id)


def wait_refreshes(d: "Daemon", count: int = 2, timeout: float = 30.0) -> None:
    """Wait until the catalog daemon ``d`` has completed ``count`` more refreshes: the last one
    started after this call, so it saw everything written to the store before it."""
    start = d.status()["catalog"]["refreshes"]
    wait_for(lambda: d.status()["catalog"]["refreshes"] >= start + count, timeout, f"{count} catalog refreshes")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def expect_oserror(fn, *args, allowed=(errno.EROFS, errno.EACCES, errno.EPERM)) -> int:
    try:
        fn(*args)
    except OSError as exc:
        assert exc.errno in allowed, f"{fn.__name__}{args}: {exc}"
        return exc.errno
    raise AssertionError(f"{fn.__name__}{args} succeeded on a read-only mount")


@dataclass
class Daemon:
    """One daemon process serving one mountpoint."""

    harness: "Harness"
    mountpoint: str
    pid: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def runtime(self) -> mounts.RuntimeFiles:
        return mounts.RuntimeFiles(self.harness.run_dir, self.mountpoint)

    def status(self) -> dict[str, Any]:
        reply = control.request(self.runtime.socket, {"op": "status"}, timeout=10)
        assert reply.get("ok"), reply
        return reply

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_problems(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if " WARNING " in line or " ERROR " in line
                or "Traceback" in line]

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.pid)

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send ``sig`` by PID and wait for the process to end; return its exit code if it is our child."""
        os.kill(self.pid, sig)
        if self.proc is not None:
            return self.proc.wait(timeout)
        wait_for(lambda: not pid_alive(self.pid), timeout, f"pid {self.pid} to exit")
        return None


@dataclass
class Harness:
    """Runs daemons and CLI commands against one environment; ``close()`` cleans everything up."""

    env: dict[str, str]
    workdir: Path
    daemons: list[Daemon] = field(default_factory=list)
    mountpoints: set[str] = field(default_factory=set)

    @property
    def run_dir(self) -> str:
        return self.env["MOUNTFS_RUN_DIR"]

    def mountpoint(self, name: str = "mnt") -> str:
        mp = self.workdir / name
        mp.mkdir(parents=True, exist_ok=True)
        real = os.path.realpath(mp)
        self.mountpoints.add(real)
        return real

    # --- the CLI ---------------------------------------------------------------

    def cli(self, *args: str, code: int | None = 0, timeout: float = 120, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
        res = subprocess.run([MOUNTFS, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                             env=env or self.env, stdin=subprocess.DEVNULL)
        if code is not None:
            assert res.returncode == code, (
                f"mountfs {' '.join(map(str, args))}: exit {res.returncode}, wanted {code}\n"
                f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    # --- daemons ---------------------------------------------------------------

    def start(self, mountpoint: str, how: str = "daemon-run", env: dict[str, str] | None = None,
              extra: list[str] = ()) -> Daemon:
        """Start a catalog daemon in the background and wait until it serves the mountpoint."""
        self.mountpoints.add(mountpoint)
        log = self.workdir / f"daemon-{len(self.daemons)}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen([*HOW[how](mountpoint), *extra], stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                                    env=env or self.env, start_new_session=True)
        d = Daemon(self, mountpoint, proc.pid, log, proc)
        self.daemons.append(d)
        self.wait_up(d)
        return d

    def mount(self, spec: str, mountpoint: str, *extra: str, env: dict[str, str] | None = None) -> Daemon:
        """``mountfs mount SPEC DIR``: the CLI detaches a daemon; find it by the PID it recorded."""
        self.mountpoints.add(mountpoint)
        out = self.cli("mount", *extra, spec, mountpoint, env=env).stdout
        assert "mounted" in out, out
        files = mounts.RuntimeFiles(self.run_dir, mountpoint)
        info = json.loads(Path(files.info).read_text())
        d = Daemon(self, mountpoint, info["pid"], Path(files.log))
        self.daemons.append(d)
        self.wait_up(d)
        return d

    def wait_up(self, d: Daemon) -> None:
        def up() -> bool:
            if not d.alive():
                raise AssertionError(f"daemon for {d.mountpoint} exited:\n{d.log_text()[-3000:]}")
            if not (mounts.mounted_fuse(d.mountpoint) and os.path.exists(d.runtime.info)):
                return False
            try:
                d.status()
            except OSError:
                return False
            return True

        wait_for(up, UP_TIMEOUT, f"the daemon to serve {d.mountpoint}", interval=0.05)

    def close(self) -> None:
        pids = {(d.pid, d.mountpoint) for d in self.daemons}
        # the runtime folder is this harness's own: every daemon that wrote into it is ours
        # (e.g. one `mountfs mount` started in a test that then failed before we saw it)
        for info in mounts.all_runtime(self.run_dir):
            if isinstance(info.get("pid"), int) and info.get("mountpoint"):
                pids.add((info["pid"], info["mountpoint"]))
                self.mountpoints.add(info["mountpoint"])
        for pid, mountpoint in pids:
            stop_pid(pid, mountpoint)
        for d in self.daemons:
            if d.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    d.proc.wait(5)
        for mp in self.mountpoints:
            force_unmount(mp)
        shutil.rmtree(self.run_dir, ignore_errors=True)


@contextlib.contextmanager
def harness(env: dict[str, str], workdir: Path) -> Iterator[Harness]:
    h = Harness(env, workdir)
    try:
        yield h
    finally:
        h.close()


# --- a catalog to mount -----------------------------------------------------------

@dataclass
class Catalog:
    """What was built: "project/name/version" -> (dataset id, folder with exactly its files)."""

    versions: dict[str, tuple[str, Path]]
    drafts: list[str]

    def src(self, key: str) -> Path:
        return self.versions[key][1]

    def id(self, key: str) -> str:
        return self.versions[key][0]


def standard_catalog(root: Path, big: int = 6 << 20, long: int = 8 << 20) -> Catalog:
    """vision/cats 1.0.0 and 1.0.1 (a child), vision/det/boxes 2.0, audio/speech 1.0.0, and a draft."""
    src1 = random_tree(root / "cats-1.0.0", seed=1, files=16, big=big)
    write(src1 / "bin" / "run.sh", b"#!/bin/sh\necho hello\n", mode=0o755, mtime_ns=1_650_000_000_123_456_789)
    write(src1 / "names" / "with space.txt", b"spaces\n")
    write(src1 / "names" / "ünï.txt", b"unicode\n")
    write(src1 / "empty", b"")
    write(src1 / "a" / "b" / "c" / "d" / "deep.txt", b"deep\n" * 100)
    write(src1 / "labels.csv", b"file,label\n" + b"".join(b"f1_%03d.bin,%d\n" % (i, i % 3) for i in range(16)))
    v1 = build("vision", "cats", src1)

    src2 = root / "cats-1.0.1"
    shutil.copytree(src1, src2)
    (src2 / "f1_000.bin").unlink()
    write(src2 / "labels.csv", b"file,label\nchanged\n")
    random_tree(src2 / "more", seed=2, files=6)
    v2 = build("vision", "cats", src2, parents=[v1.id], remove=["f1_000.bin"])

    boxes_src = random_tree(root / "boxes-2.0", seed=3, files=5)
    boxes = build("vision/det", "boxes", boxes_src, version="2.0")
    speech_src = root / "speech-1.0.0"
    write(speech_src / "long.wav", random.Random(4).randbytes(long))
    write(speech_src / "meta.json", b'{"rate": 16000}\n')
    speech = build("audio", "speech", speech_src)
    draft = build("vision", "cats", random_tree(root / "draft", seed=5, files=2), finalize=False)
    return Catalog({
        "vision/cats/1.0.0": (v1.id, src1),
        "vision/cats/1.0.1": (v2.id, src2),
        "vision/det/boxes/2.0": (boxes.id, boxes_src),
        "audio/speech/1.0.0": (speech.id, speech_src),
    }, [draft.id])


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` in os.environ for the in-process SDK (module-scoped fixtures cannot monkeypatch)."""
    old = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


@contextlib.contextmanager
def tmpfs(h: "Harness", where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's size=, e.g. ``8m``) at ``where``; unmounted after the harness's daemons are
    gone (a mount on it would keep it busy)."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        h.close()
        subprocess.run(["umount", str(where)], check=False)
        if os.path.ismount(where):
            subprocess.run(["umount", "-l", str(where)], check=False)


def mount_writable(h: "Harness", mp: str, spec: str | None = None, draft: str | None = None,
                   env: dict[str, str] | None = None) -> tuple["Daemon", str]:
    """`mountfs mount --writable [SPEC | --id DRAFT] DIR`: the daemon (found by the PID it recorded, so the
    harness stops it) and the draft it serves."""
    # `mount --writable --id DRAFT DIR` or `mount --writable SPEC DIR`; a read-only mount has no "writable" status
    d = h.mount(draft, mp, "--writable", "--id", env=env) if draft else h.mount(spec or "", mp, "--writable", env=env)
    return d, d.status()["writable"]["draft"]
