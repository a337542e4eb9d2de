"""Writing a day: every table staged outside the dataset, put in place, then committed by one
replace of the day's commit record; what no commit names any more is removed afterwards.

Steps of one write of day D, by write id W (all under D's lock on a local disk):

1. remove what a crashed write of D left (staging, and data files no commit names);
2. write each table to ``_flowinst/staging/D/W/<table>/part-W.parquet``, a row group per part
   of the day appended (so a day of any size is written in bounded memory), then the new
   commit record beside them;
3. move each table's file into ``<table>/trigger_date=D/`` (a folder that does not exist yet is
   moved in whole, so it never appears empty);
4. replace ``_flowinst/commits/D.json``: the day is now W for ``read_table`` and ``dataset()``;
5. remove the day's data files the commit does not name, and the staging folder.

A crash before step 4 leaves the previous write committed; a crash after it, the new one. Data
files that a crash left beside the committed ones are removed by the next write of the day or by
:func:`repair`, which every run calls first. A root of Delta tables writes its days as
:mod:`flowinst_etl.storage.delta` says instead.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flowinst_etl.config import DEFAULT_RETENTION_HOURS
from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.storage import delta
from flowinst_etl.storage.commits import (
    encode,
    legacy_days,
    read_commit,
    read_legacy_manifest,
)
from flowinst_etl.storage.filesystem import (
    COMMIT_FILE,
    LEGACY_MANIFEST,
    PARTITION_KEY,
    Store,
    data_file_name,
)
from flowinst_etl.storage.root import (
    DELTA,
    PARQUET,
    RootRecord,
    check_format_name,
    check_root,
    claim_root,
    root_table_format,
)
from flowinst_etl.tables.schema import TABLES, conform, schema_fingerprint

COMPRESSION = "zstd"

_SCALARS = (bool, int, float, str)
_JSON_COLUMNS = frozenset({"graph", "parameters", "extra"})


@dataclass(frozen=True)
class WrittenDay:
    """What :func:`write_day` committed.

    Attributes:
        day: the partition day.
        paths: the Parquet file of each table written (a local path or a URL).
        rows: the row count of each table written.
        write_id: the id of this write, in every file name and manifest it made.
    """

    day: date
    paths: dict[str, str]
    rows: dict[str, int]
    write_id: str


def _check_reconciliation(reconciliation: Mapping[str, Any]) -> dict[str, Any]:
    checked = dict(reconciliation)
    for key, value in checked.items():
        if not isinstance(key, str) or not isinstance(value, _SCALARS):
            raise ConfigError(
                f"reconciliation entry {key!r}: {value!r} is not a str, int, float or bool"
            )
    try:
        json.dumps(checked, allow_nan=False)
    except ValueError as exc:
        raise ConfigError(f"reconciliation is not valid JSON: {exc}") from exc
    return checked


def write_day(
    root: str,
    day: date,
    tables: Mapping[str, pa.Table | pd.DataFrame],
    reconciliation: Mapping[str, int | str | float | bool],
    *,
    storage_options: Mapping[str, Any] | None = None,
    table_format: str | None = None,
) -> WrittenDay:
    """Write one partition day of some tables as one commit, replacing their earlier version.

    The tables given replace those of the day's previous commit; a table not given keeps its
    committed file. Readers through :func:`~flowinst_etl.storage.read.read_table` and
    :func:`~flowinst_etl.storage.read.dataset` see the day's previous commit until the new one is
    complete, then only the new one. Concurrent writers of one day on a local disk take turns;
    the last to commit wins. A day too large for memory is written in parts with
    :func:`open_day`.

    Args:
        root: the dataset root, a local path or an fsspec URL such as ``s3://bucket/prefix``.
        day: the partition day (``trigger_date``).
        tables: table name to rows, as Arrow tables or DataFrames with exactly the table's
            columns; an empty table writes an empty file with the full schema.
        reconciliation: figures for the day's checks (counts, ids); copied into every manifest,
            so never put credentials here.
        storage_options: passed to fsspec, e.g. ``{"client_kwargs": {"endpoint_url": ...}}``.
        table_format: ``parquet`` or ``delta``; ``None``: the root's (Parquet for a new root).

    Returns:
        The paths and row counts written.

    Raises:
        ConfigError: an unknown table name, data that does not fit its schema, a
            reconciliation value that is not a JSON scalar, an unusable root, or a
            ``table_format`` other than the root's.
        StoreError: the storage failed while writing or publishing.
    """
    with open_day(
        root, day, tables, storage_options=storage_options, table_format=table_format
    ) as writer:
        writer.append(tables)
        return writer.commit(reconciliation)


@contextlib.contextmanager
def open_day(
    root: str,
    day: date,
    tables: Iterable[str] = TABLES,
    *,
    storage_options: Mapping[str, Any] | None = None,
    table_format: str | None = None,
) -> Iterator[DayWriter]:
    """Start a write of ``day``'s ``tables``, to be filled a part at a time and committed.

    Inside the block, :meth:`DayWriter.append` adds a part of the day (a row group of each
    table) and :meth:`DayWriter.commit` publishes the day as :func:`write_day` does; a block
    left without a commit (an exception included) leaves the day as it was. The day's lock is
    held for the whole block.

    Raises:
        ConfigError: an unknown table name, a day that is not a date, an unusable root, or a
            ``table_format`` other than the root's.
        StoreError: the storage failed (also for an ``OSError`` raised inside the block).
    """
    given = set(tables)
    names = [name for name in TABLES if name in given]
    unknown = sorted(map(str, given - set(TABLES)))
    if unknown:
        raise ConfigError(f"unknown tables {unknown}: expected some of {', '.join(TABLES)}")
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ConfigError(f"day must be a date, not {day!r}")
    store = Store.open(root, storage_options)
    try:
        if table_format is not None:
            check_format_name(table_format, "table_format")
        table_format = run_format(root, table_format, storage_options=storage_options)
        claim_root(root, RootRecord(table_format=table_format), storage_options)
        with store.day_lock(day):
            if table_format == DELTA:
                delta.finish_staged(store, day)
            else:
                _migrate_day(store, day)
                _tidy(store, day)
            writer = None
            try:
                with contextlib.ExitStack() as files:
                    writer = DayWriter(store, day, names, files, table_format)
                    yield writer
            finally:
                with contextlib.suppress(OSError):
                    if table_format == PARQUET:
                        _tidy(store, day)
                    elif writer is not None:
                        writer.discard()
    except OSError as exc:
        raise StoreError(f"could not write day {day} under {root}: {exc}") from exc


class DayWriter:
    """One write of a day in progress: a Parquet file per table, a row group per part; staged
    outside the tables (Parquet format) or in its partition folder, where Delta readers see it
    only once committed (Delta format).

    Made by :func:`open_day`, which holds the day's lock and removes what a write left
    without a commit.
    """

    def __init__(
        self,
        store: Store,
        day: date,
        names: list[str],
        files: contextlib.ExitStack,
        table_format: str = PARQUET,
    ) -> None:
        self.store, self.day, self.names = store, day, names
        self.table_format = table_format
        self.write_id = uuid.uuid4().hex
        self.rows = dict.fromkeys(names, 0)
        self._schemas = delta.STORED if table_format == DELTA else TABLES
        self._staged = False
        self._files = files
        if table_format == DELTA:  # on a local disk, names the write's files for a cleanup
            store.fs.makedirs(self._staging, exist_ok=True)
        self._writers = {name: self._open(name) for name in names}

    def _path(self, name: str) -> str:
        file = data_file_name(self.write_id)
        if self.table_format == DELTA:
            return f"{self.store.folder(name, self.day)}/{file}"
        return f"{self._staging}/{name}/{file}"

    def _open(self, name: str) -> pq.ParquetWriter:
        handle = self._files.enter_context(self.store.create(self._path(name)))
        schema = self._schemas[name]
        # Statistics of whole JSON documents help no reader; dictionaries of mostly unique
        # strings cost more time than zstd alone saves space.
        writer = pq.ParquetWriter(
            handle,
            schema,
            compression=COMPRESSION,
            use_dictionary=False,
            write_statistics=[n for n in schema.names if n not in _JSON_COLUMNS],
        )
        self._files.callback(writer.close)
        return writer

    @property
    def _staging(self) -> str:
        return f"{self.store.staging(self.day)}/{self.write_id}"

    def append(self, tables: Mapping[str, pa.Table | pd.DataFrame]) -> None:
        """Add a part of the day: a row group to each table given (one table at a time, so the
        part's peak holds one table's Arrow copy and Parquet buffers).

        Raises:
            ConfigError: a table that is not being written, or data that does not fit its
                schema.
        """
        unknown = sorted(map(str, set(tables) - set(self.names)))
        if unknown:
            raise ConfigError(f"tables {unknown} are not part of this write of {self.day}")
        for name in self.names:
            if name in tables:
                arrow = conform(name, tables[name]).cast(self._schemas[name])
                self._writers[name].write_table(arrow)
                self.rows[name] += arrow.num_rows
                del arrow

    def commit(
        self,
        reconciliation: Mapping[str, int | str | float | bool],
        extra: Mapping[str, Any] | None = None,
    ) -> WrittenDay:
        """Finish every file and publish them as the day's new commit; ``extra`` adds entries
        (JSON values) to the commit record beside its tables.

        Raises:
            ConfigError: a reconciliation value that is not a JSON scalar.
            OSError: the storage failed (:func:`open_day` reports it as a ``StoreError``).
        """
        checked = _check_reconciliation(reconciliation)
        self._files.close()  # every Parquet footer written, each file durable
        store, day, write_id = self.store, self.day, self.write_id
        file = data_file_name(write_id)
        written_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        manifests = {
            name: {
                "table": name,
                PARTITION_KEY: day.isoformat(),
                "rows": count,
                "schema_fingerprint": schema_fingerprint(self._schemas[name]),
                "file": file,
                "written_at": written_at,
                "write_id": write_id,
                "reconciliation": checked,
            }
            for name, count in self.rows.items()
        }
        commit = {
            **(extra or {}),
            PARTITION_KEY: day.isoformat(),
            "write_id": write_id,
            "tables": {**read_commit(store, day), **manifests},
        }
        store.write_bytes(f"{self._staging}/{COMMIT_FILE}", encode(commit))
        self._staged = True
        if self.table_format == DELTA:
            delta.publish(store, day, commit, self._staging)
            delta.drop_stage(store, day, self._staging)
        else:
            _publish(store, day, write_id, self.names)
        return WrittenDay(
            day,
            {name: store.url(f"{store.folder(name, day)}/{file}") for name in self.names},
            dict(self.rows),
            write_id,
        )

    def discard(self) -> None:
        """Remove what a Delta write left without staging its commit record: its data files
        and staging folder. A write that staged its record keeps it for the next run to
        finish."""
        if not self._staged:
            file = data_file_name(self.write_id)
            folders = [self.store.folder(name, self.day) for name in self.names]
            self.store.remove([f"{folder}/{file}" for folder in folders])
            delta.drop_stage(self.store, self.day, self._staging)


def _publish(store: Store, day: date, write_id: str, names: list[str]) -> None:
    """Move every staged file into its partition folder, then the commit record into place."""
    staging = f"{store.staging(day)}/{write_id}"
    file = data_file_name(write_id)
    for name in names:
        folder = store.folder(name, day)
        if store.local and not store.fs.exists(folder):
            store.fs.makedirs(store.table(name), exist_ok=True)
            store.move(f"{staging}/{name}", folder)
        else:
            store.move(f"{staging}/{name}/{file}", f"{folder}/{file}")
    store.fs.makedirs(store.commit_path(day).rsplit("/", 1)[0], exist_ok=True)
    store.move(f"{staging}/{COMMIT_FILE}", store.commit_path(day))


def _committed_files(store: Store, day: date) -> set[str]:
    """Every file of the day a reader may be reading: those the commit record names or, for a
    day of the old layout that has none, its manifests and the files they name."""
    commit = read_commit(store, day)
    if commit:
        return {f"{store.folder(name, day)}/{m['file']}" for name, m in commit.items()}
    kept = set()
    for name in TABLES:
        folder = store.folder(name, day)
        manifest = read_legacy_manifest(store, name, day)
        if manifest is not None:
            kept |= {f"{folder}/{LEGACY_MANIFEST}", f"{folder}/{manifest['file']}"}
    return kept


def _tidy(store: Store, day: date) -> None:
    """Remove the day's staging and every file in its partition folders that no commit names;
    an empty partition folder goes too. Run under the day's lock. The staging folder goes
    last: while it is there, :func:`repair` knows the day may need tidying."""
    for name in TABLES:
        store.require_folder(store.table(name))
        store.require_folder(store.folder(name, day))
    kept = _committed_files(store, day)
    for name in TABLES:
        folder = store.folder(name, day)
        store.remove([path for path in store.listing(folder) if path not in kept])
        if store.local and not store.listing(folder):
            store.remove([folder])
    store.remove([store.staging(day)])


def _migrate_day(store: Store, day: date) -> None:
    """Turn a day of the old layout into a commit record naming its data files, then remove its
    ``_manifest.json`` files, so partition folders hold data only. Run under the day's lock.

    The commit record is put in place (staged, then moved) before any manifest goes, and a
    day that has a commit record reads from it alone: a crash at any step leaves the day
    reading the same, and the next run finishes. An unreadable manifest names no file: its
    table is left out of the record (the day reads as not committed for it, as before).
    """
    legacy = [f"{store.folder(name, day)}/{LEGACY_MANIFEST}" for name in TABLES]
    if not any(store.fs.exists(path) for path in legacy):
        return
    if not store.fs.exists(store.commit_path(day)):
        manifests = {
            name: manifest
            for name in TABLES
            if (manifest := read_legacy_manifest(store, name, day)) is not None
        }
        if manifests:
            write_id = uuid.uuid4().hex
            commit = {PARTITION_KEY: day.isoformat(), "write_id": write_id, "tables": manifests}
            staged = f"{store.staging(day)}/{write_id}/{COMMIT_FILE}"
            store.write_bytes(staged, encode(commit))
            store.fs.makedirs(store.commits(), exist_ok=True)
            store.move(staged, store.commit_path(day))
    store.remove(legacy)
    _tidy(store, day)


def _days_staged(store: Store) -> set[date]:
    """Days with a staging folder: a write in progress, or one that did not finish."""
    days = set()
    for path in store.listing(store.staging()):
        with contextlib.suppress(ValueError):
            days.add(date.fromisoformat(path.rsplit("/", 1)[-1]))
    return days


def _legacy_days(store: Store) -> set[date]:
    return {day for name in TABLES for day in legacy_days(store, name)}


def _days_with_empty_folders(store: Store) -> set[date]:
    """Days with an empty partition folder on a local disk (object storage has no empty
    folders): a cleanup killed between emptying a folder and removing it leaves one."""
    if not store.local:
        return set()
    days = set()
    for name in TABLES:
        for folder in store.listing(store.table(name)):
            key, _, value = folder.rsplit("/", 1)[-1].partition("=")
            if key == PARTITION_KEY and store.fs.isdir(folder) and not store.listing(folder):
                with contextlib.suppress(ValueError):
                    days.add(date.fromisoformat(value))
    return days


def repair(
    root: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    days: Iterable[date] | None = None,
) -> list[date]:
    """Finish what crashed writes left, and migrate days of the old layout.

    A write removes its staging folder last, so a day still having one was left by a write that
    did not finish: its partition folders may hold data files no commit names, which glob
    readers would see beside the committed ones, or be left empty; they are tidied, as is every
    day with an empty partition folder (a write of the day holds its lock while it fills one,
    and moves a new folder in whole, so a folder empty under the lock is left over). A day of
    the old layout gets a commit record naming its data files, and its ``_manifest.json``
    files go, so DuckDB and Polars folder scans meet data files only. In a root of Delta tables,
    a write killed between its table commits is finished instead (see
    :mod:`flowinst_etl.storage.delta`).

    On a local disk a write in progress holds its day's lock, so every day can be repaired.
    Object storage has no lock: a staging folder there may be another run's write in progress,
    so only ``days`` (those the caller is about to write, one writer per day) are repaired.

    Args:
        root: the dataset root.
        storage_options: passed to fsspec.
        days: on object storage, the only days to repair; ``None``: every day.

    Returns:
        The days repaired.

    Raises:
        ConfigError: unusable root.
        StoreError: the storage failed.
    """
    store = Store.open(root, storage_options)
    only = None if days is None or store.local else set(days)
    repaired = set()
    try:
        table_format = root_table_format(store)
        finish = delta.finish_staged if table_format == DELTA else _tidy
        for day in sorted(_days_staged(store)):
            if only is None or day in only:
                with store.day_lock(day):
                    # the write seen in progress may have finished while the lock was awaited
                    if not store.fs.exists(store.staging(day)):
                        continue
                    finish(store, day)
                repaired.add(day)
        if table_format == DELTA:
            return sorted(repaired)
        for day in sorted(_legacy_days(store)):
            if only is None or day in only:
                with store.day_lock(day):
                    _migrate_day(store, day)
                repaired.add(day)
        for day in sorted(_days_with_empty_folders(store)):
            with store.day_lock(day):
                _tidy(store, day)
            repaired.add(day)
    except OSError as exc:
        raise StoreError(f"could not repair unfinished writes under {root}: {exc}") from exc
    return sorted(repaired)


def vacuum(
    root: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
) -> list[str]:
    """In a root of Delta tables, delete the files no table version younger than
    ``retention_hours`` uses (replaced days, files of killed writes); returns them. A Parquet
    root removes replaced files as it writes: nothing to do there.

    Raises:
        ConfigError: unusable root, or the delta extra is not installed.
        StoreError: the storage failed.
    """
    store = Store.open(root, storage_options)
    try:
        if root_table_format(store) != DELTA:
            return []
        return delta.vacuum(store, retention_hours)
    except OSError as exc:
        raise StoreError(f"could not vacuum {root}: {exc}") from exc


def run_format(
    root: str, wanted: str | None, *, storage_options: Mapping[str, Any] | None = None
) -> str:
    """The table format a run writes to ``root``: the root's, which ``wanted`` (the
    ``FLOWINST_TABLE_FORMAT`` setting, when given) must match; ``wanted`` for a new root.

    Raises:
        ConfigError: ``wanted`` differs from the root's format, the root is unusable, or the
            format is Delta and the delta extra is not installed.
        StoreError: the root record is unreadable or the storage failed.
    """
    store = Store.open(root, storage_options)
    try:
        if wanted is not None:
            check_root(root, RootRecord(table_format=wanted), storage_options)
        table_format = wanted or root_table_format(store) or PARQUET
    except OSError as exc:
        raise StoreError(f"could not read the table format of {root}: {exc}") from exc
    if table_format == DELTA:
        delta.require_deltalake()
    return table_format
