"""Validation of project names, dataset names, versions and paths inside a dataset."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass
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


#: the link the catalog mount shows beside a dataset's versions, naming the latest one
LATEST = "latest"


def check_name(name: object) -> str:
    return check_component(name, "dataset name")


def check_version(version: object) -> str:
    """A version: one to four dot-separated numbers, e.g. ``1.0`` or ``1.0.1``.

    The rule for reading (a record, a pointer, a lookup); a version being
    created must also be spelled canonically (``check_new_version``).
    """
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise UsageError(f"malformed version {shown(version)}: use numbers separated by dots, e.g. 1.0, 1.0.1 or 2.0")
    return version


def canonical_version(version: str) -> str:
    """``version`` (one ``check_version`` accepted) without leading zeros: ``01.00`` is ``1.0``.

    The number of components is the user's: ``1.0`` and ``1.0.0`` stay two
    spellings, and ``semantic_key`` is what makes them one version.
    """
    return ".".join(str(int(p)) for p in version.split("."))


def check_new_version(version: object) -> str:
    """The version of a version being created: ``check_version``, spelled canonically (no leading zeros),
    so that one number has one spelling and an automatic version never reads ``01.1``."""
    check_version(version)
    assert isinstance(version, str)
    canonical = canonical_version(version)
    if canonical != version:
        raise UsageError(f"version {shown(version)} has a leading zero; write it as {canonical}")
    return version


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a version ``check_version`` accepted: ``1.0.10`` after ``1.0.9``."""
    return tuple(int(p) for p in version.split("."))


def semantic_key(version: str) -> tuple[int, ...]:
    """The number a version stands for: ``version_key`` without trailing zeros, so that ``1``, ``1.0``,
    ``1.0.0`` and ``01.00`` are one version (as ClearML's ``packaging`` versions compare)."""
    number = version_key(version)
    while len(number) > 1 and number[-1] == 0:
        number = number[:-1]
    return number


def is_version(version: object) -> bool:
    """Would ``check_version`` accept ``version``?"""
    return isinstance(version, str) and _VERSION_RE.fullmatch(version) is not None


def is_reserved(value: str) -> bool:
    """Is ``value`` a name that reads as a version's: ``latest``, or a version with a dot (``3.0``, ``1.0.0``)?

    A plain number (``2024``) is a version too, but years and numbered sets
    are common names, and it can never stand beside versions either: a path
    is a project or a dataset (``Catalog.check_place``), so a name is never in
    a folder that holds versions.  What a dot adds is that ``p/n/3.0`` always
    reads as a version, in the mount and in ``mountfs mount p/n/3.0``.
    """
    return value == LATEST or (is_version(value) and "." in value)


@dataclass(frozen=True)
class Selector:
    """How the user named one dataset version."""

    dataset_id: str | None = None
    project: str | None = None
    name: str | None = None
    version: str | None = None
    #: the text this was read from (``parse_selector``), for messages
    spec: str | None = None


def parse_selector(spec: str) -> Selector:
    """A dataset named in one string: an id (no '/'), or ``project/name[/version]``.

    A last part that is a version number is the version, else it is the name
    (a name with the shape of a version, ``3.0``, is refused at create:
    ``check_new_place``); ``other_reading`` is the other way to read it.  Used by
    the CLI's ``DATASET`` arguments and by the SDK's dataset overrides.
    """
    path = spec.strip("/")
    if not path:
        raise UsageError(f"cannot read dataset {shown(spec)}: give an id or project/name[/version]")
    if "/" not in path:
        return Selector(dataset_id=spec, spec=spec)
    parts = path.split("/")
    if len(parts) >= 3 and is_version(parts[-1]):
        return Selector(project="/".join(parts[:-2]), name=parts[-2], version=parts[-1], spec=spec)
    return Selector(project="/".join(parts[:-1]), name=parts[-1], spec=spec)


def other_reading(sel: Selector) -> Selector | None:
    """``p/n/2024`` read as version 2024 of ``p/n`` may be dataset ``2024`` of project ``p/n``
    (a plain number is a name too): that reading, to try when the first found nothing."""
    if sel.spec is None or not sel.project or not sel.name or sel.version is None or is_reserved(sel.version):
        return None
    return Selector(project=f"{sel.project}/{sel.name}", name=sel.version)


def check_new_place(project: str, name: str) -> None:
    """Refuse a new dataset whose name or a project level is reserved (``is_reserved``).

    A dataset's folder in the mount holds its versions and the ``latest``
    link: a folder named ``3.0`` or ``latest`` must be one of those.  Names an
    older store already holds are still read; only new ones are refused.
    """
    levels = [(level, "project level") for level in project.split("/")] + [(name, "dataset name")]
    for value, what in levels:
        if is_reserved(value):
            example = f", e.g. 'v{value}'" if is_version(value) else ""
            raise UsageError(
                f"{what} {shown(value)} is reserved ('latest' and version numbers name versions in the mount); "
                f"choose another{example}"
            )


def next_version(existing: list[str]) -> str:
    """The latest version with its last component incremented; ``1.0.0`` for the first.

    The result is canonical (``01.0`` is followed by ``1.1``).  Entries that
    are not versions (a crafted or damaged pointer's name) are ignored.
    """
    valid = [v for v in existing if is_version(v)]
    if not valid:
        return "1.0.0"
    latest = max(valid, key=lambda v: (semantic_key(v), version_key(v)))
    parts = canonical_version(latest).split(".")
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
