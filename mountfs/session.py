"""Per-process handles on the catalog, the stores and the cache, shared by every ``Dataset``.

A ``Session`` belongs to one ``Config``: ``open(cfg)`` gives the session of
exactly that configuration (every field counts, the run dir too), shared by
all callers passing an equal one.  ``current()`` is the session of the
process's configuration (``config.process_config()``: resolved once, on first
use), for SDK code that has no place to pass a config (ClearML's API has none);
``use(cfg)`` makes ``cfg`` the process's configuration for a block (the CLI
does, for one command).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from . import config as config_mod
from .backends import Backend, normalize_url, open_source
from .cache import ChunkCache
from .catalog import Catalog
from .store import Store
from .store.external import SourcePolicy

log = logging.getLogger(__name__)
_lock = threading.Lock()
#: one session per configuration; a Config is immutable and hashable
_sessions: dict[config_mod.Config, "Session"] = {}


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

    def folder(self, url: str, serving_others: bool = False) -> Backend:
        """A backend rooted at an external folder's URL, to list the files under it (``add_external_files``).

        Checked against the source policy like ``source`` (each file listed is
        checked again when read) and retry-wrapped like a store, so listing a
        folder has the one retry budget (``backends.retry.BUDGET``) and nothing more.
        """
        from .backends import open_backend
        from .backends.retry import RetryingBackend

        policy = self.source_policy(serving_others)
        policy.check(url, what="external folder")
        check = functools.partial(policy.check, resolve=False) if policy.restricted else None
        return RetryingBackend(open_backend(url, self.config, check))

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


def open(cfg: config_mod.Config) -> Session:  # noqa: A001 - session.open(config), as io.open(file)
    """The session of exactly ``cfg``, opened once per process and shared by every equal ``cfg``.

    The store URL is normalized first, so ``./store`` and its absolute path share a session.
    """
    store = normalize_url(cfg.store)
    if store != cfg.store:
        cfg = dataclasses.replace(cfg, store=store)
    with _lock:
        sess = _sessions.get(cfg)
    if sess is None:
        sess = Session(cfg)
        with _lock:
            sess = _sessions.setdefault(cfg, sess)
    return sess


def current(**overrides: Any) -> Session:
    """The session of the process's configuration, with ``overrides`` (``Config`` fields) applied.

    The configuration is resolved once per process (``config.process_config()``):
    the config file is not read again on later calls.
    """
    cfg = config_mod.process_config()
    return open(cfg.with_overrides(**overrides) if overrides else cfg)


@contextmanager
def use(cfg: config_mod.Config) -> Iterator[config_mod.Config]:
    """Make ``cfg`` the process's configuration inside the block (what ``current()`` and the SDK use).

    The previous one comes back afterwards, for callers that run several CLI
    commands in one process.
    """
    previous = config_mod.set_process_config(cfg)
    try:
        yield cfg
    finally:
        config_mod.set_process_config(previous)


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
