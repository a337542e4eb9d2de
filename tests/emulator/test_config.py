"""EmulatorConfig and Credentials: defaults, validation with clear messages, no secret in repr."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest

from flowinst_etl.emulator import DEMO_CREDENTIALS, Credentials, EmulatorConfig
from flowinst_etl.exceptions import ConfigError
from flowinst_etl.windows import parse_server_timezone


def test_defaults_serve_the_last_week_in_the_server_timezone():
    config = EmulatorConfig(server_timezone="GMT-11")
    today = datetime.now(parse_server_timezone("GMT-11")).date()
    assert config.days() == (today - timedelta(days=7), today)
    assert (config.host, config.port, config.seed, config.per_day) == ("127.0.0.1", 0, 7, 200)
    assert config.credentials == DEMO_CREDENTIALS


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"port": 70000}, "port"),
        ({"per_day": -1}, "per_day"),
        ({"seed": "7"}, "seed"),
        ({"start_day": date(2026, 3, 5), "end_day": date(2026, 3, 1)}, "end_day"),
        ({"start_day": "2026-03-01"}, "start_day"),
        ({"server_timezone": "Mars/Olympus"}, "server timezone"),
        ({"page_base": "two"}, "page_base"),
        ({"count_mode": "all"}, "count_mode"),
        ({"sorter_names": "kebab"}, "sorter_names"),
        ({"to_bound": "open"}, "to_bound"),
        ({"blank_filters": ("type",)}, "blank_filters"),
        ({"blank_filters": "status"}, "blank_filters"),
        ({"window_unit": "us"}, "window_unit"),
        ({"tie_order": "random"}, "tie_order"),
        ({"envelope": "v3"}, "envelope"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"rate_limit_per_s": 0}, "rate_limit_per_s"),
        ({"retry_after_s": -1}, "retry_after_s"),
        ({"token_lifetime_s": 0}, "token_lifetime_s"),
        ({"insert_every": True}, "insert_every"),
        ({"latency_ms": -5}, "latency_ms"),
        ({"forced_error": 0}, "forced_error"),
        ({"body_fault": "slow"}, "body_fault"),
        ({"credentials": "demo"}, "credentials"),
        (
            {"per_day": 100_000, "start_day": date(2026, 1, 1), "end_day": date(2026, 3, 1)},
            "per_day",
        ),
    ],
)
def test_invalid_settings_raise_config_error_naming_them(changes, field):
    with pytest.raises(ConfigError, match=field):
        EmulatorConfig(**changes)


def test_replace_validates_and_keeps_other_fields():
    config = EmulatorConfig(start_day=date(2026, 3, 1), end_day=date(2026, 3, 2), seed=11)
    changed = dataclasses.replace(config, error_rate=0.5)
    assert changed.error_rate == 0.5 and changed.seed == 11 and changed.days() == config.days()
    with pytest.raises(ConfigError):
        dataclasses.replace(config, error_rate=5)


def test_credentials_hide_the_secret_and_refuse_empty_values():
    creds = Credentials("key", "very-secret-value", "o1", "u1")
    assert "very-secret-value" not in repr(creds)
    assert "very-secret-value" not in repr(EmulatorConfig(credentials=creds))
    with pytest.raises(ConfigError, match="user_id"):
        Credentials("key", "secret", "o1", "")
