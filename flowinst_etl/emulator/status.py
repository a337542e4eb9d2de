"""FlowInstanceStatus codes and names, as the batch service documents them."""

from __future__ import annotations

FAIL, INIT, SUCCESS, RUNNING, SUSPEND, INTERNAL_ERROR = -1, 0, 1, 2, 3, 4
WAIT, READY, TIMEOUT, CANCEL, RERUN, SKIP = 5, 6, 7, 8, 9, 10

STATUS_NAMES: dict[int, str] = {
    FAIL: "FAIL",
    INIT: "INIT",
    SUCCESS: "SUCCESS",
    RUNNING: "RUNNING",
    SUSPEND: "SUSPEND",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    WAIT: "WAIT",
    READY: "READY",
    TIMEOUT: "TIMEOUT",
    CANCEL: "CANCEL",
    RERUN: "RERUN",
    SKIP: "SKIP",
}

#: Statuses of instances that have not started yet: no ``startTime``.
NOT_STARTED = frozenset({INIT, WAIT, READY, SKIP})
#: Statuses of instances that have not finished yet: no ``endTime``.
NOT_ENDED = NOT_STARTED | {RUNNING, SUSPEND}
#: Statuses the scheduler still moves on by itself.
NOT_FINAL = frozenset({INIT, WAIT, READY, RUNNING})
