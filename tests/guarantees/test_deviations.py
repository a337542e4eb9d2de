"""Exact or refused, never silently wrong: ``flowinst-etl backfill`` against gateways that deviate
in ways no EnOS document rules out.

Each deviation runs alone, then with ties reordered per page under both meanings of ``count``. A
day is either committed with exactly the emulator's ground truth, or refused with one line while
nothing of it is written; where exactness is reachable (a capped page size, ``null`` lists, an
exclusive lower bound, ids-only expressions) every day must be committed.

The hardest combination (ties reordered per page, ``count`` a page length) runs the real command
line; the other two run the same extraction and commit in-process (``load_days``), which keeps
the suite's time reasonable since every command line pays for importing Dagster.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowinst_etl import read_table
from flowinst_etl.emulator import Emulator, EmulatorConfig, TruthInstance
from flowinst_etl.extract import Extractor
from flowinst_etl.gateway.client import EnosClient, SearchQuery
from flowinst_etl.load import load_days
from flowinst_etl.store import read_manifest
from flowinst_etl.tables.schema import TABLES
from flowinst_etl.windows import zone
from tests.guarantees.harness import (
    RecordingProxy,
    assert_days_bracket_changes,
    assert_days_exact,
    assert_exact_or_refused,
    backfill_args,
    days_from,
    describe,
    emulator_environment,
    run_cli,
    visible_days,
)
from tests.support import day_bounds_ms, day_truth, settings_for

DAYS = days_from(date(2026, 11, 10), 2)
PAGE_SIZE = 20
PER_DAY = 120
SHANGHAI = "Asia/Shanghai"
HIDE_EVERY = 4

EXACT, EXACT_OR_REFUSED = "exact", "exact or refused"

#: Each deviation: its switches and what the backfill must do with it alone.
DEVIATIONS: dict[str, tuple[dict[str, object], str]] = {
    "page size capped at 7": ({"page_size_cap": 7}, EXACT),
    "empty pages as flowInsts null": ({"null_lists": True}, EXACT),
    "exclusive fromTriggerTime": ({"from_bound": "exclusive"}, EXACT),
    "expression matches ids only": ({"expression_matches": "id"}, EXACT),
    "expression matches flowName only": ({"expression_matches": "name"}, EXACT_OR_REFUSED),
    "rows hidden after LIMIT": ({"hide_every": HIDE_EVERY}, EXACT_OR_REFUSED),
    "trigger times move while paging": ({"move_every": 3}, EXACT_OR_REFUSED),
}
WITH = {
    "alone": {},
    "ties by page, count total": {"tie_order": "by_page", "count_mode": "total"},
    "ties by page, count page length": {"tie_order": "by_page", "count_mode": "page"},
}
HARDEST = "ties by page, count page length"


def cases(*combinations: str) -> list[Any]:
    return [
        pytest.param(switches | WITH[with_name], outcome, id=f"{name} / {with_name}")
        for name, (switches, outcome) in DEVIATIONS.items()
        for with_name in combinations
    ]


def emulator_for(**switches: object) -> Emulator:
    return Emulator(
        EmulatorConfig(
            seed=43,
            start_day=DAYS[0] - timedelta(days=1),
            end_day=DAYS[-1] + timedelta(days=2),
            per_day=PER_DAY,
            **switches,
        )
    )


def visible_under(switches: dict[str, object]) -> Callable[[TruthInstance], bool]:
    """What the user may see: instances of hidden flows are not theirs to extract."""
    hide = switches.get("hide_every") or 0
    assert isinstance(hide, int)

    def visible(truth: TruthInstance) -> bool:
        return not hide or truth.record["flowId"] % hide != 0

    return visible


def backfill(
    emulator: Emulator, tmp_path: Path, **settings: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path / "data"
    done = run_cli(
        *backfill_args(DAYS[0], DAYS[-1], root, "--timezone", SHANGHAI),
        env=emulator_environment(emulator, ENOS_PAGE_SIZE=str(PAGE_SIZE), **settings),
        cwd=tmp_path,
    )
    return root, done


@pytest.mark.parametrize(("switches", "outcome"), cases(HARDEST))
def test_backfill_ends_each_day_exact_or_refused(
    switches: dict[str, object], outcome: str, tmp_path: Path
) -> None:
    with emulator_for(**switches) as emulator:
        root, done = backfill(emulator, tmp_path)
        visible = visible_under(switches)
        refused = assert_exact_or_refused(done, emulator, root, DAYS, SHANGHAI, visible)
        counters = emulator.stats()
    assert_outcome(switches, outcome, refused, counters, root)


@pytest.mark.parametrize(("switches", "outcome"), cases("alone", "ties by page, count total"))
def test_loading_ends_each_day_exact_or_refused(
    switches: dict[str, object], outcome: str, tmp_path: Path
) -> None:
    with emulator_for(**switches) as emulator:
        settings = settings_for(emulator, page_size=PAGE_SIZE)
        with EnosClient(settings) as client:
            extractor = Extractor(client)
            results = list(load_days(extractor, DAYS, zone(SHANGHAI), str(tmp_path)))
        refused = {r.day: r.error for r in results if r.error is not None}
        assert sorted(r.day for r in results) == DAYS
        for day, reason in refused.items():
            assert "\n" not in reason
            for table in TABLES:
                assert day.isoformat() not in visible_days(tmp_path, table), (day, table)
        committed = [day for day in DAYS if day not in refused]
        if committed:
            assert_days_exact(emulator, tmp_path, committed, SHANGHAI, visible_under(switches))
        counters = emulator.stats()
    assert_outcome(switches, outcome, refused, counters, tmp_path)


def assert_outcome(
    switches: dict[str, object],
    outcome: str,
    refused: Mapping[date, str],
    counters: Mapping[str, int],
    root: Path,
) -> None:
    """What each deviation must end in, beyond exact-or-refused, and that it happened at all."""
    if outcome == EXACT:
        assert not refused, refused
    if switches.get("move_every"):
        assert counters["moved"] > 0, "no trigger time moved: the case proves nothing"
    if switches.get("hide_every") and switches.get("count_mode", "total") == "total":
        # the gateway counts rows it then hides: the shortfall is always visible
        assert set(refused) == set(DAYS), refused
    for reason in refused.values():
        assert reason.startswith("type "), reason


@pytest.mark.parametrize("with_name", ["alone", "ties by page, count total"])
def test_instances_deleted_anywhere_while_paging_shift_nothing(
    with_name: str, tmp_path: Path
) -> None:
    """A deletion behind an offset makes every later page skip one instance; a cursor asks
    every page from its last trigger read, so nothing shifts: each day is committed, holding
    every instance nothing changed, and a deleted one only if it was read before it went."""
    with emulator_for(delete_every=3, **WITH[with_name]) as emulator:
        before = {day: set(ids_of_day(emulator, day)) for day in DAYS}
        root, done = backfill(emulator, tmp_path)
        assert done.returncode == 0, describe(done)
        assert emulator.stats()["deleted"] > 0, "nothing was deleted: the case proves nothing"
        assert_days_bracket_changes(emulator, root, before, SHANGHAI)


def ids_of_day(emulator: Emulator, day: date) -> list[str]:
    return [t.record["instanceId"] for t in day_truth(emulator, day, SHANGHAI)]


def test_exact_where_reachable_all_at_once_with_an_iana_server_zone(tmp_path: Path) -> None:
    switches = {
        "page_size_cap": 7,
        "null_lists": True,
        "from_bound": "exclusive",
        "to_bound": "inclusive",
        "expression_matches": "id",
        "tie_order": "by_page",
        "count_mode": "page",
        "page_base": "zero",
    }
    with emulator_for(**switches) as emulator:
        # Every record waits on disk: re-reads of tied seconds compare against spilled records.
        root, done = backfill(
            emulator, tmp_path, ENOS_SERVER_TIMEZONE=SHANGHAI, FLOWINST_RECORDS_MEMORY_MB="0"
        )
        refused = assert_exact_or_refused(done, emulator, root, DAYS, SHANGHAI)
    assert not refused and done.returncode == 0, describe(done)
    repaired = sum(
        read_manifest(str(root), "flow_instances", day)["reconciliation"]["repaired_seconds"]
        for day in DAYS
    )
    assert repaired > 0, "no tied second was re-read: the case proves nothing"


def test_a_wrong_server_offset_fails_every_day_naming_the_setting(tmp_path: Path) -> None:
    with emulator_for() as emulator:  # the gateway writes GMT+8 time strings
        root, done = backfill(emulator, tmp_path, ENOS_SERVER_TIMEZONE="GMT+9")
        refused = assert_exact_or_refused(done, emulator, root, DAYS, SHANGHAI)
    assert set(refused) == set(DAYS), describe(done)
    for reason in refused.values():
        assert "ENOS_SERVER_TIMEZONE=GMT+9 does not match" in reason, reason
        assert "unset it so Get Timezone is asked" in reason, reason


def test_each_switch_makes_the_gateway_deviate() -> None:
    """The cases above prove something only if each switch really changes the answers."""
    day_start = day_bounds_ms(DAYS[0], SHANGHAI)[0]  # a server midnight: a burst of periodic runs

    def search(emulator: Emulator, **fields: Any) -> tuple[list[dict[str, Any]], bytes]:
        query = {"from_ms": day_start, "to_ms": day_start + 86_400_000, "page_size": 20}
        query |= fields
        with RecordingProxy(emulator.base_url) as proxy:
            settings = settings_for(emulator, api_url=proxy.base_url)
            with EnosClient(settings) as client:
                page = client.search(
                    SearchQuery(
                        1,
                        query["from_ms"],
                        query["to_ms"],
                        query.get("page_no", 1),
                        query["page_size"],
                        "trigger_time",
                        query.get("expression", ""),
                    )
                )
            answer = [e.answer for e in proxy.exchanges if "/flowInstances" in e.path][-1]
        return page.records, answer

    with emulator_for(page_size_cap=7) as emulator:
        assert len(search(emulator)[0]) == 7
    with emulator_for(null_lists=True) as emulator:
        records, answer = search(emulator, from_ms=0, to_ms=1)
        assert records == [] and b'"flowInsts":null' in answer
    with emulator_for(from_bound="exclusive") as emulator:
        records, _ = search(emulator, to_ms=day_start + 1000)
        assert records == [] and emulator.truth(day_start, day_start + 1, 1)
    with emulator_for() as emulator:
        (first, *_), _ = search(emulator)
    by_id, by_name = first["instanceId"], first["flowName"]
    with emulator_for(expression_matches="id") as emulator:
        assert search(emulator, expression=by_id)[0]
        assert not search(emulator, expression=by_name)[0]
    with emulator_for(expression_matches="name") as emulator:
        assert not search(emulator, expression=by_id)[0]
    with emulator_for(hide_every=HIDE_EVERY) as emulator:
        records, _ = search(emulator)
        assert len(records) < 20 and all(r["flowId"] % HIDE_EVERY for r in records)
    with emulator_for(move_every=1) as emulator:
        search(emulator)
        assert emulator.stats()["moved"] == 1
    with emulator_for(delete_every=2) as emulator:
        everything = {t.record["instanceId"] for t in emulator.truth()}
        first, _ = search(emulator)
        assert emulator.stats()["deleted"] == 0
        search(emulator, page_no=2)
        assert emulator.stats()["deleted"] == 1
        gone = everything - {t.record["instanceId"] for t in emulator.truth()}
        assert len(gone) == 1 and gone == emulator.changed_ids()


SUMMER = days_from(date(2026, 7, 10), 2)
BERLIN = "Europe/Berlin"


def daylight_saving_gateway() -> Emulator:
    """Get Timezone answers GMT+1 while the strings are written in Berlin summer time (UTC+2)."""
    return Emulator(
        EmulatorConfig(
            seed=47,
            start_day=SUMMER[0] - timedelta(days=1),
            end_day=SUMMER[-1] + timedelta(days=1),
            per_day=PER_DAY,
            server_timezone="GMT+1",
            record_timezone=BERLIN,
        )
    )


def test_an_iana_server_zone_reads_a_daylight_saving_gateway_exactly(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with daylight_saving_gateway() as emulator:
        done = run_cli(
            *backfill_args(SUMMER[0], SUMMER[-1], root, "--timezone", BERLIN),
            env=emulator_environment(
                emulator, ENOS_PAGE_SIZE=str(PAGE_SIZE), ENOS_SERVER_TIMEZONE=BERLIN
            ),
            cwd=tmp_path,
        )
        assert done.returncode == 0, describe(done)
        truths = assert_days_exact(emulator, root, SUMMER, BERLIN)
    assert_trigger_instants(root, truths)


def assert_trigger_instants(root: Path, truths: Mapping[date, list[TruthInstance]]) -> None:
    """Each committed ``trigger_time`` is the instant the gateway holds the instance at."""
    for day, truth in truths.items():
        frame = read_table("flow_instances", str(root), day, day)
        written = dict(zip(frame["instance_id"], frame["trigger_time"], strict=True))
        for instance in truth:
            instant = written[instance.record["instanceId"]]
            assert instant.value // 1_000_000 == instance.trigger_ms, instance.record


def test_get_timezones_fixed_offset_fails_daylight_saving_days_instead_of_dropping_rows(
    tmp_path: Path,
) -> None:
    with daylight_saving_gateway() as emulator:
        with EnosClient(settings_for(emulator, page_size=PAGE_SIZE)) as client:
            results = list(load_days(Extractor(client), SUMMER, zone(BERLIN), str(tmp_path)))
    assert [r.day for r in results if r.ok] == []
    assert all("ENOS_SERVER_TIMEZONE" in str(r.error) for r in results), results
    assert not any(visible_days(tmp_path, table) for table in TABLES)


def load(emulator: Emulator, root: Path, page_size: int, **settings: Any) -> dict[date, str]:
    """Extract and commit ``DAYS`` in-process; the reason of each refused day."""
    with EnosClient(settings_for(emulator, page_size=page_size, **settings)) as client:
        results = list(load_days(Extractor(client), DAYS, zone(SHANGHAI), str(root)))
    assert sorted(r.day for r in results) == DAYS
    return {r.day: str(r.error) for r in results if r.error is not None}


def test_instances_created_while_paging_are_read_exactly_with_count_a_page_length(
    tmp_path: Path,
) -> None:
    """New runs land behind a short last page, so the page after it is no longer empty: that is
    growth, not a page-size cap nor rows dropped after LIMIT."""
    with emulator_for(insert_every=3, count_mode="page") as emulator:
        refused = load(emulator, tmp_path, 10)
        assert not refused, refused
        assert_days_exact(emulator, tmp_path, DAYS, SHANGHAI)
        assert emulator.stats()["inserted"] > 0, "no instance was created: the case proves nothing"


def test_a_capped_page_size_stays_exact_while_instances_are_created(tmp_path: Path) -> None:
    switches = {"page_size_cap": 7, "insert_every": 5, "count_mode": "page"}
    with emulator_for(**switches) as emulator:
        refused = load(emulator, tmp_path, 10)
        assert not refused, refused
        assert_days_exact(emulator, tmp_path, DAYS, SHANGHAI)
        assert emulator.stats()["inserted"] > 0, "no instance was created: the case proves nothing"


def test_rows_hidden_after_limit_are_refused_even_while_instances_are_created(
    tmp_path: Path,
) -> None:
    switches = {"hide_every": HIDE_EVERY, "insert_every": 3, "count_mode": "page"}
    with emulator_for(**switches) as emulator:
        refused = load(emulator, tmp_path, 10)
        committed = [day for day in DAYS if day not in refused]
        if committed:
            assert_days_exact(emulator, tmp_path, committed, SHANGHAI, visible_under(switches))
    assert refused, "rows were hidden after LIMIT, yet every day was committed"
    assert all("filter after LIMIT" in reason for reason in refused.values()), refused


AUTUMN = days_from(date(2026, 10, 24), 3)
REPEATED_DAY = date(2026, 10, 25)
#: Berlin repeats 02:00-03:00 on REPEATED_DAY: first at 00:00-01:00 UTC, again at 01:00-02:00 UTC.
FIRST_HOUR_MS = day_bounds_ms(REPEATED_DAY, "UTC")[0]
HOUR_MS = 3_600_000
#: A dataset where the temporary runs of REPEATED_DAY's 02:xx fall only in its second occurrence.
DST_SEED, DST_PER_DAY = 3, 30


def test_a_repeated_local_hour_fails_its_day_and_no_guessed_instant_is_committed(
    tmp_path: Path,
) -> None:
    """A Berlin gateway's string ``02:30`` on the day summer time ends is 00:30 or 01:30 UTC.
    One scheduling type here has runs only in the second 02:xx hour, where reading the first
    would commit every one of them an hour early with nothing to contradict it."""
    config = EmulatorConfig(
        seed=DST_SEED,
        start_day=AUTUMN[0] - timedelta(days=1),
        end_day=AUTUMN[-1] + timedelta(days=1),
        per_day=DST_PER_DAY,
        server_timezone="GMT+1",
        record_timezone=BERLIN,
    )
    with Emulator(config) as emulator:
        first = {t.scheduling_type for t in emulator.truth(FIRST_HOUR_MS, FIRST_HOUR_MS + HOUR_MS)}
        second = {
            t.scheduling_type
            for t in emulator.truth(FIRST_HOUR_MS + HOUR_MS, FIRST_HOUR_MS + 2 * HOUR_MS)
        }
        assert second - first, "no type runs only in the repeated hour: the case proves nothing"
        with EnosClient(
            settings_for(emulator, page_size=PAGE_SIZE, server_timezone=BERLIN)
        ) as client:
            results = list(load_days(Extractor(client), AUTUMN, zone(BERLIN), str(tmp_path)))
        refused = {r.day: str(r.error) for r in results if r.error is not None}
        assert set(refused) == {REPEATED_DAY}, refused
        reason = refused[REPEATED_DAY]
        assert "\n" not in reason and "in the local hour 2026-10-25 02:00" in reason, reason
        for table in TABLES:
            assert REPEATED_DAY.isoformat() not in visible_days(tmp_path, table), table
        committed = [day for day in AUTUMN if day != REPEATED_DAY]
        truths = assert_days_exact(emulator, tmp_path, committed, BERLIN)
    assert_trigger_instants(tmp_path, truths)
