"""Exact days while tokens die every few calls, in every shape a gateway reports it, under faults.

Each case extracts several days with several workers through the library against an emulator
whose tokens serve 25 API calls, answering expiry as HTTP 401, as HTTP 200 code 1203 or as HTTP 200
``apim_status`` 4011, while 5xx answers (half of them HTML pages), dropped connections and 429s
come in between; then compares every day with the ground truth. Each case also proves that tokens
really expired and were renewed, and that each fault happened.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from flowinst_etl import read_manifest, read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import load_days
from flowinst_etl.windows import zone
from tests.guarantees.harness import assert_days_exact, days_from
from tests.support import settings_for

FIRST = date(2026, 11, 14)
DAYS = days_from(FIRST, 3)
TIMEZONE = "Asia/Shanghai"
TOKEN_CALLS = 25

FAULT_MIX: dict[str, object] = {
    "error_rate": 0.1,
    "drop_rate": 0.05,
    "rate_limit_per_s": 30.0,
    "malformed_graph_rate": 0.1,
}

CASES = [
    pytest.param(style, workers, invalidates, retry_after, id=f"{style}-{workers}w{tag}")
    for style in ("http401", "code1203", "apim4011")
    for workers, retry_after in ((4, 0), (8, 1))
    for invalidates, tag in ((False, ""), (True, "-refresh-invalidates"))
]


def unreadable(graph: object) -> bool:
    """Whether a graph is not a JSON object's text (the emulator truncates malformed ones)."""
    try:
        return not isinstance(json.loads(graph), dict)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


@pytest.mark.parametrize(("style", "workers", "invalidates", "retry_after"), CASES)
def test_days_stay_exact_while_tokens_expire(
    style: str, workers: int, invalidates: bool, retry_after: int, tmp_path: Path
) -> None:
    config = EmulatorConfig(
        seed=53,
        start_day=DAYS[0] - timedelta(days=1),
        end_day=DAYS[-1] + timedelta(days=1),
        per_day=300,
        token_lifetime_calls=TOKEN_CALLS,
        auth_error_style=style,
        refresh_invalidates=invalidates,
        retry_after_s=retry_after,
        **FAULT_MIX,  # type: ignore[arg-type]
    )
    with Emulator(config) as emulator:
        # backoff long enough that 429s under a loaded machine cannot outlast the retries
        settings = settings_for(emulator, page_size=10, backoff_s=0.1, max_backoff_s=1.0)
        with EnosClient(settings) as client:
            extractor = Extractor(client, max_workers=workers)
            results = list(load_days(extractor, DAYS, zone(TIMEZONE), str(tmp_path)))
        failures = {r.day: r.error for r in results if not r.ok}
        assert not failures, failures
        truths = assert_days_exact(emulator, tmp_path, DAYS, TIMEZONE)
        stats = emulator.stats()
    for counter in ("auth_failures", "faults_5xx", "faults_dropped", "rate_limited"):
        assert stats[counter] > 0, f"the fault did not happen: {counter} in {stats}"
    renewed = sum(r.reconciliation["token_renewals"] for r in results)
    # the first token is a get; every later one replaced a token that served its 25 calls
    assert renewed == stats["token_gets"] + stats["token_refreshes"] - 1 > 0, stats
    malformed_total = 0
    for day, truth in truths.items():
        frame = read_table("flow_instances", str(tmp_path), day, day)
        flagged = set(frame.loc[frame["graph_error"].notna(), "instance_id"])
        malformed = {t.record["instanceId"] for t in truth if unreadable(t.record["graph"])}
        assert flagged == malformed, day
        malformed_total += len(malformed)
        manifest = read_manifest(str(tmp_path), "flow_instances", day)
        assert manifest is not None
        assert manifest["reconciliation"]["graph_errors"] == len(malformed)
    assert malformed_total > 0, "no graph was malformed; the case proves nothing"


@pytest.mark.parametrize("header", ["1.5", "-3", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_day_completes_whatever_retry_after_says(header: str, tmp_path: Path) -> None:
    config = EmulatorConfig(
        seed=59,
        start_day=FIRST - timedelta(days=1),
        end_day=FIRST + timedelta(days=1),
        per_day=200,
        rate_limit_per_s=10.0,
        retry_after_header=header,
    )
    with Emulator(config) as emulator:
        settings = settings_for(emulator, page_size=10, backoff_s=0.1, max_backoff_s=1.0)
        with EnosClient(settings) as client:
            (result,) = load_days(Extractor(client), [FIRST], zone(TIMEZONE), str(tmp_path))
        assert result.ok, result.error
        assert_days_exact(emulator, tmp_path, [FIRST], TIMEZONE)
        assert emulator.stats()["rate_limited"] > 0
    assert result.reconciliation["throttled"] > 0
