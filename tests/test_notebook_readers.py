"""The reading recipes of docs/tables.md run as printed: every reader gets every row of the
committed days, ``trigger_date`` as a date, a working date filter and the pinned types."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowinst_etl.store import read_table, repair, write_day
from flowinst_etl.tables.flatten import flatten_instances
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records
from tests.fixtures.old_layout import write_old_layout

DOC = Path(__file__).parents[1] / "docs" / "tables.md"
DELTA_DOC = Path(__file__).parents[1] / "docs" / "delta.md"
# Instances per day; the recipes filter on trigger_date >= 2019-08-13.
DAYS = {date(2019, 8, 12): 7, date(2019, 8, 13): 0, date(2019, 8, 14): 4}
ALL_ROWS, SINCE_13TH = 11, 4
FIRST_TRIGGER = datetime(2019, 8, 11, 16, 0, tzinfo=timezone.utc)  # 2019-08-12 00:00:00 GMT+8
READERS = ["read_table", "dataset", "pyarrow", "pandas", "DuckDB", "Polars"]
DELTA_READERS = ["read_table", "dataset", "deltalake", "Polars"]
DUCKDB_GLOBS = ["*/*.parquet", "*/*", "**"]


def recipes(doc: Path = DOC, section: str = "## Reading the tables") -> dict[str, str]:
    """The python snippets under ``section`` of ``doc``, by the heading above each."""
    text = doc.read_text(encoding="utf-8").split(section, 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^### (\w+)\n.*?```python\n(.*?)```", text, re.MULTILINE | re.DOTALL)
    return dict(found)


def delta_recipes() -> dict[str, str]:
    return recipes(DELTA_DOC, "## Reading Delta tables")


#: Days the previous layout wrote, in the root migrated by the first run of this version.
OLD_DAYS = {date(2019, 8, 12), date(2019, 8, 14)}


@pytest.fixture(scope="module", params=["written", "migrated"])
def root(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """A root written by this version, or one of the previous layout where a run (which
    repairs first) wrote only one new day."""
    return parquet_root(tmp_path_factory.mktemp("dataset"), migrated=request.param == "migrated")


@pytest.fixture(scope="module")
def written_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Parquet root written by this version."""
    return parquet_root(tmp_path_factory.mktemp("dataset"), migrated=False)


def parquet_root(folder: Path, migrated: bool) -> str:
    """:func:`root` in ``folder``."""
    tables = {
        day: flatten_instances(day_records(count, day.isoformat()), GMT8, EXTRACTED_AT)
        for day, count in DAYS.items()
    }
    old = OLD_DAYS if migrated else set()
    for day in old:
        write_old_layout(folder, day, tables[day])
    repair(str(folder))
    for day in DAYS.keys() - old:
        write_day(str(folder), day, tables[day].as_dict(), {"instances": DAYS[day]})
    # What a crashed write leaves outside the table folders must not reach any reader.
    staged = folder / "_flowinst" / "staging" / "2019-08-15" / "crashed" / "flow_instances"
    staged.mkdir(parents=True)
    (staged / "part-crashed.parquet").write_bytes(b"an unfinished write")
    return str(folder)


def run(recipe: str, root: str, found: dict[str, str] | None = None) -> dict[str, Any]:
    namespace: dict[str, Any] = {"root": root}
    snippet = (found or recipes())[recipe]
    exec(snippet, namespace)  # noqa: S102 - the documented snippet, run as printed
    return namespace


def as_arrow(result: object) -> pa.Table:
    """Any reader's result as an Arrow table (DuckDB and Polars hand theirs over as Arrow)."""
    if isinstance(result, pd.DataFrame):
        return pa.Table.from_pandas(result, preserve_index=False)
    if isinstance(result, duckdb.DuckDBPyRelation):
        return result.to_arrow_table()
    if isinstance(result, pl.DataFrame):
        return result.to_arrow()
    assert isinstance(result, pa.Table), type(result)
    return result


def days_of(table: pa.Table) -> list[date]:
    """The ``trigger_date`` of each row, as a date whether read as a date or a datetime."""
    return pc.cast(table.column("trigger_date"), pa.date32()).to_pylist()


def test_the_doc_has_a_recipe_for_every_reader() -> None:
    assert list(recipes()) == READERS
    assert list(delta_recipes()) == DELTA_READERS


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_reads_every_row_with_a_date_partition_and_filters_by_date(
    reader: str, root: str
) -> None:
    namespace = run(reader, root)
    every, filtered = as_arrow(namespace["instances"]), as_arrow(namespace["since_13th"])

    assert every.num_rows == ALL_ROWS
    # pandas has no date type: read_table's day is a datetime at midnight (see below)
    day_type = pa.timestamp("ms") if reader == "read_table" else pa.date32()
    assert every.schema.field("trigger_date").type == day_type
    counts = pd.Series(days_of(every)).value_counts().to_dict()
    assert counts == {day: count for day, count in DAYS.items() if count}
    assert filtered.num_rows == SINCE_13TH
    assert set(days_of(filtered)) == {date(2019, 8, 14)}
    assert every.schema.field("trigger_time").type == pa.timestamp("ms", tz="UTC") or (
        reader == "DuckDB" and pa.types.is_timestamp(every.schema.field("trigger_time").type)
    )
    assert min(every.column("trigger_time").to_pylist()) == FIRST_TRIGGER


@pytest.mark.parametrize("glob", DUCKDB_GLOBS)
def test_duckdb_reads_the_same_rows_through_every_glob(glob: str, root: str) -> None:
    recipe = recipes()["DuckDB"].replace("*/*.parquet", glob)
    namespace: dict[str, Any] = {"root": root}
    exec(recipe, namespace)  # noqa: S102 - the documented snippet with another glob

    relation = namespace["instances"]
    types = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert types["trigger_date"] == "DATE" and types["trigger_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["flow_id"] == "BIGINT" and types["owners"] == "VARCHAR[]"
    assert namespace["instances"].aggregate("count(*)").fetchall() == [(ALL_ROWS,)]
    assert namespace["since_13th"].aggregate("count(*)").fetchall() == [(SINCE_13TH,)]


def test_polars_keeps_the_pinned_types(root: str) -> None:
    instances = run("Polars", root)["instances"]

    assert instances.schema["trigger_time"] == pl.Datetime("ms", "UTC")
    assert instances.schema["flow_id"] == pl.Int64 and instances.schema["type"] == pl.Int8
    assert instances.schema["owners"] == pl.List(pl.String)
    assert instances.schema["trigger_date"] == pl.Date


def test_read_table_keeps_the_pinned_types(root: str) -> None:
    instances = run("read_table", root)["instances"]

    assert instances["trigger_time"].dtype == pd.ArrowDtype(pa.timestamp("ms", tz="UTC"))
    assert instances["flow_id"].dtype == pd.ArrowDtype(pa.int64())
    assert instances["type"].dtype == pd.ArrowDtype(pa.int8())
    assert instances["trigger_date"].dtype == np.dtype("datetime64[ms]")


#: How pandas users write a filter on the day, each meaning "from 2019-08-13 on".
SINCE_13TH_FILTERS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "a string": lambda f: f[f.trigger_date >= "2019-08-13"],
    "a Timestamp": lambda f: f[f.trigger_date >= pd.Timestamp("2019-08-13")],
    "a datetime": lambda f: f[f.trigger_date >= datetime(2019, 8, 13)],
    "a numpy datetime64": lambda f: f[f.trigger_date >= np.datetime64("2019-08-13")],
    "between two strings": lambda f: f[f.trigger_date.between("2019-08-13", "2019-08-31")],
    "a query": lambda f: f.query("trigger_date >= '2019-08-13'"),
}


@pytest.mark.parametrize("how", SINCE_13TH_FILTERS)
def test_read_table_filters_by_day_the_way_pandas_users_write_it(how: str, root: str) -> None:
    chosen = SINCE_13TH_FILTERS[how](run("read_table", root)["instances"])

    assert len(chosen) == SINCE_13TH
    assert set(chosen.trigger_date.dt.date) == {date(2019, 8, 14)}


def test_read_table_days_equal_strings_and_refuse_plain_dates_loudly(root: str) -> None:
    day = run("read_table", root)["instances"].trigger_date

    assert (day == "2019-08-14").sum() == DAYS[date(2019, 8, 14)]
    assert day.dt.strftime("%Y-%m-%d").tolist().count("2019-08-12") == DAYS[date(2019, 8, 12)]
    # a datetime.date does not compare with any pandas datetime; ordering says so
    with pytest.raises(TypeError, match="Invalid comparison"):
        _ = day >= date(2019, 8, 13)


def test_while_a_day_is_rewritten_read_table_is_exact_and_globs_do_as_documented(
    tmp_path: Path,
) -> None:
    day, count = date(2019, 8, 12), 30
    tables = flatten_instances(day_records(count, day.isoformat()), GMT8, EXTRACTED_AT).as_dict()
    root = str(tmp_path)
    write_day(root, day, tables, {"instances": count})
    stop, rewrites = threading.Event(), [0]

    def rewrite() -> None:
        while not stop.wait(0.005):
            write_day(root, day, tables, {"instances": count})
            rewrites[0] += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    glob = f"SELECT count(*) FROM read_parquet('{root}/flow_instances/*/*.parquet')"
    seen: Counter[str] = Counter()
    try:
        for _ in range(100):
            assert len(read_table("flow_instances", root)) == count
            try:
                with duckdb.connect() as connection:
                    rows = connection.execute(glob).fetchone()
                seen[{count: "once", 2 * count: "twice"}[rows[0] if rows else 0]] += 1
            except duckdb.IOException as exc:
                assert "Cannot open file" in str(exc) and "No such file" in str(exc), exc
                seen["failed"] += 1
    finally:
        stop.set()
        writer.join()
    assert rewrites[0] > 10 and seen["once"] > 0, (rewrites, seen)


def test_links_into_the_tables_doc_point_at_its_headings() -> None:
    headings = re.findall(r"^#+ (.+)$", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    anchors = {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\(#([\w-]+)\)", DOC.read_text(encoding="utf-8"))
    linked += re.findall(r"\]\(docs/tables\.md#([\w-]+)\)", readme)
    assert "what-glob-readers-see-while-a-day-is-written" in linked
    assert set(linked) <= anchors, set(linked) - anchors


@pytest.fixture(scope="module")
def delta_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A root of Delta tables where every day was written twice (the first write's files are
    still on disk, as until a vacuum) and a write was killed before its commit."""
    folder = tmp_path_factory.mktemp("delta")
    for _ in range(2):
        for day, count in DAYS.items():
            tables = flatten_instances(day_records(count, day.isoformat()), GMT8, EXTRACTED_AT)
            write_day(str(folder), day, tables.as_dict(), {}, table_format="delta")
    uncommitted = folder / "flow_instances" / "trigger_date=2019-08-14" / "part-killed.parquet"
    uncommitted.write_bytes(next(uncommitted.parent.iterdir()).read_bytes())
    return str(folder)


#: Printed after a recipe run in a process of its own: the row counts of its two results.
COUNTS = """
import json

def rows(result):
    if hasattr(result, "fetchall"):  # a DuckDB relation
        return result.aggregate("count(*)").fetchall()[0][0]
    return getattr(result, "num_rows", None) or getattr(result, "height", None) or len(result)

print(json.dumps([rows(instances), rows(since_13th)]))
"""


def run_in_process(recipe: str, root: str) -> list[int]:
    """The recipe run as a script of its own; its row counts, once it has exited 0."""
    script = f"root = {root!r}\n{recipe}\n{COUNTS}"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("reader", DELTA_READERS)
def test_every_delta_reader_reads_each_day_once_and_filters_by_date(
    reader: str, delta_root: str
) -> None:
    namespace = run(reader, delta_root, delta_recipes())
    every, filtered = as_arrow(namespace["instances"]), as_arrow(namespace["since_13th"])

    assert every.num_rows == ALL_ROWS
    day_type = pa.timestamp("ms") if reader == "read_table" else pa.date32()  # as above
    assert every.schema.field("trigger_date").type == day_type
    counts = pd.Series(days_of(every)).value_counts().to_dict()
    assert counts == {day: count for day, count in DAYS.items() if count}
    assert filtered.num_rows == SINCE_13TH
    assert set(days_of(filtered)) == {date(2019, 8, 14)}
    unit = "ms" if reader in ("read_table", "dataset") else "us"  # the Delta protocol's
    assert every.schema.field("trigger_time").type == pa.timestamp(unit, tz="UTC")
    assert min(every.column("trigger_time").to_pylist()) == FIRST_TRIGGER


@pytest.mark.parametrize(
    ("doc", "reader"),
    [("tables.md", reader) for reader in READERS]
    + [("delta.md", reader) for reader in DELTA_READERS],
)
def test_every_reader_process_exits_0(
    doc: str, reader: str, written_root: str, delta_root: str
) -> None:
    if doc == "tables.md":
        counts = run_in_process(recipes()[reader], written_root)
    else:
        counts = run_in_process(delta_recipes()[reader], delta_root)
    assert counts == [ALL_ROWS, SINCE_13TH]
