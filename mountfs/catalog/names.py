"""Validation of project names, dataset names, versions and paths inside a dataset."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from typing import Iterable

from ..errors import UsageError
# re-exported: the rule for one name lives in the store layout, since every name becomes part of an object key
from ..store.layout import check_component as check_component
from ..store.layout import check_project as check_project
from ..store.layout import shown as shown
from ..store.manifest import NOT_UTF8, path_problem

#: ASCII digits only (``\d`` also takes other scripts' digits, which ``int`` reads as the same number),
#: at most 18 a component: ``int()`` refuses over 4300 digits, and a record's version must always sort
_VERSION_RE = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18}){0,3}")


def check_name(name: object) -> str:
    return check_component(name, "dataset name")


def check_version(version: object) -> str:
    """A version: one to four dot-separated numbers, e.g. ``1.0`` or ``1.0.1``."""
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise UsageError(f"malformed version {shown(version)}: use numbers separated by dots, e.g. 1.0, 1.0.1 or 2.0")
    return version


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a version ``check_version`` accepted: ``1.0.10`` after ``1.0.9``."""
    return tuple(int(p) for p in version.split("."))


def is_version(version: object) -> bool:
    """Would ``check_version`` accept ``version``?"""
    return isinstance(version, str) and _VERSION_RE.fullmatch(version) is not None


def next_version(existing: list[str]) -> str:
    """The latest version with its last component incremented; ``1.0.0`` for the first.

    Entries that are not versions (a crafted or damaged pointer's name) are ignored.
    """
    valid = [v for v in existing if is_version(v)]
    if not valid:
        return "1.0.0"
    latest = max(valid, key=version_key)
    parts = latest.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    candidate = ".".join(parts)
    if not is_version(candidate):
        raise UsageError(f"there is no version after {latest} to pick automatically; give the version explicitly")
    return candidate


def check_dataset_path(path: str, what: str = "dataset path") -> str:
    """Normalise a path the user typed inside a dataset ("" for its root).

    User input is forgiving: '\\' is a separator (ClearML users on Windows
    write ``dataset_path="a\\b"``), and '//', './' and a trailing '/' are
    tidied.  A leading '/' means the dataset root, as ClearML strips it
    (``dataset_path="/images"`` is ``images``).  '..' is refused, and what is
    left must pass the store's one path rule (``path_problem``: no NUL, names
    of at most 255 bytes, at most 255 levels).
    """
    if not isinstance(path, str):
        raise UsageError(f"{what} must be a string")
    raw = path.replace("\\", "/").lstrip("/")
    if ".." in raw.split("/"):
        raise UsageError(f"{what} {shown(path)} escapes the dataset with '..'; give a path inside the dataset")
    norm = posixpath.normpath(raw) if raw else ""
    if norm in (".", ""):
        return ""
    problem = path_problem(norm)
    if problem:
        raise UsageError(f"{what} {shown(path)} {problem}; give another path")
    return norm


def shown_source(source: str) -> str:
    """A local path or URL as a terminal can print it: bytes that are not UTF-8 shown as ``\\xe9``."""
    try:
        return os.fsencode(source).decode("utf-8", "backslashreplace")
    except UnicodeError:  # a surrogate that no file name decodes to
        return repr(source)


def found_path(prefix: str, rel: str, source: str) -> str:
    """The dataset path of a file found at ``source`` (on disk, in a bucket): ``rel`` under the normalised ``prefix``.

    Unlike a path the user types, a found name is stored exactly as it is or
    refused with the fix, never rewritten: a '\\' in it is not read as a
    separator (that would merge ``a\\b`` into ``a/b`` and lose a file), and a
    name that is not UTF-8 (the format stores UTF-8) is not re-encoded.
    """
    path = f"{prefix}/{rel}" if prefix else rel
    problem = path_problem(path)
    if problem is None:
        return path
    where = shown_source(source)
    if "\\" in rel:
        raise UsageError(
            f"cannot add {where}: its name contains '\\', which a dataset path cannot hold (it separates folders "
            "in Windows paths, so 'a\\b' would merge with 'a/b'); rename the file"
        )
    if problem == NOT_UTF8:
        raise UsageError(f"cannot add {where}: its name is not valid UTF-8; rename it (e.g. with convmv -t utf8)")
    raise UsageError(f"cannot add {where}: its dataset path {shown(path)} {problem}")


def check_distinct(found: Iterable[tuple[str, str]]) -> None:
    """Refuse two sources landing on one dataset path (``(source, path)`` pairs sorted by path): one would be lost.

    The same source named twice is one file, not a loss.
    """
    last_source, last_path = "", None
    for source, path in found:
        if path == last_path and source != last_source:
            raise UsageError(
                f"{shown_source(last_source)} and {shown_source(source)} would both be {shown(path)} in the dataset; "
                "add them separately with different dataset_path values"
            )
        last_source, last_path = source, path


def path_matches(path: str, pattern: str, recursive: bool) -> bool:
    """Does dataset ``path`` match ``pattern`` (a path, a folder, or a wildcard)?"""
    if pattern in ("", "*") and recursive:
        return True
    if path == pattern or path.startswith(pattern.rstrip("/") + "/") and recursive:
        return True
    if not fnmatch.fnmatchcase(path, pattern):
        return False
    # without recursion '*' must not reach into sub-folders
    return recursive or posixpath.dirname(path) == posixpath.dirname(pattern)
