"""The dataset record (``datasets/<id>/info.json``): everything about a version except its file table."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import IntegrityError

RECORD_FORMAT = 1

DRAFT = "draft"
UPLOADED = "uploaded"
COMPLETED = "completed"
PUBLISHED = "published"
FINAL_STATUSES = (COMPLETED, PUBLISHED)


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
    def from_json(cls, data: bytes, where: str) -> "DatasetRecord":
        try:
            doc = json.loads(data)
            known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (ValueError, TypeError) as exc:
            raise IntegrityError(f"dataset record {where} is damaged ({exc})") from None
