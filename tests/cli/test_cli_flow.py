"""The CLI end to end, in-process: build versions, read them back, copy and verify them.

Each command's own cases are in the test file of its module: test_datasets.py, test_browse.py,
test_common.py, test_draft.py, test_main.py, test_output.py.
"""

from __future__ import annotations

from pathlib import Path


def _create(mountfs, *args: str) -> str:
    out = mountfs("create", *args).stdout.strip()
    assert len(out.splitlines()) == 1  # only the id on stdout, for $(mountfs create ...)
    return out


def test_full_flow(env, mountfs):
    ds_id = _create(mountfs, "--project", "vision/cls", "--name", "pets", "--version", "1.0",
                    "--tags", "raw", "jpeg", "--description", "first cut")
    mountfs("add", "--id", ds_id, "--files", env.data / "train", env.data / "labels.csv", "--dataset-folder", "all")
    mountfs("add", "--id", ds_id, "--files", env.data, "--wildcard", "img_0003*", "--non-recursive")  # nothing: not recursive
    mountfs("upload", "--id", ds_id, "--chunk-size", "1", "--max-workers", "2")
    closed = mountfs("close", "--id", ds_id)
    assert "finalized" in closed.stdout

    files = mountfs.json("list", "--id", ds_id)
    assert files == [
        {"path": "all/img_0001.jpg", "size": 1000},
        {"path": "all/img_0002.jpg", "size": 2000},
        {"path": "all/labels.csv", "size": (env.data / "labels.csv").stat().st_size},
    ]
    assert [f["path"] for f in mountfs.json("list", "--project", "vision/cls", "--name", "pets", "--filter", "*.jpg")] == [
        "all/img_0001.jpg", "all/img_0002.jpg"
    ]
    human = mountfs("list", "--id", ds_id).stdout
    assert "all/labels.csv" in human and "3 files" in human

    found = mountfs.json("search", "--project", "vision", "--name", "PET")
    assert [(d["id"], d["version"], d["status"], d["file_count"]) for d in found] == [(ds_id, "1.0", "completed", 3)]
    assert set(found[0]["tags"]) == {"raw", "jpeg"}
    assert mountfs.json("search", "--tags", "missing-tag") == []
    table = mountfs("search").stdout.splitlines()
    assert table[0].split() == ["ID", "PROJECT", "NAME", "VERSION", "STATUS", "FILES", "SIZE", "CREATED"]
    assert ds_id in table[1]

    info = mountfs.json("info", "--project", "vision/cls", "--name", "pets")
    assert info["id"] == ds_id and info["status"] == "completed" and info["parents"] == []
    assert info["changes"] == {"added": 3, "modified": 0, "removed": 0}
    assert info["file_count"] == 3 and info["metadata"] == [] and info["description"] == "first cut"
    assert "status:" in mountfs("info", "--id", ds_id).stdout

    ro = Path(mountfs("get", "--id", ds_id).stdout.strip())
    assert (ro / "all" / "img_0002.jpg").read_bytes() == (env.data / "train" / "img_0002.jpg").read_bytes()
    assert str(ro).startswith(str(env.cache))
    mountfs("verify", "--id", ds_id)
    mountfs("verify", "--id", ds_id, "--local-copy", ro)

    part0 = Path(mountfs("get", "--id", ds_id, "--part", "0", "--num-parts", "2").stdout.strip())
    part1 = Path(mountfs("get", "--id", ds_id, "--part", "1", "--num-parts", "2").stdout.strip())
    got = sorted(str(p.relative_to(d)) for d in (part0, part1) for p in d.rglob("*") if p.is_file())
    assert got == ["all/img_0001.jpg", "all/img_0002.jpg", "all/labels.csv"]
    only = Path(mountfs("get", "--id", ds_id, "--files", "all/labels.csv").stdout.strip())
    assert [p.name for p in only.rglob("*") if p.is_file()] == ["labels.csv"]

    copy = env.work / "copy"
    assert Path(mountfs("get", "--id", ds_id, "--copy", copy).stdout.strip()) == copy
    target = copy / "all" / "img_0001.jpg"
    assert target.read_bytes() == (env.data / "train" / "img_0001.jpg").read_bytes()
    target.write_bytes(b"edited")  # a mutable copy is writable
    mountfs("verify", "--id", ds_id, "--local-copy", copy, "--skip-hash", code=6)
    mountfs("get", "--id", ds_id, "--copy", copy, "--overwrite")
    mountfs("verify", "--id", ds_id, "--local-copy", copy)

    mountfs("publish", "--id", ds_id)
    assert mountfs.json("info", "--id", ds_id)["status"] == "published"


def test_child_version_with_parents_and_remove(env, mountfs):
    parent = _create(mountfs, "--project", "p", "--name", "n")
    mountfs("add", "--files", env.data)
    mountfs("finalize")  # the SDK's name for close
    assert mountfs.json("info")["id"] == parent  # still remembered, finalized: info needs no --id

    child = _create(mountfs, "--parents", parent, "--tags", "v2")  # project and name come from the parent
    draft_info = mountfs.json("info")
    assert draft_info["id"] == child and draft_info["version"] == "1.0.1" and draft_info["parents"] == [parent]
    assert draft_info["status"] == "draft" and draft_info["file_count"] == 4

    assert "2 files removed" in mountfs("remove", "--files", "val", "labels.csv").stdout
    (env.data / "train" / "img_0001.jpg").write_bytes(b"changed")
    (env.data / "new.txt").write_text("new")
    mountfs("add", "--files", env.data / "train" / "img_0001.jpg", env.data / "new.txt", "--dataset-folder", "train")
    assert mountfs.json("info")["pending_upload"] is True
    mountfs("close")

    info = mountfs.json("info", "--id", child)
    assert info["changes"] == {"added": 1, "modified": 1, "removed": 2}
    assert [f["path"] for f in mountfs.json("list", "--project", "p", "--name", "n")] == [
        "train/img_0001.jpg", "train/img_0002.jpg", "train/new.txt"
    ]
    # the parent is unchanged, and --version picks it by name
    assert len(mountfs.json("list", "--project", "p", "--name", "n", "--version", "1.0.0")) == 4
    ro = Path(mountfs("get", "--project", "p", "--name", "n").stdout.strip())
    assert (ro / "train" / "img_0001.jpg").read_bytes() == b"changed"
    mountfs("verify", "--id", parent, child)
    assert [d["id"] for d in mountfs.json("search", "--tags", "v2")] == [child]
