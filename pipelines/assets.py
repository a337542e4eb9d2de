"""The four flow-instance tables, materialised together from one extraction per partition day.

No ``from __future__ import annotations`` here: Dagster reads the asset's annotations at runtime.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from flowinst_etl.extract import Extractor
from flowinst_etl.load import DayResult, load_days
from flowinst_etl.memory import return_freed_memory
from flowinst_etl.storage.root import RootRecord, check_root, claim_root
from flowinst_etl.storage.write import run_format
from flowinst_etl.tables.schema import TABLES
from flowinst_etl.windows import zone
from pipelines.catalog import day_metadata, table_metadata
from pipelines.checks import check_results, day_checks
from pipelines.partitions import partition_days
from pipelines.resources import Dataset, DayListener, EnosGateway

#: Dagster concurrency pool of every step that calls the EnOS API (limit it in dagster.yaml).
ENOS_POOL = "enos_api"

DESCRIPTIONS = {
    "flow_instances": "One row per flow instance (run of a workflow), by day of trigger time.",
    "flow_instance_tasks": "One row per task node in the graph embedded in each flow instance.",
    "flow_instance_relations": "One row per dependency edge in each flow instance's graph.",
    "flow_instance_upstream_flows": "One row per upstream workflow each flow instance depends on.",
}


def build_flow_instance_tables(
    partitions: dg.TimeWindowPartitionsDefinition,
    root: str,
    backfill_policy: dg.BackfillPolicy | None = None,
    owners: Sequence[str] = (),
) -> dg.AssetsDefinition:
    """The multi-asset over ``partitions``, writing under the dataset ``root`` (the catalog's
    location of each table) and owned by ``owners``; a range backfill runs as one run unless
    ``backfill_policy`` splits it."""
    checks = day_checks(partitions)
    partition_tz = zone(partitions.timezone)

    @dg.multi_asset(
        name="flow_instance_tables",
        specs=[
            dg.AssetSpec(
                table,
                description=DESCRIPTIONS[table],
                group_name="enos",
                kinds={"parquet"},
                metadata=table_metadata(table, root),
                owners=list(owners),
                skippable=True,
            )
            for table in TABLES
        ],
        check_specs=[check.spec for check in checks],
        partitions_def=partitions,
        backfill_policy=backfill_policy or dg.BackfillPolicy.single_run(),
        can_subset=False,
        pool=ENOS_POOL,
    )
    def flow_instance_tables(
        context: AssetExecutionContext,
        enos: EnosGateway,
        dataset: Dataset,
        day_listener: dg.ResourceParam[DayListener],
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.Output]:
        """Extract every flow instance of each day once and commit the day's four tables."""
        return_freed_memory()  # the run owns its process, whoever launched it
        committed, failed = [], []
        # A root whose days are cut in another zone, or whose tables are of another format, is
        # refused before any request, untouched; a new one records its settings once the
        # gateway has been found usable.
        record = RootRecord(
            partition_timezone=partitions.timezone, table_format=dataset.table_format
        )
        check_root(dataset.root, record)
        table_format = run_format(dataset.root, dataset.table_format)
        with enos.client() as client:
            extractor = Extractor(
                client,
                max_workers=dataset.max_workers,
                records_memory_bytes=dataset.records_memory_bytes(),
            )
            extractor.check_access()
            claim_root(dataset.root, record)
            results = load_days(
                extractor,
                partition_days(context),
                partition_tz,
                dataset.root,
                table_format=table_format,
                retention_hours=dataset.delta_retention_hours,
            )
            for result in results:
                day_listener(result)
                if result.changes is not None and result.changes.violation:
                    context.log.warning(
                        f"day {result.day}: refresh cannot rely on its change test on this "
                        f"gateway, so it will re-read every day: {result.changes.violation}"
                    )
                if result.ok:
                    committed.append(result.day)
                    yield from _materializations(result, dataset.root, table_format)
                    yield from check_results(checks, dataset.root, [result.day])
                else:
                    failed.append(result)
                    context.log.error(f"day {result.day} failed: {result.error}")
        # Each day's check results went out on its partition above; the check outputs themselves
        # carry nothing, but Dagster expects one per check of the step.
        for output_name in context.assets_def.check_specs_by_output_name:
            yield dg.Output(None, output_name=output_name)
        if failed:
            raise dg.Failure(
                description=f"{len(failed)} of {len(failed) + len(committed)} days failed: "
                + "; ".join(f"{r.day}: {r.error}" for r in sorted(failed, key=lambda r: r.day)),
                metadata={"failed_days": [r.day.isoformat() for r in failed]},
            )

    return flow_instance_tables


def _materializations(
    result: DayResult, root: str, table_format: str
) -> Iterator[dg.AssetMaterialization]:
    figures = result.reconciliation
    shared: dict[str, Any] = {
        name: figures[name]
        for name in (
            "requests",
            "pages",
            "retries",
            "throttled",
            "token_renewals",
            "rate_limit_wait_ms",
            "duplicates_dropped",
            "repaired_seconds",
            "graph_errors",
        )
        if name in figures
    }
    if result.changes is not None:
        shared["change_test"] = result.changes.compared
    for table in TABLES:
        metadata: dict[str, Any] = {
            **day_metadata(table, root, result.day, result.rows.get(table, 0)),
            "path": dg.MetadataValue.path(result.paths.get(table, "")),
            "table_format": table_format,
            **shared,
        }
        if table == "flow_instances" and result.preview:
            metadata["preview"] = dg.MetadataValue.md(_markdown(result.preview))
        yield dg.AssetMaterialization(
            asset_key=table, partition=result.day.isoformat(), metadata=metadata
        )


def _markdown(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
