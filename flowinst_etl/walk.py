"""One scheduling type of one window, read by offset pages and proven complete from the answers.

The beliefs this relies on, and how each is checked, are listed in ``flowinst_etl.extract``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from functools import partial
from typing import Any, NoReturn

from flowinst_etl.exceptions import IncompleteExtractionError, ResponseFormatError
from flowinst_etl.gateway.client import EnosClient, SearchPage, SearchQuery
from flowinst_etl.read_ahead import ReadAhead
from flowinst_etl.spool import Kept, Spool, load
from flowinst_etl.windows import Window, names_one_instant, server_time_to_epoch_ms

log = logging.getLogger(__name__)

SECOND_MS = 1000
#: The longest id suffix (digits of the flow id) a tied second is split by.
SPLIT_DEPTH = 6
#: Pages in a row without a new instance that show the gateway ignores pageNo (a tie reordered
#: per page can repeat a page or two, never this many).
STALE_PAGES = 8


@dataclass
class Figures:
    """What reading one part took; see docs/tables.md for each figure's meaning."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    throttled: int = 0
    token_renewals: int = 0
    rate_limit_wait_ms: int = 0
    rows_received: int = 0
    duplicates_dropped: int = 0
    repaired_seconds: int = 0
    drift: int = 0
    count_reported: int | None = None


@dataclass
class GatewayConventions:
    """What this gateway does where the documents are silent or disagree; learnt once per run.

    Attributes:
        sorter_field: the sorter name it accepts (``trigger_time`` or ``triggerTime``).
        first_page_no / page_base: the first page number it accepts, and whether page 0 is the
            first page (0) or read as page 1 (1); ``None`` until seen.
        from_inclusive / to_inclusive: whether each window bound is in the window.
        page_size: the rows a page holds: the configured size, or less where the gateway caps it.
        page_size_capped: whether ``page_size`` was lowered to the gateway's cap.
        expression_finds_ids: whether ``expression`` finds an instance by its id.
        count_is_total: whether ``count`` is every match (it was seen above the rows sent) or a
            page length (seen below them).
    """

    requested_page_size: int
    sorter_field: str | None = None
    first_page_no: int | None = None
    page_base: int | None = None
    from_inclusive: bool | None = None
    to_inclusive: bool | None = None
    page_size: int = 0
    page_size_capped: bool = False
    expression_finds_ids: bool | None = None
    count_is_total: bool | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self.page_size = self.page_size or self.requested_page_size


@dataclass(slots=True)
class Row:
    """One record as received (kept by a :class:`~flowinst_etl.spool.Spool`), with its trigger
    time read in the server timezone."""

    kept: Kept
    trigger_ms: int

    @property
    def record(self) -> dict[str, Any]:
        return load(self.kept)


class _Restart(Exception):
    """The page size was lowered to the gateway's cap: the walk starts again with it."""


class _Walk:
    """The rows of one offset walk by id, and how many rows each trigger second gave."""

    def __init__(self, from_ms: int, to_ms: int, expression: str, size: int) -> None:
        self.from_ms, self.to_ms, self.expression, self.size = from_ms, to_ms, expression, size
        self.rows: dict[str, Row] = {}
        self.reads: Counter[int] = Counter()
        self.positions = 0
        self.duplicate_seconds: set[int] = set()
        self.last_count: int | None = None
        #: the highest ``count`` a page of the walk gave, where ``count`` is a total
        self.peak_count = 0
        self.count_is_total = False
        self.last_trigger_ms = -(2**63)
        #: ended on a short page with ``count`` a page length: what follows must be probed
        self.open_end = False
        #: pages asked for ahead of the one being read, by page number
        self.ahead: dict[int, Future[SearchPage]] = {}
        #: whether the page read last was asked for ahead (its answer may be older than others)
        self.read_ahead = False


class TypeWalker:
    """Collects one scheduling type of one window, or raises why it cannot be proven complete.

    Args:
        client: the gateway client.
        conventions: what is known of the gateway (shared by every walker of a run).
        scheduling_type: 0 manual, 1 periodic, 2 temporary.
        window: the trigger window, half-open.
        server_tz: the zone the gateway's time strings are read in.
        spool: keeps the records read.
        read_ahead: lends idle request slots for pages ahead of the one being read.
    """

    def __init__(
        self,
        client: EnosClient,
        conventions: GatewayConventions,
        scheduling_type: int,
        window: Window,
        server_tz: tzinfo,
        spool: Spool,
        read_ahead: ReadAhead,
    ) -> None:
        self.client = client
        self.conventions = conventions
        self.scheduling_type = scheduling_type
        self.window = window
        self.server_tz = server_tz
        self.spool = spool
        self.read_ahead = read_ahead
        self.figures = Figures()
        self._figures_lock = threading.Lock()  # pages read ahead count their requests too

    def collect(self) -> tuple[dict[str, Row], Figures]:
        """Every instance of the type in the window, by id, with the figures of reading it.

        Raises:
            IncompleteExtractionError: completeness cannot be proven; says what the gateway did.
            FlowinstError: the gateway failed.
        """
        if not self._learn_bounds():
            self.figures.count_reported = 0
            return {}, self.figures
        start, end = self.window.start_ms, self.window.end_ms
        walk = self._walk(start, end, "")
        rows = walk.rows
        for second in sorted(walk.duplicate_seconds):
            lo, hi = max(second, start), min(second + SECOND_MS, end)
            seen = {i: r for i, r in rows.items() if lo <= r.trigger_ms < hi}
            repaired = self._split(lo, hi, "", walk.reads[second], seen)
            rows = {i: r for i, r in rows.items() if i not in seen} | repaired
            self.figures.repaired_seconds += 1
        if len(rows) != walk.positions:
            self._fail(
                f"a walk of {walk.positions} rows holds {len(rows)} distinct instances after "
                "re-reading its tied seconds: the gateway's order changed while paging"
            )
        if walk.count_is_total and walk.last_count != len(rows):
            self._fail(f"the gateway counts {walk.last_count} instances but sent {len(rows)}")
        if rows:
            self._check_time_strings(min(rows.values(), key=lambda r: r.trigger_ms))
        figures = self.figures
        figures.rows_received = walk.positions
        figures.duplicates_dropped = walk.positions - len(walk.rows)
        if walk.last_count == walk.positions:  # a total, or the length of the only page
            figures.count_reported = walk.last_count
        return rows, figures

    # --- the walk ---------------------------------------------------------------------------

    def _walk(self, from_ms: int, to_ms: int, expression: str) -> _Walk:
        """Offset-page one query to its proven end, with the page size the gateway serves."""
        return self._with_tail(self._walk_sized(from_ms, to_ms, expression))

    def _walk_sized(self, from_ms: int, to_ms: int, expression: str) -> _Walk:
        """Offset-page one query to its last page, again from the start whenever the page size
        is lowered to the gateway's cap."""
        while True:
            try:
                return self._walk_once(from_ms, to_ms, expression)
            except _Restart:
                continue

    def _walk_once(self, from_ms: int, to_ms: int, expression: str) -> _Walk:
        walk = _Walk(from_ms, to_ms, expression, self.conventions.page_size)
        try:
            return self._pages(walk)
        finally:
            self._drop_ahead(walk)

    def _pages(self, walk: _Walk) -> _Walk:
        from_ms, to_ms, expression, size = walk.from_ms, walk.to_ms, walk.expression, walk.size
        page_no = self._first_page()
        first: list[dict[str, Any]] | None = None
        stale = 0  # consecutive pages that brought no new instance
        while True:
            known = len(walk.rows)
            records = self._page(walk, page_no)
            if first is None:
                first = records
            stale = stale + 1 if records and len(walk.rows) == known else 0
            if stale >= STALE_PAGES:
                self._fail(
                    f"the gateway answered {stale} pages in a row up to page {page_no} with "
                    "instances it had sent before: it does not page"
                )
            if walk.count_is_total and walk.last_count is not None:
                if walk.positions >= walk.last_count:
                    if walk.read_ahead:
                        self._confirm_count(walk)
                    self._check_nothing_deleted(walk)
                    return walk
                if len(records) < size:
                    self._short_page(len(records), size, walk.positions, walk.last_count)
            elif len(records) < size:
                after = self._search(
                    from_ms, to_ms, expression, self._next_page_no(page_no, first, walk), size
                )
                if after.records and not self._grew(walk, page_no, records, after.records):
                    self._short_page(len(records), size, walk.positions, None)
                walk.open_end = True
                return walk
            page_no = self._next_page_no(page_no, first, walk)

    def _with_tail(self, walk: _Walk) -> _Walk:
        """A walk whose page after its short last page was empty, with what arrived after it.

        Instances created while the window is paged trigger after every instance in it, so they
        land behind the last page and, a few at a time, would hide behind the empty page after
        it. ``[last trigger + 1 ms, end)`` must be empty; what it holds is read as a walk of its
        own and appended, until the window after the latest trigger read is empty (instances
        created all the while end at the window's end at the latest).
        """
        while walk.open_end:
            after_ms = walk.last_trigger_ms + 1 if walk.positions else walk.from_ms
            probe = self._search(
                after_ms, walk.to_ms, walk.expression, self._first_page(), walk.size
            )
            if not probe.records:
                return walk
            tail = self._walk_sized(after_ms, walk.to_ms, walk.expression)
            for instance_id, row in tail.rows.items():
                if instance_id in walk.rows:
                    self._fail(
                        f"instance {instance_id} came back at {_iso(row.trigger_ms)}, after the "
                        f"walk had read it at {_iso(walk.rows[instance_id].trigger_ms)}"
                    )
                walk.rows[instance_id] = row
            walk.positions += tail.positions
            walk.reads.update(tail.reads)
            walk.duplicate_seconds |= tail.duplicate_seconds
            walk.last_trigger_ms = max(walk.last_trigger_ms, tail.last_trigger_ms)
            walk.last_count = None
            walk.open_end = tail.open_end
        return walk

    def _grew(
        self,
        walk: _Walk,
        page_no: int,
        short: list[dict[str, Any]],
        after: list[dict[str, Any]],
    ) -> bool:
        """Whether rows behind a short page are instances created since it was read.

        New instances trigger after every instance of the window, so the short page, asked
        again, holds its rows followed by new ones, and the page after it holds only new ones;
        a cap or rows dropped after LIMIT leave the short page as it was. What grew is read by
        ``_with_tail`` as a continuation of the walk.
        """
        again = self._search(walk.from_ms, walk.to_ms, walk.expression, page_no, walk.size)
        had = _ids(short)
        added = [r for r in again.records if r.get("instanceId") not in had] + after
        return (
            len(again.records) > len(short)
            and had <= _ids(again.records)
            and all(
                r.get("instanceId") not in walk.rows and self._trigger_ms(r) > walk.last_trigger_ms
                for r in added
            )
        )

    def _short_page(self, got: int, size: int, positions: int, count: int | None) -> None:
        """A page shorter than asked with rows after it: adapt to a cap once, else refuse."""
        conventions = self.conventions
        more = f"while counting {count}" if count is not None else "and more rows after it"
        with conventions.lock:
            if got > 0 and not conventions.page_size_capped and size == conventions.page_size:
                conventions.page_size = got
                conventions.page_size_capped = True
                log.warning(
                    "the gateway serves at most %d rows per page although %d were asked; "
                    "paging by %d",
                    got,
                    conventions.requested_page_size,
                    got,
                )
                raise _Restart
            if size > conventions.page_size:
                raise _Restart
        asked = f"pageSize {size}"
        if size != conventions.requested_page_size:
            asked += (
                f" (the most it served before; ENOS_PAGE_SIZE is {conventions.requested_page_size})"
            )
        self._fail(
            f"the gateway sent {got} rows for {asked} at offset {positions - got} {more}: it "
            "drops rows from pages after cutting them (a filter after LIMIT), so the window "
            "cannot be proven complete"
        )

    def _next_page_no(self, page_no: int, first: list[dict[str, Any]] | None, walk: _Walk) -> int:
        """The page after ``page_no``; after page 0, learns once whether 0 is read as 1."""
        conventions = self.conventions
        if page_no != 0:
            return page_no + 1
        with conventions.lock:
            if conventions.page_base is None and first:
                probe = self._search(walk.from_ms, walk.to_ms, walk.expression, 1, walk.size)
                # Read as page 1, page 0 comes again, grown only by instances created since;
                # as the second page it holds none of the first (ties stay in their positions).
                conventions.page_base = 1 if _ids(first) <= _ids(probe.records) else 0
            base = conventions.page_base
        return 2 if base == 1 else 1

    def _page(self, walk: _Walk, page_no: int) -> list[dict[str, Any]]:
        size = walk.size
        page = self._fetch(walk, page_no)
        records = page.records
        if len(records) > size:
            raise ResponseFormatError(f"the gateway sent {len(records)} rows for pageSize {size}")
        sent = walk.positions + len(records)
        conventions = self.conventions
        if conventions.count_is_total is None and page.count is not None and page.count != sent:
            with conventions.lock:
                conventions.count_is_total = page.count > sent
        walk.count_is_total = conventions.count_is_total is True
        if walk.count_is_total and (page.count is None or page.count < sent):
            raise ResponseFormatError(
                f"count {page.count} is below the {sent} rows sent, though this gateway's count "
                "was a total before"
            )
        walk.last_count = page.count
        if walk.count_is_total and page.count is not None:
            walk.peak_count = max(walk.peak_count, page.count)
        self._ask_ahead(walk, page_no, sent)
        for record in records:
            self._take(walk, record)
        return records

    # --- pages read ahead -------------------------------------------------------------------

    def _fetch(self, walk: _Walk, page_no: int) -> SearchPage:
        """Page ``page_no`` of ``walk``: the one asked for ahead, or asked for now."""
        ahead = walk.ahead.pop(page_no, None)
        walk.read_ahead = ahead is not None
        if ahead is not None:
            return ahead.result()
        return self._search(walk.from_ms, walk.to_ms, walk.expression, page_no, walk.size)

    def _ask_ahead(self, walk: _Walk, page_no: int, sent: int) -> None:
        """Ask for the pages after ``page_no`` (``sent`` rows into the walk) that the walk will
        read: the next one (the walk's own request, asked for before this page's rows are
        checked) and its share of the idle request slots beyond it; only where ``count`` is a
        total (the pages left are known) and past the first page (page numbers are then
        consecutive). They are still checked in order.

        The last page is never asked for ahead: pages asked for together may be answered in
        any order, and the page that ends a walk must carry a count newer than every answer
        read before it (instances arriving meanwhile extend the walk, as in a sequential one).
        """
        if page_no < 1 or not walk.count_is_total or walk.last_count is None:
            return
        left = -(-(walk.last_count - sent) // walk.size)  # pages after this one
        asked = 1 + self.read_ahead.depth()
        for ahead_no in range(page_no + 1, page_no + min(left, 1 + asked)):
            if ahead_no not in walk.ahead:
                request = partial(
                    self._search, walk.from_ms, walk.to_ms, walk.expression, ahead_no, walk.size
                )
                walk.ahead[ahead_no] = self.read_ahead.submit(request)

    def _confirm_count(self, walk: _Walk) -> None:
        """A walk ended on a page asked for ahead (its count fell below the pages asked for):
        the count, asked for now, must still be the rows read."""
        self._drop_ahead(walk)
        page = self._search(walk.from_ms, walk.to_ms, walk.expression, self._first_page(), 1)
        if page.count != walk.positions:
            self._fail(
                f"the gateway's count went from {walk.last_count} to {page.count} while pages "
                f"were read ahead, after {walk.positions} rows; run the day again"
            )
        walk.last_count = page.count

    def _check_nothing_deleted(self, walk: _Walk) -> None:
        """The count that ends a walk is newer than every answer before it (its page is never
        read ahead), and arrivals only raise a total: one read earlier above it means instances
        were deleted while the window was paged. A deletion behind the walk's offset makes the
        pages after it skip one instance, which no later count shows (the rows read match it).
        """
        if walk.peak_count > (walk.last_count or 0):
            self._fail(
                f"the gateway's count fell from {walk.peak_count} to {walk.last_count} while "
                "the window was paged: instances were deleted, and offset pages skip one "
                "instance for each deletion behind them; run the day again"
            )

    def _drop_ahead(self, walk: _Walk) -> None:
        """Let go of pages asked for ahead that the walk did not read (it restarted, ended or
        failed); one already sent is waited for, so its request is in the figures."""
        for ahead in walk.ahead.values():
            if not ahead.cancel():
                with contextlib.suppress(Exception):
                    ahead.result()
        walk.ahead.clear()

    def _take(self, walk: _Walk, record: dict[str, Any]) -> None:
        """Add one row to a walk, checking everything one row can show."""
        from_ms, to_ms, expression = walk.from_ms, walk.to_ms, walk.expression
        instance_id = record.get("instanceId")
        if not isinstance(instance_id, str) or not instance_id:
            raise ResponseFormatError(
                f"a flow instance without an instanceId in the answer: {_describe(record)}"
            )
        trigger_ms = self._trigger_ms(record)
        for key in ("startTime", "endTime", "timestamp"):
            self._check_one_instant(record, key)
        if not from_ms <= trigger_ms < to_ms:
            self._fail(
                f"instance {instance_id} triggered at {record.get('triggerTime')!r} "
                f"({_iso(trigger_ms)} read in {self.server_tz}) lies outside the window "
                f"asked for [{_iso(from_ms)}, {_iso(to_ms)}): {self._zone_advice()}"
            )
        if trigger_ms < walk.last_trigger_ms:
            self._fail(
                f"instance {instance_id} at {_iso(trigger_ms)} came after one at "
                f"{_iso(walk.last_trigger_ms)}: the gateway does not sort by trigger time"
            )
        if expression and expression not in instance_id.lower():
            self._fail(
                f"expression {expression!r} matched instance {instance_id} by something other "
                "than its id, so a tied second cannot be split into disjoint parts"
            )
        walk.last_trigger_ms = trigger_ms
        walk.positions += 1
        second = trigger_ms - trigger_ms % SECOND_MS
        walk.reads[second] += 1
        seen = walk.rows.get(instance_id)
        if seen is not None:
            if seen.trigger_ms != trigger_ms:
                self._fail(
                    f"instance {instance_id} moved from {_iso(seen.trigger_ms)} to "
                    f"{_iso(trigger_ms)} while its window was paged; run the day again"
                )
            walk.duplicate_seconds.add(second)
            if seen.record != record:
                self.figures.drift += 1
        walk.rows[instance_id] = Row(self.spool.keep(record), trigger_ms)

    # --- tied seconds -----------------------------------------------------------------------

    def _split(
        self, lo: int, hi: int, suffix: str, size: int, seen: dict[str, Row]
    ) -> dict[str, Row]:
        """Every instance of ``[lo, hi)`` whose flow id ends in ``suffix``, exactly.

        ``size`` is how many rows the inconsistent walk of this set gave: one per position, so
        the set's size. The set is read again in ten parts (flow ids ending in ``0 + suffix`` ..
        ``9 + suffix``), each split further until it pages without a repeat; an instance whose
        flow id is ``suffix`` itself is in no part and must have been seen before.
        """
        if len(suffix) >= SPLIT_DEPTH:
            self._fail(
                f"the {size} instances triggered at {_iso(lo)} with flow ids ending in {suffix} "
                "could not be paged consistently even in parts"
            )
        self._check_expression_finds_ids(lo, hi, next(iter(seen)))
        found: dict[str, Row] = {}
        for digit in "0123456789":
            part = digit + suffix
            walk = self._walk(lo, hi, part + "-")
            if walk.duplicate_seconds:
                found |= self._split(lo, hi, part, walk.positions, walk.rows)
            else:
                found |= walk.rows
        unsplittable = {
            i: r for i, r in seen.items() if i not in found and i.split("-", 1)[0] == suffix
        }
        lost = sorted(i for i in seen if i not in found and i not in unsplittable)
        if lost:
            self._fail(
                f"re-reading second {_iso(lo)} in parts by id did not find {lost[0]}, seen "
                "there before: it moved while the day was read (run the day again), or the "
                "gateway's expression does not split ids as assumed"
            )
        found |= unsplittable
        if len(found) != size:
            shorter = f"; or a flow id is no longer than {len(suffix)} digits" if suffix else ""
            self._fail(
                f"second {_iso(lo)} held {size} instances when paged but {len(found)} when "
                "re-read in parts by flow id: the gateway changed that second while the day was "
                f"read, run the day again{shorter}"
            )
        return found

    def _check_expression_finds_ids(self, lo: int, hi: int, instance_id: str) -> None:
        """Once per run: ``expression`` set to an instance's id must find that instance."""
        conventions = self.conventions
        with conventions.lock:
            if conventions.expression_finds_ids is None:
                page = self._search(lo, hi, instance_id, self._first_page(), conventions.page_size)
                conventions.expression_finds_ids = any(
                    r.get("instanceId") == instance_id for r in page.records
                )
            finds = conventions.expression_finds_ids
        if not finds:
            self._fail(
                f"the gateway's expression does not find instance ids (asked for {instance_id!r}, "
                "it answered without it), so a second whose ties it pages inconsistently cannot "
                "be re-read in parts; a larger ENOS_PAGE_SIZE may keep such seconds on one page"
            )

    # --- once per run: the window's bounds; per walk: the time strings --------------------------

    def _learn_bounds(self) -> bool:
        """Learn, once, whether each window bound is inclusive, from an instance at ``T``:
        ``[T, T + 1 s)`` holds it iff fromTriggerTime is inclusive, and ``{T}`` asked as
        ``[T - 1 ms, T]`` holds it iff toTriggerTime is inclusive.

        Returns False when the window, also widened by a millisecond on each side, holds no
        instance of the type, so it is empty whatever the bounds mean.
        """
        conventions = self.conventions
        with conventions.lock:
            if conventions.from_inclusive is not None and conventions.to_inclusive is not None:
                return True
            start, end = self.window.start_ms, self.window.end_ms
            size = conventions.page_size
            page = self._request(start, end, "", size)
            if not page.records:  # asked once more, widened by 1 ms at each end
                page = self._request(start - 1, end, "", size)
            if not page.records:
                return False
            # an instant after the start, so that the probes stay inside the window
            triggers = [self._trigger_ms(record) for record in page.records]
            at = next((t for t in triggers if t > start), triggers[0])
            above = self._request(at, at + SECOND_MS, "", 1)
            conventions.from_inclusive = bool(above.records) and (
                self._trigger_ms(above.records[0]) == at
            )
            at_end = self._request(at - 1, at, "", conventions.page_size).records
            conventions.to_inclusive = any(self._trigger_ms(r) == at for r in at_end)
            return True

    def _check_time_strings(self, row: Row) -> None:
        """The earliest row's time string, read in the server zone, must be where the gateway
        filters it: asked for exactly that instant, the gateway answers rows at it."""
        page = self._search(row.trigger_ms, row.trigger_ms + 1, "", self._first_page(), 1)
        if not page.records or self._trigger_ms(page.records[0]) != row.trigger_ms:
            self._fail(
                f"instance {row.record.get('instanceId')} at {row.record.get('triggerTime')!r} "
                f"reads as {_iso(row.trigger_ms)} in {self.server_tz}, but the gateway now "
                "holds nothing at that instant: either it moved since it was read (run the day "
                f"again) or {self._zone_advice()}"
            )

    def _zone_advice(self) -> str:
        """Why the time strings read wrong, and the setting that fixes it."""
        configured = self.client.settings.server_timezone
        if configured:
            return (
                f"ENOS_SERVER_TIMEZONE={configured} does not match the zone of the gateway's "
                "time strings; set it to the gateway's offset (an IANA name only where that "
                "zone keeps daylight saving time), or unset it so Get Timezone is asked"
            )
        return (
            f"the gateway's time strings are not in {self.server_tz}, the zone Get Timezone "
            "reports; if the gateway keeps daylight saving time, set ENOS_SERVER_TIMEZONE to "
            "its IANA name"
        )

    # --- requests ---------------------------------------------------------------------------

    def _first_page(self) -> int:
        page_no = self.conventions.first_page_no
        assert page_no is not None
        return page_no

    def _search(
        self, from_ms: int, to_ms: int, expression: str, page_no: int, size: int
    ) -> SearchPage:
        """One request for ``[from_ms, to_ms)`` as the gateway's bounds read it."""
        conventions = self.conventions
        low = from_ms if conventions.from_inclusive is not False else from_ms - 1
        high = to_ms - 1 if conventions.to_inclusive else to_ms
        return self._send(low, high, expression, page_no, size)

    def _request(self, low: int, high: int, expression: str, size: int) -> SearchPage:
        """One request with the bounds sent as given (for learning what they mean)."""
        return self._send(low, high, expression, self._first_page(), size)

    def _send(self, low: int, high: int, expression: str, page_no: int, size: int) -> SearchPage:
        sorter = self.conventions.sorter_field
        assert sorter is not None
        query = SearchQuery(self.scheduling_type, low, high, page_no, size, sorter, expression)
        with self.read_ahead.slot():
            page = self.client.search(query)
        figures, attempts = self.figures, page.attempts
        with self._figures_lock:
            figures.requests += 1 + attempts.retries + attempts.resends
            figures.pages += 1
            figures.retries += attempts.retries
            figures.throttled += attempts.throttled
            figures.token_renewals += attempts.token_renewals
            figures.rate_limit_wait_ms += round(attempts.limiter_wait_s * 1000)
        return page

    def _trigger_ms(self, record: dict[str, Any]) -> int:
        text = record.get("triggerTime")
        try:
            if isinstance(text, str):
                self._check_one_instant(record, "triggerTime")
                return server_time_to_epoch_ms(text, self.server_tz)
        except ValueError as error:
            raise unreadable_trigger(record) from error
        raise unreadable_trigger(record)

    def _check_one_instant(self, record: dict[str, Any], key: str) -> None:
        """A time string must name one instant in the server zone: one in the hour a zone
        repeats when daylight saving time ends could be either of two, an hour apart, and the
        gateway filters by trigger time only, so no answer tells which was meant."""
        text = record.get(key)
        try:
            if not isinstance(text, str) or not text or names_one_instant(text, self.server_tz):
                return
        except ValueError:
            return  # unreadable: reported where the string is read
        self._fail(
            f"instance {record.get('instanceId')} has {key} {text!r}, in the local hour "
            f"{text[:13]}:00 that {self.server_tz} repeats or skips at a daylight saving "
            "change, so the string names no single instant and the day cannot be proven exact"
        )

    def _fail(self, reason: str) -> NoReturn:
        raise IncompleteExtractionError(f"type {self.scheduling_type}: {reason}")


def unreadable_trigger(record: dict[str, Any]) -> ResponseFormatError:
    """The error for a record whose triggerTime is not a server time string."""
    return ResponseFormatError(
        f"instance {record.get('instanceId')!r} has an unreadable triggerTime "
        f"{record.get('triggerTime')!r}"
    )


def _ids(records: list[dict[str, Any]]) -> set[Any]:
    return {record.get("instanceId") for record in records}


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def _describe(record: dict[str, Any]) -> str:
    return "{" + ", ".join(sorted(record)[:8]) + ("…}" if len(record) > 8 else "}")
