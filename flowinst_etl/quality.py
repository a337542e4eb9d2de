"""Data-quality rules for one partition day, as plain functions over frames (the asset checks call
them, and so can a notebook).

The frames may have NumPy or Arrow-backed columns; the rules run in Arrow compute, so a day of
hundreds of thousands of instances is judged in well under a second.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _ids(frame: pd.DataFrame) -> pa.Array:
    """The frame's ``instance_id`` column as Arrow strings, without nulls."""
    return pa.array(frame["instance_id"], pa.string()).drop_null()


def duplicate_instance_ids(instances: pd.DataFrame) -> list[str]:
    """Instance ids that occur more than once in a day's ``flow_instances``."""
    counts = pc.value_counts(_ids(instances))
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    return sorted(repeated.field("values").to_pylist())


def orphan_instance_ids(instances: pd.DataFrame, children: pd.DataFrame) -> list[str]:
    """Instance ids of child rows (tasks, relations, upstream flows) with no instance that day."""
    ids = _ids(children)
    orphans = ids.filter(pc.invert(pc.is_in(ids, value_set=_ids(instances))))
    return sorted(pc.unique(orphans).to_pylist())


def task_count_mismatches(instances: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, str]:
    """Instances whose ``task_count`` differs from their rows in ``flow_instance_tasks``, as
    ``{instance_id: "<count> counted, <rows> rows"}``.

    ``task_count`` is read from ``flow_instances`` and the task rows from another file, so a
    day whose tables come from different writes, or a graph exploded only in part, is caught.
    An instance without a readable graph (null ``task_count``) must have no task rows; of an
    id repeated in ``flow_instances`` (the uniqueness rule's concern) its first row counts.
    """
    counted = pa.table(
        {
            "instance_id": pa.array(instances["instance_id"], pa.string()),
            "counted": pc.fill_null(pa.array(instances["task_count"], pa.int64()), 0),
        }
    ).filter(pc.is_valid(pc.field("instance_id")))
    first = counted.group_by("instance_id", use_threads=False).aggregate([("counted", "first")])
    counted = pa.table({"instance_id": first["instance_id"], "counted": first["counted_first"]})
    rows = pc.value_counts(_ids(tasks))
    found = pa.table({"instance_id": rows.field("values"), "rows": rows.field("counts")})
    joined = counted.join(found, "instance_id", join_type="full outer", use_threads=False)
    expected = pc.fill_null(joined["counted"], 0)
    actual = pc.fill_null(joined["rows"], 0)
    differ = joined.filter(pc.not_equal(expected, actual))
    return {
        instance_id: f"{count} counted, {found_rows} rows"
        for instance_id, count, found_rows in sorted(
            zip(
                differ["instance_id"].to_pylist(),
                pc.fill_null(differ["counted"], 0).to_pylist(),
                pc.fill_null(differ["rows"], 0).to_pylist(),
                strict=True,
            )
        )
    }
