"""Exact extraction: every flow instance of a trigger window, each exactly once, with the proof.

How completeness is proven. Pages are requested sorted by trigger time. Under a fixed set of
matches, an offset walk whose pages are all full but the last returns exactly as many rows as there
are matches; rows that tie on the trigger time may come back in a different order on each page, so
a tie group that straddles a page boundary can return one instance twice and another never. Ties
are local, though: a tie group always occupies the same positions, so if no instance of it came
back twice, all of it came back. Every trigger second where a duplicate appeared is read again,
split into disjoint subsets by ``expression`` (instance ids are ``{flowId}-{timestamp}``, so
``"7-"`` matches the flows whose id ends in 7, ``"17-"`` those ending in 17, ...) until each subset
pages without a duplicate. New instances appear after the latest trigger of a window, so they
extend a walk rather than shift it; status changes do not change membership because every status
is requested.

Where the documentation disagrees, the gateway is asked rather than assumed: the sorter field naming
(``trigger_time`` or ``triggerTime``), the page base (1-based, 0 accepted as 1, or 0-based), whether
``toTriggerTime`` is inclusive, and whether ``count`` is the total (then it must match what was
received) or the page length.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import tzinfo
from typing import Any

from flowinst_etl.exceptions import (
    FatalApiError,
    FlowinstError,
    IncompleteExtractionError,
    ResponseFormatError,
)
from flowinst_etl.gateway.client import EnosClient, SearchPage, SearchQuery
from flowinst_etl.model import SCHEDULING_TYPES, FoundInstance
from flowinst_etl.windows import Window, server_time_to_epoch_ms

log = logging.getLogger(__name__)

SORTER_FIELDS = ("trigger_time", "triggerTime")
_INVALID_PARAMETER = 62102
_SECOND_MS = 1000
_SPLIT_DEPTH = 6
_SPLITTABLE_ID = re.compile(r"^(\d+)-")


@dataclass
class Reconciliation:
    """What it took to extract a window, and the figures that prove it complete."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    throttled: int = 0
    token_renewals: int = 0
    rate_limit_wait_ms: int = 0
    rows_received: int = 0
    duplicates_dropped: int = 0
    out_of_window_dropped: int = 0
    repaired_seconds: int = 0
    drift: int = 0
    count_reported: int | None = None
    instances: int = 0

    def absorb(self, other: Reconciliation) -> None:
        """Add another part's figures to these (``count_reported`` adds up only where known)."""
        for name, value in asdict(other).items():
            if name == "count_reported":
                if value is not None:
                    self.count_reported = (self.count_reported or 0) + value
            else:
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """The figures as a flat mapping (``count_reported`` -1 when the gateway's count is a page
        length)."""
        figures = asdict(self)
        figures["count_reported"] = -1 if self.count_reported is None else self.count_reported
        return figures


@dataclass(frozen=True)
class Extraction:
    """Every instance of one window, sorted by trigger time and id, with its reconciliation."""

    window: Window
    instances: list[FoundInstance]
    reconciliation: Reconciliation


@dataclass
class GatewayConventions:
    """What this gateway does where the documentation disagrees; learnt once per extractor."""

    sorter_field: str | None = None
    first_page_no: int | None = None
    page_base: int | None = None
    to_inclusive: bool | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class _Row:
    record: dict[str, Any]
    trigger_ms: int


class _Walk:
    """The rows of one offset walk, keyed by instance id, with the seconds where duplicates came."""

    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        self.duplicate_seconds: set[int] = set()
        self.last_count: int | None = None
        self.count_is_total = False


class Extractor:
    """Extracts windows from one gateway, ``max_workers`` requests in flight at most.

    Args:
        client: the gateway client (its rate limit is shared by all workers).
        max_workers: concurrent (window, scheduling type) walks.
    """

    def __init__(self, client: EnosClient, max_workers: int = 4) -> None:
        self.client = client
        self.max_workers = max_workers
        self.page_size = client.settings.page_size
        self.conventions = GatewayConventions()

    def extract(self, window: Window) -> Extraction:
        """Every instance of ``window``, of every scheduling type and status, each exactly once.

        Raises:
            IncompleteExtractionError: completeness could not be established.
            FlowinstError: the gateway failed (see the error tree).
        """
        for _, outcome in self.extract_many([window]):
            if isinstance(outcome, Extraction):
                return outcome
            raise outcome
        raise AssertionError("extract_many yields one outcome per window")

    def extract_many(
        self, windows: Iterable[Window]
    ) -> Iterator[tuple[Window, Extraction | FlowinstError]]:
        """Extract windows concurrently; yield each as soon as it is done, a failure as its error.

        Work is split into (window, scheduling type) walks run by ``max_workers`` threads, fed
        lazily, so memory is bounded by the windows in flight, not by the range.
        """
        server_tz = self.client.server_timezone()
        units = ((w, t) for w in windows for t in SCHEDULING_TYPES)
        parts: dict[Window, list[tuple[int, dict[str, _Row], Reconciliation]]] = {}
        failed: dict[Window, FlowinstError] = {}
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="flowinst-extract") as pool:
            running: dict[Future[tuple[dict[str, _Row], Reconciliation]], tuple[Window, int]] = {}

            def submit_next() -> None:
                unit = next(units, None)
                if unit is not None:
                    running[pool.submit(self._extract_unit, *unit, server_tz)] = unit

            for _ in range(self.max_workers):
                submit_next()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    window, scheduling_type = running.pop(future)
                    submit_next()
                    error = future.exception()
                    if error is not None and not isinstance(error, FlowinstError):
                        raise error
                    if error is not None:
                        failed.setdefault(window, error)
                        parts.setdefault(window, []).append((scheduling_type, {}, Reconciliation()))
                    else:
                        parts.setdefault(window, []).append((scheduling_type, *future.result()))
                    if len(parts[window]) == len(SCHEDULING_TYPES):
                        window_parts = parts.pop(window)
                        if window in failed:
                            yield window, failed.pop(window)
                        else:
                            yield window, _assemble(window, window_parts)

    def _extract_unit(
        self, window: Window, scheduling_type: int, server_tz: tzinfo
    ) -> tuple[dict[str, _Row], Reconciliation]:
        self._learn_conventions(window)
        return _TypeWalker(self, scheduling_type, window, server_tz).collect()

    def check_access(self) -> None:
        """Fail fast on a bad gateway, credentials, user/org or privileges, before any work.

        Raises:
            FlowinstError: what is wrong, from the gateway's own answers.
        """
        self.client.server_timezone()
        now = int(time.time() * 1000)
        self._learn_conventions(Window(now - _SECOND_MS, now))

    def _learn_conventions(self, window: Window) -> None:
        """Ask the gateway which sorter name and first page number it takes (once)."""
        conventions = self.conventions
        with conventions.lock:
            if conventions.sorter_field is None:
                conventions.sorter_field = self._accepted_sorter(window)
            if conventions.first_page_no is None:
                probe = self._probe(window, page_no=0, sorter=conventions.sorter_field)
                conventions.first_page_no = 0 if probe else 1
                conventions.page_base = None if probe else 1

    def _accepted_sorter(self, window: Window) -> str:
        for sorter in SORTER_FIELDS:
            if self._probe(window, page_no=1, sorter=sorter):
                return sorter
        raise FatalApiError(
            _INVALID_PARAMETER,
            "the gateway accepts none of the sorter fields " + ", ".join(SORTER_FIELDS),
            "List Flow Instances cannot be paged in trigger-time order on this gateway",
        )

    def _probe(self, window: Window, page_no: int, sorter: str) -> bool:
        """Whether the gateway accepts a one-row query with this page number and sorter."""
        query = SearchQuery(1, window.start_ms, window.start_ms + 1, page_no, 1, sorter)
        try:
            self.client.search(query)
        except FatalApiError as error:
            if error.code == _INVALID_PARAMETER:
                return False
            raise
        return True


class _TypeWalker:
    """Collects one scheduling type of one window."""

    def __init__(
        self, extractor: Extractor, scheduling_type: int, window: Window, server_tz: tzinfo
    ) -> None:
        self.extractor = extractor
        self.conventions = extractor.conventions
        self.page_size = extractor.page_size
        self.scheduling_type = scheduling_type
        self.window = window
        self.server_tz = server_tz
        self.reconciliation = Reconciliation()

    def collect(self) -> tuple[dict[str, _Row], Reconciliation]:
        self._learn_bound()
        walk = self._walk(self.window.start_ms, self.window.end_ms, "")
        rows = walk.rows
        for second in sorted(walk.duplicate_seconds):
            lo, hi = max(second, self.window.start_ms), min(second + _SECOND_MS, self.window.end_ms)
            rows = {i: r for i, r in rows.items() if not lo <= r.trigger_ms < hi}
            rows.update(self._split_second(lo, hi, walk, ""))
            self.reconciliation.repaired_seconds += 1
        if walk.count_is_total and walk.last_count is not None:
            self.reconciliation.count_reported = walk.last_count
            if len(rows) < walk.last_count:
                raise IncompleteExtractionError(
                    f"type {self.scheduling_type} window [{self.window.start_ms}, "
                    f"{self.window.end_ms}): the gateway counts {walk.last_count} instances but "
                    f"only {len(rows)} were received"
                )
        kept = {i: r for i, r in rows.items() if self.window.contains(r.trigger_ms)}
        self.reconciliation.out_of_window_dropped += len(rows) - len(kept)
        return kept, self.reconciliation

    def _split_second(self, lo: int, hi: int, parent: _Walk, expression: str) -> dict[str, _Row]:
        """Every instance of one trigger second, read in disjoint id subsets until each is exact."""
        depth = len(expression) - 1 if expression else 0
        if depth >= _SPLIT_DEPTH:
            raise IncompleteExtractionError(
                f"type {self.scheduling_type}: the instances triggered at {lo} could not be paged "
                f"consistently even in subsets of ids ending in {expression!r}"
            )
        for instance_id, row in parent.rows.items():
            if lo <= row.trigger_ms < hi and expression in instance_id:
                match = _SPLITTABLE_ID.match(instance_id)
                if match is None or len(match[1]) <= depth:
                    raise IncompleteExtractionError(
                        f"type {self.scheduling_type}: instance id {instance_id!r} triggered at "
                        f"{lo} cannot be told apart by expression; the second cannot be split"
                    )
        rows: dict[str, _Row] = {}
        suffix = expression or "-"
        for digit in "0123456789":
            walk = self._walk(lo, hi, digit + suffix)
            if walk.duplicate_seconds:
                rows.update(self._split_second(lo, hi, walk, digit + suffix))
            else:
                rows.update(walk.rows)
        return {i: r for i, r in rows.items() if lo <= r.trigger_ms < hi}

    def _walk(self, from_ms: int, to_ms: int, expression: str) -> _Walk:
        """Offset-page one query to its end, noting the seconds where an id came back twice."""
        walk = _Walk()
        first = self._page(from_ms, to_ms, expression, self.conventions.first_page_no, walk)
        if len(first) < self.page_size:
            if walk.count_is_total:
                raise IncompleteExtractionError(
                    f"the gateway sent {len(first)} rows for pageSize {self.page_size} while "
                    f"counting {walk.last_count}: it caps the page size; lower ENOS_PAGE_SIZE"
                )
            return walk
        page_no = self._second_page_no(from_ms, to_ms, expression, first, walk)
        previous = first
        while page_no is not None:
            records = self._page(from_ms, to_ms, expression, page_no, walk)
            if records and _ids(records) == _ids(previous):
                raise IncompleteExtractionError(
                    f"the gateway answered page {page_no} with the same instances as the page "
                    "before: it does not page"
                )
            if len(records) < self.page_size or self._reached_total(walk):
                break
            previous, page_no = records, page_no + 1
        return walk

    def _second_page_no(
        self, from_ms: int, to_ms: int, expression: str, first: list[dict[str, Any]], walk: _Walk
    ) -> int | None:
        """The page number after the first; learns the page base from the gateway if unknown.

        A gateway that accepts page 0 either counts from 0 or treats 0 as 1: page 1 then repeats
        page 0 exactly (same effective page), or starts where page 0 ended.
        """
        if self._reached_total(walk):
            return None
        conventions = self.conventions
        with conventions.lock:  # one walk asks; the others wait for its answer
            if conventions.page_base is not None:
                return conventions.page_base + 1
            probe = _Walk()
            second = self._page(from_ms, to_ms, expression, 1, probe)
            conventions.page_base = 1 if _ids(second) == _ids(first) else 0
            base = conventions.page_base
        if base == 1:
            return 2
        self._merge(walk, probe)
        return None if len(second) < self.page_size or self._reached_total(walk) else 2

    def _page(
        self, from_ms: int, to_ms: int, expression: str, page_no: int | None, walk: _Walk
    ) -> list[dict[str, Any]]:
        assert page_no is not None
        # A gateway whose toTriggerTime is inclusive is asked for [from, to - 1 ms], so that runs
        # appended to a window land at the end of the walk, not before the next day's midnight.
        last = to_ms - 1 if self.conventions.to_inclusive else to_ms
        page = self._search(from_ms, last, expression, page_no, self.page_size)
        if page.count is not None and page.count > len(page.records):
            walk.count_is_total = True
        if page.count is not None and page.count < len(page.records) and walk.count_is_total:
            raise ResponseFormatError(
                f"count {page.count} is below the {len(page.records)} rows sent"
            )
        walk.last_count = page.count
        self._merge_records(walk, page.records)
        return page.records

    def _search(
        self, from_ms: int, to_ms: int, expression: str, page_no: int, page_size: int
    ) -> SearchPage:
        """One request, accounted in the reconciliation."""
        assert self.conventions.sorter_field is not None
        query = SearchQuery(
            self.scheduling_type,
            from_ms,
            to_ms,
            page_no,
            page_size,
            self.conventions.sorter_field,
            expression,
        )
        page = self.extractor.client.search(query)
        stats = self.reconciliation
        attempts = page.attempts
        stats.requests += 1 + attempts.retries + attempts.resends
        stats.pages += 1
        stats.retries += attempts.retries
        stats.throttled += attempts.throttled
        stats.token_renewals += attempts.token_renewals
        stats.rate_limit_wait_ms += round(attempts.limiter_wait_s * 1000)
        stats.rows_received += len(page.records)
        return page

    def _learn_bound(self) -> None:
        """Whether toTriggerTime is inclusive: ask for ``[T, T]`` where an instance is at ``T``.

        Learnt once, from the first window that has an instance.
        """
        conventions = self.conventions
        with conventions.lock:
            first_page_no = conventions.first_page_no
            if conventions.to_inclusive is not None or first_page_no is None:
                return
            window = self.window
            page = self._search(window.start_ms, window.end_ms, "", first_page_no, 1)
            if not page.records:
                return
            trigger_ms = self._trigger_ms(page.records[0])
            at = self._search(trigger_ms, trigger_ms, "", first_page_no, 1)
            conventions.to_inclusive = bool(at.records)

    def _reached_total(self, walk: _Walk) -> bool:
        return (
            walk.count_is_total
            and walk.last_count is not None
            and len(walk.rows) >= walk.last_count
        )

    def _merge(self, walk: _Walk, other: _Walk) -> None:
        self._merge_records(walk, [row.record for row in other.rows.values()])
        walk.last_count = other.last_count
        walk.count_is_total = walk.count_is_total or other.count_is_total

    def _merge_records(self, walk: _Walk, records: list[dict[str, Any]]) -> None:
        for record in records:
            instance_id = record.get("instanceId")
            if not isinstance(instance_id, str) or not instance_id:
                raise ResponseFormatError(
                    f"a flow instance without an instanceId in the answer: {_describe(record)}"
                )
            row = _Row(record, self._trigger_ms(record))
            seen = walk.rows.get(instance_id)
            if seen is not None:
                self.reconciliation.duplicates_dropped += 1
                walk.duplicate_seconds.add(row.trigger_ms - row.trigger_ms % _SECOND_MS)
                if seen.record != record:
                    self.reconciliation.drift += 1
            walk.rows[instance_id] = row

    def _trigger_ms(self, record: dict[str, Any]) -> int:
        text = record.get("triggerTime")
        try:
            if isinstance(text, str):
                return server_time_to_epoch_ms(text, self.server_tz)
        except ValueError as error:
            raise _unreadable_trigger(record) from error
        raise _unreadable_trigger(record)


def _assemble(
    window: Window, parts: list[tuple[int, dict[str, _Row], Reconciliation]]
) -> Extraction:
    """One window's instances from its per-type parts, each id once, ordered by trigger and id."""
    reconciliation = Reconciliation()
    found: dict[str, tuple[int, FoundInstance]] = {}
    for scheduling_type, rows, part in sorted(parts, key=lambda p: p[0]):
        reconciliation.absorb(part)
        for instance_id, row in rows.items():
            if instance_id in found:
                reconciliation.duplicates_dropped += 1
            else:
                found[instance_id] = (row.trigger_ms, FoundInstance(scheduling_type, row.record))
    ordered = sorted(found, key=lambda i: (found[i][0], i))
    reconciliation.instances = len(ordered)
    return Extraction(window, [found[i][1] for i in ordered], reconciliation)


def _unreadable_trigger(record: dict[str, Any]) -> ResponseFormatError:
    return ResponseFormatError(
        f"instance {record.get('instanceId')!r} has an unreadable triggerTime "
        f"{record.get('triggerTime')!r}"
    )


def _ids(records: list[dict[str, Any]]) -> set[Any]:
    return {record.get("instanceId") for record in records}


def _describe(record: dict[str, Any]) -> str:
    return "{" + ", ".join(sorted(record)[:8]) + ("…}" if len(record) > 8 else "}")


def minimum_requests(instances: int, page_size: int) -> int:
    """The fewest requests that could return ``instances`` rows: the baseline of the benchmark."""
    return max(1, math.ceil(instances / page_size))
