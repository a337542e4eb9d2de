"""The emulator's mutable ground truth: instances indexed by type and trigger, behind a lock."""

from __future__ import annotations

import bisect
import random
import re
import threading
import time
from dataclasses import replace
from datetime import tzinfo
from typing import Any, NamedTuple

from flowinst_etl.emulator.config import EmulatorConfig
from flowinst_etl.emulator.counters import Counters
from flowinst_etl.emulator.data import Dataset, advance, new_run
from flowinst_etl.emulator.history import CHANGEABLE, LateChange, apply_late_change
from flowinst_etl.emulator.records import Instance
from flowinst_etl.emulator.search import SearchQuery, order_page
from flowinst_etl.emulator.status import NOT_FINAL
from flowinst_etl.exceptions import ConfigError

_MAX_INSERT_GAP_S = 30
#: A record's trigger time string, to write it with half a second (``fractional_triggers``).
_HALF_SECOND = re.compile(rb'("triggerTime":"[0-9-]{10} [0-9:]{8})"')


class TruthInstance(NamedTuple):
    """One instance as the emulator holds it now.

    Attributes:
        scheduling_type: 0 manual, 1 periodic, 2 temporary (records do not carry it).
        trigger_ms: the trigger time in epoch milliseconds.
        record: a copy of exactly the dict the search endpoint serves.
    """

    scheduling_type: int
    trigger_ms: int
    record: dict[str, Any]


def _position(item: Instance) -> tuple[int, str]:
    return item.trigger_ms, item.instance_id


class _TypeIndex:
    """The instances of one scheduling type in (trigger, instanceId) order, with their triggers."""

    def __init__(self, items: list[Instance]) -> None:
        self.items = sorted(items, key=_position)
        self.triggers = [item.trigger_ms for item in self.items]

    def bounds(
        self, from_ms: int, to_ms: int, to_inclusive: bool, from_inclusive: bool = True
    ) -> tuple[int, int]:
        if from_inclusive:
            low = bisect.bisect_left(self.triggers, from_ms)
        else:
            low = bisect.bisect_right(self.triggers, from_ms)
        if to_inclusive:
            return low, bisect.bisect_right(self.triggers, to_ms)
        return low, bisect.bisect_left(self.triggers, to_ms)

    def add(self, item: Instance) -> None:
        position = bisect.bisect_left(self.items, _position(item), key=_position)
        self.items.insert(position, item)
        self.triggers.insert(position, item.trigger_ms)

    def remove(self, item: Instance) -> None:
        position = bisect.bisect_left(self.items, _position(item), key=_position)
        del self.items[position]
        del self.triggers[position]


class InstanceStore:
    """Every instance of one emulator; searches, inserts and status changes are atomic."""

    def __init__(self, dataset: Dataset, config: EmulatorConfig, counters: Counters) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"{config.seed}:scheduler")
        self._flows = dataset.flows_by_type
        self._seed = config.seed
        self._tz: tzinfo = config.record_tz()
        self._malformed_rate = config.malformed_graph_rate
        self._timestamp_shows = config.timestamp_shows
        self._counters = counters
        self._index = {
            kind: _TypeIndex([i for i in dataset.instances if i.scheduling_type == kind])
            for kind in (0, 1, 2)
        }
        self._taken = {(i.flow.flow_id, i.trigger_ms) for i in dataset.instances}
        self._searches = 0
        self._changed: set[str] = set()
        self._late_calls = 0

    def search(self, query: SearchQuery, config: EmulatorConfig) -> tuple[list[bytes], int]:
        """Answer one search: the page's records as JSON and the ``count`` to report.

        Each search also drives the scheduler: every ``insert_every``-th search first appends new
        runs to the searched window (so this answer already holds them), and after answering,
        ``status_change_rate`` moves runs of the window on, and every ``move_every``-th search
        moves one run of the window a second later. Every ``delete_every``-th search first
        deletes one instance of its window, anywhere in it (so an offset page skips one where
        the deletion lies behind it). Instances of hidden flows are dropped from the page
        after it is cut (``count`` still counts them when it is the total).
        """
        with self._lock:
            self._searches += 1
            if config.insert_every and self._searches % config.insert_every == 0:
                self._insert(query, config)
            index = self._index[query.scheduling_type]
            low, high = index.bounds(
                query.from_ms, query.to_ms, query.to_inclusive, query.from_inclusive
            )
            matches = query.keep(index.items[low:high])
            if config.defect == "ignores_type":
                matches = self._all_types(query)
            if config.delete_every and self._searches % config.delete_every == 0:
                matches = self._delete_one(index, matches)
            served = query
            if config.defect == "oversized_pages":
                served = replace(query, page_size=query.page_size + 1)
            if config.defect == "mixed_page_bases" and self._searches % 2 == 0:
                served = replace(query, offset=query.offset + query.page_size)
            if config.defect == "cut_before_sort":
                cut = sorted(matches, key=lambda item: item.instance_id)
                page = sorted(cut[served.offset : served.offset + served.page_size], key=_position)
            else:
                page = order_page(matches, served, config.tie_order, config.seed)
            page = [item for item in page if not config.hides(item.flow.flow_id)]
            if config.defect == "unsorted":
                page.reverse()
            records = [item.json() for item in page]
            if config.defect == "fractional_triggers":
                records = [_HALF_SECOND.sub(rb'\1.5"', record) for record in records]
            count = len(matches) if config.count_mode == "total" else len(page)
            if config.status_change_rate > 0:
                changes = max(1, round(config.status_change_rate * len(matches)))
                self._change_statuses(index.items[low:high], changes, config)
            if config.move_every and self._searches % config.move_every == 0:
                self._move_one(index, index.items[low:high], query.to_ms, config)
        return records, count

    def _all_types(self, query: SearchQuery) -> list[Instance]:
        """The matches of every scheduling type, in (trigger, id) order."""
        found: list[Instance] = []
        for index in self._index.values():
            low, high = index.bounds(
                query.from_ms, query.to_ms, query.to_inclusive, query.from_inclusive
            )
            found += query.keep(index.items[low:high])
        return sorted(found, key=_position)

    def changed_ids(self) -> set[str]:
        """Ids of the instances inserted, moved or deleted since the emulator started: a read
        while they changed may hold each of them or not (see ``Emulator.changed_ids``)."""
        with self._lock:
            return set(self._changed)

    def truth(
        self,
        start_ms: int | None = None,
        end_ms: int | None = None,
        scheduling_type: int | None = None,
    ) -> list[TruthInstance]:
        """Copies of the instances triggered in ``[start_ms, end_ms)``, in (trigger, id) order.

        Raises:
            ConfigError: ``scheduling_type`` is not 0, 1, 2 or None.
        """
        if scheduling_type not in (None, 0, 1, 2):
            raise ConfigError(f"scheduling_type must be 0, 1, 2 or None, not {scheduling_type!r}")
        kinds = (0, 1, 2) if scheduling_type is None else (scheduling_type,)
        found: list[tuple[str, TruthInstance]] = []
        with self._lock:
            for kind in kinds:
                index = self._index[kind]
                low = 0 if start_ms is None else bisect.bisect_left(index.triggers, start_ms)
                high = (
                    len(index.items)
                    if end_ms is None
                    else bisect.bisect_left(index.triggers, end_ms)
                )
                found += [
                    # Record values are immutable scalars and strings: a shallow copy is a deep one.
                    (item.instance_id, TruthInstance(kind, item.trigger_ms, dict(item.record())))
                    for item in index.items[low:high]
                ]
        found.sort(key=lambda pair: (pair[1].trigger_ms, pair[0]))
        return [truth for _, truth in found]

    def _insert(self, query: SearchQuery, config: EmulatorConfig) -> None:
        """Append up to ``insert_count`` runs after the latest trigger of the window, before its
        end, created now (their update time is now, unless update times are frozen)."""
        count = config.insert_count
        flows = self._flows[query.scheduling_type]
        index = self._index[query.scheduling_type]
        low, high = index.bounds(query.from_ms, query.to_ms, to_inclusive=False)
        cursor = index.triggers[high - 1] if high > low else -(-query.from_ms // 1000) * 1000 - 1000
        for _ in range(count):
            cursor += self._rng.randint(1, _MAX_INSERT_GAP_S) * 1000
            if not flows or cursor >= query.to_ms:
                return
            free = [
                f
                for f in self._rng.sample(flows, min(5, len(flows)))
                if (f.flow_id, cursor) not in self._taken
            ]
            if not free:
                continue
            item = new_run(
                self._rng,
                free[0],
                cursor,
                self._tz,
                self._seed,
                self._malformed_rate,
                self._timestamp_shows,
            )
            if config.update_times == "move":
                item.update_ms = max(item.update_ms, _server_now_ms(config))
            self._taken.add((item.flow.flow_id, cursor))
            index.add(item)
            self._changed.add(item.instance_id)
            self._counters.add("inserted")

    def _move_one(
        self, index: _TypeIndex, window: list[Instance], to_ms: int, config: EmulatorConfig
    ) -> None:
        """Reschedule one run of the window a second later, staying inside the window."""
        candidates = [
            item
            for item in window
            if item.trigger_ms + 1000 < to_ms
            and (item.flow.flow_id, item.trigger_ms + 1000) not in self._taken
        ]
        if not candidates:
            return
        item = self._rng.choice(candidates)
        index.remove(item)
        self._taken.discard((item.flow.flow_id, item.trigger_ms))
        item.move_trigger(item.trigger_ms + 1000, _update_ms(item, _server_now_ms(config), config))
        self._taken.add((item.flow.flow_id, item.trigger_ms))
        index.add(item)
        self._changed.add(item.instance_id)
        self._counters.add("moved")

    def _delete_one(self, index: _TypeIndex, matches: list[Instance]) -> list[Instance]:
        """Delete one of the matches; the matches without it."""
        if not matches:
            return matches
        item = self._rng.choice(matches)
        index.remove(item)
        self._taken.discard((item.flow.flow_id, item.trigger_ms))
        self._changed.add(item.instance_id)
        self._counters.add("deleted")
        return [match for match in matches if match is not item]

    def _change_statuses(self, window: list[Instance], count: int, config: EmulatorConfig) -> None:
        candidates = [item for item in window if item.status in NOT_FINAL]
        now_ms = _server_now_ms(config)
        for item in self._rng.sample(candidates, min(count, len(candidates))):
            advance(self._rng, item, _update_ms(item, now_ms, config))
            self._counters.add("status_changes")

    def late_changes(
        self, count: int, start_ms: int | None, end_ms: int | None, config: EmulatorConfig
    ) -> list[LateChange]:
        """Change ``count`` instances triggered in ``[start_ms, end_ms)`` (fewer when fewer can
        change), each at its own server instant, so no two share an update time.

        Which instances change, and how, depends only on the seed, the instances and how many
        times this was called before: two emulators of one config given the same calls make
        the same changes.
        """
        with self._lock:
            self._late_calls += 1
            rng = random.Random(f"{self._seed}:late:{self._late_calls}")
            candidates = [
                item
                for index in self._index.values()
                for item in index.items
                if item.status in CHANGEABLE
                and (start_ms is None or item.trigger_ms >= start_ms)
                and (end_ms is None or item.trigger_ms < end_ms)
            ]
            candidates.sort(key=_position)
            changes = []
            now_ms = _server_now_ms(config)
            for item in rng.sample(candidates, min(count, len(candidates))):
                now_ms = max(now_ms + 1, item.update_ms + 1)
                changes.append(
                    apply_late_change(rng, item, now_ms, _update_ms(item, now_ms, config))
                )
                self._counters.add("late_changes")
            return changes


def _server_now_ms(config: EmulatorConfig) -> int:
    """The server clock in epoch ms, skewed by ``clock_skew_ms``."""
    return int(time.time() * 1000) + config.clock_skew_ms


def _update_ms(item: Instance, now_ms: int, config: EmulatorConfig) -> int:
    """The update time a change at ``now_ms`` gives ``item``: a new one, later than its last,
    unless update times are frozen."""
    if config.update_times == "frozen":
        return item.update_ms
    return max(item.update_ms + 1, now_ms)
