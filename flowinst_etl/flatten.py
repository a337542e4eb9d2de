"""API records -> typed tables: instances, their tasks, relations and upstream flows.

Records come from a gateway whose documentation and samples disagree on key spelling and value
types, so nothing about a record's shape is trusted: a value that does not fit its column becomes
null and the reason is kept in ``record_error`` (record fields) or ``graph_error`` (the embedded
graph). Flattening never raises on a record and never drops an instance.

The embedded ``graph`` JSON dominates the cost. Graphs are read in batches by Arrow's JSON reader,
which only accepts values that already have the declared types; a batch it refuses is read again
graph by graph with ``json.loads`` and lenient, per-value conversion. Both paths give the same
result for every graph the fast one accepts, so the slow path only costs time, never meaning.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from flowinst_etl.exceptions import ConfigError
from flowinst_etl.model import FoundInstance
from flowinst_etl.schema import FLOW_INSTANCES, TABLES, UTC_MS, conform
from flowinst_etl.windows import server_time_to_utc

_BATCH = 1024
_PLAIN_TIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$"
_PLAIN_INT = r"^-?[0-9]+$"
_SURROGATE = re.compile("[\ud800-\udfff]")
_EARLIEST = pa.scalar(datetime(1, 1, 1), pa.timestamp("us"))
_LATEST = pa.scalar(datetime(9999, 12, 31, 23, 59, 59, 999999), pa.timestamp("us"))
_Errors = defaultdict[int, list[str]]  # record position -> reasons


class _Invalid(ValueError):
    """A value that does not fit its column; the message says why."""


class _Refused(Exception):
    """The fast graph reader cannot vouch for a batch; read it graph by graph instead."""


@dataclass(frozen=True)
class FlowTables:
    """The four output tables of one batch of records, typed as in :mod:`flowinst_etl.schema`.

    Attributes:
        instances: one row per instance (``flow_instances``).
        tasks: one row per task node of a readable graph (``flow_instance_tasks``).
        relations: one row per dependency edge (``flow_instance_relations``).
        upstream_flows: one row per upstream flow node (``flow_instance_upstream_flows``).
        graph_errors: instances whose graph was missing or unreadable (their ``graph_error``).
    """

    instances: pd.DataFrame
    tasks: pd.DataFrame
    relations: pd.DataFrame
    upstream_flows: pd.DataFrame
    graph_errors: int

    def as_dict(self) -> dict[str, pd.DataFrame]:
        """The frames keyed by output table name, in :data:`~flowinst_etl.schema.TABLES` order."""
        frames = (self.instances, self.tasks, self.relations, self.upstream_flows)
        return dict(zip(TABLES, frames, strict=True))

    def to_arrow(self) -> dict[str, pa.Table]:
        """The tables as Arrow tables with exactly the pinned schemas, keyed by table name."""
        return {name: conform(name, frame) for name, frame in self.as_dict().items()}


# --- values -----------------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _Invalid(f"{_show(value)} is not text")


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Invalid(f"{_show(value)} cannot be written as JSON") from exc


def _integer(bits: int) -> Callable[[Any], int]:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(value: Any) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                number = None
        if number is None:
            raise _Invalid(f"{_show(value)} is not an integer")
        if not low <= number <= high:
            raise _Invalid(f"{_show(value)} is out of range for int{bits}")
        return number

    return convert


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid(f"{_show(value)} is not a number")
    try:
        return float(value)
    except (ValueError, OverflowError) as exc:
        raise _Invalid(f"{_show(value)} is not a number") from exc


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _Invalid(f"{_show(value)} is not a boolean")


@dataclass(frozen=True)
class _Kind:
    """How the values of one column are checked, converted and typed."""

    arrow: pa.DataType
    exact: frozenset[type]
    convert: Callable[[Any], Any]
    bits: int = 0

    def fits_as_is(self, values: list[Any]) -> bool:
        """Whether every value already has a type and range the column takes unchanged."""
        if not set(map(type, values)) <= self.exact:
            return False
        present = [value for value in values if value is not None] if self.bits else ()
        if not present:
            return True
        limit = 1 << (self.bits - 1)
        return -limit <= min(present) and max(present) < limit


def _int_kind(bits: int) -> _Kind:
    arrow = {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[bits]
    return _Kind(arrow, frozenset({int, type(None)}), _integer(bits), bits)


TEXT = _Kind(pa.string(), frozenset({str, type(None)}), _text)
JSON_TEXT = _Kind(pa.string(), frozenset({str, type(None)}), _json_text)
FLOAT = _Kind(pa.float64(), frozenset({float, type(None)}), _float)
BOOL = _Kind(pa.bool_(), frozenset({bool, type(None)}), _boolean)
INT8, INT16, INT64 = _int_kind(8), _int_kind(16), _int_kind(64)


def _converted(values: list[Any], kind: _Kind, label: str, errors: _Errors) -> list[Any]:
    """The values converted to ``kind``; misfits become ``None`` and are noted in ``errors``."""
    if kind.fits_as_is(values):
        return values
    out: list[Any] = []
    for row, value in enumerate(values):
        try:
            out.append(None if value is None else kind.convert(value))
        except _Invalid as exc:
            out.append(None)
            errors[row].append(f"{label}: {exc}")
    return out


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_valid_text(item) for item in value]
    return value


def _array(values: Sequence[Any], arrow: pa.DataType) -> pa.Array:
    """An Arrow array of converted values; text that is not valid Unicode gets U+FFFD."""
    try:
        return pa.array(values, arrow)
    except UnicodeEncodeError:
        return pa.array([_valid_text(value) for value in values], arrow)


def _owners(value: Any) -> list[str]:
    """Graph ``owners``: ``";a;b;"`` (or a list) as names, without empty entries."""
    if isinstance(value, str):
        names: list[Any] = value.split(";")
    elif isinstance(value, list) and all(isinstance(name, str) for name in value):
        names = value
    else:
        raise _Invalid(f"{_show(value)} is not a ';'-separated list of names")
    return [name for name in names if name]


def _split_owners(owners: pa.Array) -> pa.Array:
    """``_owners`` for a whole array of ``owners`` texts."""
    lists = pc.split_pattern(owners, ";")
    names = lists.flatten()
    keep = pc.not_equal(names, "")
    parents = pc.list_parent_indices(lists).filter(keep).to_numpy()
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=len(lists)))])
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), names.filter(keep), mask=pc.is_null(owners)
    )


# --- server times -----------------------------------------------------------------------------


def _utc(texts: list[str | None], server_tz: tzinfo, label: str, errors: _Errors) -> pa.Array:
    """Server-local time strings as UTC instants (``UTC_MS``); unreadable ones become null."""
    offset = server_tz.utcoffset(None)
    if offset is not None:
        try:
            return _utc_vectorised(texts, offset)
        except (_Refused, pa.ArrowInvalid):
            pass
    out: list[datetime | None] = []
    for row, text in enumerate(texts):
        try:
            out.append(server_time_to_utc(text, server_tz))
        except (ValueError, OverflowError):
            out.append(None)
            errors[row].append(f"{label}: {_show(text)} is not a 'yyyy-MM-dd HH:mm:ss' time")
    return pa.array(out, UTC_MS)


def _utc_vectorised(texts: list[str | None], offset: timedelta) -> pa.Array:
    """The fixed-offset case in Arrow, for columns where every value has the plain form."""
    raw = pa.array(texts, pa.string())
    raw = pc.if_else(pc.equal(raw, ""), pa.scalar(None, pa.string()), raw)
    if not pc.all(pc.match_substring_regex(raw, _PLAIN_TIME)).as_py():
        raise _Refused
    utc = pc.subtract(raw.cast(pa.timestamp("us")), pa.scalar(offset, pa.duration("us")))
    if pc.any(pc.or_(pc.less(utc, _EARLIEST), pc.greater(utc, _LATEST))).as_py():
        raise _Refused
    floored = pc.floor_temporal(utc, unit="millisecond")
    return floored.cast(pa.timestamp("ms")).cast(UTC_MS)


# --- graphs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """One output column read from a JSON object under any of its spellings (preferred first)."""

    column: str
    keys: tuple[str, ...]
    kind: _Kind


@dataclass(frozen=True)
class _Child:
    """An output table made of the items of one graph list."""

    table: str
    key: str
    inherited: tuple[str, ...]
    fields: tuple[_Field, ...]


_GRAPH_FIELDS = (
    _Field("creator", ("creator",), TEXT),
    _Field("alert_mode", ("alertMode", "alert_mode"), INT16),
)
_CHILDREN = (
    _Child(
        "flow_instance_tasks",
        "tasks",
        ("instance_id", "flow_id"),
        (
            _Field("task_id", ("taskId", "task_id"), INT64),
            _Field("task_name", ("taskName", "task_name"), TEXT),
            _Field("task_inst_id", ("taskInstId", "task_inst_id"), TEXT),
            _Field("node_id", ("nodeId", "node_id"), TEXT),
            _Field("x", ("x",), FLOAT),
            _Field("y", ("y",), FLOAT),
            _Field("status", ("status",), TEXT),
        ),
    ),
    _Child(
        "flow_instance_relations",
        "relations",
        ("instance_id",),
        (
            _Field("source_node_id", ("source",), TEXT),
            _Field("target_node_id", ("target",), TEXT),
            _Field("cycle_gap", ("cycleGap", "cycle_gap"), TEXT),
            _Field("rerun", ("rerun",), BOOL),
        ),
    ),
    _Child(
        "flow_instance_upstream_flows",
        "flows",
        ("instance_id",),
        (
            _Field("flow_id", ("flowId", "flow_id"), INT64),
            _Field("flow_name", ("flowName", "flow_name"), TEXT),
            _Field("node_id", ("nodeId", "node_id"), TEXT),
            _Field("flow_inst_id", ("flowInstId", "flow_inst_id"), TEXT),
            _Field("is_virtual", ("isVirtual", "is_virtual"), BOOL),
            _Field("status", ("status",), TEXT),
        ),
    ),
)
#: Per-graph values, one per instance, with their column types.
_GRAPH_VALUES = {
    "creator": pa.string(),
    "alert_mode": pa.int16(),
    "owners": pa.list_(pa.string()),
    "task_count": pa.int32(),
    "graph_error": pa.string(),
}


@dataclass(frozen=True)
class _Graphs:
    """What the graphs of some records hold: per-graph values aligned with ``rows`` (record
    positions), and the child tables, each with a ``row`` column pointing back at its record."""

    rows: pa.Array
    values: dict[str, pa.Array]
    children: dict[str, pa.Table]


def _child_schema(child: _Child) -> pa.Schema:
    return pa.schema(
        [pa.field("row", pa.int64())] + [(f.column, f.kind.arrow) for f in child.fields]
    )


def _read_graph_text(text: str) -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]]]:
    """The reference reading of one graph: its per-graph values and child rows.

    Raises:
        _Invalid: the graph is not a JSON object of the documented shape.
    """
    try:
        graph = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"not JSON: {exc}") from exc
    if not isinstance(graph, dict):
        raise _Invalid(f"expected a JSON object, got {_JSON_KINDS.get(type(graph), 'null')}")
    values = {f.column: _object_value(graph, f, "") for f in _GRAPH_FIELDS}
    owners = graph.get("owners")
    try:
        values["owners"] = None if owners is None else _owners(owners)
    except _Invalid as exc:
        raise _Invalid(f"owners: {exc}") from exc
    items = {child.table: _items(graph, child.key) for child in _CHILDREN}
    values["task_count"] = len(items["flow_instance_tasks"])
    rows = {
        child.table: [
            tuple(_object_value(item, f, f"{child.key}[{index}].") for f in child.fields)
            for index, item in enumerate(_objects(items[child.table], child.key))
        ]
        for child in _CHILDREN
    }
    return values, rows


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def _items(graph: dict[str, Any], key: str) -> list[Any]:
    items = graph.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise _Invalid(f"{key}: {_show(items)} is not a list")
    return items


def _objects(items: list[Any], key: str) -> list[dict[str, Any]]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _Invalid(f"{key}[{index}]: {_show(item)} is not an object")
    return items


def _object_value(obj: dict[str, Any], spec: _Field, where: str) -> Any:
    for key in spec.keys:
        value = obj.get(key)
        if value is not None:
            try:
                return spec.kind.convert(value)
            except _Invalid as exc:
                raise _Invalid(f"{where}{key}: {exc}") from exc
    return None


def _graphs_slow(rows: list[int], texts: list[str]) -> _Graphs:
    """Graphs read one by one with the reference rules; a bad graph only sets its own error."""
    values: dict[str, list[Any]] = {name: [] for name in _GRAPH_VALUES}
    child_rows: dict[str, list[tuple[Any, ...]]] = {child.table: [] for child in _CHILDREN}
    for row, text in zip(rows, texts, strict=True):
        try:
            graph_values, graph_rows = _read_graph_text(text)
        except _Invalid as exc:
            graph_values, graph_rows = {"graph_error": str(exc)}, {}
        for name in _GRAPH_VALUES:
            values[name].append(graph_values.get(name))
        for table, items in graph_rows.items():
            child_rows[table].extend((row, *item) for item in items)
    children = {child.table: _rows_table(child_rows[child.table], child) for child in _CHILDREN}
    arrays = {name: _array(values[name], arrow) for name, arrow in _GRAPH_VALUES.items()}
    return _Graphs(pa.array(rows, pa.int64()), arrays, children)


def _rows_table(rows: list[tuple[Any, ...]], child: _Child) -> pa.Table:
    schema = _child_schema(child)
    columns = list(zip(*rows, strict=True)) or [()] * len(schema)
    arrays = [_array(column, f.type) for column, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _fast_struct_type(fields: Iterable[_Field]) -> list[pa.Field]:
    """Declared Arrow types for the fast reader; integers are left to inference, because the
    gateway sends ids both as numbers and as digit strings."""
    return [pa.field(key, f.kind.arrow) for f in fields if not f.kind.bits for key in f.keys]


_FAST_GRAPH = pa.struct(
    _fast_struct_type(_GRAPH_FIELDS)
    + [pa.field("owners", pa.string())]
    + [pa.field(c.key, pa.list_(pa.struct(_fast_struct_type(c.fields)))) for c in _CHILDREN]
)
_FAST_OPTIONS = pa_json.ParseOptions(
    explicit_schema=pa.schema([("i", pa.int64()), ("g", _FAST_GRAPH)]),
    unexpected_field_behavior="infer",
)


def _fast_cast(values: pa.Array, kind: _Kind) -> pa.Array:
    if values.type == kind.arrow:
        return values
    source = values.type
    if not kind.bits or not (
        pa.types.is_integer(source)
        or pa.types.is_floating(source)
        or pa.types.is_null(source)
        or pa.types.is_string(source)
    ):
        raise _Refused
    if (
        pa.types.is_string(source)
        and not pc.all(pc.match_substring_regex(values, _PLAIN_INT)).as_py()
    ):
        raise _Refused
    return values.cast(kind.arrow)


def _fast_column(struct: pa.StructArray, spec: _Field) -> pa.Array:
    present = [key for key in spec.keys if struct.type.get_field_index(key) >= 0]
    parts = [_fast_cast(struct.field(key), spec.kind) for key in present]
    if not parts:
        return pa.nulls(len(struct), spec.kind.arrow)
    return pc.coalesce(*parts) if len(parts) > 1 else parts[0]


def _json_lines(texts: pa.StringArray) -> tuple[pa.Buffer, pa.Array]:
    """The graphs as JSON lines ``{"i": position, "g": graph}``, and the positions.

    The reader does not report which input line a row came from, and one malformed graph could
    run into the next; the position inside each row proves every row is exactly its own graph.
    """
    positions = pa.array(range(len(texts)), pa.int64())
    lines = pc.binary_join_element_wise(
        '{"i":', positions.cast(pa.string()), ',"g":', texts, "}\n", ""
    )
    # The character data of a fresh string array is its values back to back: the whole text.
    _, offsets, data = lines.buffers()
    bounds = pa.Array.from_buffers(pa.int32(), len(lines) + 1, [None, offsets], offset=lines.offset)
    start, end = bounds[0].as_py(), bounds[-1].as_py()
    return data.slice(start, end - start), positions


def _graphs_fast(rows: list[int], texts: pa.StringArray) -> _Graphs:
    """Graphs read as one batch by Arrow's JSON reader.

    Raises:
        _Refused: the reader's rows are not exactly the graphs (the caller falls back).
        pyarrow.ArrowException: the reader refused the batch (the caller falls back).
    """
    lines, positions = _json_lines(texts)
    table = pa_json.read_json(pa.BufferReader(lines), parse_options=_FAST_OPTIONS)
    if (
        table.column_names != ["i", "g"]
        or not table.column("i").combine_chunks().equals(positions)
        or table.column("g").null_count
    ):
        raise _Refused
    graphs = table.column("g").combine_chunks()
    values = {f.column: _fast_column(graphs, f) for f in _GRAPH_FIELDS}
    values["owners"] = _split_owners(graphs.field("owners"))
    values["task_count"] = pc.list_value_length(graphs.field("tasks")).fill_null(0).cast(pa.int32())
    values["graph_error"] = pa.nulls(len(texts), pa.string())
    row_ids = pa.array(rows, pa.int64())
    children = {c.table: _fast_child(graphs.field(c.key), row_ids, c) for c in _CHILDREN}
    return _Graphs(row_ids, values, children)


def _fast_child(lists: pa.ListArray, row_ids: pa.Array, child: _Child) -> pa.Table:
    items = lists.flatten()
    if items.null_count:
        raise _Refused
    arrays = [pc.take(row_ids, pc.list_parent_indices(lists))]
    arrays += [_fast_column(items, f) for f in child.fields]
    return pa.Table.from_arrays(arrays, schema=_child_schema(child))


def _read_batch(batch: list[tuple[int, str]], array: pa.StringArray) -> _Graphs:
    rows = [row for row, _ in batch]
    contiguous = rows[-1] - rows[0] + 1 == len(rows)
    texts = array.slice(rows[0], len(rows)) if contiguous else array.take(rows)
    try:
        return _graphs_fast(rows, texts)
    except (_Refused, pa.ArrowException):
        return _graphs_slow(rows, [text for _, text in batch])


def _no_graphs() -> _Graphs:
    return _Graphs(
        pa.array([], pa.int64()),
        {name: pa.array([], arrow) for name, arrow in _GRAPH_VALUES.items()},
        {child.table: _child_schema(child).empty_table() for child in _CHILDREN},
    )


def _read_graphs(
    texts: list[str | None], array: pa.StringArray
) -> tuple[dict[str, pa.Array], dict[str, pa.Table]]:
    """Every graph of the records (``texts``, also as ``array``; ``None`` for none), in batches,
    each read fast when Arrow accepts it, else graph by graph.

    Returns:
        The per-graph values aligned with the records, and the child tables.
    """
    present = [(row, text) for row, text in enumerate(texts) if text is not None]
    batches = [present[start : start + _BATCH] for start in range(0, len(present), _BATCH)]
    # Two batches in flight keep Arrow's reader threads busy between batches.
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = [_no_graphs(), *pool.map(lambda batch: _read_batch(batch, array), batches)]
    rows = pa.concat_arrays([part.rows for part in parts]).to_numpy()
    position = np.full(len(texts), -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    by_record = pa.array(position, mask=position < 0)
    values = {
        name: pc.take(pa.concat_arrays([part.values[name] for part in parts]), by_record)
        for name in _GRAPH_VALUES
    }
    children = {
        child.table: pa.concat_tables([part.children[child.table] for part in parts])
        for child in _CHILDREN
    }
    return values, children


# --- records ----------------------------------------------------------------------------------

#: Record keys read into columns: (API key, output column or None when derived later, kind).
_RECORD_FIELDS: tuple[tuple[str, str | None, _Kind], ...] = (
    ("instanceId", "instance_id", TEXT),
    ("flowId", "flow_id", INT64),
    ("flowName", "flow_name", TEXT),
    ("status", "status", INT16),
    ("statusDesc", "status_desc", TEXT),
    ("triggerTime", "trigger_time_raw", TEXT),
    ("startTime", None, TEXT),
    ("endTime", None, TEXT),
    ("timestamp", None, TEXT),
    ("freq", "freq", TEXT),
    ("cycle", "cycle", TEXT),
    ("parameters", "parameters", JSON_TEXT),
    ("doAs", "do_as", TEXT),
    ("owner", "owner", TEXT),
    ("virtual", "virtual", BOOL),
    ("hasEditPri", "has_edit_pri", BOOL),
    ("hasReadPri", "has_read_pri", BOOL),
    ("isCancelled", "is_cancelled", BOOL),
    ("alertMode", None, INT16),
    ("graph", "graph", JSON_TEXT),
)
_KNOWN_KEYS = frozenset(key for key, _, _ in _RECORD_FIELDS)
_TIMES = {
    "trigger_time": "triggerTime",
    "start_time": "startTime",
    "end_time": "endTime",
    "created_at": "timestamp",
}


def _as_dicts(found: Iterable[FoundInstance], errors: _Errors) -> tuple[list[dict], list[Any]]:
    """The records as plain dicts (a non-object becomes ``{}`` with a noted error), and the
    scheduling type each was found with."""
    records: list[dict[Any, Any]] = []
    types: list[Any] = []
    for row, item in enumerate(found):
        record = item.record
        types.append(item.scheduling_type)
        if not isinstance(record, dict):
            if isinstance(record, Mapping):
                record = dict(record)
            else:
                errors[row].append(f"record: a {type(record).__name__}, not an object")
                record = {}
        records.append(record)
    return records, types


def _extra(record: dict[Any, Any]) -> str | None:
    """Record fields this version has no column for, as JSON text, so new fields are kept."""
    unknown = record.keys() - _KNOWN_KEYS
    if not unknown:
        return None
    extra = {str(key): record[key] for key in unknown}
    try:
        return json.dumps(extra, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        return json.dumps({key: repr(value) for key, value in extra.items()}, sort_keys=True)


def _record_columns(records: list[dict[Any, Any]], errors: _Errors) -> dict[str, list[Any]]:
    """Every known record field, converted, keyed by its API key."""
    return {
        key: _converted([record.get(key) for record in records], kind, key, errors)
        for key, _, kind in _RECORD_FIELDS
    }


def _instances(
    records: list[dict[Any, Any]],
    types: list[Any],
    graph_values: dict[str, pa.Array],
    columns: dict[str, list[Any]],
    ready: dict[str, pa.Array],
    errors: _Errors,
    extracted_at: datetime,
) -> pa.Table:
    """The ``flow_instances`` table; ``ready`` holds columns already built as arrays."""
    arrays = {
        column: _array(columns[key], FLOW_INSTANCES.field(column).type)
        for key, column, _ in _RECORD_FIELDS
        if column is not None and column not in ready
    }
    arrays.update(ready)
    arrays["type"] = _array(_converted(types, INT8, "scheduling_type", errors), pa.int8())
    arrays.update(graph_values)
    arrays["alert_mode"] = pc.coalesce(
        _array(columns["alertMode"], pa.int16()), graph_values["alert_mode"]
    )
    arrays["graph_error"] = pc.if_else(
        pc.is_null(arrays["graph"]), "no graph in the record", graph_values["graph_error"]
    )
    arrays["extra"] = pa.array([_extra(record) for record in records], pa.string())
    reasons = ["; ".join(errors[row]) if row in errors else None for row in range(len(records))]
    arrays["record_error"] = _array(reasons, pa.string())
    moment = pa.scalar(extracted_at.astimezone(timezone.utc), UTC_MS)
    arrays["extracted_at"] = pa.repeat(moment, len(records))
    return pa.Table.from_arrays(
        [arrays[name] for name in FLOW_INSTANCES.names], schema=FLOW_INSTANCES
    )


def _child_table(part: pa.Table, instances: pa.Table, child: _Child) -> pa.Table:
    """A child table with the columns it takes from its instance, in pinned column order."""
    rows = part.column("row")
    columns = {name: part.column(name) for name in part.column_names if name != "row"}
    columns.update({name: pc.take(instances.column(name), rows) for name in child.inherited})
    schema = TABLES[child.table]
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def flatten_instances(
    found: Iterable[FoundInstance], server_tz: tzinfo, extracted_at: datetime
) -> FlowTables:
    """Flatten flow-instance records and their embedded graphs into the four output tables.

    Never raises on a record, whatever its shape: values that do not fit their column become null
    with the reason in ``record_error``; a graph that is missing or unreadable keeps its raw text,
    sets ``graph_error`` and contributes no tasks, relations or upstream flows. Record fields
    without a column are kept as JSON in ``extra``.

    Args:
        found: the records, each with the scheduling type of the query that found it.
        server_tz: the gateway's timezone (see ``windows.parse_server_timezone``); record time
            strings are read as local times there.
        extracted_at: when the records were fetched; must be timezone-aware.

    Returns:
        The tables as Arrow-backed DataFrames with exactly the pinned schemas.

    Raises:
        ConfigError: ``extracted_at`` is naive.
    """
    if extracted_at.utcoffset() is None:
        raise ConfigError("extracted_at must be timezone-aware, e.g. datetime.now(timezone.utc)")
    errors: _Errors = defaultdict(list)
    records, types = _as_dicts(found, errors)
    columns = _record_columns(records, errors)
    ready = {name: _utc(columns[key], server_tz, key, errors) for name, key in _TIMES.items()}
    ready["graph"] = _array(columns["graph"], pa.string())
    graph_values, children = _read_graphs(columns["graph"], ready["graph"])
    instances = _instances(records, types, graph_values, columns, ready, errors, extracted_at)
    tables = [instances] + [_child_table(children[c.table], instances, c) for c in _CHILDREN]
    instances_frame, tasks, relations, upstream_flows = (
        table.to_pandas(types_mapper=pd.ArrowDtype) for table in tables
    )
    graph_errors = len(instances) - instances.column("graph_error").null_count
    return FlowTables(instances_frame, tasks, relations, upstream_flows, graph_errors)
