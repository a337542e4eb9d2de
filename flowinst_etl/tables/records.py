"""Record fields -> the ``flow_instances`` table, with server times as UTC and misfits noted.

A value that does not fit its column becomes null and the reason goes to ``record_error``; record
fields without a column are kept as JSON in ``extra``, so a new gateway field is never lost.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from flowinst_etl.model import FoundInstance
from flowinst_etl.tables.schema import FLOW_INSTANCES, UTC_MS
from flowinst_etl.tables.values import (
    BOOL,
    INT8,
    INT16,
    INT64,
    JSON_TEXT,
    TEXT,
    Errors,
    Invalid,
    Kind,
    Refused,
    brief,
    converted,
    may_be_non_standard_json,
    standard_json,
    to_array,
)
from flowinst_etl.windows import server_time_to_utc

_PLAIN_TIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$"
_EARLIEST = pa.scalar(datetime(1, 1, 1), pa.timestamp("us"))
_LATEST = pa.scalar(datetime(9999, 12, 31, 23, 59, 59, 999999), pa.timestamp("us"))

#: Record keys read into columns: (API key, output column or None when derived later, kind).
_RECORD_FIELDS: tuple[tuple[str, str | None, Kind], ...] = (
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


#: A converted record field: the values as a list (the reference reading) or an Arrow array of
#: the field's type (the fast reading, or the list made into one).
Column: TypeAlias = list[Any] | pa.Array


@dataclass(frozen=True)
class RecordFields:
    """The known fields of a batch of records, converted; kept until the graphs are read, because
    the ``flow_instances`` table needs both.

    Attributes:
        records: the records as plain dicts, in input order.
        types: the scheduling type each record was found with.
        columns: every known field, converted, keyed by its API key.
        ready: output columns already built as arrays (the UTC times and ``graph``).
        errors: why values became null, per record position; ends up in ``record_error``.
    """

    records: list[dict[Any, Any]]
    types: list[Any]
    columns: dict[str, Column]
    ready: dict[str, pa.Array]
    errors: Errors

    @property
    def graph_texts(self) -> list[str | None] | None:
        """Each record's graph JSON text (``None`` where it has none) when the graphs were read
        value by value; ``None`` when :attr:`graph_array` holds them exactly as sent."""
        graphs = self.columns["graph"]
        return graphs if isinstance(graphs, list) else None

    @property
    def graph_array(self) -> pa.StringArray:
        """The graph texts as an Arrow array."""
        return self.ready["graph"]


def read_records(found: Iterable[FoundInstance], server_tz: tzinfo) -> RecordFields:
    """The known fields of the records, converted; never raises on a record.

    Text and boolean fields are read by Arrow in one pass when every value already has its
    column's type (the usual record); otherwise every field is read value by value with the
    lenient rules of :mod:`.values`. Both give the same values for every record the fast
    reading accepts, so it only saves time. Integer fields are always read value by value:
    Arrow would take an integral float beyond 2**53 that the lenient rules refuse.

    Args:
        found: the records, each with the scheduling type of the query that found it.
        server_tz: the gateway's timezone; record time strings are local times there.
    """
    errors: Errors = defaultdict(list)
    records, types = _as_dicts(found, errors)
    columns: dict[str, Column] = _fast_columns(records)
    for key, _, kind in _RECORD_FIELDS:
        if key not in columns:
            columns[key] = converted([record.get(key) for record in records], kind, key, errors)
    ready = {name: _utc(columns[key], server_tz, key, errors) for name, key in _TIMES.items()}
    ready["graph"] = _array(columns["graph"], pa.string())
    return RecordFields(records, types, columns, ready, errors)


_FAST_FIELDS = tuple((key, kind) for key, _, kind in _RECORD_FIELDS if not kind.bits)
_FAST_STRUCT = pa.struct([(key, kind.arrow) for key, kind in _FAST_FIELDS])


def _fast_columns(records: list[dict[Any, Any]]) -> dict[str, pa.Array]:
    """The text and boolean fields read by Arrow, or nothing when a value would need converting.

    Of the values JSON decoders make (:func:`_json_shaped`), Arrow takes only ``str`` (or
    ``None``) into a string field and only ``bool`` into a boolean one, exactly the values those
    kinds keep as they are; a JSON text holding NaN, Infinity or a huge number needs rewriting,
    and lone surrogates need replacing: both are left to the value-by-value reading.
    """
    if not _json_shaped(records):
        return {}
    try:
        struct = pa.array(records, _FAST_STRUCT)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return {}
    if not isinstance(struct, pa.StructArray):  # text beyond one array's 2 GB: chunked
        return {}
    columns = {key: struct.field(key) for key, _ in _FAST_FIELDS}
    for key, kind in _FAST_FIELDS:
        if kind is JSON_TEXT and pc.any(may_be_non_standard_json(columns[key])).as_py():
            return {}
    return columns


_JSON_TYPES = frozenset({str, int, float, bool, type(None), list, dict})


def _json_shaped(records: list[dict[Any, Any]]) -> bool:
    """Whether every record is a plain dict with text keys holding only what JSON decoders make.

    Arrow's conversion matches the lenient rules only there: it also takes ``bytes`` as text and
    NumPy booleans as booleans, reads a dict's storage past an overridden ``get``, and picks the
    key type of a whole batch from one record (a record with ``bytes`` keys would blank the rest).
    """
    key_types: set[type] = set()
    value_types: set[type] = set()
    for record in records:
        if type(record) is not dict:
            return False
        key_types.update(map(type, record))
        value_types.update(map(type, record.values()))
    return key_types <= {str} and value_types <= _JSON_TYPES


def _array(column: Column, arrow: pa.DataType) -> pa.Array:
    return column if isinstance(column, pa.Array) else to_array(column, arrow)


def _as_dicts(
    found: Iterable[FoundInstance], errors: Errors
) -> tuple[list[dict[Any, Any]], list[Any]]:
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


def _utc(texts: Column, server_tz: tzinfo, label: str, errors: Errors) -> pa.Array:
    """Server-local time strings as UTC instants (``UTC_MS``); unreadable ones become null."""
    offset = server_tz.utcoffset(None)
    if offset is not None:
        try:
            return _utc_vectorised(texts, offset)
        except (Refused, pa.ArrowInvalid, UnicodeEncodeError):
            pass
    out: list[datetime | None] = []
    for row, text in enumerate(texts.to_pylist() if isinstance(texts, pa.Array) else texts):
        try:
            out.append(server_time_to_utc(text, server_tz))
        except (ValueError, OverflowError):
            out.append(None)
            errors[row].append(f"{label}: {brief(text)} is not a 'yyyy-MM-dd HH:mm:ss' time")
    return pa.array(out, UTC_MS)


def _utc_vectorised(texts: Column, offset: timedelta) -> pa.Array:
    """The fixed-offset case in Arrow, for columns where every value has the plain form."""
    raw = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    raw = pc.if_else(pc.equal(raw, ""), pa.scalar(None, pa.string()), raw)
    if not pc.all(pc.match_substring_regex(raw, _PLAIN_TIME)).as_py():
        raise Refused
    utc = pc.subtract(raw.cast(pa.timestamp("us")), pa.scalar(offset, pa.duration("us")))
    if pc.any(pc.or_(pc.less(utc, _EARLIEST), pc.greater(utc, _LATEST))).as_py():
        raise Refused
    floored = pc.floor_temporal(utc, unit="millisecond")
    return floored.cast(pa.timestamp("ms")).cast(UTC_MS)


def _extra(record: dict[Any, Any], row: int, errors: Errors) -> str | None:
    """Record fields this version has no column for, as standard JSON text, so new fields are
    kept; NaN and infinities become null (noted), values JSON cannot hold their ``repr``."""
    if _KNOWN_KEYS.issuperset(record):  # the usual record: no set built to learn it
        return None
    unknown = record.keys() - _KNOWN_KEYS
    extra = {str(key): record[key] for key in unknown}
    try:
        return standard_json(extra, sort_keys=True)
    except Invalid as exc:
        if exc.replacement is not None:
            errors[row].append(f"extra: {exc}")
            return str(exc.replacement)
        return json.dumps({key: repr(value) for key, value in extra.items()}, sort_keys=True)


def instances_table(
    fields: RecordFields, graph_values: dict[str, pa.Array], extracted_at: datetime
) -> pa.Table:
    """The ``flow_instances`` table: the record fields joined with their graphs' values.

    Args:
        fields: from :func:`read_records`.
        graph_values: the per-graph values from :func:`flowinst_etl.tables.graphs.read_graphs`.
        extracted_at: when the records were fetched; timezone-aware.
    """
    columns, records, errors = fields.columns, fields.records, fields.errors
    arrays = {
        column: _array(columns[key], FLOW_INSTANCES.field(column).type)
        for key, column, _ in _RECORD_FIELDS
        if column is not None and column not in fields.ready
    }
    arrays.update(fields.ready)
    arrays["type"] = to_array(converted(fields.types, INT8, "scheduling_type", errors), pa.int8())
    arrays.update(graph_values)
    arrays["alert_mode"] = pc.coalesce(
        _array(columns["alertMode"], pa.int16()), graph_values["alert_mode"]
    )
    arrays["graph_error"] = pc.if_else(
        pc.is_null(arrays["graph"]), "no graph in the record", graph_values["graph_error"]
    )
    extras = [_extra(record, row, errors) for row, record in enumerate(records)]
    arrays["extra"] = to_array(extras, pa.string())
    reasons: list[str | None] = [None] * len(records)
    for row, reasons_of_row in errors.items():
        reasons[row] = "; ".join(reasons_of_row)
    arrays["record_error"] = to_array(reasons, pa.string())
    moment = pa.scalar(extracted_at.astimezone(timezone.utc), UTC_MS)
    arrays["extracted_at"] = pa.repeat(moment, len(records))
    return pa.Table.from_arrays(
        [arrays[name] for name in FLOW_INSTANCES.names], schema=FLOW_INSTANCES
    )
