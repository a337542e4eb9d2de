"""The data-quality rules on good and bad frames."""

from __future__ import annotations

from collections import Counter

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from flowinst_etl.quality import (
    duplicate_instance_ids,
    orphan_instance_ids,
    task_count_mismatches,
)

INSTANCES = pd.DataFrame({"instance_id": ["1-a", "2-a", "3-a"], "task_count": [2, 0, None]})


def test_unique_ids_pass_and_duplicates_are_named() -> None:
    assert duplicate_instance_ids(INSTANCES) == []
    doubled = pd.concat([INSTANCES, INSTANCES.iloc[[1]]])
    assert duplicate_instance_ids(doubled) == ["2-a"]


def test_children_must_belong_to_instances_of_the_day() -> None:
    assert orphan_instance_ids(INSTANCES, pd.DataFrame({"instance_id": ["1-a", "1-a"]})) == []
    strays = pd.DataFrame({"instance_id": ["1-a", "9-z"]})
    assert orphan_instance_ids(INSTANCES, strays) == ["9-z"]


def test_task_rows_must_match_each_instances_task_count() -> None:
    assert task_count_mismatches(INSTANCES, pd.DataFrame({"instance_id": ["1-a", "1-a"]})) == {}
    assert task_count_mismatches(INSTANCES, pd.DataFrame({"instance_id": ["1-a"]})) == {
        "1-a": "2 counted, 1 rows"
    }
    unreadable = pd.DataFrame({"instance_id": ["1-a", "1-a", "3-a"]})
    assert task_count_mismatches(INSTANCES, unreadable) == {"3-a": "0 counted, 1 rows"}
    stray = pd.DataFrame({"instance_id": ["1-a", "1-a", "9-z"]})
    assert task_count_mismatches(INSTANCES, stray) == {"9-z": "0 counted, 1 rows"}


def test_a_repeated_instance_id_is_left_to_the_uniqueness_rule() -> None:
    doubled = pd.concat([INSTANCES, INSTANCES.iloc[[0]]])
    tasks = pd.DataFrame({"instance_id": ["1-a", "1-a"]})
    assert task_count_mismatches(doubled, tasks) == {}
    assert task_count_mismatches(doubled, tasks.iloc[:1]) == {"1-a": "2 counted, 1 rows"}
    assert duplicate_instance_ids(doubled) == ["1-a"]


ids = st.sampled_from(["1-a", "2-a", "3-a", "4-b", "5-c"])


@settings(max_examples=200, deadline=None)
@given(
    instances=st.lists(st.tuples(ids, st.one_of(st.none(), st.integers(0, 3))), max_size=8),
    tasks=st.lists(ids, max_size=12),
    arrow=st.booleans(),
)
def test_rules_agree_with_counting_by_hand(
    instances: list[tuple[str, int | None]], tasks: list[str], arrow: bool
) -> None:
    frame = pd.DataFrame(instances, columns=["instance_id", "task_count"]).astype(
        {"instance_id": "string[pyarrow]" if arrow else object, "task_count": "Int64"}
    )
    children = pd.DataFrame({"instance_id": pd.Series(tasks, dtype=object)})
    seen = Counter(i for i, _ in instances)
    assert duplicate_instance_ids(frame) == sorted(i for i, n in seen.items() if n > 1)
    assert orphan_instance_ids(frame, children) == sorted(set(tasks) - set(seen))
    first: dict[str, int] = {}
    for instance_id, count in instances:
        first.setdefault(instance_id, count or 0)
    rows = Counter(tasks)
    expected = {
        i: f"{first.get(i, 0)} counted, {rows[i]} rows"
        for i in sorted(set(first) | set(rows))
        if first.get(i, 0) != rows[i]
    }
    assert task_count_mismatches(frame, children) == expected
