"""Late changes to past days: each with a new update time that the ``update_time`` sorter and the
``timestamp`` field show, reproducible, and switchable to a gateway whose update times stay."""

from __future__ import annotations

from datetime import date

from flowinst_etl.emulator.status import CANCEL, FAIL, RERUN, SUCCESS
from flowinst_etl.windows import parse_server_timezone, server_time_to_epoch_ms

from .signed import day_ms, search_body

TZ = parse_server_timezone("GMT+8")
DAY = date(2026, 3, 1)
BY_UPDATE = [{"field": "update_time", "order": "DESC"}]
#: Status codes each kind of late change ends in.
OUTCOMES = {"rerun": {RERUN}, "late_end": {SUCCESS, FAIL}, "cancel": {CANCEL}}


def served_by_update(client, emu, scheduling_type=1, size=1000):
    """Every record of DAY of one type, in update_time DESC order, as the endpoint serves them."""
    start, end = day_ms(DAY)
    body = search_body(
        start,
        end,
        type=scheduling_type,
        pagination={"pageNo": 1, "pageSize": size, "sorters": BY_UPDATE},
    )
    return client(emu).search(body).json()["data"]["flowInsts"]


def millis(text):
    return server_time_to_epoch_ms(text, TZ)


def test_late_changes_give_each_instance_a_new_status_and_its_own_update_time(emulator):
    emu = emulator(per_day=400)
    start, end = day_ms(DAY)
    before = {t.record["instanceId"]: t.record for t in emu.truth(start, end)}

    changes = emu.late_changes(12, start, end)

    assert len(changes) == 12
    assert {c.kind for c in changes} == set(OUTCOMES)
    after = {t.record["instanceId"]: t.record for t in emu.truth(start, end)}
    assert set(after) == set(before)
    for change in changes:
        assert change.new_status in OUTCOMES[change.kind]
        record = after[change.instance_id]
        assert record["status"] == change.new_status != before[change.instance_id]["status"]
        assert millis(record["timestamp"]) == change.update_ms
        assert change.update_ms > millis(before[change.instance_id]["timestamp"])
    assert len({c.update_ms for c in changes}) == 12
    untouched = set(before) - {c.instance_id for c in changes}
    assert all(after[i] == before[i] for i in untouched)
    assert emu.stats()["late_changes"] == 12


def test_the_same_calls_change_the_same_instances(emulator):
    first, second = emulator(per_day=300), emulator(per_day=300)
    start, end = day_ms(DAY)

    def made(emu):
        return [
            (c.instance_id, c.kind, c.new_status)
            for _ in range(2)
            for c in emu.late_changes(5, start, end)
        ]

    assert made(first) == made(second)
    assert len({change[0] for change in made(emulator(per_day=300))}) > 1


def test_update_time_desc_serves_the_latest_changes_first_and_timestamp_shows_them(
    emulator, client
):
    emu = emulator(per_day=400)
    start, end = day_ms(DAY)
    changes = emu.late_changes(15, start, end)
    periodic = {t.record["instanceId"] for t in emu.truth(start, end, scheduling_type=1)}
    changed = sorted((c for c in changes if c.instance_id in periodic), key=lambda c: -c.update_ms)
    assert changed, "no periodic instance changed; the test proves nothing"

    records = served_by_update(client, emu)

    stamps = [millis(r["timestamp"]) for r in records]
    assert stamps == sorted(stamps, reverse=True)
    assert [r["instanceId"] for r in records[: len(changed)]] == [c.instance_id for c in changed]
    for record in records:
        for field in ("startTime", "endTime"):
            if record[field]:
                assert millis(record["timestamp"]) >= millis(record[field])


def test_frozen_update_times_hide_changes_from_the_sorter(emulator, client):
    emu = emulator(per_day=400)
    start, end = day_ms(DAY)
    before = [r["instanceId"] for r in served_by_update(client, emu)]
    emu.reconfigure(update_times="frozen")

    changes = emu.late_changes(10, start, end)

    after = served_by_update(client, emu)
    assert [r["instanceId"] for r in after] == before
    truth = {t.record["instanceId"]: t.record for t in emu.truth(start, end)}
    for change in changes:
        assert truth[change.instance_id]["status"] == change.new_status
        assert millis(truth[change.instance_id]["timestamp"]) == change.update_ms
        assert change.update_ms < millis(truth[change.instance_id]["triggerTime"]) + 86_400_000


def test_timestamp_can_show_the_creation_instead(emulator):
    emu = emulator(per_day=300, timestamp_shows="create")
    start, end = day_ms(DAY)
    ended = [t.record for t in emu.truth(start, end) if t.record["endTime"]]

    assert ended
    assert all(millis(r["timestamp"]) - millis(r["triggerTime"]) < 3000 for r in ended)
    assert any(millis(r["timestamp"]) < millis(r["endTime"]) for r in ended)
