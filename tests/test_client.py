"""The client over real HTTP: token life cycle, signing, retries, rate limits and typed errors."""

from __future__ import annotations

import logging
import math
import re
import socket
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

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
from flowinst_etl.gateway.client import EnosClient, SearchPage, SearchQuery
from tests.support import settings_for

DAY = date(2026, 11, 2)
TRANSPORT_LOG = "flowinst_etl.gateway.transport"


def query(page_no: int = 1, page_size: int = 10) -> SearchQuery:
    return SearchQuery(1, 0, 4_102_444_800_000, page_no, page_size, "trigger_time")


def search_pages(emulator: Emulator, count: int, **settings: Any) -> list[SearchPage]:
    """``count`` searches of one client with ``settings``."""
    with EnosClient(settings_for(emulator, **settings)) as client:
        return [client.search(query()) for _ in range(count)]


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
                "retry_after_header",
                "token_lifetime_calls",
                "auth_error_style",
                "garbled_rate",
            )
        }
    )


def test_one_token_serves_many_requests(fresh: Emulator) -> None:
    before = fresh.stats()["token_gets"]
    with EnosClient(settings_for(fresh)) as client:
        for _ in range(5):
            assert len(client.search(query()).records) == 10
    assert fresh.stats()["token_gets"] == before + 1


@pytest.mark.parametrize("style", ["http401", "code1203", "apim4011"])
def test_tokens_that_die_every_few_calls_are_renewed_in_every_refusal_shape(
    fresh: Emulator, style: str
) -> None:
    fresh.reconfigure(token_lifetime_calls=3, auth_error_style=style)
    fresh.revoke_tokens()  # a token issued before the switch would serve without limit
    before = fresh.stats()
    with EnosClient(settings_for(fresh)) as client:
        pages = [client.search(query()) for _ in range(10)]
    after = fresh.stats()
    assert all(len(p.records) == 10 for p in pages)
    obtained = sum(after[name] - before[name] for name in ("token_gets", "token_refreshes"))
    assert after["auth_failures"] - before["auth_failures"] >= 3
    assert sum(p.attempts.token_renewals for p in pages) == obtained - 1 >= 3
    assert (
        sum(p.attempts.resends for p in pages) == after["auth_failures"] - before["auth_failures"]
    )


def test_a_refusal_that_renewal_cannot_cure_says_what_the_gateway_said(fresh: Emulator) -> None:
    fresh.reconfigure(forced_error=1203)
    before = fresh.stats()["token_refreshes"]
    with EnosClient(settings_for(fresh)) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.search(query())
    assert caught.value.code == 1203
    assert "kept refusing the access token after 4 renewals" in str(caught.value)
    assert "ENOS_SECRET_KEY" not in str(caught.value)
    assert fresh.stats()["token_refreshes"] == before + 4


def test_a_refused_signature_is_not_blamed_on_the_secret(fresh: Emulator) -> None:
    fresh.reconfigure(forced_error=1003)
    before = fresh.stats()
    with EnosClient(settings_for(fresh)) as client:
        with pytest.raises(AuthenticationError, match="refused the request signature") as caught:
            client.search(query())
    after = fresh.stats()
    assert caught.value.code == 1003 and "ENOS_SECRET_KEY" not in str(caught.value)
    assert after["token_refreshes"] == before["token_refreshes"]
    assert after["searches"] == before["searches"] + 1


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
    assert sum(p.attempts.retries for p in pages) > 0


def test_unreadable_status_lines_and_headers_are_retried(fresh: Emulator) -> None:
    fresh.reconfigure(garbled_rate=0.3)
    before = fresh.stats()["faults_garbled"]
    with EnosClient(settings_for(fresh)) as client:
        pages = [client.search(query()) for _ in range(10)]
    assert all(len(p.records) == 10 for p in pages)
    assert fresh.stats()["faults_garbled"] > before
    assert sum(p.attempts.retries for p in pages) > 0


def test_each_retry_logs_one_warning_without_secrets(
    fresh: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.reconfigure(error_rate=0.3, drop_rate=0.1)
    with caplog.at_level(logging.WARNING, logger=TRANSPORT_LOG):
        pages = search_pages(fresh, 10)
    records = [r for r in caplog.records if r.name == TRANSPORT_LOG]
    search = "POST /batch-processing-service/v2.1/flowInstances "
    searches = [r for r in records if r.getMessage().startswith(search)]
    assert len(searches) == sum(p.attempts.retries for p in pages) > 0
    secret = fresh.config.credentials.secret_key
    for record in records:  # token calls' retries are logged too
        text = record.getMessage()
        assert record.levelno == logging.WARNING
        assert re.search(
            r"(answered HTTP 50[234]|failed: \w+).*; attempt \d+ of 9 in [\d.]+ s", text
        )
        assert secret not in text and "?" not in text and "userId" not in text
        assert "signature" not in text and "accesstoken" not in text


@pytest.mark.parametrize("retry_after", [0, 1])
def test_rate_limit_answers_are_waited_out(
    fresh: Emulator, retry_after: int, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.reconfigure(rate_limit_per_s=5.0, retry_after_s=retry_after)
    with caplog.at_level(logging.WARNING, logger=TRANSPORT_LOG):
        pages = search_pages(fresh, 8, max_backoff_s=1)
    assert sum(p.attempts.throttled for p in pages) > 0
    assert "answered HTTP 429" in caplog.text and "capped" not in caplog.text


@pytest.mark.parametrize(
    ("header", "unreadable"),
    [("1.5", True), ("-3", True), ("soon", True), ("Wed, 21 Oct 2015 07:28:00 GMT", False)],
)
def test_an_unreadable_retry_after_falls_back_to_backoff(
    fresh: Emulator, header: str, unreadable: bool, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.reconfigure(rate_limit_per_s=5.0, retry_after_header=header)
    with caplog.at_level(logging.WARNING, logger=TRANSPORT_LOG):
        pages = search_pages(fresh, 8)
    assert all(len(p.records) == 10 for p in pages)
    assert sum(p.attempts.throttled for p in pages) > 0
    assert ("unreadable Retry-After" in caplog.text) == unreadable


def test_huge_retry_after_is_capped_and_reported(
    fresh: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.reconfigure(rate_limit_per_s=2.0, retry_after_s=86_400)
    with (
        caplog.at_level(logging.WARNING, logger=TRANSPORT_LOG),
        EnosClient(settings_for(fresh)) as client,
    ):
        for _ in range(4):
            client.search(query())
    assert "Retry-After 86400 s capped" in caplog.text


def test_client_rate_limit_covers_token_calls_and_is_measured(fresh: Emulator) -> None:
    fresh.reconfigure(rate_limit_per_s=6.0, retry_after_s=0, token_lifetime_calls=2)
    fresh.revoke_tokens()
    before = fresh.stats()
    with EnosClient(settings_for(fresh, max_requests_per_s=5.0)) as client:
        pages = [client.search(query()) for _ in range(10)]
    after = fresh.stats()
    assert sum(p.attempts.throttled for p in pages) == 0
    assert after["rate_limited"] == before["rate_limited"]
    assert after["token_refreshes"] - before["token_refreshes"] >= 4
    assert sum(p.attempts.limiter_wait_s for p in pages) > 0


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
