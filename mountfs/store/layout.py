"""Every object key in a store, in one place (docs/FORMAT.md is the contract).

Modelled on restic's layout: code names an object by a typed handle
(``Pack(pack_id)``, ``Record(dataset_id)``, ``Pointer(project, name, version)``)
and only this module turns a handle into a key, or a listed key back into a
handle.  A handle checks its components when it is made, so no key can be
built from a value that would reach outside its place (a ``/``, a ``..``, an
empty name).  The keys are those stores have always held; changing one is a
format change (bump ``FORMAT_VERSION`` and docs/FORMAT.md).

::

    mountfs.json                          FormatFile
    packs/<aa>/<pack-id>                  Pack
    index/<pack-id>                       PackIndex
    datasets/<id>/info.json               Record
    datasets/<id>/state                   DraftState
    datasets/<id>/manifest                Manifest
    datasets/<id>/metadata/<name>.<ext>   Metadata
    datasets/<id>/reports/<report>.<ext>  Report (logger reports, their media, preview.json)
    catalog/<project...>/<name>/<version> Pointer
    locks/<lock-id>                       Lock
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard, Union

from ..errors import UsageError

FORMAT_KEY = "mountfs.json"
#: prefixes to list one kind of object by
PACKS = "packs/"
INDEX = "index/"
DATASETS = "datasets/"
POINTERS = "catalog/"
LOCKS = "locks/"

_RECORD = "info.json"
_STATE = "state"
_MANIFEST = "manifest"
_METADATA = "metadata"
_REPORTS = "reports"
#: the report id of a version's automatic preview (``datasets/<id>/reports/preview.json``)
PREVIEW_ID = "preview"

#: a pack id is the xxh3-128 hex digest of the pack
_PACK_ID = re.compile(r"[0-9a-f]{32}")
#: how much of a rejected value an error message quotes
_SHOWN = 80
_BAD_CHARS = re.compile(r"[\x00-\x1f/\\]")


# --- checks of the components of a key --------------------------------------
# (catalog/names.py re-exports them: the same rule makes a name a usable directory in the mount)

def shown(value: object) -> str:
    """``repr(value)``, cut short: a message quoting a rejected value stays one readable line."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def check_component(value: object, what: str) -> str:
    """A name that must be usable as one key component and one directory name in the mount."""
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{what} must be a non-empty string")
    if value != value.strip():
        raise UsageError(f"{what} {shown(value)} has leading or trailing spaces; remove them")
    if value in (".", "..") or value.startswith("."):
        raise UsageError(f"{what} {shown(value)} cannot start with '.': it is not a usable directory name")
    if _BAD_CHARS.search(value):
        raise UsageError(f"{what} {shown(value)} contains '/', '\\' or a control character; choose another name")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # a lone surrogate, e.g. from "\ud800" in a JSON record
        raise UsageError(f"{what} {shown(value)} is not valid Unicode; choose another name") from None
    if size > 200:
        raise UsageError(f"{what} {shown(value)} is longer than 200 bytes; choose a shorter name")
    return value


def check_project(project: object) -> str:
    """Projects may be nested with '/', e.g. ``vision/detection``; each level is a directory name."""
    if not isinstance(project, str) or not project.strip("/ "):
        raise UsageError("dataset project must be a non-empty string, e.g. 'vision' or 'vision/detection'")
    for part in project.split("/"):
        check_component(part, "project level")
    return project


def is_pack_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` has the shape of a pack id (manifest headers list them)."""
    return isinstance(value, str) and _PACK_ID.fullmatch(value) is not None


def check_pack_id(pack_id: object) -> str:
    if not is_pack_id(pack_id):
        raise UsageError(f"pack id {shown(pack_id)} is not 32 hex digits")
    return pack_id


def _check_ext(ext: object) -> str:
    check_component(ext, "metadata extension")
    assert isinstance(ext, str)
    if "." in ext:
        raise UsageError(f"metadata extension {shown(ext)} contains '.'; give it without dots, e.g. 'json'")
    return ext


def _check_dotless(value: object, what: str) -> str:
    check_component(value, what)
    assert isinstance(value, str)
    if "." in value:
        raise UsageError(f"{what} {shown(value)} contains '.'; give it without dots")
    return value


# --- handles -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FormatFile:
    """The store's format version and chunking parameters."""

    @property
    def key(self) -> str:
        return FORMAT_KEY


@dataclass(frozen=True, slots=True)
class Pack:
    """An immutable pack of chunks."""

    pack_id: str

    def __post_init__(self) -> None:
        check_pack_id(self.pack_id)

    @property
    def key(self) -> str:
        # spread over 256 folders: a file store's directory stays small
        return f"{PACKS}{self.pack_id[:2]}/{self.pack_id}"


@dataclass(frozen=True, slots=True)
class PackIndex:
    """The copy of a pack's footer: the store's chunk index is the union of these."""

    pack_id: str

    def __post_init__(self) -> None:
        check_pack_id(self.pack_id)

    @property
    def key(self) -> str:
        return f"{INDEX}{self.pack_id}"


@dataclass(frozen=True, slots=True)
class Record:
    """A dataset's record (small, mutable JSON)."""

    dataset_id: str

    def __post_init__(self) -> None:
        check_component(self.dataset_id, "dataset id")

    @property
    def key(self) -> str:
        return _dataset_key(self.dataset_id, _RECORD)


@dataclass(frozen=True, slots=True)
class DraftState:
    """A draft's pending file table (deleted at finalize)."""

    dataset_id: str

    def __post_init__(self) -> None:
        check_component(self.dataset_id, "dataset id")

    @property
    def key(self) -> str:
        return _dataset_key(self.dataset_id, _STATE)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A version's file table, immutable once written."""

    dataset_id: str

    def __post_init__(self) -> None:
        check_component(self.dataset_id, "dataset id")

    @property
    def key(self) -> str:
        return _dataset_key(self.dataset_id, _MANIFEST)


@dataclass(frozen=True, slots=True)
class Metadata:
    """An object stored by ``set_metadata``: ``name`` comes from users, so it is one checked component."""

    dataset_id: str
    name: str
    ext: str = "json"

    def __post_init__(self) -> None:
        check_component(self.dataset_id, "dataset id")
        check_component(self.name, "metadata name")
        _check_ext(self.ext)

    @property
    def key(self) -> str:
        return _dataset_key(self.dataset_id, f"{_METADATA}/{self.name}.{self.ext}")


@dataclass(frozen=True, slots=True)
class Report:
    """A logger report (``ext`` "json"), a report's media (``png``, ...) or the automatic preview
    (report id ``PREVIEW_ID``).  Neither part may hold a '.': the key splits at its one dot."""

    dataset_id: str
    report_id: str
    ext: str = "json"

    def __post_init__(self) -> None:
        check_component(self.dataset_id, "dataset id")
        _check_dotless(self.report_id, "report id")
        _check_dotless(self.ext, "report extension")

    @property
    def key(self) -> str:
        return _dataset_key(self.dataset_id, f"{_REPORTS}/{self.report_id}.{self.ext}")


def reports_prefix(dataset_id: str) -> str:
    """The prefix that lists every report object of one dataset."""
    check_component(dataset_id, "dataset id")
    return _dataset_key(dataset_id, f"{_REPORTS}/")


@dataclass(frozen=True, slots=True)
class Pointer:
    """A version pointer ``{"id": ...}``, created with a conditional write.

    Only the components' use as keys is checked here; what makes a version
    number (and how versions sort) is the catalog's rule (``catalog.names``).
    """

    project: str
    name: str
    version: str

    def __post_init__(self) -> None:
        check_project(self.project)
        check_component(self.name, "dataset name")
        check_component(self.version, "version")

    @property
    def key(self) -> str:
        return f"{pointer_prefix(self.project, self.name)}{self.version}"


@dataclass(frozen=True, slots=True)
class Lock:
    """A lock object (``store/locks.py``): shared for uploads and finalize, exclusive for ``gc``."""

    lock_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.lock_id, str) or _PACK_ID.fullmatch(self.lock_id) is None:
            raise UsageError(f"lock id {shown(self.lock_id)} is not 32 hex digits")

    @property
    def key(self) -> str:
        return f"{LOCKS}{self.lock_id}"


Handle = Union[FormatFile, Pack, PackIndex, Record, DraftState, Manifest, Metadata, Report, Pointer, Lock]
#: the handles of the objects below ``datasets/<id>/``
DatasetHandle = Union[Record, DraftState, Manifest, Metadata, Report]


def _dataset_key(dataset_id: str, rest: str) -> str:
    return f"{DATASETS}{dataset_id}/{rest}"


def pointer_prefix(project: str, name: str) -> str:
    """The prefix that lists the version pointers of one project/name (and those of projects nested below it)."""
    check_project(project)
    check_component(name, "dataset name")
    return f"{POINTERS}{project}/{name}/"


# --- keys back to handles ------------------------------------------------------

def parse_pointer(key: str) -> Pointer | None:
    """The pointer at a listed key; None for a folder marker; ``UsageError`` naming what is wrong otherwise."""
    if key.endswith("/"):
        return None  # a folder marker some S3 tools create, not a pointer
    parts = key.split("/")
    if len(parts) < 4 or f"{parts[0]}/" != POINTERS:
        raise UsageError("it is not catalog/<project>/<name>/<version>")
    return Pointer("/".join(parts[1:-2]), parts[-2], parts[-1])


def parse_record(key: str) -> Record | None:
    """The record at a listed key; None when the key is not a record's (a manifest, metadata, another
    tool's object); ``UsageError`` when it is one but its dataset id breaks the rules."""
    if not key.startswith(DATASETS):
        return None
    parts = key[len(DATASETS):].split("/")
    return Record(parts[0]) if len(parts) == 2 and parts[1] == _RECORD else None


def parse_dataset_key(key: str) -> DatasetHandle | None:
    """The handle of a key below ``datasets/``; None for a key of no known shape (another tool's
    object, a folder marker); ``UsageError`` when it has a known shape but a component breaks the rules."""
    if not key.startswith(DATASETS):
        return None
    record = parse_record(key)
    if record is not None:
        return record
    parts = key[len(DATASETS):].split("/")
    if len(parts) == 2 and parts[1] == _STATE:
        return DraftState(parts[0])
    if len(parts) == 2 and parts[1] == _MANIFEST:
        return Manifest(parts[0])
    if len(parts) == 3 and parts[1] == _METADATA and "." in parts[2]:
        name, _, ext = parts[2].rpartition(".")
        return Metadata(parts[0], name, ext)
    if len(parts) == 3 and parts[1] == _REPORTS and parts[2].count(".") == 1:
        report_id, _, ext = parts[2].partition(".")
        return Report(parts[0], report_id, ext)
    return None


def parse_pack_key(key: str) -> Pack | PackIndex | None:
    """The handle of a key below ``packs/`` or ``index/``; None for another shape; ``UsageError`` for a bad pack id."""
    if key.startswith(INDEX):
        rest = key[len(INDEX):]
        return PackIndex(rest) if rest and "/" not in rest else None
    if key.startswith(PACKS):
        parts = key[len(PACKS):].split("/")
        if len(parts) != 2:
            return None
        pack = Pack(parts[1])
        return pack if pack.key == key else None  # the folder must be the id's first two digits
    return None


def parse_lock_key(key: str) -> Lock | None:
    """The lock at a listed key below ``locks/``; None for another shape; ``UsageError`` for a bad lock id."""
    if not key.startswith(LOCKS):
        return None
    rest = key[len(LOCKS):]
    return Lock(rest) if rest and "/" not in rest else None


def parse(key: str) -> Handle | None:
    """The handle of any key of a store; None for a key this layout does not write.

    ``UsageError`` when the key has the shape of one but a component breaks
    the rules (a crafted or damaged object: skip it and say so).
    """
    if key == FORMAT_KEY:
        return FormatFile()
    if key.startswith(POINTERS):
        return parse_pointer(key)
    if key.startswith(DATASETS):
        return parse_dataset_key(key)
    if key.startswith(LOCKS):
        return parse_lock_key(key)
    return parse_pack_key(key)
