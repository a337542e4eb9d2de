"""``flowinst-etl emulator`` as a real process: one line with the URL, serves, stops on signals."""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
from datetime import date, datetime, timedelta

import pytest

from flowinst_etl.emulator import Credentials, Emulator, EmulatorConfig
from flowinst_etl.emulator.command import config_from_args, configure_parser, parse_days
from flowinst_etl.exceptions import ConfigError
from flowinst_etl.windows import parse_server_timezone

from .signed import SignedClient, day_ms, search_body

SECRET = "cli-secret-do-not-print"
BASE_ARGS = [sys.executable, "-m", "flowinst_etl.cli", "emulator"]


def _start(*flags):
    return subprocess.Popen(
        [*BASE_ARGS, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_subcommand_serves_until_a_signal(stop_signal):
    process = _start(
        "--port", "0", "--days", "2026-03-01:2026-03-02", "--per-day", "30",
        "--secret-key", SECRET, "--access-key", "cli-key", "--page-base", "zero",
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        api = SignedClient(
            url, Credentials("cli-key", SECRET, "o15000000000001", "u15000000000001")
        )
        start, end = day_ms(date(2026, 3, 1))
        first_page = search_body(start, end, pagination={"pageNo": 0, "pageSize": 100})
        found = api.search_data(first_page)["flowInsts"]
        api.close()
        same = EmulatorConfig(start_day=date(2026, 3, 1), end_day=date(2026, 3, 2), per_day=30)
        assert line.startswith("EnOS emulator listening on ")
        assert found == [t.record for t in Emulator(same).truth(start, end, 1)]
    finally:
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert out == ""  # nothing after the one line already read
    assert SECRET not in line + out + err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--per-day", "-1"], "per_day"),
        (["--days", "2026-13-01:2026-03-02"], "invalid date"),
        (["--days", "yesterday"], "--days"),
        (["--server-timezone", "Moon"], "server timezone"),
        (["--error-rate", "2"], "error_rate"),
        (["--page-base", "two"], "--page-base"),
        (["--port", "http"], "--port"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_error(flags, message):
    result = subprocess.run([*BASE_ARGS, *flags], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr.strip().splitlines()[-1]


def test_days_accept_iso_dates_and_offsets_from_the_server_today():
    tz = parse_server_timezone("GMT+8")
    today = datetime.now(tz).date()
    assert parse_days("-7:0", tz) == (today - timedelta(days=7), today)
    assert parse_days("2026-11-01:2026-11-07", tz) == (date(2026, 11, 1), date(2026, 11, 7))
    assert parse_days("2026-11-01:-1", tz) == (date(2026, 11, 1), today - timedelta(days=1))
    with pytest.raises(ConfigError):
        parse_days("-7", tz)


def test_a_busy_port_exits_1(emulator):
    busy: Emulator = emulator()
    port = busy.base_url.rsplit(":", 1)[1]
    result = subprocess.run(
        [*BASE_ARGS, "--port", port], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


def test_gateway_switches_reach_the_config():
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    flags = [
        "--token-lifetime-calls", "25", "--auth-error-style", "apim4011",
        "--refresh-invalidates", "--retry-after-header", "soon", "--garbled-rate", "0.1",
    ]  # fmt: skip
    config = config_from_args(parser.parse_args(flags))
    defaults = config_from_args(parser.parse_args([]))
    assert (
        config.token_lifetime_calls,
        config.auth_error_style,
        config.refresh_invalidates,
        config.retry_after_header,
        config.garbled_rate,
    ) == (25, "apim4011", True, "soon", 0.1)
    assert (defaults.token_lifetime_calls, defaults.auth_error_style) == (0, "http401")
    assert (defaults.refresh_invalidates, defaults.retry_after_header) == (False, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["--auth-error-style", "http402"])
