"""The data-quality rules on good and bad frames."""

from __future__ import annotations

import pandas as pd

from flowinst_etl.quality import (
    duplicate_instance_ids,
    orphan_instance_ids,
    reconciliation_mismatch,
)

INSTANCES = pd.DataFrame({"instance_id": ["1-a", "2-a", "3-a"]})


def test_unique_ids_pass_and_duplicates_are_named() -> None:
    assert duplicate_instance_ids(INSTANCES) == []
    doubled = pd.concat([INSTANCES, INSTANCES.iloc[[1]]])
    assert duplicate_instance_ids(doubled) == ["2-a"]


def test_children_must_belong_to_instances_of_the_day() -> None:
    assert orphan_instance_ids(INSTANCES, pd.DataFrame({"instance_id": ["1-a", "1-a"]})) == []
    strays = pd.DataFrame({"instance_id": ["1-a", "9-z"]})
    assert orphan_instance_ids(INSTANCES, strays) == ["9-z"]


def test_rows_must_match_the_reconciled_count() -> None:
    assert reconciliation_mismatch(INSTANCES, {"reconciliation": {"instances": 3}}) is None
    assert "3 rows written, 4 instances" in str(
        reconciliation_mismatch(INSTANCES, {"reconciliation": {"instances": 4}})
    )
    assert reconciliation_mismatch(INSTANCES, None) == "the partition has no manifest"
    assert "no reconciled" in str(reconciliation_mismatch(INSTANCES, {"reconciliation": {}}))
