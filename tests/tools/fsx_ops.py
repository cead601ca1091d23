"""The operations of the fsx exerciser (tests/tools/fsx.py): run one, model the tree, draw the next.

An operation is a JSON-able dict (``{"op": "write", "path": "n3/n7", "off": 5, "len": 9,
"ds": 42}``); its data comes from its own seed ``ds``, so a logged operation replays
byte for byte. ``execute`` runs one on a ``Side`` and turns OSError into an outcome
(``("err", "ENOENT")``) that can be compared with the other side's.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
import stat
from dataclasses import dataclass, field
from typing import Any, Callable

#: caps that keep thousands of steps within seconds on a local disk
MAX_ENTRIES = 50  # files and symlinks
MAX_DIRS = 8
MAX_SIZE = 4 << 20
MAX_FDS = 8
MAX_IO = 64 << 10
#: names are drawn from a small pool so creates collide (EEXIST) and renames overwrite
NAMES = [f"n{i}" for i in range(24)]

Op = dict[str, Any]
#: ("ok", value) or ("err", "ENOENT") or ("exc", "ValueError: ...")
Outcome = tuple[str, Any]


# ---------------------------------------------------------------- execution


class Side:
    """One of the two trees with its own table of open fds (slot -> fd)."""

    def __init__(self, root: str | os.PathLike[str], durable: bool = True) -> None:
        self.root = os.fspath(root)
        self.fds: dict[int, int] = {}
        #: the reference is not: its fsync and msync are skipped (only the errno of
        #: reaching the file matters there), which keeps a run on a local disk fast
        self.durable = durable

    def fsync(self, fd: int) -> None:
        """fsync(2), a no-op on the reference."""
        if self.durable:
            os.fsync(fd)

    def path(self, rel: str) -> str:
        """The absolute path of ``rel`` ("" is the root)."""
        return os.path.join(self.root, rel) if rel else self.root

    def close_all(self) -> None:
        """fsync and close every open fd (unlinked files go away here)."""
        for fd in self.fds.values():
            try:
                self.fsync(fd)
            finally:
                os.close(fd)
        self.fds.clear()


def _data(op: Op) -> bytes:
    return random.Random(op["ds"]).randbytes(op["len"])


def with_fd(path: str, flags: int, fn: Callable[[int], Any], mode: int = 0o644) -> Any:
    """``fn(fd)`` on ``path`` opened with ``flags``; the fd is closed whatever happens."""
    fd = os.open(path, flags, mode)
    try:
        return fn(fd)
    finally:
        os.close(fd)


def _regular_size(fd: int) -> int:
    # a directory's st_size differs between file systems; mmap(2) refuses it with ENODEV
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.ENODEV, "not a regular file")
    return st.st_size


def _mmap_read(fd: int, op: Op) -> bytes:
    size = _regular_size(fd)
    if size == 0:
        return b""
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
        return m[op["off"]:op["off"] + op["len"]]


def _mmap_write(fd: int, op: Op, durable: bool) -> int:
    size = _regular_size(fd)
    off = min(op["off"], size)
    n: int = min(op["len"], size - off)
    if n <= 0:
        return 0
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
        m[off:off + n] = _data(op)[:n]
        if durable:
            m.flush()
    return n


def _fstat(fd: int) -> tuple[int, int, int]:
    st = os.fstat(fd)
    return (st.st_mode, st.st_size, st.st_nlink)


def _open_slot(side: Side, op: Op, unlink: bool) -> tuple[int, int, int]:
    flags = os.O_RDWR | (os.O_APPEND if op.get("append") else 0)
    fd = os.open(side.path(op["path"]), flags)
    side.fds[op["slot"]] = fd
    if unlink:
        os.unlink(side.path(op["path"]))
    return _fstat(fd)


def _fd_write(side: Side, op: Op) -> tuple[int, int]:
    fd = side.fds[op["slot"]]
    if op.get("append"):
        n = os.write(fd, _data(op))
    else:
        n = os.pwrite(fd, _data(op), op["off"])
    return n, os.fstat(fd).st_size


def _fd_close(side: Side, op: Op) -> None:
    os.close(side.fds.pop(op["slot"]))


def _append(fd: int, op: Op) -> tuple[int, int]:
    n = os.write(fd, _data(op))
    return n, os.lseek(fd, 0, os.SEEK_CUR)


def _utime(path: str, op: Op) -> tuple[int, int]:
    os.utime(path, ns=(op["atime"], op["mtime"]))
    st = os.stat(path)
    return st.st_mtime_ns, st.st_atime_ns


def _execute(op: Op, side: Side) -> Any:
    """Run ``op`` on one side; OSError propagates (it is an outcome, not a failure)."""
    kind = op["op"]
    p = side.path(op.get("path", ""))
    W, R = os.O_WRONLY, os.O_RDONLY
    if kind == "create":
        return with_fd(p, os.O_CREAT | os.O_EXCL | W, lambda fd: os.write(fd, _data(op)), op["mode"])
    if kind == "otrunc":
        return with_fd(p, os.O_TRUNC | W, lambda fd: os.write(fd, _data(op)))
    if kind == "write":
        return with_fd(p, W, lambda fd: os.pwrite(fd, _data(op), op["off"]))
    if kind == "append":
        return with_fd(p, W | os.O_APPEND, lambda fd: _append(fd, op))
    if kind == "truncate":
        return os.truncate(p, op["size"])
    if kind == "read":
        return with_fd(p, R, lambda fd: os.pread(fd, op["len"], op["off"]))
    if kind == "mmap_read":
        return with_fd(p, R, lambda fd: _mmap_read(fd, op))
    if kind == "mmap_write":
        return with_fd(p, os.O_RDWR, lambda fd: _mmap_write(fd, op, side.durable))
    if kind == "rename":
        return os.rename(side.path(op["src"]), side.path(op["dst"]))
    if kind == "mkdir":
        return os.mkdir(p, op["mode"])
    if kind == "rmdir":
        return os.rmdir(p)
    if kind == "unlink":
        return os.unlink(p)
    if kind == "chmod":
        return os.chmod(p, op["mode"])
    if kind == "utime":
        return _utime(p, op)
    if kind == "symlink":
        return os.symlink(op["target"], p)
    if kind == "readlink":
        return os.readlink(p)
    if kind == "stat":
        st = os.stat(p)
        return (st.st_mode, st.st_size if stat.S_ISREG(st.st_mode) else None)
    if kind == "fsync":
        return with_fd(p, R, side.fsync)
    if kind in ("open", "unlink_open"):
        return _open_slot(side, op, unlink=kind == "unlink_open")
    if kind == "fd_write":
        return _fd_write(side, op)
    if kind == "fd_read":
        return os.pread(side.fds[op["slot"]], op["len"], op["off"])
    if kind == "fd_truncate":
        return os.ftruncate(side.fds[op["slot"]], op["size"])
    if kind == "fd_fsync":
        return side.fsync(side.fds[op["slot"]])
    if kind == "fd_close":
        return _fd_close(side, op)
    raise ValueError(f"unknown op {kind!r}")


def execute(op: Op, side: Side) -> Outcome:
    """Run ``op`` on ``side`` and return its outcome in comparable form."""
    try:
        return ("ok", _execute(op, side))
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno or 0, str(e.errno)))
    except (ValueError, OverflowError) as e:  # e.g. mmap refusing a length
        return ("exc", f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------- the model


@dataclass
class Model:
    """What the generator knows of the reference tree: names, kinds, open slots, pinned times."""

    kinds: dict[str, str] = field(default_factory=dict)  # rel -> "f" | "d" | "l"
    slots: dict[int, bool] = field(default_factory=dict)  # slot -> opened with O_APPEND
    #: mtimes set by utime and not changed since, so they can be compared exactly
    pinned: dict[str, int] = field(default_factory=dict)
    next_slot: int = 0

    @classmethod
    def scan(cls, root: str) -> "Model":
        """The model of an existing tree (the reference at the start)."""
        m = cls()
        for rel, st in sorted(scan_tree(root).items()):
            m.kinds[rel] = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
        return m

    def of(self, *kinds: str) -> list[str]:
        """The entries of the given kinds, in a deterministic order."""
        return [p for p, k in self.kinds.items() if k in kinds]

    def update(self, op: Op, ok: bool, ref: Side) -> None:
        """Follow the reference: ``ok`` is whether ``op`` succeeded there."""
        kind = op["op"]
        if kind in ("open", "unlink_open"):
            if op["slot"] in ref.fds:  # the open may succeed while the unlink fails
                self.slots[op["slot"]] = bool(op.get("append"))
            if kind == "unlink_open" and ok:
                self._drop(op["path"])
            return
        if not ok:
            return
        p = op.get("path", "")
        if kind == "create":
            self.kinds[p] = "f"
        elif kind == "mkdir":
            self.kinds[p] = "d"
        elif kind == "symlink":
            self.kinds[p] = "l"
        elif kind in ("unlink", "rmdir"):
            self._drop(p)
        elif kind == "rename":
            self._rename(op["src"], op["dst"])
        elif kind == "fd_close":
            del self.slots[op["slot"]]
        elif kind == "utime":
            self.pinned[p] = op["mtime"]
        elif kind in ("write", "append", "truncate", "otrunc", "mmap_write"):
            if self.kinds.get(p) == "f":
                self.pinned.pop(p, None)
            else:  # through a symlink: the file it names is not known here
                self.pinned.clear()
        elif kind in ("fd_write", "fd_truncate"):
            self.pinned.clear()  # the fd's path is not known; forget all, never compare a stale time

    def _drop(self, p: str) -> None:
        self.kinds.pop(p, None)
        self.pinned.pop(p, None)

    def _rename(self, src: str, dst: str) -> None:
        if src == dst:
            return
        self._drop(dst)
        moved = {k: v for k, v in self.kinds.items() if k == src or k.startswith(src + "/")}
        for k, v in moved.items():
            del self.kinds[k]
            self.kinds[dst + k[len(src):]] = v
            if k in self.pinned:
                self.pinned[dst + k[len(src):]] = self.pinned.pop(k)


# ---------------------------------------------------------------- generation


def _offset(rng: random.Random, size: int) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.randrange(size + 1)
    if r < 0.85:
        return size + rng.randrange(MAX_IO)  # past EOF: leaves a hole
    if r < 0.995:
        return rng.randrange(256 << 10)
    return rng.randrange(MAX_SIZE)  # rare: a file over several chunks of a mount


def _length(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.02:
        return 0
    if r < 0.5:
        return rng.randrange(1, 512)
    if r < 0.9:
        return rng.randrange(1, 16 << 10)
    return rng.randrange(1, MAX_IO + 1)


def _io(rng: random.Random, size: int) -> tuple[int, int]:
    off = min(_offset(rng, size), MAX_SIZE)
    return off, min(_length(rng), MAX_SIZE - off)


def _new_size(rng: random.Random, size: int) -> int:
    r = rng.random()
    if r < 0.5:
        return rng.randrange(size + 1)  # shrink
    if r < 0.99:
        return min(size + rng.randrange(128 << 10), MAX_SIZE)
    return rng.randrange(MAX_SIZE + 1)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _rel_target(link: str, target: str) -> str:
    """``target`` as seen from the directory of ``link`` (relative: both trees must agree)."""
    return os.path.relpath(target, os.path.dirname(link) or ".")


class Generator:
    """Draws operations from ``rng`` given the model and the reference tree."""

    # weights: data ops dominate, as in fsx
    WEIGHTS = {
        "create": 6, "write": 14, "append": 5, "otrunc": 2, "truncate": 6, "read": 8,
        "mmap_read": 3, "mmap_write": 3, "rename": 5, "rename_dir": 2, "mkdir": 2,
        "rmdir": 2, "unlink": 3, "unlink_open": 2, "open": 2, "fd_write": 6, "fd_read": 3,
        "fd_truncate": 1, "fd_fsync": 1, "fd_close": 3, "chmod": 3, "utime": 2,
        "symlink": 2, "readlink": 1, "stat": 2, "fsync": 2,
    }

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._kinds, self._weights = zip(*self.WEIGHTS.items())

    def next(self, m: Model, ref: Side) -> Op:
        """One operation valid (or deliberately invalid) for the current state."""
        rng = self.rng
        while True:
            kind = rng.choices(self._kinds, self._weights)[0]
            op = self._make(kind, m, ref)
            if op is not None:
                return op

    def _new_path(self, m: Model) -> str:
        parent = self.rng.choice([""] + m.of("d"))
        name = self.rng.choice(NAMES)
        return f"{parent}/{name}" if parent else name

    def _pick(self, m: Model, *kinds: str, wrong: float = 0.05) -> str | None:
        """An existing entry of ``kinds``; sometimes any path, for the errno cases."""
        if self.rng.random() < wrong:
            return self._new_path(m)
        pool = m.of(*kinds)
        return self.rng.choice(pool) if pool else None

    def _make(self, kind: str, m: Model, ref: Side) -> Op | None:
        rng = self.rng
        ds = rng.randrange(1 << 62)
        n_entries, n_dirs = len(m.of("f", "l")), len(m.of("d"))
        if kind == "create":
            if n_entries >= MAX_ENTRIES:
                return None
            return {"op": kind, "path": self._new_path(m), "mode": 0o600 | rng.randrange(0o200),
                    "len": _length(rng) if rng.random() < 0.7 else 0, "ds": ds}
        if kind in ("write", "mmap_write", "read", "mmap_read", "append", "otrunc", "truncate",
                    "fsync", "chmod", "utime", "stat"):
            p = self._pick(m, *(("f", "l") if kind in ("read", "mmap_read", "stat", "fsync") else ("f",)))
            if p is None:
                return None
            size = _size(ref.path(p))
            if kind in ("write", "mmap_write"):
                off, n = _io(rng, size)
                if kind == "mmap_write":  # a shared mapping cannot grow the file
                    off, n = rng.randrange(size + 1), min(_length(rng), size)
                return {"op": kind, "path": p, "off": off, "len": n, "ds": ds}
            if kind in ("read", "mmap_read"):
                off = rng.randrange(size + 1) if rng.random() < 0.9 else size + rng.randrange(4096)
                return {"op": kind, "path": p, "off": off, "len": _length(rng)}
            if kind == "append":
                return {"op": kind, "path": p, "len": min(_length(rng), max(0, MAX_SIZE - size)), "ds": ds}
            if kind == "otrunc":
                return {"op": kind, "path": p, "len": _length(rng), "ds": ds}
            if kind == "truncate":
                return {"op": kind, "path": p, "size": _new_size(rng, size)}
            if kind == "chmod":  # keep the owner's bits: a run as non-root must still reach everything
                bits = 0o700 | rng.randrange(0o100) if m.kinds.get(p) == "d" else 0o600 | rng.randrange(0o200)
                return {"op": kind, "path": p, "mode": bits}
            if kind == "utime":
                base = 1_500_000_000 * 10**9
                return {"op": kind, "path": p, "atime": base + rng.randrange(10**17),
                        "mtime": base + rng.randrange(10**17)}
            return {"op": kind, "path": p}
        if kind == "rename":
            src = self._pick(m, "f", "l")
            if src is None:
                return None
            r = rng.random()
            dst = (self._pick(m, "f", "l", wrong=0) if r < 0.25 else
                   self._pick(m, "d", wrong=0) if r < 0.3 else None) or self._new_path(m)
            return {"op": "rename", "src": src, "dst": dst}
        if kind == "rename_dir":
            src = self._pick(m, "d")
            if src is None:
                return None
            r = rng.random()
            dst = (self._pick(m, "d", wrong=0) if r < 0.3 else  # empty: replaced; else ENOTEMPTY
                   self._pick(m, "f", wrong=0) if r < 0.35 else None) or self._new_path(m)
            return {"op": "rename", "src": src, "dst": dst}  # dst under src: EINVAL on both
        if kind == "mkdir":
            if n_dirs >= MAX_DIRS:
                return None
            return {"op": kind, "path": self._new_path(m), "mode": 0o700 | rng.randrange(0o100)}
        if kind == "rmdir":
            p = self._pick(m, "d", wrong=0.1)
            return None if p is None else {"op": kind, "path": p}
        if kind == "unlink":
            p = self._pick(m, "f", "l", wrong=0.1)
            return None if p is None else {"op": kind, "path": p}
        if kind == "symlink":
            if n_entries >= MAX_ENTRIES:
                return None
            link = self._new_path(m)
            pool = list(m.kinds)
            target = rng.choice(pool) if pool and rng.random() < 0.8 else "dangling"
            return {"op": kind, "path": link, "target": _rel_target(link, target)}
        if kind == "readlink":
            p = self._pick(m, "l", wrong=0.2)
            return None if p is None else {"op": kind, "path": p}
        if kind in ("open", "unlink_open"):
            if len(m.slots) >= MAX_FDS:
                return None
            p = self._pick(m, "f")
            if p is None:
                return None
            m.next_slot += 1
            return {"op": kind, "path": p, "slot": m.next_slot, "append": rng.random() < 0.25}
        # fd operations
        if not m.slots:
            return None
        slot = rng.choice(list(m.slots))
        size = os.fstat(ref.fds[slot]).st_size
        if kind == "fd_write":
            if m.slots[slot]:
                return {"op": kind, "slot": slot, "append": True,
                        "len": min(_length(rng), max(0, MAX_SIZE - size)), "ds": ds}
            off, n = _io(rng, size)
            return {"op": kind, "slot": slot, "off": off, "len": n, "ds": ds}
        if kind == "fd_read":
            return {"op": kind, "slot": slot, "off": rng.randrange(size + 1), "len": _length(rng)}
        if kind == "fd_truncate":
            return {"op": kind, "slot": slot, "size": _new_size(rng, size)}
        return {"op": kind, "slot": slot}


def scan_tree(root: str, under: str = "") -> dict[str, os.stat_result]:
    """Every entry below ``root/under`` (relative path -> lstat), without following links."""
    out: dict[str, os.stat_result] = {}
    stack = [under]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                st = e.stat(follow_symlinks=False)
                out[r] = st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(r)
    return out
