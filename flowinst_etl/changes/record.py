"""A day's change record: what its commit keeps so that later runs can tell whether the gateway
changed the day since (when the read began, the content's digest), and what a full read of a
committed day shows about the change test (did the day change without an update time moving?).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any

import orjson

from flowinst_etl.changes.update_time import UPDATE_FIELD, update_ms
from flowinst_etl.exceptions import UnreliableChangeTest
from flowinst_etl.model import FoundInstance

_DIGEST_MODULUS = 2**128


@dataclass(frozen=True)
class ChangeRecord:
    """The change record of one write of a day (key ``changes`` of its commit record).

    Attributes:
        read_from_ms: every change of the day's instances before this instant (epoch ms) is
            in the write; one after it may not be. The gateway's clock, with a margin.
        latest_update_ms: the latest update time among the day's instances; ``None`` for a day
            without instances.
        instances: instances written.
        digest: a digest of every record as the gateway served it, whatever their order.
        compared: how the day compared with the write it replaced.
        violation: why the change test cannot be trusted, when this read showed it; else None.
    """

    read_from_ms: int
    latest_update_ms: int | None
    instances: int
    digest: str
    compared: str
    violation: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as stored, with the instants also written as ISO text for people."""
        return {
            **asdict(self),
            "read_from": iso_instant(self.read_from_ms),
            "update_field": UPDATE_FIELD,
        }

    @classmethod
    def from_json(cls, value: Any) -> ChangeRecord | None:
        """The record stored in a commit; ``None`` when there is none or it cannot be read."""
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(
                read_from_ms=int(value["read_from_ms"]),
                latest_update_ms=_optional_int(value.get("latest_update_ms")),
                instances=int(value["instances"]),
                digest=str(value["digest"]),
                compared=str(value.get("compared", "")),
                violation=value.get("violation"),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class CommittedRead:
    """The write a day holds now, as the change test sees it.

    Attributes:
        write_id: the write committed.
        record: its change record; ``None`` for a write made before change records were kept.
        watermark_ms: changes of the day's instances after this instant may be missing from the
            write: the later of its ``read_from_ms`` and the last check that found it current.
    """

    write_id: str
    record: ChangeRecord | None
    watermark_ms: int | None


class DayTracker:
    """Follows the records of one read of a day as they are written, and compares the read
    with the write it replaces.

    The change test would have found the day changed when an instance's update time passed
    the previous write's watermark and differs from the one that write holds for it; a day
    whose records differ from that write without one is a proof against the test.

    Args:
        server_tz: the zone of the gateway's time strings.
        read_from_ms: when the read began (``clock_floor_ms``).
        previous: the write the day holds now, ``None`` when it holds none.
    """

    def __init__(
        self, server_tz: tzinfo, read_from_ms: int, previous: CommittedRead | None
    ) -> None:
        self._server_tz = server_tz
        self._read_from_ms = read_from_ms
        self._previous = previous
        self._digest = 0
        self._instances = 0
        self._latest: int | None = None
        self._moved: list[tuple[str, int]] = []  # instances updated after the watermark
        self._problem: str | None = None

    def add(self, instances: Iterable[FoundInstance]) -> None:
        """Take records of the day (any order, each once)."""
        watermark = self._previous.watermark_ms if self._previous else None
        for found in instances:
            self._instances += 1
            self._digest = (self._digest + _record_hash(found)) % _DIGEST_MODULUS
            try:
                updated = update_ms(found.record, self._server_tz)
            except UnreliableChangeTest as error:
                self._problem = self._problem or str(error)
                continue
            self._latest = updated if self._latest is None else max(self._latest, updated)
            if watermark is not None and updated > watermark:
                self._moved.append((str(found.record.get("instanceId")), updated))

    def finish(self, committed: Callable[[], Mapping[str, int]]) -> ChangeRecord:
        """The change record of this read; ``committed`` gives the update time of each instance
        of the write replaced (asked only when an update time passed its watermark)."""
        digest = f"{self._digest:032x}"
        compared, violation = self._compare(digest, committed)
        return ChangeRecord(
            self._read_from_ms,
            self._latest,
            self._instances,
            digest,
            violation or compared,
            violation,
        )

    def _compare(
        self, digest: str, committed: Callable[[], Mapping[str, int]]
    ) -> tuple[str, str | None]:
        previous = self._previous
        if self._problem:
            return "", self._problem
        if previous is None:
            return "first write of the day", None
        if previous.record is None or previous.watermark_ms is None:
            return f"write {previous.write_id} kept no change record", None
        if previous.record.digest == digest:
            return f"unchanged since write {previous.write_id}", None
        since = iso_instant(previous.watermark_ms)
        known = committed() if self._moved else {}
        moved = [i for i, updated in self._moved if known.get(i) != updated]
        if moved:
            return (
                f"changed since write {previous.write_id}: {len(moved)} instances "
                f"updated after {since}, e.g. {moved[0]}, as the change test sees",
                None,
            )
        return "", (
            f"the day changed since write {previous.write_id} ({previous.record.instances} "
            f"instances then, {self._instances} now) while no instance's {UPDATE_FIELD} is "
            f"later than {since}: this gateway changes instances without moving their update "
            "time (or removes them), which the change test cannot see"
        )


def iso_instant(epoch_ms: int) -> str:
    """An instant as ISO text in UTC, to the millisecond."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def _record_hash(found: FoundInstance) -> int:
    """A 128-bit hash of one record and the type it was found under, whatever its key order."""
    value = [found.scheduling_type, found.record]
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, which the json module reads
        text = json.dumps(value, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
