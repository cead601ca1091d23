"""Helpers shared by the SDK tests."""

from __future__ import annotations

import filecmp
from pathlib import Path

from mountfs.backends.file import FileBackend


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``{relative path: bytes}`` under ``root``; return ``root``."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def same_tree(a: Path, b: Path) -> None:
    """Assert folders ``a`` and ``b`` hold the same names and bytes, all the way down."""
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files, (cmp.left_only, cmp.right_only, cmp.diff_files)
    for sub in cmp.common_dirs:
        same_tree(a / sub, b / sub)
    for name in cmp.common_files:
        assert (a / name).read_bytes() == (b / name).read_bytes()


# --- a store that "dies" after N writes (the crash tests of rename, move and delete) ---

class Crash(Exception):
    """The process "dies" here: nothing after this write happens."""


class CrashingBackend(FileBackend):
    """The store's real folder backend, failing every write after the first ``writes`` (then always)."""

    def __init__(self, root: str, writes: int):
        super().__init__(root)
        self.left = writes

    def _write(self) -> None:
        if self.left <= 0:
            raise Crash()
        self.left -= 1

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._write()
        super().put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> None:
        self._write()
        super().put_if_absent(key, data)

    def delete(self, key: str) -> None:
        self._write()
        super().delete(key)
