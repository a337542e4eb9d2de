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
    known = set(instances["instance_id"].tolist())
    return sorted(set(children["instance_id"].tolist()) - known)


def task_count_mismatches(instances: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, str]:
    """Instances whose ``task_count`` differs from their rows in ``flow_instance_tasks``, as
    ``{instance_id: "<count> counted, <rows> rows"}``.

    ``task_count`` is read from ``flow_instances`` and the task rows from another file, so a
    day whose tables come from different writes, or a graph exploded only in part, is caught.
    An instance without a readable graph (null ``task_count``) must have no task rows.
    """
    rows = tasks.groupby("instance_id", sort=False).size()
    counted = instances.set_index("instance_id")["task_count"]
    found = {}
    for instance_id in sorted(set(counted.index) | set(rows.index)):
        count = counted.get(instance_id)
        expected = 0 if count is None or pd.isna(count) else int(count)
        actual = int(rows.get(instance_id, 0))
        if expected != actual:
            found[str(instance_id)] = f"{expected} counted, {actual} rows"
    return found
