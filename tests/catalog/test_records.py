"""The dataset record (mountfs/catalog/records.py): what a good record holds survives encode and decode,
statuses, ids and times.

Damaged and crafted records (every field refused in each bad form, unknown fields ignored, defaults
for older records) are tests/security/test_hostile_records.py; any bytes at all is the hypothesis
fuzz in test_record_fuzz.py.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, fields
from datetime import datetime, timedelta

import pytest

from mountfs.catalog.records import (COMPLETED, DRAFT, FINAL_STATUSES, PUBLISHED, RECORD_FORMAT, STATUSES, UPLOADED,
                                     DatasetRecord, new_id, now_iso)

ID = "0190a1b2c3d4deadbeef"
PARENT = "0190a1b2c3d4cafebabe"
WHERE = f"store/datasets/{ID}/info.json"


def _full() -> DatasetRecord:
    """A record with every field away from its default."""
    return DatasetRecord(
        id=ID, project="vision/detection", name="cats", version="2.0.1.9", status=PUBLISHED, parents=[PARENT, ID[:-1] + "0"],
        tags=["best", "ünïcode", ""], description="line one\nline two", storage="s3://bucket/other-store",
        created="2024-01-02T03:04:05+00:00", finalized="2024-01-02T04:00:00+01:00", published="2024-02-01T00:00:00",
        manifest_digest="00ff" * 8, file_count=2**63 - 1, total_size=12345,
        changes={"added": 3, "modified": 0, "removed": 1}, metadata={"stats": {"type": "json"}, "df": {"type": "pandas"}},
    )


def test_every_field_survives_a_round_trip() -> None:
    rec = _full()
    assert {f.name for f in fields(rec) if getattr(rec, f.name) == f.default} == {"format"}, "the test sets each field"
    again = DatasetRecord.from_json(rec.to_json(), WHERE, ID)
    assert again == rec and asdict(again) == asdict(rec)
    assert again.to_json() == rec.to_json(), "the encoding is stable: the same record, the same bytes"


def test_the_encoding_is_sorted_json() -> None:
    doc = json.loads(_full().to_json())
    assert list(doc) == sorted(doc) and doc["format"] == RECORD_FORMAT
    assert set(doc) == {f.name for f in fields(DatasetRecord)}


def test_a_metadata_entry_keeps_only_its_type() -> None:
    doc = json.loads(_full().to_json())
    doc["metadata"]["stats"]["written_by"] = "a newer mountfs"
    rec = DatasetRecord.from_json(json.dumps(doc).encode(), WHERE, ID)
    assert rec.metadata == {"stats": {"type": "json"}, "df": {"type": "pandas"}}


@pytest.mark.parametrize("status", STATUSES)
def test_only_completed_and_published_are_final(status: str) -> None:
    rec = DatasetRecord(id=ID, project="p", name="n", version="1.0", status=status)
    assert rec.is_final is (status in (COMPLETED, PUBLISHED))
    assert set(FINAL_STATUSES) == {COMPLETED, PUBLISHED} and {DRAFT, UPLOADED} | set(FINAL_STATUSES) == set(STATUSES)


def test_a_new_record_is_a_draft_created_now() -> None:
    before = datetime.fromisoformat(now_iso())
    rec = DatasetRecord(id=new_id(), project="p", name="n", version="1.0")
    assert (rec.status, rec.parents, rec.finalized, rec.format) == (DRAFT, [], "", RECORD_FORMAT)
    created = datetime.fromisoformat(rec.created)
    assert created.utcoffset() == timedelta(0) and created - before < timedelta(seconds=5)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", rec.created), "seconds, in UTC"
    assert DatasetRecord.from_json(rec.to_json(), "x", rec.id) == rec


def test_ids_are_time_ordered_and_unique() -> None:
    start_ms = int(time.time() * 1000)
    ids = [new_id() for _ in range(2000)]
    end_ms = int(time.time() * 1000)
    assert all(re.fullmatch(r"[0-9a-f]{20}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    stamps = [int(i[:12], 16) for i in ids]
    assert stamps == sorted(stamps) and start_ms <= stamps[0] and stamps[-1] <= end_ms
    # so a listing of datasets/ in key order is oldest first
    # a time prefix, not a counter: once the clock has moved on a millisecond, the next id sorts after
    earlier = new_id()
    while int(time.time() * 1000) <= int(earlier[:12], 16):
        pass
    assert new_id()[:12] > earlier[:12]
