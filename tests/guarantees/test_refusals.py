"""Every refusal of the extraction is reached by a gateway that earns it, and says what it saw.

Each case drives the emulator into one broken promise (``defect``) or one deviation that cannot
be read exactly, extracts and commits two days in-process, and checks that each day is refused
with the line that names what the gateway did, and that nothing of it was written.
docs/extraction.md maps each check to its case here or elsewhere in ``tests/guarantees``.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.exceptions import IncompleteExtractionError
from flowinst_etl.extract import Extractor
from flowinst_etl.extract.checks import SECOND_MS
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import load_days
from flowinst_etl.tables.schema import TABLES
from flowinst_etl.windows import Window, day_window, zone
from tests.guarantees.harness import (
    assert_days_bracket_changes,
    assert_days_exact,
    days_from,
    visible_days,
)
from tests.support import day_truth, settings_for

DAYS = days_from(date(2026, 11, 10), 2)
SHANGHAI = "Asia/Shanghai"

#: switches -> what every refusal must say.
CASES = {
    "a page longer than asked": ({"defect": "oversized_pages"}, "rows for pageSize 20"),
    "rows out of trigger order": (
        {"defect": "unsorted"},
        "in one answer: the gateway does not sort by trigger time",
    ),
    "pages cut before they are sorted": (
        {"defect": "cut_before_sort"},
        "the gateway cuts pages before sorting them by trigger time",
    ),
    "types not filtered": ({"defect": "ignores_type"}, "came back for scheduling types"),
    "fractional trigger times": ({"defect": "fractional_triggers"}, "a fraction of a second"),
    "rows dropped after LIMIT": ({"hide_every": 4}, "(a filter after LIMIT)"),
    "expression ignored, pages capped": (
        {"defect": "ignores_expression", "page_size_cap": 20},
        "cannot be split further by expression",
    ),
    "a blank status read as a filter": (
        {"blank_filters": ("status",)},
        "came back for status '-1,0,1,2,3,4,5,6,7,8,9,10' and no expression but not for owner",
    ),
    "a blank owner read as a filter": (
        {"blank_filters": ("owner",)},
        "and no owner or expression but not for owner, status and expression blank",
    ),
    "a blank expression read as a filter": (
        {"blank_filters": ("expression",)},
        "the gateway reads a blank field as a filter",
    ),
    "a window read in seconds": (
        {"window_unit": "s"},
        "does not read fromTriggerTime and toTriggerTime as epoch milliseconds",
    ),
    "expression matching names only": (
        {"expression_matches": "name", "page_size_cap": 20},
        "the gateway's expression does not find an instance by its id",
    ),
}


def emulator_for(seed: int, per_day: int, **switches: object) -> Emulator:
    """An emulator serving ``DAYS`` and a day either side."""
    config = EmulatorConfig(
        seed=seed,
        start_day=DAYS[0] - timedelta(days=1),
        end_day=DAYS[-1] + timedelta(days=1),
        per_day=per_day,
        **switches,  # type: ignore[arg-type]
    )
    return Emulator(config)


@pytest.mark.parametrize(("switches", "says"), CASES.values(), ids=CASES.keys())
def test_each_broken_promise_refuses_every_day_with_one_line(
    switches: dict[str, object], says: str, tmp_path: Path
) -> None:
    with emulator_for(5, 200, **switches) as emulator:
        with EnosClient(settings_for(emulator, page_size=20)) as client:
            results = list(load_days(Extractor(client), DAYS, zone(SHANGHAI), str(tmp_path)))
    reasons = {r.day: r.error for r in results}
    assert all(reasons.values()), reasons
    for day, reason in reasons.items():
        assert reason is not None and "\n" not in reason and says in reason, (day, reason)
    for table in TABLES:
        assert not visible_days(tmp_path, table)


def test_a_cap_that_only_expression_searches_meet_leaves_no_day_short(tmp_path: Path) -> None:
    """Searches by ``expression`` cut at a few rows look whole beside the longer answers the
    gateway served without one: the page after such an answer shows the rows it left, so its
    part is split further, and every day is exact or refused, never committed short."""
    with emulator_for(5, 200, page_size_cap=20, defect="caps_expression") as emulator:
        with EnosClient(settings_for(emulator, page_size=20)) as client:
            results = list(load_days(Extractor(client), DAYS, zone(SHANGHAI), str(tmp_path)))
        assert_days_exact(emulator, tmp_path, [r.day for r in results if r.ok], SHANGHAI)
    for result in results:
        assert result.ok or "cannot be split further by expression" in str(result.error)


def test_a_page_a_filter_after_limit_shortened_inside_a_windows_last_second_is_seen() -> None:
    """The window ends one second after the midnight burst. Flow 1020's run is dropped after
    LIMIT from the page that reaches into the burst, so that page comes short, looks whole and
    ends inside the burst, with nothing after the burst in the window: the burst's other runs
    show only when that last second is read again, so the window is read whole or refused,
    never short."""
    day = date(2026, 11, 11)
    midnight = day_window(day, zone(SHANGHAI)).start_ms
    window = Window(midnight - 3_600_000, midnight + SECOND_MS)
    config = EmulatorConfig(
        seed=5, start_day=day - timedelta(days=1), end_day=day, per_day=200, hide_every=1020
    )
    with Emulator(config) as emulator:
        truth = emulator.truth(window.start_ms, window.end_ms)
        burst = [t for t in truth if t.trigger_ms == midnight and t.scheduling_type == 1]
        assert len(burst) > 10 and sum(t.record["flowId"] % 1020 == 0 for t in burst) == 1
        with EnosClient(settings_for(emulator, page_size=3)) as client:
            try:
                extraction = Extractor(client, max_workers=1).extract(window)
            except IncompleteExtractionError as error:
                assert "\n" not in str(error)
                return
    visible = {t.record["instanceId"] for t in truth if t.record["flowId"] % 1020}
    assert {found.record["instanceId"] for found in extraction.instances} == visible


@pytest.mark.parametrize(
    ("switches", "page_size"),
    [({"hide_every": 2}, 1), ({"hide_every": 3, "page_size_cap": 1}, 50)],
    ids=["pages of one row", "a cap of one row"],
)
def test_a_filter_after_limit_that_empties_tiny_pages_leaves_no_day_short(
    switches: dict[str, int], page_size: int, tmp_path: Path
) -> None:
    """A page of one row whose row is hidden comes back empty, as a window's end would: the
    span asked again in a large page, or by offset pages past it, shows the rows after it, so
    every day is exact or refused, never committed short."""
    hide = switches["hide_every"]
    with emulator_for(1, 150, **switches) as emulator:
        with EnosClient(settings_for(emulator, page_size=page_size)) as client:
            results = list(load_days(Extractor(client), DAYS, zone(SHANGHAI), str(tmp_path)))
        committed = [r.day for r in results if r.ok]
        assert_days_exact(
            emulator, tmp_path, committed, SHANGHAI, lambda t: t.record["flowId"] % hide != 0
        )
    for result in results:
        assert result.ok or "\n" not in str(result.error)


def test_pages_numbered_two_ways_are_refused_as_no_first_page(tmp_path: Path) -> None:
    """Behind a load balancer in front of two gateway versions, every other search reads
    ``pageNo`` a page further on: a re-read from a second then begins after it, although that
    second, asked alone, still holds instances. A day is exact or refused, and a refusal says
    the page asked is not the first page."""
    with emulator_for(5, 200, defect="mixed_page_bases") as emulator:
        with EnosClient(settings_for(emulator, page_size=20)) as client:
            extractor = Extractor(client, max_workers=1)  # the searches in one order
            results = list(load_days(extractor, DAYS, zone(SHANGHAI), str(tmp_path)))
        assert_days_exact(emulator, tmp_path, [r.day for r in results if r.ok], SHANGHAI)
    reasons = [str(r.error) for r in results if not r.ok]
    assert all("\n" not in reason for reason in reasons), reasons
    assert any("the page number asked is not the first page" in reason for reason in reasons)


def test_a_part_counted_while_deletions_shift_its_pages_is_refused_as_changed(
    tmp_path: Path,
) -> None:
    """A cap of 3 rows splits the midnight burst into flow-id parts, and a deletion on every
    third search shifts the offset pages that count a part for its straggler: no two countings
    in a row agree, so the day is refused saying the second changed while it was read, rather
    than trusting a count that may have skipped a row."""
    with emulator_for(11, 60, page_size_cap=3, delete_every=3) as emulator:
        before = {
            day: {t.record["instanceId"] for t in day_truth(emulator, day, SHANGHAI)}
            for day in DAYS
        }
        with EnosClient(settings_for(emulator, page_size=50)) as client:
            extractor = Extractor(client, max_workers=1)  # the searches in one order
            results = list(load_days(extractor, DAYS, zone(SHANGHAI), str(tmp_path)))
        assert_days_bracket_changes(emulator, tmp_path, before, SHANGHAI, lambda _: True)
    reasons = [str(r.error) for r in results if not r.ok]
    assert any("each time its offset pages were counted" in reason for reason in reasons), reasons
