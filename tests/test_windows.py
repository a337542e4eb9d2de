"""Partition windows and server time strings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowinst_etl.exceptions import ConfigError
from flowinst_etl.windows import (
    day_window,
    names_one_instant,
    parse_day,
    parse_server_timezone,
    server_time_to_epoch_ms,
    server_time_to_utc,
    server_zone,
    zone,
)

HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 6, 1), 24)],
)
def test_dst_days_last_23_or_25_hours(day: date, hours: int) -> None:
    window = day_window(day, zone("Europe/Berlin"))
    assert window.end_ms - window.start_ms == hours * HOUR_MS


def test_consecutive_days_tile_time_without_gap_or_overlap() -> None:
    tz = zone("America/New_York")
    days = [date(2026, 3, 6) + timedelta(days=n) for n in range(5)]
    windows = [day_window(d, tz) for d in days]
    assert all(a.end_ms == b.start_ms for a, b in zip(windows, windows[1:], strict=False))


def test_midnight_belongs_to_the_day_it_starts() -> None:
    window = day_window(date(2026, 11, 2), zone("Asia/Shanghai"))
    # 2026-11-01T16:00:00Z and 2026-11-02T16:00:00Z
    assert (window.start_ms, window.end_ms) == (1_793_548_800_000, 1_793_635_200_000)
    assert window.contains(window.start_ms) and not window.contains(window.end_ms)


def test_an_iana_server_zone_follows_daylight_saving_time() -> None:
    berlin = server_zone("Europe/Berlin")
    # summer: CEST, UTC+2; winter: CET, UTC+1
    assert server_time_to_utc("2026-07-01 12:00:00", berlin) == datetime(
        2026, 7, 1, 10, 0, tzinfo=timezone.utc
    )
    assert server_time_to_utc("2026-12-01 12:00:00", berlin) == datetime(
        2026, 12, 1, 11, 0, tzinfo=timezone.utc
    )
    assert server_zone("GMT+8").utcoffset(None) == timedelta(hours=8)


@pytest.mark.parametrize("text", ["CST", "Mars/Olympus", ""])
def test_unreadable_server_zones_name_the_problem(text: str) -> None:
    with pytest.raises(ConfigError, match="timezone"):
        server_zone(text)


@pytest.mark.parametrize(
    ("text", "offset"),
    [("GMT+8", 8 * 60), ("GMT-3:30", -210), ("GMT+05:45", 345), ("UTC", 0), ("GMT", 0)],
)
def test_server_timezones_parse(text: str, offset: int) -> None:
    assert parse_server_timezone(text).utcoffset(None) == timedelta(minutes=offset)


@pytest.mark.parametrize("text", ["", "CST", "GMT+99", "+8h"])
def test_unreadable_server_timezones_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="server timezone"):
        parse_server_timezone(text)


def test_server_times_become_utc_instants() -> None:
    gmt8 = parse_server_timezone("GMT+8")
    assert server_time_to_utc("2019-08-12 08:07:22", gmt8) == datetime(
        2019, 8, 12, 0, 7, 22, tzinfo=timezone.utc
    )
    assert server_time_to_utc("2019-08-12 08:09:48.5", gmt8) == datetime(
        2019, 8, 12, 0, 9, 48, 500000, tzinfo=timezone.utc
    )
    assert server_time_to_utc(None, gmt8) is None
    assert server_time_to_epoch_ms("1970-01-01 08:00:01", gmt8) == 1000


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "2026-11-31", "2026-00-10"])
def test_impossible_days_say_there_is_no_such_day(text: str) -> None:
    with pytest.raises(ConfigError, match=f"^invalid date '{text}': no such day"):
        parse_day(text)


# Python 3.11's date.fromisoformat takes the basic and week forms; full-width digits are \d.
@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "20261101",
        "2026-W45-1",
        "2026W451",
        "2026-305",
        "\uff12\uff10\uff12\uff16-\uff11\uff11-\uff10\uff11",
        "2026-11-01T00:00",
        "2026-11-01 ",
        " 2026-11-01",
        "2026-1-01",
        "",
    ],
)
def test_only_the_yyyy_mm_dd_form_is_a_date(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_day(text)
    assert str(raised.value) == f"invalid date {text!r}: expected YYYY-MM-DD"


def test_a_yyyy_mm_dd_day_is_that_day() -> None:
    assert parse_day("2026-11-01") == date(2026, 11, 1)
    assert parse_day("2028-02-29") == date(2028, 2, 29)


def test_unknown_timezone_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown timezone 'Mars/Olympus'"):
        zone("Mars/Olympus")


@pytest.mark.parametrize(
    ("text", "zone_name", "one"),
    [
        ("2026-10-25 01:59:59", "Europe/Berlin", True),
        ("2026-10-25 02:00:00", "Europe/Berlin", False),  # repeated: 00:00 and 01:00 UTC
        ("2026-10-25 02:59:59.999", "Europe/Berlin", False),
        ("2026-10-25 03:00:00", "Europe/Berlin", True),
        ("2026-03-29 02:30:00", "Europe/Berlin", False),  # skipped when summer time starts
        ("2026-10-25 02:30:00", "GMT+1", True),
        ("2026-11-01 01:30:00", "America/New_York", False),
    ],
)
def test_a_local_time_a_zone_repeats_or_skips_names_no_single_instant(
    text: str, zone_name: str, one: bool
) -> None:
    assert names_one_instant(text, server_zone(zone_name)) is one


class _Fixed(tzinfo):
    """A fixed offset that is not a ``datetime.timezone``: read like any other zone."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self._offset

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


def _outcome(read: Callable[[], object]) -> object:
    try:
        return read()
    except (ValueError, OverflowError) as exc:
        return type(exc), str(exc)


_TIME_TEXTS = st.one_of(
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,8})?", fullmatch=True
    ),
    st.from_regex(r"(0001-01-01|9999-12-31) [0-2][0-9]:[0-5][0-9]:[0-5][0-9]", fullmatch=True),
    st.sampled_from(["2026-02-29 00:00:00", "2026-01-01 24:00:00", "2026-01-01T00:00:00"]),
    st.text(alphabet="0123456789-: .T+\uff10\u0661Z", max_size=24),
)


@given(
    _TIME_TEXTS,
    st.one_of(
        st.integers(-14 * 4, 14 * 4).map(lambda quarters: timedelta(minutes=15 * quarters)),
        st.timedeltas(-timedelta(hours=23, minutes=59), timedelta(hours=23, minutes=59)),
    ),
)
def test_a_fixed_offset_zone_reads_every_text_as_any_other_zone_of_that_offset(
    text: str, offset: timedelta
) -> None:
    fixed, other = timezone(offset), _Fixed(offset)
    assert _outcome(lambda: server_time_to_utc(text, fixed)) == _outcome(
        lambda: server_time_to_utc(text, other)
    )
    assert _outcome(lambda: server_time_to_epoch_ms(text, fixed)) == _outcome(
        lambda: server_time_to_epoch_ms(text, other)
    )
    assert _outcome(lambda: names_one_instant(text, fixed)) == _outcome(
        lambda: names_one_instant(text, other)
    )
