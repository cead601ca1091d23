"""The layer rule (DESIGN.md §2): modules import downward only; storage SDKs, LMDB and pyfuse3 stay in their layer."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "mountfs"

# higher number = higher layer; a module may import only its own rank or lower
RANKS = {
    "errors": 0, "config": 0,
    "backends": 1,
    "store": 2,
    "catalog": 3, "cache": 3,
    "session": 4, "ingest": 4, "localcopy": 4, "dataset": 4, "changes": 4, "reading": 4, "preview": 4,
    "fs": 5,
    "daemon": 6, "cli": 6,
    "__init__": 7, "__main__": 7,
}
ONLY_IN = {"boto3": {"backends"}, "botocore": {"backends"}, "google": {"backends"}, "azure": {"backends"},
           "lmdb": {"cache"}, "pyfuse3": {"fs", "daemon"}}


def _top(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    out = []
    pkg_parts = path.relative_to(PKG).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg_parts[: len(pkg_parts) - (node.level - 1)])
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # "from . import x": x is a module of that package
                    out.extend((".".join(["mountfs", *base, a.name]), node.lineno) for a in node.names)
                else:
                    out.append(("mountfs." + mod, node.lineno))
            else:
                out.append((node.module or "", node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
    return out


def test_no_upward_imports_and_sdks_stay_in_their_layer() -> None:
    problems = []
    files = list(PKG.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        top = _top(path)
        rank = RANKS[top]
        for mod, line in _imports(path):
            parts = mod.split(".")
            if parts[0] == "mountfs" and len(parts) > 1:
                target = parts[1]
                if target in RANKS and RANKS[target] > rank:
                    problems.append(f"{path.relative_to(PKG)}:{line} imports {mod} (upward)")
            elif parts[0] in ONLY_IN and top not in ONLY_IN[parts[0]]:
                problems.append(f"{path.relative_to(PKG)}:{line} imports {mod} outside {ONLY_IN[parts[0]]}")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    bad = PKG / "store" / "_layer_probe_tmp.py"
    bad.write_text("from ..dataset import Dataset\nimport lmdb\n")
    try:
        rank = RANKS[_top(bad)]
        found = [m for m, _ in _imports(bad)]
        assert "mountfs.dataset" in found and RANKS["dataset"] > rank
        assert "lmdb" in found
    finally:
        bad.unlink()
