"""Asset checks of each committed day, read back from the store, judged by ``quality``.

Each table of a day is read once, with only the columns the checks need, and shared by them.

Each day's result is an ``AssetCheckEvaluation`` on that day's partition, so a run covering a
range of days (the CLI backfill, ``--partition-range``, the lookback schedule, a UI backfill)
resolves every day's planned check, as a single-partition run does.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
import pandas as pd

from flowinst_etl.quality import (
    duplicate_instance_ids,
    orphan_instance_ids,
    task_count_mismatches,
)
from flowinst_etl.store import read_table
from flowinst_etl.tables.schema import TABLES

INSTANCES = "flow_instances"
TASKS = "flow_instance_tasks"
CHILD_TABLES = [name for name in TABLES if name != INSTANCES]


@dataclass
class CommittedDay:
    """One committed day as read back from the dataset at ``root``, each table read once."""

    root: str
    day: date
    _read: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        """``instance_id`` (and ``task_count`` of ``flow_instances``) of the day's ``name`` rows."""
        if name not in self._read:
            columns = ["instance_id", "task_count"] if name == INSTANCES else ["instance_id"]
            self._read[name] = read_table(name, self.root, self.day, self.day, columns=columns)
        return self._read[name]


@dataclass(frozen=True)
class Finding:
    """What a rule found wrong with a day: how many (0 when it passes) and a few examples."""

    count: int
    examples: str


#: A rule looks at one committed day and says what is wrong.
Rule = Callable[[CommittedDay], Finding]


@dataclass(frozen=True)
class DayCheck:
    """One asset check: its spec, the rule it applies to each day, and the name of the number
    its results carry (a count the UI can plot over time)."""

    spec: dg.AssetCheckSpec
    rule: Rule
    counted: str


def _unique_ids(day: CommittedDay) -> Finding:
    duplicates = duplicate_instance_ids(day.table(INSTANCES))
    return Finding(len(duplicates), str(duplicates[:3]))


def _refers_to_instances(table: str) -> Rule:
    def rule(day: CommittedDay) -> Finding:
        orphans = orphan_instance_ids(day.table(INSTANCES), day.table(table))
        return Finding(len(orphans), str(orphans[:3]))

    return rule


def _matches_task_counts(day: CommittedDay) -> Finding:
    found = task_count_mismatches(day.table(INSTANCES), day.table(TASKS))
    return Finding(len(found), str(dict(list(found.items())[:3])))


def day_checks(partitions: dg.PartitionsDefinition) -> list[DayCheck]:
    """Every check of a committed day, named for what it asserts."""

    def spec(asset: str, name: str, description: str) -> dg.AssetCheckSpec:
        with warnings.catch_warnings():  # partitioned checks are a preview feature of Dagster 1.13
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.AssetCheckSpec(
                name, asset=asset, description=description, partitions_def=partitions
            )

    checks = [
        DayCheck(
            spec(INSTANCES, "instance_ids_unique", "No instance id occurs twice in a day."),
            _unique_ids,
            "duplicated_ids",
        ),
        DayCheck(
            spec(
                TASKS,
                "rows_match_task_counts",
                "Each instance has as many task rows as its task_count in flow_instances.",
            ),
            _matches_task_counts,
            "instances_with_other_task_rows",
        ),
    ]
    checks += [
        DayCheck(
            spec(
                table,
                "rows_refer_to_instances_of_the_day",
                f"Every {table} row belongs to an instance of the same day.",
            ),
            _refers_to_instances(table),
            "instance_ids_not_in_flow_instances",
        )
        for table in CHILD_TABLES
    ]
    return checks


def check_results(
    checks: Iterable[DayCheck], root: str, days: Iterable[date]
) -> list[dg.AssetCheckEvaluation]:
    """One evaluation per check and committed day, on that day's partition."""
    results = []
    for day in days:
        committed = CommittedDay(root, day)
        for check in checks:
            found = check.rule(committed)
            metadata: dict[str, dg.MetadataValue] = {
                check.counted: dg.MetadataValue.int(found.count)
            }
            if found.count:
                metadata["examples"] = dg.MetadataValue.text(found.examples)
            results.append(
                dg.AssetCheckEvaluation(
                    asset_key=check.spec.asset_key,
                    check_name=check.spec.name,
                    passed=found.count == 0,
                    metadata=metadata,
                    partition=day.isoformat(),
                )
            )
    return results
