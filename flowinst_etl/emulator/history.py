"""Late changes to instances of past days, as an EnOS console user or the scheduler makes them
long after the day: a failed run rerun, a run that ends late, a run cancelled."""

from __future__ import annotations

import random
from typing import NamedTuple

from flowinst_etl.emulator.records import Instance
from flowinst_etl.emulator.status import (
    CANCEL,
    FAIL,
    INIT,
    INTERNAL_ERROR,
    READY,
    RERUN,
    RUNNING,
    SUCCESS,
    SUSPEND,
    TIMEOUT,
    WAIT,
)

_FAILED = frozenset({FAIL, TIMEOUT, INTERNAL_ERROR})
_UNFINISHED = frozenset({RUNNING, SUSPEND, RERUN})
_CANCELLABLE = frozenset({INIT, WAIT, READY, RUNNING, SUSPEND})
#: Every status a late change can start from.
CHANGEABLE = _FAILED | _UNFINISHED | _CANCELLABLE


class LateChange(NamedTuple):
    """One late change the emulator made.

    Attributes:
        instance_id: the instance changed.
        trigger_ms: its trigger time (epoch ms), which says its day.
        kind: "rerun" (a failed run started again: RERUN), "late_end" (a running, suspended or
            rerun instance ends: SUCCESS or FAIL) or "cancel" (CANCEL).
        old_status / new_status: status codes before and after.
        update_ms: the instance's update time after the change (unchanged when update times are
            frozen).
    """

    instance_id: str
    trigger_ms: int
    kind: str
    old_status: int
    new_status: int
    update_ms: int


def apply_late_change(
    rng: random.Random, item: Instance, now_ms: int, update_ms: int
) -> LateChange:
    """Change ``item`` (whose status is in ``CHANGEABLE``) one way its status allows, at
    ``now_ms``; ``update_ms`` becomes its update time."""
    kinds = [
        kind
        for kind, statuses in (
            ("rerun", _FAILED),
            ("late_end", _UNFINISHED),
            ("cancel", _CANCELLABLE),
        )
        if item.status in statuses
    ]
    kind = rng.choice(kinds)
    old = item.status
    start_ms, end_ms = item.start_ms, item.end_ms
    if kind == "rerun":
        status, start_ms, end_ms = RERUN, now_ms, None
    elif kind == "late_end":
        status = SUCCESS if rng.random() < 0.8 else FAIL
        start_ms = item.trigger_ms if start_ms is None else start_ms
        end_ms = max(now_ms, start_ms)
    else:
        status, end_ms = CANCEL, None if start_ms is None else max(now_ms, start_ms)
    item.change_status(status, start_ms, end_ms, update_ms)
    return LateChange(item.instance_id, item.trigger_ms, kind, old, status, item.update_ms)
