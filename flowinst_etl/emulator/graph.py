"""An instance's ``graph`` JSON string, in the key styles the documented samples disagree on."""

from __future__ import annotations

import json
import zlib
from typing import Any

from flowinst_etl.emulator.flows import Flow
from flowinst_etl.emulator.status import (
    CANCEL,
    FAIL,
    INIT,
    INTERNAL_ERROR,
    NOT_STARTED,
    READY,
    RUNNING,
    SKIP,
    SUSPEND,
    TIMEOUT,
    WAIT,
)

_SNAKE: dict[str, str | None] = {
    "alertMode": "alert_mode",
    "doAs": "do_as",
    "instId": "inst_id",
    "alertTo": "alert_to",
    "appId": "app_id",
    "taskName": "task_name",
    "taskInstId": "task_inst_id",
    "taskId": "task_id",
    "nodeId": "node_id",
    "flowId": "flow_id",
    "flowName": "flow_name",
    "isVirtual": "is_virtual",
    "flowInstId": "flow_inst_id",
    "cycleGap": "cycle_gap",
}
# Per style: renames of (top-level, task, upstream flow, relation) keys; None drops the key.
_STYLES: dict[str, tuple[dict[str, str | None], ...]] = {
    # The Get Flow Instance sample: camelCase throughout, no alertTo/appId.
    "camel": ({"alertTo": None, "appId": None}, {}, {}, {}),
    # The edge-api v2.0 sample: snake_case throughout.
    "snake": (_SNAKE, _SNAKE, _SNAKE, _SNAKE),
    # The List Flow Instances sample: alertMode, do_as, instId; tasks mix styles and lack status.
    "mixed": (
        {"doAs": "do_as", "alertTo": None, "appId": None},
        {"taskName": "task_name", "taskId": "task_id", "status": None},
        {},
        {},
    ),
    # The zh/cn5 Get samples: alertMode, do_as, alertTo, instId, app_id; camelCase tasks.
    "zh": ({"doAs": "do_as", "appId": "app_id"}, {}, {}, {}),
}
_STOPPED_AT = {
    FAIL: "FAIL",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    TIMEOUT: "TIMEOUT",
    RUNNING: "RUNNING",
    SUSPEND: "SUSPEND",
    CANCEL: "CANCEL",
}


def render_graph(flow: Flow, instance_id: str, stamp: str, status: int) -> str:
    """The ``graph`` field of one instance of ``flow``: a compact JSON text.

    Args:
        flow: the flow the instance runs.
        instance_id: the instance's id.
        stamp: the ``yyyyMMddHHmmss`` trigger stamp shared by the instance's task instance ids.
        status: the instance's status code, which decides the task statuses.
    """
    top, task_keys, flow_keys, relation_keys = _STYLES[flow.key_style]
    statuses = _task_statuses(len(flow.tasks), status, instance_id)
    upstream_status = "NONE" if status in NOT_STARTED else "SUCCESS"
    graph = {
        "creator": flow.creator,
        "freq": flow.freq,
        "alertMode": flow.alert_mode,
        "alertTo": flow.owners,
        "owners": flow.owners,
        "cycle": flow.cycle,
        "doAs": flow.do_as,
        "appId": f"{flow.do_as}-app",
        "flows": [
            _rename(
                {
                    "flowId": str(link.flow_id),
                    "flowName": link.name,
                    "nodeId": f"f_{link.flow_id}",
                    "isVirtual": link.is_virtual,
                    "x": link.x,
                    "y": link.y,
                    "flowInstId": f"{link.flow_id}-{stamp}",
                    "status": upstream_status,
                },
                flow_keys,
            )
            for link in flow.upstream
        ],
        "name": flow.name,
        "instId": instance_id,
        "id": flow.flow_id,
        "relations": [
            _rename(
                {
                    "source": f"f_{link.flow_id}",
                    "target": f"t_{flow.tasks[link.target].task_id}",
                    "cycleGap": link.cycle_gap,
                    "rerun": link.rerun,
                },
                relation_keys,
            )
            for link in flow.upstream
        ]
        + [
            _rename(
                {
                    "source": f"t_{flow.tasks[edge.source].task_id}",
                    "target": f"t_{flow.tasks[edge.target].task_id}",
                    "cycleGap": edge.cycle_gap,
                    "rerun": edge.rerun,
                },
                relation_keys,
            )
            for edge in flow.edges
        ],
        "parameters": flow.parameters,
        "tasks": [
            _rename(
                {
                    "taskName": task.name,
                    "taskInstId": f"{task.task_id}-{stamp}",
                    "x": task.x,
                    "y": task.y,
                    "taskId": task.task_id,
                    "nodeId": f"t_{task.task_id}",
                    "status": task_status,
                },
                task_keys,
            )
            for task, task_status in zip(flow.tasks, statuses, strict=True)
        ],
    }
    return json.dumps(_rename(graph, top), ensure_ascii=False, separators=(",", ":"))


def _rename(values: dict[str, Any], renames: dict[str, str | None]) -> dict[str, Any]:
    renamed = {}
    for key, value in values.items():
        target = renames.get(key, key)
        if target is not None:
            renamed[target] = value
    return renamed


def _task_statuses(count: int, status: int, instance_id: str) -> list[str]:
    """Task statuses consistent with the instance's: finished tasks before the one it stopped at."""
    if status in (INIT, WAIT, READY):
        return ["INIT"] * count
    if status == SKIP:
        return ["SKIP"] * count
    stopped = _STOPPED_AT.get(status)
    if stopped is None:
        return ["SUCCESS"] * count
    position = zlib.crc32(instance_id.encode()) % count
    return ["SUCCESS"] * position + [stopped] + ["INIT"] * (count - position - 1)
