"""A day's commit record: the one file that says which data file of each table is the day.

``<root>/_flowinst/commits/YYYY-MM-DD.json`` holds, for every table of the day, the manifest of
its data file (name, rows, schema fingerprint, write id, reconciliation). Replacing this file is
the single step that makes a new write of the day visible to ``read_table`` and ``dataset()``.
Roots of the old layout (``part-0.parquet`` beside a ``_manifest.json`` in each partition
folder) are read through those manifests until the next write run migrates them (see
:func:`flowinst_etl.storage.write.repair`); an unreadable one spoils only its own day.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

from flowinst_etl.exceptions import StoreError
from flowinst_etl.storage.filesystem import LEGACY_MANIFEST, PARTITION_KEY, Store

Manifest = dict[str, Any]

log = logging.getLogger(__name__)


def encode(commit: dict[str, Any]) -> bytes:
    """The record as the JSON text stored (standard JSON only)."""
    return json.dumps(commit, indent=2, sort_keys=True, allow_nan=False).encode()


def load_object(store: Store, path: str, what: str = "commit record") -> dict[str, Any] | None:
    """The JSON object stored at ``path``; ``None`` when there is no file.

    Raises:
        StoreError: the file is unreadable or not a JSON object (``what`` names it).
    """
    try:
        with store.fs.open(path, "rb") as handle:
            loaded = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreError(f"unreadable {what} {store.url(path)}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise StoreError(f"unreadable {what} {store.url(path)}: not a JSON object")
    return loaded


def read_commit(store: Store, day: date) -> dict[str, Manifest]:
    """The manifest of each table committed for ``day`` (empty when the day has no record)."""
    commit = load_object(store, store.commit_path(day))
    return dict(commit["tables"]) if commit else {}


def committed_days(store: Store) -> list[date]:
    """Every day with a commit record, in order."""
    days = []
    for path in store.listing(store.commits()):
        name = path.rsplit("/", 1)[-1]
        if name.endswith(".json"):
            try:
                days.append(date.fromisoformat(name.removesuffix(".json")))
            except ValueError:
                continue
    return sorted(days)


def read_legacy_manifest(store: Store, table: str, day: date) -> Manifest | None:
    """The old layout's manifest of one table and day, if there is one.

    An unreadable one is logged as a warning and counts as none: it concerns its own day only,
    which then reads as not committed until it is written again.
    """
    path = f"{store.folder(table, day)}/{LEGACY_MANIFEST}"
    try:
        manifest = load_object(store, path)
    except StoreError as exc:
        log.warning("%s; that day of %s counts as not committed", exc, table)
        return None
    if manifest is not None and not isinstance(manifest.get("file"), str):
        log.warning(
            "unreadable commit record %s: names no file; that day of %s counts as not committed",
            store.url(path),
            table,
        )
        return None
    return manifest


def legacy_days(store: Store, table: str) -> list[date]:
    """Days of ``table`` committed by the old layout (a ``_manifest.json`` in the folder)."""
    days = []
    pattern = f"{store.table(table)}/{PARTITION_KEY}=*/{LEGACY_MANIFEST}"
    for path in store.fs.glob(pattern):
        folder = path.rstrip("/").split("/")[-2]
        try:
            days.append(date.fromisoformat(folder.split("=", 1)[1]))
        except ValueError:
            continue
    return sorted(days)


def day_manifest(store: Store, table: str, day: date) -> Manifest | None:
    """The manifest of ``table``'s committed file of ``day``: from its commit record, or for a
    day without one from the old layout's manifest; ``None`` when the day is not committed."""
    commit = read_commit(store, day)
    return commit.get(table) if commit else read_legacy_manifest(store, table, day)


def table_manifests(
    store: Store, table: str, first: date | None = None, last: date | None = None
) -> dict[date, Manifest]:
    """Day -> the manifest of the committed data file of ``table``, for the days in range.

    A day with a commit record is read from it; a day without one, from the old layout's
    manifest if there is one. One day is looked up directly, a range by listing the dataset.
    """
    if first is not None and first == last:
        manifest = day_manifest(store, table, first)
        return {} if manifest is None else {first: manifest}

    def wanted(day: date) -> bool:
        return (first is None or day >= first) and (last is None or day <= last)

    found: dict[date, Manifest] = {}
    recorded = [day for day in committed_days(store) if wanted(day)]
    for day in recorded:
        manifest = read_commit(store, day).get(table)
        if manifest is not None:
            found[day] = manifest
    for day in legacy_days(store, table):
        if wanted(day) and day not in recorded:
            manifest = read_legacy_manifest(store, table, day)
            if manifest is not None:
                found[day] = manifest
    return dict(sorted(found.items()))
