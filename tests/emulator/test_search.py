"""List Flow Instances: every filter, the window bounds, paging, counts, sorters and tie orders."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowinst_etl.windows import parse_server_timezone, server_time_to_epoch_ms

from .signed import day_ms, search_body


def _ids(records):
    return [record["instanceId"] for record in records]


@pytest.fixture
def served(emulator, client):
    """A default emulator, its client and the window of its first day."""
    emu = emulator()
    start, end = day_ms(emu.config.start_day)
    return emu, client(emu), start, end


def test_each_type_returns_exactly_its_instances(served):
    emu, api, start, end = served
    for kind in (0, 1, 2):
        expected = [t.record for t in emu.truth(start, end, kind)]
        assert expected
        assert api.page_all(search_body(start, end, type=kind)) == expected


def test_type_as_a_numeric_string_is_accepted(served):
    _, api, start, end = served
    as_int = api.search_data(search_body(start, end, type=2))
    as_text = api.search_data(search_body(start, end, type="2"))
    assert _ids(as_text["flowInsts"]) == _ids(as_int["flowInsts"])
    assert api.search(search_body(start, end, type=3)).json()["code"] == 62102


def test_expression_matches_instance_id_or_flow_name_ignoring_case(served):
    emu, api, start, end = served
    truth = [t.record for t in emu.truth(start, end, 1)]
    by_id = str(truth[0]["flowId"])
    by_name = truth[-1]["flowName"].split("_")[-1].upper()

    for expression in (by_id, by_name):
        lowered = expression.lower()
        expected = [
            r["instanceId"]
            for r in truth
            if lowered in r["instanceId"].lower() or lowered in r["flowName"].lower()
        ]
        found = api.page_all(search_body(start, end, expression=expression))
        assert 0 < len(found) < len(truth)
        assert _ids(found) == expected


def test_owner_filters_exactly(served):
    emu, api, start, end = served
    truth = [t.record for t in emu.truth(start, end, 1)]
    owner = truth[0]["owner"]

    found = api.page_all(search_body(start, end, owner=owner))

    assert _ids(found) == [r["instanceId"] for r in truth if r["owner"] == owner]
    assert len(found) < len(truth)
    assert api.search_data(search_body(start, end, owner=owner[:-1]))["flowInsts"] == []


@pytest.mark.parametrize(
    ("status", "codes"),
    [("1,-1", {1, -1}), (" 2 , 0 ", {0, 2}), (1, {1}), ("8", {8}), ("", None)],
)
def test_status_filter_forms(served, status, codes):
    emu, api, start, end = served
    truth = [t.record for t in emu.truth(start, end, 1)]

    found = api.page_all(search_body(start, end, status=status))

    expected = [r["instanceId"] for r in truth if codes is None or r["status"] in codes]
    assert expected
    assert _ids(found) == expected


@pytest.mark.parametrize("status", ["1,x", "11", "1,,2", [1], True, None])
def test_invalid_status_is_62102(served, status):
    _, api, start, end = served
    assert api.search(search_body(start, end, status=status)).json()["code"] == 62102


@pytest.mark.parametrize("to_bound", ["exclusive", "inclusive"])
def test_window_end_bound_at_an_exact_trigger_instant(emulator, client, to_bound):
    emu = emulator(to_bound=to_bound)
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    at_end = [t.record for t in emu.truth(end, end + 1, 1)]
    inside = [t.record for t in emu.truth(start, end, 1)]

    found = api.page_all(search_body(start, end))

    assert len(at_end) > 50  # the next day's midnight burst sits exactly on the bound
    expected = inside + at_end if to_bound == "inclusive" else inside
    assert _ids(found) == _ids(expected)
    assert found[0]["triggerTime"].endswith("00:00:00")  # the start bound is inclusive


@pytest.mark.parametrize(("page_base", "first"), [("one", 1), ("one_strict", 1), ("zero", 0)])
def test_paging_under_each_page_base(emulator, client, page_base, first):
    emu = emulator(page_base=page_base)
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    expected = _ids(t.record for t in emu.truth(start, end, 1))

    def page(number):
        body = search_body(start, end, pagination={"pageNo": number, "pageSize": 25})
        return _ids(api.search_data(body)["flowInsts"])

    everything = api.page_all(search_body(start, end, pagination={"pageNo": first, "pageSize": 25}))
    assert _ids(everything) == expected
    assert page(first) == expected[:25]
    assert page(first + 1) == expected[25:50]
    if page_base == "one":
        assert page(0) == page(1)
    if page_base == "one_strict":
        body = search_body(start, end, pagination={"pageNo": 0, "pageSize": 25})
        assert api.search(body).json()["code"] == 62102
    body = search_body(start, end, pagination={"pageNo": -1, "pageSize": 25})
    assert api.search(body).json()["code"] == 62102
    beyond = search_body(start, end, pagination={"pageNo": 10_000, "pageSize": 25})
    assert api.search_data(beyond)["flowInsts"] == []


@pytest.mark.parametrize("count_mode", ["total", "page"])
def test_count_modes(emulator, client, count_mode):
    emu = emulator(count_mode=count_mode)
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    total = len(emu.truth(start, end, 1))
    last_page = total // 30 + 1

    for number in (1, last_page):
        data = api.search_data(
            search_body(start, end, pagination={"pageNo": number, "pageSize": 30})
        )
        expected = total if count_mode == "total" else len(data["flowInsts"])
        assert data["count"] == expected
    assert total % 30 != 0  # so the last page is a short one


@pytest.mark.parametrize(
    ("sorter_names", "accepted", "refused"),
    [
        ("snake", ["trigger_time", "update_time"], ["triggerTime", "TRIGGER_TIME"]),
        ("camel", ["triggerTime", "createTime"], ["trigger_time", "status"]),
        ("both", ["trigger_time", "endTime"], ["trigger-time"]),
    ],
)
def test_sorter_names(emulator, client, sorter_names, accepted, refused):
    emu = emulator(sorter_names=sorter_names)
    api = client(emu)
    start, end = day_ms(emu.config.start_day)

    def answer(field):
        pagination = {"pageNo": 1, "pageSize": 5, "sorters": [{"field": field, "order": "ASC"}]}
        return api.search(search_body(start, end, pagination=pagination)).json()

    for field in accepted:
        assert answer(field)["code"] == 0
    for field in refused:
        refusal = answer(field)
        assert refusal["code"] == 62102
        assert refusal["msg"] == "The sorters field parameter is invalid"


def test_multiple_sorters_with_desc_and_nulls(served):
    emu, api, start, end = served
    end = start + int(timedelta(days=3).total_seconds() * 1000)  # include the in-flight last day
    truth = [t.record for t in emu.truth(start, end, 1)]
    sorters = [{"field": "start_time", "order": "desc"}, {"field": "trigger_time"}]
    body = search_body(start, end, pagination={"pageNo": 1, "pageSize": 97, "sorters": sorters})

    found = api.page_all(body)

    def key(record):
        # DESC puts null start times last; ties fall back to trigger time, then instance id.
        started = record["startTime"]
        descending = -_ms(started) if started else 0
        return (started is None, descending, _ms(record["triggerTime"]), record["instanceId"])

    assert any(r["startTime"] is None for r in truth)
    assert _ids(found) == _ids(sorted(truth, key=key))


def test_ascending_puts_null_end_times_first(served):
    emu, api, start, _ = served
    end = start + 3 * 86_400_000
    sorters = [{"field": "end_time", "order": "ASC"}]
    body = search_body(start, end, pagination={"pageNo": 1, "pageSize": 50, "sorters": sorters})
    truth = [t.record for t in emu.truth(start, end, 1)]
    nulls = sum(r["endTime"] is None for r in truth)

    found = api.page_all(body)

    assert 0 < nulls < len(found) == len(truth)
    assert all(r["endTime"] is None for r in found[:nulls])
    assert all(r["endTime"] is not None for r in found[nulls:])
    assert [r["endTime"] for r in found[nulls:]] == sorted(r["endTime"] for r in found[nulls:])


def test_an_invalid_sort_order_is_62102(served):
    _, api, start, end = served
    pagination = {"pageNo": 1, "pageSize": 5, "sorters": [{"field": "start_time", "order": "UP"}]}
    assert api.search(search_body(start, end, pagination=pagination)).json()["code"] == 62102


def _burst_pages(api, start, pages):
    """Pages of the midnight burst sorted only by trigger time (every record ties)."""
    sorters = [{"field": "trigger_time", "order": "ASC"}]
    return [
        _ids(
            api.search_data(
                search_body(
                    start,
                    start + 1000,
                    pagination={"pageNo": number, "pageSize": 10, "sorters": sorters},
                )
            )["flowInsts"]
        )
        for number in pages
    ]


def test_stable_tie_order_is_by_instance_id(served):
    emu, api, start, _ = served
    burst = sorted(_ids(t.record for t in emu.truth(start, start + 1000, 1)))
    pages = _burst_pages(api, start, range(1, len(burst) // 10 + 2))
    assert [i for page in pages for i in page] == burst


def test_by_page_tie_order_repeats_a_page_but_permutes_ties_between_pages(emulator, client):
    emu = emulator(tie_order="by_page")
    api = client(emu)
    start, _ = day_ms(emu.config.start_day)
    burst = _ids(t.record for t in emu.truth(start, start + 1000, 1))
    numbers = range(1, len(burst) // 10 + 2)

    first_pass = _burst_pages(api, start, numbers)
    second_pass = _burst_pages(api, start, numbers)
    seen = [i for page in first_pass for i in page]

    assert first_pass == second_pass
    assert len(seen) == len(burst)
    assert set(seen) < set(burst)  # paging missed some ties and repeated others
    assert first_pass[0] != sorted(burst)[:10]


def _ms(text):
    return server_time_to_epoch_ms(text, parse_server_timezone("GMT+8"))


@pytest.mark.parametrize("field", ["owner", "status", "expression"])
def test_blank_filters_find_nothing_when_sent_blank_and_everything_when_left_out(
    emulator, client, field
):
    emu = emulator(blank_filters=(field,))
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    expected = [t.record for t in emu.truth(start, end, 1)]
    assert expected
    assert api.search_data(search_body(start, end))["flowInsts"] == []
    other_way = search_body(start, end, status="-1,0,1,2,3,4,5,6,7,8,9,10")
    for name in ("owner", "expression"):
        del other_way[name]
    if field != "owner":
        assert api.search(other_way).json()["code"] == 62102, "owner stays mandatory"
        other_way["owner"] = ""
    assert api.page_all(other_way) == expected


def test_a_window_read_in_seconds_finds_nothing_in_milliseconds(emulator, client):
    emu = emulator(window_unit="s")
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    expected = [t.record for t in emu.truth(start, end, 1)]
    assert expected
    assert api.search_data(search_body(start, end))["flowInsts"] == []
    assert api.page_all(search_body(start // 1000, end // 1000)) == expected
