"""Reading committed days: only the data files the days' commit records name, with
``trigger_date`` as a date (in pandas, a datetime at midnight)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.storage.commits import (
    Manifest,
    committed_days,
    day_manifest,
    legacy_days,
    read_commit,
    read_legacy_manifest,
    table_manifests,
)
from flowinst_etl.storage.filesystem import PARTITION_KEY, Store
from flowinst_etl.tables.schema import table_schema
from flowinst_etl.windows import parse_day

#: Hive partitioning of every table folder, with the day typed as a date.
PARTITIONING = ds.partitioning(pa.schema([(PARTITION_KEY, pa.date32())]), flavor="hive")

# A write of a day removes the files of the commit it replaced: a reader that listed those just
# before reads the day's commit again.
_READ_ATTEMPTS = 3


def as_day(value: date | str, what: str) -> date:
    """A date given as a date or ``YYYY-MM-DD``.

    Raises:
        ConfigError: anything else, a datetime included.
    """
    if isinstance(value, datetime):
        raise ConfigError(f"{what} must be a date, not a datetime: {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return parse_day(value)
    raise ConfigError(f"{what} must be a date or 'YYYY-MM-DD', not {value!r}")


def _bounds(start: date | str | None, end: date | str | None) -> tuple[date | None, date | None]:
    first = None if start is None else as_day(start, "start")
    last = None if end is None else as_day(end, "end")
    if first and last and first > last:
        raise ConfigError(f"start {first} is after end {last}")
    return first, last


def _dataset(
    store: Store, table: str, first: date | None, last: date | None, root: str
) -> ds.Dataset:
    full = table_schema(table).append(pa.field(PARTITION_KEY, pa.date32()))
    manifests = table_manifests(store, table, first, last)
    if not manifests and not store.fs.exists(store.table(table)):
        raise StoreError(f"no table {table} under {root}: nothing written there yet")
    paths = [f"{store.folder(table, day)}/{m['file']}" for day, m in manifests.items()]
    return ds.dataset(
        paths,
        schema=full,
        format="parquet",
        filesystem=store.fs,
        partitioning=PARTITIONING,
        partition_base_dir=store.table(table),
    )


def dataset(
    table: str,
    root: str,
    start: date | str | None = None,
    end: date | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ds.Dataset:
    """The committed days ``start``..``end`` (inclusive; open when ``None``) of one table, as a
    ``pyarrow.dataset.Dataset`` with ``trigger_date`` as ``date32``.

    The dataset is the files committed when it is made: a later write of one of its days
    removes the files it replaced, so make a new dataset for each read.

    Raises:
        ConfigError: unknown table, a bad date, ``start`` after ``end``, or an unusable root.
        StoreError: the table has never been written under ``root``, or a commit record is
            unreadable.
    """
    table_schema(table)
    first, last = _bounds(start, end)
    store = Store.open(root, storage_options)
    try:
        return _dataset(store, table, first, last, root)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"could not read {table} under {root}: {exc}") from exc


def read_table(
    table: str,
    root: str,
    start: date | str | None = None,
    end: date | str | None = None,
    columns: Sequence[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Read the committed days ``start``..``end`` (inclusive; open when ``None``) of one table.

    Only the data files the days' commits name are opened, so each day is one complete write.

    Args:
        table: a table name of :data:`flowinst_etl.tables.schema.TABLES`.
        root: the dataset root, a local path or an fsspec URL.
        start: first day, a date or ``YYYY-MM-DD``.
        end: last day, a date or ``YYYY-MM-DD``.
        columns: columns to return (``trigger_date`` included); all when ``None``.
        storage_options: passed to fsspec.

    Returns:
        A DataFrame with Arrow-backed dtypes of the pinned types and ``trigger_date`` as
        ``datetime64[ms]`` at midnight (last unless asked for elsewhere), ordered by day:
        ``frame[frame.trigger_date >= "2026-11-30"]`` works, as does a ``pd.Timestamp``; a
        ``datetime.date`` does not compare with it (``>=`` raises ``TypeError``, ``==`` is
        all False), as with any pandas datetime column: wrap it in ``pd.Timestamp``.

    Raises:
        ConfigError: unknown table or column, a bad date, ``start`` after ``end``, or an unusable
            root.
        StoreError: the table has never been written under ``root``, or a file is unreadable.
    """
    full = table_schema(table).append(pa.field(PARTITION_KEY, pa.date32()))
    first, last = _bounds(start, end)
    wanted = list(full.names) if columns is None else list(columns)
    unknown = [name for name in wanted if name not in full.names]
    if unknown:
        raise ConfigError(f"unknown columns {unknown} for table {table}")
    if PARTITION_KEY not in wanted:
        wanted.append(PARTITION_KEY)
    store = Store.open(root, storage_options)
    for attempt in range(1, _READ_ATTEMPTS + 1):
        try:
            result = _dataset(store, table, first, last, root).to_table(columns=wanted)
            break
        except FileNotFoundError:
            if attempt == _READ_ATTEMPTS:
                raise StoreError(
                    f"could not read {table} under {root}: its files kept being replaced"
                ) from None
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"could not read {table} under {root}: {exc}") from exc
    return result.to_pandas(types_mapper=_pandas_dtype, date_as_object=False)


def _pandas_dtype(arrow_type: pa.DataType) -> pd.ArrowDtype | None:
    """Arrow-backed dtypes, except the day: pandas has no date type, and an Arrow ``date32``
    column compares with neither a string nor a ``Timestamp`` (``== "2026-11-30"`` is silently
    all False), so it becomes what pyarrow makes of a date without objects, ``datetime64[ms]``
    at midnight, which pandas compares with strings, ``Timestamp`` and ``datetime``."""
    return None if arrow_type == pa.date32() else pd.ArrowDtype(arrow_type)


def written_days(
    root: str, table: str, *, storage_options: Mapping[str, Any] | None = None
) -> list[date]:
    """The committed days of a table, in order.

    Raises:
        ConfigError: unknown table or unusable root.
        StoreError: the storage could not be listed.
    """
    table_schema(table)
    store = Store.open(root, storage_options)
    try:
        recorded = committed_days(store)
        days = {day for day in recorded if table in read_commit(store, day)}
        legacy = [day for day in legacy_days(store, table) if day not in recorded]
        return sorted(days | {day for day in legacy if read_legacy_manifest(store, table, day)})
    except OSError as exc:
        raise StoreError(f"could not list {table} under {root}: {exc}") from exc


def read_manifest(
    root: str,
    table: str,
    day: date | str,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Manifest | None:
    """The manifest of one table and day as committed, or ``None`` when it is not committed.

    Keys: ``table``, ``trigger_date``, ``rows``, ``schema_fingerprint``, ``file``,
    ``written_at``, ``write_id``, ``reconciliation`` (see docs/tables.md).

    Raises:
        ConfigError: unknown table, bad day or unusable root.
        StoreError: the commit record could not be read or is not JSON.
    """
    table_schema(table)
    store = Store.open(root, storage_options)
    when = as_day(day, "day")
    try:
        return day_manifest(store, table, when)
    except OSError as exc:
        raise StoreError(f"could not read the commit of {when} under {root}: {exc}") from exc
