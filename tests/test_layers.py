"""The layer rule (DESIGN.md §2): modules import downward only; storage SDKs, LMDB and pyfuse3 stay in their layer."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "mountfs"

#: higher number = higher layer; a module may import only modules of its own rank or lower.
#: Keys are module paths below ``mountfs`` (a package's key covers everything in it);
#: the longest key that matches wins, so a package can rank its modules apart.
RANKS = {
    "errors": 0, "units": 0,
    "config": 1,
    "backends": 2,
    "store": 3,
    "catalog": 4, "cache": 4,
    "session": 5,
    "ingest": 6, "localcopy": 6,
    # the SDK: sdk.dataset (and the package) composes the parts, which share sdk.version
    "sdk": 9,
    "sdk.version": 7,
    "sdk.changes": 8, "sdk.closing": 8, "sdk.mounting": 8, "sdk.reading": 8, "sdk.copies": 8, "sdk.metadata": 8, "sdk.lifecycle": 8, "sdk.runs": 8,
    "sdk.logger": 8, "sdk.previews": 8,
    "fs": 10,
    "daemon": 11,  # the mount daemon: never the CLI, which starts it and talks to its socket
    # starting, finding and stopping daemons and the client of their socket: no FUSE, used by the CLI and
    # by the SDK's Dataset.mount
    "daemon.mounts": 6, "daemon.control": 6,
    "cli": 12,
    "ui": 12,  # the web view (mountfs ui): reads the catalog like the CLI
    "__init__": 13, "__main__": 13,
}
ONLY_IN = {"boto3": {"backends"}, "botocore": {"backends"}, "google": {"backends"}, "azure": {"backends"},
           "lmdb": {"cache"}, "pyfuse3": {"fs", "daemon"},
           "obstore": {"backends"}}


def _module(path: Path, root: Path) -> str:
    """``store/packs.py`` -> ``store.packs``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _rank(module: str) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        rank = RANKS.get(".".join(parts[:n]))
        if rank is not None:
            return rank
    return None


def _imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text())
    out = []
    pkg_parts = path.relative_to(root).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg_parts[: len(pkg_parts) - (node.level - 1)])
                if node.module is None:  # "from . import x": x is a module of that package
                    out.extend((".".join(["mountfs", *base, a.name]), node.lineno) for a in node.names)
                else:
                    out.append((".".join(["mountfs", *base, node.module]), node.lineno))
            else:
                out.append((node.module or "", node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
    return out


def layer_problems(root: Path) -> list[str]:
    """Every breach of the layer rule in the package at ``root`` (named ``mountfs``)."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root)
        module = _module(path, root)
        rank = _rank(module)
        if rank is None:
            problems.append(f"{where}: has no rank in tests/test_layers.py RANKS")
            continue
        top = module.split(".")[0]
        for mod, line in _imports(path, root):
            parts = mod.split(".")
            if parts[0] == "mountfs" and len(parts) > 1:
                target = _rank(".".join(parts[1:]))
                if target is not None and target > rank:
                    problems.append(f"{where}:{line} imports {mod} (upward: rank {rank} -> {target})")
            elif parts[0] in ONLY_IN and top not in ONLY_IN[parts[0]]:
                problems.append(f"{where}:{line} imports {mod} outside {sorted(ONLY_IN[parts[0]])}")
    return problems


def test_no_upward_imports_and_sdks_stay_in_their_layer() -> None:
    assert len(list(PKG.rglob("*.py"))) > 10
    problems = layer_problems(PKG)
    assert not problems, "\n".join(problems)


def test_the_rule_catches_upward_imports_sdks_out_of_place_and_unranked_modules(tmp_path: Path) -> None:
    """The checker itself, on a small package holding each kind of breach."""
    root = tmp_path / "mountfs"
    (root / "store").mkdir(parents=True)
    (root / "daemon").mkdir()
    (root / "sdk").mkdir()
    (root / "__init__.py").write_text("from .sdk import Dataset\n")
    (root / "sdk" / "__init__.py").write_text("from .dataset import Dataset\n")
    (root / "sdk" / "dataset.py").write_text("from ..store import packs\n")
    (root / "store" / "__init__.py").write_text("")
    (root / "store" / "packs.py").write_text("from ..sdk.dataset import Dataset\nimport lmdb\n")
    (root / "daemon" / "__init__.py").write_text("")
    (root / "daemon" / "main.py").write_text("from ..cli.mounts import mount\nimport pyfuse3\n")
    (root / "gadgets.py").write_text("")
    problems = layer_problems(root)
    assert sorted(problems) == sorted([
        "store/packs.py:1 imports mountfs.sdk.dataset (upward: rank 3 -> 9)",
        "store/packs.py:2 imports lmdb outside ['cache']",
        "daemon/main.py:1 imports mountfs.cli.mounts (upward: rank 11 -> 12)",
        "gadgets.py: has no rank in tests/test_layers.py RANKS",
    ])
