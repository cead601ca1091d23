"""Settings: defaults < config file < environment < explicit arguments.

This is the only module that reads ``os.environ`` for mountfs settings.  The
public environment names are ``MOUNTFS_STORE``, ``MOUNTFS_CACHE_DIR``,
``MOUNTFS_CACHE_SIZE``, ``MOUNTFS_EXTERNAL_ALLOW`` and ``MOUNTFS_CONFIG`` (the
config file to read instead of ``~/.config/mountfs/config.toml``).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import platformdirs

from .errors import ConfigError

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str | int) -> int:
    """Parse ``20G``, ``512MiB``, ``1.5T`` or a plain byte count (binary units)."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ConfigError(f"cannot read size {text!r}: use a number with an optional unit, e.g. 20G or 512M")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


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


@dataclass(frozen=True)
class Config:
    """Resolved settings for one process."""

    store: str = field(default_factory=default_store)
    cache_dir: str = field(default_factory=default_cache_dir)
    cache_size: int = 20 << 30
    #: keep at least this much free on the cache's filesystem
    cache_min_free: int = 1 << 30
    #: per-host settings for ``s3://host:port/...`` endpoints and S3 in general:
    #: ``{"host:port": {"key": ..., "secret": ..., "secure": bool, "verify": bool, "region": ...}}``
    s3_hosts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
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
    #: ``[external] allow``: URL prefixes and local folders external files may be read from;
    #: None = the default (everything for a process acting for its own user only,
    #: object stores only for a mount serving other users)
    external_allow: tuple[str, ...] | None = None
    #: environment seen at load time, so lower layers never read os.environ
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    def with_overrides(self, **kwargs: Any) -> "Config":
        """Return a copy with explicit arguments applied (``None`` means 'not given')."""
        given = {k: v for k, v in kwargs.items() if v is not None}
        if "cache_size" in given:
            given["cache_size"] = parse_size(given["cache_size"])
        return replace(self, **given)

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


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}; fix or remove it") from None


def load(environ: Mapping[str, str] | None = None, **explicit: Any) -> Config:
    """Build the effective configuration.

    ``explicit`` keyword arguments (``store=``, ``cache_dir=``, ``cache_size=``
    ...) win over everything; ``None`` values are ignored.
    """
    env = dict(os.environ if environ is None else environ)
    path = Path(env["MOUNTFS_CONFIG"]) if env.get("MOUNTFS_CONFIG") else default_config_file()
    data = _read_file(path)
    section = dict(data.get("mountfs", {}))
    # top-level keys are accepted too, so a tiny config can be flat
    for key in ("store", "cache_dir", "cache_size", "cache_min_free", "mountpoint", "run_dir", "control_group",
                "realtime"):
        if key in data and key not in section:
            section[key] = data[key]
    kwargs: dict[str, Any] = {}
    for key in ("store", "cache_dir", "mountpoint", "run_dir", "control_group"):
        if key in section:
            kwargs[key] = str(section[key])
    for key in ("cache_size", "cache_min_free"):
        if key in section:
            kwargs[key] = parse_size(section[key])
    if "realtime" in section:
        if not isinstance(section["realtime"], bool):
            raise ConfigError(f"realtime in {path} must be true or false, not {section['realtime']!r}")
        kwargs["realtime"] = section["realtime"]
    s3 = dict(data.get("s3", {}))
    kwargs["s3_hosts"] = dict(s3.pop("hosts", {}))
    kwargs["s3"] = s3
    kwargs["gs"] = dict(data.get("gs", {}))
    kwargs["azure"] = dict(data.get("azure", {}))
    external = data.get("external", {})
    if not isinstance(external, dict):
        raise ConfigError(f"external in {path} must be a table: [external] with allow = [...]")
    if "allow" in external:
        kwargs["external_allow"] = _external_allow(external["allow"], f"external.allow in {path}")
    if env.get("MOUNTFS_EXTERNAL_ALLOW", "").strip():
        kwargs["external_allow"] = _external_allow(env["MOUNTFS_EXTERNAL_ALLOW"].replace(",", " ").split(),
                                                   "MOUNTFS_EXTERNAL_ALLOW")

    if env.get("MOUNTFS_STORE"):
        kwargs["store"] = env["MOUNTFS_STORE"]
    if env.get("MOUNTFS_CACHE_DIR"):
        kwargs["cache_dir"] = env["MOUNTFS_CACHE_DIR"]
    if env.get("MOUNTFS_CACHE_SIZE"):
        kwargs["cache_size"] = parse_size(env["MOUNTFS_CACHE_SIZE"])
    if env.get("MOUNTFS_MOUNTPOINT"):
        kwargs["mountpoint"] = env["MOUNTFS_MOUNTPOINT"]
    if env.get("MOUNTFS_RUN_DIR"):
        kwargs["run_dir"] = env["MOUNTFS_RUN_DIR"]
    elif "run_dir" not in kwargs:
        kwargs["run_dir"] = default_run_dir(env)
    kwargs["environ"] = env
    return Config(**kwargs).with_overrides(**explicit)
