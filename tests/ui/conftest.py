"""Fixtures of the web view's tests: the catalog of ``uihelp.build`` in the test's folder store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uihelp import Catalog, build  # noqa: E402


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return build(tmp_path / "data")
