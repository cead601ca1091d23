"""cli.draft: the draft remembered in the working folder (./.mountfs-dataset.json), so later commands need no --id."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mountfs.cli import draft
from mountfs.cli.draft import STATE_FILE, RememberedDraft
from mountfs.errors import ConfigError

ONE = RememberedDraft("id-one", "p", "n", "1.0.0", "/srv/store")


def test_save_and_load_in_the_current_folder(env):
    assert draft.load() is None  # nothing remembered yet
    path = draft.save(ONE)
    assert path == str(env.work / STATE_FILE)
    assert draft.load() == ONE
    assert os.listdir(env.work) == [STATE_FILE]  # written through a temp name, none left
    assert json.loads(Path(path).read_text()) == {"id": "id-one", "project": "p", "name": "n", "version": "1.0.0",
                                                  "store": "/srv/store"}
    draft.save(RememberedDraft("id-two", "p", "n", "1.0.1", "/srv/store"))  # a new draft replaces the old
    assert draft.load().id == "id-two"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"just a string"'])
def test_a_damaged_file_is_a_config_error_naming_it(env, text):
    (env.work / STATE_FILE).write_text(text)
    with pytest.raises(ConfigError, match=f"cannot read {env.work / STATE_FILE} .*; delete it or pass --id"):
        draft.load()


def test_forget_drops_only_that_draft(env):
    draft.save(ONE)
    draft.forget("some-other-id")
    assert draft.load() == ONE
    draft.forget("id-one")
    assert draft.load() is None and os.listdir(env.work) == []
    draft.forget("id-one")  # nothing remembered: fine
    (env.work / STATE_FILE).write_text("{damaged")
    draft.forget("id-one")  # a damaged file is left for the user to see
    assert (env.work / STATE_FILE).read_text() == "{damaged"


def test_damaged_state_file(env, mountfs):
    (env.work / STATE_FILE).write_text("{not json")
    assert STATE_FILE in mountfs.fails("upload", code=2)


def test_remembered_draft(env, mountfs):
    ds_id = mountfs("create", "--project", "p", "--name", "n").stdout.strip()
    state = json.loads((env.work / STATE_FILE).read_text())
    assert state["id"] == ds_id and state["version"] == "1.0.0"

    mountfs("add", "--files", env.data / "labels.csv")
    assert mountfs.json("list") == [{"path": "labels.csv", "size": (env.data / "labels.csv").stat().st_size}]
    assert mountfs.json("search") == []  # drafts only with --all
    assert [(d["id"], d["status"]) for d in mountfs.json("search", "--all")] == [(ds_id, "draft")]
    mountfs("upload", "--no-compression")
    assert mountfs.json("info")["status"] == "uploaded"
    mountfs("close", "--no-upload")  # nothing pending: allowed
    # still remembered, as clearml-data keeps its last dataset: info and list need no --id
    assert json.loads((env.work / STATE_FILE).read_text())["id"] == ds_id
    assert mountfs.json("info")["status"] == "completed"
    assert mountfs.json("info", "--id", ds_id)["status"] == "completed"
    # closing again by id is harmless
    assert "already finalized" in mountfs("close", "--id", ds_id).stdout


def test_two_folders_build_two_drafts_side_by_side(env, mountfs, monkeypatch):
    left, right = env.work / "left", env.work / "right"
    ids = {}
    for folder, name in ((left, "a"), (right, "b")):
        folder.mkdir()
        monkeypatch.chdir(folder)
        ids[folder] = mountfs("create", "--project", "p", "--name", name).stdout.strip()
    for folder, added in ((left, env.data / "labels.csv"), (right, env.data / "val")):
        monkeypatch.chdir(folder)
        mountfs("add", "--files", added)  # no --id: this folder's draft
    monkeypatch.chdir(left)
    assert [f["path"] for f in mountfs.json("list")] == ["labels.csv"]
    mountfs("close")
    assert mountfs.json("info")["id"] == ids[left]  # the closed version, still this folder's
    assert json.loads((right / STATE_FILE).read_text())["id"] == ids[right]
    monkeypatch.chdir(right)
    assert mountfs.json("info")["id"] == ids[right]
    assert [f["path"] for f in mountfs.json("list")] == ["img_0003.jpg"]
