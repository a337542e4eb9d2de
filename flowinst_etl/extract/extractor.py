"""The extractor: every window of a run, walked per scheduling type by a pool of workers (the
``feed``), each window assembled and checked as soon as its walks are done."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo

from flowinst_etl.extract.answers import Asker
from flowinst_etl.extract.checks import SECOND_MS
from flowinst_etl.extract.conventions import Conventions, learn_sorter
from flowinst_etl.extract.extraction import Extraction, assemble_or_error
from flowinst_etl.extract.feed import Feed, Unit
from flowinst_etl.extract.walker import CursorWalk
from flowinst_etl.gateway.client import EnosClient
from flowinst_etl.spool import RECORDS_MEMORY_MB, MemoryBudget, Spool, budget_bytes
from flowinst_etl.windows import Window

#: Pages a walk must have left, by the density it read so far, to be split for an idle worker.
SPLIT_PAGES = 2


class Extractor:
    """Extracts windows from one gateway, ``max_workers`` requests in flight at most.

    Args:
        client: the gateway client (its rate limit is shared by all workers).
        max_workers: walks (and so requests) running at once.
        records_memory_bytes: bytes of records (as received JSON) of extracted windows held in
            memory at once, by every window not yet closed; beyond it they wait in temporary
            files under ``TMPDIR``.
        records_in_memory: deprecated: a count of records, read as that many records of
            ``RECORD_BYTES_ASSUMED`` bytes; use ``records_memory_bytes``.
    """

    def __init__(
        self,
        client: EnosClient,
        max_workers: int = 8,
        records_memory_bytes: int = RECORDS_MEMORY_MB << 20,
        records_in_memory: int | None = None,
    ) -> None:
        if records_in_memory is not None:
            warnings.warn(
                "records_in_memory is deprecated: pass records_memory_bytes",
                DeprecationWarning,
                stacklevel=2,
            )
            records_memory_bytes = budget_bytes(None, records_in_memory)
        self.client = client
        self.max_workers = max_workers
        self.budget = MemoryBudget(records_memory_bytes)
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

        Work is split into (window, scheduling type) walks run by ``max_workers`` threads (see
        ``feed``): a finished walk starts the next one itself, so requests keep running while
        the caller works on a yielded window, and a worker with no walk left to start takes
        half of a running one. A new window starts only while fewer than ``max_workers``
        windows are started and not yet taken by the caller, and beyond a few only while the
        memory budget has room; records beyond it wait in temporary files.
        """
        server_tz = self.client.server_timezone()
        workers = self.max_workers
        with ThreadPoolExecutor(workers, thread_name_prefix="flowinst-extract") as pool:
            feed = Feed(
                pool,
                workers,
                workers,
                self.budget,
                iter(windows),
                lambda unit: self._walk(unit, server_tz),
                assemble_or_error,
                SPLIT_PAGES * self.client.settings.page_size,
            )
            feed.start()
            try:
                yield from iter(feed.take, None)  # no local keeps a window the caller let go
            finally:
                feed.close()

    def _walk(self, unit: Unit, server_tz: tzinfo) -> CursorWalk:
        _, scheduling_type, span = unit
        learn_sorter(self.conventions, self.client, span.start_ms)
        spool = Spool(self.budget)
        asker = Asker(self.client, self.conventions, scheduling_type, server_tz, spool)
        return CursorWalk(asker, span)

    def check_access(self) -> None:
        """Fail fast on a bad gateway, credentials, user/org or privileges, before any work.

        Raises:
            FlowinstError: what is wrong, from the gateway's own answers.
        """
        self.client.server_timezone()
        learn_sorter(self.conventions, self.client, int(time.time() * 1000) - SECOND_MS)


def minimum_requests(instances: int, page_size: int) -> int:
    """The fewest requests that could return ``instances`` rows: the baseline of the benchmark."""
    return max(1, math.ceil(instances / page_size))
