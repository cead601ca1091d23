"""Per-process handles on the catalog, the stores and the cache, shared by every ``Dataset``."""

from __future__ import annotations

import functools
import logging
import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from . import config as config_mod
from .backends import Backend, normalize_url, open_source
from .cache import ChunkCache
from .catalog import Catalog
from .store import Store
from .store.external import SourcePolicy

log = logging.getLogger(__name__)
_lock = threading.Lock()
_sessions: dict[tuple, "Session"] = {}


class Session:
    """The catalog store, every data store opened so far, and the chunk cache."""

    def __init__(self, cfg: config_mod.Config):
        self.config = cfg
        self.catalog_url = normalize_url(cfg.store)
        self._stores: dict[str, Store] = {}
        self._cache: ChunkCache | None = None
        self._sources: dict[tuple[bool, str], Backend] = {}
        self._policies: dict[bool, SourcePolicy] = {}
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog of the default store, opened on first use (cache commands work without a store)."""
        if self._catalog is None:
            catalog = Catalog(self.store().backend)
            with _lock:
                if self._catalog is None:
                    self._catalog = catalog
        return self._catalog

    def store(self, url: str = "") -> Store:
        """The store at ``url`` ("" = the catalog's own store), opened once per process."""
        url = normalize_url(url) if url else self.catalog_url
        with _lock:
            if url not in self._stores:
                self._stores[url] = Store.open(url, self.config)
            return self._stores[url]

    def source_policy(self, serving_others: bool = False) -> SourcePolicy:
        """Which external files this process may read; ``serving_others``: for a mount other users read."""
        with _lock:
            policy = self._policies.get(serving_others)
            if policy is None:
                policy = self._policies[serving_others] = SourcePolicy.from_config(self.config, serving_others)
            return policy

    def source(self, url: str, serving_others: bool = False) -> tuple[Backend, str]:
        """Backend and key of an external file's URL, checked against the source policy at every call.

        Backends are shared per parent folder.  A restricted policy's backends
        judge again what they actually reach (a file's real path once opened, a
        redirect's target), since a name can change between this check and the read.
        """
        policy = self.source_policy(serving_others)
        policy.check(url)
        parent, _, name = normalize_url(url).rpartition("/")
        with _lock:
            hit = self._sources.get((serving_others, parent))
        if hit is not None:
            return hit, name
        check = functools.partial(policy.check, resolve=False) if policy.restricted else None
        backend, key = open_source(url, self.config, check)
        with _lock:
            self._sources.setdefault((serving_others, parent), backend)
        return backend, key

    @property
    def cache(self) -> ChunkCache:
        with _lock:
            if self._cache is None:
                self._cache = ChunkCache(
                    self.config.cache_dir, self.config.cache_size, self.config.cache_min_free
                )
            return self._cache


def default_workers(max_workers: int | None) -> int:
    """``max_workers`` as ClearML means it: the number of logical cores when not given."""
    return max(1, int(max_workers)) if max_workers else (os.cpu_count() or 1)


def current(**overrides) -> Session:
    """The session for the effective configuration (environment is re-read on each call)."""
    cfg = config_mod.load(**overrides)
    # a changed source policy gets a session of its own: policies and their backends live in a session
    key = (normalize_url(cfg.store), cfg.cache_dir, cfg.cache_size, cfg.cache_min_free, cfg.external_allow)
    with _lock:
        sess = _sessions.get(key)
    if sess is None:
        sess = Session(cfg)
        with _lock:
            sess = _sessions.setdefault(key, sess)
    return sess


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool, unit: str = "B") -> Iterator[Callable[[int], None]]:
    """A tqdm bar when ``enabled``; yields the callback that advances it."""
    if not enabled:
        yield lambda n: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1024, leave=False)
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            bar.update(n)

    try:
        yield advance
    finally:
        bar.close()
