"""Settings: one precedence rule (override > MOUNTFS_* > file > the services' variables > default),
resolved once per process, read by config.py alone."""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

import pytest

from mountfs import config, session
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
    c = config.load({"MOUNTFS_CONFIG": os.devnull})
    assert c.store.endswith("mountfs/store") and c.cache_dir.endswith("mountfs")
    assert c.cache_size == 20 << 30


@pytest.mark.parametrize("text,value", [("20G", 20 << 30), ("512MiB", 512 << 20), ("1.5k", 1536), ("100", 100)])
def test_sizes(text: str, value: int) -> None:
    assert config.parse_size(text) == value


def test_bad_size_and_bad_file(tmp_path: Path) -> None:
    # kept for what uses the cache (Config.require), so a command that needs none still works
    cfg = config.load({"MOUNTFS_CONFIG": os.devnull, "MOUNTFS_CACHE_SIZE": "lots"})
    with pytest.raises(ConfigError, match="MOUNTFS_CACHE_SIZE: cannot read size 'lots'"):
        cfg.require("cache_size")
    bad = tmp_path / "bad.toml"
    bad.write_text("store = [unclosed\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        config.load({"MOUNTFS_CONFIG": str(bad)})


def test_realtime_switch(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("")
    assert config.load({"MOUNTFS_CONFIG": str(f)}).realtime is True
    f.write_text("realtime = false\n")
    assert config.load({"MOUNTFS_CONFIG": str(f)}).realtime is False
    f.write_text('[mountfs]\nrealtime = true\n')
    assert config.load({"MOUNTFS_CONFIG": str(f)}).realtime is True
    f.write_text('realtime = "no"\n')
    with pytest.raises(ConfigError, match="realtime .* must be true or false"):
        config.load({"MOUNTFS_CONFIG": str(f)})


# --- one precedence rule: override > MOUNTFS_* > file > the services' variables > default ------


def _file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "rule.toml"
    path.write_text(text)
    return {"MOUNTFS_CONFIG": str(path)}


def test_one_rule_for_the_mountfs_settings(tmp_path: Path) -> None:
    values = {  # field: (file text, environment value, override, what each gives)
        "store": ('"/file"', "/env", "/flag", ("/file", "/env", "/flag")),
        "cache_dir": ('"/file"', "/env", "/flag", ("/file", "/env", "/flag")),
        "cache_size": ('"5G"', "512M", "1T", (5 << 30, 512 << 20, 1 << 40)),
        "mountpoint": ('"/file"', "/env", "/flag", ("/file", "/env", "/flag")),
        "run_dir": ('"/file"', "/env", "/flag", ("/file", "/env", "/flag")),
    }
    missing = {"MOUNTFS_CONFIG": os.devnull, "XDG_RUNTIME_DIR": "/xdg"}
    defaults = config.load(missing)
    assert defaults.mountpoint == "/datasets" and defaults.cache_size == 20 << 30
    if os.geteuid() != 0:
        assert defaults.run_dir == "/xdg/mountfs"
    for name, (in_file, in_env, flag, (from_file, from_env, from_flag)) in values.items():
        env = _file(tmp_path, f"{name} = {in_file}\n")
        assert getattr(config.load(env), name) == from_file, name
        env[config.ENVIRONMENT[name]] = in_env
        assert getattr(config.load(env), name) == from_env, name
        assert getattr(config.Config.load(overrides={name: flag}, environ=env), name) == from_flag, name
        # None means "not given": the environment's value stays
        assert getattr(config.Config.load(overrides={name: None}, environ=env), name) == from_env, name
    env = _file(tmp_path, '[external]\nallow = ["s3://file/"]\n')
    assert config.load(env).external_allow == ("s3://file/",)
    env["MOUNTFS_EXTERNAL_ALLOW"] = "s3://env/, /data"
    assert config.load(env).external_allow == ("s3://env/", "/data")
    assert config.load(env, external_allow=("gs://flag/",)).external_allow == ("gs://flag/",)


S3_FILE = '''
[s3]
key = "general-key"
secret = "general-secret"
region = "eu-west-1"
[s3.hosts."minio:9000"]
key = "host-key"
secret = "host-secret"
secure = true
verify = "/etc/ca.pem"
'''
AWS_ENV = {"AWS_ACCESS_KEY_ID": "env-key", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token",
           "AWS_REGION": "us-west-2", "AWS_PROFILE": "env-profile", "AWS_CA_BUNDLE": "false"}


def test_s3_settings_follow_the_rule(tmp_path: Path) -> None:
    from mountfs.backends.s3 import _settings_from_config

    # default: nothing set, AWS (boto's own chain finds credentials), TLS verified
    bare = config.load({"MOUNTFS_CONFIG": os.devnull}).s3_options()
    assert (bare.key, bare.secret, bare.region, bare.endpoint_url, bare.addressing_style, bare.verify) == (
        None, None, None, None, None, True)
    # the services' variables, below the file
    env_only = config.load({"MOUNTFS_CONFIG": os.devnull, **AWS_ENV}).s3_options()
    assert (env_only.key, env_only.secret, env_only.session_token, env_only.region, env_only.profile,
            env_only.verify) == ("env-key", "env-secret", "env-token", "us-west-2", "env-profile", False)
    # the file beats them: [s3] for AWS, the host's entry before [s3] for s3://host:port
    cfg = config.load({**_file(tmp_path, S3_FILE), **AWS_ENV})
    aws = cfg.s3_options()
    assert (aws.key, aws.secret, aws.region, aws.profile) == ("general-key", "general-secret", "eu-west-1",
                                                              "env-profile")
    assert aws.session_token is None, "a token belongs to the environment's key only"
    host = cfg.s3_options("minio:9000")
    assert (host.key, host.secret, host.region, host.verify) == ("host-key", "host-secret", "eu-west-1",
                                                                  "/etc/ca.pem")
    assert (host.endpoint_url, host.addressing_style) == ("https://minio:9000", "path")
    other = cfg.s3_options("other:9000")  # no entry of its own: [s3], plain http, a region to sign with
    assert (other.key, other.endpoint_url) == ("general-key", "http://other:9000")
    assert config.load(_file(tmp_path, '[s3.hosts."h:1"]\nkey = "k"\n')).s3_options("h:1").region == "us-east-1"
    # an override replaces the file's section
    flagged = config.Config.load(overrides={"s3": {"key": "flag-key", "secret": "flag-secret"}},
                                 environ={**_file(tmp_path, S3_FILE), **AWS_ENV})
    assert flagged.s3_options().key == "flag-key"
    # the backend receives exactly these typed values
    settings = _settings_from_config("s3://minio:9000/bucket/pre", cfg)
    assert (settings.bucket, settings.prefix, settings.key, settings.endpoint_url, settings.addressing_style,
            settings.verify) == ("bucket", "pre", "host-key", "https://minio:9000", "path", "/etc/ca.pem")


def test_s3_endpoint_of_aws_urls(tmp_path: Path) -> None:
    none = os.devnull
    env = {"MOUNTFS_CONFIG": none, "AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3:1"}
    assert config.load(env).s3_options().endpoint_url == "http://s3:1"
    assert config.load({**env, "AWS_ENDPOINT_URL_S3": ""}).s3_options().endpoint_url == "http://generic:1"
    assert config.load({**env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}).s3_options().endpoint_url is None
    filed = config.load({**env, **_file(tmp_path, '[s3]\nendpoint_url = "http://file:1"\n')}).s3_options()
    assert (filed.endpoint_url, filed.addressing_style) == ("http://file:1", "path")


def test_tuning_values_are_typed_and_checked(tmp_path: Path) -> None:
    from mountfs.backends.s3 import _settings_from_config

    cfg = config.load(_file(tmp_path, '[s3]\nmultipart_threshold = "8M"\nconnect_timeout = 2\n'))
    opts = cfg.s3_options()
    assert (opts.multipart_threshold, opts.connect_timeout, opts.read_timeout) == (8 << 20, 2.0, None)
    settings = _settings_from_config("s3://b", cfg)
    assert settings.multipart_threshold == 8 << 20 and settings.read_timeout > 0  # the backend's default
    bad = config.load(_file(tmp_path, '[azure]\nmax_concurrency = "many"\n'))
    with pytest.raises(ConfigError, match=r"max_concurrency in \[azure\] must be a number"):
        bad.azure_options()


def test_gs_settings_follow_the_rule(tmp_path: Path) -> None:
    none = os.devnull
    assert config.load({"MOUNTFS_CONFIG": none}).gs_options() == config.GsOptions()
    env = {"MOUNTFS_CONFIG": none, "STORAGE_EMULATOR_HOST": "127.0.0.1:9023",
           "GOOGLE_APPLICATION_CREDENTIALS": "/env.json", "GOOGLE_CLOUD_PROJECT": "env-project",
           "GCLOUD_PROJECT": "older-project"}
    from_env = config.load(env).gs_options()
    assert (from_env.endpoint, from_env.emulator, from_env.credentials_json, from_env.project) == (
        "http://127.0.0.1:9023", True, "/env.json", "env-project")
    assert config.load({**env, "GOOGLE_CLOUD_PROJECT": ""}).gs_options().project == "older-project"
    filed = config.load({**env, **_file(tmp_path, '[gs]\nendpoint = "https://gcs.lan/"\n'
                                               'credentials_json = "/file.json"\nproject = "file-project"\n')})
    opts = filed.gs_options()
    assert (opts.endpoint, opts.emulator, opts.credentials_json, opts.project) == (
        "https://gcs.lan", False, "/file.json", "file-project")
    flagged = config.Config.load(overrides={"gs": {"project": "flag-project"}}, environ=env)
    assert flagged.gs_options().project == "flag-project"


def test_azure_settings_follow_the_rule(tmp_path: Path) -> None:
    from mountfs.backends.azure import _settings_from_config

    none = os.devnull
    assert config.load({"MOUNTFS_CONFIG": none}).azure_options() == config.AzureOptions()
    env = {"MOUNTFS_CONFIG": none, "AZURE_STORAGE_KEY": "env-key", "AZURE_STORAGE_SAS_TOKEN": "env-sas"}
    from_env = config.load(env).azure_options()
    assert (from_env.account_key, from_env.sas_token, from_env.credentials_from) == ("env-key", None,
                                                                                     "the environment")
    # the file's credentials win as a whole: its SAS token, not the environment's key
    filed = config.load({**env, **_file(tmp_path, '[azure]\nsas_token = "file-sas"\n'
                                               'endpoint = "http://127.0.0.1:10000/acct"\n')})
    opts = filed.azure_options()
    assert (opts.account_key, opts.sas_token, opts.credentials_from, opts.endpoint) == (
        None, "file-sas", "config [azure]", "http://127.0.0.1:10000/acct")
    conn = "AccountName=acct;AccountKey=conn-key;BlobEndpoint=http://azurite:10000/acct"
    from_conn = config.load({**env, "AZURE_STORAGE_CONNECTION_STRING": conn}).azure_options()
    assert from_conn.connection_string == conn and from_conn.account_key is None
    settings = _settings_from_config("azure://acct.blob.core.windows.net/c/p",
                                     config.load({**env, "AZURE_STORAGE_CONNECTION_STRING": conn}))
    assert (settings.account_key, settings.endpoint) == ("conn-key", "http://azurite:10000/acct")
    flagged = config.Config.load(overrides={"azure": {"account_key": "flag-key"}}, environ=env)
    assert flagged.azure_options().account_key == "flag-key"


def test_typed_options_keep_secrets_out_of_their_repr(tmp_path: Path) -> None:
    cfg = config.load({**_file(tmp_path, S3_FILE), **AWS_ENV,
                       "AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=az-SECRET"})
    texts = [repr(cfg), repr(cfg.s3_options()), repr(cfg.s3_options("minio:9000")), repr(cfg.azure_options())]
    for secret in ("general-secret", "host-secret", "env-secret", "env-token", "az-SECRET"):
        assert not [t for t in texts if secret in t], secret


def test_a_config_is_frozen_and_hashable(tmp_path: Path) -> None:
    cfg = config.load(_file(tmp_path, S3_FILE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.store = "/elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.s3_hosts["minio:9000"]["key"] = "changed"  # type: ignore[index]
    assert cfg == config.load(_file(tmp_path, S3_FILE)) and hash(cfg) == hash(config.load(_file(tmp_path, S3_FILE)))
    assert cfg != dataclasses.replace(cfg, run_dir="/other")


# --- resolved once per process -------------------------------------------------------------------


def test_the_sdk_reads_the_config_file_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mountfs import Dataset
    from mountfs.errors import NotFound

    cfg_file = Path(os.environ["MOUNTFS_CONFIG"])  # the file tests/conftest.py names
    monkeypatch.delenv("MOUNTFS_STORE")
    cfg_file.write_text(f'store = "{tmp_path / "first"}"\n')
    ds = Dataset.create(dataset_name="once", dataset_project="p")
    # the file changes, then breaks: the process keeps the configuration it resolved
    cfg_file.write_text(f'store = "{tmp_path / "second"}"\n')
    assert Dataset.get(dataset_id=ds.id).id == ds.id
    cfg_file.write_text("store = [unclosed\n")
    assert session.current().config.store == str(tmp_path / "first")
    assert Dataset.get(dataset_id=ds.id).id == ds.id
    # a new resolution (what a new process does) sees the file as it is now
    cfg_file.write_text(f'store = "{tmp_path / "second"}"\n')
    config.set_process_config(None)
    with pytest.raises(NotFound):
        Dataset.get(dataset_id=ds.id)



# --- only config.py reads the environment or the config file -------------------------------------

_PKG = Path(__file__).resolve().parent.parent / "mountfs"
_FORBIDDEN_ATTRS = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _environment_reads(path: Path) -> list[str]:
    """Every ``x.environ``, ``getenv``, ``tomllib`` or ``from os import environ`` in ``path``'s code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_ATTRS:
            found.append(f"{line}: .{node.attr}")
        elif isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in ("tomllib", "tomli")]
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "tomllib", "tomli"):
            found += [f"{line}: from {node.module} import {a.name}" for a in node.names
                      if node.module != "os" or a.name in _FORBIDDEN_ATTRS]
    return found


def test_only_config_reads_the_environment_and_the_config_file() -> None:
    problems = [f"{path.relative_to(_PKG)}:{hit}" for path in sorted(_PKG.rglob("*.py"))
                if path.name != "config.py" or path.parent != _PKG for hit in _environment_reads(path)]
    assert not problems, f"only mountfs/config.py may read the environment or the config file: {problems}"
    assert _environment_reads(_PKG / "config.py"), "the probe finds config.py's own reads"


# --- errors that name where they came from (issue 16) ------------------------------------------


def test_sizes_are_exact_and_bounded() -> None:
    assert config.parse_size("99999999999999999") == 99999999999999999  # no float rounding
    assert config.parse_size("1.5G") == 3 << 29 and config.parse_size("0.5k") == 512
    assert config.parse_size(config.MAX_SIZE) == config.MAX_SIZE
    with pytest.raises(ConfigError, match=r"^X: size '99999999999999999999999T' is more than 1.0 EiB"):
        config.parse_size("99999999999999999999999T", "X")
    with pytest.raises(ConfigError, match="a size must be a number of bytes or a string"):
        config.parse_size(True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^Y: a chunk cache of 10 B is too small: give at least 1.0 MiB"):
        config.parse_cache_size("10", "Y")
    assert config.parse_cache_size("1M") == config.MIN_CACHE_SIZE


def test_an_unusable_cache_size_is_kept_for_what_uses_the_cache(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('cache_size = "0"\ncache_min_free = "much"\n')
    cfg = config.load({"MOUNTFS_CONFIG": str(f)})
    assert cfg.cache_size == 20 << 30  # the default stands in; only require() fails
    with pytest.raises(ConfigError, match=f"cache_size in {f}: a chunk cache of 0 B is too small"):
        cfg.require("cache_size")
    with pytest.raises(ConfigError, match=f"cache_min_free in {f}: cannot read size 'much'"):
        cfg.require("cache_min_free")
    # the variable wins over the file, and a good value there clears the file's problem
    fixed = config.load({"MOUNTFS_CONFIG": str(f), "MOUNTFS_CACHE_SIZE": "2G"})
    assert fixed.cache_size == 2 << 30 and "cache_size" not in fixed.unusable
    # as does an explicit value
    assert "cache_size" not in cfg.with_overrides(cache_size="1G").unusable
    with pytest.raises(ConfigError, match="too small"):
        session.open(cfg).cache


def test_a_config_file_that_is_not_utf8_or_not_there_is_named(tmp_path: Path) -> None:
    f = tmp_path / "latin1.toml"
    f.write_bytes('store = "/données"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"cannot read config file {f}: it is not UTF-8 text"):
        config.load({"MOUNTFS_CONFIG": str(f)})
    with pytest.raises(ConfigError, match=f"config file {tmp_path / 'gone.toml'} \\(named by MOUNTFS_CONFIG\\) "
                                          "does not exist"):
        config.load({"MOUNTFS_CONFIG": str(tmp_path / "gone.toml")})
    assert config.load({"MOUNTFS_CONFIG": os.devnull}).store == config.default_store()


@pytest.mark.parametrize("text, says", [
    ("store = 5\n", "store in {} must be a string (in quotes), not int 5"),
    ('[mountfs]\nrun_dir = ["/a"]\n', "run_dir in {} must be a string (in quotes), not list"),
    ('s3 = "x"\n', "s3 in {} must be a table ([s3] with its settings below it), not str 'x'"),
    ('gs = 1\n', "gs in {} must be a table"),
    ('[s3]\nhosts = "x"\n', "s3.hosts in {} must be a table"),
    ('[s3.hosts]\n"h:1" = 2\n', 's3.hosts."h:1" in {} must be a table'),
    ('cache_size = [1]\n', "cache_size in {}: a size must be a number of bytes or a string"),
])
def test_a_setting_of_the_wrong_type_names_the_key_and_the_type(tmp_path: Path, text: str, says: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    try:
        cfg = config.load({"MOUNTFS_CONFIG": str(f)})
        cfg.require("cache_size")
    except ConfigError as exc:
        assert says.format(f) in str(exc), exc
    else:
        raise AssertionError("no error")


@pytest.mark.allow_warnings
def test_unknown_keys_are_named_with_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "c.toml"
    f.write_text('cache_sise = "1G"\n[azure]\nconection_string = "x"\n[external]\nallow = []\nalow = 1\n[extra]\n')
    config.load({"MOUNTFS_CONFIG": str(f)})
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"config file {f}: unknown settings cache_sise, extra, azure.conection_string, external.alow ignored (a typo?)"]
    caplog.clear()
    f.write_text('store = "/s"\n[s3]\nregion = "r"\n[s3.hosts."h:1"]\nkey = "k"\n')
    config.load({"MOUNTFS_CONFIG": str(f)})
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
