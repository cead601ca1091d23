"""``mountfs.json``: the store's format version and chunking parameters.

The format object is what makes a location a store.  Reading never creates
it (``read``): a typo in a store URL must not leave a new store behind.  Only
a write that starts a store creates it (``init``), and only where nothing else
is: a folder or prefix holding other files but no ``mountfs.json`` is someone's
data, never written into.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..backends import Backend
from ..errors import AlreadyExists, IntegrityError, NotFound, ObjectNotFound, StoreError, UsageError
from .layout import FORMAT_KEY

#: the store format a new store is created with; older stores are read and written as they are.
#: 2: manifests record each entry's origin (manifest format 2); 1: they do not
FORMAT_VERSION = 2


class NoStore(NotFound, StoreError):
    """There is no mountfs store at the URL (no ``mountfs.json``): a NotFound (exit 3) of the store."""


@dataclass(frozen=True)
class ChunkParams:
    """FastCDC parameters; fixed per store so identical data cuts identically."""

    min_size: int = 512 << 10
    avg_size: int = 1 << 20
    max_size: int = 8 << 20
    seed: int = 0


def no_store(url: str) -> NoStore:
    """The error of a read-only use of a location that holds no store, with the fix."""
    return NoStore(
        f"no mountfs store at {url} (no {FORMAT_KEY}): set MOUNTFS_STORE or --storage to your store, "
        "or create a dataset to start a new store there"
    )


def read(backend: Backend) -> ChunkParams:
    """The parameters of the store at ``backend``; ``NoStore`` when there is none (nothing is written)."""
    try:
        raw = backend.get(FORMAT_KEY)
    except ObjectNotFound:
        raise no_store(backend.url) from None
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


def init(backend: Backend) -> tuple[ChunkParams, bool]:
    """The store's parameters, creating the store (race-safe) when there is none; True when created here.

    Refused (``UsageError``) where other objects are but no format object: a
    data folder or a bucket prefix in use is not made a store.  An empty or
    missing folder is.
    """
    try:
        return read(backend), False
    except NoStore:
        pass
    # one object is enough to tell; a first writer racing us may have created the store meanwhile
    if next(iter(backend.list()), None) is not None:
        try:
            return read(backend), False
        except NoStore:
            raise UsageError(
                f"{backend.url} holds files but is not a mountfs store (no {FORMAT_KEY}): refusing to start a store "
                "among them; point MOUNTFS_STORE or --storage at an empty or new folder, or at your store"
            ) from None
    params = ChunkParams()
    doc = {"format": FORMAT_VERSION, "hash": "xxh3-128", "chunker": {"algorithm": "fastcdc2020", **asdict(params)}}
    try:
        backend.put_if_absent(FORMAT_KEY, json.dumps(doc, indent=1).encode())
    except AlreadyExists:
        return read(backend), False
    return params, True


def read_or_init(backend: Backend, create: bool = True) -> ChunkParams:
    """The store's parameters: ``init`` when ``create``, else ``read``."""
    return init(backend)[0] if create else read(backend)
