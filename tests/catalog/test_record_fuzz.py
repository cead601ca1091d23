"""Fuzzing the dataset record decoder (mountfs/catalog/records.py) with hypothesis.

A record is read from a store anyone on the team can write: whatever bytes it
holds, ``DatasetRecord.from_json`` either returns a record that is safe to use
(it survives a re-encode, its version sorts) or raises mountfs's own error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mountfs.catalog import DatasetRecord
from mountfs.catalog.names import check_name, check_project, version_key
from mountfs.errors import MountfsError

ID = "0190a1b2c3d4deadbeef"
WHERE = f"store/datasets/{ID}/info.json"
FIELDS = [f.name for f in fields(DatasetRecord)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
#: values close to valid ones, so that many records get past the first check
near_values = st.one_of(
    json_values,
    # version-like: up to 6 components of up to 21 digits
    st.lists(st.integers(0, 10**20), min_size=1, max_size=6).map(lambda parts: ".".join(map(str, parts))),
    st.sampled_from(["draft", "uploaded", "completed", "published", "", "1.0", "a/b", "a//b", ".x", " x", ID,
                     "2024-01-01T00:00:00+00:00", "0001-01-01", "9999-12-31T23:59:59-14:00", "\ud800", "\x00"]),
    st.lists(st.sampled_from([ID, "x", "", 5, None]), max_size=3),
    st.dictionaries(st.sampled_from(["added", "m", "../m", ""]),
                    st.sampled_from([0, -1, 2**63, "3", {"type": "json"}, {"type": "pandas", "x": [1]}, {}]),
                    max_size=3),
    st.integers(min_value=-2, max_value=2**64),
)


def _base() -> dict[str, Any]:
    return json.loads(DatasetRecord(id=ID, project="vision/det", name="cats", version="1.0.0").to_json())


@st.composite
def near_records(draw: st.DrawFn) -> bytes:
    """A valid record with some fields replaced, dropped or added."""
    doc = _base()
    for name in draw(st.lists(st.sampled_from(FIELDS + ["future_field"]), max_size=4, unique=True)):
        if draw(st.booleans()) and name in doc:
            del doc[name]
        else:
            doc[name] = draw(near_values)
    return json.dumps(doc).encode()


def _check(data: bytes) -> None:
    try:
        rec = DatasetRecord.from_json(data, WHERE, ID)
    except MountfsError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert rec.id == ID
    check_project(rec.project)
    check_name(rec.name)
    version_key(rec.version)
    json.dumps(asdict(rec), ensure_ascii=False).encode()  # every string prints: no lone surrogate
    again = DatasetRecord.from_json(rec.to_json(), WHERE, ID)
    assert again == rec and again.to_json() == rec.to_json()


# a few seconds in all, so the suite's fast half stays fast
_fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fast
@given(json_values)
def test_any_json_value(value: Any) -> None:
    _check(json.dumps(value).encode())


@_fast
@given(st.binary(max_size=300))
@example(b"null")
@example(b"[1, 2, 3]")
@example(b'{"id": "0190a1b2c3d4deadbeef", "proj')
@example(b"[" * 50_000)
def test_any_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_records())
def test_records_close_to_valid_ones(data: bytes) -> None:
    _check(data)
