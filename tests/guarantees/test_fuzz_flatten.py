"""Property-based: flattening never raises on a record, never loses an instance, always gives the
pinned schema, reads every well-formed graph completely in either key style, and reads a record
the same alone or among others (so the batch reader and its graph-by-graph fallback agree).

JSON columns hold standard JSON (NaN and infinities written as null, and noted), and ids are exact
whatever else shares their batch (no id passes through a float).

Records and graphs are generated adversarially: wrong types, huge and non-finite numbers, text of
every Unicode category (lone surrogates included), deep nesting, truncated JSON, missing keys,
camelCase and snake_case keys mixed, graphs given as objects instead of text. Runs are derandomized
so CI tests the same examples every time.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from flowinst_etl.model import FoundInstance
from flowinst_etl.tables.flatten import FlowTables, flatten_instances
from flowinst_etl.tables.schema import TABLES

EXTRACTED_AT = datetime(2026, 11, 20, 1, 2, 3, tzinfo=timezone.utc)
#: CI-friendly: a fixed set of examples, no deadline, and a failure reports the first failing
#: example as found (unshrunk), so a failing run takes no longer than a passing one.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- values -------------------------------------------------------------------------------------

#: Characters worth meeting often: lone surrogates (not encodable as UTF-8), NUL, line and
#: paragraph separators, a byte-order mark, a combining mark, CJK, emoji, quote and backslash.
SPECIAL_CHARACTERS = ["\ud800", "\udfff", "\ud83d", "\x00", "\u2028", "\ufeff", "\u0301", "风"]
SPECIAL_CHARACTERS += ["\U0001f600", '"', "\\"]
#: Text from every Unicode category, usually with one special character inside.
plain_text = st.text(st.characters(exclude_categories=()), max_size=6)
any_text = st.builds(
    lambda head, special, tail: head + special + tail,
    plain_text,
    st.sampled_from(["", *SPECIAL_CHARACTERS]),
    plain_text,
)
huge_integers = st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**40, -(10**400)])
odd_floats = st.sampled_from(
    [math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 2.5, 1e19, 2.0**60, 5.0]
)
digit_strings = st.integers(-(10**20), 10**20).map(str) | st.sampled_from(
    [" 7 ", "+7", "1_000", "٣", "0x10", "1e3", "", "-"]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_integers
    | st.floats()
    | odd_floats
    | any_text
    | digit_strings
    | st.sampled_from([";a;;b;", ";", "true", "FALSE", "null", "{}", "[]"])
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=6,
)
#: A record field's value: mostly a scalar, sometimes a nested structure.
field_values = leaves | leaves | json_values

# --- graphs -------------------------------------------------------------------------------------

#: Graph keys in camelCase and snake_case (the documented samples use both, even mixed).
TASK_KEYS = {
    "taskId": "task_id",
    "taskName": "task_name",
    "taskInstId": "task_inst_id",
    "nodeId": "node_id",
    "x": "x",
    "y": "y",
    "status": "status",
}
RELATION_KEYS = {"source": "source", "target": "target", "cycleGap": "cycle_gap", "rerun": "rerun"}
FLOW_KEYS = {
    "flowId": "flow_id",
    "flowName": "flow_name",
    "nodeId": "node_id",
    "flowInstId": "flow_inst_id",
    "isVirtual": "is_virtual",
    "status": "status",
}
TOP_KEYS = {"creator": "creator", "alertMode": "alert_mode", "owners": "owners"}
ALL_KEYS = sorted(
    {
        k
        for keys in (TASK_KEYS, RELATION_KEYS, FLOW_KEYS, TOP_KEYS)
        for pair in keys.items()
        for k in pair
    }
    | {"tasks", "relations", "flows"}
)


def styled(draw: st.DrawFn, item: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``item`` (camelCase keys) with each key in camelCase or snake_case, some keys left out."""
    out = {}
    for key, value in item.items():
        if draw(st.integers(0, 9)) == 0:
            continue
        out[names[key] if draw(st.booleans()) else key] = value
    return out


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
ids = st.integers(-(2**63), 2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)


@st.composite
def good_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """A graph of the documented shape with values of the documented types, keys in any style."""
    tasks = [
        styled(
            draw,
            {
                "taskId": draw(ids | ids.map(str)),
                "taskName": draw(texts),
                "taskInstId": draw(texts),
                "nodeId": draw(texts),
                "x": draw(finite),
                "y": draw(finite),
                "status": draw(st.sampled_from(["SUCCESS", "FAIL", "RUNNING", "NONE"])),
            },
            TASK_KEYS,
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    relations = [
        styled(
            draw,
            {
                "source": draw(texts),
                "target": draw(texts),
                "cycleGap": draw(texts),
                "rerun": draw(st.booleans()),
            },
            RELATION_KEYS,
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    flows = [
        styled(
            draw,
            {
                "flowId": draw(ids | ids.map(str)),
                "flowName": draw(texts),
                "nodeId": draw(texts),
                "flowInstId": draw(texts),
                "isVirtual": draw(st.booleans()),
                "status": draw(texts),
            },
            FLOW_KEYS,
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    extras = st.dictionaries(texts.filter(lambda key: key not in ALL_KEYS), json_values)
    graph = draw(extras.filter(lambda extra: len(extra) <= 2))
    owners = draw(st.lists(texts.filter(lambda name: ";" not in name), max_size=3))
    graph |= styled(
        draw,
        {
            "creator": draw(texts),
            "alertMode": draw(st.integers(-(2**15), 2**15 - 1)),
            "owners": ";" + ";".join(owners) + ";",
        },
        TOP_KEYS,
    )
    for key, items in (("tasks", tasks), ("relations", relations), ("flows", flows)):
        if items or draw(st.booleans()):
            graph[key] = items
    return graph


@st.composite
def odd_graph_objects(draw: st.DrawFn) -> Any:
    """Anything a graph could be: of the documented shape with odd values, or not at all."""
    item = st.dictionaries(st.sampled_from(ALL_KEYS) | any_text, json_values, max_size=5)
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "tasks": st.lists(item | json_values, max_size=3) | json_values,
            "relations": st.lists(item | json_values, max_size=3) | json_values,
            "flows": st.lists(item | json_values, max_size=3) | json_values,
            "creator": json_values,
            "alertMode": json_values,
            "alert_mode": json_values,
            "owners": json_values,
        },
    )
    return draw(shaped | good_graphs() | json_values)


@st.composite
def graph_texts(draw: st.DrawFn) -> Any:
    """A graph as the record's ``graph`` value: JSON text, broken text, or a decoded value."""
    graph = draw(odd_graph_objects())
    text = json.dumps(graph, ensure_ascii=draw(st.booleans()), allow_nan=True)
    kind = draw(st.integers(0, 9))
    if kind == 0:  # truncated, as a gateway cutting a long graph
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if kind == 1:  # nested deeper than any parser's recursion limit, or just deep
        depth = draw(st.sampled_from([10, 1000, 5000, 100_000]))
        return "[" * depth + text + "]" * depth
    if kind == 2:
        return " \n\t" + text + "\r\n "
    if kind == 3:
        return draw(any_text)
    if kind == 4:  # not text at all: the object itself
        return graph
    if kind == 5:  # a number strict JSON has no room for, beside the graph
        number = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1E+400"]))
        return f'{{"score": {number}, "graph": {text}}}'
    return text


# --- records ------------------------------------------------------------------------------------

server_times = st.builds(
    lambda moment, fraction: moment.strftime("%Y-%m-%d %H:%M:%S") + fraction,
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(["", ".0", ".1", ".123", ".123456", ".1234567"]),
)
odd_times = (
    server_times
    | st.sampled_from(
        ["", "2026-02-30 00:00:00", "2026-11-20T08:00:00", "20261120080000", "0000-00-00 00:00:00"]
    )
    | json_values
)
RECORD_KEYS = {
    "flowId": field_values | ids,
    "flowName": field_values | texts,
    "status": field_values | st.integers(-1, 10) | st.integers(-1000, 1000),
    "statusDesc": field_values | texts,
    "triggerTime": odd_times,
    "startTime": odd_times,
    "endTime": odd_times,
    "timestamp": odd_times,
    "freq": field_values,
    "cycle": field_values,
    "parameters": field_values,
    "doAs": field_values,
    "owner": field_values,
    "virtual": field_values,
    "hasEditPri": field_values,
    "hasReadPri": field_values,
    "isCancelled": field_values,
    "alertMode": field_values,
}


@st.composite
def records(draw: st.DrawFn) -> Any:
    """A flow-instance record, mostly a JSON object with odd values, sometimes not an object."""
    if draw(st.integers(0, 19)) == 0:
        return draw(json_values)
    record = draw(st.fixed_dictionaries({}, optional=RECORD_KEYS))
    record["instanceId"] = draw(texts | json_values)
    if draw(st.integers(0, 9)):
        record["graph"] = draw(graph_texts())
    record.update(draw(st.dictionaries(any_text, json_values, max_size=1)))
    return record


zones = st.sampled_from(
    [
        timezone.utc,
        timezone(timedelta(hours=8)),
        timezone(timedelta(hours=-3, minutes=-30)),
        timezone(timedelta(hours=14)),
        ZoneInfo("Europe/Berlin"),
        ZoneInfo("America/New_York"),
    ]
)
scheduling_types = st.sampled_from([0, 1, 2]) | st.integers(-300, 300)


#: FlowTables attribute of each child table and the graph list its rows come from.
CHILD_LISTS = (("tasks", "tasks"), ("relations", "relations"), ("upstream_flows", "flows"))


def flatten(found: list[FoundInstance], tz: Any) -> FlowTables:
    return flatten_instances(found, tz, EXTRACTED_AT)


def assert_pinned(tables: FlowTables) -> None:
    for name, frame in tables.as_dict().items():
        schema = TABLES[name]
        assert list(frame.columns) == schema.names, name
        assert [dtype.pyarrow_dtype for dtype in frame.dtypes] == schema.types, name
    for name, table in tables.to_arrow().items():
        assert table.schema.equals(TABLES[name]), name


def with_unique_ids(batch: list[Any]) -> list[Any]:
    """Text ids made unique within the batch (a position prefix), other values kept as they are."""
    out = []
    for position, record in enumerate(batch):
        if isinstance(record, dict) and isinstance(record.get("instanceId"), str):
            record = {**record, "instanceId": f"{position}-{record['instanceId']}"}
        out.append(record)
    return out


def valid_text(text: str) -> str:
    """What a text becomes in Arrow: lone surrogates replaced by U+FFFD."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


@FUZZ
@given(st.lists(st.tuples(scheduling_types, records()), max_size=5), zones)
def test_never_raises_never_loses_an_instance_and_keeps_the_schema(
    batch: list[tuple[int, Any]], tz: Any
) -> None:
    records_ = with_unique_ids([record for _, record in batch])
    found = [FoundInstance(kind, record) for (kind, _), record in zip(batch, records_, strict=True)]

    tables = flatten(found, tz)

    assert_pinned(tables)
    instances = tables.instances
    assert len(instances) == len(found), "one instances row per record"
    for position, record in enumerate(records_):
        if isinstance(record, dict) and isinstance(record.get("instanceId"), str):
            assert instances["instance_id"][position] == valid_text(record["instanceId"])
    errors = instances["graph_error"].notna()
    assert tables.graph_errors == int(errors.sum())
    for position, record in enumerate(records_):
        if not isinstance(record, dict) or record.get("graph") is None:
            assert errors[position], "a record without a graph has a graph error"
    ids = instances["instance_id"].dropna()
    for name, key in CHILD_LISTS:
        children = getattr(tables, name)["instance_id"]
        for position in range(len(instances)):
            instance_id = instances["instance_id"][position]
            if pd.isna(instance_id) or (ids == instance_id).sum() != 1:
                continue
            rows = int((children == instance_id).sum())
            if errors[position]:
                assert rows == 0, f"{name} rows from an unreadable graph"
            else:
                expected = len(graph_of(records_[position]).get(key) or [])
                assert rows == expected, f"{name}: {rows} rows, the graph lists {expected}"
    assert_standard_json(tables)


def graph_of(record: dict[str, Any]) -> dict[str, Any]:
    """The test's own reading of a record's graph that the product read without error."""
    graph = record["graph"]
    parsed = json.loads(graph) if isinstance(graph, str) else graph
    assert isinstance(parsed, dict)
    return parsed


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not standard JSON")


def strict_json(text: str) -> Any:
    """``text`` parsed as standard JSON (Python's json alone also accepts NaN and Infinity)."""
    return json.loads(text, parse_constant=_refuse_constant)


def assert_standard_json(tables: FlowTables) -> None:
    """Every JSON text column holds standard JSON wherever it holds JSON at all (a graph or
    parameters text that is not JSON is kept as sent, flagged elsewhere)."""
    for column in ("parameters", "graph", "extra"):
        for text in tables.instances[column].dropna():
            try:
                json.loads(text)
            except (ValueError, RecursionError):
                continue
            strict_json(text)


@settings(FUZZ, max_examples=100)
@given(st.lists(st.tuples(scheduling_types, records()), min_size=2, max_size=4), zones)
def test_a_record_reads_the_same_alone_and_among_others(
    batch: list[tuple[int, Any]], tz: Any
) -> None:
    found = [
        FoundInstance(kind, record)
        for kind, record in zip(
            [kind for kind, _ in batch], with_unique_ids([r for _, r in batch]), strict=True
        )
    ]

    together = flatten(found, tz).as_dict()
    alone = [flatten([item], tz).as_dict() for item in found]

    for table in TABLES:
        expected = pd.concat([tables[table] for tables in alone], ignore_index=True)
        pd.testing.assert_frame_equal(together[table], expected, obj=table)


@FUZZ
@given(st.lists(good_graphs(), min_size=1, max_size=4), st.booleans())
def test_every_well_formed_graph_is_read_completely(
    graphs: list[dict[str, Any]], as_objects: bool
) -> None:
    found = [
        FoundInstance(
            1,
            {
                "instanceId": f"{n}-20261120000000",
                "triggerTime": "2026-11-20 08:00:00",
                "graph": graph if as_objects else json.dumps(graph, ensure_ascii=False),
            },
        )
        for n, graph in enumerate(graphs)
    ]

    tables = flatten(found, timezone(timedelta(hours=8)))

    assert tables.graph_errors == 0, tables.instances["graph_error"].dropna().tolist()
    for n, graph in enumerate(graphs):
        instance_id = f"{n}-20261120000000"
        for name, key in CHILD_LISTS:
            frame = getattr(tables, name)
            assert (frame["instance_id"] == instance_id).sum() == len(graph.get(key, [])), name
        tasks = tables.tasks[tables.tasks["instance_id"] == instance_id]
        expected_ids = [
            None
            if item.get("taskId", item.get("task_id")) is None
            else int(item.get("taskId", item.get("task_id")))
            for item in graph.get("tasks", [])
        ]
        got_ids = [None if pd.isna(value) else int(value) for value in tasks["task_id"]]
        assert got_ids == expected_ids
        row = tables.instances.iloc[n]
        assert row["task_count"] == len(graph.get("tasks", []))
        owners = graph.get("owners")
        if owners is not None:
            assert list(row["owners"]) == [valid_text(o) for o in owners.split(";") if o]


def without_non_finite(value: Any) -> tuple[Any, bool]:
    """The expectation for a JSON value: NaN and infinities as None, and whether there were any."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, True
    if isinstance(value, list):
        pairs = [without_non_finite(item) for item in value]
        return [item for item, _ in pairs], any(found for _, found in pairs)
    if isinstance(value, dict):
        cleaned = {key: without_non_finite(item) for key, item in value.items()}
        return {k: v for k, (v, _) in cleaned.items()}, any(f for _, f in cleaned.values())
    return value, False


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3).map(valid_text), inner, max_size=3)
    ),
    max_leaves=6,
)


#: Ways a JSON text may spell infinity: Python's word, and numbers too large for a float, which
#: Python's json reads as infinity and strict parsers refuse.
infinity_literals = st.sampled_from(
    ["Infinity", "1e999", "1E+400", "12.5e308", "1" + "0" * 400 + ".0"]
)


@FUZZ
@given(json_values, json_values, st.booleans(), infinity_literals)
def test_json_columns_hold_standard_json_with_non_finite_numbers_as_null(
    parameters: Any, unknown: Any, parameters_as_text: bool, infinity: str
) -> None:
    assume(parameters_as_text or not isinstance(parameters, str))  # a text is JSON as sent
    # Generated texts are too short to hold the word "Infinity" except as a number.
    as_text = json.dumps(parameters).replace("Infinity", infinity)
    record = {
        "instanceId": "7-20261120080000",
        "triggerTime": "2026-11-20 08:00:00",
        "parameters": as_text if parameters_as_text else parameters,
        "newField": unknown,
        "graph": '{"tasks": [{"taskId": 1, "x": ' + infinity + "}]}",
    }

    row = flatten([FoundInstance(1, record)], timezone.utc).instances.iloc[0]

    expected_parameters, parameters_odd = without_non_finite(parameters)
    expected_unknown, unknown_odd = without_non_finite(unknown)
    if parameters is None and not parameters_as_text:
        assert pd.isna(row["parameters"])
    else:
        assert strict_json(row["parameters"]) == expected_parameters
    assert strict_json(row["extra"]) == {"newField": expected_unknown}
    assert strict_json(row["graph"]) == {"tasks": [{"taskId": 1, "x": None}]}
    errors = row["record_error"]
    assert ("parameters: " in errors and "NaN or Infinity" in errors) == parameters_odd
    assert ("extra: " in errors) == unknown_odd
    assert "graph: 1 NaN or Infinity written as null" in errors


#: Ids beyond 2**53 (exact only as integers) beside ids a float holds exactly, in every form.
task_ids = st.sampled_from(
    [2**53 + 1, 2**63 - 1, -(2**63), 5.0, -3.0, 7, "9007199254740993", 0]
) | st.integers(-(2**63), 2**63 - 1)


@FUZZ
@given(st.lists(st.lists(task_ids, min_size=1, max_size=3), min_size=1, max_size=4))
def test_ids_are_exact_alone_and_in_any_batch(id_lists: list[list[Any]]) -> None:
    found = [
        FoundInstance(
            1,
            {
                "instanceId": f"{n}-20261120000000",
                "triggerTime": "2026-11-20 08:00:00",
                "graph": json.dumps({"tasks": [{"taskId": i} for i in ids]}),
            },
        )
        for n, ids in enumerate(id_lists)
    ]
    expected = [[int(i) for i in ids] for ids in id_lists]

    together = flatten(found, timezone.utc).tasks
    alone = [flatten([item], timezone.utc).tasks["task_id"].tolist() for item in found]

    assert together["task_id"].tolist() == [i for ids in expected for i in ids]
    assert alone == expected


#: A record every field of which has its documented type: read by Arrow in one pass.
CLEAN_RECORD = {
    "instanceId": "1-20261120080000",
    "flowId": 1,
    "flowName": "flow",
    "status": 1,
    "statusDesc": "SUCCESS",
    "triggerTime": "2026-11-20 08:00:00",
    "startTime": "2026-11-20 08:00:05",
    "endTime": "2026-11-20 08:01:00",
    "timestamp": "2026-11-20 08:00:00.5",
    "parameters": "[]",
    "owner": "a",
    "virtual": False,
    "graph": '{"tasks": [{"taskId": 1}]}',
}
#: Beside a record with a number for a text field, a batch is read value by value.
VALUE_BY_VALUE = {**CLEAN_RECORD, "instanceId": "2-20261120080000", "flowName": 2}


def assert_reads_as_value_by_value(record: dict[Any, Any]) -> None:
    """``record`` reads the same alone (in one pass, if it can be) as beside a record that
    forces the value-by-value reading."""
    other = FoundInstance(1, VALUE_BY_VALUE)
    alone = flatten([FoundInstance(1, record)], timezone.utc).as_dict()
    beside = flatten([FoundInstance(1, record), other], timezone.utc).as_dict()
    others = flatten([other], timezone.utc).as_dict()
    for table in TABLES:
        expected = beside[table].head(len(beside[table]) - len(others[table]))
        pd.testing.assert_frame_equal(alone[table], expected, obj=table)


FIELDS = sorted(RECORD_KEYS) + ["instanceId", "graph"]
#: Values one JSON type away from a field's own: what a one-pass reader might take silently.
CONFUSABLE = [None, True, False, 0, 1, 7, 2**63, 2.5, 5.0, 2.0**60, "", "1", "true", "NaN", "x"]
CONFUSABLE += [{}, [], {"a": 1}, "x\ud800", "[1e999]"]
#: Python values no JSON decoder makes, which Arrow would also take as text or booleans.
CONFUSABLE += [b"x", bytearray(b"x"), memoryview(b"x"), np.bool_(True)]


@pytest.mark.parametrize("key", FIELDS)
def test_confusable_values_read_the_same_in_one_pass_and_value_by_value(key: str) -> None:
    for value in CONFUSABLE:
        assert_reads_as_value_by_value({**CLEAN_RECORD, key: value})


class OverriddenGet(dict):  # type: ignore[type-arg]
    def get(self, key: Any, default: Any = None) -> Any:
        return "from get"


@pytest.mark.parametrize(
    "odd",
    [{b"flowName": "bytes key", "flowId": 8}, OverriddenGet(CLEAN_RECORD)],
    ids=["bytes keys", "a dict whose get differs from its storage"],
)
def test_a_record_no_json_decoder_makes_changes_no_other_record(odd: dict[Any, Any]) -> None:
    clean = FoundInstance(1, CLEAN_RECORD)
    alone = flatten([clean], timezone.utc).as_dict()

    after_odd = flatten([FoundInstance(1, odd), clean], timezone.utc).as_dict()

    for table in TABLES:  # the clean record's rows come last
        kept = after_odd[table].tail(len(alone[table])).reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, alone[table], obj=table)
    assert_reads_as_value_by_value(odd)


@FUZZ
@given(st.sampled_from(FIELDS), field_values | texts)
def test_one_odd_field_reads_the_same_in_one_pass_and_value_by_value(key: str, value: Any) -> None:
    assert_reads_as_value_by_value({**CLEAN_RECORD, key: value})


def test_strategies_reach_the_adversarial_corners() -> None:
    """The generated graphs include each adversarial kind (so the properties above cover them)."""
    seen: set[str] = set()

    @FUZZ
    @given(graph_texts())
    def classify(graph: Any) -> None:
        if not isinstance(graph, str):
            seen.add("object")
        elif graph.startswith("[" * 1000):
            seen.add("deep")
        elif graph.startswith(" \n"):
            seen.add("padded")
        else:
            try:
                json.loads(graph)
                seen.add("json")
            except (ValueError, RecursionError):
                seen.add("broken")
            if "NaN" in graph or "Infinity" in graph:
                seen.add("non-finite")

    classify()
    assert seen >= {"object", "deep", "padded", "json", "broken", "non-finite"}, seen


UNKNOWN_FIELDS = {
    "a lone surrogate in an unknown field's name": {"\ud800": 1},
    "a lone surrogate in an unknown field's value": {"newField": "x\udfff"},
    "a lone surrogate inside an unknown field's object": {"newField": {"k": ["\ud83d"]}},
}


@pytest.mark.parametrize("fields", UNKNOWN_FIELDS.values(), ids=UNKNOWN_FIELDS.keys())
def test_unknown_fields_with_lone_surrogates_are_kept_without_raising(
    fields: dict[str, Any],
) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``), which json.loads returns as is."""
    record = {"instanceId": "7-20261120080000", "triggerTime": "2026-11-20 08:00:00", **fields}

    tables = flatten([FoundInstance(1, record)], timezone.utc)

    assert_pinned(tables)
    assert tables.instances["instance_id"].tolist() == ["7-20261120080000"]
    assert tables.instances["extra"][0] is not None
