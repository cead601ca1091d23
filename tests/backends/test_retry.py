"""RetryingBackend's own rules, on a folder store that fails on purpose."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import pytest

from mountfs.backends.base import ObjectInfo
from mountfs.backends.file import FileBackend
from mountfs.backends.retry import BUDGET, RetryingBackend, StoreBudget
from mountfs.config import Config
from mountfs.errors import AlreadyExists, ObjectNotFound, TransientStoreError


class Flaky(FileBackend):
    """A folder store whose methods fail transiently ``failures[name]`` times first."""

    def __init__(self, root: Path, **failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            raise TransientStoreError(f"{name} failed (test)")

    def get(self, key: str) -> bytes:
        self._maybe_fail("get")
        return super().get(key)

    def stat(self, key: str) -> ObjectInfo:
        self._maybe_fail("stat")
        return super().stat(key)

    def put_if_absent(self, key: str, data: bytes) -> None:
        # the write lands, then the answer is "lost"
        self.calls["put_if_absent"] = self.calls.get("put_if_absent", 0) + 1
        super().put_if_absent(key, data)
        if self.failures.get("put_if_absent", 0) > 0:
            self.failures["put_if_absent"] -= 1
            raise TransientStoreError("answer lost (test)")

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        self.calls["put_file"] = self.calls.get("put_file", 0) + 1
        if self.failures.get("put_file", 0) > 0:
            self.failures["put_file"] -= 1
            fh.read(size // 2)  # half sent, then the connection drops
            raise TransientStoreError("upload failed (test)")
        super().put_file(key, fh, size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for n, info in enumerate(super().list(prefix)):
            if n == 2 and self.failures.get("list", 0) > 0:
                self.failures["list"] -= 1
                raise TransientStoreError("listing broke (test)")
            yield info


class FakeTime:
    def __init__(self, per_call: float = 0.0) -> None:
        self.now, self.slept, self.per_call = 0.0, [], per_call

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        self.now += self.per_call  # each look at the clock costs time: a slow server
        return self.now


def wrap(inner: Flaky, clock: FakeTime, **kwargs: Any) -> RetryingBackend:
    return RetryingBackend(inner, sleep=clock.sleep, clock=clock.clock, **kwargs)


def test_transient_failures_are_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inner, t = Flaky(tmp_path, get=2), FakeTime()
    inner.put("k", b"v")
    assert wrap(inner, t).get("k") == b"v"
    assert inner.calls["get"] == 3 and len(t.slept) == 2
    assert [r.levelno for r in caplog.records if r.name == "mountfs.backends.retry"] == [logging.INFO] * 2


@pytest.mark.allow_warnings
def test_attempts_are_bounded(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path, get=100), FakeTime()
    inner.put("k", b"v")
    with pytest.raises(TransientStoreError):
        wrap(inner, t, attempts=4).get("k")
    assert inner.calls["get"] == 4 and t.now < 10


@pytest.mark.allow_warnings
def test_total_time_is_bounded(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path, get=100), FakeTime(per_call=3.0)
    inner.put("k", b"v")
    with pytest.raises(TransientStoreError):
        wrap(inner, t, attempts=100, total_timeout=10).get("k")
    assert t.now < 20 and inner.calls["get"] < 6


def test_other_errors_pass_straight_through(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path), FakeTime()
    with pytest.raises(ObjectNotFound):
        wrap(inner, t).get("missing")
    assert inner.calls["get"] == 1 and t.slept == []


def test_conditional_put_whose_answer_was_lost_still_wins(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path, put_if_absent=1), FakeTime()
    store = wrap(inner, t)
    store.put_if_absent("catalog/x", b"mine")  # landed, answer lost, retry sees our own bytes
    assert inner.calls["put_if_absent"] == 2
    with pytest.raises(AlreadyExists):
        store.put_if_absent("catalog/x", b"someone else")


def test_conditional_put_loses_to_another_writer_after_a_retry(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path), FakeTime()
    inner.put("catalog/y", b"theirs")
    with pytest.raises(AlreadyExists):
        wrap(inner, t).put_if_absent("catalog/y", b"mine")


def test_put_file_rewinds_for_the_retry(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path, put_file=2), FakeTime()
    data = bytes(range(256)) * 1000
    fh = io.BytesIO(b"header" + data)
    fh.seek(6)  # the caller's position is where the object starts
    wrap(inner, t).put_file("big", fh, len(data))
    assert inner.get("big") == data and inner.calls["put_file"] == 3


def test_list_resumes_without_repeating(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path, list=2), FakeTime()
    keys = [f"k{i}" for i in range(6)]
    for key in keys:
        inner.put(key, b"x")
    assert [o.key for o in wrap(inner, t).list()] == keys


def test_everything_else_is_delegated(tmp_path: Path) -> None:
    inner = FileBackend(tmp_path)
    store = RetryingBackend(inner)
    assert store.url == inner.url and store.root == inner.root
    assert repr(store) == f"RetryingBackend({inner!r})"
    store.put("a", b"1")
    assert store.exists("a") and not store.exists("b")
    store.delete("a")
    assert list(store.list()) == []


class Hung(FileBackend):
    """A folder store whose reads never answer: each attempt lasts the client's read timeout, then fails."""

    def __init__(self, root: Path, clock: FakeTime) -> None:
        super().__init__(root)
        self.clock, self.calls = clock, 0

    def get(self, key: str) -> bytes:
        self.calls += 1
        self.clock.now += BUDGET.read_timeout
        raise TransientStoreError("read timeout (test)")


@pytest.mark.allow_warnings
def test_a_store_that_stopped_answering_fails_within_the_budget(tmp_path: Path) -> None:
    t = FakeTime()
    inner = Hung(tmp_path, t)
    with pytest.raises(TransientStoreError):
        wrap(inner, t).get("k")
    # no retry starts after the window, so one unanswered attempt ends it before the read deadline
    assert t.now <= BUDGET.retry_window + BUDGET.read_timeout <= BUDGET.read_deadline
    assert inner.calls == 1


@pytest.mark.allow_warnings
def test_fast_failures_use_every_attempt_within_the_window(tmp_path: Path) -> None:
    inner, t = Flaky(tmp_path, get=100), FakeTime()  # refused at once, every time
    inner.put("k", b"v")
    with pytest.raises(TransientStoreError):
        wrap(inner, t).get("k")
    assert inner.calls["get"] == BUDGET.attempts and t.now <= BUDGET.retry_window


def test_the_budget_refuses_retries_that_outlast_the_read_deadline() -> None:
    with pytest.raises(ValueError, match="read deadline"):
        StoreBudget(retry_window=8.0, read_timeout=5.0, read_deadline=10.0)


def test_cloud_clients_leave_retrying_to_us_with_the_budgets_timeouts() -> None:
    # one retry layer: a second one inside the client would multiply the time before EIO
    from mountfs.backends import azure, gs
    from mountfs.backends.s3 import S3Backend

    s3 = S3Backend.from_url("s3://127.0.0.1:9/bucket", Config(s3_hosts={"127.0.0.1:9": {"key": "k", "secret": "s"}}))
    config = s3._client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert (config.connect_timeout, config.read_timeout) == (BUDGET.connect_timeout, BUDGET.read_timeout)
    for settings in (gs.GsSettings(bucket="b"), azure.AzureSettings(account="a", container="c")):
        assert (settings.connect_timeout, settings.read_timeout) == (BUDGET.connect_timeout, BUDGET.read_timeout)
