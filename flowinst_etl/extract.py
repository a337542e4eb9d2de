"""Exact extraction: every flow instance of a trigger window, each exactly once, with the proof.

Nothing about the gateway is taken on trust. Below is every belief the extractor relies on, with
how it is verified from the gateway's own answers, or how its violation is detected; the source of
each belief is docs/enos-api.md or the List Flow Instances document. A violation that cannot be
worked around fails the day with one line saying what the gateway did; nothing of that day is
committed and the other days go on.

Learnt once per run (the first window with an instance of the type asked), then relied on:

- Sorter naming (``trigger_time`` or ``triggerTime``): probed; neither accepted fails the run.
- First page number (0 or 1) and whether page 0 is read as page 1: probed, then page 1 compared
  with page 0 once a walk has a non-empty page 0.
- Whether ``fromTriggerTime`` and ``toTriggerTime`` are inclusive: from an instance at ``T``,
  ``[T, T + 1 s)`` holds it iff the lower bound is inclusive, ``[T - 1 ms, T]`` iff the upper
  one is. Windows are then asked so that the gateway's reading is ``[start, end)`` exactly.
- The effective page size: a page shorter than asked with rows after it (by the next page, or
  by a ``count`` that is a total) shows a cap; the page size is lowered to what the gateway
  served and the walk starts again. The same at the lowered size means rows are dropped after
  paging (a privilege filter after LIMIT): the day fails. Where ``count`` is a page length, a
  filter that drops every row of both pages that follow a short page cannot be seen. Rows
  after a short page may also be instances created since it was read: the short page is asked
  again, and if it now holds its rows followed by new ones, and the page after it only new
  ones, all triggered after the walk's latest row, that is growth, read as a continuation of
  the walk (below), not a cap.
- What ``expression`` matches: asked with an instance's full id, the gateway must answer that
  instance; learnt when a tied second first needs splitting. If not, such a day fails.
- What ``count`` means: a count above the rows sent so far is a total, one below them a page
  length; learnt from the first page that tells, then cross-checked on every page (a total
  never falls below the rows sent, else the day fails).

Checked on every walk and every row:

- The end of a walk: a short page is not proof on its own. Where ``count`` is a total, the
  walk ends when as many rows as counted came, and the instances found must equal it; a short
  page before that is a cap or dropped rows (above). Where ``count`` is a page length, the page
  after a short page must be empty, and so must the window after the last trigger read (rows
  it holds arrived while paging and are read as a continuation of the walk).
- Page size: never more rows than asked, or the day fails.
- The gateway pages at all: eight pages in a row without a new instance fail the day.
- Trigger order: rows come in non-decreasing trigger time, or the day fails.
- The window: every row's trigger time, read in the server zone, lies in the window asked for.
  A row outside means the zone of the time strings or the bounds are wrong: the day fails,
  naming ENOS_SERVER_TIMEZONE (a configured offset that does not match: set the gateway's
  offset or unset it so Get Timezone is asked; Get Timezone's ``GMT+N`` that does not match:
  the gateway keeps daylight saving time, so set its IANA name).
- Each time string names one instant: with an IANA server zone, a local time in the hour it
  repeats when daylight saving time ends is either of two instants an hour apart (and one in
  the hour it skips is none). The gateway filters by trigger time only, so nothing in its
  answers tells a start, end or creation time apart, and no instant is guessed: a trigger,
  start, end or creation time (``timestamp``) in such an hour fails the day, naming the hour.
- The zone of the strings: the earliest row of each walk, asked for at exactly the instant its
  string reads as, must be answered: an offset that is wrong inside the window is caught too.
- Stable order under ties: rows tied on trigger time may be reordered per page (SQL LIMIT/OFFSET
  on a non-unique key). Ties are local, so a walk reads exactly one row per position, and the
  rows of a tied second give that second's size. A second where an id repeated is read again in
  disjoint parts by ``expression`` (ids are ``{flowId}-{stamp}``: ``"7-"`` finds flow ids ending
  in 7, ``"17-"`` in 17, ...), each split further until it pages without a repeat. The parts must
  cover every id seen there before, and their sizes must add up to the second's size; an id whose
  flow id is the whole suffix is in no part and must have been seen. Afterwards the window's
  distinct instances must equal the positions its walk read.
- ``expression`` matches ids only as substrings: a part's row whose id lacks the expression
  (matched by its name) fails the day.
- Trigger times do not move while paging: an id read twice at two trigger times fails the day
  ("run the day again"); a move that loses an instance breaks the position count above.
- New instances extend a walk (they trigger after the window's latest instance) and status
  changes keep membership, because every status is asked; a record that changed between two
  reads is kept in its last form and counted as ``drift``.
- Pages read ahead (by workers other walks leave idle, where ``count`` is a total) may be
  answered in any order: they are checked in order like any page, and a walk's last page is
  never read ahead, so the count that ends a walk is newer than every answer before it; a walk
  that ends on a page read ahead (its count fell) asks for the count again, and a count that
  moved fails the day.
- Nothing is deleted while paging: a deletion behind a walk's offset makes every later page skip
  one instance while the rows read still match the new count. Arrivals only raise a total, so a
  count read before the one that ends a walk and above it fails the day. Unseen: deletions where
  ``count`` is a page length, and one an arrival in the same walk makes up for.
- ``"flowInsts": null`` is an empty page.
- Scheduling types are disjoint: an id found under two types fails the day.
- Every record has an ``instanceId`` and a readable ``triggerTime``, or the day fails.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import tzinfo
from types import TracebackType

from flowinst_etl.exceptions import FatalApiError, IncompleteExtractionError
from flowinst_etl.gateway.client import EnosClient, SearchQuery
from flowinst_etl.model import SCHEDULING_TYPES, FoundInstance
from flowinst_etl.read_ahead import ReadAhead
from flowinst_etl.spool import RECORDS_IN_MEMORY, RecordBudget, Spool
from flowinst_etl.walk import SECOND_MS, Figures, GatewayConventions, Row, TypeWalker
from flowinst_etl.windows import Window

log = logging.getLogger(__name__)

SORTER_FIELDS = ("trigger_time", "triggerTime")
_INVALID_PARAMETER = 62102


@dataclass
class Reconciliation(Figures):
    """What it took to extract a window, and the figures that prove it complete.

    Each figure has one meaning, documented in docs/tables.md; on a committed day
    ``rows_received == instances`` and ``count_reported`` is ``instances`` or -1.
    """

    count_reported: int | None = 0
    instances: int = 0

    def absorb(self, part: Figures) -> None:
        """Add one scheduling type's figures; ``count_reported`` becomes unknown as soon as one
        type's count is a page length."""
        for name, value in asdict(part).items():
            if name == "count_reported":
                known = value is not None and self.count_reported is not None
                self.count_reported = self.count_reported + value if known else None
            else:
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """The figures as a flat mapping (``count_reported`` -1 where unknown)."""
        figures = asdict(self)
        figures["count_reported"] = -1 if self.count_reported is None else self.count_reported
        return figures


@dataclass(frozen=True)
class Extraction:
    """Every instance of one window, sorted by trigger time and id, with its reconciliation.

    The records wait in spools: in memory while the run's budget lasts, beyond it in temporary
    files. Read them a chunk at a time with :meth:`chunks` (memory bounded by the chunk, for a
    day of any size), or all at once with :attr:`instances`; :meth:`close` (or leaving a
    ``with`` block) frees them.
    """

    window: Window
    reconciliation: Reconciliation
    rows: list[tuple[int, Row]] = field(repr=False)
    spools: list[Spool] = field(default_factory=list, repr=False)

    @property
    def instances(self) -> list[FoundInstance]:
        """Every record at once, in order."""
        return _found(self.rows)

    def chunks(self, size: int) -> Iterator[list[FoundInstance]]:
        """The records in order, ``size`` at a time."""
        for start in range(0, len(self.rows), size):
            yield _found(self.rows[start : start + size])

    def close(self) -> None:
        """Free the records (memory budget and temporary files); they cannot be read after."""
        _close(self.spools)

    def __enter__(self) -> Extraction:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Extractor:
    """Extracts windows from one gateway, ``max_workers`` requests in flight at most.

    Args:
        client: the gateway client (its rate limit is shared by all workers).
        max_workers: concurrent (window, scheduling type) walks.
        records_in_memory: records of extracted windows held in memory at once (by every
            window not yet closed); beyond it they wait in temporary files under ``TMPDIR``.
    """

    def __init__(
        self,
        client: EnosClient,
        max_workers: int = 8,
        records_in_memory: int = RECORDS_IN_MEMORY,
    ) -> None:
        self.client = client
        self.max_workers = max_workers
        self.budget = RecordBudget(records_in_memory)
        self.page_size = client.settings.page_size
        self.conventions = GatewayConventions(self.page_size)

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
    ) -> Iterator[tuple[Window, Extraction | Exception]]:
        """Extract windows concurrently; yield each as soon as it is done, a failure as its error
        (any exception of one window's work fails that window only).

        Work is split into (window, scheduling type) walks run by ``max_workers`` threads. A
        finished walk starts the next one itself, so requests keep running while the caller
        works on a yielded window. A new window starts only while fewer than
        ``ceil(max_workers / types)`` windows are started and not yet taken by the caller, so
        memory is bounded by the windows in flight, not by the range; workers a finished window
        leaves idle while it waits for the caller read pages ahead for the walks still running.
        """
        server_tz = self.client.server_timezone()
        units = ((w, t) for w in windows for t in SCHEDULING_TYPES)
        workers = self.max_workers
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="flowinst-extract") as pool,
            ThreadPoolExecutor(workers, thread_name_prefix="flowinst-read-ahead") as pages,
        ):
            feed = _Feed(
                pool, workers, units, lambda w, t: self._extract_unit(w, t, server_tz, read_ahead)
            )
            read_ahead = ReadAhead(pages, workers, lambda: feed.running)
            feed.start()
            try:
                yield from iter(feed.take, None)  # no local keeps a window the caller let go
            finally:
                feed.close()

    def _extract_unit(
        self, window: Window, scheduling_type: int, server_tz: tzinfo, read_ahead: ReadAhead
    ) -> _Part:
        spool = Spool(self.budget)
        try:
            self._learn_conventions(window)
            walker = TypeWalker(
                self.client, self.conventions, scheduling_type, window, server_tz, spool, read_ahead
            )
            return (scheduling_type, *walker.collect(), spool)
        except BaseException:
            spool.close()
            raise

    def check_access(self) -> None:
        """Fail fast on a bad gateway, credentials, user/org or privileges, before any work.

        Raises:
            FlowinstError: what is wrong, from the gateway's own answers.
        """
        self.client.server_timezone()
        now = int(time.time() * 1000)
        self._learn_conventions(Window(now - SECOND_MS, now))

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


_Unit = tuple[Window, int]
#: One scheduling type of a window: its rows by id, the figures of reading them, their spool.
_Part = tuple[int, dict[str, Row], Figures, Spool]


class _Feed:
    """Keeps ``slots`` walks running, each started by the walk that finished before it, with
    at most ``ceil(slots / types)`` windows started and not yet taken.

    Every field is guarded by ``condition``; walks run outside it.
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        slots: int,
        units: Iterator[_Unit],
        walk: Callable[[Window, int], _Part],
    ) -> None:
        self.pool = pool
        self.slots = slots
        self.units = units
        self.walk = walk
        self.condition = threading.Condition()
        self.running = 0
        self.open_windows = 0
        self.window_limit = -(-slots // len(SCHEDULING_TYPES))
        self.waiting: _Unit | None = None
        self.closed = False
        self.parts: dict[Window, list[_Part]] = {}
        self.failed: dict[Window, Exception] = {}
        self.ready: deque[tuple[Window, Extraction | Exception]] = deque()
        self.fatal: BaseException | None = None

    def start(self) -> None:
        """Start the first walks."""
        with self.condition:
            self._fill()

    def take(self) -> tuple[Window, Extraction | Exception] | None:
        """The next finished window, waiting for one; ``None`` once every window was taken."""
        with self.condition:
            while not self.ready and self.running and self.fatal is None:
                self.condition.wait()
            if self.fatal is not None:
                raise self.fatal
            if not self.ready:
                return None
            outcome = self.ready.popleft()
            self.open_windows -= 1
            self._fill()
            return outcome

    def close(self) -> None:
        """Start no further walk (the pool's shutdown waits for the running ones)."""
        with self.condition:
            self.closed = True

    def _fill(self) -> None:
        while not self.closed and self.running < self.slots:
            unit = self.waiting or next(self.units, None)
            if unit is None:
                return
            starts_window = unit[1] == SCHEDULING_TYPES[0]
            if starts_window and self.open_windows >= self.window_limit:
                self.waiting = unit
                return
            self.waiting = None
            self.open_windows += starts_window
            self.running += 1
            self.pool.submit(self._run, unit)

    def _run(self, unit: _Unit) -> None:
        window, scheduling_type = unit
        try:
            part = self.walk(window, scheduling_type)
            error: Exception | None = None
        except Exception as problem:  # noqa: BLE001 - any failure stays in its window
            part, error = (scheduling_type, {}, Figures(), Spool(RecordBudget(0))), problem
        except BaseException as fatal:
            with self.condition:
                self.fatal = fatal
                self.running -= 1
                self.condition.notify_all()
            raise
        failure: Exception | None = None
        with self.condition:
            if error is not None:
                self.failed.setdefault(window, error)
            parts = self.parts.setdefault(window, [])
            parts.append(part)
            complete = len(parts) == len(SCHEDULING_TYPES)
            if complete:
                del self.parts[window]
                failure = self.failed.pop(window, None)
        outcome: Extraction | Exception | None = None
        if complete:  # assembled outside the lock: the other walks go on meanwhile
            outcome = _assemble_or_error(window, parts, failure)
        with self.condition:
            self.running -= 1
            if outcome is not None:
                self.ready.append((window, outcome))
            self._fill()
            self.condition.notify_all()


def _assemble_or_error(
    window: Window, parts: list[_Part], failure: Exception | None
) -> Extraction | Exception:
    """The window's extraction, or why it failed (its records are then freed at once)."""
    try:
        if failure is not None:
            raise failure
        return _assemble(window, parts)
    except Exception as error:  # noqa: BLE001 - any failure stays in its window
        _close([spool for *_, spool in parts])
        return error


def _assemble(window: Window, parts: list[_Part]) -> Extraction:
    """One window's instances from its per-type parts, ordered by trigger and id.

    Raises:
        IncompleteExtractionError: an id came back under two scheduling types.
    """
    reconciliation = Reconciliation()
    found: dict[str, tuple[int, int, Row]] = {}
    for scheduling_type, rows, part, _ in sorted(parts, key=lambda p: p[0]):
        reconciliation.absorb(part)
        for instance_id, row in rows.items():
            if instance_id in found:
                raise IncompleteExtractionError(
                    f"instance {instance_id} came back for scheduling types "
                    f"{found[instance_id][1]} and {scheduling_type}: the gateway "
                    "does not filter by type, so its type cannot be told"
                )
            found[instance_id] = (row.trigger_ms, scheduling_type, row)
    ordered = sorted(found, key=lambda i: (found[i][0], i))
    reconciliation.instances = len(ordered)
    rows_in_order = [(found[i][1], found[i][2]) for i in ordered]
    return Extraction(window, reconciliation, rows_in_order, [spool for *_, spool in parts])


def _found(rows: Iterable[tuple[int, Row]]) -> list[FoundInstance]:
    """The records of ``rows`` (read back from their spools), with their scheduling types."""
    return [FoundInstance(kind, row.record) for kind, row in rows]


def _close(spools: Iterable[Spool]) -> None:
    for spool in spools:
        spool.close()


def minimum_requests(instances: int, page_size: int) -> int:
    """The fewest requests that could return ``instances`` rows: the baseline of the benchmark."""
    return max(1, math.ceil(instances / page_size))
