"""``mountfs.json``: the store's format version and chunking parameters."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..backends import Backend
from ..errors import AlreadyExists, IntegrityError, ObjectNotFound, StoreError
from .layout import FORMAT_KEY

#: the store format a new store is created with; older stores are read and written as they are.
#: 2: manifests record each entry's origin (manifest format 2); 1: they do not
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ChunkParams:
    """FastCDC parameters; fixed per store so identical data cuts identically."""

    min_size: int = 512 << 10
    avg_size: int = 1 << 20
    max_size: int = 8 << 20
    seed: int = 0


def read_or_init(backend: Backend, create: bool = True) -> ChunkParams:
    """Read the store's format object, creating it (race-safe) on first use."""
    try:
        raw = backend.get(FORMAT_KEY)
    except ObjectNotFound:
        if not create:
            raise StoreError(f"{backend.url} is not a mountfs store (no {FORMAT_KEY}); check the store URL") from None
        params = ChunkParams()
        doc = {"format": FORMAT_VERSION, "hash": "xxh3-128", "chunker": {"algorithm": "fastcdc2020", **asdict(params)}}
        try:
            backend.put_if_absent(FORMAT_KEY, json.dumps(doc, indent=1).encode())
        except AlreadyExists:
            return read_or_init(backend, create=False)
        return params
    try:
        doc = json.loads(raw)
        fmt = int(doc["format"])
        chunker = doc["chunker"]
        params = ChunkParams(chunker["min_size"], chunker["avg_size"], chunker["max_size"], chunker.get("seed", 0))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{backend.url}/{FORMAT_KEY} is damaged ({exc}); restore it from a backup") from None
    if fmt > FORMAT_VERSION:
        raise StoreError(
            f"store {backend.url} uses format {fmt}, newer than this mountfs understands ({FORMAT_VERSION}); upgrade mountfs"
        )
    return params
