"""The client over real HTTP: token life cycle, signing, retries, rate limits and typed errors."""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from flowinst_etl.config import EnosSettings
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.exceptions import (
    AuthenticationError,
    FatalApiError,
    ResponseFormatError,
    RetriableApiError,
    TransportError,
)
from flowinst_etl.gateway.client import EnosClient, SearchQuery
from tests.support import settings_for

DAY = date(2026, 11, 2)


def query(page_no: int = 1, page_size: int = 10) -> SearchQuery:
    return SearchQuery(1, 0, 4_102_444_800_000, page_no, page_size, "trigger_time")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=5, start_day=DAY, end_day=DAY, per_day=120)
    with Emulator(config) as running:
        yield running


@pytest.fixture
def fresh(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator, with every switch back to its default after the test."""
    yield emulator
    defaults = EmulatorConfig()
    emulator.reconfigure(
        **{
            name: getattr(defaults, name)
            for name in (
                "error_rate",
                "drop_rate",
                "rate_limit_per_s",
                "retry_after_s",
                "forced_error",
                "body_fault",
                "latency_ms",
            )
        }
    )


def test_one_token_serves_many_requests(fresh: Emulator) -> None:
    before = fresh.stats()["token_gets"]
    with EnosClient(settings_for(fresh)) as client:
        for _ in range(5):
            assert len(client.search(query()).records) == 10
    assert fresh.stats()["token_gets"] == before + 1


def test_short_lived_tokens_are_renewed_before_they_expire() -> None:
    config = EmulatorConfig(
        seed=5, start_day=DAY, end_day=DAY, per_day=50, token_lifetime_s=1, latency_ms=150
    )
    with Emulator(config) as emulator, EnosClient(settings_for(emulator)) as client:
        pages = [client.search(query()) for _ in range(12)]
        stats = emulator.stats()
    assert all(len(p.records) == 10 for p in pages)
    assert stats["token_refreshes"] + stats["token_gets"] > 1
    assert stats["auth_failures"] == 0


def test_a_rejected_token_is_renewed_and_the_request_resent(fresh: Emulator) -> None:
    with EnosClient(settings_for(fresh)) as client:
        client.search(query())
        failures = fresh.stats()["auth_failures"]
        fresh.revoke_tokens()
        page = client.search(query())
    assert len(page.records) == 10
    assert fresh.stats()["auth_failures"] == failures + 1


def test_server_facts(emulator: Emulator) -> None:
    with EnosClient(settings_for(emulator)) as client:
        assert client.server_timezone().utcoffset(None) == timedelta(hours=8)
        assert abs(client.clock_skew_ms()) < 2_000
    with EnosClient(settings_for(emulator, server_timezone="GMT-2")) as client:
        assert client.server_timezone().utcoffset(None) == timedelta(hours=-2)


def test_clock_skew_is_measured() -> None:
    config = EmulatorConfig(seed=5, start_day=DAY, end_day=DAY, per_day=5, clock_skew_ms=60_000)
    with Emulator(config) as emulator, EnosClient(settings_for(emulator)) as client:
        assert abs(client.clock_skew_ms() - 60_000) < 2_000


@pytest.mark.parametrize(
    ("field", "value", "code", "hint"),
    [
        ("access_key", "not-a-known-key", 1002, "ENOS_ACCESS_KEY"),
        ("secret_key", "wrong-secret-value", 1003, "ENOS_SECRET_KEY"),
    ],
)
def test_bad_credentials_are_authentication_errors(
    emulator: Emulator, field: str, value: str, code: int, hint: str
) -> None:
    with EnosClient(settings_for(emulator, **{field: value})) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.search(query())
    assert caught.value.code == code and hint in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)


def test_user_not_in_org_is_fatal(emulator: Emulator) -> None:
    with EnosClient(settings_for(emulator, user_id="u-stranger")) as client:
        with pytest.raises(FatalApiError, match="ENOS_USER_ID") as caught:
            client.search(query())
    assert caught.value.code == 62101


@pytest.mark.parametrize(
    ("code", "kind", "hint"),
    [(62103, FatalApiError, "privilege"), (62109, RetriableApiError, "try again later")],
)
def test_business_errors_are_typed(fresh: Emulator, code: int, kind: type, hint: str) -> None:
    fresh.reconfigure(forced_error=code)
    with EnosClient(settings_for(fresh)) as client:
        with pytest.raises(kind, match=hint) as caught:
            client.search(query())
    assert caught.value.code == code


def test_pages_with_nan_literals_are_read(fresh: Emulator) -> None:
    fresh.reconfigure(body_fault="non_finite")
    with EnosClient(settings_for(fresh)) as client:
        page = client.search(query())
    assert len(page.records) == 10
    assert all(math.isnan(record["score"]) for record in page.records)


@pytest.mark.parametrize("fault", ["html", "empty", "truncated"])
def test_unreadable_answers_are_format_errors(fresh: Emulator, fault: str) -> None:
    fresh.reconfigure(body_fault=fault)
    with EnosClient(settings_for(fresh)) as client:
        with pytest.raises(ResponseFormatError, match="not a JSON object"):
            client.search(query())


def test_persistent_5xx_gives_up_with_a_transport_error(fresh: Emulator) -> None:
    fresh.reconfigure(error_rate=1.0)
    with EnosClient(settings_for(fresh, max_retries=2)) as client:
        with pytest.raises(TransportError, match="kept answering HTTP 50"):
            client.search(query())


def test_transient_faults_are_retried(fresh: Emulator) -> None:
    fresh.reconfigure(error_rate=0.3, drop_rate=0.2)
    with EnosClient(settings_for(fresh)) as client:
        pages = [client.search(query()) for _ in range(10)]
    assert all(len(p.records) == 10 for p in pages)
    assert sum(p.retries for p in pages) > 0


@pytest.mark.parametrize("retry_after", [0, 1])
def test_rate_limit_answers_are_waited_out(fresh: Emulator, retry_after: int) -> None:
    fresh.reconfigure(rate_limit_per_s=5.0, retry_after_s=retry_after)
    with EnosClient(settings_for(fresh)) as client:
        pages = [client.search(query()) for _ in range(8)]
    assert sum(p.throttled for p in pages) > 0


def test_huge_retry_after_is_capped_and_reported(
    fresh: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.reconfigure(rate_limit_per_s=2.0, retry_after_s=86_400)
    with caplog.at_level(logging.WARNING), EnosClient(settings_for(fresh)) as client:
        for _ in range(4):
            client.search(query())
    assert "gateway asked to wait 86400 s" in caplog.text


def test_client_rate_limit_keeps_below_the_gateway_limit(fresh: Emulator) -> None:
    fresh.reconfigure(rate_limit_per_s=10.0, retry_after_s=0)
    with EnosClient(settings_for(fresh, max_requests_per_s=6.0)) as client:
        pages = [client.search(query()) for _ in range(10)]
    assert sum(p.throttled for p in pages) == 0


def test_connection_refused_names_the_problem() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = EnosSettings(
        api_url=f"http://127.0.0.1:{port}",
        access_key="k",
        secret_key="s",
        org_id="o",
        user_id="u",
        max_retries=1,
        backoff_s=0.01,
    )
    with EnosClient(settings) as client:
        with pytest.raises(TransportError, match="connection refused"):
            client.search(query())


def test_tls_failure_names_the_problem(emulator: Emulator) -> None:
    https_url = emulator.base_url.replace("http://", "https://")
    with EnosClient(settings_for(emulator, api_url=https_url, max_retries=0)) as client:
        with pytest.raises(TransportError, match="TLS"):
            client.search(query())
