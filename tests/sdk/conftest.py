"""Fixtures for the SDK's parts: the session of the test's private store, files on disk, finalized versions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# tests/ holds shared helpers (servers.py), this folder the SDK tests' own; importable however pytest was started
for _p in (str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from sdkhelp import write_files  # noqa: E402

from mountfs import Dataset  # noqa: E402
from mountfs.session import Session, current  # noqa: E402


@pytest.fixture
def sess() -> Session:
    """The session for the test's private store and cache (tests/conftest.py isolated_env)."""
    return current()


Finalized = Callable[..., Dataset]


@pytest.fixture
def finalized(tmp_path: Path) -> Finalized:
    """``finalized({rel: bytes}, name=..., project=..., **create_kwargs)``: a new finalized version of those files."""
    count = iter(range(1_000_000))

    def make(files: dict[str, bytes], name: str = "ds", project: str = "p", **kw: Any) -> Dataset:
        src = write_files(tmp_path / f"src-{next(count)}", files)
        ds = Dataset.create(dataset_name=name, dataset_project=project, **kw)
        ds.add_files(src)
        ds.upload(show_progress=False)
        assert ds.finalize()
        return ds

    return make


@pytest.fixture
def private_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A SeaweedFS of the test's own, free to be stopped."""
    from servers import started_seaweed

    with started_seaweed(tmp_path_factory.mktemp("seaweed-sdk")) as server:
        yield server
