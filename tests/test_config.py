"""Settings: defaults < config file < environment < explicit arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from mountfs import config
from mountfs.errors import ConfigError


def test_precedence(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('store = "/from/file"\ncache_dir = "/cache/file"\ncache_size = "5G"\n'
                        '[s3.hosts."h:1"]\nkey = "k"\n')
    env = {"MOUNTFS_CONFIG": str(cfg_file)}
    c = config.load(env)
    assert (c.store, c.cache_dir, c.cache_size) == ("/from/file", "/cache/file", 5 << 30)
    assert c.s3_hosts == {"h:1": {"key": "k"}}
    env |= {"MOUNTFS_STORE": "/from/env", "MOUNTFS_CACHE_SIZE": "512M", "MOUNTFS_CACHE_DIR": "/cache/env"}
    c = config.load(env)
    assert (c.store, c.cache_dir, c.cache_size) == ("/from/env", "/cache/env", 512 << 20)
    c = config.load(env, store="/explicit", cache_size="1T", cache_dir=None)
    assert (c.store, c.cache_dir, c.cache_size) == ("/explicit", "/cache/env", 1 << 40)


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    c = config.load({"MOUNTFS_CONFIG": str(tmp_path / "missing.toml")})
    assert c.store.endswith("mountfs/store") and c.cache_dir.endswith("mountfs")
    assert c.cache_size == 20 << 30


@pytest.mark.parametrize("text,value", [("20G", 20 << 30), ("512MiB", 512 << 20), ("1.5k", 1536), ("100", 100)])
def test_sizes(text: str, value: int) -> None:
    assert config.parse_size(text) == value


def test_bad_size_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read size"):
        config.load({"MOUNTFS_CONFIG": str(tmp_path / "none.toml"), "MOUNTFS_CACHE_SIZE": "lots"})
    bad = tmp_path / "bad.toml"
    bad.write_text("store = [unclosed\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        config.load({"MOUNTFS_CONFIG": str(bad)})


def test_realtime_switch(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    assert config.load({"MOUNTFS_CONFIG": str(f)}).realtime is True
    f.write_text("realtime = false\n")
    assert config.load({"MOUNTFS_CONFIG": str(f)}).realtime is False
    f.write_text('[mountfs]\nrealtime = true\n')
    assert config.load({"MOUNTFS_CONFIG": str(f)}).realtime is True
    f.write_text('realtime = "no"\n')
    with pytest.raises(ConfigError, match="realtime .* must be true or false"):
        config.load({"MOUNTFS_CONFIG": str(f)})
