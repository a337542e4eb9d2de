"""Hive-partitioned Parquet: an atomic, idempotent write per day, a manifest, and read helpers.

Layout, for each table of :data:`flowinst_etl.tables.schema.TABLES`::

    <root>/<table>/trigger_date=YYYY-MM-DD/part-0.parquet
    <root>/<table>/trigger_date=YYYY-MM-DD/_manifest.json

Readers (pyarrow, DuckDB, Polars) see ``part-0.parquet`` files only: temporary files start with
``.`` and the manifest with ``_``, names that dataset readers skip. A day is written in two phases
so that a failure or crash leaves the previous version readable: every table goes to a temporary
file first; only when all of them are written are they published by one atomic rename (local) or
copy (object storage) each, and the manifests, written last, mark the day as committed. A day
with no instances still gets files with the full schema, so "nothing happened" differs from "not
extracted" (no folder). One writer per day at a time is assumed.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import partial
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.tables.schema import TABLES, conform, schema_fingerprint, table_schema
from flowinst_etl.windows import parse_day

PARTITION_KEY = "trigger_date"
PART_FILE = "part-0.parquet"
MANIFEST_FILE = "_manifest.json"
COMPRESSION = "zstd"

_PARTITIONING = ds.partitioning(pa.schema([(PARTITION_KEY, pa.date32())]), flavor="hive")
_SCALARS = (bool, int, float, str)
_JSON_COLUMNS = frozenset({"graph", "parameters", "extra"})


@dataclass(frozen=True)
class WrittenDay:
    """What :func:`write_day` published.

    Attributes:
        day: the partition day.
        paths: the Parquet file of each table (a local path or a URL).
        rows: the row count of each table.
        write_id: shared by the manifests of every table written in the same call.
    """

    day: date
    paths: dict[str, str]
    rows: dict[str, int]
    write_id: str


@dataclass(frozen=True)
class _Store:
    """A dataset root on some filesystem."""

    fs: AbstractFileSystem
    base: str

    @classmethod
    def open(cls, root: str, storage_options: Mapping[str, Any] | None) -> _Store:
        if not root:
            raise ConfigError(
                "empty dataset root: give a local path or a URL such as s3://bucket/x"
            )
        try:
            fs, base = url_to_fs(root, **dict(storage_options or {}))
        except (ImportError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot open dataset root {root!r}: {exc}") from exc
        return cls(fs, base.rstrip("/"))

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def folder(self, table: str, day: date) -> str:
        return f"{self.base}/{table}/{PARTITION_KEY}={day.isoformat()}"

    def url(self, path: str) -> str:
        return path if self.local else self.fs.unstrip_protocol(path)

    def write(self, path: str, write: Callable[[Any], object]) -> None:
        """Write a new file through ``write(handle)``, durably on a local disk."""
        with self.fs.open(path, "wb") as handle:
            write(handle)
            if self.local:
                handle.flush()
                os.fsync(handle.fileno())

    def publish(self, temporary: str, final: str, *, durable: bool = True) -> None:
        """Give a finished file its final name in one step readers cannot observe half-done;
        ``durable`` also makes the rename survive a power loss (once per folder is enough)."""
        if self.local:
            os.replace(temporary, final)
            if durable:
                _fsync_folder(os.path.dirname(final))
        else:
            # On object storage the copy creates the final object in a single atomic operation.
            self.fs.mv(temporary, final)

    def remove(self, paths: Sequence[str]) -> None:
        for path in paths:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def discard(self, paths: Sequence[str]) -> None:
        """Remove leftovers on the way out of a failure, without hiding that failure."""
        with contextlib.suppress(OSError):
            self.remove(paths)

    def listing(self, folder: str) -> list[str]:
        self.fs.invalidate_cache(folder)
        return [path.rstrip("/") for path in self.fs.ls(folder, detail=False)]


def _fsync_folder(folder: str) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_bytes(data: bytes, handle: Any) -> None:
    handle.write(data)


def _temporary(folder: str, name: str, token: str) -> str:
    return f"{folder}/.{name}.{token}.tmp"


def _as_day(value: date | str, what: str) -> date:
    if isinstance(value, datetime):
        raise ConfigError(f"{what} must be a date, not a datetime: {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return parse_day(value)
    raise ConfigError(f"{what} must be a date or 'YYYY-MM-DD', not {value!r}")


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
) -> WrittenDay:
    """Write one partition day of some tables, replacing any earlier version of that day.

    Every table is cast to its pinned schema and written to a temporary file, and so is its
    manifest; only then is each table's file put in place, its manifest right after it. Files
    left in the day's folders by earlier versions or crashed writes are removed. If anything
    fails before publishing, the previous version of the day is untouched and the temporary
    files are removed.

    Args:
        root: the dataset root, a local path or an fsspec URL such as ``s3://bucket/prefix``.
        day: the partition day (``trigger_date``).
        tables: table name to rows, as Arrow tables or DataFrames with exactly the table's
            columns; an empty table writes an empty file with the full schema.
        reconciliation: figures for the day's checks (counts, ids); copied into every
            manifest, so never put credentials here.
        storage_options: passed to fsspec, e.g. ``{"client_kwargs": {"endpoint_url": ...}}``.

    Returns:
        The paths and row counts written.

    Raises:
        ConfigError: an unknown table name, data that does not fit its schema, a
            reconciliation value that is not a JSON scalar, or an unusable root.
        StoreError: the storage failed while writing or publishing.
    """
    given = set(tables)
    names = [name for name in TABLES if name in given]
    unknown = sorted(map(str, given - set(TABLES)))
    if unknown:
        raise ConfigError(f"unknown tables {unknown}: expected some of {', '.join(TABLES)}")
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ConfigError(f"day must be a date, not {day!r}")
    checked = _check_reconciliation(reconciliation)
    store = _Store.open(root, storage_options)
    token = uuid.uuid4().hex
    temporaries = {name: _temporary(store.folder(name, day), PART_FILE, token) for name in names}
    rows: dict[str, int] = {}
    manifests: dict[str, str] = {}
    try:
        # Tables are cast one after another and written concurrently (pyarrow releases the GIL).
        with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
            writes = []
            for name in names:
                arrow = conform(name, tables[name])
                rows[name] = arrow.num_rows
                writes.append(pool.submit(_write_parquet, store, temporaries[name], arrow))
            for write in writes:
                write.result()
        manifests = _stage_manifests(store, day, rows, checked, token)
        paths = _publish(store, day, temporaries, manifests)
    except BaseException as exc:
        store.discard([*temporaries.values(), *manifests.values()])
        if isinstance(exc, OSError):
            raise StoreError(f"could not write day {day} under {root}: {exc}") from exc
        raise
    return WrittenDay(day, paths, rows, token)


def _write_parquet(store: _Store, path: str, table: pa.Table) -> None:
    # Statistics of whole JSON documents help no reader; dictionaries of mostly unique strings
    # cost more time than zstd alone saves space.
    statistics = [name for name in table.column_names if name not in _JSON_COLUMNS]
    write = partial(
        pq.write_table,
        table,
        compression=COMPRESSION,
        use_dictionary=False,
        write_statistics=statistics,
    )
    store.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    store.write(path, write)


def _stage_manifests(
    store: _Store,
    day: date,
    rows: Mapping[str, int],
    reconciliation: dict[str, Any],
    token: str,
) -> dict[str, str]:
    """Write every table's manifest to a temporary file, so publishing only renames."""
    written_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    temporaries = {}
    for name, count in rows.items():
        manifest = {
            "table": name,
            PARTITION_KEY: day.isoformat(),
            "rows": count,
            "schema_fingerprint": schema_fingerprint(TABLES[name]),
            "file": PART_FILE,
            "written_at": written_at,
            "write_id": token,
            "reconciliation": reconciliation,
        }
        text = json.dumps(manifest, indent=2, sort_keys=True).encode()
        temporaries[name] = _temporary(store.folder(name, day), MANIFEST_FILE, token)
        store.write(temporaries[name], partial(_write_bytes, text))
    return temporaries


def _publish(
    store: _Store, day: date, parts: Mapping[str, str], manifests: Mapping[str, str]
) -> dict[str, str]:
    """Put every staged file in place, each table's data then its manifest back to back (both
    already written and synced, so a crash can only fall between two renames), then remove
    what earlier versions or crashed writes left in the day's folders."""
    folders = {name: store.folder(name, day) for name in parts}
    for name, folder in folders.items():
        store.publish(parts[name], f"{folder}/{PART_FILE}", durable=False)
        store.publish(manifests[name], f"{folder}/{MANIFEST_FILE}")
    for folder in folders.values():
        keep = {f"{folder}/{PART_FILE}", f"{folder}/{MANIFEST_FILE}"}
        store.remove([path for path in store.listing(folder) if path not in keep])
    return {name: store.url(f"{folder}/{PART_FILE}") for name, folder in folders.items()}


def _day_folders(store: _Store, table: str, file_name: str) -> dict[date, str]:
    """Day -> path of ``file_name`` for every day folder of ``table`` that has that file."""
    found = {}
    for path in store.fs.glob(f"{store.base}/{table}/{PARTITION_KEY}=*/{file_name}"):
        folder = path.rstrip("/").split("/")[-2]
        try:
            found[date.fromisoformat(folder.split("=", 1)[1])] = path
        except ValueError:
            continue
    return dict(sorted(found.items()))


def written_days(
    root: str, table: str, *, storage_options: Mapping[str, Any] | None = None
) -> list[date]:
    """The committed days of a table (those with a manifest), in order.

    Raises:
        ConfigError: unknown table or unusable root.
        StoreError: the storage could not be listed.
    """
    table_schema(table)
    store = _Store.open(root, storage_options)
    try:
        return list(_day_folders(store, table, MANIFEST_FILE))
    except OSError as exc:
        raise StoreError(f"could not list {table} under {root}: {exc}") from exc


def read_manifest(
    root: str,
    table: str,
    day: date | str,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The manifest of one table and day, or ``None`` when the day is not committed.

    Raises:
        ConfigError: unknown table, bad day or unusable root.
        StoreError: the manifest could not be read or is not JSON.
    """
    table_schema(table)
    store = _Store.open(root, storage_options)
    path = f"{store.folder(table, _as_day(day, 'day'))}/{MANIFEST_FILE}"
    try:
        with store.fs.open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreError(f"unreadable manifest {store.url(path)}: {exc}") from exc


def read_table(
    table: str,
    root: str,
    start: date | str | None = None,
    end: date | str | None = None,
    columns: Sequence[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Read the days ``start``..``end`` (inclusive; open when ``None``) of one table.

    Only the Parquet files of the days asked for are opened.

    Args:
        table: a table name of :data:`flowinst_etl.tables.schema.TABLES`.
        root: the dataset root, a local path or an fsspec URL.
        start: first day, a date or ``YYYY-MM-DD``.
        end: last day, a date or ``YYYY-MM-DD``.
        columns: columns to return (``trigger_date`` included); all when ``None``.
        storage_options: passed to fsspec.

    Returns:
        A DataFrame with Arrow-backed dtypes of the pinned types and a ``trigger_date`` date
        column (last unless asked for elsewhere), ordered by day.

    Raises:
        ConfigError: unknown table or column, a bad date, ``start`` after ``end``, or an unusable
            root.
        StoreError: the table has never been written under ``root``, or a file is unreadable.
    """
    schema = table_schema(table)
    first = None if start is None else _as_day(start, "start")
    last = None if end is None else _as_day(end, "end")
    if first and last and first > last:
        raise ConfigError(f"start {first} is after end {last}")
    full = schema.append(pa.field(PARTITION_KEY, pa.date32()))
    wanted = list(full.names) if columns is None else list(columns)
    unknown = [name for name in wanted if name not in full.names]
    if unknown:
        raise ConfigError(f"unknown columns {unknown} for table {table}")
    if PARTITION_KEY not in wanted:
        wanted.append(PARTITION_KEY)
    store = _Store.open(root, storage_options)
    try:
        days = _day_folders(store, table, PART_FILE)
        if not days and not store.fs.exists(f"{store.base}/{table}"):
            raise StoreError(f"no table {table} under {root}: nothing written there yet")
        paths = [
            path
            for day, path in days.items()
            if (first is None or day >= first) and (last is None or day <= last)
        ]
        dataset = ds.dataset(
            paths,
            schema=full,
            format="parquet",
            filesystem=store.fs,
            partitioning=_PARTITIONING,
            partition_base_dir=f"{store.base}/{table}",
        )
        result = dataset.to_table(columns=wanted)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"could not read {table} under {root}: {exc}") from exc
    return result.to_pandas(types_mapper=pd.ArrowDtype)
