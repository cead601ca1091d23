"""Per-process handles on the catalog, the stores and the cache, shared by every ``Dataset``.

A ``Session`` belongs to one ``Config``: ``open(cfg)`` gives the session of
exactly that configuration (every field counts, the run dir too), shared by
all callers passing an equal one.  ``current()`` is the session of the
process's configuration (``config.process_config()``: resolved once, on first
use), for SDK code that has no place to pass a config (ClearML's API has none);
``use(cfg)`` makes ``cfg`` the process's configuration for a block (the CLI
does, for one command).

Stores are never created by reading them.  The catalog's store is started
only by a write that makes a dataset (``Session.create_store``, called by
``create`` and ``squash``); it is said once (an INFO log line, and the
``on_store_created`` callback the CLI passes to ``use``).  Reading a catalog
whose store is missing finds nothing in the SDK; the CLI (``use(...,
missing_store_is_error=True)``) and the daemon get ``store.format.NoStore``
instead, so a typo in a store URL is an error and never an empty store.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from . import config as config_mod
from .backends import Backend, normalize_url, open_backend, open_source
from .backends.retry import RetryingBackend
from .cache import ChunkCache
from .catalog import Catalog
from .store import Store
from .store.external import SourcePolicy
from .store.format import NoStore

log = logging.getLogger(__name__)
_lock = threading.Lock()
#: one session per configuration; a Config is immutable and hashable
_sessions: dict[config_mod.Config, "Session"] = {}
#: how this process reads a catalog whose store is missing (``use``): as empty (the SDK), or ``NoStore`` (the CLI)
_missing_store_is_error = False
#: told the URL of each store this process creates (``use``: the CLI prints it)
_on_store_created: Callable[[str], None] | None = None


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
        self._backends: dict[str, Backend] = {}

    @property
    def catalog(self) -> Catalog:
        """The catalog of the default store, opened on first use (cache commands work without a store).

        A missing store is not created: it reads as empty, or raises ``NoStore``
        in a process that asked for that (``use(..., missing_store_is_error=True)``).
        """
        if self.catalog_url not in self._stores:
            try:
                self.store()
            except NoStore:
                if _missing_store_is_error:
                    raise
        if self._catalog is None:
            catalog = Catalog(self._backend(self.catalog_url))
            with _lock:
                if self._catalog is None:
                    self._catalog = catalog
        return self._catalog

    def _backend(self, url: str) -> Backend:
        """One retry-wrapped backend per store URL, shared by its ``Store`` and the catalog."""
        with _lock:
            backend = self._backends.get(url)
        if backend is None:
            backend = RetryingBackend(open_backend(url, self.config))
            with _lock:
                backend = self._backends.setdefault(url, backend)
        return backend

    def store(self, url: str = "") -> Store:
        """The store at ``url`` ("" = the catalog's own store), opened once per process.

        No store is created here (``NoStore`` when missing), the catalog's nor a
        dataset's data store: reading a version whose data store vanished must
        not write a ``mountfs.json`` there.  Writes go through ``create_store``
        (a draft's creation, ``upload`` and ``output_url``).
        """
        url = normalize_url(url) if url else self.catalog_url
        with _lock:
            hit = self._stores.get(url)
        return hit if hit is not None else self._open_store(url, create=False)

    def create_store(self, url: str = "") -> Store:
        """The store at ``url`` ("" = the catalog's), started there when there is none: for writes that
        make a dataset.  Reaches the store now (within the backends' retry budget), so a URL that cannot
        be reached fails before anything names it.  A location with other files is refused (``store.format.init``)."""
        url = normalize_url(url) if url else self.catalog_url
        with _lock:
            hit = self._stores.get(url)
        return hit if hit is not None else self._open_store(url, create=True)

    def require_store(self) -> Store:
        """The catalog's store; ``NoStore`` when there is none (the daemon: never serve a typo as empty)."""
        return self.store()

    def _open_store(self, url: str, create: bool) -> Store:
        store = Store(self._backend(url), create=create)
        with _lock:
            kept = self._stores.setdefault(url, store)
        if store.created:
            log.info("created a new mountfs store at %s", url)
            announce = _on_store_created
            if announce is not None:
                announce(url)
        return kept

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
        """The chunk cache; a ``ConfigError`` when its configured size was unusable (only what needs it fails)."""
        self.config.require("cache_size", "cache_min_free")
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
def use(cfg: config_mod.Config, *, missing_store_is_error: bool = False,
        on_store_created: Callable[[str], None] | None = None) -> Iterator[config_mod.Config]:
    """Make ``cfg`` the process's configuration inside the block (what ``current()`` and the SDK use).

    ``missing_store_is_error``: reading a catalog whose store does not exist
    raises ``NoStore`` instead of finding nothing (the CLI: a typo in a store
    URL must say so).  ``on_store_created`` is told the URL of each store a
    write starts in the block.  The previous settings come back afterwards,
    for callers that run several CLI commands in one process.
    """
    global _missing_store_is_error, _on_store_created
    previous = config_mod.set_process_config(cfg)
    was = _missing_store_is_error, _on_store_created
    _missing_store_is_error, _on_store_created = missing_store_is_error, on_store_created
    try:
        yield cfg
    finally:
        _missing_store_is_error, _on_store_created = was
        config_mod.set_process_config(previous)


#: progress bars on the terminal now: ``say`` prints above them instead of through them
_bars_shown = 0


def _on_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no stream, or a closed one
        return False


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool, unit: str = "B") -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal; yields the callback that advances it.

    Without a terminal (a pipe, a log file) there is no bar at all: its ``\\r`` frames would be
    mixed into the lines a script or a person reads there.
    """
    if not enabled or not _on_terminal(sys.stderr):
        yield lambda n: None
        return
    from tqdm import tqdm

    global _bars_shown
    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1024, leave=False, file=sys.stderr)
    lock = threading.Lock()
    with _lock:
        _bars_shown += 1

    def advance(n: int) -> None:
        with lock:
            try:
                bar.update(n)
            except (OSError, ValueError):  # the terminal went away: the work goes on without a bar
                pass

    try:
        yield advance
    finally:
        with _lock:
            _bars_shown -= 1
        try:
            bar.close()
        except (OSError, ValueError):
            pass


def say(line: str) -> None:
    """Print one ``verbose`` line on stderr; a line that cannot be written (a closed pipe) is dropped.

    What the SDK prints is commentary: failing to print it must never stop or change the
    operation it describes (``remove_files(verbose=True)`` piped into ``head``).
    """
    try:
        if _bars_shown:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # EPIPE, EIO of a gone terminal, a closed stream
        pass
