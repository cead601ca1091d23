"""cli.output: store text made printable, aligned tables and JSON-only output (sizes: tests/test_units.py)."""

from __future__ import annotations

import json

from mountfs.cli.output import echo_json, echo_table, printable


def test_printable_escapes_control_characters_only():
    assert printable("plain text, café, 日本語 ✓") == "plain text, café, 日本語 ✓"
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("tab\tnew\nline\rbel\x07del\x7f") == "tab\\tnew\\nline\\rbel\\x07del\\x7f"
    assert printable("c1\x9bend\x85") == "c1\\x9bend\\x85"  # C1 controls too: \x9b is a CSI by itself
    assert printable("\x00") == "\\x00" and printable("") == ""
    assert printable("\xa0nbsp") == "\xa0nbsp"  # just past C1: printable


def test_echo_table_pads_columns_to_the_widest_cell(capsys):
    echo_table(["NAME", "SIZE", "NOTE"], [["a", 5, None], ["longer-name", 12345, "x"]], right=("SIZE",))
    assert capsys.readouterr().out.splitlines() == [
        "NAME          SIZE  NOTE",
        "a                5",  # an empty last cell leaves no trailing blanks
        "longer-name  12345  x",
    ]


def test_echo_table_measures_cells_as_printed(capsys):
    echo_table(["PATH", "N"], [["bad\x1bname", 1], ["ok", 22]], right=("N",))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["PATH          N", "bad\\x1bname   1", "ok           22"]
    assert len({len(line) for line in lines}) == 1


def test_echo_table_with_headers_only(capsys):
    echo_table(["ID", "NAME"], [])
    assert capsys.readouterr().out == "ID  NAME\n"


def test_echo_json_is_the_document_and_nothing_else(capsys):
    doc = {"name": "café\x1b", "n": [1, 2], "none": None}
    echo_json(doc)
    out = capsys.readouterr().out
    assert json.loads(out) == doc
    assert "café" in out and "\\u001b" in out  # readable text, escaped controls (JSON's own escaping)
    assert out.startswith('{\n  "name"') and out.endswith("}\n")
