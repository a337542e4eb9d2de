"""One request of a walk, and the checks that every answer passes whatever it was asked for.

Every search is sent here: the window is sent as ``(start - 1 ms, end - 1 ms)``, which the
gateway reads as ``[start, end)`` whether each bound is inclusive or exclusive, because trigger
times are whole seconds (checked on every row); each answer comes back as rows checked one by
one (an id, a readable whole-second trigger time inside the window, one instant per time string,
ascending trigger order, no more rows than asked).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from flowinst_etl.exceptions import (
    ApiError,
    FatalApiError,
    ResponseFormatError,
    RetriableApiError,
    TransportError,
)
from flowinst_etl.extract import checks
from flowinst_etl.extract.conventions import INVALID_PARAMETER, Conventions
from flowinst_etl.gateway.client import EnosClient, SearchPage, SearchQuery
from flowinst_etl.gateway.transport import Attempts
from flowinst_etl.spool import Kept, Spool, load
from flowinst_etl.windows import server_time_to_epoch_ms

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class Filters:
    """The ``owner``, ``status`` and ``expression`` of a search; ``None`` leaves one out."""

    owner: str | None = ""
    status: str = ""
    expression: str | None = ""


#: Every owner, status and instance, as the EnOS zh docs say blank fields mean.
BLANK = Filters()


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open trigger-time span ``[start_ms, end_ms)`` asked with one ``expression``."""

    start_ms: int
    end_ms: int
    expression: str = ""


@dataclass(slots=True)
class Row:
    """One record as received (kept by a :class:`~flowinst_etl.spool.Spool`), with its id, its
    trigger time read in the server timezone, its weight in bytes
    (its graph and a share of the rest of its answer's body) and when it was received
    (``time.monotonic_ns``: of two reads, the later is newer)."""

    kept: Kept
    instance_id: str
    trigger_ms: int
    size: int
    received_ns: int

    @property
    def record(self) -> dict[str, Any]:
        return load(self.kept)


@dataclass(frozen=True, slots=True)
class Seen:
    """One row of an answer, checked but not yet kept; ``size`` and ``received_ns`` as in
    :class:`Row`."""

    instance_id: str
    trigger_ms: int
    record: dict[str, Any]
    size: int
    received_ns: int


@dataclass(frozen=True)
class Answer:
    """The checked rows of one answer, in the gateway's order.

    Attributes:
        asked: the ``pageSize`` sent.
        full: it holds a page size of rows, so rows may follow it.
        whole: it is short and no cap cut it (see ``Conventions.judge``): under LIMIT it holds
            every row of its span.
    """

    span: Span
    rows: list[Seen]
    asked: int
    full: bool
    whole: bool

    @property
    def last_ms(self) -> int:
        return self.rows[-1].trigger_ms


@dataclass
class Asker:
    """Sends one scheduling type's searches and checks their answers.

    Args:
        client: the gateway client.
        conventions: what is known of the gateway (shared by every walk of a run).
        scheduling_type: 0 manual, 1 periodic, 2 temporary.
        server_tz: the zone the gateway's time strings are read in.
        spool: keeps the records held.
    """

    client: EnosClient
    conventions: Conventions
    scheduling_type: int
    server_tz: tzinfo
    spool: Spool
    figures: Figures = field(default_factory=Figures)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ask(
        self,
        span: Span,
        page_no: int | None = None,
        page_size: int | None = None,
        filters: Filters = BLANK,
    ) -> Answer:
        """The first page of ``span`` (or page ``page_no``), checked row by row; ``filters``
        are the ``owner``, ``status`` and ``expression`` sent (blank, and ``span``'s
        expression, unless told).

        Raises:
            IncompleteExtractionError: an answer breaks a belief the walk relies on.
            ResponseFormatError: a record cannot be read.
            FlowinstError: the gateway failed.
        """
        conventions = self.conventions
        size = page_size or conventions.requested_page_size
        number = conventions.first_page() if page_no is None else page_no
        query = SearchQuery(
            self.scheduling_type,
            span.start_ms - 1,
            span.end_ms - 1,
            number,
            size,
            conventions.sorter(),
            span.expression if filters.expression == "" else filters.expression,
            owner=filters.owner,
            status=filters.status,
        )
        try:
            page = self.client.search(query)
        except ApiError as error:
            if error.attempts is not None:  # a refused request is a request too
                self._count(error.attempts, 0)
            raise
        self._count(page.attempts, len(page.records))
        checks.page_length(len(page.records), size)
        received_ns = time.monotonic_ns()
        weights = _weights(page)
        rows = [
            self._row(record, span, weight, received_ns)
            for record, weight in zip(page.records, weights, strict=True)
        ]
        checks.ascending(self.scheduling_type, rows)
        full, whole = conventions.judge(len(rows), size)
        return Answer(span, rows, size, full, whole)

    def ask_large(self, span: Span, page_no: int | None = None) -> Answer:
        """A page as large as the gateway takes (``TIE_PAGE_SIZE`` until it refuses that size
        with 62102 or fails it, then ``ENOS_PAGE_SIZE``), for a tied second or a walk's last
        second: one answer then holds a burst whole, and reaches far past a page that a filter
        after LIMIT may have shortened."""
        conventions = self.conventions
        size = conventions.tie_page_size()
        try:
            return self.ask(span, page_no, size)
        except (ApiError, TransportError) as error:
            refused = isinstance(error, RetriableApiError | TransportError) or (
                isinstance(error, FatalApiError) and error.code == INVALID_PARAMETER
            )
            if not refused or size == conventions.requested_page_size:
                raise
            log.warning(
                "the gateway failed pageSize %d (%s); large pages are asked with ENOS_PAGE_SIZE",
                size,
                type(error).__name__,
            )
            with conventions.lock:
                conventions.tie_page_size_limit = conventions.requested_page_size
            return self.ask(span, page_no, conventions.requested_page_size)

    def keep(self, seen: Seen) -> Row:
        """Hold a checked row's record in the spool."""
        kept = self.spool.keep(seen.record, seen.size)
        return Row(kept, seen.instance_id, seen.trigger_ms, seen.size, seen.received_ns)

    def _row(self, record: dict[str, Any], span: Span, size: int, received_ns: int) -> Seen:
        instance_id = record.get("instanceId")
        if not isinstance(instance_id, str) or not instance_id:
            raise ResponseFormatError(
                f"a flow instance without an instanceId in the answer: {_describe(record)}"
            )
        trigger_ms = self.trigger_ms(record)
        for key in ("startTime", "endTime", "timestamp"):
            checks.one_instant(self.scheduling_type, record, key, self.server_tz)
        checks.whole_second(self.scheduling_type, record, trigger_ms)
        checks.inside(self.scheduling_type, record, trigger_ms, span, self._zone_advice)
        return Seen(instance_id, trigger_ms, record, size, received_ns)

    def trigger_ms(self, record: dict[str, Any]) -> int:
        """A record's trigger time in epoch ms, read in the server zone.

        Raises:
            ResponseFormatError: the trigger time is not a server time string.
        """
        text = record.get("triggerTime")
        if isinstance(text, str):
            checks.one_instant(self.scheduling_type, record, "triggerTime", self.server_tz)
            try:
                return server_time_to_epoch_ms(text, self.server_tz)
            except ValueError as error:
                raise unreadable_trigger(record) from error
        raise unreadable_trigger(record)

    def _count(self, attempts: Attempts, rows: int) -> None:
        figures = self.figures
        with self._lock:
            figures.requests += 1 + attempts.retries + attempts.resends
            figures.pages += 1
            figures.retries += attempts.retries
            figures.throttled += attempts.throttled
            figures.token_renewals += attempts.token_renewals
            figures.rate_limit_wait_ms += round(attempts.limiter_wait_s * 1000)
            figures.rows_received += rows

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


def _weights(page: SearchPage) -> list[int]:
    """What each record of ``page`` weighs in bytes: its ``graph`` (nearly all of a record, and
    the one part whose size varies much) plus an even share of the rest of the answer's body.
    A record weighs at least its graph's length in characters, so the graphs of a chunk of
    records hold no more characters than the chunk weighs."""
    graphs = [_graph_length(record) for record in page.records]
    rest = max(0, page.body_bytes - sum(graphs)) // max(1, len(graphs))
    return [graph + rest + 1 for graph in graphs]


def _graph_length(record: dict[str, Any]) -> int:
    graph = record.get("graph")
    return len(graph) if isinstance(graph, str) else 0


def unreadable_trigger(record: dict[str, Any]) -> ResponseFormatError:
    """The error for a record whose triggerTime is not a server time string."""
    return ResponseFormatError(
        f"instance {record.get('instanceId')!r} has an unreadable triggerTime "
        f"{record.get('triggerTime')!r}"
    )


def _describe(record: dict[str, Any]) -> str:
    return "{" + ", ".join(sorted(record)[:8]) + ("…}" if len(record) > 8 else "}")
