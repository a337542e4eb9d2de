"""Settings from the environment: validated, with secrets kept out of repr."""

from __future__ import annotations

from datetime import date

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
        ({"ENOS_SECRET_KEY": "  "}, "ENOS_SECRET_KEY is not set"),
        ({"ENOS_API_URL": "apigw.example.com"}, "not an http"),
        ({"ENOS_PAGE_SIZE": "many"}, "ENOS_PAGE_SIZE='many' is not a whole number"),
        ({"ENOS_PAGE_SIZE": "0"}, "ENOS_PAGE_SIZE 0 is outside"),
        ({"ENOS_VERIFY_TLS": "maybe"}, "ENOS_VERIFY_TLS='maybe' is not true or false"),
        ({"ENOS_SERVER_TIMEZONE": "Mars"}, "server timezone"),
        ({"ENOS_MAX_REQUESTS_PER_SECOND": "-1"}, "must be positive"),
    ],
)
def test_bad_settings_name_the_variable(change: dict[str, str | None], message: str) -> None:
    env = {k: v for k, v in {**ENV, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        EnosSettings.from_env(env)


def test_pipeline_settings_defaults_and_overrides() -> None:
    assert PipelineSettings.from_env({}).timezone == "UTC"
    settings = PipelineSettings.from_env(
        {"FLOWINST_TIMEZONE": "Asia/Shanghai", "FLOWINST_START_DATE": "2026-05-01"}
    )
    assert settings.start_date == date(2026, 5, 1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWINST_TIMEZONE": "Nowhere/City"}, "unknown timezone"),
        ({"FLOWINST_START_DATE": "2026-02-31"}, "invalid date"),
        ({"FLOWINST_MAX_WORKERS": "0"}, "FLOWINST_MAX_WORKERS"),
    ],
)
def test_bad_pipeline_settings_name_the_problem(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PipelineSettings.from_env(env)
