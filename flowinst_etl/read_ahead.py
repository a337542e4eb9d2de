"""Spare request slots of a run, lent to walks as pages read ahead of the one they process.

A walk reads its pages one after another, because each page is checked against the ones before
it. When fewer walks run than the run has workers (one large day, a daily load of three walks,
the last days of a range), the idle workers would leave the gateway's latency unused: a walk
whose ``count`` is a total knows which pages come next and asks for them ahead. Pages are still
checked in order, so nothing about exactness changes. Every request of the run holds one of
``max_workers`` slots while it is in flight, so no more are ever in flight (and the client's
rate limit applies to each of them).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")


class ReadAhead:
    """Lends the slots that running walks leave idle.

    Args:
        pool: runs the requests read ahead (as many threads as ``slots``).
        slots: requests in flight at most (the extractor's ``max_workers``).
        walks_running: how many walks run now, each with one request of its own in flight.
    """

    def __init__(
        self, pool: ThreadPoolExecutor, slots: int, walks_running: Callable[[], int]
    ) -> None:
        self.pool = pool
        self.slots = slots
        self.walks_running = walks_running
        self._in_flight = threading.BoundedSemaphore(slots)

    def depth(self) -> int:
        """Pages one walk may have requested ahead now: an equal share of the idle slots."""
        running = max(1, self.walks_running())
        return max(0, (self.slots - running) // running)

    def submit(self, request: Callable[[], _T]) -> Future[_T]:
        return self.pool.submit(request)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the slots while a request is in flight (its own or read ahead)."""
        with self._in_flight:
            yield
