"""Server-local days and the ``GMT+N`` offsets Get Timezone answers, as the emulator reads them."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from flowinst_etl.exceptions import ConfigError

_OFFSET = re.compile(r"^(?:GMT|UTC)(?:([+-])(\d{1,2})(?::?(\d{2}))?)?$")


def server_zone(text: str) -> timezone:
    """The fixed offset called ``GMT+8``, ``GMT-3:30``, ``UTC`` (enos-api.md section 4).

    Raises:
        ConfigError: not of that form, or beyond 14 hours.
    """
    match = _OFFSET.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"unreadable server timezone {text!r}: expected a form like 'GMT+8' or 'UTC'"
        )
    sign, hours, minutes = match.groups()
    if sign is None:
        return timezone.utc
    offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if offset > timedelta(hours=14):
        raise ConfigError(f"unreadable server timezone {text!r}: offset beyond 14 hours")
    return timezone(offset if sign == "+" else -offset)


def iso_day(text: str) -> date:
    """A ``YYYY-MM-DD`` day.

    Raises:
        ConfigError: not a valid date.
    """
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"invalid date {text!r}: expected YYYY-MM-DD") from exc


def midnight_ms(day: date, tz: timezone) -> int:
    """Epoch milliseconds of ``day``'s first instant in ``tz``."""
    moment = datetime(day.year, day.month, day.day, tzinfo=tz)
    return int(moment.timestamp()) * 1000
