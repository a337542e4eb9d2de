"""Data-quality rules for one partition day, as plain functions over frames (the asset checks call
them, and so can a notebook)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def duplicate_instance_ids(instances: pd.DataFrame) -> list[str]:
    """Instance ids that occur more than once in a day's ``flow_instances``."""
    ids = instances["instance_id"]
    return sorted(ids[ids.duplicated()].unique().tolist())


def orphan_instance_ids(instances: pd.DataFrame, children: pd.DataFrame) -> list[str]:
    """Instance ids of child rows (tasks, relations, upstream flows) with no instance that day."""
    known = set(instances["instance_id"].tolist())
    return sorted(set(children["instance_id"].tolist()) - known)


def reconciliation_mismatch(
    instances: pd.DataFrame, manifest: Mapping[str, Any] | None
) -> str | None:
    """Why the rows written disagree with the reconciled count, or None if they agree."""
    if manifest is None:
        return "the partition has no manifest"
    expected = manifest.get("reconciliation", {}).get("instances")
    if expected is None:
        return "the manifest has no reconciled instance count"
    if int(expected) != len(instances):
        return f"{len(instances)} rows written, {expected} instances extracted"
    return None
