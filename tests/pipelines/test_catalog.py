"""What Dagster's catalog holds about the tables, read back from the instance after a day is
materialised, against the Parquet files themselves; check results as numbers."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowinst_etl.config import PipelineSettings
from flowinst_etl.emulator import Emulator
from flowinst_etl.store import write_day
from flowinst_etl.tables.flatten import flatten_instances
from flowinst_etl.tables.schema import TABLES
from pipelines.catalog import column_descriptions, column_schema, type_name
from pipelines.checks import check_results, day_checks
from pipelines.definitions import build_definitions
from pipelines.partitions import daily_partitions
from tests.fixtures.enos_records import EXTRACTED_AT, GMT8, day_records
from tests.pipelines.conftest import FIRST_DAY

DOCS = Path(__file__).parents[2] / "docs" / "tables.md"


def local_path(uri: str) -> Path:
    parts = urlsplit(uri)
    assert parts.scheme == "file", uri
    return Path(unquote(parts.path))


def arrow_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(field.name, type_name(field.type)) for field in schema]


def catalog_columns(schema: dg.TableSchema) -> list[tuple[str, str]]:
    return [(column.name, column.type) for column in schema.columns]


def test_every_column_is_described_as_docs_tables_md_describes_it() -> None:
    described = column_descriptions(DOCS.read_text())
    assert set(described) == set(TABLES)
    for table, schema in TABLES.items():
        assert set(described[table]) == set(schema.names), table
        assert all(column.description for column in column_schema(table).columns), table
    assert described["flow_instances"]["flow_id"] == "workflow id; from `flowId`"


def test_a_materialised_day_is_in_the_catalog_as_its_files_are(
    enos_env: Emulator, tmp_path: Path
) -> None:
    day = FIRST_DAY + timedelta(days=2)
    root = tmp_path / "data"
    defs = build_definitions(PipelineSettings(data_dir=str(root), start_date=FIRST_DAY))
    with dg.DagsterInstance.ephemeral() as instance:
        job = defs.resolve_job_def("flow_instances_job")
        assert job.execute_in_process(partition_key=day.isoformat(), instance=instance).success

        for table, pinned in TABLES.items():
            key = dg.AssetKey(table)
            definition = defs.resolve_assets_def(key).specs_by_key[key].metadata
            assert catalog_columns(definition["dagster/column_schema"]) == arrow_columns(pinned)
            assert definition["dagster/table_name"] == table
            assert local_path(definition["dagster/uri"]) == root / table

            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.asset_materialization is not None
            assert event.asset_materialization.partition == day.isoformat()
            metadata = event.asset_materialization.metadata
            folder = local_path(metadata["dagster/uri"].value)
            assert folder == root / table / f"trigger_date={day}"
            (file,) = os.listdir(folder)
            parquet = pq.ParquetFile(folder / file)
            assert str(folder / file) == metadata["path"].value
            written = catalog_columns(metadata["dagster/column_schema"].value)
            assert written == arrow_columns(parquet.schema_arrow)
            assert parquet.schema_arrow.equals(pinned)
            assert metadata["dagster/table_name"].value == table
            rows = parquet.metadata.num_rows
            assert metadata["dagster/partition_row_count"] == dg.MetadataValue.int(rows)
            assert metadata["dagster/row_count"] == dg.MetadataValue.int(rows)
            assert table != "flow_instances" or rows > 0


@pytest.fixture
def flawed_day(tmp_path: Path) -> date:
    """A committed day whose first instance is there twice and whose last one is missing, so
    its tasks, relations and upstream flows point at an instance the day does not hold."""
    day = date(2019, 8, 12)
    tables = flatten_instances(day_records(4, day.isoformat()), GMT8, EXTRACTED_AT).as_dict()
    instances = pa.Table.from_pandas(tables["flow_instances"], preserve_index=False)
    tables["flow_instances"] = pa.concat_tables([instances.slice(0, 3), instances.slice(0, 1)])
    write_day(str(tmp_path), day, tables, {"instances": 4})
    return day


def test_check_results_carry_their_counts_as_numbers(tmp_path: Path, flawed_day: date) -> None:
    checks = day_checks(daily_partitions(PipelineSettings()))
    results = {
        (r.asset_key.to_user_string(), r.check_name): r
        for r in check_results(checks, str(tmp_path), [flawed_day])
    }
    duplicated = results[("flow_instances", "instance_ids_unique")]
    assert not duplicated.passed
    assert duplicated.metadata["duplicated_ids"] == dg.MetadataValue.int(1)
    for table in ("flow_instance_tasks", "flow_instance_relations"):
        orphans = results[(table, "rows_refer_to_instances_of_the_day")]
        assert not orphans.passed, table
        assert orphans.metadata["instance_ids_not_in_flow_instances"] == dg.MetadataValue.int(1)
        assert "examples" in orphans.metadata
    mismatched = results[("flow_instance_tasks", "rows_match_task_counts")]
    assert mismatched.metadata["instances_with_other_task_rows"] == dg.MetadataValue.int(1)
