"""``flowinst-etl emulator`` as a real process: one line with the URL, serves, stops on signals."""

from __future__ import annotations

import argparse
import json
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
        (["--per-day", "-5"], "--per-day must be between 0 and 200000, not -5"),
        (["--days", "2026-13-01:2026-03-02"], "invalid date"),
        (["--days", "yesterday"], "--days"),
        (["--server-timezone", "Moon"], "server timezone"),
        (["--error-rate", "2"], "--error-rate must be a fraction between 0 and 1, not 2.0"),
        (["--error-rate", "nan"], "argument --error-rate: 'nan' is not a finite number"),
        (["--drop-rate=-inf"], "argument --drop-rate: '-inf' is not a finite number"),
        (["--rate-limit", "nan"], "argument --rate-limit: 'nan' is not a finite number"),
        (["--rate-limit", "inf"], "argument --rate-limit: 'inf' is not a finite number"),
        (["--rate-limit", "0"], "--rate-limit must be a finite number > 0"),
        (["--retry-after", "-1"], "--retry-after must be at least 0, not -1"),
        (["--token-lifetime", "0"], "--token-lifetime must be between 1 and 10000000, not 0"),
        (["--port", "99999"], "--port must be between 0 and 65535, not 99999"),
        (["--page-base", "two"], "--page-base"),
        (["--port", "http"], "--port"),
        (["--record-weight", "0"], "--record-weight must be between 1 and 20, not 0"),
        (
            ["--request-log", "/nonexistent-dir/requests.jsonl"],
            "cannot open --request-log /nonexistent-dir/requests.jsonl: No such file or directory",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(flags, message):
    result = subprocess.run([*BASE_ARGS, *flags], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert message in line, line


def test_the_subcommand_serves_heavier_records_and_logs_each_search(tmp_path):
    log = tmp_path / "requests.jsonl"
    process = _start(
        "--days", "2026-03-01:2026-03-02", "--per-day", "30", "--record-weight", "3",
        "--request-log", str(log),
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        api = SignedClient(re.search(r"http://127\.0\.0\.1:\d+", line).group(0))
        start, end = day_ms(date(2026, 3, 1))
        found = api.search_data(search_body(start, end))["flowInsts"]
        api.close()
        logged = [json.loads(text) for text in log.read_text(encoding="utf-8").splitlines()]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    heavy = EmulatorConfig(
        start_day=date(2026, 3, 1), end_day=date(2026, 3, 2), per_day=30, record_weight=3
    )
    assert "record weight 3" in line
    assert found == [t.record for t in Emulator(heavy).truth(start, end, 1)]
    assert [entry["status"] for entry in logged] == [200]
    assert process.returncode == 0


def test_an_infinite_rate_limit_is_refused_in_the_config_too():
    with pytest.raises(ConfigError, match="rate_limit_per_s must be a finite number > 0"):
        EmulatorConfig(rate_limit_per_s=float("inf"))


def test_help_shows_every_default():
    result = subprocess.run([*BASE_ARGS, "--help"], capture_output=True, text=True, timeout=30)
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    for shown in (
        "--per-day PER_DAY instances per day (default: 200)",
        "(write --days=-7:0) (default: -7:0)",
        "--port PORT port; 0 picks a free one (default: 0)",
        "Retry-After seconds of a 429 (default: 1)",
        "seconds an access token lives (default: 7200)",
        "the accepted access key (default: demo-access-key)",
    ):
        assert shown in text, shown


def test_days_accept_iso_dates_and_offsets_from_the_server_today():
    tz = parse_server_timezone("GMT+8")
    today = datetime.now(tz).date()
    assert parse_days("-7:0", tz) == (today - timedelta(days=7), today)
    assert parse_days("2026-11-01:2026-11-07", tz) == (date(2026, 11, 1), date(2026, 11, 7))
    assert parse_days("2026-11-01:-1", tz) == (date(2026, 11, 1), today - timedelta(days=1))
    with pytest.raises(ConfigError):
        parse_days("-7", tz)


def test_a_busy_port_exits_2_with_one_line(emulator):
    busy: Emulator = emulator()
    port = busy.base_url.rsplit(":", 1)[1]
    result = subprocess.run(
        [*BASE_ARGS, "--port", port], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"flowinst-etl emulator: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_gateway_switches_reach_the_config():
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    flags = [
        "--token-lifetime-calls", "25", "--auth-error-style", "apim4011",
        "--refresh-invalidates", "--retry-after-header", "soon", "--garbled-rate", "0.1",
        "--gzip-label-every", "4",
    ]  # fmt: skip
    config = config_from_args(parser.parse_args(flags))
    defaults = config_from_args(parser.parse_args([]))
    assert (
        config.token_lifetime_calls,
        config.auth_error_style,
        config.refresh_invalidates,
        config.retry_after_header,
        config.garbled_rate,
        config.gzip_label_every,
    ) == (25, "apim4011", True, "soon", 0.1, 4)
    assert (defaults.token_lifetime_calls, defaults.auth_error_style) == (0, "http401")
    assert (defaults.refresh_invalidates, defaults.retry_after_header) == (False, None)
    assert defaults.gzip_label_every == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--auth-error-style", "http402"])
