"""The tables as Dagster's catalog shows them: the columns of the pinned Arrow schemas, described
as docs/tables.md describes them, the table's name and where it lives.

docs/tables.md is the one place a column is explained; it ships inside this package as
``tables.md`` (a link to the page), so an installed code location reads the same text.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from importlib.resources import files
from typing import Any

import dagster as dg
import pyarrow as pa

from flowinst_etl.store import table_uri
from flowinst_etl.tables.schema import TABLES

COLUMN_SCHEMA = "dagster/column_schema"
TABLE_NAME = "dagster/table_name"
URI = "dagster/uri"
ROW_COUNT = "dagster/row_count"
PARTITION_ROW_COUNT = "dagster/partition_row_count"
#: A ``|`` between two cells of a Markdown table row (``\|`` is a pipe inside a cell).
_CELL_BORDER = re.compile(r"(?<!\\)\|")


def column_descriptions(page: str) -> dict[str, dict[str, str]]:
    """Each table's column descriptions from a page laid out as docs/tables.md: under a
    ``## `table` `` heading, rows ``| `column` | type | from | meaning |`` (one row may name
    several columns, as ``| `x`, `y` | …``). A description is the meaning, then the source field.

    Raises:
        ValueError: a row of a table section does not have four cells.
    """
    found: dict[str, dict[str, str]] = {}
    table = None
    for line in page.splitlines():
        if line.startswith("## "):
            name = line[3:].strip().strip("`")
            table = name if name in TABLES else None
        elif table and line.startswith("| `"):
            cells = [cell.strip() for cell in _CELL_BORDER.split(line.strip()[1:-1])]
            if len(cells) != 4:
                raise ValueError(f"docs/tables.md, table {table}: not 4 cells: {line}")
            names, _, source, meaning = cells
            parts = [meaning] if meaning else []
            if source:
                parts.append(f"from {source}")
            for column in names.split(", "):
                found.setdefault(table, {})[column.strip("`")] = "; ".join(parts)
    return found


@cache
def _documented() -> dict[str, dict[str, str]]:
    return column_descriptions(files("pipelines").joinpath("tables.md").read_text("utf-8"))


def type_name(arrow_type: pa.DataType) -> str:
    """An Arrow type as the catalog shows it: Arrow's name, lists as ``list<string>`` (a file
    read back calls the list's item ``element``, the pinned schema ``item``; it is one type)."""
    if pa.types.is_list(arrow_type):
        return f"list<{type_name(arrow_type.value_type)}>"
    return str(arrow_type)


def column_schema(table: str) -> dg.TableSchema:
    """The table's columns as written to every Parquet file: names, Arrow types, descriptions.

    Raises:
        KeyError: the table, or one of its columns, is not described in docs/tables.md.
    """
    described = _documented()[table]
    return dg.TableSchema(
        columns=[
            dg.TableColumn(field.name, type_name(field.type), description=described[field.name])
            for field in TABLES[table]
        ]
    )


def table_metadata(table: str, root: str) -> dict[str, Any]:
    """Definition metadata of a table: its columns, name and folder under the dataset root."""
    return {
        COLUMN_SCHEMA: column_schema(table),
        TABLE_NAME: table,
        URI: table_uri(root, table),
    }


def day_metadata(table: str, root: str, day: date, rows: int) -> dict[str, Any]:
    """Materialization metadata of one committed day of a table: its columns, name, partition
    folder and rows (``dagster/row_count`` too, which the UI shows: the rows of that day)."""
    return {
        COLUMN_SCHEMA: column_schema(table),
        TABLE_NAME: table,
        URI: table_uri(root, table, day),
        ROW_COUNT: dg.MetadataValue.int(rows),
        PARTITION_ROW_COUNT: dg.MetadataValue.int(rows),
    }
