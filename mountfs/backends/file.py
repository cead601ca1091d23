"""A store in a local or shared folder (``/path`` or ``file:///path``)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from ..errors import AlreadyExists, ObjectNotFound, PermissionDenied, StoreError, TransientStoreError
from .base import Backend, ObjectInfo, Staged

_TMP_PREFIX = ".tmp-"
#: a checked open never blocks on a FIFO and never takes a terminal
_CHECKED_FLAGS = os.O_NONBLOCK | os.O_NOCTTY


def _map_oserror(exc: OSError, key: str) -> Exception:
    # a folder, or a path through a file, is no object either (as in a bucket: nothing under that key)
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return ObjectNotFound(f"object {key!r} is not in the store")
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"no permission for {key!r} in the store: {exc.strerror}")
    if exc.errno in (errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN):
        return TransientStoreError(f"store folder I/O error on {key!r}: {exc.strerror}")
    return StoreError(f"store folder error on {key!r}: {exc}")


class _StagedFile(Staged):
    def __init__(self, tmp: Path, path: Path, key: str) -> None:
        self.tmp, self.path, self.key = tmp, path, key

    def commit(self) -> None:
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise _map_oserror(exc, self.key) from None

    def discard(self) -> None:
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


class FileBackend(Backend):
    """Objects are files under ``root``; writes are temp file + fsync + rename."""

    def __init__(self, root: str | os.PathLike[str], check: Callable[[str], None] | None = None):
        """``check`` (external files of a restricted process) judges the real path of every file opened."""
        self.root = Path(root)
        self.url = str(self.root)
        self._check = check

    def _path(self, key: str) -> Path:
        # keys come from mountfs itself, never raw user input, but a stray
        # '..' must still never leave the root
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"invalid object key {key!r}")
        return self.root / key

    def _open(self, key: str) -> int:
        try:
            fd = os.open(self._path(key), os.O_RDONLY | (_CHECKED_FLAGS if self._check else 0))
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        if self._check is not None:
            try:
                self._judge(fd, key, self._check)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _judge(self, fd: int, key: str, check: Callable[[str], None]) -> None:
        # the file that was opened is judged, not its name: a symlink or folder
        # swapped in after an earlier check of the name leads nowhere
        try:
            mode = os.fstat(fd).st_mode
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError as exc:
            raise PermissionDenied(f"cannot tell where {self.root / key} leads: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ObjectNotFound(f"{self.root / key} is not a regular file")
        check(real)

    def get(self, key: str) -> bytes:
        try:
            if self._check is not None:
                with os.fdopen(self._open(key), "rb") as fh:
                    return fh.read()
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except IsADirectoryError:
            raise ObjectNotFound(f"object {key!r} is not in the store") from None
        except OSError as exc:
            raise _map_oserror(exc, key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        fd = self._open(key)
        try:
            return os.pread(fd, length, offset)
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        finally:
            os.close(fd)

    def get_ranges(self, key: str, offset: int, spans: list[tuple[int, int]]) -> list[bytes | memoryview]:
        fd = self._open(key)
        try:
            return [os.pread(fd, n, offset + start) for start, n in spans]
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        finally:
            os.close(fd)

    def _write_temp(self, key: str, write: Callable[[BinaryIO], object], sync: bool = True) -> Path:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                if sync:
                    os.fsync(fh.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return Path(tmp)

    def _replace_with(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        try:
            tmp = self._write_temp(key, write)
            os.replace(tmp, self._path(key))
        except OSError as exc:
            raise _map_oserror(exc, key) from None

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._replace_with(key, lambda fh: fh.write(data))

    def put_parts(self, key: str, parts: list[bytes | memoryview]) -> None:
        # written part by part: a pack is never joined into one more big buffer
        self._replace_with(key, lambda fh: fh.writelines(parts))

    def stage_parts(self, key: str, parts: list[bytes | memoryview]) -> Staged:
        # only the temp file is written now: the fsync (the wait for the disk)
        # and the rename come with commit(), so nothing unsynced ever has a final name
        try:
            tmp = self._write_temp(key, lambda fh: fh.writelines(parts), sync=False)
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        return _StagedFile(tmp, self._path(key), key)

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        self._replace_with(key, lambda out: shutil.copyfileobj(fh, out, 8 << 20))

    def put_if_absent(self, key: str, data: bytes) -> None:
        # write fully under a temp name, then link(): link fails with EEXIST
        # atomically, so the winner's content is complete when it appears
        try:
            tmp = self._write_temp(key, lambda fh: fh.write(data))
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        try:
            os.link(tmp, self._path(key))
        except FileExistsError:
            raise AlreadyExists(f"object {key!r} already exists in the store") from None
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        finally:
            os.unlink(tmp)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        # drop empty parent folders so listings stay small
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # walk only the folder the prefix points into
        base_dir, _, _ = prefix.rpartition("/")
        start = self.root / base_dir if base_dir else self.root
        if not start.is_dir():
            return
        results: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                results.append(ObjectInfo(key, st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}", st.st_mtime))
        results.sort(key=lambda o: o.key)
        yield from results

    def stat(self, key: str) -> ObjectInfo:
        if self._check is not None:
            fd = self._open(key)
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            return ObjectInfo(key, st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}", st.st_mtime)
        try:
            st = os.stat(self._path(key))
        except OSError as exc:
            raise _map_oserror(exc, key) from None
        if not os.path.isfile(self._path(key)):
            raise ObjectNotFound(f"object {key!r} is not in the store")
        return ObjectInfo(key, st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}", st.st_mtime)
