"""Which table format a dataset root holds, kept in ``<root>/_flowinst/root.json``.

A root is one format for its whole life: Parquet with the project's commit records, or Delta
Lake tables. The first write records it under ``"table_format"`` (other keys of the file are
kept); a root written before the record existed is recognised by its contents (a
``_delta_log`` folder in a table folder, else Parquet). A run asking for the other format is
refused before it extracts anything.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.storage.commits import load_object
from flowinst_etl.storage.filesystem import CONTROL_FOLDER, Store
from flowinst_etl.tables.schema import TABLES

PARQUET, DELTA = "parquet", "delta"
TABLE_FORMATS = (PARQUET, DELTA)
DELTA_LOG = "_delta_log"
_KEY = "table_format"


def check_format_name(table_format: str, name: str = "FLOWINST_TABLE_FORMAT") -> str:
    """``table_format`` if it is a known format.

    Raises:
        ConfigError: it is not one of :data:`TABLE_FORMATS`.
    """
    if table_format not in TABLE_FORMATS:
        raise ConfigError(f"{name} {table_format!r} is not one of {', '.join(TABLE_FORMATS)}")
    return table_format


def _record_path(store: Store) -> str:
    return f"{store.base}/{CONTROL_FOLDER}/root.json"


def _record(store: Store) -> dict[str, Any]:
    return load_object(store, _record_path(store), "root record") or {}


def root_format(store: Store) -> str | None:
    """The format the root holds; ``None`` for a root nothing was written to.

    Raises:
        StoreError: the root record is unreadable or names an unknown format.
    """
    recorded = _record(store).get(_KEY)
    if recorded is not None:
        if recorded not in TABLE_FORMATS:
            raise StoreError(f"root record {store.url(_record_path(store))}: {recorded!r}")
        return str(recorded)
    if any(store.fs.exists(f"{store.table(name)}/{DELTA_LOG}") for name in TABLES):
        return DELTA
    written = [store.commits(), *(store.table(name) for name in TABLES)]
    return PARQUET if any(store.fs.exists(path) for path in written) else None


def resolve_format(store: Store, wanted: str | None, name: str = "FLOWINST_TABLE_FORMAT") -> str:
    """The format to write: the root's, which ``wanted`` (when given) must match; Parquet for a
    new root unless ``wanted`` says otherwise.

    Raises:
        ConfigError: ``wanted`` is unknown or differs from the root's format.
        StoreError: the root record is unreadable.
    """
    if wanted is not None:
        check_format_name(wanted, name)
    found = root_format(store)
    if found is not None and wanted is not None and found != wanted:
        raise ConfigError(
            f"{name} is {wanted} but {store.url(store.base)} holds {found} tables: a root keeps "
            f"one format; set {name}={found} or use another root"
        )
    return found or wanted or PARQUET


def record_format(store: Store, table_format: str) -> None:
    """Write ``table_format`` into the root record if it is not there yet, keeping its other
    keys; staged and moved into place, so the record is never seen half-written."""
    record = _record(store)
    if record.get(_KEY) == table_format:
        return
    record[_KEY] = table_format
    text = json.dumps(record, indent=2, sort_keys=True).encode()
    staged = f"{store.staging()}/root-{uuid.uuid4().hex}.json"
    store.put(staged, text)
    store.move(staged, _record_path(store))
