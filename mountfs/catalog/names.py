"""Validation of project names, dataset names, versions and paths inside a dataset."""

from __future__ import annotations

import fnmatch
import posixpath
import re

from ..errors import UsageError

_VERSION_RE = re.compile(r"^\d+(\.\d+){0,3}$")
_BAD_CHARS = re.compile(r"[\x00-\x1f/\\]")


def check_component(value: str, what: str) -> str:
    """A name that must be usable as one directory name in the mount."""
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{what} must be a non-empty string")
    if value != value.strip():
        raise UsageError(f"{what} {value!r} has leading or trailing spaces; remove them")
    if value in (".", "..") or value.startswith("."):
        raise UsageError(f"{what} {value!r} cannot start with '.': it is not a usable directory name")
    if _BAD_CHARS.search(value):
        raise UsageError(f"{what} {value!r} contains '/', '\\' or a control character; choose another name")
    if len(value.encode()) > 200:
        raise UsageError(f"{what} {value!r} is longer than 200 bytes; choose a shorter name")
    return value


def check_project(project: str) -> str:
    """Projects may be nested with '/', e.g. ``vision/detection``; each level is a directory name."""
    if not isinstance(project, str) or not project.strip("/ "):
        raise UsageError("dataset project must be a non-empty string, e.g. 'vision' or 'vision/detection'")
    for part in project.split("/"):
        check_component(part, "project level")
    return project


def check_name(name: str) -> str:
    return check_component(name, "dataset name")


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise UsageError(f"malformed version {version!r}: use numbers separated by dots, e.g. 1.0, 1.0.1 or 2.0")
    return version


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def next_version(existing: list[str]) -> str:
    """The latest version with its last component incremented; ``1.0.0`` for the first."""
    if not existing:
        return "1.0.0"
    latest = max(existing, key=version_key)
    parts = latest.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


def check_dataset_path(path: str, what: str = "dataset path") -> str:
    """Normalise a path inside a dataset; reject absolute paths and any escape with '..'."""
    if not isinstance(path, str):
        raise UsageError(f"{what} must be a string")
    raw = path.replace("\\", "/")
    if raw.startswith("/"):
        raise UsageError(f"{what} {path!r} is absolute; give a path relative to the dataset root")
    if ".." in raw.split("/"):
        raise UsageError(f"{what} {path!r} escapes the dataset with '..'; give a path inside the dataset")
    norm = posixpath.normpath(raw) if raw else ""
    if norm in (".", ""):
        return ""
    if "\x00" in norm:
        raise UsageError(f"{what} {path!r} contains a NUL byte")
    return norm


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
