"""``mountfs.Dataset``: ClearML Data's ``Dataset`` API over a mountfs store.

Method names, parameters and their meanings follow ``clearml.Dataset``; where
ClearML's parameter has no meaning here (``use_current_task``,
``use_soft_links``, ``shallow_search`` ...) it is accepted and ignored with a debug log.

``Dataset`` itself holds no logic: each call goes to the part whose job it is
(``sdk.changes``, ``sdk.closing``, ``sdk.reading``, ``sdk.copies``,
``sdk.metadata``; ``sdk.lifecycle`` for the catalog-wide class methods), all
sharing one ``sdk.version.Version``.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Sequence

from ..catalog import DatasetRecord
from ..errors import MountfsError, UnknownArgument, UsageError
from ..session import current
from ..store import Store
from . import lifecycle, runs
from .changes import DraftChanges
from .closing import DraftClosing
from .copies import LocalCopies
from .logger import Logger
from .metadata import Metadata
from .mounting import MountedPath, Mounting
from .reading import VersionReading
from .version import EntryView, Version, as_tags, renumber

log = logging.getLogger(__name__)


def _as_id(ds: "str | Dataset") -> str:
    return ds.id if isinstance(ds, Dataset) else str(ds)


class Dataset:
    """One version of a dataset: a draft open for changes, or a finalized, immutable version."""

    def __init__(self, version: Version) -> None:
        # use Dataset.create() or Dataset.get(); this constructor is internal
        self._version = version
        self._changes = DraftChanges(version)
        self._closing = DraftClosing(version)
        self._reading = VersionReading(version, functools.partial(lifecycle.by_id, version.session))
        self._copies = LocalCopies(version)
        self._metadata = Metadata(version)
        self._mounting = Mounting(version)
        self._logger: Logger | None = None

    # ------------------------------------------------------------------ lookup

    @classmethod
    def create(
        cls,
        dataset_name: str | None = None,
        dataset_project: str | None = None,
        dataset_tags: str | Sequence[str] | None = None,
        parent_datasets: Sequence["str | Dataset"] | None = None,
        use_current_task: bool = False,
        dataset_version: str | None = None,
        output_uri: str | None = None,
        description: str | None = None,
    ) -> "Dataset":
        """Create a new draft version.

        :param dataset_name: name of the dataset (a directory name in the mount)
        :param dataset_project: project, may be nested (``vision/detection``)
        :param dataset_tags: tags for searching (a plain string is one tag)
        :param parent_datasets: ids (or ``Dataset`` objects) of finalized versions whose files
            this version starts from; merged in order, a later parent overriding an earlier one
        :param use_current_task: accepted for ClearML compatibility; ignored
        :param dataset_version: semantic version (``1.0``, ``1.0.1``); by default the latest
            version of this project/name with its last component incremented, ``1.0.0`` for the first
        :param output_uri: store where this version's data is uploaded (default: the catalog's store)
        :param description: free text
        """
        if use_current_task:
            log.debug("use_current_task is a ClearML task feature; ignored")
        return cls(lifecycle.create(
            current(), dataset_name, dataset_project, as_tags(dataset_tags, "dataset_tags"),
            [_as_id(p) for p in parent_datasets or []],
            dataset_version, output_uri, description,
        ))

    @classmethod
    def squash(
        cls,
        dataset_name: str,
        dataset_ids: Sequence["str | Dataset"] | None = None,
        dataset_project_name_pairs: Sequence[tuple[str, str]] | None = None,
        output_url: str | None = None,
        close_squashed_dataset: bool = True,
    ) -> "Dataset":
        """Merge finalized versions into one new, finalized version with no parents.

        Files are merged in the order given, a later dataset overriding an
        earlier one; one dataset alone is flattened into a root version.
        Chunks already in the target store are not copied again.

        :param dataset_name: name of the new dataset (in the first dataset's project)
        :param dataset_ids: ids (or ``Dataset`` objects) to merge
        :param dataset_project_name_pairs: ``(project, name)`` pairs: the latest completed version of each
        :param output_url: store for the new version's data (default: the first dataset's)
        :param close_squashed_dataset: ``False`` leaves the new version a draft (upload and finalize it yourself)
        """
        return cls(lifecycle.squash(
            current(), dataset_name, [_as_id(d) for d in dataset_ids or []], list(dataset_project_name_pairs or []),
            output_url, close_squashed_dataset,
        ))

    @classmethod
    def get(
        cls,
        dataset_id: str | None = None,
        dataset_project: str | None = None,
        dataset_name: str | None = None,
        dataset_tags: str | Sequence[str] | None = None,
        only_completed: bool = False,
        only_published: bool = False,
        include_archived: bool = False,
        auto_create: bool = False,
        writable_copy: bool = False,
        dataset_version: str | None = None,
        alias: str | None = None,
        overridable: bool = False,
        shallow_search: bool = False,
        **kwargs: Any,
    ) -> "Dataset":
        """Get a dataset version by id, or the latest one matching project/name/tags/version
        (the highest semantic version, ties by the newest, as ClearML's).

        :param only_completed: only finalized (completed or published) versions
        :param only_published: only published versions
        :param auto_create: create a new draft when nothing matches
        :param writable_copy: return a new draft child of the match, open for changes
        :param dataset_tags: only versions carrying every one of these tags (a plain string is one tag)
        :param alias: record ``alias -> the version`` (with project, name, version, time, host, pid and
            script) in the run record: ``$MOUNTFS_RUN_RECORD``, else ``./.mountfs/run.json``
            (``sdk.runs``; ClearML writes it into the task's "Datasets" hyperparameters)
        :param overridable: with ``alias``, use the dataset ``MOUNTFS_DATASET_<ALIAS>`` or the record's
            ``"overrides"`` names instead (an override naming nothing is a ``UsageError``); without it
            an override is ignored with a warning

        Other keyword arguments raise ``UnknownArgument`` (a ``TypeError``, and a
        ``ValueError`` as ClearML raises); ClearML's private ``_``-prefixed ones are ignored.
        """
        unknown = sorted(k for k in kwargs if not k.startswith("_"))
        if unknown:
            raise UnknownArgument(
                f"Dataset.get() got unknown keyword argument(s) {', '.join(unknown)}; "
                "see help(Dataset.get) for its parameters"
            )
        ignored = {"shallow_search": shallow_search, "include_archived": include_archived,
                   "overridable without alias": overridable and alias is None}
        for name, value in ignored.items():
            if value:
                log.debug("%s is a ClearML server feature; ignored", name)
        query = runs.Query(dataset_id, dataset_project, dataset_name, as_tags(dataset_tags, "dataset_tags") or None,
                           only_completed, only_published, auto_create, writable_copy, dataset_version)
        if alias is not None:
            return cls(runs.get(current(), alias, overridable, query))
        return cls(query.run(current()))

    @staticmethod
    def list_datasets(
        dataset_project: str | None = None,
        partial_name: str | None = None,
        tags: str | Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        only_completed: bool = True,
        recursive_project_search: bool = True,
        include_archived: bool = True,
    ) -> list[dict[str, Any]]:
        """Datasets matching the filters, newest first, as dicts (id, name, project, version, tags, status, created).

        :param partial_name: a regular expression searched anywhere in the name, ignoring case (ClearML's)
        :param tags: only versions carrying every one of these tags (a plain string is one tag)
        """
        return lifecycle.list_datasets(current(), dataset_project, partial_name, as_tags(tags) or None, ids,
                                       only_completed,
                                       recursive_project_search)

    # --- rename/move ---

    @classmethod
    def rename(cls, new_dataset_name: str, dataset_project: str, dataset_name: str) -> None:
        """Rename a dataset: every version (drafts included) moves to ``new_dataset_name``.

        Ids and version numbers stay.  An existing ``dataset_project/new_dataset_name``
        is refused (``Conflict``) before anything changes; after a crash, the same
        call completes the rename.  ``Dataset`` objects already open keep working.

        :param new_dataset_name: new name to assign to the dataset
        :param dataset_project: project containing the dataset
        :param dataset_name: current name of the dataset (before renaming)
        """
        lifecycle.rename(current(), new_dataset_name, dataset_project, dataset_name)

    @classmethod
    def move_to_project(cls, new_dataset_project: str, dataset_project: str, dataset_name: str) -> None:
        """Move a dataset to another project (may be nested, ``a/b``): every version, drafts included.

        An existing dataset of that name in ``new_dataset_project`` is refused
        (``Conflict``) before anything changes; after a crash, the same call completes the move.

        :param new_dataset_project: new project to move the dataset to
        :param dataset_project: project of the dataset to move
        :param dataset_name: name of the dataset to move
        """
        lifecycle.move_to_project(current(), new_dataset_project, dataset_project, dataset_name)

    # --- delete ---

    @classmethod
    def delete(
        cls,
        dataset_id: str | None = None,
        dataset_project: str | None = None,
        dataset_name: str | None = None,
        force: bool = False,
        dataset_version: str | None = None,
        entire_dataset: bool = False,
        shallow_search: bool = False,
        delete_files: bool = True,
        delete_external_files: bool = False,
        gc: bool = True,
    ) -> None:
        """Delete one version, or every matching one with ``entire_dataset=True`` and ``force=True``.

        Records and catalog pointers go at once (a running mount drops the
        versions at its next refresh).  Unlike ClearML, a child of a deleted
        version stays fully readable: its manifest holds every file and only
        references its parents' packs, which stay until no manifest needs them.
        Unlike ClearML, a refused call raises instead of logging a warning.

        :param dataset_id: the version to delete (not together with project/name)
        :param dataset_project: project of the version(s)
        :param dataset_name: name of the version(s)
        :param force: delete a version that is another version's parent; required by ``entire_dataset``
        :param dataset_version: only this version of project/name
        :param entire_dataset: delete every version matching project/name/version (needs ``force=True``)
        :param shallow_search: accepted for ClearML compatibility (every version is searched)
        :param delete_files: free the packs no remaining version needs (``mountfs gc``) right away;
            False leaves them for the next ``mountfs gc``
        :param delete_external_files: refused (``UsageError``): mountfs never deletes external sources
        :param gc: mountfs's own; False is ``delete_files=False`` (``mountfs delete --no-gc``)
        """
        if shallow_search:
            log.debug("shallow_search: every version is searched; ignored")
        sess = current()
        lifecycle.delete(sess, dataset_id, dataset_project, dataset_name, force, dataset_version, entire_dataset,
                         delete_external_files)
        if delete_files and gc:
            lifecycle.collect_garbage(sess)

    # -------------------------------------------------------------- properties

    @property
    def id(self) -> str:
        """The version's id (time-ordered, unique across the catalog)."""
        return self._version.record.id

    @property
    def name(self) -> str:
        """The dataset's name (a directory name in the mount)."""
        return self._version.record.name

    @property
    def project(self) -> str:
        """The dataset's project, possibly nested (``vision/detection``)."""
        return self._version.record.project

    @property
    def version(self) -> str:
        """The semantic version (``1.0.0``); setting it renumbers a draft (see ``sdk.version.renumber``)."""
        return self._version.record.version

    @version.setter
    def version(self, version: str) -> None:
        # ClearML parity: the new number is claimed first, a taken one refused (Conflict), the old one freed;
        # a finalized version keeps its number (StateError)
        renumber(self._version, version)

    @property
    def tags(self) -> list[str]:
        """Tags for searching; setting them saves the record."""
        return list(self._version.record.tags)

    @tags.setter
    def tags(self, values: str | Sequence[str] | None) -> None:
        self._version.record.tags = as_tags(values)
        self._version.save_record()

    @property
    def status(self) -> str:
        """``draft``, ``uploaded``, ``completed`` or ``published``."""
        return self._version.record.status

    @property
    def description(self) -> str:
        """Free text given at create or by ``set_description``."""
        return self._version.record.description

    @property
    def record(self) -> DatasetRecord:
        """The dataset record as stored in the catalog."""
        return self._version.record

    @property
    def file_entries_dict(self) -> dict[str, EntryView]:
        """path -> entry of every file in this version, external ones included (ClearML keeps those apart,
        in ``link_entries_dict``).  Each is a copy that answers to ClearML's names (``relative_path``,
        ``size``, ``hash``, ``parent_dataset_id``, ``link``) and to mountfs's (``digest``, ``chunks`` ...)."""
        return self._reading.entries()

    @property
    def storage(self) -> Store:
        """The store holding this version's data."""
        return self._version.store

    # --- ClearML parity: tags, description, version number, entries, chunks ---

    def add_tags(self, tags: str | Sequence[str]) -> None:
        """Add tags (a plain string is one tag); those already there stay, none is added twice."""
        self.tags = self._version.record.tags + as_tags(tags)

    def set_description(self, description: str) -> None:
        """Replace the description, a draft's or a finalized version's (it is not part of the content)."""
        self._version.record.description = str(description or "")
        self._version.save_record()

    def get_default_storage(self) -> str:
        """URL of the store this version's data is uploaded to (``output_uri``, or the catalog's store)."""
        return self._version.store.url

    def get_num_chunks(self, include_parents: bool = True) -> int:
        """Number of packs (mountfs's upload unit, ClearML's chunks) holding this version's files.

        :param include_parents: True: every pack its files are in, wherever they were uploaded;
            False: only the packs its own upload added (none of its parents' files are in them)
        """
        return self._reading.num_chunks(include_parents)

    @property
    def file_entries(self) -> list[EntryView]:
        """The stored (not external) files, as entries with ClearML's names; see ``file_entries_dict``."""
        return [e for e in self._reading.entries().values() if not e.is_external]

    @property
    def link_entries(self) -> list[EntryView]:
        """The external files (``add_external_files``), as entries with ClearML's names (``link``: the URL)."""
        return list(self.link_entries_dict.values())

    @property
    def link_entries_dict(self) -> dict[str, EntryView]:
        """path -> entry of each external file (``add_external_files``), with ClearML's names."""
        return {p: e for p, e in self._reading.entries().items() if e.is_external}

    def is_final(self) -> bool:
        """True once finalized (completed or published): the content can no longer change."""
        return self._version.record.is_final

    def is_dirty(self) -> bool:
        """True while files were added that are not uploaded yet."""
        return self._version.is_dirty()

    def __repr__(self) -> str:
        r = self._version.record
        return f"<Dataset {r.project}/{r.name} {r.version} id={r.id} status={r.status}>"

    # ---------------------------------------------------------- draft changes

    def add_files(
        self,
        path: str | os.PathLike[str],
        wildcard: str | Sequence[str] | None = None,
        local_base_folder: str | None = None,
        dataset_path: str | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> int:
        """Add a file or a folder's files to the draft; return how many were added or changed.

        :param path: a file or folder on local disk
        :param wildcard: pattern(s) on file names or relative paths (``*.jpg``), string or list
        :param local_base_folder: files are stored relative to this folder instead of ``path``
        :param dataset_path: folder inside the dataset to put the files under
        :param recursive: descend into sub-folders
        :param verbose: print each file added and show a progress bar
        :param max_workers: threads hashing files (default: logical cores)
        :param show_progress: show a progress bar while hashing
        """
        return self._changes.add_files(path, wildcard, local_base_folder, dataset_path, recursive, verbose,
                                       max_workers, show_progress)

    def add_external_files(
        self,
        source_url: str | Sequence[str],
        wildcard: str | Sequence[str] | None = None,
        dataset_path: str | Sequence[str] | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
        read_hash: bool = False,
    ) -> int:
        """Add files that stay where they are (s3://, gs://, azure://, http(s)://, file://); return how many.

        A folder URL adds every object under it.  Entries keep the source URL,
        size and ETag/generation: a source that changes later is reported when
        it is read instead of serving different bytes.

        :param source_url: one URL or a list of them
        :param wildcard: pattern(s) on object names or relative paths
        :param dataset_path: folder inside the dataset to put the files under, or a list of one folder per URL
        :param recursive: include objects in sub-folders of a folder URL
        :param read_hash: accepted for ClearML compatibility: ClearML reads a SHA-256 its own uploads
            left in the object's metadata, to tell a changed source; the ETag/generation kept here does that
        """
        if read_hash:
            log.debug("add_external_files(read_hash=True): ignored, sources are checked by size and ETag")
        return self._changes.add_external_files(source_url, wildcard, dataset_path, recursive, verbose, max_workers)

    def remove_files(self, dataset_path: str | None = None, recursive: bool = True, verbose: bool = False) -> int:
        """Remove files matching ``dataset_path`` (a path, folder or wildcard); return how many.

        With no ``dataset_path`` every file is removed (with ``recursive=False``:
        those at the top level), as ClearML.
        """
        return self._changes.remove_files("*" if dataset_path is None else dataset_path, recursive, verbose)

    # --- sync ---

    def sync_folder(
        self,
        local_path: str | os.PathLike[str],
        dataset_path: str | os.PathLike[str] | None = None,
        verbose: bool = False,
        *,
        verify: bool = False,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> tuple[int, int, int]:
        """Make the draft match a local folder (recursively); return ``(removed, added, modified)`` counts.

        New files are added, changed ones added again, and files of the draft
        under ``dataset_path`` that the folder no longer has are removed.  A
        file whose size and mtime equal the draft's entry (the parent's, or an
        earlier sync's) is unchanged and not read.  Can be called again after
        ``upload()`` (ClearML's folder-sync example).

        :param local_path: the folder
        :param dataset_path: folder inside the dataset it stands for (default: the root)
        :param verify: hash every file instead of trusting size and mtime
        """
        return self._changes.sync_folder(local_path, dataset_path, verbose, verify, max_workers, show_progress)

    def discard_draft(self) -> None:
        """mountfs's own: delete this draft (never finalized) and free its version number."""
        self._changes.discard()

    # ---------------------------------------------------------------- closing

    def upload(
        self,
        show_progress: bool = True,
        verbose: bool = False,
        output_url: str | None = None,
        compression: Any = None,
        chunk_size: int | None = None,
        max_workers: int | None = None,
        retries: int = 3,
        preview: bool = True,
        upload_as_external_links: bool = False,
    ) -> None:
        """Upload the added files' new chunks, in packs, to the dataset's store.

        Chunks the store already holds (from any dataset) are not sent again, so
        a retried upload only sends what did not land.

        :param output_url: store to upload to, if not the one given at create
        :param compression: ``None`` = zstd where it pays; ``False``/``"none"``/``0`` = store raw
        :param chunk_size: target pack size in MiB (default 32; ClearML's -1, one archive, means the default)
        :param max_workers: packs compressed and sent in parallel (default: logical cores)
        :param retries: accepted for ClearML compatibility: every store request is retried
            (``backends.retry.BUDGET``), and calling ``upload`` again resumes a failed one
        :param preview: accepted for ClearML compatibility (ClearML attaches a listing of each zip for its
            web UI; there is none here: ``list_files`` and the mount show the files)
        :param upload_as_external_links: ``True`` (ClearML: each file uploaded as an object of its own and
            kept as an external link) is refused: files are stored in deduplicated packs here; copy them to a
            bucket and use ``add_external_files`` to keep them as plain objects
        """
        if upload_as_external_links:
            raise UsageError("upload(upload_as_external_links=True) is not supported: mountfs stores files in "
                             "deduplicated packs; copy the files to a bucket and add them with add_external_files(url)")
        if not preview:
            log.debug("upload(preview=False): there are no previews to skip")
        self._closing.upload(show_progress, verbose, output_url, compression, chunk_size, max_workers, retries)

    def finalize(self, verbose: bool = False, raise_on_error: bool = True, auto_upload: bool = False) -> bool:
        """Close the version: write its manifest and mark it completed; it never changes after this.

        :param auto_upload: upload pending files first instead of failing
        :param raise_on_error: raise on failure (else log it and return False)
        """
        if not self.is_final():
            try:
                if self._mounting.close_mounted(auto_upload):  # a mounted writable copy: `mountfs close`
                    return True
            except MountfsError:
                if raise_on_error:
                    raise
                log.exception("finalize of %s failed", self.id)
                return False
        return self._closing.finalize(verbose, raise_on_error, auto_upload)

    def mount(self, path: str | os.PathLike[str]) -> MountedPath:
        """Mount this version at ``path``: a finalized one read-only, a draft as a writable copy (mountfs only).

        Files of the draft read lazily through the cache; what is written goes
        to the copy's upper layer; ``finalize(auto_upload=True)`` uploads only
        what changed and mounts the new version read-only at ``path``.  Returns
        the mountpoint, also a context manager that unmounts (a writable copy
        keeps its changes for the next mount)."""
        return self._mounting.mount(path)

    def unmount(self, path: str | os.PathLike[str] | None = None) -> None:
        """Unmount ``path`` (default: where this version is mounted on its own)."""
        self._mounting.unmount(path)

    def publish(self, raise_on_error: bool = True) -> bool:
        """Mark a finalized version as published."""
        return self._closing.publish(raise_on_error)

    # ---------------------------------------------------------------- reading

    def list_files(self, dataset_path: str | None = None, recursive: bool = True, dataset_id: str | None = None) -> list[str]:
        """Paths of the files in this version, optionally filtered by a path or wildcard; with ``dataset_id``,
        only those whose content came from that version (this one, or an ancestor it inherited them from)."""
        return self._reading.list_files(dataset_path, recursive, dataset_id)

    def list_added_files(self, dataset_id: str | None = None) -> list[str]:
        """Files in this version that none of its parents has (``dataset_id``: that version does not have)."""
        return self._reading.changes(dataset_id)[0]

    def list_modified_files(self, dataset_id: str | None = None) -> list[str]:
        """Files whose content differs from the parents' (``dataset_id``: from that version's)."""
        return self._reading.changes(dataset_id)[1]

    def list_removed_files(self, dataset_id: str | None = None) -> list[str]:
        """Files the parents have that this version removed (``dataset_id``: that version has, this one not)."""
        return self._reading.changes(dataset_id)[2]

    def get_dependency_graph(self) -> dict[str, list[str]]:
        """id -> parent ids, for this version and all its ancestors."""
        return self._reading.get_dependency_graph()

    def verify_dataset_hash(
        self, local_copy_path: str | None = None, skip_hash: bool = False, verbose: bool = False
    ) -> list[str]:
        """Check content against the recorded digests; return the paths that fail.

        With ``local_copy_path`` the files of that folder are checked (``skip_hash``:
        sizes only); without it every chunk of the version is read from the store
        and checked (``skip_hash`` does not apply there).  External files have
        no digest unless they were read: a local copy of one is checked by its
        size, and in the store check its source by size and ETag.
        """
        return self._reading.verify_dataset_hash(local_copy_path, skip_hash, verbose)

    # ------------------------------------------------------------ local copies

    def get_local_copy(
        self,
        use_soft_links: bool | None = None,
        part: int | None = None,
        num_parts: int | None = None,
        raise_on_error: bool = True,
        max_workers: int | None = None,
        files: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> str | None:
        """A read-only folder with this version's files, built from the local cache and reused when complete.

        :param part: with ``num_parts``, only slice ``part`` (0-based) of ``num_parts`` disjoint slices
        :param files: only these paths (or folders, or wildcards)
        :param max_workers: parallel fetch/write threads (default: logical cores)
        :param show_progress: show a progress bar while fetching
        """
        if use_soft_links:
            log.debug("use_soft_links: local copies are always plain files; ignored")
        return self._copies.get_local_copy(part, num_parts, raise_on_error, max_workers, files, show_progress)

    def get_mutable_local_copy(
        self,
        target_folder: str | os.PathLike[str],
        overwrite: bool = False,
        part: int | None = None,
        num_parts: int | None = None,
        raise_on_error: bool = True,
        max_workers: int | None = None,
        show_progress: bool = False,
    ) -> str | None:
        """Write this version's files into ``target_folder`` as plain writable files.

        :param overwrite: empty a non-empty ``target_folder`` first (else it is refused)
        :param show_progress: show a progress bar while copying
        """
        return self._copies.get_mutable_local_copy(target_folder, overwrite, part, num_parts, raise_on_error,
                                                   max_workers, show_progress)

    # ---------------------------------------------------------------- metadata

    def set_metadata(self, metadata: Any, metadata_name: str = "metadata", ui_visible: bool = True) -> None:
        """Attach a JSON-able object or a pandas DataFrame under ``metadata_name``."""
        self._metadata.set_metadata(metadata, metadata_name, ui_visible)

    def get_metadata(self, metadata_name: str = "metadata") -> Any:
        """The object stored by ``set_metadata`` under ``metadata_name`` (``None`` if there is none)."""
        return self._metadata.get_metadata(metadata_name)

    # ----------------------------------------------------------------- reports

    def get_logger(self) -> Logger:
        """The logger of this version (ClearML's ``Logger`` methods: ``report_table``, ``report_histogram``,
        ``report_image``, ...): reports are stored beside the version, a draft's travel to its finalized
        version; allowed on a finalized version too."""
        if self._logger is None:
            self._logger = Logger(self._version)
        return self._logger

    def get_reports(self) -> list[dict[str, Any]]:
        """Every report of this version as plain dicts, oldest first (mountfs only; docs/FORMAT.md "Reports")."""
        return self.get_logger().get_reports()
