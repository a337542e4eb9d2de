"""Partition days and server time: exact epoch-ms windows, and server time strings as UTC instants.

A partition day is ``[local midnight, next local midnight)`` in an IANA timezone, so DST days
last 23 or 25 hours and an instance triggered exactly at midnight belongs to the day it starts.
EnOS writes times as naive ``yyyy-MM-dd HH:mm:ss[.S]`` strings in the server's timezone, which Get
Timezone reports as ``GMT+N`` (one fixed offset, docs/enos-api.md); a gateway in a zone with
daylight saving time is read right only with its IANA name (``ENOS_SERVER_TIMEZONE=Europe/Berlin``),
and even then a string in the hour the zone repeats when daylight saving time ends names two
instants (``names_one_instant`` tells which strings do not name one).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowinst_etl.exceptions import ConfigError

_GMT_OFFSET = re.compile(
    r"^(?:GMT|UTC)?\s*(?:(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?)?$"
)
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SERVER_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\Z")
_PLAIN = r"[0-9]{4}-[0-9]{2}-[0-9]{2} (?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}"
#: The server time strings ``datetime.fromisoformat`` reads exactly as ``_local_time`` does, on
#: every Python version (ASCII digits, hours 00-23; fractions are left to ``_local_time``).
_PLAIN_SECOND = re.compile(_PLAIN + r"\Z")
#: The same with a fraction of any length, which cannot make a valid time invalid.
_PLAIN_FRACTION = re.compile(_PLAIN + r"(?:\.[0-9]+)?\Z")


@dataclass(frozen=True)
class Window:
    """A half-open trigger-time window ``[start_ms, end_ms)`` in epoch milliseconds."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ConfigError(f"empty window: end {self.end_ms} is not after start {self.start_ms}")

    def contains(self, epoch_ms: int) -> bool:
        """Whether an instant lies inside the window."""
        return self.start_ms <= epoch_ms < self.end_ms


def zone(name: str) -> ZoneInfo:
    """The IANA timezone called ``name``.

    Raises:
        ConfigError: no such timezone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown timezone {name!r}: use an IANA name such as 'UTC' or 'Asia/Shanghai'"
        ) from exc


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` date, exactly that form in ASCII digits on every Python version
    (``date.fromisoformat`` also takes ``20261101`` and ``2026-W45-1`` from Python 3.11 on).

    Raises:
        ConfigError: not of that form, or no such day (``2026-11-31``).
    """
    if not isinstance(text, str) or not _ISO_DAY.fullmatch(text):
        raise ConfigError(f"invalid date {text!r}: expected YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"invalid date {text!r}: no such day ({exc})") from exc


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def day_window(day: date, tz: tzinfo) -> Window:
    """The trigger-time window of one partition day in ``tz``."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return Window(_epoch_ms(start), _epoch_ms(end))


def consecutive_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """``days`` as ranges of consecutive days, ``(first, last)`` inclusive, in order."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day - ranges[-1][1] == timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def parse_server_timezone(text: str) -> timezone:
    """The fixed offset of a Get Timezone answer such as ``GMT+8``, ``GMT-3:30`` or ``UTC``.

    Raises:
        ConfigError: not an offset this parser understands.
    """
    match = _GMT_OFFSET.match(text.strip())
    if not match or not text.strip():
        raise ConfigError(f"unreadable server timezone {text!r}: expected a form like 'GMT+8'")
    if match["sign"] is None:
        return timezone.utc
    offset = timedelta(hours=int(match["hours"]), minutes=int(match["minutes"] or 0))
    if offset > timedelta(hours=14):
        raise ConfigError(f"unreadable server timezone {text!r}: offset beyond 14 hours")
    return timezone(-offset if match["sign"] == "-" else offset)


def server_zone(text: str) -> tzinfo:
    """The server timezone a setting names: a fixed offset (``GMT+8``, ``UTC``) or an IANA name
    (``Europe/Berlin``), whose offset then follows daylight saving time at each instant.

    Raises:
        ConfigError: neither form.
    """
    try:
        return parse_server_timezone(text)
    except ConfigError:
        pass
    if "/" not in text:
        raise ConfigError(
            f"unreadable server timezone {text!r}: expected an offset like 'GMT+8' or an IANA "
            "name like 'Europe/Berlin'"
        )
    return zone(text.strip())


def server_time_to_utc(text: str | None, server_tz: tzinfo) -> datetime | None:
    """A server time string as a UTC instant; ``None`` for a missing or empty value.

    Raises:
        ValueError: the text is not a server time string.
    """
    if not text:
        return None
    if type(server_tz) is timezone and _PLAIN_SECOND.match(text):
        # Read in C with the zone's offset written out: the same instant as the reading below,
        # which also words any error.
        try:
            local = datetime.fromisoformat(text + _offset_text(server_tz))
            return local.astimezone(timezone.utc)
        except (ValueError, OverflowError):
            pass
    return _local_time(text, server_tz).astimezone(timezone.utc)


@functools.lru_cache(maxsize=64)
def _offset_text(server_tz: timezone) -> str:
    """A fixed offset as ``isoformat`` writes it (``+08:00``), which ``fromisoformat`` reads."""
    return datetime(2000, 1, 1, tzinfo=server_tz).isoformat()[19:]


def _local_time(text: str, server_tz: tzinfo) -> datetime:
    match = _SERVER_TIME.match(text)
    if match is None:
        raise ValueError(f"not a server time (yyyy-MM-dd HH:mm:ss[.S]): {text!r}")
    year, month, day, hour, minute, second, fraction = match.groups()
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int((fraction or "0").ljust(6, "0")[:6]),
        tzinfo=server_tz,
    )


def names_one_instant(text: str, server_tz: tzinfo) -> bool:
    """Whether a server time string names exactly one instant in ``server_tz``.

    A local time in the hour a zone repeats when daylight saving time ends names two instants
    an hour apart, and one in the hour it skips when daylight saving time starts names none that
    a correct clock writes; the string alone cannot tell which instant was meant, so
    ``server_time_to_utc`` (which reads the first) is right for it only by chance. A fixed offset
    names one instant for every string.

    Raises:
        ValueError: the text is not a server time string.
    """
    if type(server_tz) is timezone and _PLAIN_FRACTION.match(text):
        # A datetime.timezone has one offset whatever the fold: only whether the time exists.
        try:
            datetime.fromisoformat(text[:19])
            return True
        except ValueError:
            pass
    local = _local_time(text, server_tz)
    return local.utcoffset() == local.replace(fold=1).utcoffset()


def server_time_to_epoch_ms(text: str, server_tz: tzinfo) -> int:
    """A server time string as epoch milliseconds.

    Raises:
        ValueError: the text is empty or not a server time string.
    """
    instant = server_time_to_utc(text, server_tz)
    if instant is None:
        raise ValueError("empty server time")
    return _epoch_ms(instant)
