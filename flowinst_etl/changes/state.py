"""What refresh keeps about a dataset root beside the days: when each day was last found
current, and whether the change test was shown not to hold on this gateway.

``<root>/_flowinst/refresh/checked.json``: day -> the write it found current, and as of when.
A lost update of it only makes the next check look further back, never less far.
``<root>/_flowinst/refresh/untrusted.json``: the first proof that the change test cannot be
relied on. It is never removed by flowinst-etl: while it is there, refresh re-reads every day
(docs/refresh.md says when a person may remove it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa

from flowinst_etl.changes.record import ChangeRecord, CommittedRead
from flowinst_etl.exceptions import StoreError
from flowinst_etl.storage.commits import encode, read_commit_record
from flowinst_etl.storage.filesystem import Store
from flowinst_etl.storage.read import dataset

log = logging.getLogger(__name__)

CHECKED_FILE = "checked.json"
UNTRUSTED_FILE = "untrusted.json"
#: The key of a commit record holding the write's change record.
CHANGES_KEY = "changes"


@dataclass(frozen=True)
class Check:
    """A check that found a day's write current.

    Attributes:
        write_id: the write found current.
        as_of_ms: no change of the day's instances up to this instant (epoch ms) was missed.
        checked_at: when the check ran, ISO text in UTC.
    """

    write_id: str
    as_of_ms: int
    checked_at: str


@dataclass(frozen=True)
class Distrust:
    """Why the change test is not relied on at a root.

    Attributes:
        reason: what the gateway did that the change test cannot see.
        day: the day whose read showed it, when a read showed it.
        found_at: when, ISO text in UTC.
    """

    reason: str
    day: str | None
    found_at: str


def read_distrust(store: Store) -> Distrust | None:
    """Why the change test is not trusted at this root, or ``None`` when it is.

    Raises:
        StoreError: the file is there but cannot be read: it is not taken as trust.
    """
    loaded = _read_json(store, UNTRUSTED_FILE)
    if loaded is None:
        return None
    try:
        return Distrust(str(loaded["reason"]), loaded.get("day"), str(loaded["found_at"]))
    except (KeyError, TypeError) as exc:
        raise StoreError(f"unreadable {store.url(store.refresh_state(UNTRUSTED_FILE))}") from exc


def record_distrust(store: Store, reason: str, day: date | None = None) -> Distrust:
    """Keep the first proof that the change test cannot be relied on; later proofs are logged
    only. Returns the proof kept."""
    kept = read_distrust(store)
    if kept is not None:
        return kept
    found = Distrust(reason, day.isoformat() if day else None, _now_iso())
    _write_json(store, UNTRUSTED_FILE, asdict(found))
    return found


def read_checks(store: Store) -> dict[date, Check]:
    """The last check of each day that found it current (an unreadable file counts as none)."""
    try:
        loaded = _read_json(store, CHECKED_FILE) or {}
        return {
            date.fromisoformat(day): Check(**fields)
            for day, fields in dict(loaded.get("days", {})).items()
        }
    except (StoreError, TypeError, ValueError, AttributeError) as exc:
        log.warning("%s; every day is checked as from its last read", exc)
        return {}


def record_checks(store: Store, checks: Mapping[date, Check]) -> None:
    """Add checks that found days current (each replacing the day's earlier one)."""
    if not checks:
        return
    merged = {**read_checks(store), **checks}
    days = {day.isoformat(): asdict(check) for day, check in sorted(merged.items())}
    _write_json(store, CHECKED_FILE, {"days": days})


def committed_read(store: Store, day: date, checks: Mapping[date, Check]) -> CommittedRead | None:
    """The write ``day`` holds now and what the change test knows of it; ``None`` when the day
    has no commit record.

    Raises:
        StoreError: the commit record cannot be read.
    """
    commit = read_commit_record(store, day)
    if commit is None:
        return None
    write_id = str(commit.get("write_id"))
    record = ChangeRecord.from_json(commit.get(CHANGES_KEY))
    if record is None:
        return CommittedRead(write_id, None, None)
    check = checks.get(day)
    watermark = record.read_from_ms
    if check is not None and check.write_id == write_id:
        watermark = max(watermark, check.as_of_ms)
    return CommittedRead(write_id, record, watermark)


def committed_update_times(
    root: str, day: date, storage_options: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """Instance id -> update time (epoch ms) of the instances ``day`` holds now: its
    ``timestamp``, kept in the ``created_at`` column.

    Raises:
        StoreError: the day cannot be read.
    """
    table = dataset("flow_instances", root, day, day, storage_options).to_table(
        columns=["instance_id", "created_at"]
    )
    ids = table.column("instance_id").to_pylist()
    stamps = table.column("created_at").cast(pa.int64()).to_pylist()
    pairs = zip(ids, stamps, strict=True)
    return {i: stamp for i, stamp in pairs if i is not None and stamp is not None}


def _read_json(store: Store, name: str) -> dict[str, Any] | None:
    return store.read_object(store.refresh_state(name), "refresh state")


def _write_json(store: Store, name: str, value: Mapping[str, Any]) -> None:
    """Replace the file in one step: written beside it, then renamed over it."""
    path = store.refresh_state(name)
    staged = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        store.write_bytes(staged, encode(dict(value)))
        store.move(staged, path)
    except OSError as exc:
        raise StoreError(f"could not write {store.url(path)}: {exc}") from exc


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
