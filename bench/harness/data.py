"""Data sets: the sizes every bench uses, seeded incompressible trees, disk usage, checked copies.

A tree is generated once per spec and reused while its ``<root>.spec.json``
marker matches, so a ``--work`` folder serves later runs (and other benches).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from typing import Any, NamedTuple

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
_BLOCK = 16 << 20


class TreeSpec(NamedTuple):
    """``files`` files of ``min_size``..``max_size`` bytes, file ``i`` in folder ``i % folders``."""

    files: int
    folders: int
    min_size: int
    max_size: int


class Sizes(NamedTuple):
    """A: many small files; B: a few large ones; ``many``: how many tiny files the file-count part uses."""

    A: TreeSpec
    B: TreeSpec
    many: int


FULL = Sizes(A=TreeSpec(10_000, 100, 80 * KIB, 120 * KIB), B=TreeSpec(4, 1, 256 * MIB, 256 * MIB), many=1_000_000)
QUICK = Sizes(A=TreeSpec(500, 10, 80 * KIB, 120 * KIB), B=TreeSpec(2, 1, 16 * MIB, 16 * MIB), many=20_000)
#: the tiny files of ingest's ``scale`` and read's ``M``: ``many`` of them in 1000 folders, 16-64 B each
MANY_FOLDERS, MANY_SIZES = 1000, (16, 64)


def sizes(quick: bool) -> Sizes:
    """``--quick`` shrinks the sizes only: same shapes, same steps."""
    return QUICK if quick else FULL


def many_spec(files: int) -> TreeSpec:
    """The tree of ``files`` tiny files."""
    return TreeSpec(files, MANY_FOLDERS, *MANY_SIZES)


def write_random_file(path: str, size: int, rng: random.Random) -> None:
    """``size`` incompressible bytes from ``rng``, written in bounded blocks."""
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, _BLOCK)
            fh.write(rng.randbytes(n))
            left -= n


def _marker_ok(root: str, spec: dict[str, Any]) -> bool:
    try:
        with open(root + ".spec.json") as fh:
            return bool(json.load(fh) == spec)
    except (OSError, ValueError):
        return False


def gen_tree(root: str, files: int, folders: int, min_size: int, max_size: int, seed: int) -> dict[str, Any]:
    """A deterministic tree ``root/dNNNN/fNNNNNNN.bin`` of random files; reused if already generated with the same spec.

    File ``i`` goes in folder ``i % folders``; sizes are uniform in
    [``min_size``, ``max_size``].  Returns the spec plus ``bytes`` and ``seconds``.
    """
    spec = {"files": files, "folders": folders, "min_size": min_size, "max_size": max_size, "seed": seed}
    if _marker_ok(root, spec):
        size, _ = tree_size(root)
        return {**spec, "bytes": size, "seconds": 0.0, "reused": True}
    remove_tree(root)
    t0 = time.perf_counter()
    rng = random.Random(seed)
    width = len(str(max(folders - 1, 1)))
    dirs = [os.path.join(root, f"d{j:0{width}d}") for j in range(folders)]
    for d in dirs:
        os.makedirs(d)
    total = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(files):
        size = rng.randint(min_size, max_size)
        path = os.path.join(dirs[i % folders], f"f{i:08d}.bin")
        if size > _BLOCK:
            write_random_file(path, size, rng)
        else:
            fd = os.open(path, flags, 0o644)
            try:
                os.write(fd, rng.randbytes(size))
            finally:
                os.close(fd)
        total += size
    with open(root + ".spec.json", "w") as fh:
        json.dump(spec, fh)
    return {**spec, "bytes": total, "seconds": time.perf_counter() - t0, "reused": False}


def file_list(root: str, info: dict[str, Any]) -> str:
    """``<root>.list.json.files``: [relpath, size, xxh3_64] of every file, path order; kept with the data
    (``<root>.list.json`` holds the spec it was made for).  Returns its path."""
    import xxhash

    path = root + ".list.json"
    spec = {k: info[k] for k in ("files", "folders", "min_size", "max_size", "seed")}
    try:
        with open(path) as fh:
            if json.load(fh)["spec"] == spec:
                return path + ".files"
    except (OSError, ValueError, KeyError):
        pass
    out: list[list[Any]] = []
    for rel in tree_files(root):
        h = xxhash.xxh3_64()
        with open(os.path.join(root, rel), "rb") as fh:
            while block := fh.read(16 * MIB):
                h.update(block)
        out.append([rel, os.path.getsize(os.path.join(root, rel)), h.hexdigest()])
    with open(path + ".files", "w") as fh:
        json.dump(out, fh)
    with open(path, "w") as fh:
        json.dump({"spec": spec}, fh)
    return path + ".files"


def tree_files(root: str) -> list[str]:
    """Relative paths of the regular files under ``root``, sorted."""
    out: list[str] = []
    for dirpath, _, names in os.walk(root):
        out.extend(os.path.relpath(os.path.join(dirpath, n), root) for n in names)
    return sorted(out)


def tree_size(root: str) -> tuple[int, int]:
    """(apparent bytes, file count) of every regular file under ``root``."""
    total = count = 0
    stack = [root]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
                    count += 1
    return total, count


def remove_tree(path: str) -> None:
    """``rm -rf`` that also copes with read-only files and folders (and drops a tree's spec marker)."""
    if os.path.lexists(path):
        if os.geteuid() != 0:  # root ignores permission bits; others must restore write access first
            subprocess.run(["chmod", "-R", "u+rwX", path], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path + ".spec.json"):
        os.unlink(path + ".spec.json")


def check_copy(src: str, copy: str, nbytes: int, nfiles: int, what: str, seed: int, n: int = 5) -> tuple[int, int]:
    """Sizes and count of the whole copy, bytes of ``n`` files picked with ``seed``; returns (bytes, files).

    Raises ``RuntimeError`` naming ``what`` when the copy is short or differs.
    """
    got_bytes, got_files = tree_size(copy)
    if (got_bytes, got_files) != (nbytes, nfiles):
        raise RuntimeError(f"{what}: {copy} has {got_files} files / {got_bytes} B, expected {nfiles} / {nbytes}")
    files = tree_files(src)
    for rel in random.Random(seed).sample(files, min(n, len(files))):
        if subprocess.run(["cmp", "-s", os.path.join(src, rel), os.path.join(copy, rel)]).returncode != 0:
            raise RuntimeError(f"{what}: {rel} differs from the source")
    return got_bytes, got_files
