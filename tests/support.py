"""Helpers shared by tests: the real client pointed at an emulator, and its expected output."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

from flowinst_etl.config import EnosSettings
from flowinst_etl.emulator import Emulator, TruthInstance
from flowinst_etl.windows import day_window, zone


def settings_for(emulator: Emulator, **overrides: Any) -> EnosSettings:
    """Client settings for ``emulator``'s credentials, with quick retries for fast fault tests."""
    credentials = emulator.config.credentials
    settings = EnosSettings(
        api_url=emulator.base_url,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        org_id=credentials.org_id,
        user_id=credentials.user_id,
        backoff_s=0.01,
        max_backoff_s=0.2,
        read_timeout_s=10.0,
        max_retries=8,
    )
    return replace(settings, **overrides)


def expected_rows(truth: list[TruthInstance]) -> dict[str, int]:
    """Rows each table should hold for ``truth``, counted straight from the graph JSON."""
    counts = {
        "flow_instances": len(truth),
        "flow_instance_tasks": 0,
        "flow_instance_relations": 0,
        "flow_instance_upstream_flows": 0,
    }
    for instance in truth:
        try:
            graph = json.loads(instance.record["graph"])
        except (TypeError, ValueError):
            continue
        counts["flow_instance_tasks"] += len(graph.get("tasks") or [])
        counts["flow_instance_relations"] += len(graph.get("relations") or [])
        counts["flow_instance_upstream_flows"] += len(graph.get("flows") or [])
    return counts


def day_truth(emulator: Emulator, day: date, timezone: str) -> list[TruthInstance]:
    """The emulator's instances of one partition day."""
    window = day_window(day, zone(timezone))
    return emulator.truth(window.start_ms, window.end_ms)
