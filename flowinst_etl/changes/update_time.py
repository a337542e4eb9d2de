"""When a record was last updated, read from its ``timestamp``, and whether that reading can be
believed: an update time is never before the instance's start or end (docs/enos-api.md section
2: documented as the creation time, yet later than ``endTime`` in the samples)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from flowinst_etl.exceptions import UnreliableChangeTest
from flowinst_etl.windows import names_one_instant, server_time_to_epoch_ms, server_time_to_utc

#: The record field that shows an instance's last update.
UPDATE_FIELD = "timestamp"
#: Names of the update-time sorter, tried in order; 62102 means a name is not accepted
#: (docs/enos-api.md section 1: the documents name it both ways).
UPDATE_SORTERS = ("update_time", "updateTime")
#: Slack (ms) kept whenever an update time is compared with a clock: the gateway's database,
#: its API server and this machine each keep their own.
CLOCK_MARGIN_MS = 60_000
#: The most a local time in a repeated daylight-saving hour can be off by the first reading.
_REPEATED_HOUR_MS = 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)
#: A server time string whose first 19 characters ``datetime.fromisoformat`` reads exactly, and
#: which sorts as its instant among its like in a fixed-offset zone.
_PLAIN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-2][0-9]:[0-5][0-9]:[0-5][0-9](?:\.([0-9]+))?\Z")


def latest_instant_ms(text: str, server_tz: tzinfo) -> int:
    """The latest instant a server time string can name, epoch ms: a local time in the hour a
    zone repeats names two, an hour apart, and the later one is taken, so a change is never
    taken for older than it may be.

    Raises:
        ValueError: the text is empty or not a server time string.
    """
    if type(server_tz) is timezone:  # one instant per string: read without an aware datetime
        plain = _plain_ms(text, server_tz)
        if plain is not None:
            return plain
    instant = server_time_to_utc(text, server_tz)
    if instant is None:
        raise ValueError("empty server time")
    first = (instant - _EPOCH) // _MILLISECOND  # floored as the created_at column is
    return first if names_one_instant(text, server_tz) else first + _REPEATED_HOUR_MS


def _plain_ms(text: str, server_tz: timezone) -> int | None:
    """Epoch ms of a plain server time string in a fixed-offset zone, floored to the
    millisecond; ``None`` for any other string."""
    match = _PLAIN.match(text)
    if match is None:
        return None
    try:
        local = datetime.fromisoformat(text[:19])
    except ValueError:
        return None
    milliseconds = int(((match.group(1) or "") + "000")[:3])
    offset = server_tz.utcoffset(None)
    return (local - _NAIVE_EPOCH - offset) // _MILLISECOND + milliseconds


def update_ms(record: Mapping[str, Any], server_tz: tzinfo) -> int:
    """The record's last update, epoch ms (the latest instant its ``timestamp`` can name).

    Raises:
        UnreliableChangeTest: the record has no readable ``timestamp``, or one before its
            ``startTime`` or ``endTime``, so it does not show the last update.
    """
    text = record.get(UPDATE_FIELD)
    instance = record.get("instanceId")
    try:
        updated = latest_instant_ms(text, server_tz) if isinstance(text, str) else None
    except ValueError:
        updated = None
    if updated is None or not isinstance(text, str):
        raise UnreliableChangeTest(
            f"instance {instance} has no readable {UPDATE_FIELD} ({text!r}), so its update "
            "time cannot be read"
        )
    for name in ("startTime", "endTime"):
        event = record.get(name)
        if not event or not isinstance(event, str):
            continue
        if type(server_tz) is timezone and _PLAIN.match(event) and _PLAIN.match(text):
            before = text[:19] < event[:19]  # whole seconds of one fixed offset sort as instants
        else:
            try:
                before = updated < server_time_to_epoch_ms(event, server_tz)
            except ValueError:
                continue  # the extractor judges unreadable start and end times
        if before:
            raise UnreliableChangeTest(
                f"instance {instance} has {name} {event!r} after its {UPDATE_FIELD} {text!r}: "
                f"{UPDATE_FIELD} is not the time of the last update on this gateway"
            )
    return updated


def clock_floor_ms(clock_skew_ms: int) -> int:
    """An instant surely not after the gateway's now, epoch ms: the earlier of this machine's
    clock and the gateway's (``clock_skew_ms``: gateway minus local), less ``CLOCK_MARGIN_MS``.
    Every change after it has a later update time."""
    local = int(time.time() * 1000)
    return min(local, local + clock_skew_ms) - CLOCK_MARGIN_MS
