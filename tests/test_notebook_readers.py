"""The reading recipes of docs/tables.md run as printed and keep the pinned types."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from flowinst_etl.store import write_day
from flowinst_etl.tables.flatten import flatten_instances
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records

DOC = Path(__file__).parents[1] / "docs" / "tables.md"
DAYS = {date(2019, 8, 12): 7, date(2019, 8, 13): 0}
FIRST_TRIGGER = datetime(2019, 8, 11, 16, 0, tzinfo=timezone.utc)  # 2019-08-12 00:00:00 GMT+8


def recipes() -> dict[str, str]:
    """The python snippets under "Reading the tables", by the heading above each."""
    section = DOC.read_text(encoding="utf-8").split("## Reading the tables", 1)[1]
    found = re.findall(r"^### (\w+)\n.*?```python\n(.*?)```", section, re.MULTILINE | re.DOTALL)
    return dict(found)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("dataset")
    for day, count in DAYS.items():
        tables = flatten_instances(day_records(count, day.isoformat()), GMT8, EXTRACTED_AT)
        write_day(str(folder), day, tables.as_dict(), {"instances": count})
    partition = folder / "flow_instances" / "trigger_date=2019-08-12"
    (partition / ".part-0.parquet.crashed.tmp").write_bytes(b"an unfinished write")
    unfinished = folder / "flow_instances" / "trigger_date=2019-08-14"
    unfinished.mkdir()
    (unfinished / ".part-0.parquet.crashed.tmp").write_bytes(b"a first write that never ended")
    return str(folder)


def run(recipe: str, root: str) -> object:
    namespace = {"root": root}
    exec(recipes()[recipe], namespace)  # noqa: S102 - the documented snippet, run as printed
    return namespace["instances"]


def test_the_doc_has_the_three_recipes() -> None:
    assert list(recipes()) == ["pandas", "DuckDB", "Polars"]


def test_pandas_recipe(root: str) -> None:
    instances = run("pandas", root)

    assert isinstance(instances, pd.DataFrame) and len(instances) == 7
    assert instances["trigger_time"].dtype == pd.ArrowDtype(pa.timestamp("ms", tz="UTC"))
    assert instances["flow_id"].dtype == pd.ArrowDtype(pa.int64())
    assert instances["type"].dtype == pd.ArrowDtype(pa.int8())
    assert instances["trigger_date"].dtype == pd.ArrowDtype(pa.date32())
    assert instances["trigger_time"].min() == pd.Timestamp(FIRST_TRIGGER)


def test_duckdb_recipe(root: str) -> None:
    instances = run("DuckDB", root)

    assert isinstance(instances, duckdb.DuckDBPyRelation)
    types = dict(zip(instances.columns, map(str, instances.types), strict=True))
    assert types["trigger_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["flow_id"] == "BIGINT" and types["type"] == "TINYINT"
    assert types["owners"] == "VARCHAR[]" and types["trigger_date"] == "DATE"
    [(first, count)] = instances.aggregate("min(trigger_time), count(*)").fetchall()
    assert first == FIRST_TRIGGER and count == 7


def test_polars_recipe(root: str) -> None:
    instances = run("Polars", root)

    assert isinstance(instances, pl.DataFrame) and instances.height == 7
    assert instances.schema["trigger_time"] == pl.Datetime("ms", "UTC")
    assert instances.schema["flow_id"] == pl.Int64 and instances.schema["type"] == pl.Int8
    assert instances.schema["owners"] == pl.List(pl.String)
    assert instances.schema["trigger_date"] == pl.Date
    assert instances["trigger_time"].min() == FIRST_TRIGGER
