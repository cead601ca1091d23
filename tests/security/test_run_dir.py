"""The run dir and the detached daemon's log cannot be turned against their user; secrets stay out of reprs.

Issue 13, item 10: without ``XDG_RUNTIME_DIR`` the run dir is
``/tmp/mountfs-<uid>``, which anyone may create first; and item 11: ``repr(Config)``
showed S3 secrets.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mountfs.backends import normalize_url
from mountfs.config import load
from mountfs.daemon import mounts
from mountfs.errors import UsageError

NOBODY = 65534


def _files(run_dir: Path) -> mounts.RuntimeFiles:
    return mounts.RuntimeFiles(str(run_dir), "/mnt/somewhere")


def test_a_new_run_dir_is_owner_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "parent" / "run"
    _files(run_dir).prepare()
    st = os.lstat(run_dir)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
    assert stat.S_IMODE(st.st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user needs root")
def test_a_run_dir_made_first_by_another_user_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, NOBODY, NOBODY)
    with pytest.raises(UsageError, match=f"belongs to uid {NOBODY}.*MOUNTFS_RUN_DIR"):
        _files(run_dir).prepare()


@pytest.mark.parametrize("mode", [0o777, 0o733, 0o770, 0o701])
def test_a_run_dir_others_may_use_is_refused(tmp_path: Path, mode: int) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.chmod(run_dir, mode)
    with pytest.raises(UsageError, match="others may use it.*chmod 700"):
        _files(run_dir).prepare()


def test_a_group_readable_run_dir_is_accepted(tmp_path: Path) -> None:
    """A root daemon admitting its control_group makes the run dir 0750 (systemd's RuntimeDirectoryMode too)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.chmod(run_dir, 0o750)
    _files(run_dir).prepare()


def test_a_symlinked_run_dir_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="not a folder"):
        _files(link).prepare()


def test_status_ignores_a_run_dir_that_is_not_ours(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "x.json").write_text('{"socket": "/tmp/theirs.sock", "mountpoint": "/mnt"}')
    os.chmod(run_dir, 0o777)
    with caplog.at_level("WARNING", logger="mountfs"):
        assert mounts.all_runtime(str(run_dir)) == []
    assert any("others may use it" in r.getMessage() for r in caplog.records)
    caplog.clear()


def test_runtime_files_never_follow_a_symlink(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    files = _files(run_dir)
    files.prepare()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, files.log)
    with pytest.raises(OSError) as err:
        mounts.open_private(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    assert err.value.errno == 40  # ELOOP
    # the description file is written to a fresh temp name, never through a planted link
    os.symlink(victim, files.info + ".tmp")
    files.write_info({"pid": 1})
    assert victim.read_text() == "precious"
    assert not os.path.islink(files.info)


@pytest.mark.fuse
def test_the_mount_command_refuses_a_planted_log_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mountfs mount` opens the detached daemon's log: a symlink there is one clear error, the target untouched."""
    from click.testing import CliRunner

    from mountfs import Dataset
    from mountfs.cli import cli

    run_dir = tmp_path / "run"
    monkeypatch.setenv("MOUNTFS_RUN_DIR", str(run_dir))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    ds = Dataset.create(dataset_name="n", dataset_project="p")
    ds.add_files(str(src))
    ds.finalize(auto_upload=True)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    files = mounts.RuntimeFiles(str(run_dir), os.path.realpath(mountpoint))
    files.prepare()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, files.log)
    try:
        result = CliRunner().invoke(cli, ["mount", ds.id, str(mountpoint)], catch_exceptions=False)
    finally:
        if mounts.mounted_fuse(os.path.realpath(mountpoint)):  # the bug: it mounted anyway
            CliRunner().invoke(cli, ["umount", str(mountpoint)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"mountfs: error: cannot open the mount's log {files.log}: Too many levels of symbolic links; "
        "remove it and mount again"]
    assert victim.read_text() == "precious"


def test_config_repr_hides_secrets(tmp_path: Path) -> None:
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text(
        '[s3]\nkey = "AKIDPLAIN"\nsecret = "s3-SECRET-value"\n'
        '[s3.hosts."127.0.0.1:9000"]\nkey = "hostkey"\nsecret = "host-SECRET"\n'
        '[azure]\nconnection_string = "AccountKey=az-SECRET"\n[gs]\ncredentials_json = "/keys/gs.json"\n'
    )
    cfg = load({"MOUNTFS_CONFIG": str(cfg_file), "AWS_SECRET_ACCESS_KEY": "env-SECRET"})
    text = repr(cfg)
    assert "SECRET" not in text and "AKIDPLAIN" not in text
    assert "secret" in text and "connection_string" in text  # the setting names stay, to debug with
    assert cfg.s3["secret"] == "s3-SECRET-value"  # only the repr is redacted


@pytest.mark.parametrize("url", [
    "s3://AKID:SECRET@127.0.0.1:9000/bucket",
    "s3://user@bucket/prefix",
    "azure://acct.blob.core.windows.net/container?sv=2024&sig=SECRET",
    "gs://bucket/prefix?token=SECRET",
])
def test_store_urls_with_credentials_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="holds credentials") as err:
        normalize_url(url)
    assert "SECRET" not in str(err.value)
