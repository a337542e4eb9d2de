"""The root record: what defines a dataset's days, so every run writing into a root agrees on them.

``<root>/_flowinst/root.json`` is a JSON object of the settings two writers must share for a
partition day to mean the same window (the partition timezone: a day is the span between two
midnights of it). It is written once, by the first write run into the root; a run whose
settings disagree is refused before it sends a request, so one root never holds days cut in two
zones (an instance would land in two days, or in none). A root written before the record
existed adopts the settings of its first run after it, which says so in a warning.

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

log = logging.getLogger(__name__)

ROOT_RECORD = "root.json"


@dataclass(frozen=True)
class RootRecord:
    """The settings that define a root's days; each field names its setting for messages."""

    partition_timezone: str = field(
        metadata={"what": "partition timezone", "setting": "FLOWINST_TIMEZONE or --timezone"}
    )

    def as_dict(self) -> dict[str, str]:
        """The record as stored."""
        return asdict(self)


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
        wanted = record.as_dict()
        if stored is not None and wanted.keys() <= stored.keys():
            return
        missing = sorted(wanted.keys() - (stored or {}).keys())
        if stored is not None or _holds_data(store):
            log.warning(
                "dataset root %s had no record of its %s: it takes this run's (%s), so the days "
                "written before are taken to be cut in it",
                root,
                ", ".join(_what(name) for name in missing),
                ", ".join(f"{wanted[name]}" for name in missing),
            )
        if not _publish(store, {**(stored or {}), **wanted}, replace=stored is not None):
            _refuse_disagreement(store, root, _read(store), record)
    except OSError as exc:
        raise StoreError(f"could not write the root record of {root}: {exc}") from exc


def _read(store: Store) -> dict[str, str] | None:
    path = root_record_path(store)
    loaded = store.read_object(path, "root record")
    if loaded is not None and not all(isinstance(v, str) for v in loaded.values()):
        raise StoreError(f"unreadable root record {store.url(path)}: a value is not a string")
    return loaded


def _refuse_disagreement(
    store: Store, root: str, stored: dict[str, str] | None, record: RootRecord
) -> None:
    if stored is None:
        return
    path = store.url(root_record_path(store))
    unknown = sorted(stored.keys() - record.as_dict().keys())
    if unknown:
        raise ConfigError(
            f"dataset root {root} records {', '.join(unknown)} ({path}), which this version of "
            "flowinst-etl does not know: write it with the version that made it"
        )
    for item in fields(record):
        ours, theirs = getattr(record, item.name), stored.get(item.name)
        if theirs is not None and theirs != ours:
            raise ConfigError(
                f"dataset root {root} holds days of {item.metadata['what']} {theirs} ({path}); "
                f"this run's is {ours}: set {item.metadata['setting']} to {theirs}, or write "
                "into another dataset root"
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
