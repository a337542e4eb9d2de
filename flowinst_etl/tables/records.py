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
from typing import Any

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
    columns: dict[str, list[Any]]
    ready: dict[str, pa.Array]
    errors: Errors

    @property
    def graph_texts(self) -> list[str | None]:
        """Each record's graph JSON text, ``None`` where it has none."""
        return self.columns["graph"]

    @property
    def graph_array(self) -> pa.StringArray:
        """The same graph texts as an Arrow array."""
        return self.ready["graph"]


def read_records(found: Iterable[FoundInstance], server_tz: tzinfo) -> RecordFields:
    """The known fields of the records, converted; never raises on a record.

    Args:
        found: the records, each with the scheduling type of the query that found it.
        server_tz: the gateway's timezone; record time strings are local times there.
    """
    errors: Errors = defaultdict(list)
    records, types = _as_dicts(found, errors)
    columns = {
        key: converted([record.get(key) for record in records], kind, key, errors)
        for key, _, kind in _RECORD_FIELDS
    }
    ready = {name: _utc(columns[key], server_tz, key, errors) for name, key in _TIMES.items()}
    ready["graph"] = to_array(columns["graph"], pa.string())
    return RecordFields(records, types, columns, ready, errors)


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


def _utc(texts: list[str | None], server_tz: tzinfo, label: str, errors: Errors) -> pa.Array:
    """Server-local time strings as UTC instants (``UTC_MS``); unreadable ones become null."""
    offset = server_tz.utcoffset(None)
    if offset is not None:
        try:
            return _utc_vectorised(texts, offset)
        except (Refused, pa.ArrowInvalid, UnicodeEncodeError):
            pass
    out: list[datetime | None] = []
    for row, text in enumerate(texts):
        try:
            out.append(server_time_to_utc(text, server_tz))
        except (ValueError, OverflowError):
            out.append(None)
            errors[row].append(f"{label}: {brief(text)} is not a 'yyyy-MM-dd HH:mm:ss' time")
    return pa.array(out, UTC_MS)


def _utc_vectorised(texts: list[str | None], offset: timedelta) -> pa.Array:
    """The fixed-offset case in Arrow, for columns where every value has the plain form."""
    raw = pa.array(texts, pa.string())
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
        column: to_array(columns[key], FLOW_INSTANCES.field(column).type)
        for key, column, _ in _RECORD_FIELDS
        if column is not None and column not in fields.ready
    }
    arrays.update(fields.ready)
    arrays["type"] = to_array(converted(fields.types, INT8, "scheduling_type", errors), pa.int8())
    arrays.update(graph_values)
    arrays["alert_mode"] = pc.coalesce(
        to_array(columns["alertMode"], pa.int16()), graph_values["alert_mode"]
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
