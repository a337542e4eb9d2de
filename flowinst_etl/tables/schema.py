"""The pinned Arrow schema of every output table.

Every Parquet file is written with exactly these schemas, so partitions written on different days,
by different versions of the extractor, or holding no rows at all read back as one dataset with one
type per column. Column names are a contract with the notebooks and checks that read the tables:
change them only together with a new dataset version.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pyarrow as pa

from flowinst_etl.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

#: Instants are UTC with millisecond precision (server strings carry at most ``.S`` fractions).
UTC_MS = pa.timestamp("ms", tz="UTC")

FLOW_INSTANCES = pa.schema(
    [
        pa.field("instance_id", pa.string()),
        pa.field("flow_id", pa.int64()),
        pa.field("flow_name", pa.string()),
        pa.field("type", pa.int8()),
        pa.field("status", pa.int16()),
        pa.field("status_desc", pa.string()),
        pa.field("trigger_time", UTC_MS),
        pa.field("trigger_time_raw", pa.string()),
        pa.field("start_time", UTC_MS),
        pa.field("end_time", UTC_MS),
        pa.field("created_at", UTC_MS),
        pa.field("freq", pa.string()),
        pa.field("cycle", pa.string()),
        pa.field("parameters", pa.string()),
        pa.field("do_as", pa.string()),
        pa.field("owner", pa.string()),
        pa.field("virtual", pa.bool_()),
        pa.field("has_edit_pri", pa.bool_()),
        pa.field("has_read_pri", pa.bool_()),
        pa.field("is_cancelled", pa.bool_()),
        pa.field("creator", pa.string()),
        pa.field("alert_mode", pa.int16()),
        pa.field("owners", pa.list_(pa.string())),
        pa.field("task_count", pa.int32()),
        pa.field("graph", pa.string()),
        pa.field("graph_error", pa.string()),
        pa.field("record_error", pa.string()),
        pa.field("extra", pa.string()),
        pa.field("extracted_at", UTC_MS),
    ]
)

FLOW_INSTANCE_TASKS = pa.schema(
    [
        pa.field("instance_id", pa.string()),
        pa.field("flow_id", pa.int64()),
        pa.field("task_id", pa.int64()),
        pa.field("task_name", pa.string()),
        pa.field("task_inst_id", pa.string()),
        pa.field("node_id", pa.string()),
        pa.field("x", pa.float64()),
        pa.field("y", pa.float64()),
        pa.field("status", pa.string()),
    ]
)

FLOW_INSTANCE_RELATIONS = pa.schema(
    [
        pa.field("instance_id", pa.string()),
        pa.field("source_node_id", pa.string()),
        pa.field("target_node_id", pa.string()),
        pa.field("cycle_gap", pa.string()),
        pa.field("rerun", pa.bool_()),
    ]
)

FLOW_INSTANCE_UPSTREAM_FLOWS = pa.schema(
    [
        pa.field("instance_id", pa.string()),
        pa.field("flow_id", pa.int64()),
        pa.field("flow_name", pa.string()),
        pa.field("node_id", pa.string()),
        pa.field("flow_inst_id", pa.string()),
        pa.field("is_virtual", pa.bool_()),
        pa.field("status", pa.string()),
    ]
)

#: Every output table by name, in the order they are written and documented.
TABLES: dict[str, pa.Schema] = {
    "flow_instances": FLOW_INSTANCES,
    "flow_instance_tasks": FLOW_INSTANCE_TASKS,
    "flow_instance_relations": FLOW_INSTANCE_RELATIONS,
    "flow_instance_upstream_flows": FLOW_INSTANCE_UPSTREAM_FLOWS,
}


def schema_fingerprint(schema: pa.Schema) -> str:
    """A stable hash of a schema's column names, types and nullability.

    Schema metadata (such as the pandas block pyarrow may attach) is ignored, so a file written from
    a DataFrame and one written from an Arrow table have the same fingerprint.

    Args:
        schema: the schema to hash.

    Returns:
        ``sha256:`` followed by 16 hex digits.
    """
    text = "\n".join(f"{field.name}:{field.type}:{field.nullable}" for field in schema)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def table_schema(table: str) -> pa.Schema:
    """The pinned schema of one output table.

    Raises:
        ConfigError: no table has that name.
    """
    schema = TABLES.get(table)
    if schema is None:
        raise ConfigError(f"unknown table {table!r}: expected one of {', '.join(TABLES)}")
    return schema


def conform(table: str, data: pa.Table | pd.DataFrame) -> pa.Table:
    """``data`` as an Arrow table with exactly the pinned schema of ``table``.

    Columns are put in schema order and cast safely (no silent truncation); the pandas index and
    pandas metadata are dropped.

    Args:
        table: an output table name, a key of :data:`TABLES`.
        data: an Arrow table or a DataFrame with exactly the table's columns.

    Returns:
        The data with the pinned schema and no schema metadata.

    Raises:
        ConfigError: the table name is unknown, or the data's columns are missing, extra or of
            values that do not fit the pinned types.
    """
    schema = table_schema(table)
    try:
        arrow = (
            data
            if isinstance(data, pa.Table)
            else pa.Table.from_pandas(data, preserve_index=False, nthreads=1)
        )
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise ConfigError(f"table {table}: cannot convert to Arrow: {exc}") from exc
    missing = [name for name in schema.names if name not in arrow.column_names]
    extra = [name for name in arrow.column_names if name not in schema.names]
    if missing or extra:
        raise ConfigError(
            f"table {table}: columns do not match the pinned schema "
            f"(missing {missing}, unexpected {extra})"
        )
    try:
        return arrow.select(schema.names).cast(schema)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise ConfigError(f"table {table}: values do not fit the pinned schema: {exc}") from exc
