"""A store: the format object, the chunk index, packs and manifests on one backend."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..backends import Backend, open_backend
from ..backends.retry import RetryingBackend
from ..errors import IntegrityError, ObjectNotFound, UsageError
from . import manifest as manifest_codec
from . import format as store_format
from .format import ChunkParams
from .manifest import ChunkRef, FileEntry
from .layout import INDEX, Manifest, Pack, PackIndex, parse_pack_key
from .packs import PackedChunk, decode_chunk, decode_footer

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

#: two chunks of one pack closer than this are fetched by one ranged read
COALESCE_GAP = 1 << 20


class Store:
    """Bytes of datasets in one store: chunks in packs, and manifests."""

    def __init__(self, backend: Backend, create: bool = True):
        """Open the store at ``backend``; ``create``: start one there when there is none
        (``store.format.init``), else ``NoStore`` (``store.format.read``)."""
        self.backend = backend
        self.url = backend.url
        self.params: ChunkParams
        #: this open wrote the format object: the store is new
        self.created: bool
        if create:
            self.params, self.created = store_format.init(backend)
        else:
            self.params, self.created = store_format.read(backend), False
        self._index: dict[bytes, ChunkRef] = {}
        self._indexed_packs: set[str] = set()
        self._skipped_indexes: set[str] = set()  # index keys already warned about
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str, config: "Config | None" = None, create: bool = True) -> "Store":
        return cls(RetryingBackend(open_backend(url, config)), create=create)

    # --- the chunk index ---------------------------------------------------

    def chunk_index(self, refresh: bool = True) -> dict[bytes, ChunkRef]:
        """digest -> location of every chunk the store holds (new index objects are read on refresh)."""
        if refresh:
            listed = list(self._listed_indexes())
            # packs that `mountfs gc` removed since (their index object goes first): never offer their chunks again
            self.forget_packs(self._indexed_packs - {h.pack_id for h in listed})
            new = [h for h in listed if h.pack_id not in self._indexed_packs]
            if new:
                with ThreadPoolExecutor(8) as pool:
                    for h, footer in zip(new, pool.map(lambda h: self.backend.get(h.key), new)):
                        self.add_to_index(h.pack_id, decode_footer(footer, h.key))
        return self._index

    def _listed_indexes(self) -> Iterator[PackIndex]:
        """The store's index objects; one named for no pack id is skipped with a warning (once): a chunk
        indexed under it would put a pack id that no manifest may hold into the next version's manifest."""
        for o in self.backend.list(INDEX):
            try:
                handle = parse_pack_key(o.key)
            except UsageError as exc:
                handle = None
                if o.key not in self._skipped_indexes:
                    self._skipped_indexes.add(o.key)
                    log.warning("store %s: skipping index object %s: %s", self.url, o.key, exc)
            if isinstance(handle, PackIndex):
                yield handle

    def add_to_index(self, pack_id: str, entries: Iterable[PackedChunk]) -> None:
        with self._lock:
            for e in entries:
                self._index.setdefault(e.digest, ChunkRef(e.digest, e.size, pack_id, e.offset, e.length, e.codec))
            self._indexed_packs.add(pack_id)

    def forget_packs(self, pack_ids: Iterable[str]) -> None:
        """Drop deleted packs from the in-memory index (``mountfs gc`` removed them): the whole index is
        read again on the next refresh."""
        gone = set(pack_ids)
        if not gone:
            return
        with self._lock:
            # all of it, read again on the next refresh: a chunk of a gone pack may also sit in a pack that
            # stays, and only a re-read finds that one.  In place: an upload holds this dict as what the store has
            self._index.clear()
            self._indexed_packs.clear()

    def missing_packs(self, pack_ids: Iterable[str]) -> list[str]:
        """Those of ``pack_ids`` the store no longer holds, from a fresh index listing (a pack's index
        object is written after the pack and deleted before it, so a listed index means the pack is there).
        A finalize checks its packs with this: a ``gc`` that ran since its upload cannot leave it pointing at nothing."""
        self.chunk_index(refresh=True)
        return sorted(set(pack_ids) - self._indexed_packs)

    # --- reading chunks ----------------------------------------------------

    def read_chunk(self, ref: ChunkRef) -> bytes | memoryview:
        """Fetch one chunk and verify it; a damaged read is retried once, then ``IntegrityError``."""
        return self.read_chunks([ref])[ref.digest]

    def read_chunks(self, refs: Iterable[ChunkRef]) -> dict[bytes, bytes | memoryview]:
        """Fetch many chunks with as few ranged reads as possible; all verified.

        Uncompressed chunks are views into the ranged read's buffer: copying
        them to ``bytes`` would cost a second pass over every byte read.
        """
        by_pack: dict[str, list[ChunkRef]] = defaultdict(list)
        for r in refs:
            by_pack[r.pack].append(r)
        out: dict[bytes, bytes | memoryview] = {}
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

    def _read_run(self, pack_id: str, run: list[ChunkRef], out: dict[bytes, bytes | memoryview]) -> None:
        key = Pack(pack_id).key
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

    def put_manifest(self, dataset_id: str, entries: Iterable[FileEntry], meta: dict[str, Any] | None = None) -> bytes:
        """Write a version's manifest; returns its trailing checksum (recorded in the dataset record)."""
        data = manifest_codec.encode(entries, meta=meta)
        self.backend.put(Manifest(dataset_id).key, data)
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
        key = Manifest(dataset_id).key
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
