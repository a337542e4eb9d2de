"""Keeps every worker busy: walks start in range order, and a worker with nothing left to start
takes the far half of the longest running walk.

A day's scheduling types differ in size (one may hold most of its instances), and a cursor walk
is a chain of requests, each waiting for the one before it. Started one walk per (window,
scheduling type), the workers would idle behind the longest walks of the last windows, and a
single big day would use three workers at most. Splitting a walk costs the gateway about one
request (the far half's first page overlaps nothing; the near half ends with one more empty
answer), so walks are split only when a worker would otherwise wait.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Generic, TypeVar

from flowinst_etl.extract.answers import Figures, Row, Span
from flowinst_etl.extract.walker import CursorWalk
from flowinst_etl.model import SCHEDULING_TYPES
from flowinst_etl.spool import MemoryBudget, Spool
from flowinst_etl.windows import Window

#: One walk to run: a window, a scheduling type and the span of the window it reads.
Unit = tuple[Window, int, Span]
#: One walk's result: its scheduling type, rows by id, the figures of reading them, their spool.
Part = tuple[int, dict[str, Row], Figures, Spool]
#: What a window's parts assemble into (an ``Extraction``, or why the window failed).
Outcome = TypeVar("Outcome")


class Feed(Generic[Outcome]):
    """Runs the walks of windows on ``slots`` workers and gives each window's assembly once its
    last walk ended. A window starts while fewer than ``window_limit`` are started and not yet
    taken, and, beyond ``ceil(slots / types)`` of them, only while the memory budget has room:
    when the caller falls behind, idle workers split the walks of the open windows rather than
    read more windows into temporary files.

    Every field is guarded by ``condition``; walks run outside it.

    Args:
        pool: the workers.
        slots: walks running at once.
        window_limit: windows started and not yet taken, at most.
        budget: the memory budget of the records held.
        windows: the windows, in the order they should be read.
        new_walk: the walk of a unit, made in its worker's thread.
        assemble: a window's outcome from its parts and its walks' first error, run by the
            worker of its last walk (outside the lock: the other walks go on meanwhile).
        split_rows: the fewest rows a walk must have left to be split (a split costs about one
            request, worth it only for a walk of more than a page or two).
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        slots: int,
        window_limit: int,
        budget: MemoryBudget,
        windows: Iterator[Window],
        new_walk: Callable[[Unit], CursorWalk],
        assemble: Callable[[Window, list[Part], Exception | None], Outcome],
        split_rows: int,
    ) -> None:
        self.pool = pool
        self.slots = slots
        self.window_limit = window_limit
        self.budget = budget
        self.windows_always_open = -(-slots // len(SCHEDULING_TYPES))
        self.units = (
            (w, kind, Span(w.start_ms, w.end_ms)) for w in windows for kind in SCHEDULING_TYPES
        )
        self.new_walk = new_walk
        self.assemble = assemble
        self.split_rows = split_rows
        self.condition = threading.Condition()
        self.running = 0
        self.open_windows = 0
        self.waiting: Unit | None = None
        self.closed = False
        self.walks: dict[CursorWalk, Unit] = {}
        self.splitting: set[CursorWalk] = set()
        self.unfinished: dict[Window, int] = {}
        self.parts: dict[Window, list[Part]] = {}
        self.failed: dict[Window, Exception] = {}
        self.ready: deque[tuple[Window, Outcome]] = deque()
        self.fatal: BaseException | None = None

    def start(self) -> None:
        """Start the first walks."""
        with self.condition:
            self._fill()

    def take(self) -> tuple[Window, Outcome] | None:
        """The next window assembled, waiting for one; ``None`` once every window was taken."""
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
        """Start no further walk and stop the running ones before their next request (the
        pool's shutdown waits for them): no window is wanted any more."""
        with self.condition:
            self.closed = True
            for walk in self.walks:
                walk.cancel()

    def _fill(self) -> None:
        """Start units while workers are free, then split running walks for the workers left."""
        while not self.closed and self.running < self.slots:
            unit = self.waiting or next(self.units, None)
            if unit is None:
                break
            window = unit[0]
            if window not in self.unfinished:
                if self.open_windows >= self.window_limit or (
                    self.open_windows >= self.windows_always_open and not self.budget.has_room()
                ):
                    self.waiting = unit
                    break
                self.open_windows += 1
                self.unfinished[window] = len(SCHEDULING_TYPES)
            self.waiting = None
            self._start(unit)
        self._share()

    def _start(self, unit: Unit) -> None:
        self.running += 1
        self.pool.submit(self._run, unit)

    def _share(self) -> None:
        """Ask the running walks with the most rows left to hand over their far halves, one
        per worker that would otherwise wait."""
        idle = self.slots - self.running - len(self.splitting)
        if self.closed or idle <= 0:
            return
        left = {w: w.rows_left() for w in self.walks if w not in self.splitting}
        for walk in sorted(left, key=left.__getitem__, reverse=True)[:idle]:
            if left[walk] < self.split_rows:
                return
            self.splitting.add(walk)
            walk.split(partial(self._hand_over, walk), self.split_rows)

    def _hand_over(self, walk: CursorWalk, span: Span | None) -> bool:
        """Called by a walk asked to split: start its far half, if it gave one."""
        with self.condition:
            self.splitting.discard(walk)
            if span is None or self.closed:
                return False
            window, kind, _ = self.walks[walk]
            self.unfinished[window] += 1
            self._start((window, kind, span))
            return True

    def _run(self, unit: Unit) -> None:
        window, kind, _ = unit
        walk: CursorWalk | None = None
        error: Exception | None = None
        try:
            walk = self.new_walk(unit)
            with self.condition:
                self.walks[walk] = unit
                if self.closed:
                    walk.cancel()
                self._share()  # asked before its first answer; it decides by its density
            part: Part = (kind, walk.collect(), walk.asker.figures, walk.asker.spool)
        except Exception as problem:  # noqa: BLE001 - any failure stays in its window
            if walk is not None:
                walk.asker.spool.close()
            part, error = (kind, {}, Figures(), Spool(MemoryBudget(0))), problem
        except BaseException as fatal:
            with self.condition:
                self.fatal = fatal
                self.running -= 1
                self.condition.notify_all()
            raise
        parts: list[Part] | None = None
        with self.condition:
            if walk is not None:
                del self.walks[walk]
                self.splitting.discard(walk)
            if error is not None:
                self.failed.setdefault(window, error)
            self.parts.setdefault(window, []).append(part)
            self.unfinished[window] -= 1
            if not self.unfinished[window]:
                del self.unfinished[window]
                parts = self.parts.pop(window)
                error = self.failed.pop(window, None)
        # Assembled outside the lock: the other walks go on meanwhile.
        outcome = None if parts is None else (window, self.assemble(window, parts, error))
        with self.condition:
            self.running -= 1
            if outcome is not None:
                self.ready.append(outcome)
            self._fill()
            self.condition.notify_all()
