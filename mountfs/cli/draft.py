"""The dataset remembered in the working directory, so ``add``/``upload``/``close`` need no ``--id``.

Like ``clearml-data``, ``mountfs create`` writes the new draft's id to a small
state file in the current folder.  ``close`` keeps it there, as
``clearml-data`` keeps its last dataset for the next command: ``info``,
``list`` and the other reading commands show the new version without
``--id``, and ``add`` says that it is finalized.  The next ``create``
replaces it; ``delete`` of that dataset forgets it.  The file is per folder,
so two shells in two folders can build two datasets side by side.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from ..errors import ConfigError

STATE_FILE = ".mountfs-dataset.json"


@dataclass(frozen=True)
class RememberedDraft:
    id: str
    project: str
    name: str
    version: str
    #: the catalog store the draft was created in, to explain a miss in another store
    store: str


def state_path() -> str:
    return os.path.join(os.getcwd(), STATE_FILE)


def load() -> RememberedDraft | None:
    """The remembered draft, or ``None`` when this folder has none."""
    path = state_path()
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return RememberedDraft(**{k: str(doc.get(k, "")) for k in RememberedDraft.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}); delete it or pass --id") from None


def save(draft: RememberedDraft) -> str:
    """Remember ``draft`` in the current folder (written to a temp name, then renamed)."""
    path = state_path()
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(draft), fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def forget(dataset_id: str) -> None:
    """Drop the remembered dataset if it is ``dataset_id`` (it was deleted)."""
    try:
        current = load()
    except ConfigError:
        return
    if current is not None and current.id == dataset_id:
        try:
            os.remove(state_path())
        except FileNotFoundError:
            pass
