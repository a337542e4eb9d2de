"""The root record: what defines a dataset's days, so every run writing into a root agrees on them.

``<root>/_flowinst/root.json`` is a JSON object of the settings two writers must share for a
partition day to mean the same window and the same files: the partition timezone (a day is the
span between two midnights of it) and the table format (Parquet with the project's commit
records, or Delta Lake tables). It is written once, by the first write run into the root; a run
whose settings disagree is refused before it sends a request, so one root never holds days cut
in two zones (an instance would land in two days, or in none) nor tables of two formats. A root
written before the record existed adopts the settings of its first run after it, which says so
in a warning; its table format is not adopted but found from its contents (a ``_delta_log``
folder in a table folder is Delta, any other data Parquet), so a run of the other format is
refused there too.

A setting is added by adding a field to :class:`RootRecord`: roots that lack it adopt it the same
way, and a disagreement is refused the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from flowinst_etl.exceptions import ConfigError, StoreError
from flowinst_etl.storage.filesystem import CONTROL_FOLDER, Store, fsync_folder
from flowinst_etl.tables.schema import TABLES

log = logging.getLogger(__name__)

ROOT_RECORD = "root.json"
PARQUET, DELTA = "parquet", "delta"
TABLE_FORMATS = (PARQUET, DELTA)
#: The folder of a Delta table's transaction log, inside the table's folder.
DELTA_LOG = "_delta_log"


@dataclass(frozen=True)
class RootRecord:
    """The settings that define a root's days; each field names its setting for messages.

    A field left ``None`` is not the caller's to check or record (a library write of a day
    knows the table format, not the partition timezone).
    """

    partition_timezone: str | None = field(
        default=None,
        metadata={"what": "partition timezone", "setting": "FLOWINST_TIMEZONE or --timezone"},
    )
    table_format: str | None = field(
        default=None, metadata={"what": "table format", "setting": "FLOWINST_TABLE_FORMAT"}
    )

    def as_dict(self) -> dict[str, str]:
        """The record as stored (the fields given)."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def check_format_name(table_format: str, name: str = "FLOWINST_TABLE_FORMAT") -> str:
    """``table_format`` if it is a known format.

    Raises:
        ConfigError: it is not one of :data:`TABLE_FORMATS`.
    """
    if table_format not in TABLE_FORMATS:
        raise ConfigError(f"{name} {table_format!r} is not one of {', '.join(TABLE_FORMATS)}")
    return table_format


def root_record_path(store: Store) -> str:
    """Where a root keeps its record."""
    return f"{store.base}/{CONTROL_FOLDER}/{ROOT_RECORD}"


def check_root(
    root: str, record: RootRecord, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Refuse a run whose settings disagree with the root's record; reads only.

    Raises:
        ConfigError: a setting differs from the root's (both values named), or the record
            names a setting this version does not know.
        StoreError: the record is unreadable.
    """
    store = Store.open(root, storage_options)
    _refuse_disagreement(store, root, _read(store), record)


def root_table_format(store: Store) -> str | None:
    """The table format the root holds: recorded, else found from its contents; ``None`` for a
    root nothing was written to.

    Raises:
        StoreError: the record is unreadable or names a format this version does not know.
    """
    found = _known(store, _read(store)).get("table_format")
    if found is not None and found not in TABLE_FORMATS:
        path = store.url(root_record_path(store))
        raise StoreError(f"root record {path} names table format {found!r}, unknown here")
    return found


def claim_root(
    root: str, record: RootRecord, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Check the run's settings against the root's record, and write what the record lacks.

    A root without a record gets this run's; one that already holds data (written before
    roots had records) adopts them with a warning. Two first runs racing on a local disk
    cannot both write: the record is published without replacing one that appeared
    meanwhile, which is then checked instead.

    Raises:
        ConfigError: a setting differs from the root's, or is unknown to this version.
        StoreError: the record is unreadable or cannot be written.
    """
    store = Store.open(root, storage_options)
    try:
        stored = _read(store)
        _refuse_disagreement(store, root, stored, record)
        known = _known(store, stored)
        wanted = record.as_dict()
        if stored is not None and wanted.keys() <= stored.keys():
            return
        adopted = sorted(wanted.keys() - known.keys())
        if adopted and (stored is not None or _holds_data(store)):
            log.warning(
                "dataset root %s had no record of its %s: it takes this run's (%s), so the days "
                "written before are taken to be cut in it",
                root,
                ", ".join(_what(name) for name in adopted),
                ", ".join(f"{wanted[name]}" for name in adopted),
            )
        if not _publish(store, {**known, **wanted}, replace=stored is not None):
            _refuse_disagreement(store, root, _read(store), record)
    except OSError as exc:
        raise StoreError(f"could not write the root record of {root}: {exc}") from exc


def _read(store: Store) -> dict[str, str] | None:
    path = root_record_path(store)
    loaded = store.read_object(path, "root record")
    if loaded is not None and not all(isinstance(v, str) for v in loaded.values()):
        raise StoreError(f"unreadable root record {store.url(path)}: a value is not a string")
    return loaded


def _known(store: Store, stored: dict[str, str] | None) -> dict[str, str]:
    """The root's settings: its record, and the table format its contents show where the record
    lacks it (a root written before roots had records, or before they held the format)."""
    known = dict(stored or {})
    if "table_format" not in known:
        if any(store.fs.exists(f"{store.table(name)}/{DELTA_LOG}") for name in TABLES):
            known["table_format"] = DELTA
        elif _holds_data(store):
            known["table_format"] = PARQUET
    return known


def _refuse_disagreement(
    store: Store, root: str, stored: dict[str, str] | None, record: RootRecord
) -> None:
    """Refuse ``record`` where it differs from the root's settings (recorded, or found in its
    contents), or where the record names a setting this version does not know."""
    path = store.url(root_record_path(store))
    known = _known(store, stored)
    unknown = sorted(known.keys() - {item.name for item in fields(RootRecord)})
    if unknown:
        raise ConfigError(
            f"dataset root {root} records {', '.join(unknown)} ({path}), which this version of "
            "flowinst-etl does not know: write it with the version that made it"
        )
    for item in fields(record):
        ours, theirs = getattr(record, item.name), known.get(item.name)
        if ours is not None and theirs is not None and theirs != ours:
            source = path if item.name in (stored or {}) else "found in its tables"
            raise ConfigError(
                f"dataset root {root} holds days of {item.metadata['what']} {theirs} "
                f"({source}); this run's is {ours}: set {item.metadata['setting']} to {theirs}, "
                "or write into another dataset root"
            )


def _what(name: str) -> str:
    return next(str(item.metadata["what"]) for item in fields(RootRecord) if item.name == name)


def _holds_data(store: Store) -> bool:
    """Whether anything but the control folder is in the root already (a root of a version
    that wrote no record)."""
    return any(
        path.rsplit("/", 1)[-1] != CONTROL_FOLDER for path in store.listing(store.base)
    ) or bool(store.listing(store.commits()))


def _publish(store: Store, content: dict[str, str], *, replace: bool) -> bool:
    """Put the record in place in one step; ``False`` when another run's record appeared
    first (on a local disk a new record never replaces one; object storage has no such
    step, so there the last of two racing first runs wins)."""
    target = root_record_path(store)
    staged = f"{store.base}/{CONTROL_FOLDER}/{ROOT_RECORD}.{uuid.uuid4().hex}"
    store.write_bytes(staged, json.dumps(content, indent=2, sort_keys=True).encode())
    if replace or not store.local:
        store.move(staged, target)
        return True
    try:
        os.link(staged, target)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
    fsync_folder(os.path.dirname(target))
    return True
