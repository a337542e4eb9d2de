"""Exact extraction against the emulator over real HTTP, under every behaviour and fault."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.exceptions import IncompleteExtractionError
from flowinst_etl.extract import Extraction, Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.windows import Window, day_window, zone
from tests.support import settings_for

FIRST_DAY = date(2026, 11, 1)
DAYS = [FIRST_DAY + timedelta(days=n) for n in range(3)]
PAGE_SIZE = 20

BEHAVIOURS = {
    "default": {},
    "pages 1-based, 0 rejected": {"page_base": "one_strict"},
    "pages 0-based": {"page_base": "zero"},
    "count is the page length": {"count_mode": "page"},
    "camelCase sorters": {"sorter_names": "camel"},
    "both sorter namings": {"sorter_names": "both"},
    "inclusive toTriggerTime": {"to_bound": "inclusive"},
    "ties reordered per page": {"tie_order": "by_page"},
    "v2.0 envelope": {"envelope": "v2.0"},
}
FAULTS = {
    "5xx answers": {"error_rate": 0.1},
    "dropped connections": {"drop_rate": 0.1},
    "429 with Retry-After 0": {"rate_limit_per_s": 40.0, "retry_after_s": 0},
    "429 with Retry-After 1": {"rate_limit_per_s": 40.0, "retry_after_s": 1},
    "token expires every second": {"token_lifetime_s": 1, "latency_ms": 30},
    "instances inserted while paging": {"insert_every": 3, "insert_count": 2},
    "statuses change while paging": {"status_change_rate": 0.3},
    "malformed graphs": {"malformed_graph_rate": 0.2},
}
EVERYTHING = {
    "page_base": "zero",
    "count_mode": "page",
    "sorter_names": "camel",
    "to_bound": "inclusive",
    "tie_order": "by_page",
    "envelope": "v2.0",
    "error_rate": 0.05,
    "drop_rate": 0.05,
    "token_lifetime_s": 1,
    "insert_every": 5,
    "insert_count": 2,
    "status_change_rate": 0.2,
    "malformed_graph_rate": 0.1,
}


def emulator_config(**switches: object) -> EmulatorConfig:
    return EmulatorConfig(
        seed=11,
        start_day=DAYS[0] - timedelta(days=1),
        end_day=DAYS[-1] + timedelta(days=1),
        per_day=260,
        server_timezone="GMT+8",
        **switches,
    )


def first_day_config(seed: int, **switches: Any) -> EmulatorConfig:
    """An emulator serving the first day only (and the server days around it)."""
    return EmulatorConfig(
        seed=seed,
        start_day=DAYS[0] - timedelta(days=1),
        end_day=DAYS[0] + timedelta(days=1),
        **switches,
    )


def extract_days(emulator: Emulator, timezone: str = "Asia/Shanghai") -> list[Extraction]:
    windows = [day_window(day, zone(timezone)) for day in DAYS]
    with EnosClient(settings_for(emulator, page_size=PAGE_SIZE)) as client:
        outcomes = dict(Extractor(client, max_workers=4).extract_many(windows))
    for window, outcome in outcomes.items():
        assert isinstance(outcome, Extraction), f"{window}: {outcome}"
    return [outcomes[w] for w in windows]  # type: ignore[misc]


def assert_exact(emulator: Emulator, extraction: Extraction) -> None:
    """Every instance of the window once; one the emulator created, moved or deleted while the
    window was read may be there or not, as if it had changed just before or after its read."""
    window = extraction.window
    truth = {
        (t.scheduling_type, t.record["instanceId"])
        for t in emulator.truth(window.start_ms, window.end_ms)
    }
    got = [(found.scheduling_type, found.record["instanceId"]) for found in extraction.instances]
    assert len(got) == len(set(got)), "an instance came back twice"
    changed = {(kind, i) for kind in (0, 1, 2) for i in emulator.changed_ids()}
    assert set(got) - changed == truth - changed
    assert set(got) <= truth | changed
    assert extraction.reconciliation.instances == len(got)


@pytest.mark.parametrize("switches", BEHAVIOURS.values(), ids=BEHAVIOURS.keys())
def test_every_instance_once_under_each_behaviour(switches: dict[str, object]) -> None:
    with Emulator(emulator_config(**switches)) as emulator:
        for extraction in extract_days(emulator):
            assert_exact(emulator, extraction)


@pytest.mark.parametrize("switches", FAULTS.values(), ids=FAULTS.keys())
def test_every_instance_once_under_each_fault(switches: dict[str, object]) -> None:
    with Emulator(emulator_config(**switches)) as emulator:
        for extraction in extract_days(emulator):
            assert_exact(emulator, extraction)


def test_every_instance_once_under_everything_at_once() -> None:
    with Emulator(emulator_config(**EVERYTHING)) as emulator:
        extractions = extract_days(emulator)
        for extraction in extractions:
            assert_exact(emulator, extraction)
    totals = sum((Counter(e.reconciliation.as_dict()) for e in extractions), Counter())
    assert totals["retries"] > 0 and totals["repaired_seconds"] > 0


def test_midnight_burst_belongs_to_one_day_only() -> None:
    with Emulator(emulator_config()) as emulator:
        first, second, _ = extract_days(emulator)
        midnight = second.window.start_ms
        at_midnight = {t.record["instanceId"] for t in emulator.truth(midnight, midnight + 1)}
    assert len(at_midnight) > PAGE_SIZE, "the data must hold a burst larger than a page"
    ids = {f.record["instanceId"] for f in first.instances}
    assert not at_midnight & ids
    assert at_midnight <= {f.record["instanceId"] for f in second.instances}


def test_utc_partitions_split_the_server_day() -> None:
    with Emulator(emulator_config()) as emulator:
        for extraction in extract_days(emulator, timezone="UTC"):
            assert_exact(emulator, extraction)


def test_tied_bursts_are_split_by_id_and_reported() -> None:
    with Emulator(emulator_config(tie_order="by_page")) as emulator:
        extractions = extract_days(emulator)
    assert all(e.reconciliation.repaired_seconds > 0 for e in extractions)


@pytest.mark.parametrize("count_mode", ["total", "page"])
def test_figures_add_up_whatever_count_says(count_mode: str) -> None:
    with Emulator(emulator_config(count_mode=count_mode)) as emulator:
        (extraction, *_) = extract_days(emulator)
        assert_exact(emulator, extraction)
    figures = extraction.reconciliation
    assert figures.pages == figures.requests - figures.retries
    assert figures.rows_received > figures.instances, "a cursor reads each page's last second again"


@pytest.mark.parametrize("seed", range(4))
def test_walks_in_flight_stay_within_the_workers_and_answers_in_any_order_miss_nothing(
    seed: int,
) -> None:
    """Requests of concurrent walks are answered in any order while instances arrive: every
    walk reads its own answers in order, and no more requests are in flight than workers."""
    config = EmulatorConfig(
        seed=seed,
        start_day=DAYS[0] - timedelta(days=1),
        end_day=DAYS[-1] + timedelta(days=1),
        per_day=300,
        latency_ms=5,
        latency_jitter_ms=60,
        insert_every=3,
        insert_count=1,
    )
    windows = [day_window(day, zone("Asia/Shanghai")) for day in DAYS]
    with Emulator(config) as emulator:
        with EnosClient(settings_for(emulator, page_size=3)) as client:
            outcomes = dict(Extractor(client, max_workers=4).extract_many(windows))
        for outcome in outcomes.values():
            assert isinstance(outcome, Extraction), outcome
            assert_exact(emulator, outcome)
        assert emulator.stats()["inserted"] > 0
        assert 3 < emulator.peak_requests_in_flight() <= 4


def test_empty_window_yields_no_instances() -> None:
    with Emulator(emulator_config()) as emulator:
        window = day_window(DAYS[-1] + timedelta(days=30), zone("UTC"))
        with EnosClient(settings_for(emulator, page_size=PAGE_SIZE)) as client:
            extraction = Extractor(client).extract(window)
    assert extraction.instances == [] and extraction.reconciliation.instances == 0


def test_window_is_half_open() -> None:
    with pytest.raises(ValueError):
        Window(5, 5)


@pytest.mark.parametrize("seed", range(6))
def test_tiny_pages_over_tied_seconds_end_exact_or_refused(seed: int) -> None:
    """Page size 2 makes tied seconds split down to flow ids no longer than the suffix."""
    config = first_day_config(seed, per_day=60, tie_order="by_page", count_mode="page")
    window = day_window(DAYS[0], zone("Asia/Shanghai"))
    with Emulator(config) as emulator:
        with EnosClient(settings_for(emulator, page_size=2)) as client:
            try:
                extraction = Extractor(client).extract(window)
            except IncompleteExtractionError as error:
                assert "\n" not in str(error)
                return
        assert_exact(emulator, extraction)


@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"tie_order": "by_page", "delete_every": 7},
        {"insert_every": 3, "insert_count": 2, "status_change_rate": 0.3},
    ],
    ids=["steady", "deletions, ties by page", "inserts and status changes"],
)
def test_one_day_keeps_every_worker_busy_by_splitting_its_walks(
    switches: dict[str, object],
) -> None:
    """One window has three walks; more workers than that are kept busy by halving the walks
    with the most rows left, and the halves together are the window, each instance once."""
    config = first_day_config(5, per_day=1500, latency_ms=20, server_timezone="GMT+8", **switches)
    window = day_window(DAYS[0], zone("Asia/Shanghai"))
    with Emulator(config) as emulator:
        with EnosClient(settings_for(emulator, page_size=PAGE_SIZE)) as client:
            extraction = Extractor(client, max_workers=6).extract(window)
        assert_exact(emulator, extraction)
        assert emulator.peak_requests_in_flight() == 6
    if not switches:
        minimum = extraction.reconciliation.instances / PAGE_SIZE
        assert extraction.reconciliation.pages < 1.3 * minimum, "a split costs about a request"


def test_a_day_is_written_in_chunks_of_bounded_bytes() -> None:
    """Records come back in order, in chunks whose weight (their answers' bytes) stays within
    the bound, whatever their count; a record heavier than the bound comes alone."""
    with Emulator(emulator_config()) as emulator:
        (extraction, *_) = extract_days(emulator)
    rows = extraction.rows
    weights = [row.size for _, row in rows]
    bound = 40 * max(weights)
    chunks = list(extraction.chunks(len(rows), max_bytes=bound))
    assert len(chunks) > 2
    assert [f.record for chunk in chunks for f in chunk] == [f.record for f in extraction.instances]
    sizes = iter(weights)
    assert all(sum(next(sizes) for _ in chunk) <= bound for chunk in chunks)
    assert all(len(chunk) == 1 for chunk in extraction.chunks(len(rows), max_bytes=1))


def test_a_run_let_go_stops_its_walks_before_their_next_request() -> None:
    """A caller that stops taking windows (Ctrl-C) is not kept waiting for the walks of the
    windows still open, which after splitting cover all of their unread spans: each stops
    before its next request."""
    config = first_day_config(5, per_day=3000, latency_ms=40)
    empty = day_window(DAYS[0] + timedelta(days=30), zone("Asia/Shanghai"))
    window = day_window(DAYS[0], zone("Asia/Shanghai"))
    with Emulator(config) as emulator:
        with EnosClient(settings_for(emulator, page_size=10)) as client:
            outcomes = Extractor(client, max_workers=6).extract_many([empty, window])
            for _ in outcomes:
                time.sleep(0.5)  # the day's walks split and run meanwhile
                break
            let_go = emulator.stats()["searches"]
            outcomes.close()  # what leaving the loop on Ctrl-C does
        after = emulator.stats()["searches"] - let_go
        assert emulator.peak_requests_in_flight() > 3, "the day's walks were not split"
    assert let_go < 3000 / 10, "the day was read before it was let go"
    assert after <= 6 * 5, f"{after} searches after the run was let go"
