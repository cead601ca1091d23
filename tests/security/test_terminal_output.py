"""Text from a shared store cannot drive the terminal of the user who prints it.

Descriptions, tags and file names are written by anyone who can write to the
store; ``mountfs info``, ``search``, ``list`` and ``verify`` print them.  A
control character (ESC, BEL, CSI, a carriage return) in them is shown as an
escape, so it cannot clear the screen, retitle the window or hide a line.
``--json`` output is JSON, which escapes them already.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mountfs import Dataset
from mountfs.cli import cli

HOSTILE = "\x1b]0;owned\x07\x1b[2J\rhidden\x9b"


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _version(tmp_path: Path) -> Dataset:
    src = tmp_path / "src"
    src.mkdir()
    (src / f"a{HOSTILE}.txt").write_bytes(b"data")
    ds = Dataset.create(dataset_name="shown", dataset_project="p", description=HOSTILE, dataset_tags=[f"t{HOSTILE}"])
    ds.add_files(src)
    ds.finalize(auto_upload=True)
    return ds


def test_store_text_is_printed_with_control_characters_escaped(tmp_path: Path) -> None:
    ds = _version(tmp_path)
    outputs = {
        "info": _run("info", "--id", ds.id),
        "search": _run("search", "--project", "p"),
        "list": _run("list", "--id", ds.id),
    }
    for command, out in outputs.items():
        assert not any(ch in out for ch in "\x1b\x07\r\x9b"), f"mountfs {command} printed a control character: {out!r}"
    assert "\\x1b]0;owned\\x07" in outputs["info"]  # shown, not dropped: the user sees what the store holds
    assert "a\\x1b]0;owned" in outputs["list"]


def test_json_output_keeps_the_text_exactly(tmp_path: Path) -> None:
    ds = _version(tmp_path)
    doc = json.loads(_run("info", "--id", ds.id, "--json"))
    assert doc["description"] == HOSTILE
    paths = [e["path"] for e in json.loads(_run("list", "--id", ds.id, "--json"))]
    assert paths == [f"a{HOSTILE}.txt"]
