"""Checks shared by the per-backend test files (test_s3.py, test_gs.py, test_azure.py)."""

from __future__ import annotations

import time
import traceback
from typing import Protocol

import pytest

from mountfs.backends import Backend
from mountfs.errors import TransientStoreError


class Restartable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def error_texts(errors: list[BaseException], *more: str) -> list[str]:
    """Everything a user could see of these errors: message, repr, traceback with causes."""
    return [str(e) + repr(e) + "".join(traceback.format_exception(e)) for e in errors] + list(more)


def outage_then_recovery(store: Backend, server: Restartable) -> None:
    """The server goes away: every call fails as transient within bounded time; then it comes back."""
    store.put("before", b"kept")
    server.stop()
    for call in (lambda: store.get("before"), lambda: store.put("after", b"x"),
                 lambda: store.put_if_absent("catalog/p/n/1", b"x"), lambda: list(store.list()),
                 lambda: store.delete("before")):
        start = time.monotonic()
        with pytest.raises(TransientStoreError):
            call()
        assert time.monotonic() - start < 5
    server.start()
    assert store.get("before") == b"kept"
    store.put_if_absent("catalog/p/n/1", b"mine")
    assert [o.key for o in store.list()] == ["before", "catalog/p/n/1"]
