"""Settings, resolved once per process into a frozen, typed :class:`Config`.

One precedence rule holds for every setting; the first source that sets it wins:

1. an explicit override: a command-line flag (``--storage``), or a keyword of
   :func:`load` / ``Config.load(overrides=...)``;
2. mountfs's own environment variables (``MOUNTFS_*``, table ``ENVIRONMENT``);
3. the config file (``$MOUNTFS_CONFIG``, else ``~/.config/mountfs/config.toml``),
   where a ``[s3.hosts."host:port"]`` entry comes before the ``[s3]`` section;
4. the storage services' own standard variables (``AWS_*``, ``AZURE_STORAGE_*``,
   ``GOOGLE_APPLICATION_CREDENTIALS``, ``GOOGLE_CLOUD_PROJECT``,
   ``STORAGE_EMULATOR_HOST``; table ``SERVICE_ENVIRONMENT``).  They stand for
   each service's default chain, which a config file written for mountfs
   overrides (README: ``[s3]`` "otherwise the standard chain",
   ``[azure]`` "else AZURE_STORAGE_CONNECTION_STRING / _KEY / _SAS_TOKEN"):
   a machine's AWS keys must not go to the MinIO host the file configures;
5. the built-in default (for a backend's tuning knobs, the backend's own).

This is the only module that reads ``os.environ`` or the config file.
:func:`load` reads both each time it is called.  The SDK and the CLI use
:func:`process_config` instead: it resolves on first use and the process keeps
that ``Config``, so a config file edited (or a variable set) after the first
SDK call is not seen until :func:`set_process_config` replaces it (``None``:
resolve again on next use) or a new process starts.  The CLI builds its
``Config`` from its flags and makes it the process's for one command
(``session.use``).  Lower layers get typed values, never the raw sources:
:meth:`Config.s3_options`, :meth:`Config.gs_options`, :meth:`Config.azure_options`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping, TypeVar

import platformdirs

from .errors import ConfigError
from .units import human_size

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

#: mountfs's own variables: the ``Config`` field each one sets (rank 2 of the rule)
ENVIRONMENT: Mapping[str, str] = MappingProxyType({
    "store": "MOUNTFS_STORE",
    "cache_dir": "MOUNTFS_CACHE_DIR",
    "cache_size": "MOUNTFS_CACHE_SIZE",
    "mountpoint": "MOUNTFS_MOUNTPOINT",
    "run_dir": "MOUNTFS_RUN_DIR",
    "external_allow": "MOUNTFS_EXTERNAL_ALLOW",
    "run_record": "MOUNTFS_RUN_RECORD",
})
#: ``MOUNTFS_DATASET_<ALIAS>=<id or project/name/version>``: what ``Dataset.get(alias=..., overridable=True)``
#: uses instead (``Config.dataset_overrides``, keyed by ``<ALIAS>``)
DATASET_OVERRIDE_PREFIX = "MOUNTFS_DATASET_"
#: the run record ``Dataset.get(alias=...)`` writes when ``MOUNTFS_RUN_RECORD`` is unset (relative: the working folder)
DEFAULT_RUN_RECORD = os.path.join(".mountfs", "run.json")
#: the config file to read instead of ``~/.config/mountfs/config.toml``
CONFIG_FILE_VARIABLE = "MOUNTFS_CONFIG"
#: the storage services' standard variables (rank 4), kept in ``Config.environ`` for the ``*_options`` methods
SERVICE_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT",
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
    # not a service's, but read with [s3] data_plane (which it overrides) by s3_options
    "MOUNTFS_S3_DATA_PLANE",
)

_T = TypeVar("_T")
log = logging.getLogger(__name__)
#: how boto puts the bucket in a request: in the path, in the host name, or its own choice
AddressingStyle = Literal["auto", "virtual", "path"]


#: the largest size any setting takes (1 EiB): more than any disk holds, so a bigger one is a typo
MAX_SIZE = 1 << 60
#: the smallest chunk cache: one average chunk (``store.format.ChunkParams.avg_size``).  A smaller
#: cache cannot keep even one, so every read would go to the store again
MIN_CACHE_SIZE = 1 << 20


def parse_size(text: str | int, where: str = "") -> int:
    """Parse ``20G``, ``512MiB``, ``1.5T`` or a plain byte count (binary units), at most ``MAX_SIZE``.

    ``where`` names the setting for the message (``MOUNTFS_CACHE_SIZE``, ``cache_size in FILE``).
    """
    named = f"{where}: " if where else ""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise ConfigError(f"{named}a size must be a number of bytes or a string such as \"20G\", not {text!r}")
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE_RE.match(text)
        if not m:
            raise ConfigError(f"{named}cannot read size {text!r}: use a number with an optional unit, e.g. 20G or 512M")
        # exact arithmetic: a float turns 99999999999999999999999 into ...991611392
        whole, _, frac = m.group(1).partition(".")
        unit = _UNITS[m.group(2).lower()]
        value = int(whole) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
    if value < 0:
        raise ConfigError(f"{named}a size cannot be negative ({text!r})")
    if value > MAX_SIZE:
        raise ConfigError(f"{named}size {text!r} is more than {human_size(MAX_SIZE)}; "
                          "use a unit such as G or T for the size you mean")
    return value


def parse_cache_size(text: str | int, where: str = "") -> int:
    """A chunk cache's size (``parse_size``), at least ``MIN_CACHE_SIZE``."""
    value = parse_size(text, where)
    if value < MIN_CACHE_SIZE:
        named = f"{where}: " if where else ""
        raise ConfigError(f"{named}a chunk cache of {human_size(value)} is too small: give at least "
                          f"{human_size(MIN_CACHE_SIZE)} (one average chunk; a smaller cache keeps nothing and "
                          "every read goes to the store)")
    return value


def default_store() -> str:
    return str(Path(platformdirs.user_data_dir("mountfs")) / "store")


def default_cache_dir() -> str:
    return platformdirs.user_cache_dir("mountfs")


def default_run_dir(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if os.geteuid() == 0:
        return "/run/mountfs"
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "mountfs")
    return f"/tmp/mountfs-{os.getuid()}"


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir("mountfs")) / "config.toml"


# --- typed settings of each storage service ----------------------------------------------------


@dataclass(frozen=True)
class S3Options:
    """How to reach one S3 endpoint, every source applied (``Config.s3_options``).

    Tuning knobs left ``None`` take the backend's defaults.
    """

    #: ``http(s)://host:port`` of an S3-compatible server or a configured endpoint; None = AWS
    endpoint_url: str | None = None
    #: ``"path"`` (the bucket in the path) for any endpoint but AWS's; None lets boto choose
    addressing_style: AddressingStyle | None = None
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    region: str | None = None
    #: TLS verification: on, off, or a CA bundle path
    verify: bool | str = True
    max_pool_connections: int | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    multipart_threshold: int | None = None
    multipart_chunksize: int | None = None
    multipart_concurrency: int | None = None
    #: ``[s3] data_plane``: what ranged reads go through, ``"obstore"`` (the GIL released while
    #: bytes move) or ``"boto3"``; None = the backend's default
    data_plane: str | None = None


@dataclass(frozen=True)
class GsOptions:
    """How to reach Google Cloud Storage, every source applied (``Config.gs_options``)."""

    #: ``http://host:port`` of an emulator or another endpoint; None = Google's
    endpoint: str | None = None
    #: the endpoint came from ``STORAGE_EMULATOR_HOST``: anonymous credentials, a placeholder project
    emulator: bool = False
    #: path of a service-account (or other) key file; the path is no secret
    credentials_json: str | None = None
    project: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    chunk_size: int | None = None
    max_pool_connections: int | None = None


@dataclass(frozen=True)
class AzureOptions:
    """How to reach Azure Blob Storage, every source applied (``Config.azure_options``).

    The credentials all come from one source, the first that has any: a
    connection string (the backend reads it), else an account key, else a SAS token.
    """

    connection_string: str | None = field(default=None, repr=False)
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    #: where the credentials came from, for messages: ``"config [azure]"``, ``"the environment"`` or ""
    credentials_from: str = ""
    #: ``[azure] endpoint``; None = the connection string's, else ``https://<host of the URL>``
    endpoint: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    max_single_put_size: int | None = None
    max_block_size: int | None = None
    max_concurrency: int | None = None
    max_pool_connections: int | None = None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _text(value: Any) -> str | None:
    """A setting's value as text; unset and empty are both None."""
    return None if value in (None, "") else str(value)


def _tuning(section: Mapping[str, Any], name: str, kind: Callable[[Any], _T], where: str) -> _T | None:
    """``section[name]`` converted by ``kind`` (None when absent), a ConfigError naming it when unreadable."""
    if name not in section:
        return None
    try:
        return kind(section[name])
    except (TypeError, ValueError):
        raise ConfigError(f"{name} in {where} must be a number, not {section[name]!r}") from None


def _frozen(value: Any) -> Any:
    """A read-only copy of nested mappings, so a Config cannot change after it is built."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


# --- the configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Resolved settings for one process: immutable, hashable (sessions are keyed by it)."""

    store: str = field(default_factory=default_store)
    cache_dir: str = field(default_factory=default_cache_dir)
    cache_size: int = 20 << 30
    #: keep at least this much free on the cache's filesystem
    cache_min_free: int = 1 << 30
    #: ``[s3.hosts."host:port"]``: per-endpoint settings of ``s3://host:port/...`` URLs
    #: (``key``, ``secret``, ``secure``, ``verify``, ``region``, ``profile``)
    s3_hosts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the ``[s3]``, ``[gs]`` and ``[azure]`` sections as written; read them through ``*_options``
    s3: Mapping[str, Any] = field(default_factory=dict)
    gs: Mapping[str, Any] = field(default_factory=dict)
    azure: Mapping[str, Any] = field(default_factory=dict)
    mountpoint: str = "/datasets"
    #: where daemons keep their control sockets (owner-only) and logs
    run_dir: str = field(default_factory=lambda: default_run_dir())
    #: group allowed on a root daemon's control socket besides root ("" = root only)
    control_group: str = ""
    #: the daemon's FUSE thread runs SCHED_FIFO (the lowest realtime priority) where allowed
    realtime: bool = True
    #: ``Logger.report_table`` keeps this many first rows of a table (the row count is kept too)
    report_table_rows: int = 100
    #: ``Logger.report_image`` downscales an image with more pixels than this (aspect kept)
    report_image_max_pixels: int = 1 << 20
    #: ``[external] allow``: URL prefixes and local folders external files may be read from;
    #: None = the default (everything for a process acting for its own user only,
    #: object stores only for a mount serving other users)
    external_allow: tuple[str, ...] | None = None
    #: systemd's ``NOTIFY_SOCKET``: where a daemon started as a notify service reports readiness
    notify_socket: str = ""
    #: the run record file ``Dataset.get(alias=...)`` writes (``MOUNTFS_RUN_RECORD``); a relative
    #: path is taken in the working folder at the time of the call
    run_record: str = DEFAULT_RUN_RECORD
    #: ``MOUNTFS_DATASET_<ALIAS>`` variables: ``<ALIAS>`` (as written) -> the dataset it names
    dataset_overrides: Mapping[str, str] = field(default_factory=dict)
    #: the storage services' standard variables seen at load time (``SERVICE_ENVIRONMENT``);
    #: only the ``*_options`` methods read them, below the config file
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: settings whose value could not be used (field name -> the error, naming where it came from);
    #: the field keeps its default and ``require`` raises the error, so only what needs it fails
    unusable: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("s3_hosts", "s3", "gs", "azure", "environ", "unusable", "dataset_overrides"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.external_allow is not None:
            object.__setattr__(self, "external_allow", tuple(self.external_allow))

    def __hash__(self) -> int:
        # every SDK call looks its session up by the process's Config: hash it once
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(_hashable(getattr(self, f.name)) for f in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "Config":
        """Resolve the environment (``os.environ`` unless ``environ``) and the config file,
        then apply ``overrides`` (field name -> value; ``None`` values mean "not given")."""
        return load(environ, **dict(overrides or {}))

    def with_overrides(self, **kwargs: Any) -> "Config":
        """Return a copy with explicit arguments applied (``None`` means 'not given')."""
        given = {k: v for k, v in kwargs.items() if v is not None}
        if "cache_size" in given:
            given["cache_size"] = parse_cache_size(given["cache_size"], "cache_size")
        if "cache_min_free" in given:
            given["cache_min_free"] = parse_size(given["cache_min_free"], "cache_min_free")
        if self.unusable.keys() & given.keys():  # an explicit value replaces the unusable one
            given.setdefault("unusable", {k: v for k, v in self.unusable.items() if k not in given})
        return replace(self, **given)

    def require(self, *names: str) -> None:
        """Raise the ``ConfigError`` of the first of ``names`` whose configured value was unusable.

        Called by what uses the setting (the chunk cache for ``cache_size``), so
        a bad value breaks only the commands that need it.
        """
        for name in names:
            if name in self.unusable:
                raise ConfigError(self.unusable[name])

    # --- typed settings for the backends (pure: the sources were read at load time) ------------

    def s3_options(self, host: str = "") -> S3Options:
        """Settings for S3 at ``host`` (``"host:port"`` of an ``s3://host:port/...`` URL; "" = AWS).

        Credentials, profile, region and TLS verification: the host's
        ``[s3.hosts]`` entry, then ``[s3]``, then the standard AWS variables
        (a session token only with the key it belongs to, the environment's).
        """
        entry: Mapping[str, Any] = self.s3_hosts.get(host, {}) if host else {}
        general, env = self.s3, self.environ

        def pick(name: str, *variables: str) -> Any:
            for source in (entry, general):
                if source.get(name) not in (None, ""):
                    return source[name]
            return next((env[v] for v in variables if env.get(v)), None)

        key, secret = _text(pick("key", "AWS_ACCESS_KEY_ID")), _text(pick("secret", "AWS_SECRET_ACCESS_KEY"))
        token = _text(env.get("AWS_SESSION_TOKEN")) if key and key == env.get("AWS_ACCESS_KEY_ID") else None
        region = _text(pick("region", "AWS_REGION", "AWS_DEFAULT_REGION"))
        verify: Any = pick("verify", "AWS_CA_BUNDLE")
        # a CA bundle path, or a boolean (possibly spelled as a string in the environment or TOML)
        if isinstance(verify, str) and verify.strip().lower() in ("0", "false", "no", "off", "1", "true", "yes", "on"):
            verify = _truthy(verify)
        endpoint_url: str | None
        if host:
            secure = entry.get("secure", general.get("secure", False))
            endpoint_url = f"{'https' if _truthy(secure) else 'http'}://{host}"
            # S3-compatible servers need a region to sign with but ignore which
            region = region or "us-east-1"
        else:
            ignore = _truthy(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", ""))
            endpoint_url = _text(general.get("endpoint_url")) or (
                None if ignore else _text(env.get("AWS_ENDPOINT_URL_S3")) or _text(env.get("AWS_ENDPOINT_URL")))
        return S3Options(
            endpoint_url=endpoint_url,
            addressing_style="path" if endpoint_url else None,
            key=key, secret=secret, session_token=token,
            profile=_text(pick("profile", "AWS_PROFILE")), region=region,
            verify=True if verify is None else verify if isinstance(verify, (bool, str)) else _truthy(verify),
            max_pool_connections=_tuning(general, "max_pool_connections", int, "[s3]"),
            connect_timeout=_tuning(general, "connect_timeout", float, "[s3]"),
            read_timeout=_tuning(general, "read_timeout", float, "[s3]"),
            multipart_threshold=_tuning(general, "multipart_threshold", parse_size, "[s3]"),
            multipart_chunksize=_tuning(general, "multipart_chunksize", parse_size, "[s3]"),
            multipart_concurrency=_tuning(general, "multipart_concurrency", int, "[s3]"),
            data_plane=_data_plane(general, env),
        )

    def gs_options(self) -> GsOptions:
        """Settings for Google Cloud Storage: ``[gs]``, then the standard Google variables.

        The endpoint is ``[gs] endpoint``, else ``STORAGE_EMULATOR_HOST`` (an
        emulator: anonymous credentials), else Google's.
        """
        section, env = self.gs, self.environ
        endpoint, emulator = _text(section.get("endpoint")), False
        if endpoint:
            endpoint = endpoint.rstrip("/")
        elif env.get("STORAGE_EMULATOR_HOST", "").strip():
            host = env["STORAGE_EMULATOR_HOST"].strip()
            endpoint, emulator = (host if "://" in host else f"http://{host}"), True
        return GsOptions(
            endpoint=endpoint, emulator=emulator,
            credentials_json=_text(section.get("credentials_json")) or _text(env.get("GOOGLE_APPLICATION_CREDENTIALS")),
            project=(_text(section.get("project")) or _text(env.get("GOOGLE_CLOUD_PROJECT"))
                     or _text(env.get("GCLOUD_PROJECT"))),
            connect_timeout=_tuning(section, "connect_timeout", float, "[gs]"),
            read_timeout=_tuning(section, "read_timeout", float, "[gs]"),
            chunk_size=_tuning(section, "chunk_size", parse_size, "[gs]"),
            max_pool_connections=_tuning(section, "max_pool_connections", int, "[gs]"),
        )

    def azure_options(self) -> AzureOptions:
        """Settings for Azure: credentials from ``[azure]``, else the standard Azure variables."""
        section, env = self.azure, self.environ
        credentials: dict[str, Any] = {}
        for where, conn, key, sas in (
                ("config [azure]", section.get("connection_string"), section.get("account_key"),
                 section.get("sas_token")),
                ("the environment", env.get("AZURE_STORAGE_CONNECTION_STRING"), env.get("AZURE_STORAGE_KEY"),
                 env.get("AZURE_STORAGE_SAS_TOKEN"))):
            if conn:
                credentials = {"connection_string": str(conn), "credentials_from": where}
                break
            if key or sas:
                # a key and a token from one source: the key signs, the token is unused
                credentials = {"account_key": _text(key), "sas_token": None if key else _text(sas),
                               "credentials_from": where}
                break
        return AzureOptions(
            **credentials,
            endpoint=_text(section.get("endpoint")),
            connect_timeout=_tuning(section, "connect_timeout", float, "[azure]"),
            read_timeout=_tuning(section, "read_timeout", float, "[azure]"),
            max_single_put_size=_tuning(section, "max_single_put_size", parse_size, "[azure]"),
            max_block_size=_tuning(section, "max_block_size", parse_size, "[azure]"),
            max_concurrency=_tuning(section, "max_concurrency", int, "[azure]"),
            max_pool_connections=_tuning(section, "max_pool_connections", int, "[azure]"),
        )

    def __repr__(self) -> str:
        # a Config lands in tracebacks and debug logs: the store sections hold
        # keys, secrets and tokens, so only their setting names are shown
        parts = []
        for f in fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name in _SECRET_SECTIONS:
                value = _redacted(value)
            parts.append(f"{f.name}={value!r}")
        return f"Config({', '.join(parts)})"


#: sections whose values may be credentials (``[s3]``, ``[s3.hosts.*]``, ``[gs]``, ``[azure]``)
_SECRET_SECTIONS = frozenset({"s3_hosts", "s3", "gs", "azure"})


def _redacted(value: Any) -> Any:
    """A mapping with every leaf value replaced by ``"***"``, keys kept."""
    if isinstance(value, Mapping):
        return {k: _redacted(v) for k, v in value.items()}
    return "***"


#: what an ``external.allow`` prefix may name (the schemes external files can have)
_EXTERNAL_SCHEMES = ("file", "s3", "gs", "azure", "http", "https")


def _external_allow(value: Any, where: str) -> tuple[str, ...]:
    """``external.allow`` entries: absolute folders or ``scheme://`` URL prefixes."""
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of URL prefixes and folders, "
                          "e.g. [\"s3://bucket/\", \"/mnt/data/\"]")
    for item in value:
        scheme, sep, _ = item.partition("://") if isinstance(item, str) else ("", "", "")
        if not isinstance(item, str) or not (item.startswith("/") or sep and scheme.lower() in _EXTERNAL_SCHEMES):
            raise ConfigError(f"{where}: {item!r} is neither an absolute folder nor a URL prefix "
                              f"({', '.join(s + '://' for s in _EXTERNAL_SCHEMES)})")
    return tuple(value)


def _read_file(path: Path, named: bool) -> dict[str, Any]:
    """The config file's settings; ``named``: ``MOUNTFS_CONFIG`` names it, so it must exist."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        if named:
            raise ConfigError(f"config file {path} (named by {CONFIG_FILE_VARIABLE}) does not exist; "
                              f"create it, or unset {CONFIG_FILE_VARIABLE} to use {default_config_file()}") from None
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: it is not UTF-8 text (byte {exc.start}); "
                          "save it as UTF-8 TOML") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}; fix or remove it") from None


def _table(data: Mapping[str, Any], name: str, path: Path, shown: str = "") -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        shown = shown or name
        raise ConfigError(f"{shown} in {path} must be a table ([{shown}] with its settings below it), "
                          f"not {type(value).__name__} {value!r}")
    return dict(value)


#: the settings each part of the config file takes (a key not listed is warned about: a typo must show)
_MOUNTFS_KEYS = frozenset({"store", "cache_dir", "cache_size", "cache_min_free", "mountpoint", "run_dir",
                           "control_group", "realtime", "report_table_rows", "report_image_max_pixels"})
_S3_HOST_KEYS = frozenset({"key", "secret", "secure", "verify", "region", "profile"})
_S3_KEYS = _S3_HOST_KEYS | {"endpoint_url", "hosts", "max_pool_connections", "connect_timeout", "read_timeout",
                            "multipart_threshold", "multipart_chunksize", "multipart_concurrency", "data_plane"}
_GS_KEYS = frozenset({"endpoint", "credentials_json", "project", "connect_timeout", "read_timeout", "chunk_size",
                      "max_pool_connections"})
_AZURE_KEYS = frozenset({"connection_string", "account_key", "sas_token", "endpoint", "connect_timeout",
                         "read_timeout", "max_single_put_size", "max_block_size", "max_concurrency",
                         "max_pool_connections"})
_TOP_KEYS = _MOUNTFS_KEYS | {"mountfs", "s3", "gs", "azure", "external"}


_DATA_PLANES = ("obstore", "boto3")


def _data_plane(section: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """``MOUNTFS_S3_DATA_PLANE``, else ``[s3] data_plane`` (switchable per run for measurements)."""
    value = env.get("MOUNTFS_S3_DATA_PLANE") or section.get("data_plane")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or value.strip().lower() not in _DATA_PLANES:
        raise ConfigError(f"[s3] data_plane must be one of {', '.join(_DATA_PLANES)}, not {value!r}")
    return value.strip().lower()


def _unknown(table: Mapping[str, Any], known: frozenset[str], where: str) -> list[str]:
    return [f"{where}{key}" for key in sorted(set(table) - known)]


def _warn_unknown(data: Mapping[str, Any], path: Path) -> None:
    """One warning naming every key of the file that no setting reads."""
    found = _unknown(data, _TOP_KEYS, "")
    for name, known in (("mountfs", _MOUNTFS_KEYS), ("s3", _S3_KEYS), ("gs", _GS_KEYS), ("azure", _AZURE_KEYS),
                        ("external", frozenset({"allow"}))):
        if isinstance(data.get(name), dict):
            found += _unknown(data[name], known, f"{name}.")
    hosts = data.get("s3", {}).get("hosts") if isinstance(data.get("s3"), dict) else None
    if isinstance(hosts, dict):
        for host, entry in hosts.items():
            if isinstance(entry, dict):
                found += _unknown(entry, _S3_HOST_KEYS, f"s3.hosts.\"{host}\".")
    if found:
        log.warning("config file %s: unknown setting%s %s ignored (a typo?)",
                    path, "s" if len(found) > 1 else "", ", ".join(found))


def _text_setting(section: Mapping[str, Any], key: str, path: Path) -> str:
    value = section[key]
    if not isinstance(value, str):
        raise ConfigError(f"{key} in {path} must be a string (in quotes), not {type(value).__name__} {value!r}")
    return value


def _s3_hosts(s3: dict[str, Any], path: Path) -> dict[str, Any]:
    hosts = _table(s3, "hosts", path, "s3.hosts")
    for host, entry in hosts.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"s3.hosts.\"{host}\" in {path} must be a table ([s3.hosts.\"{host}\"] with key, "
                              f"secret, ... below it), not {type(entry).__name__} {entry!r}")
    return hosts


def load(environ: Mapping[str, str] | None = None, **explicit: Any) -> Config:
    """Build the effective configuration from ``environ`` (default ``os.environ``) and the config file.

    ``explicit`` keyword arguments (``store=``, ``cache_dir=``, ``cache_size=``
    ...) win over everything; ``None`` values are ignored.  Reads the file on
    every call: code that wants the process's configuration calls ``process_config()``.
    """
    env = os.environ if environ is None else environ
    named = bool(env.get(CONFIG_FILE_VARIABLE))
    path = Path(env[CONFIG_FILE_VARIABLE]) if named else default_config_file()
    data = _read_file(path, named)
    _warn_unknown(data, path)
    # rank 3: the file; its [mountfs] table, or the same keys at the top so a tiny config can be flat
    section = _table(data, "mountfs", path)
    for key in _MOUNTFS_KEYS:
        if key in data and key not in section:
            section[key] = data[key]
    kwargs: dict[str, Any] = {}
    unusable: dict[str, str] = {}
    for key in ("store", "cache_dir", "mountpoint", "run_dir", "control_group"):
        if key in section:
            kwargs[key] = _text_setting(section, key, path)
    for key, parse in (("cache_size", parse_cache_size), ("cache_min_free", parse_size)):
        if key in section:
            try:
                kwargs[key] = parse(section[key], f"{key} in {path}")
            except ConfigError as exc:
                unusable[key] = str(exc)
    for key in ("report_table_rows", "report_image_max_pixels"):
        if key in section:
            value = section[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1 << 31:
                raise ConfigError(f"{key} in {path} must be a whole number from 1 to {1 << 31}, not {value!r}")
            kwargs[key] = value
    if "realtime" in section:
        if not isinstance(section["realtime"], bool):
            raise ConfigError(f"realtime in {path} must be true or false, not {section['realtime']!r}")
        kwargs["realtime"] = section["realtime"]
    s3 = _table(data, "s3", path)
    kwargs["s3_hosts"] = _s3_hosts(s3, path)
    s3.pop("hosts", None)
    kwargs["s3"] = s3
    kwargs["gs"] = _table(data, "gs", path)
    kwargs["azure"] = _table(data, "azure", path)
    external = data.get("external", {})
    if not isinstance(external, dict):
        raise ConfigError(f"external in {path} must be a table: [external] with allow = [...]")
    if "allow" in external:
        kwargs["external_allow"] = _external_allow(external["allow"], f"external.allow in {path}")

    # rank 2: mountfs's variables
    for name, variable in ENVIRONMENT.items():
        value = env.get(variable, "")
        if not value.strip():
            continue
        if name == "cache_size":
            try:
                kwargs[name] = parse_cache_size(value, variable)
                unusable.pop(name, None)
            except ConfigError as exc:
                # kept for what uses the cache (Config.require): `search` needs none
                kwargs.pop(name, None)
                unusable[name] = str(exc)
        elif name == "external_allow":
            kwargs[name] = _external_allow(value.replace(",", " ").split(), variable)
        else:
            kwargs[name] = value
    if "run_dir" not in kwargs:
        kwargs["run_dir"] = default_run_dir(env)
    kwargs["notify_socket"] = env.get("NOTIFY_SOCKET", "")
    kwargs["dataset_overrides"] = {name[len(DATASET_OVERRIDE_PREFIX):]: value.strip() for name, value in env.items()
                                   if name.startswith(DATASET_OVERRIDE_PREFIX) and len(name) > len(DATASET_OVERRIDE_PREFIX)
                                   and value.strip()}
    # rank 4 is applied by the *_options methods, from this snapshot
    kwargs["environ"] = {name: env[name] for name in SERVICE_ENVIRONMENT if name in env}
    kwargs["unusable"] = unusable
    # rank 1: explicit overrides
    return Config(**kwargs).with_overrides(**explicit)


# --- the process's configuration -------------------------------------------------------------

_process: Config | None = None
_process_lock = threading.Lock()


def process_config() -> Config:
    """The configuration of this process: resolved by ``load()`` on first use, then kept.

    Edits to the config file or the environment after that are not seen (the
    SDK does not re-read the file on every call); ``set_process_config`` replaces it.
    """
    global _process
    with _process_lock:
        if _process is None:
            _process = load()
        return _process


def set_process_config(cfg: Config | None) -> Config | None:
    """Make ``cfg`` the process's configuration (``None``: resolve again on next use); return the previous one."""
    global _process
    with _process_lock:
        previous, _process = _process, cfg
        return previous
