"""One flow instance: its mutable state, and its record and JSON cached until it changes."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

from flowinst_etl.emulator.flows import Flow
from flowinst_etl.emulator.graph import render_graph
from flowinst_etl.emulator.status import CANCEL, STATUS_NAMES


def server_time(epoch_ms: int | None, tz: tzinfo) -> str | None:
    """An instant as a server time string ``yyyy-MM-dd HH:mm:ss``; ``None`` stays ``None``."""
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms // 1000, tz).strftime("%Y-%m-%d %H:%M:%S")


def java_timestamp(epoch_ms: int, tz: tzinfo) -> str:
    """An instant as Java's ``Timestamp.toString()``: ``yyyy-MM-dd HH:mm:ss.S``, zeros cut."""
    fraction = f"{epoch_ms % 1000:03d}".rstrip("0") or "0"
    return f"{server_time(epoch_ms, tz)}.{fraction}"


def trigger_stamp(epoch_ms: int, tz: tzinfo) -> str:
    """The ``yyyyMMddHHmmss`` suffix of instance and task-instance ids."""
    return datetime.fromtimestamp(epoch_ms // 1000, tz).strftime("%Y%m%d%H%M%S")


class Instance:
    """A flow instance held by the emulator; times are epoch ms, ``None`` where not reached yet.

    Attributes:
        flow: the flow it is a run of.
        instance_id: ``{flowId}-{yyyyMMddHHmmss}`` of the trigger time in the server timezone.
        trigger_ms / start_ms / end_ms / create_ms: the instance's instants.
        update_ms: when the instance last changed; the ``update_time`` sort key.
        malformed: whether its ``graph`` string is served as broken JSON.
        timestamp_shows: what its ``timestamp`` field shows: "update" (``update_ms``, as the
            documentation's samples, where it is later than ``endTime``) or "create"
            (``create_ms``, as the documentation's field table says).
    """

    __slots__ = (
        "flow",
        "trigger_ms",
        "status",
        "start_ms",
        "end_ms",
        "create_ms",
        "update_ms",
        "malformed",
        "timestamp_shows",
        "tz",
        "instance_id",
        "stamp",
        "id_lower",
        "name_lower",
        "_record",
        "_json",
    )

    def __init__(
        self,
        flow: Flow,
        trigger_ms: int,
        status: int,
        start_ms: int | None,
        end_ms: int | None,
        create_ms: int,
        tz: tzinfo,
        malformed: bool,
        timestamp_shows: str,
    ) -> None:
        self.flow = flow
        self.trigger_ms = trigger_ms
        self.status = status
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.create_ms = create_ms
        self.update_ms = max(t for t in (create_ms, start_ms, end_ms) if t is not None)
        self.malformed = malformed
        self.timestamp_shows = timestamp_shows
        self.tz = tz
        self.stamp = trigger_stamp(trigger_ms, tz)
        self.instance_id = f"{flow.flow_id}-{self.stamp}"
        self.id_lower = self.instance_id.lower()
        self.name_lower = flow.name.lower()
        self._record: dict[str, Any] | None = None
        self._json: bytes | None = None

    @property
    def scheduling_type(self) -> int:
        """0 manual, 1 periodic, 2 temporary."""
        return self.flow.scheduling_type

    def change_status(
        self, status: int, start_ms: int | None, end_ms: int | None, update_ms: int
    ) -> None:
        """Move the instance to another status; its record and JSON are rebuilt on next use."""
        self.status = status
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.update_ms = update_ms
        self._record = None
        self._json = None

    def move_trigger(self, trigger_ms: int, update_ms: int) -> None:
        """Reschedule the instance (its id keeps the original trigger, as EnOS ids do);
        ``update_ms`` becomes its update time."""
        self.trigger_ms = trigger_ms
        self.update_ms = update_ms
        self._record = None
        self._json = None

    def record(self) -> dict[str, Any]:
        """The record as the search endpoint serves it (shared; copy before changing it)."""
        if self._record is None:
            flow = self.flow
            graph = render_graph(flow, self.instance_id, self.stamp, self.status)
            if self.malformed:
                graph = graph[: len(graph) // 2]
            self._record = {
                "instanceId": self.instance_id,
                "flowId": flow.flow_id,
                "flowName": flow.name,
                "freq": flow.freq,
                "cycle": flow.cycle,
                "parameters": flow.parameters,
                "doAs": flow.do_as,
                "graph": graph,
                "status": self.status,
                "statusDesc": STATUS_NAMES[self.status],
                "triggerTime": server_time(self.trigger_ms, self.tz),
                "startTime": server_time(self.start_ms, self.tz),
                "endTime": server_time(self.end_ms, self.tz),
                "timestamp": java_timestamp(
                    self.update_ms if self.timestamp_shows == "update" else self.create_ms, self.tz
                ),
                "virtual": flow.virtual,
                "owner": flow.owner,
                "hasEditPri": flow.has_edit_pri,
                "hasReadPri": True,
                "isCancelled": self.status == CANCEL,
            }
        return self._record

    def json(self) -> bytes:
        """The record as compact UTF-8 JSON."""
        if self._json is None:
            text = json.dumps(self.record(), ensure_ascii=False, separators=(",", ":"))
            self._json = text.encode()
        return self._json
