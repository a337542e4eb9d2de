"""Embedded graph JSON -> per-graph instance values and the tasks, relations and upstream flows.

The embedded ``graph`` JSON dominates the cost of flattening. Graphs are read in batches by
Arrow's JSON reader, which only accepts values that already have the declared types: first with
every integer field declared as the JSON type the EnOS documents give it and unknown fields
skipped; a batch that does not fit is read again with integer fields left to type inference, and
a batch refused then is read graph by graph with ``json.loads`` and lenient, per-value conversion.
Every path gives the same result for every graph it accepts, so the slower ones only cost time,
never meaning. A graph that cannot be read sets only its own ``graph_error``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from flowinst_etl.tables.schema import TABLES
from flowinst_etl.tables.values import (
    BOOL,
    FLOAT,
    INT16,
    INT64,
    TEXT,
    Invalid,
    Kind,
    Refused,
    brief,
    to_array,
)

_BATCH = 1024
_PLAIN_INT = r"^-?[0-9]+$"


@dataclass(frozen=True)
class _Field:
    """One output column read from a JSON object under any of its spellings (preferred first).

    ``sent_as`` is, for an integer column, the JSON type the documents say it comes as: a number
    (``int64``) or text (``string``); enos-api.md section 3 (``taskId`` a number in every sample,
    ``flows[].flowId`` a String, ``alertMode`` an Integer).
    """

    column: str
    keys: tuple[str, ...]
    kind: Kind
    sent_as: pa.DataType = pa.int64()


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
            _Field("flow_id", ("flowId", "flow_id"), INT64, pa.string()),
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


def _owners(value: Any) -> list[str]:
    """Graph ``owners``: ``";a;b;"`` (or a list) as names, without empty entries."""
    if isinstance(value, str):
        names: list[Any] = value.split(";")
    elif isinstance(value, list) and all(isinstance(name, str) for name in value):
        names = value
    else:
        raise Invalid(f"{brief(value)} is not a ';'-separated list of names")
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


# --- the reference reading, graph by graph ----------------------------------------------------


def _read_graph_text(text: str) -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]]]:
    """The reference reading of one graph: its per-graph values and child rows.

    Raises:
        Invalid: the graph is not a JSON object of the documented shape.
    """
    try:
        graph = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Invalid(f"not JSON: {exc}") from exc
    if not isinstance(graph, dict):
        raise Invalid(f"expected a JSON object, got {_JSON_KINDS.get(type(graph), 'null')}")
    values = {f.column: _object_value(graph, f, "") for f in _GRAPH_FIELDS}
    owners = graph.get("owners")
    try:
        values["owners"] = None if owners is None else _owners(owners)
    except Invalid as exc:
        raise Invalid(f"owners: {exc}") from exc
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
        raise Invalid(f"{key}: {brief(items)} is not a list")
    return items


def _objects(items: list[Any], key: str) -> list[dict[str, Any]]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise Invalid(f"{key}[{index}]: {brief(item)} is not an object")
    return items


def _object_value(obj: dict[str, Any], spec: _Field, where: str) -> Any:
    for key in spec.keys:
        value = obj.get(key)
        if value is not None:
            try:
                return spec.kind.convert(value)
            except Invalid as exc:
                raise Invalid(f"{where}{key}: {exc}") from exc
    return None


def _graphs_slow(rows: list[int], texts: Sequence[str]) -> _Graphs:
    """Graphs read one by one with the reference rules; a bad graph only sets its own error."""
    values: dict[str, list[Any]] = {name: [] for name in _GRAPH_VALUES}
    child_rows: dict[str, list[tuple[Any, ...]]] = {child.table: [] for child in _CHILDREN}
    for row, text in zip(rows, texts, strict=True):
        try:
            graph_values, graph_rows = _read_graph_text(text)
        except Invalid as exc:
            graph_values, graph_rows = {"graph_error": str(exc)}, {}
        for name in _GRAPH_VALUES:
            values[name].append(graph_values.get(name))
        for table, items in graph_rows.items():
            child_rows[table].extend((row, *item) for item in items)
    children = {child.table: _rows_table(child_rows[child.table], child) for child in _CHILDREN}
    arrays = {name: to_array(values[name], arrow) for name, arrow in _GRAPH_VALUES.items()}
    return _Graphs(pa.array(rows, pa.int64()), arrays, children)


def _rows_table(rows: list[tuple[Any, ...]], child: _Child) -> pa.Table:
    schema = _child_schema(child)
    columns = list(zip(*rows, strict=True)) or [()] * len(schema)
    arrays = [to_array(column, f.type) for column, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


# --- the fast reading, a batch at a time ------------------------------------------------------


def _fast_struct_type(fields: Iterable[_Field], documented: bool) -> list[pa.Field]:
    """Declared Arrow types for the fast reader. Integers come as the documents say when
    ``documented``, else they are left to inference, because the gateway sends ids both as
    numbers and as digit strings."""
    return [
        pa.field(key, f.sent_as if f.kind.bits else f.kind.arrow)
        for f in fields
        if documented or not f.kind.bits
        for key in f.keys
    ]


def _fast_options(documented: bool) -> pa_json.ParseOptions:
    """The reader's options. Inferring the types of unknown fields costs about a sixth of the
    reading, but leaving integers to inference needs it: a skipped field would read as null."""
    graph = pa.struct(
        _fast_struct_type(_GRAPH_FIELDS, documented)
        + [pa.field("owners", pa.string())]
        + [
            pa.field(c.key, pa.list_(pa.struct(_fast_struct_type(c.fields, documented))))
            for c in _CHILDREN
        ]
    )
    return pa_json.ParseOptions(
        explicit_schema=pa.schema([("i", pa.int64()), ("g", graph)]),
        unexpected_field_behavior="ignore" if documented else "infer",
    )


_AS_DOCUMENTED = _fast_options(documented=True)
_INFERRED = _fast_options(documented=False)


def _fast_cast(values: pa.Array, kind: Kind) -> pa.Array:
    if values.type == kind.arrow:
        return values
    source = values.type
    # A column inferred as floating point has lost the digits of ids beyond 2**53 (one graph
    # with an id like 5.0 is enough): only the graph-by-graph reading keeps them exact.
    if not kind.bits or not (
        pa.types.is_integer(source) or pa.types.is_null(source) or pa.types.is_string(source)
    ):
        raise Refused
    if (
        pa.types.is_string(source)
        and not pc.all(pc.match_substring_regex(values, _PLAIN_INT)).as_py()
    ):
        raise Refused
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


def _graphs_fast(rows: list[int], texts: pa.StringArray, options: pa_json.ParseOptions) -> _Graphs:
    """Graphs read as one batch by Arrow's JSON reader with ``options``.

    Raises:
        Refused: the reader's rows are not exactly the graphs (the caller falls back).
        pyarrow.ArrowException: the reader refused the batch (the caller falls back).
    """
    lines, positions = _json_lines(texts)
    table = pa_json.read_json(pa.BufferReader(lines), parse_options=options)
    if (
        table.column_names != ["i", "g"]
        or not table.column("i").combine_chunks().equals(positions)
        or table.column("g").null_count
    ):
        raise Refused
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
        raise Refused
    arrays = [pc.take(row_ids, pc.list_parent_indices(lists))]
    arrays += [_fast_column(items, f) for f in child.fields]
    return pa.Table.from_arrays(arrays, schema=_child_schema(child))


# --- all graphs of a batch of records ---------------------------------------------------------


@dataclass
class _Fit:
    """Whether the graphs read so far had their integers as documented; once a batch did not,
    the others of the same records skip straight to inference."""

    documented: bool = True


def _read_batch(rows: list[int], array: pa.StringArray, texts: _Texts, fit: _Fit) -> _Graphs:
    contiguous = rows[-1] - rows[0] + 1 == len(rows)
    batch = array.slice(rows[0], len(rows)) if contiguous else array.take(rows)
    for options in (_AS_DOCUMENTED, _INFERRED) if fit.documented else (_INFERRED,):
        try:
            return _graphs_fast(rows, batch, options)
        except (Refused, pa.ArrowException):
            fit.documented = False
    slow = batch.to_pylist() if texts is None else [texts[row] for row in rows]
    return _graphs_slow(rows, cast(list[str], slow))  # rows are those with a graph


def _no_graphs() -> _Graphs:
    return _Graphs(
        pa.array([], pa.int64()),
        {name: pa.array([], arrow) for name, arrow in _GRAPH_VALUES.items()},
        {child.table: _child_schema(child).empty_table() for child in _CHILDREN},
    )


#: The graphs as Python strings, where they differ from their Arrow array (lone surrogates).
_Texts = Sequence[str | None] | None


def read_graphs(
    array: pa.StringArray, texts: _Texts = None
) -> tuple[dict[str, pa.Array], dict[str, pa.Table]]:
    """Every graph of the records (``array``, null for none), in batches, each read fast when
    Arrow accepts it, else graph by graph from ``texts`` when given (the same graphs as sent:
    Arrow holds lone surrogates as U+FFFD), else from ``array``.

    Returns:
        The per-graph values aligned with the records (``creator``, ``alert_mode``, ``owners``,
        ``task_count``, ``graph_error``), and the child tables keyed by table name, each with a
        ``row`` column for :func:`child_tables`.
    """
    present = pc.indices_nonzero(pc.is_valid(array)).to_pylist()
    batches = [present[start : start + _BATCH] for start in range(0, len(present), _BATCH)]
    fit = _Fit()
    # Two batches in flight keep Arrow's reader threads busy between batches.
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = [
            _no_graphs(),
            *pool.map(lambda rows: _read_batch(rows, array, texts, fit), batches),
        ]
    rows = pa.concat_arrays([part.rows for part in parts]).to_numpy()
    position = np.full(len(array), -1, dtype=np.int64)
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


def child_tables(children: dict[str, pa.Table], instances: pa.Table) -> list[pa.Table]:
    """The tasks, relations and upstream-flows tables, in pinned column order.

    Args:
        children: the child tables from :func:`read_graphs`.
        instances: the ``flow_instances`` table, for the columns each child row takes from its
            instance (its ``row`` is the instance's position).
    """
    return [_child_table(children[child.table], instances, child) for child in _CHILDREN]


def _child_table(part: pa.Table, instances: pa.Table, child: _Child) -> pa.Table:
    rows = part.column("row")
    columns = {name: part.column(name) for name in part.column_names if name != "row"}
    columns.update({name: pc.take(instances.column(name), rows) for name in child.inherited})
    schema = TABLES[child.table]
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
