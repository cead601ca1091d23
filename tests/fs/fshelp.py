"""Helpers for the kernel-free tests of mountfs/fs: build versions with the SDK.

A module of its own (not conftest.py): pytest drops ``conftest`` from sys.modules
between folders, so test files import helpers from here."""

from __future__ import annotations

import os
from pathlib import Path

from mountfs import Dataset


def write(path: Path, data: bytes, mode: int = 0o644, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def build(project: str, name: str, src: Path | None, version: str | None = None,
          parents: list[str] | None = None, finalize: bool = True, upload: bool = True) -> Dataset:
    """A version of project/name from the files under ``src`` (finalized unless told otherwise)."""
    ds = Dataset.create(dataset_name=name, dataset_project=project, dataset_version=version,
                        parent_datasets=parents)
    if src is not None:
        ds.add_files(str(src))
    if upload:
        ds.upload(show_progress=False)
    if finalize:
        ds.finalize()
    return ds


def tiny(tmp_path: Path, tag: str) -> Path:
    """A folder with one small file whose content names ``tag``."""
    d = tmp_path / "tiny" / tag.replace("/", "_")
    write(d / "file.txt", f"content of {tag}\n".encode())
    return d


def move_version(catalog, dataset_id: str, project: str, name: str) -> None:
    """Rename or move a version the way a store writer would: its record rewritten, its pointer moved."""
    from dataclasses import replace

    rec = catalog.get(dataset_id)
    catalog.claim(project, name, rec.version, dataset_id)
    catalog.put(replace(rec, project=project, name=name))
    catalog.release(rec.project, rec.name, rec.version)
