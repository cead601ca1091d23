"""A store: the format object, the chunk index, packs and manifests on one backend."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterable, Iterator

from ..backends import Backend, open_backend
from ..backends.retry import RetryingBackend
from ..errors import IntegrityError, ObjectNotFound
from . import manifest as manifest_codec
from .format import ChunkParams, read_or_init
from .manifest import ChunkRef, FileEntry
from .packs import decode_chunk, decode_footer, index_key, pack_key

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

#: two chunks of one pack closer than this are fetched by one ranged read
COALESCE_GAP = 1 << 20


def manifest_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/manifest"


class Store:
    """Bytes of datasets in one store: chunks in packs, and manifests."""

    def __init__(self, backend: Backend, create: bool = True):
        self.backend = backend
        self.url = backend.url
        self.params: ChunkParams = read_or_init(backend, create=create)
        self._index: dict[bytes, ChunkRef] = {}
        self._indexed_packs: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str, config: "Config | None" = None, create: bool = True) -> "Store":
        return cls(RetryingBackend(open_backend(url, config)), create=create)

    # --- the chunk index ---------------------------------------------------

    def chunk_index(self, refresh: bool = True) -> dict[bytes, ChunkRef]:
        """digest -> location of every chunk the store holds (new index objects are read on refresh)."""
        if refresh:
            new = [o.key[len("index/"):] for o in self.backend.list("index/")]
            new = [p for p in new if p not in self._indexed_packs]
            if new:
                with ThreadPoolExecutor(8) as pool:
                    for pack_id, footer in zip(new, pool.map(lambda p: self.backend.get(index_key(p)), new)):
                        self.add_to_index(pack_id, decode_footer(footer, index_key(pack_id)))
        return self._index

    def add_to_index(self, pack_id: str, entries) -> None:
        with self._lock:
            for e in entries:
                self._index.setdefault(e.digest, ChunkRef(e.digest, e.size, pack_id, e.offset, e.length, e.codec))
            self._indexed_packs.add(pack_id)

    # --- reading chunks ----------------------------------------------------

    def read_chunk(self, ref: ChunkRef) -> bytes:
        """Fetch one chunk and verify it; a damaged read is retried once, then ``IntegrityError``."""
        return self.read_chunks([ref])[ref.digest]

    def read_chunks(self, refs: Iterable[ChunkRef]) -> dict[bytes, bytes]:
        """Fetch many chunks with as few ranged reads as possible; all verified."""
        by_pack: dict[str, list[ChunkRef]] = defaultdict(list)
        for r in refs:
            by_pack[r.pack].append(r)
        out: dict[bytes, bytes] = {}
        for pack_id, group in by_pack.items():
            group.sort(key=lambda r: r.offset)
            run: list[ChunkRef] = []
            for r in group:
                if run and r.offset == run[-1].offset:
                    continue  # the same chunk asked for twice
                if run and r.offset > run[-1].offset + run[-1].length + COALESCE_GAP:
                    self._read_run(pack_id, run, out)
                    run = []
                run.append(r)
            if run:
                self._read_run(pack_id, run, out)
        return out

    def _read_run(self, pack_id: str, run: list[ChunkRef], out: dict[bytes, bytes]) -> None:
        key = pack_key(pack_id)
        start = run[0].offset
        for attempt in (1, 2):
            try:
                pieces = self.backend.get_ranges(key, start, [(r.offset - start, r.length) for r in run])
            except ObjectNotFound:
                raise IntegrityError(f"pack {key} is missing from store {self.url}: the version is damaged") from None
            try:
                for r, stored in zip(run, pieces):
                    out[r.digest] = decode_chunk(stored, r.codec, r.size, r.digest, f"{self.url}/{key}")
                return
            except IntegrityError:
                if attempt == 2:
                    raise
                log.warning("integrity check failed for %s, reading it again", key)

    # --- manifests ---------------------------------------------------------

    def put_manifest(self, dataset_id: str, entries: Iterable[FileEntry], meta: dict | None = None) -> bytes:
        """Write a version's manifest; returns its trailing checksum (recorded in the dataset record)."""
        data = manifest_codec.encode(entries, meta=meta)
        self.backend.put(manifest_key(dataset_id), data)
        return data[-16:]

    def get_manifest(self, dataset_id: str, digest: str) -> list[FileEntry]:
        """A version's entries in path order; ``digest`` as in ``iter_manifest``."""
        return list(self.iter_manifest(dataset_id, digest))

    def iter_manifest(self, dataset_id: str, digest: str) -> Iterator[FileEntry]:
        """A version's entries in path order, decoded lazily (for millions of files).

        ``digest`` is the record's ``manifest_digest`` (hex): the manifest read
        must be the one its record was finalized with, not another version's
        manifest copied over it or one rewritten since.
        """
        key = manifest_key(dataset_id)
        where = f"{self.url}/{key}"
        try:
            data = self.backend.get(key)
        except ObjectNotFound:
            raise IntegrityError(f"manifest {where} is missing: the version is damaged") from None
        header, entries = manifest_codec.iter_decode(data, where)  # verifies the trailing checksum first
        if data[-16:].hex() != digest:
            raise IntegrityError(
                f"manifest of dataset {dataset_id} ({where}) is not the one its record was finalized with "
                f"(checksum {data[-16:].hex()}, recorded {digest or 'none'}); restore it or delete the version"
            )
        if header["kind"] != "manifest":
            raise IntegrityError(f"manifest {where} is a draft's state, not a version's manifest; restore it or delete the version")
        return entries

    def close(self) -> None:
        self.backend.close()
