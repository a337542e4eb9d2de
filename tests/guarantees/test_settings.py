"""The ENOS_* settings README documents hold for the whole backfill, whatever else is configured.

``flowinst-etl backfill`` checks access with the settings of the environment, then extracts
through the Dagster assets: what a user sets must hold for the extraction too. ``requests`` also
reads CA bundle variables (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) from the environment, which
must not turn verification back on when ENOS_VERIFY_TLS=false.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import certifi
import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.extract.conventions import TIE_PAGE_SIZE
from flowinst_etl.gateway.client import EnosClient
from tests.guarantees.harness import (
    RecordingProxy,
    assert_days_exact,
    backfill_args,
    cli_environment,
    describe,
    run_cli,
    self_signed_tls,
)
from tests.support import settings_for

DAY = date(2026, 11, 26)
TIMEZONE = "UTC"
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def emulator() -> Emulator:
    return Emulator(
        EmulatorConfig(seed=83, start_day=DAY - timedelta(days=1), end_day=DAY + timedelta(days=1))
    )


def test_every_search_asks_for_the_configured_page_size(tmp_path: Path) -> None:
    with emulator() as gateway, RecordingProxy(gateway.base_url) as proxy:
        env = cli_environment(proxy.base_url, gateway.config.credentials, ENOS_PAGE_SIZE="20")
        done = run_cli(*backfill_args(DAY, DAY, tmp_path / "data"), env=env, cwd=tmp_path)
        assert done.returncode == 0, describe(done)
        assert_days_exact(gateway, tmp_path / "data", [DAY], TIMEZONE)
    # One-row probes learn the gateway's conventions and a half page checks that pages are
    # prefixes; a tied second that fills a page is asked whole; a short answer inside it may be
    # asked again, or its next page, at the length it had; every other page is ENOS_PAGE_SIZE.
    sizes, lengths = set(), set()
    for exchange in proxy.exchanges:  # in the order their answers came
        if "/flowInstances" not in exchange.path:
            continue
        size = json.loads(exchange.body)["pagination"]["pageSize"]
        assert size in {1, 10, 20, TIE_PAGE_SIZE} | lengths, f"pageSize {size} asked"
        sizes.add(size)
        data = json.loads(exchange.answer)["data"] or {}  # None for a refused search
        lengths.add(len(data.get("flowInsts") or []))
    assert 20 in sizes


def test_verification_turned_off_reaches_a_self_signed_gateway(tmp_path: Path) -> None:
    with (
        emulator() as gateway,
        RecordingProxy(gateway.base_url, tls=self_signed_tls(tmp_path)) as proxy,
    ):
        env = cli_environment(proxy.base_url, gateway.config.credentials, ENOS_VERIFY_TLS="false")
        for name in CA_BUNDLE_VARIABLES:  # see the test below
            env.pop(name, None)
        done = run_cli(*backfill_args(DAY, DAY, tmp_path / "data"), env=env, cwd=tmp_path)
        assert done.returncode == 0, describe(done)
        assert_days_exact(gateway, tmp_path / "data", [DAY], TIMEZONE)


# urllib3 warns on every unverified request; that warning is expected here.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("variable", CA_BUNDLE_VARIABLES)
def test_verification_turned_off_stays_off_with_a_ca_bundle_configured(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, certifi.where())
    with (
        emulator() as gateway,
        RecordingProxy(gateway.base_url, tls=self_signed_tls(tmp_path)) as proxy,
    ):
        settings = replace(settings_for(gateway, api_url=proxy.base_url), verify_tls=False)
        with EnosClient(settings) as client:
            assert client.server_timezone().utcoffset(None) == timedelta(hours=8)
