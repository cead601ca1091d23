"""boto3 transfers the baselines share (inside a step process)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence, TypeVar

F = TypeVar("F", bound=Sequence[Any])


def split(files: Sequence[F], multipart: int) -> tuple[list[F], list[F]]:
    """``(relpath, size, ...)`` entries below ``multipart`` bytes, and the others."""
    return [f for f in files if f[1] < multipart], [f for f in files if f[1] >= multipart]


def put_files(client: Any, root: str, small: Sequence[F], big: Sequence[F], bucket: str, prefix: str, threads: int,
              config: Any) -> int:
    """Every ``(relpath, size, ...)`` under ``root`` as object ``prefix + relpath``: ``small`` by
    ``put_object`` over ``threads`` threads, then ``big`` by ``upload_file`` (with ``config``) one after
    another.  Returns the bytes sent."""

    def put(f: F) -> int:
        with open(os.path.join(root, f[0]), "rb") as fh:
            client.put_object(Bucket=bucket, Key=prefix + f[0], Body=fh.read())
        return int(f[1])

    n = 0
    if small:
        with ThreadPoolExecutor(threads) as ex:
            n += sum(ex.map(put, small))
    for f in big:
        client.upload_file(os.path.join(root, f[0]), bucket, prefix + f[0], Config=config)
        n += int(f[1])
    return n
