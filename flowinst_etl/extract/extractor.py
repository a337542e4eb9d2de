"""The extractor: every window of a run, walked per scheduling type by a pool of workers, each
window assembled and checked as soon as its walks are done."""

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

from flowinst_etl.extract import checks
from flowinst_etl.extract.answers import Asker, Figures, Row
from flowinst_etl.extract.checks import SECOND_MS
from flowinst_etl.extract.conventions import Conventions, learn_sorter
from flowinst_etl.extract.walker import CursorWalk
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.model import SCHEDULING_TYPES, FoundInstance
from flowinst_etl.spool import RECORDS_IN_MEMORY, RecordBudget, Spool
from flowinst_etl.windows import Window

log = logging.getLogger(__name__)


@dataclass
class Reconciliation(Figures):
    """What it took to extract a window; each figure's meaning is in docs/tables.md
    (``duplicates_dropped`` is every row received beyond one per instance)."""

    instances: int = 0

    def absorb(self, part: Figures) -> None:
        """Add one scheduling type's figures."""
        for name, value in asdict(part).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """The figures as a flat mapping."""
        return asdict(self)


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
        self.conventions = Conventions(client.settings.page_size)

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
        memory is bounded by the windows in flight, not by the range.
        """
        server_tz = self.client.server_timezone()
        units = ((w, t) for w in windows for t in SCHEDULING_TYPES)
        workers = self.max_workers
        with ThreadPoolExecutor(workers, thread_name_prefix="flowinst-extract") as pool:
            feed = _Feed(pool, workers, units, lambda w, t: self._extract_unit(w, t, server_tz))
            feed.start()
            try:
                yield from iter(feed.take, None)  # no local keeps a window the caller let go
            finally:
                feed.close()

    def _extract_unit(self, window: Window, scheduling_type: int, server_tz: tzinfo) -> _Part:
        spool = Spool(self.budget)
        try:
            learn_sorter(self.conventions, self.client, window.start_ms)
            asker = Asker(self.client, self.conventions, scheduling_type, server_tz, spool)
            rows = CursorWalk(asker, window).collect()
            return (scheduling_type, rows, asker.figures, spool)
        except BaseException:
            spool.close()
            raise

    def check_access(self) -> None:
        """Fail fast on a bad gateway, credentials, user/org or privileges, before any work.

        Raises:
            FlowinstError: what is wrong, from the gateway's own answers.
        """
        self.client.server_timezone()
        learn_sorter(self.conventions, self.client, int(time.time() * 1000) - SECOND_MS)


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
                checks.types_disjoint(instance_id, found[instance_id][1], scheduling_type)
            found[instance_id] = (row.trigger_ms, scheduling_type, row)
    ordered = sorted(found, key=lambda i: (found[i][0], i))
    reconciliation.instances = len(ordered)
    reconciliation.duplicates_dropped = reconciliation.rows_received - len(ordered)
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
