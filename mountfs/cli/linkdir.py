"""``mountfs get --link DIR``: a folder of symbolic links to a version's files.

DIR mirrors the version's tree with real folders; each file is a symbolic link
to the same file in a running mountfs mount that serves the version (nothing
is fetched until the file is read), else in the read-only cached copy (built
first).  clearml-data's ``--link`` makes one link to its cached folder; a
folder of links also works for a version seen through a mount, whose root is
not a folder of this machine's cache.

DIR is made here, and everything below it is created through file
descriptors opened without following links, so a link planted inside DIR
while it is built is never followed out of it.  A DIR already there is used
only when it is an empty folder; anything else (a folder with files, a file,
a link) is replaced only with ``--overwrite``, and a link is then removed
itself, never what it points to.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..daemon import control, mounts
from ..errors import LocalDiskError, StateError, UsageError
from ..fs.namespace import BY_ID
from ..localcopy import remove_tree
from ..sdk import Dataset
from ..sdk.copies import select
from ..session import current
from ..store import FileEntry
from .output import counted, printable

#: how long a daemon has to answer "status" before its mount is not used (a hung daemon would hang every link)
STATUS_TIMEOUT = 3.0

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Linked:
    """What ``link_folder`` made: DIR, what its links point into, and how many there are."""

    folder: str
    #: "mount" (a running mountfs mount) or "cache" (the read-only cached copy)
    kind: str
    #: the version's root folder the links point into
    source: str
    files: int

    def describe(self) -> str:
        into = f"the mount at {self.source}" if self.kind == "mount" else f"the read-only cached copy at {self.source}"
        return f"{printable(self.folder)}: {counted(self.files, 'link')} into {printable(into)}"


def link_folder(
    ds: Dataset, link_at: str, *, overwrite: bool, part: int | None, num_parts: int | None,
    files: list[str] | None, get_copy: Callable[[], str | None],
) -> Linked:
    """Make ``link_at`` a folder of links to the chosen files of ``ds``; ``get_copy`` builds the cached copy."""
    if not ds.is_final():
        raise StateError(f"dataset {ds.id} is not finalized; get --link needs a finalized version")
    where = os.path.abspath(os.path.expanduser(link_at))
    # refused before anything is fetched
    _check_target(where, link_at, overwrite)
    entries = select(ds.file_entries_dict.values(), part, num_parts, files, ds.id)
    sess = current()
    source = served_root(ds.id, sess.catalog_url, sess.config.run_dir, sess.config.mountpoint, entries)
    kind = "mount"
    if source is None:
        copy = get_copy()
        if copy is None:
            raise LocalDiskError(f"cannot link {link_at}: no local copy of {ds.id}")
        source, kind = os.path.abspath(copy), "cache"
    if overwrite and _inside(source, where):
        raise UsageError(f"cannot replace {link_at}: the folder its links would point into ({source}) is inside it")
    _prepare(where, link_at, overwrite)
    try:
        _make_links(where, source, [e.path for e in entries])
    except OSError as exc:
        # leave no half-built folder behind, only the empty folder DIR now is
        with contextlib.suppress(OSError):
            remove_tree(where)
            os.mkdir(where, 0o755)
        where_failed = f" ({printable(str(exc.filename))})" if exc.filename else ""
        raise LocalDiskError(f"cannot link {link_at}: {exc.strerror or exc}{where_failed}") from None
    return Linked(where, kind, source, len(entries))


# --- which mount serves the version ---------------------------------------------------------


def served_root(
    dataset_id: str, store_url: str, run_dir: str, configured_mountpoint: str, entries: Iterable[FileEntry],
) -> str | None:
    """The folder through which a running mount of this user serves version ``dataset_id`` of the
    store ``store_url``, or None.

    Mounts are those described in ``run_dir`` (``mountfs status`` lists the same); each daemon is
    asked for its status (alive, its store, what it serves) rather than trusting a description a
    dead daemon may have left.  A catalog mount serves the version at ``.by-id/<id>``: links there
    keep working when the dataset is renamed or moved.  The catalog mount at the configured
    mountpoint goes first, then mounts of this one version, then other catalog mounts.  A mount is
    used only when every chosen file answers through it, as a regular file of the recorded size (a
    catalog mount shows a version finalized a moment ago only after its next refresh).
    """
    chosen = list(entries)
    configured = os.path.realpath(configured_mountpoint)
    candidates: list[tuple[int, str]] = []
    for info in mounts.all_runtime(run_dir):
        socket = info.get("socket")
        if not isinstance(socket, str):
            continue
        try:
            status = control.request(socket, {"op": "status"}, timeout=STATUS_TIMEOUT)
        except (OSError, ValueError):
            continue
        mountpoint, serves = status.get("mountpoint"), status.get("dataset")
        if status.get("store") != store_url or not isinstance(mountpoint, str) or not mounts.mounted_fuse(mountpoint):
            continue
        if serves == dataset_id:
            candidates.append((1, mountpoint))
        elif serves == "":
            candidates.append((0 if mountpoint == configured else 2, os.path.join(mountpoint, BY_ID, dataset_id)))
    for _, root in sorted(candidates):
        if _answers(root, chosen):
            return root
    return None


def _answers(root: str, entries: list[FileEntry]) -> bool:
    """Does every entry show through ``root`` as a regular file of its size?"""
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            return False
        for e in entries:
            st = os.stat(os.path.join(root, e.path), follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size != e.size:
                return False
    except OSError:
        return False
    return True


# --- the folder of links --------------------------------------------------------------------


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _what(where: str) -> str | None:
    """None when ``where`` is absent or an empty real folder; else what stands there, in words."""
    try:
        st = os.lstat(where)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalDiskError(f"cannot link into {where}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "a file"
    try:
        fd = os.open(where, _DIR_FLAGS)
    except OSError as exc:
        raise LocalDiskError(f"cannot link into {where}: {exc.strerror}") from None
    try:
        return "a folder that is not empty" if os.listdir(fd) else None
    finally:
        os.close(fd)


def _check_target(where: str, shown: str, overwrite: bool) -> None:
    kind = _what(where)
    if kind is None:
        return
    if not overwrite:
        raise UsageError(f"cannot link into {shown}: it is {kind}; pass --overwrite to replace it")
    if os.path.ismount(where):
        raise UsageError(f"cannot replace {shown}: it is a mount point")


def _prepare(where: str, shown: str, overwrite: bool) -> None:
    """Leave ``where`` an empty folder this process may fill (checked again: time passed since the first check)."""
    _check_target(where, shown, overwrite)
    try:
        if _what(where) is not None:
            remove_tree(where)
        parent = os.path.dirname(where)
        # the folders on the way to DIR are the user's own choice, links among them included
        os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(where, 0o755)
        except FileExistsError:
            if _what(where) is not None:
                raise UsageError(f"cannot link into {shown}: something was put there meanwhile") from None
    except OSError as exc:
        raise LocalDiskError(f"cannot link into {shown}: {exc.strerror or exc}") from None


def _make_links(where: str, source: str, paths: list[str]) -> None:
    """Under the folder ``where``: a folder for each folder of ``paths``, a link to ``source/<path>`` for each path.

    Only the descriptors of the folders on the current path stay open: in path order, a folder's
    files are contiguous, so a tree of any width needs as many descriptors as it is deep.
    """
    stack: list[tuple[str, int]] = [("", os.open(where, _DIR_FLAGS))]
    try:
        for path in sorted(paths):
            head, _, leaf = path.rpartition("/")
            while stack[-1][0] and not (head == stack[-1][0] or head.startswith(stack[-1][0] + "/")):
                os.close(stack.pop()[1])
            done = stack[-1][0]
            rest = head[len(done):].lstrip("/")
            for name in rest.split("/") if rest else []:
                parent = stack[-1][1]
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=parent)
                # O_NOFOLLOW: a link put where this folder must be fails (ELOOP), it is never entered
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
                stack.append((f"{stack[-1][0]}/{name}".lstrip("/"), fd))
            os.symlink(os.path.join(source, path), leaf, dir_fd=stack[-1][1])
    finally:
        for _, fd in stack:
            os.close(fd)


def as_json(linked: Linked, dataset_id: str) -> dict[str, Any]:
    """What ``get --link DIR --json`` prints."""
    return {"id": dataset_id, "path": linked.folder, "links_to": linked.kind, "source": linked.source,
            "files": linked.files}
