"""``mountfs rename`` and ``mountfs move`` (clearml-data's option names): one line out, one line per error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mountfs import Dataset


def _build(env, mountfs, project: str, name: str, versions: int = 2) -> list[str]:
    ids = []
    for _ in range(versions):
        mountfs("create", "--project", project, "--name", name)
        mountfs("add", "--files", env.data)
        mountfs("close")
        ids.append(Dataset.get(dataset_project=project, dataset_name=name).id)
    return ids


def _ids(project: str, name: str) -> list[str]:
    return sorted(d["id"] for d in Dataset.list_datasets(dataset_project=project, only_completed=False)
                  if d["name"] == name and d["project"] == project)


def test_rename_then_move_to_a_nested_project(env, mountfs) -> None:
    ids = _build(env, mountfs, "vision", "pets")
    draft = mountfs("create", "--project", "vision", "--name", "pets").stdout.strip()
    out = mountfs("rename", "--new-name", "animals", "--project", "vision", "--name", "pets").stdout
    assert out == "renamed vision/pets to vision/animals (3 versions)\n"
    assert _ids("vision", "animals") == sorted(ids + [draft]) and _ids("vision", "pets") == []
    out = mountfs("move", "--new-project", "archive/2024", "--project", "vision", "--name", "animals").stdout
    assert out == "moved vision/animals to archive/2024/animals (3 versions)\n"
    assert _ids("archive/2024", "animals") == sorted(ids + [draft])
    # the remembered draft is found by id: add and close go on under the new name
    mountfs("add", "--files", env.data / "labels.csv")
    mountfs("close")
    assert Dataset.get(dataset_id=draft).project == "archive/2024"
    assert mountfs.json("search", "--project", "archive")[0]["id"] == draft


@pytest.mark.parametrize("args, code, says", [
    (["rename", "--project", "p", "--name", "d"], 2, "missing --new-name; see `mountfs rename --help`"),
    (["move", "--new-project", "q"], 2, "missing --project, --name"),
    (["rename", "--new-name", "x", "--project", "p", "--name", "nothing"], 3, "no dataset p/nothing"),
    (["rename", "--new-name", "taken", "--project", "p", "--name", "d"], 5, "p/taken already exists (version 1.0.0)"),
    (["move", "--new-project", "q", "--project", "p", "--name", "d"], 5, "q/d already exists"),
    (["rename", "--new-name", "a/b", "--project", "p", "--name", "d"], 2, "contains '/'"),
    (["move", "--new-project", "q//r", "--project", "p", "--name", "d"], 2, "new project 'q//r'"),
    (["rename", "--new-name", "d", "--project", "p", "--name", "d"], 2, "p/d is already there"),
])
def test_bad_input_is_one_line_and_changes_nothing(env, mountfs, args: list[str], code: int, says: str) -> None:
    ids = _build(env, mountfs, "p", "d")
    _build(env, mountfs, "p", "taken", versions=1)
    _build(env, mountfs, "q", "d", versions=1)
    assert says in mountfs.fails(*args, code=code)
    assert _ids("p", "d") == sorted(ids)


@pytest.mark.s3
def test_rename_and_move_on_seaweedfs(env, mountfs, seaweed_store: str) -> None:
    ids = _build(env, mountfs, "p", "d")
    _build(env, mountfs, "p", "taken", versions=1)
    assert "p/taken already exists" in mountfs.fails("rename", "--new-name", "taken", "--project", "p", "--name", "d",
                                                     code=5)
    assert mountfs("rename", "--new-name", "e", "--project", "p", "--name", "d").stdout.startswith("renamed p/d to p/e")
    assert mountfs("move", "--new-project", "x/y", "--project", "p", "--name", "e").stdout.startswith("moved")
    assert _ids("x/y", "e") == sorted(ids) and _ids("p", "d") == _ids("p", "e") == []
    got = Dataset.get(dataset_project="x/y", dataset_name="e")
    assert (Path(got.get_local_copy() or "") / "labels.csv").read_bytes() == (env.data / "labels.csv").read_bytes()
