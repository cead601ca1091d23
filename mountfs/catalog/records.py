"""The dataset record (``datasets/<id>/info.json``): everything about a version except its file table."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from ..errors import IntegrityError, UsageError
from . import names

RECORD_FORMAT = 1

DRAFT = "draft"
UPLOADED = "uploaded"
COMPLETED = "completed"
PUBLISHED = "published"
STATUSES = (DRAFT, UPLOADED, COMPLETED, PUBLISHED)
FINAL_STATUSES = (COMPLETED, PUBLISHED)
METADATA_TYPES = ("json", "pandas")
#: counts and sizes end up in 64-bit fields (st_size, JSON readers in other languages)
_MAX_COUNT = 2**63 - 1


def new_id() -> str:
    """Time-ordered id: 12 hex digits of milliseconds, then 8 random ones."""
    return f"{int(time.time() * 1000):012x}{os.urandom(4).hex()}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class DatasetRecord:
    id: str
    project: str
    name: str
    version: str
    status: str = DRAFT
    parents: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    description: str = ""
    #: URL of the store holding this version's packs and manifest ("" = the catalog's store)
    storage: str = ""
    created: str = field(default_factory=now_iso)
    finalized: str = ""
    published: str = ""
    manifest_digest: str = ""
    file_count: int = 0
    total_size: int = 0
    #: counts of added/modified/removed files against the parents, at finalize
    changes: dict[str, int] = field(default_factory=dict)
    #: metadata_name -> {"type": "json" | "pandas"}
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: int = RECORD_FORMAT

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str, dataset_id: str) -> "DatasetRecord":
        """Decode and check a record read from ``where`` (the folder of ``dataset_id``).

        The record comes from whoever can write the store: every field is
        type- and syntax-checked, so what is returned is safe to show, sort by
        version and mount.  Fields this version does not know are ignored.
        Raises ``IntegrityError`` naming ``where`` and the bad field.
        """
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise IntegrityError(f"dataset record {where} is damaged (not JSON: {exc}); rewrite or delete it") from None
        if not isinstance(doc, dict):
            raise IntegrityError(
                f"dataset record {where} is damaged: a {type(doc).__name__} instead of a JSON object; rewrite or delete it"
            )
        fmt = doc.get("format", RECORD_FORMAT)
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > RECORD_FORMAT:
            raise IntegrityError(
                f"dataset record {where} has format {fmt}, newer than this mountfs reads ({RECORD_FORMAT}); upgrade mountfs"
            )
        known: dict[str, Any] = {}
        for name, check in _CHECKS.items():
            if name not in doc:
                continue
            try:
                known[name] = check(doc[name])
            except (_Invalid, UsageError) as exc:
                raise IntegrityError(
                    f"dataset record {where} is damaged: field {name!r}: {exc}; rewrite or delete the record"
                ) from None
        missing = [n for n in ("id", "project", "name", "version") if n not in known]
        if missing:
            raise IntegrityError(f"dataset record {where} is damaged: no {', '.join(missing)}; rewrite or delete it")
        if known["id"] != dataset_id:
            raise IntegrityError(
                f"dataset record {where} is damaged: field 'id' is {names.shown(known['id'])}, "
                f"not the id of its folder ({dataset_id}); rewrite or delete the record"
            )
        return cls(**known)


class _Invalid(ValueError):
    """A field's value does not have the form it must have (the message says which)."""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{names.shown(value)} is not a string")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON): printing it would fail later
        raise _Invalid(f"{names.shown(value)} is not valid Unicode") from None
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise _Invalid(f"{names.shown(value)} is not a count (a whole number >= 0)")
    return value


def _time(value: Any) -> str:
    """An ISO 8601 time, or "" for not yet."""
    text = _text(value)
    if text:
        try:
            datetime.fromisoformat(text).timestamp()
        except (ValueError, OverflowError, OSError):
            raise _Invalid(f"{names.shown(text)} is not an ISO 8601 time") from None
    return text


def _id(value: Any) -> str:
    return names.check_component(value, "dataset id")


def _status(value: Any) -> str:
    if value not in STATUSES:  # a list or dict is never equal to one of the strings
        raise _Invalid(f"{names.shown(value)} is not one of {', '.join(STATUSES)}")
    return str(value)


def _list_of(item: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def check(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _Invalid(f"{names.shown(value)} is not a list")
        return [item(v) for v in value]

    return check


def _changes(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Invalid(f"{names.shown(value)} is not an object of counts")
    return {_text(k): _count(v) for k, v in value.items()}


def _metadata(value: Any) -> dict[str, dict[str, Any]]:
    """name -> {"type": ...}; what else an entry holds is ignored, as for unknown record fields."""
    if not isinstance(value, dict):
        raise _Invalid(f"{names.shown(value)} is not an object")
    out = {}
    for name, info in value.items():
        names.check_component(name, "metadata name")  # it becomes part of an object key
        kind = info.get("type") if isinstance(info, dict) else None
        if kind not in METADATA_TYPES:
            raise _Invalid(f"entry {names.shown(name)} is not {{\"type\": \"json\" | \"pandas\"}}")
        out[name] = {"type": kind}
    return out


def _format(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"{names.shown(value)} is not a record format number")
    return value


#: every field of ``DatasetRecord`` and how its stored value is checked, in the order checked
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "format": _format,
    "id": _id,
    "project": names.check_project,
    "name": names.check_name,
    "version": names.check_version,
    "status": _status,
    "parents": _list_of(_id),
    "tags": _list_of(_text),
    "description": _text,
    "storage": _text,
    "created": _time,
    "finalized": _time,
    "published": _time,
    "manifest_digest": _text,
    "file_count": _count,
    "total_size": _count,
    "changes": _changes,
    "metadata": _metadata,
}
