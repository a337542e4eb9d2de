"""Flattening records into the four typed tables: content, key styles, bad input, types, times."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowinst_etl.exceptions import ConfigError
from flowinst_etl.model import FoundInstance
from flowinst_etl.tables.flatten import FlowTables, flatten_instances
from flowinst_etl.tables.schema import TABLES
from tests.fixtures.enos_records import (
    EXTRACTED_AT,
    GMT8,
    STYLES,
    day_records,
    graph,
    record,
    sample_found,
    task_ids,
)


def flatten(records: list[dict], scheduling_type: int = 1, tz=GMT8) -> FlowTables:
    return flatten_instances([FoundInstance(scheduling_type, r) for r in records], tz, EXTRACTED_AT)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def assert_pinned(tables: FlowTables) -> None:
    for name, frame in tables.as_dict().items():
        schema = TABLES[name]
        assert list(frame.columns) == schema.names
        assert isinstance(frame.index, pd.RangeIndex)
        assert [dtype.pyarrow_dtype for dtype in frame.dtypes] == schema.types
    for name, table in tables.to_arrow().items():
        assert table.schema.equals(TABLES[name], check_metadata=True)


def test_the_documented_sample_gives_two_instances_and_two_tasks() -> None:
    tables = flatten_instances(sample_found(), GMT8, EXTRACTED_AT)

    assert_pinned(tables)
    first = tables.instances.iloc[0]
    assert first["instance_id"] == "2809-20190812080700"
    assert first["flow_id"] == 2809 and first["flow_name"] == "21" and first["type"] == 1
    assert first["status"] == 1 and first["status_desc"] == "SUCCESS"
    assert first["trigger_time"] == utc("2019-08-12 00:07:22")
    assert first["trigger_time_raw"] == "2019-08-12 08:07:22"
    assert first["created_at"] == utc("2019-08-12 00:09:48")
    assert first["creator"] == "yourCreator" and first["alert_mode"] == 3
    assert first["task_count"] == 1 and pd.isna(first["graph_error"]) and pd.isna(first["extra"])
    assert tables.instances["owners"].tolist() == [["yourOwners"], ["yourOwners"]]
    assert tables.tasks[
        ["instance_id", "flow_id", "task_id", "task_name", "node_id"]
    ].values.tolist() == [
        ["2809-20190812080700", 2809, 104890, "tass", "t_104890"],
        ["2957-20190812075600", 2957, 105040, "gg", "t_105040"],
    ]
    assert tables.tasks["x"].tolist() == [0.002, 0.0068]
    assert tables.tasks["task_inst_id"].tolist() == [
        "104890-20190812080700",
        "105040-20190812075600",
    ]
    assert tables.tasks["status"].isna().all()
    assert tables.relations.empty and tables.upstream_flows.empty and tables.graph_errors == 0


def test_every_table_from_realistic_records() -> None:
    records = [
        record(3001, status=1, tasks=4, style="camel", upstream=(2788,)),
        record(3002, status=0, tasks=1, style="snake"),
        record(3003, status=2, tasks=2, style="list", upstream=(2790, 2791)),
        record(3004, status=42, statusDesc="SOMETHING_NEW", calDt="2019-08-11", newField={"a": 1}),
    ]
    tables = flatten(records, scheduling_type=2)

    assert_pinned(tables)
    instances = tables.instances.set_index("instance_id")
    assert instances["type"].tolist() == [2, 2, 2, 2]
    assert instances["task_count"].tolist() == [4, 1, 2, 3]
    init, running = instances.loc["3002-20190812080722"], instances.loc["3003-20190812080722"]
    assert pd.isna(init["start_time"]) and pd.isna(init["end_time"])
    assert running["start_time"] == utc("2019-08-12 00:07:30") and pd.isna(running["end_time"])
    unknown = instances.loc["3004-20190812080722"]
    assert unknown["status"] == 42 and unknown["status_desc"] == "SOMETHING_NEW"
    assert json.loads(unknown["extra"]) == {"calDt": "2019-08-11", "newField": {"a": 1}}
    assert json.loads(unknown["parameters"]) == [{"key": "path", "value": "/user/alice"}]
    assert instances["record_error"].isna().all() and instances["graph_error"].isna().all()
    assert instances["owners"].tolist() == [["alice", "bob"]] * 4

    tasks = tables.tasks[tables.tasks["instance_id"] == "3001-20190812080722"]
    assert tasks["task_id"].tolist() == task_ids(3001, 4)
    assert tasks["task_name"].tolist() == ["task_1", "task_2", "task_3", "task_4"]
    assert tasks["flow_id"].tolist() == [3001] * 4 and tasks["status"].tolist() == ["SUCCESS"] * 4
    assert len(tables.tasks) == 4 + 1 + 2 + 3

    relations = tables.relations[tables.relations["instance_id"] == "3001-20190812080722"]
    edges = list(zip(relations["source_node_id"], relations["target_node_id"], strict=True))
    assert edges == [
        ("t_300101", "t_300102"),
        ("t_300102", "t_300103"),
        ("t_300103", "t_300104"),
        ("f_2788", "t_300101"),
    ]
    assert relations["rerun"].tolist() == [False, False, False, True]
    assert set(relations["cycle_gap"]) == {"D0"}

    flows = tables.upstream_flows
    assert flows["instance_id"].tolist() == [
        "3001-20190812080722",
        "3003-20190812080722",
        "3003-20190812080722",
    ]
    assert flows["flow_id"].tolist() == [2788, 2790, 2791]
    assert flows["node_id"].tolist() == ["f_2788", "f_2790", "f_2791"]
    assert flows["flow_inst_id"].tolist() == [
        "2788-20190812080722",
        "2790-20190812080722",
        "2791-20190812080722",
    ]
    assert flows["is_virtual"].tolist() == [False] * 3 and flows["status"].tolist() == ["NONE"] * 3


@pytest.mark.parametrize("style", STYLES)
def test_every_key_style_gives_the_same_rows(style: str) -> None:
    reference = flatten([record(3001, tasks=3, upstream=(2788,))])
    tables = flatten([record(3001, tasks=3, upstream=(2788,), style=style)])

    pd.testing.assert_frame_equal(tables.relations, reference.relations)
    pd.testing.assert_frame_equal(tables.upstream_flows, reference.upstream_flows)
    columns = [c for c in TABLES["flow_instance_tasks"].names if c != "status"]
    pd.testing.assert_frame_equal(tables.tasks[columns], reference.tasks[columns])
    assert tables.instances["alert_mode"].tolist() == [3]


def _with_graph(text: str, flow_id: int = 3002) -> dict:
    return record(flow_id, graph=text)


def _good_graph() -> dict:
    return graph(3002, "20190812080722", 2)


MALFORMED = {
    "truncated JSON": json.dumps(_good_graph())[:-10],
    "a JSON list": json.dumps([_good_graph()]),
    "tasks not a list": json.dumps({**_good_graph(), "tasks": {"taskId": 1}}),
    "taskId not a number": json.dumps(
        {**_good_graph(), "tasks": [{"taskId": "abc", "taskName": "a", "nodeId": "t_1"}]}
    ),
    "a task that is not an object": json.dumps({**_good_graph(), "tasks": ["t_1"]}),
    "owners a number": json.dumps({**_good_graph(), "owners": 5}),
    "rerun not a boolean": json.dumps(
        {**_good_graph(), "relations": [{"source": "t_1", "target": "t_2", "rerun": "sometimes"}]}
    ),
    "empty text": "",
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_graph_is_flagged_and_its_instance_kept(text: str) -> None:
    tables = flatten([record(3001, tasks=2), _with_graph(text), record(3003, tasks=1)])

    assert tables.graph_errors == 1
    bad = tables.instances.iloc[1]
    assert bad["instance_id"] == "3002-20190812080722" and bad["flow_id"] == 3002
    assert isinstance(bad["graph_error"], str) and bad["graph_error"]
    assert pd.isna(bad["task_count"]) and pd.isna(bad["creator"])
    assert bad["graph"] == text
    assert "3002-20190812080722" not in set(tables.tasks["instance_id"])
    assert "3002-20190812080722" not in set(tables.relations["instance_id"])
    assert tables.tasks["instance_id"].tolist() == ["3001-20190812080722"] * 2 + [
        "3003-20190812080722"
    ]
    assert tables.instances["graph_error"].isna().tolist() == [True, False, True]


def test_graph_errors_say_where() -> None:
    tables = flatten([_with_graph(MALFORMED["taskId not a number"]), _with_graph("{oops", 3003)])

    errors = tables.instances["graph_error"].tolist()
    assert errors[0] == "tasks[0].taskId: 'abc' is not an integer"
    assert errors[1].startswith("not JSON")
    assert tables.graph_errors == 2


def test_numbers_sent_as_strings_are_read_as_numbers() -> None:
    as_numbers = record(3001, tasks=2, upstream=(2788,))
    as_strings = graph(3001, "20190812080722", 2, upstream=(2788,))
    for task in as_strings["tasks"]:
        task["taskId"] = str(task["taskId"])
        task["x"] = str(task["x"])
    as_strings["alertMode"] = "3"
    tables = flatten([record(3001, tasks=2, upstream=(2788,), graph=json.dumps(as_strings))])

    reference = flatten([as_numbers])
    pd.testing.assert_frame_equal(tables.tasks, reference.tasks)
    pd.testing.assert_frame_equal(tables.upstream_flows, reference.upstream_flows)
    assert tables.instances["alert_mode"].tolist() == [3]


def test_ids_sent_against_the_documented_json_types_are_read_exactly() -> None:
    """enos-api.md: taskId and alertMode come as numbers, flows[].flowId as text; a batch that
    sends them the other way round, and one with an unknown field of changing type, read alike."""
    documented = [r.record for r in day_records(1100)]
    swapped = graph(9001, "20190812080722", 2, upstream=(2788,))
    for task in swapped["tasks"]:
        task["taskId"] = str(task["taskId"])
    swapped["flows"][0]["flowId"] = 2788
    swapped["alertMode"] = "3"
    unknown = {**graph(9002, "20190812080722", 1), "calDt": [1, "a"], "id": "x"}
    records = [record(9001, graph=json.dumps(swapped)), record(9002, graph=json.dumps(unknown))]

    tables = flatten(documented + records)

    assert tables.graph_errors == 0
    expected = {
        item["instanceId"]: task_ids(item["flowId"], 1 + number % 5)
        for number, item in enumerate(documented)
    }
    expected |= {"9001-20190812080722": [900101, 900102], "9002-20190812080722": [900201]}
    read = tables.tasks.groupby("instance_id", sort=False)["task_id"].apply(list).to_dict()
    assert read == expected
    flows = tables.upstream_flows.set_index("instance_id")["flow_id"]
    assert flows["9001-20190812080722"] == 2788
    assert len(flows) == 550 + 1
    assert tables.instances["alert_mode"].tolist() == [3] * 1102


def test_one_odd_graph_does_not_change_the_rows_of_the_others() -> None:
    good = [r.record for r in day_records(40)]
    odd = _with_graph(json.dumps({**_good_graph(), "tasks": [{"taskId": "7", "x": 1}]}), 9999)

    alone = flatten(good)
    mixed = flatten(good + [odd])

    for name, frame in alone.as_dict().items():
        other = mixed.as_dict()[name]
        kept = other[other["instance_id"] != "9999-20190812080722"].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, frame)
    assert mixed.tasks["task_id"].tolist()[-1] == 7


def test_a_large_id_stays_exact_beside_an_id_sent_as_a_float() -> None:
    large = _with_graph('{"tasks": [{"taskId": 9007199254740993}]}', 9001)
    as_float = _with_graph('{"tasks": [{"taskId": 5.0}]}', 9002)

    together = flatten([large, as_float])

    assert together.tasks["task_id"].tolist() == [9007199254740993, 5]
    assert flatten([large]).tasks["task_id"].tolist() == [9007199254740993]


def test_an_id_sent_as_a_float_beyond_2_53_is_refused_not_rounded() -> None:
    tables = flatten([_with_graph('{"tasks": [{"taskId": 9007199254740993.0}]}', 9001)])

    assert "taskId" in tables.instances["graph_error"][0] and tables.tasks.empty


def test_nan_and_infinity_are_written_as_null_and_noted() -> None:
    odd = record(3001, parameters=[1, float("nan")], calDt={"ratio": float("inf")})

    row = flatten([odd]).instances.iloc[0]

    assert row["parameters"] == "[1, null]" and row["extra"] == '{"calDt": {"ratio": null}}'
    assert row["record_error"] == (
        "parameters: 1 NaN or Infinity written as null; extra: 1 NaN or Infinity written as null"
    )


def test_numbers_too_large_for_a_float_are_written_as_null_and_noted() -> None:
    odd = record(3001, parameters="[1e999, 2]")
    odd["graph"] = '{"tasks": [{"taskId": 1, "x": -1E+400, "y": 2.5}]}'

    tables = flatten([odd])
    row = tables.instances.iloc[0]

    assert row["parameters"] == "[null, 2]"
    assert json.loads(row["graph"]) == {"tasks": [{"taskId": 1, "x": None, "y": 2.5}]}
    assert row["record_error"] == (
        "parameters: 1 NaN or Infinity written as null; graph: 1 NaN or Infinity written as null"
    )
    assert pd.isna(tables.tasks["x"][0]) and tables.tasks["y"][0] == 2.5


def test_a_graph_given_as_an_object_is_read_and_kept_as_text() -> None:
    as_object = graph(3001, "20190812080722", 2)
    tables = flatten([record(3001, graph=as_object)])

    assert json.loads(tables.instances["graph"][0]) == as_object
    assert tables.tasks["task_id"].tolist() == task_ids(3001, 2)


def test_unreadable_record_fields_become_null_with_a_reason() -> None:
    tables = flatten(
        [
            record(3001, flowId="abc", triggerTime="yesterday", virtual="maybe", status=1e9),
            record(3002, flowId="3002", status="1", virtual="true", endTime=""),
        ]
    )

    bad, coerced = tables.instances.iloc[0], tables.instances.iloc[1]
    assert pd.isna(bad["flow_id"]) and pd.isna(bad["trigger_time"]) and pd.isna(bad["virtual"])
    assert bad["trigger_time_raw"] == "yesterday"
    assert bad["record_error"] == (
        "flowId: 'abc' is not an integer; status: 1000000000.0 is out of range for int16; "
        "virtual: 'maybe' is not a boolean; "
        "triggerTime: 'yesterday' is not a 'yyyy-MM-dd HH:mm:ss' time"
    )
    assert bad["task_count"] == 3, "the graph is still read"
    assert coerced["flow_id"] == 3002 and coerced["status"] == 1 and coerced["virtual"]
    assert pd.isna(coerced["end_time"]) and pd.isna(coerced["record_error"])
    assert tables.tasks["flow_id"][:3].isna().all() and tables.tasks["flow_id"][3] == 3002


ODD_RECORDS = {
    "null record": None,
    "number record": 5,
    "text record": "text",
    "list record": [],
    "empty record": {},
    "graph a number": {"graph": 5},
    "graph a list": {"graph": "[]"},
    "graph with a null task": {"graph": {"tasks": [None]}},
    "graph null": {"graph": "null"},
    "graph with leading space": {"graph": ' {"tasks": [{"taskId": 1}]}'},
    "graph with trailing newline": {"graph": '{"tasks": [{"taskId": 1}]}\n'},
    "graph with an escaped lone surrogate": {"graph": '{"tasks": [{"taskName": "\\ud800"}]}'},
    "lone surrogate in a field": {"instanceId": "\ud800", "graph": "{}"},
    "wrong types": {"flowId": True, "status": [1], "virtual": 1, "owner": {"a": 1}},
    "big and decoded values": {"flowId": 2**70, "parameters": [{"key": "a"}], "extra": {1, 2}},
    "deeply nested graph": {"graph": "[" * 100_000 + "]" * 100_000},
    "huge task id": {"graph": json.dumps({"tasks": [{"taskId": 2**64}], "owners": ["a", ""]})},
    "times at the edges": {
        "triggerTime": "0001-01-01 00:00:00",
        "startTime": "9999-12-31 23:59:59",
    },
    "odd time forms": {"triggerTime": 1565568442000, "timestamp": "2019-08-12 08:09:48.1234567"},
    "NaN and integral float": {"graph": '{"tasks": [{"x": NaN, "taskId": 1.0}]}'},
    "hex task id": {"graph": '{"tasks": [{"taskId": "0x10"}]}'},
}


@pytest.mark.parametrize("odd", ODD_RECORDS.values(), ids=ODD_RECORDS.keys())
def test_never_raises_on_odd_records(odd: object) -> None:
    tables = flatten_instances([FoundInstance(1, odd)], GMT8, EXTRACTED_AT)  # type: ignore[arg-type]

    assert len(tables.instances) == 1
    assert_pinned(tables)


EXPECTED_READINGS = [
    ("null record", "record_error", "record: a NoneType, not an object"),
    ("graph a number", "graph_error", "expected a JSON object, got a number"),
    ("graph a list", "graph_error", "expected a JSON object, got an array"),
    ("graph with a null task", "graph_error", "tasks[0]: None is not an object"),
    ("graph null", "graph_error", "expected a JSON object, got null"),
    ("graph with leading space", "task_count", 1),
    ("graph with trailing newline", "task_count", 1),
    ("lone surrogate in a field", "instance_id", "\ufffd"),
    (
        "wrong types",
        "record_error",
        "flowId: True is not an integer; status: [1] is not an integer; "
        "owner: {'a': 1} is not text",
    ),
    ("wrong types", "virtual", True),
    ("big and decoded values", "parameters", '[{"key": "a"}]'),
    ("big and decoded values", "extra", '{"extra": "{1, 2}"}'),
    (
        "huge task id",
        "graph_error",
        "tasks[0].taskId: 18446744073709551616 is out of range for int64",
    ),
    ("times at the edges", "start_time", utc("9999-12-31 15:59:59")),
    (
        "odd time forms",
        "record_error",
        "triggerTime: '1565568442000' is not a 'yyyy-MM-dd HH:mm:ss' time",
    ),
    ("odd time forms", "created_at", utc("2019-08-12 00:09:48.123")),
    ("hex task id", "graph_error", "tasks[0].taskId: '0x10' is not an integer"),
]


@pytest.mark.parametrize(("name", "column", "expected"), EXPECTED_READINGS)
def test_odd_values_are_read_the_documented_way(name: str, column: str, expected: object) -> None:
    tables = flatten_instances([FoundInstance(1, ODD_RECORDS[name])], GMT8, EXTRACTED_AT)  # type: ignore[arg-type]

    assert tables.instances[column][0] == expected


def test_odd_but_readable_graph_values() -> None:
    surrogate = flatten([ODD_RECORDS["graph with an escaped lone surrogate"]])
    nan = flatten([ODD_RECORDS["NaN and integral float"]])
    deep = flatten([ODD_RECORDS["deeply nested graph"]])
    edges = flatten([ODD_RECORDS["times at the edges"]])

    assert surrogate.tasks["task_name"].tolist() == ["\ufffd"]
    assert nan.tasks["task_id"].tolist() == [1] and pd.isna(nan.tasks["x"][0])
    assert deep.instances["graph_error"][0].startswith("not JSON")
    assert edges.instances["record_error"][0].startswith("triggerTime: '0001-01-01 00:00:00'")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
record_keys = st.sampled_from(
    ["instanceId", "flowId", "status", "triggerTime", "graph", "owner", "virtual", "other"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(record_keys, json_values | json_values.map(json.dumps), max_size=6))
def test_never_raises_on_generated_records(odd: dict) -> None:
    tables = flatten([odd, record(3001)])

    assert len(tables.instances) == 2 and len(tables.tasks) >= 3


def test_no_records_give_empty_tables_with_the_full_schema() -> None:
    tables = flatten([])

    assert_pinned(tables)
    assert all(frame.empty for frame in tables.as_dict().values()) and tables.graph_errors == 0


def test_a_record_without_graph_counts_as_a_graph_error() -> None:
    item = record(3001)
    del item["graph"]
    tables = flatten([item])

    assert tables.instances["graph_error"].tolist() == ["no graph in the record"]
    assert tables.graph_errors == 1


TIMES = [
    "2019-08-12 08:07:22",
    "2019-08-12 00:00:00",
    "2019-01-01 03:59:59",
    "2019-08-12 08:09:48.0",
    "2019-08-12 08:09:48.5",
    "2019-08-12 08:09:48.123456",
    "1969-12-31 23:59:59.9995",
    "2024-02-29 12:00:00",
]


@pytest.mark.parametrize("tz", [GMT8, timezone(-timedelta(hours=3, minutes=30)), timezone.utc])
def test_times_match_the_scalar_reference(tz: timezone) -> None:
    tables = flatten([record(3001, timestamp=text) for text in TIMES], tz=tz)

    # pandas reads the wall times independently of the product's parser.
    expected = [pd.Timestamp(text, tz=tz).tz_convert("UTC").floor("ms") for text in TIMES]
    assert tables.instances["created_at"].tolist() == expected


def test_a_zone_object_reads_times_like_the_fixed_offset() -> None:
    records = [record(3001 + n, timestamp=text) for n, text in enumerate(TIMES)]

    by_zone = flatten(records, tz=ZoneInfo("Etc/GMT-8"))

    pd.testing.assert_frame_equal(by_zone.instances, flatten(records).instances)


def test_gmt8_server_time_is_read_as_utc() -> None:
    tables = flatten([record(3001, trigger="2019-08-12 08:07:22")])

    assert tables.instances["trigger_time"][0] == utc("2019-08-12 00:07:22")
    assert tables.instances["end_time"][0] == utc("2019-08-12 00:07:32")
    assert tables.instances["extracted_at"][0] == pd.Timestamp(EXTRACTED_AT)


def test_a_zone_with_daylight_saving_is_read_value_by_value() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    tables = flatten(
        [record(3001, trigger="2019-08-12 08:07:22"), record(3002, trigger="2019-01-12 08:07:22")],
        tz=berlin,
    )

    assert tables.instances["trigger_time"].tolist() == [
        utc("2019-08-12 06:07:22"),
        utc("2019-01-12 07:07:22"),
    ]


def test_a_naive_extraction_time_is_refused() -> None:
    with pytest.raises(ConfigError, match="timezone-aware"):
        flatten_instances([], GMT8, datetime(2019, 8, 13))


def test_arrow_tables_are_cast_to_the_pinned_schemas() -> None:
    arrow = flatten([found.record for found in day_records(6)]).to_arrow()

    assert list(arrow) == list(TABLES)
    assert arrow["flow_instances"].schema.field("trigger_time").type == pa.timestamp("ms", tz="UTC")
    assert arrow["flow_instances"].schema.metadata is None
