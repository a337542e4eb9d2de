"""The change test: a day's change record compared with a full read (plain records), and the
update-time probe through real HTTP on every reading of the documents the emulator offers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timezone
from pathlib import Path
from typing import Any

import pytest

from flowinst_etl.changes import (
    CHANGED,
    NEW,
    UNCHANGED,
    ChangeRecord,
    CommittedRead,
    DayTracker,
    plan_refresh,
)
from flowinst_etl.emulator import Emulator
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.load import load_days
from flowinst_etl.model import FoundInstance
from flowinst_etl.windows import server_time_to_epoch_ms
from tests.fixtures.enos_records import record
from tests.guarantees.harness import days_from
from tests.support import day_bounds_ms, settings_for

UTC = timezone.utc
DAYS = days_from(date(2026, 3, 1), 3)  # the emulator fixture's days (GMT+8), read as UTC days
READ_MS = server_time_to_epoch_ms("2019-08-13 00:00:00", UTC)


def found(*records: dict[str, Any]) -> list[FoundInstance]:
    return [FoundInstance(1, item) for item in records]


def tracked(
    records: list[FoundInstance], previous: CommittedRead | None, held: dict[str, int]
) -> ChangeRecord:
    tracker = DayTracker(UTC, READ_MS, previous)
    tracker.add(records)
    return tracker.finish(lambda: held)


def committed(records: list[FoundInstance]) -> tuple[CommittedRead, dict[str, int]]:
    """The day as a write of ``records`` read at READ_MS, and the update time it holds of each."""
    first = tracked(records, None, {})
    held = {
        r.record["instanceId"]: server_time_to_epoch_ms(r.record["timestamp"], UTC) for r in records
    }
    return CommittedRead("w1", first, first.read_from_ms), held


ONE, TWO = record(1, status=2), record(2)


def test_a_read_equal_to_its_write_is_unchanged() -> None:
    previous, held = committed(found(ONE, TWO))
    again = tracked(found(TWO, ONE), previous, held)
    assert again.digest == previous.record.digest and again.violation is None
    assert again.compared == "unchanged since write w1"


def test_a_change_that_moved_the_update_time_is_seen() -> None:
    previous, held = committed(found(ONE, TWO))
    ended = {**ONE, "status": 1, "statusDesc": "SUCCESS", "endTime": "2019-08-13 01:00:00",
             "timestamp": "2019-08-13 01:00:00.5"}  # fmt: skip
    again = tracked(found(ended, TWO), previous, held)
    assert again.violation is None and "as the change test sees" in again.compared


@pytest.mark.parametrize(
    "after",
    [
        [{**ONE, "status": 8, "statusDesc": "CANCEL"}, TWO],  # a change, update time left alone
        [TWO],  # an instance removed
    ],
    ids=["status changed in place", "instance removed"],
)
def test_a_change_the_update_time_does_not_show_is_a_proof_against_the_test(after) -> None:
    previous, held = committed(found(ONE, TWO))
    again = tracked(found(*after), previous, held)
    assert again.violation is not None and "the change test cannot see" in again.violation
    assert again.compared == again.violation


def test_an_instance_read_again_with_the_update_time_it_holds_does_not_count() -> None:
    """Updated after the read's watermark but already held in that state: a change within the
    clock margin of the read. A different record under it is a proof against the test."""
    late = {**ONE, "timestamp": "2019-08-13 00:00:30.0"}
    previous, held = committed(found(late, TWO))
    assert tracked(found(late, TWO), previous, held).violation is None
    changed = {**late, "status": 8, "statusDesc": "CANCEL"}
    assert tracked(found(changed, TWO), previous, held).violation is not None


@pytest.mark.parametrize(
    "field",
    ["startTime", "endTime"],
)
def test_a_timestamp_before_a_start_or_end_is_no_update_time(field: str) -> None:
    wrong = {**TWO, field: "2019-08-14 00:00:00"}
    result = tracked(found(wrong), None, {})
    assert result.violation is not None and "is not the time of the last update" in result.violation


def test_a_missing_timestamp_is_no_update_time() -> None:
    result = tracked(found({**TWO, "timestamp": None}), None, {})
    assert result.violation is not None and "no readable timestamp" in result.violation


# --- the probe, through real HTTP -------------------------------------------------------------


@pytest.fixture
def backfilled(emulator, tmp_path: Path) -> Iterator[Any]:
    """``start(**settings)``: an emulator with those settings, its days committed under a root,
    and a client of it (page size 5, so a handful of changes take several pages)."""

    def start(**settings: Any) -> tuple[Emulator, EnosClient, str]:
        emu = emulator(per_day=60, **settings)
        client = EnosClient(settings_for(emu, page_size=5))
        opened.append(client)
        root = str(tmp_path / f"root{len(opened)}")
        assert all(result.ok for result in load_days(Extractor(client), DAYS, UTC, root))
        return emu, client, root

    opened: list[EnosClient] = []
    yield start
    for client in opened:
        client.close()


def verdicts(client: EnosClient, root: str, days: list[date] = DAYS) -> dict[date, str]:
    return {
        check.day: check.verdict for check in plan_refresh(Extractor(client), root, days, UTC).days
    }


READINGS = {
    "documented": {},
    "camelCase sorters": {"sorter_names": "camel"},
    "pages from 0": {"page_base": "zero"},
    "page 0 refused": {"page_base": "one_strict"},
    "ties ordered per page": {"tie_order": "by_page"},
    "pages capped at 3": {"page_size_cap": 3},
    "count is the page length": {"count_mode": "page"},
}


@pytest.mark.parametrize("settings", READINGS.values(), ids=READINGS.keys())
def test_the_probe_finds_exactly_the_changed_days(backfilled, settings: dict[str, Any]) -> None:
    emu, client, root = backfilled(**settings)
    assert set(verdicts(client, root).values()) == {UNCHANGED}
    emu.late_changes(12, *day_bounds_ms(DAYS[1], "UTC"))  # several pages of 5
    assert verdicts(client, root) == {DAYS[0]: UNCHANGED, DAYS[1]: CHANGED, DAYS[2]: UNCHANGED}


def test_days_read_at_different_times_are_probed_apart_and_judged_alike(backfilled) -> None:
    emu, client, root = backfilled()
    extra = days_from(DAYS[-1], 2)[1:]  # a day committed later, after the others' check
    emu.late_changes(2, *day_bounds_ms(DAYS[0], "UTC"))
    assert all(result.ok for result in load_days(Extractor(client), extra, UTC, root))
    assert verdicts(client, root, [*DAYS, *extra]) == {
        DAYS[0]: CHANGED, DAYS[1]: UNCHANGED, DAYS[2]: UNCHANGED, extra[0]: UNCHANGED,
    }  # fmt: skip


def test_a_day_never_committed_is_new_and_never_current(backfilled) -> None:
    _, client, root = backfilled()
    later = date(2026, 3, 4)
    assert verdicts(client, root, [DAYS[0], later]) == {DAYS[0]: UNCHANGED, later: NEW}


def test_a_day_without_a_change_record_is_re_read(backfilled) -> None:
    _, client, root = backfilled()
    commit = Path(root) / "_flowinst" / "commits" / f"{DAYS[0]}.json"
    stripped = json.loads(commit.read_text())
    del stripped["changes"]
    commit.write_text(json.dumps(stripped))
    plan = plan_refresh(Extractor(client), root, DAYS[:1], UTC)
    assert [(c.verdict, c.reason) for c in plan.days] == [
        (CHANGED, f"write {stripped['write_id']} kept no change record")
    ]


def test_a_gateway_sorting_oldest_first_is_never_taken_for_no_change(backfilled) -> None:
    """The probe stops at the first row older than the days' reads, so a gateway that ignores
    the update-time sorter and answers oldest first would show no change at all: every page
    must come newest first before any row is used, or the test is distrusted and every day
    re-read."""
    emu, client, root = backfilled()
    emu.late_changes(3, *day_bounds_ms(DAYS[1], "UTC"))
    emu.reconfigure(defect="unsorted")
    assert UNCHANGED not in verdicts(client, root).values()
    distrust = json.loads((Path(root) / "_flowinst" / "refresh" / "untrusted.json").read_text())
    assert "does not sort by update time" in json.dumps(distrust)
