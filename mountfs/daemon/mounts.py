"""The kernel's mount table, stale FUSE mounts, per-mount runtime files, and starting and stopping a mount's daemon.

No pyfuse3 here: the CLI and the SDK (``Dataset.mount``) use this module to run daemons.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..errors import MountfsError, NotFound, UsageError
from . import control

log = logging.getLogger(__name__)

FSNAME = "mountfs"
#: a mountpoint's log past this size is moved to ``<stem>.log.1`` when a mount starts there
LOG_MAX_BYTES = 1 << 20
#: logs of mountpoints not mounted since this long are removed when another mount starts
LOG_KEEP_SECONDS = 30 * 24 * 3600.0


def mounted_fuse(path: str) -> bool:
    """Is a mountfs FUSE filesystem mounted at ``path`` (alive or stale)?"""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                sep = fields.index("-")
                mnt = fields[4].replace("\\040", " ")
                if mnt == real and fields[sep + 1].startswith("fuse") and fields[sep + 2] == FSNAME:
                    return True
    except (OSError, ValueError):
        pass
    return False


def is_stale(path: str) -> bool:
    """A FUSE mount whose daemon is gone answers ENOTCONN to everything the kernel asks it.

    statfs, not stat: the kernel answers stat from its attribute cache (up to
    an hour for a version's root) without asking the dead daemon.
    """
    try:
        os.statvfs(path)
    except OSError as exc:
        return exc.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def unmount(path: str, lazy: bool = False) -> bool:
    """fusermount3 -u (or -uz); True when nothing is mounted there afterwards."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        cmd = ["umount", "-l", path] if lazy else ["umount", path]
    else:
        cmd = [tool, "-uz" if lazy else "-u", path]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        log.info("unmount %s: %s", path, res.stderr.strip())
    return not mounted_fuse(path)


def clean_stale(path: str) -> bool:
    """Unmount a dead daemon's mount at ``path``; True if one was cleaned."""
    if mounted_fuse(path) and is_stale(path):
        log.warning("cleaning stale mount at %s left by a dead daemon", path)
        return unmount(path, lazy=True)
    return False


def check_mountpoint(path: str, nonempty: bool = False) -> bool:
    """Check the folder a mount goes on, as mount(8) would; True when it is missing and must be created.

    Only the last level is ever created: a missing parent is more likely a
    typo than a wish for a folder chain.  A folder with files in it is refused
    unless ``nonempty``: the mount would hide them.  Call it after a stale
    mount at ``path`` was cleaned (listing a dead mount fails).
    """
    if not os.path.lexists(path):
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if not os.path.isdir(parent):
            raise UsageError(f"cannot create mountpoint {path}: its parent folder {parent} does not exist; "
                             "create it first")
        return True
    if not os.path.isdir(path):
        raise UsageError(f"mountpoint {path} is not a folder")
    if not nonempty:
        try:
            with os.scandir(path) as it:
                busy = next(it, None) is not None
        except OSError as exc:
            raise UsageError(f"cannot use mountpoint {path}: {exc.strerror}") from None
        if busy:
            raise UsageError(f"mountpoint {path} is not empty: the mount would hide its files; "
                             "choose an empty folder or pass --nonempty")
    return False


def create_mountpoint(path: str) -> None:
    """Create the missing last level of a mountpoint (``check_mountpoint`` said so)."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass  # made meanwhile: not ours to remove later, but usable
    except OSError as exc:
        raise UsageError(f"cannot create mountpoint {path}: {exc.strerror}") from None


def remove_mountpoint(path: str) -> None:
    """Remove a mountpoint this program created, if it is an empty folder (never anything in it)."""
    with contextlib.suppress(OSError):  # not empty, still mounted (EBUSY) or gone: it stays as it is
        os.rmdir(path)


def realtime_thread(priority: int = 1) -> bool:
    """Run the calling thread SCHED_FIFO at ``priority`` (1: the lowest); threads it starts stay normal.

    The thread answering FUSE requests is on every reader's path.  On a busy
    machine a normal thread waits for a core after each wakeup: 1 s of queueing
    per 10,000 cold small files on two cores shared with readers and an S3
    server, and every reader waits with it.  Needs root or CAP_SYS_NICE and a
    scheduler that allows realtime; False when refused.  The kernel caps
    realtime use (``sched_rt_runtime_us``), and the thread only runs to answer.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError:
        return False
    return True


def raise_read_ahead(path: str, kb: int = 1024) -> bool:
    """Let the kernel send 1 MiB reads instead of 128 KiB (root only; docs/FUSE.md item 3)."""
    st = os.stat(path)
    bdi = f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb"
    try:
        with open(bdi, "w") as fh:
            fh.write(str(kb))
        return True
    except OSError as exc:
        log.info("read-ahead left at the kernel default (%s: %s)", bdi, exc.strerror)
        return False


@dataclass(frozen=True)
class RuntimeFiles:
    """Where one mount's daemon keeps its control socket, description and log."""

    run_dir: str
    mountpoint: str

    @property
    def stem(self) -> str:
        # no realpath() here: inside the daemon that would stat its own mountpoint
        # before it can answer, and hang; callers pass an absolute, resolved path
        return os.path.join(self.run_dir, hashlib.sha1(self.mountpoint.encode()).hexdigest()[:16])

    @property
    def socket(self) -> str:
        return self.stem + ".sock"

    @property
    def info(self) -> str:
        return self.stem + ".json"

    @property
    def log(self) -> str:
        return self.stem + ".log"

    def rotate_log(self, max_bytes: int | None = None) -> None:
        """Keep one mountpoint's log bounded: past ``max_bytes`` it becomes ``.log.1`` (the one before is dropped)."""
        limit = LOG_MAX_BYTES if max_bytes is None else max_bytes
        try:
            st = os.lstat(self.log)
        except FileNotFoundError:
            return
        if stat.S_ISREG(st.st_mode) and st.st_size > limit:
            os.replace(self.log, self.log + ".1")

    def prepare(self) -> None:
        """Create the run dir owner-only, or check that the one there is ours (``check_run_dir``)."""
        parent = os.path.dirname(self.run_dir.rstrip("/"))
        try:
            if parent:
                # a file where a folder of the path must be is FileExistsError here, not "ours already"
                os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the run dir {self.run_dir}: {exc.strerror or exc} (a file in the way?); "
                             "set MOUNTFS_RUN_DIR to a folder you may write") from None
        try:
            os.mkdir(self.run_dir, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise UsageError(f"cannot create the run dir {self.run_dir}: {exc.strerror}; "
                             "set MOUNTFS_RUN_DIR to a folder you may write") from None
        check_run_dir(self.run_dir)

    def write_info(self, doc: dict[str, Any]) -> None:
        tmp = self.info + ".tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, self.info)

    def remove(self) -> None:
        for p in (self.socket, self.info):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def check_run_dir(path: str) -> None:
    """Refuse a run dir that someone else could use against us.

    The run dir holds the control socket (whoever can replace it answers the
    CLI's requests) and the detached daemon's log (a symlink planted there would
    redirect it).  Under ``/tmp`` anyone may create ``/tmp/mountfs-<uid>``
    first, so an existing folder must be a real directory (not a symlink),
    owned by us, and writable by nobody else; group read and search are allowed
    because a root daemon may admit its ``control_group`` (mode 0750).
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UsageError(f"cannot use the run dir {path}: {exc.strerror}; set MOUNTFS_RUN_DIR to a folder only you can write") from None
    fix = "remove it or set MOUNTFS_RUN_DIR to a folder only you can write"
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"the run dir {path} is not a folder (a symlink or file is there); {fix}")
    if st.st_uid != os.geteuid():
        raise UsageError(f"the run dir {path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}); {fix}")
    if st.st_mode & 0o027:
        raise UsageError(f"the run dir {path} has mode {stat.S_IMODE(st.st_mode):04o}: others may use it; "
                         f"run `chmod 700 {path}` or {fix}")


def open_private(path: str, flags: int) -> int:
    """Open a runtime file owner-only, never through a symlink."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def prune_logs(run_dir: str, keep_seconds: float | None = None) -> int:
    """Remove the logs of mountpoints nothing is mounted at and that were not written to for ``keep_seconds``.

    Each mountpoint has its own log (named like its socket), so a user who
    mounts in many temporary folders would pile them up.  Returns how many
    files were removed."""
    keep = LOG_KEEP_SECONDS if keep_seconds is None else keep_seconds
    now = time.time()
    removed = 0
    try:
        names = os.listdir(run_dir)
    except OSError:
        return 0
    live = {n[:-len(".json")] for n in names if n.endswith(".json")}
    for name in names:
        stem, _, ext = name.partition(".")
        if ext not in ("log", "log.1") or stem in live:
            continue
        path = os.path.join(run_dir, name)
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > keep:
                os.unlink(path)
                removed += 1
    return removed


def all_runtime(run_dir: str) -> list[dict[str, Any]]:
    """Descriptions of every mount whose daemon wrote one in ``run_dir`` (none from a run dir that is not ours)."""
    out: list[dict[str, Any]] = []
    if not os.path.lexists(run_dir):
        return out
    try:
        check_run_dir(run_dir)
        names = sorted(os.listdir(run_dir))
    except (UsageError, OSError) as exc:
        log.warning("ignoring mounts described in %s: %s", run_dir, exc)
        return out
    for name in names:
        if name.endswith(".json"):
            try:
                with os.fdopen(open_private(os.path.join(run_dir, name), os.O_RDONLY)) as fh:
                    out.append(json.load(fh))
            except (OSError, ValueError):
                continue
    return out


# --- starting and stopping a mount's daemon (the CLI's and the SDK's) ---------------------

#: how long a start waits for the daemon to have the mount up
MOUNT_WAIT_SECONDS = 120.0


def start(run_dir: str, store_url: str, mountpoint: str, dataset_id: str, writable: bool = False,
          debug: bool = False, nonempty: bool = False) -> bool:
    """Start a detached daemon serving ``dataset_id`` at ``mountpoint`` and return once the mount is up.

    The daemon inherits the environment and reads the same config file; the
    store may have come from a flag, so it is passed on as one.  The folder
    rules (``check_mountpoint``) are checked here first for a one-line error,
    and again by the daemon, which creates a missing mountpoint and removes it
    at unmount.  Returns whether the mountpoint had to be created."""
    if mounted_fuse(mountpoint):
        if not is_stale(mountpoint):
            raise UsageError(f"{mountpoint} is already mounted; run `mountfs umount {mountpoint}` first")
        missing = False  # the daemon cleans the dead mount, then checks the folder itself
    else:
        missing = check_mountpoint(mountpoint, nonempty)
    files = RuntimeFiles(run_dir, mountpoint)
    files.prepare()
    files.rotate_log()
    prune_logs(run_dir)
    cmd = [sys.executable, "-m", "mountfs.daemon", "--mountpoint", mountpoint, "--dataset", dataset_id,
           "--storage", store_url]
    if writable:
        cmd.append("--writable")
    if nonempty:
        cmd.append("--nonempty")
    if debug:
        cmd.append("--debug")
    # never through a symlink: a log opened that way could be made to overwrite any file
    try:
        log_fd = open_private(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError as exc:
        raise UsageError(f"cannot open the mount's log {files.log}: {exc.strerror}; remove it and mount again") from None
    with os.fdopen(log_fd, "ab") as log_fh:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=log_fh,
                                start_new_session=True)
    deadline = time.monotonic() + MOUNT_WAIT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MountfsError(f"the daemon for {mountpoint} exited: {_last_error(files.log)} (log: {files.log})")
        if mounted_fuse(mountpoint) and info_pid(files.info) == proc.pid:
            return missing
        time.sleep(0.05)
    proc.terminate()
    raise MountfsError(f"{mountpoint} did not come up within {MOUNT_WAIT_SECONDS:.0f}s (log: {files.log})")


def stop(run_dir: str, mountpoint: str, timeout: float = 15.0) -> None:
    """Stop the daemon serving ``mountpoint`` (resolved) and make sure nothing is mounted there."""
    files = RuntimeFiles(run_dir, mountpoint)
    pid = info_pid(files.info)
    # a daemon removes the mountpoint it created as it exits; one that was killed cannot
    created = _info(files.info).get("created_mountpoint") is True
    stopped = False
    if os.path.exists(files.socket):
        try:
            control.request(files.socket, {"op": "stop"}, timeout=5)
            stopped = True
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + timeout
    while stopped and mounted_fuse(mountpoint) and time.monotonic() < deadline:
        time.sleep(0.05)
    if mounted_fuse(mountpoint):
        if not (unmount(mountpoint) or unmount(mountpoint, lazy=True)):
            raise MountfsError(f"could not unmount {mountpoint}; check what still uses it (`fuser -m {mountpoint}`)")
    elif not stopped:
        files.remove()
        raise NotFound(f"nothing is mounted at {mountpoint}")
    # the daemon lets go of what it holds (a writable copy's upper layer) as it exits, after the unmount
    while stopped and pid is not None and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    files.remove()
    if created:
        remove_mountpoint(mountpoint)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child, not reaped yet) has exited
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def serving(run_dir: str, dataset_id: str) -> dict[str, Any] | None:
    """The description of a live mount serving ``dataset_id`` on its own (not through the catalog), if any."""
    for info in all_runtime(run_dir):
        if info.get("dataset") == dataset_id and mounted_fuse(str(info.get("mountpoint", ""))):
            return info
    return None


def _info(path: str) -> dict[str, Any]:
    """The description a daemon wrote ({} when there is none or it cannot be read)."""
    try:
        with os.fdopen(open_private(path, os.O_RDONLY)) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def created_by_a_dead_daemon(files: RuntimeFiles) -> bool:
    """Did a daemon that died without cleaning up (SIGKILL) create this mountpoint?  Its description is
    still there; the daemon mounting there next inherits the job of removing the folder at unmount."""
    doc = _info(files.info)
    pid = doc.get("pid")
    return doc.get("created_mountpoint") is True and isinstance(pid, int) and not _alive(pid)


def info_pid(path: str) -> int | None:
    """PID recorded by the daemon serving a mountpoint (None before it wrote it)."""
    pid = _info(path).get("pid")
    return pid if type(pid) is int else None


def _last_error(log_path: str) -> str:
    try:
        with os.fdopen(open_private(log_path, os.O_RDONLY), errors="replace") as fh:
            lines = [line.strip() for line in fh if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if "error" in line.lower():
            return line.split(": ", 1)[-1]
    return lines[-1] if lines else "no output"
