"""sdk.metadata: named JSON-able objects and DataFrames stored beside a version's record."""

from __future__ import annotations

import pandas as pd
import pytest

from mountfs import Dataset
from mountfs.errors import NotFound, UsageError
from mountfs.sdk.lifecycle import by_id
from mountfs.sdk.metadata import Metadata
from mountfs.session import Session


def test_json_and_dataframes_round_trip_through_the_catalog(sess: Session) -> None:
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    meta = Metadata(by_id(sess, ds.id))
    meta.set_metadata({"classes": ["cat", "dog"], "n": 2})
    frame = pd.DataFrame({"file": ["a", "b"], "label": [1, 2]})
    meta.set_metadata(frame, metadata_name="labels")
    assert sess.catalog.get(ds.id).metadata == {"metadata": {"type": "json"}, "labels": {"type": "pandas"}}
    again = Metadata(by_id(sess, ds.id))  # another process: the record says how to decode
    assert again.get_metadata() == {"classes": ["cat", "dog"], "n": 2}
    pd.testing.assert_frame_equal(again.get_metadata("labels"), frame)
    assert again.get_metadata("absent") is None
    assert sess.catalog.read_metadata(ds.id, "metadata").startswith(b"{")


def test_bad_metadata_is_refused(sess: Session) -> None:
    meta = Metadata(by_id(sess, Dataset.create(dataset_name="ds", dataset_project="p").id))
    with pytest.raises(UsageError, match="is not JSON-able"):
        meta.set_metadata({"when": object()})
    with pytest.raises(UsageError):
        meta.set_metadata({}, metadata_name="../escape")


def test_metadata_the_record_lists_but_the_store_lost_is_not_found(sess: Session) -> None:
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    v = by_id(sess, ds.id)
    v.record.metadata["lost"] = {"type": "json"}
    with pytest.raises(NotFound):
        Metadata(v).get_metadata("lost")


def test_a_finalized_version_takes_metadata_too(finalized) -> None:
    ds = finalized({"a": b"a"})
    ds.set_metadata({"classes": ["cat", "dog"]}, metadata_name="labels")
    again = Dataset.get(dataset_id=ds.id)
    assert again.is_final() and again.get_metadata("labels") == {"classes": ["cat", "dog"]}
    assert again.get_metadata() is None
