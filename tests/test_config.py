"""Settings from the environment: validated, with secrets kept out of repr."""

from __future__ import annotations

import logging
from datetime import date, time

import pytest

from flowinst_etl.config import EnosSettings, PipelineSettings
from flowinst_etl.exceptions import ConfigError

ENV = {
    "ENOS_API_URL": "https://apigw.example.com",
    "ENOS_ACCESS_KEY": "ak-123",
    "ENOS_SECRET_KEY": "very-secret-value",
    "ENOS_ORG_ID": "o1",
    "ENOS_USER_ID": "u1",
}


def test_settings_read_from_environment() -> None:
    settings = EnosSettings.from_env({**ENV, "ENOS_PAGE_SIZE": "100", "ENOS_VERIFY_TLS": "no"})
    assert settings.page_size == 100 and settings.verify_tls is False
    assert settings.server_timezone is None


def test_secret_never_in_repr() -> None:
    assert "very-secret-value" not in repr(EnosSettings.from_env(ENV))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ENOS_API_URL": None}, "ENOS_API_URL is not set"),
        ({"ENOS_SECRET_KEY": "  "}, "^ENOS_SECRET_KEY is empty"),
        ({"ENOS_ORG_ID": ""}, "^ENOS_ORG_ID is empty: see README"),
        ({"ENOS_API_URL": "apigw.example.com"}, "not an http"),
        ({"ENOS_PAGE_SIZE": "many"}, "ENOS_PAGE_SIZE='many' is not a whole number"),
        ({"ENOS_PAGE_SIZE": "0"}, "ENOS_PAGE_SIZE 0 is outside"),
        ({"ENOS_VERIFY_TLS": "maybe"}, "ENOS_VERIFY_TLS='maybe' is not true or false"),
        ({"ENOS_SERVER_TIMEZONE": "Mars"}, "server timezone"),
        ({"ENOS_MAX_REQUESTS_PER_SECOND": "-1"}, "ENOS_MAX_REQUESTS_PER_SECOND -1 is outside"),
    ],
)
def test_bad_settings_name_the_variable(change: dict[str, str | None], message: str) -> None:
    env = {k: v for k, v in {**ENV, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        EnosSettings.from_env(env)


def test_pipeline_settings_defaults_and_overrides() -> None:
    assert PipelineSettings.from_env({}).timezone == "UTC"
    assert PipelineSettings.from_env({}).freshness_deadline == time(3, 0)
    settings = PipelineSettings.from_env(
        {
            "FLOWINST_TIMEZONE": "Asia/Shanghai",
            "FLOWINST_START_DATE": "2026-05-01",
            "FLOWINST_FRESHNESS_DEADLINE": "05:30",
        }
    )
    assert settings.start_date == date(2026, 5, 1)
    assert settings.freshness_deadline == time(5, 30)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWINST_TIMEZONE": "Nowhere/City"}, "unknown timezone"),
        ({"FLOWINST_START_DATE": "2026-02-31"}, "invalid date"),
        ({"FLOWINST_MAX_WORKERS": "0"}, "FLOWINST_MAX_WORKERS"),
        ({"FLOWINST_FRESHNESS_DEADLINE": "24:00"}, "FRESHNESS_DEADLINE='24:00' is not a time of"),
        ({"FLOWINST_FRESHNESS_DEADLINE": "3:00"}, "FRESHNESS_DEADLINE='3:00' is not a time of"),
        ({"FLOWINST_TABLE_FORMAT": "iceberg"}, "'iceberg' is not one of parquet, delta"),
    ],
)
def test_bad_pipeline_settings_name_the_problem(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PipelineSettings.from_env(env)


# Each numeric setting with its documented range (README 'Configuration').
NUMERIC = {
    "ENOS_PAGE_SIZE": "1..1000",
    "ENOS_MAX_RETRIES": "0..100",
    "ENOS_MAX_REQUESTS_PER_SECOND": "0.01..10000",
    "FLOWINST_MAX_WORKERS": "1..64",
    "FLOWINST_LOOKBACK_DAYS": "1..366",
    "FLOWINST_REFRESH_DAYS": "1..366",
    "FLOWINST_RECORDS_MEMORY_MB": "0..1048576",
    "FLOWINST_RECORDS_IN_MEMORY": "0..10000000",
    "FLOWINST_DELTA_RETENTION_HOURS": "1..87600",
}
INTEGERS = {
    "ENOS_PAGE_SIZE",
    "ENOS_MAX_RETRIES",
    "FLOWINST_MAX_WORKERS",
    "FLOWINST_LOOKBACK_DAYS",
    "FLOWINST_REFRESH_DAYS",
    "FLOWINST_RECORDS_MEMORY_MB",
    "FLOWINST_RECORDS_IN_MEMORY",
    "FLOWINST_DELTA_RETENTION_HOURS",
}


def load(env: dict[str, str]) -> None:
    EnosSettings.from_env({**ENV, **env})
    PipelineSettings.from_env(env)


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "1e9"])
def test_every_numeric_setting_is_finite_and_in_range(name: str, value: str) -> None:
    if name in INTEGERS and value in ("inf", "-inf", "nan", "1e9"):
        expected = f"{name}='{value}' is not a whole number"
    elif value in ("inf", "-inf", "nan"):
        expected = f"{name}='{value}' is not a finite number"
    else:
        shown = {"1e9": "1000000000"}.get(value, value)
        expected = f"{name} {shown} is outside {NUMERIC[name]}"
    with pytest.raises(ConfigError) as raised:
        load({name: value})
    assert str(raised.value) == expected


@pytest.mark.parametrize("name", NUMERIC)
def test_the_bounds_of_each_range_are_accepted(name: str) -> None:
    low, high = NUMERIC[name].split("..")
    for value in (low, high):
        load({name: value})


def test_every_problem_is_reported_at_once() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("ENOS_API_URL", "ENOS_ORG_ID")}
    with pytest.raises(ConfigError) as raised:
        EnosSettings.from_env(
            {**env, "ENOS_PAGE_SIZE": "0", "ENOS_VERIFY_TLS": "maybe", "ENOS_MAX_RETRIES": "x"}
        )
    assert str(raised.value) == (
        "ENOS_API_URL, ENOS_ORG_ID are not set: see README 'Configuration'; "
        "ENOS_VERIFY_TLS='maybe' is not true or false; "
        "ENOS_MAX_RETRIES='x' is not a whole number; "
        "ENOS_PAGE_SIZE 0 is outside 1..1000"
    )
    with pytest.raises(ConfigError) as raised:
        PipelineSettings.from_env(
            {
                "FLOWINST_TIMEZONE": "Mars/Base",
                "FLOWINST_START_DATE": "2026-11-31",
                "FLOWINST_MAX_WORKERS": "0",
            }
        )
    message = str(raised.value)
    assert "FLOWINST_START_DATE: invalid date '2026-11-31': no such day" in message
    assert "unknown timezone 'Mars/Base'" in message
    assert "FLOWINST_MAX_WORKERS 0 is outside 1..64" in message


def test_a_number_too_large_for_a_float_is_quoted_as_typed() -> None:
    with pytest.raises(ConfigError) as raised:
        load({"ENOS_MAX_REQUESTS_PER_SECOND": "1e309"})
    assert str(raised.value) == "ENOS_MAX_REQUESTS_PER_SECOND='1e309' is not a finite number"


def test_unset_and_empty_variables_are_told_apart() -> None:
    env = {k: v for k, v in ENV.items() if k != "ENOS_API_URL"}
    with pytest.raises(ConfigError) as raised:
        EnosSettings.from_env({**env, "ENOS_ORG_ID": " ", "ENOS_USER_ID": ""})
    assert str(raised.value) == (
        "ENOS_API_URL is not set: see README 'Configuration'; "
        "ENOS_ORG_ID, ENOS_USER_ID are empty: see README 'Configuration'"
    )


def test_the_deprecated_record_count_is_read_as_bytes_and_said_to_be_deprecated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        counted = PipelineSettings.from_env({"FLOWINST_RECORDS_IN_MEMORY": "1000"})
    assert counted.records_memory_bytes == 1000 * 4096
    assert "FLOWINST_RECORDS_IN_MEMORY is deprecated" in caplog.text
    assert "FLOWINST_RECORDS_MEMORY_MB" in caplog.text
    both = {"FLOWINST_RECORDS_IN_MEMORY": "1000", "FLOWINST_RECORDS_MEMORY_MB": "3"}
    assert PipelineSettings.from_env(both).records_memory_bytes == 3 << 20
    assert PipelineSettings.from_env({}).records_memory_bytes == 32 << 20
