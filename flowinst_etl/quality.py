"""Data-quality rules for one partition day, as plain functions over frames (the asset checks call
them, and so can a notebook)."""

from __future__ import annotations

import pandas as pd


def duplicate_instance_ids(instances: pd.DataFrame) -> list[str]:
    """Instance ids that occur more than once in a day's ``flow_instances``."""
    ids = instances["instance_id"]
    return sorted(ids[ids.duplicated()].unique().tolist())


def orphan_instance_ids(instances: pd.DataFrame, children: pd.DataFrame) -> list[str]:
    """Instance ids of child rows (tasks, relations, upstream flows) with no instance that day."""
    ids = children["instance_id"]
    return sorted(ids[~ids.isin(instances["instance_id"])].unique().tolist())


def task_count_mismatches(instances: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, str]:
    """Instances whose ``task_count`` differs from their rows in ``flow_instance_tasks``, as
    ``{instance_id: "<count> counted, <rows> rows"}``.

    ``task_count`` is read from ``flow_instances`` and the task rows from another file, so a
    day whose tables come from different writes, or a graph exploded only in part, is caught.
    An instance without a readable graph (null ``task_count``) must have no task rows.
    """
    rows = tasks["instance_id"].value_counts()
    counted = instances.set_index("instance_id")["task_count"].fillna(0).astype("int64")
    counted = counted[~counted.index.duplicated()]  # a repeated id is the uniqueness rule's
    ids = counted.index.union(rows.index)
    expected = counted.reindex(ids, fill_value=0)
    actual = rows.reindex(ids, fill_value=0)
    differ = expected.to_numpy() != actual.to_numpy()
    return {
        str(instance_id): f"{count} counted, {found} rows"
        for instance_id, count, found in sorted(
            zip(ids[differ], expected[differ].tolist(), actual[differ].tolist(), strict=True)
        )
    }
