"""The update-time probe: the instances of a trigger window updated since an instant, read newest
first with the ``update_time`` sorter, a few requests for any number of days.

Every belief it rests on is checked on the answers it gets, and a false one raises
``UnreliableChangeTest``: the sorter is accepted (``update_time`` or ``updateTime``; 62102 means
not), it is honoured (update times never rise along the pages), ``timestamp`` shows the last
update (never before ``startTime`` or ``endTime``), the trigger filter holds (every row inside the
window asked), pages hold no more rows than asked. Pages are numbered from 0 (a gateway
numbering from 1 reads 0 as 1, or refuses it: then from 1), and a page 1 that repeats page 0
shows the numbering. Under this order a change made while paging moves its instance to the
front, so later pages repeat a row but never skip one; a page boundary inside a run of equal
update times may hide a row (a gateway ordering ties per page), so each such instant is
reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from flowinst_etl.changes.update_time import UPDATE_SORTERS, latest_instant_ms, update_ms
from flowinst_etl.exceptions import FatalApiError, UnreliableChangeTest
from flowinst_etl.gateway.client import EnosClient, SearchPage, SearchQuery
from flowinst_etl.model import SCHEDULING_TYPES
from flowinst_etl.windows import Window, server_time_to_epoch_ms

_INVALID_PARAMETER = 62102


@dataclass(frozen=True)
class Updated:
    """An instance the probe saw updated at or after the instant asked.

    Attributes:
        instance_id: its id.
        triggers_ms: the instants its trigger time may name, epoch ms (two when the string lies
            in an hour the server zone repeats).
        update_ms: its update time, epoch ms.
        status: its status name now.
    """

    instance_id: str
    triggers_ms: tuple[int, ...]
    update_ms: int
    status: str


@dataclass
class ProbeAnswer:
    """What a probe of one window found.

    Attributes:
        updated: every instance of the window updated at or after the instant asked.
        tied_ms: update instants at or after it that a page boundary fell inside.
    """

    updated: list[Updated] = field(default_factory=list)
    tied_ms: list[int] = field(default_factory=list)


class UpdateProbe:
    """Asks one gateway which instances changed; learns its sorter name and page numbering on
    the first request and keeps them.

    Args:
        client: the gateway.
        server_tz: the zone of its time strings.
    """

    def __init__(self, client: EnosClient, server_tz: tzinfo) -> None:
        self._client = client
        self._server_tz = server_tz
        self._sorter: str | None = None
        self._first_page = 0
        self._zero_based: bool | None = None
        #: Search requests sent, retries and resends included.
        self.requests = 0

    def updated_since(self, window: Window, floor_ms: int) -> ProbeAnswer:
        """Every instance triggered in ``window`` and updated at or after ``floor_ms``.

        Raises:
            UnreliableChangeTest: an answer shows a belief of the probe false.
            FlowinstError: the gateway failed.
        """
        answer = ProbeAnswer()
        for scheduling_type in SCHEDULING_TYPES:
            size = self._client.settings.page_size
            served = self._walk(scheduling_type, window, floor_ms, size, answer)
            if served is not None:  # pages came short with rows after them: a smaller cap
                if self._walk(scheduling_type, window, floor_ms, served, answer) is not None:
                    raise UnreliableChangeTest(
                        "pages sorted by update time come shorter than asked with rows after "
                        "them, whatever the page size: rows are dropped after paging"
                    )
        return answer

    def _walk(
        self, scheduling_type: int, window: Window, floor_ms: int, size: int, answer: ProbeAnswer
    ) -> int | None:
        """Page one type newest first down to ``floor_ms``, adding to ``answer``; or, when a
        short page has rows after it, the size it served (nothing is added then)."""
        found: list[Updated] = []
        ties: list[int] = []
        page_no = self._first_page
        last: tuple[int, Any] | None = None  # update time and id of the last row read
        short: int | None = None
        earlier: list[dict[str, Any]] = []
        while True:
            records = self._page(scheduling_type, window, page_no, size)
            if page_no == 1 and self._first_page == 0 and self._repeats(earlier, records):
                page_no = 2  # page 0 was read as page 1: numbering starts at 1
                continue
            if short is not None:
                if records:
                    return short
                break
            if len(records) > size:
                raise UnreliableChangeTest(
                    f"a page holds {len(records)} rows where {size} were asked"
                )
            _check_newest_first(records, self._server_tz, last)
            below = False
            for position, record in enumerate(records):
                updated = update_ms(record, self._server_tz)
                instance_id = record.get("instanceId")
                if position == 0 and last == (updated, instance_id):
                    continue  # a row repeated because a change moved another to the front
                if position == 0 and last is not None and updated == last[0] >= floor_ms:
                    ties.append(updated)
                last = (updated, instance_id)
                if updated < floor_ms:
                    below = True
                    break
                seen = self._updated(record, updated, window)
                if seen is not None:
                    found.append(seen)
            if below or not records:
                break
            if len(records) < size:
                short = len(records)
            earlier = records
            page_no += 1
        answer.updated += found
        answer.tied_ms += ties
        return None

    def _repeats(self, first: list[dict[str, Any]], second: list[dict[str, Any]]) -> bool:
        """Whether page 1 is page 0 again (learnt once: more than half its rows are)."""
        if self._zero_based is None:
            ids = {record.get("instanceId") for record in first}
            repeated = sum(record.get("instanceId") in ids for record in second)
            self._zero_based = not (second and 2 * repeated > len(second))
            if not self._zero_based:
                self._first_page = 1
            return not self._zero_based
        return False

    def _updated(self, record: dict[str, Any], updated: int, window: Window) -> Updated | None:
        """The row as an ``Updated`` when it triggers inside ``window``; ``None`` when it lies
        on an edge the gateway includes (the window is asked from 1 ms before its start).

        Raises:
            UnreliableChangeTest: it has no readable trigger time, or one outside the window.
        """
        text = record.get("triggerTime")
        try:
            first = server_time_to_epoch_ms(text, self._server_tz) if text else None
        except ValueError:
            first = None
        if first is None or not isinstance(text, str):
            raise UnreliableChangeTest(
                f"instance {record.get('instanceId')} has no readable triggerTime ({text!r})"
            )
        readings = {first, latest_instant_ms(text, self._server_tz)}  # two in a repeated hour
        if any(not window.start_ms - 1 <= t <= window.end_ms for t in readings):
            raise UnreliableChangeTest(
                f"instance {record.get('instanceId')} triggered at {text!r} lies outside the "
                "window asked: the gateway's trigger filter or the server time zone is not what "
                "it seems"
            )
        inside = tuple(sorted(t for t in readings if window.contains(t)))
        if not inside:
            return None
        status = record.get("statusDesc", record.get("status"))
        return Updated(str(record.get("instanceId")), inside, updated, str(status))

    def _page(
        self, scheduling_type: int, window: Window, page_no: int, size: int
    ) -> list[dict[str, Any]]:
        if self._sorter is None:
            return self._first_request(scheduling_type, window, size)
        return self._send(scheduling_type, window, page_no, size, self._sorter).records

    def _first_request(
        self, scheduling_type: int, window: Window, size: int
    ) -> list[dict[str, Any]]:
        """The first page, learning the sorter name and whether page 0 is accepted."""
        for sorter in UPDATE_SORTERS:
            for page_no in (0, 1):
                try:
                    page = self._send(scheduling_type, window, page_no, size, sorter)
                except FatalApiError as error:
                    if error.code == _INVALID_PARAMETER:
                        continue
                    raise
                self._sorter, self._first_page = sorter, page_no
                return page.records
        raise UnreliableChangeTest(
            "the gateway accepts none of the sorter fields " + ", ".join(UPDATE_SORTERS)
        )

    def _send(
        self, scheduling_type: int, window: Window, page_no: int, size: int, sorter: str
    ) -> SearchPage:
        query = SearchQuery(
            scheduling_type,
            window.start_ms - 1,
            window.end_ms,
            page_no,
            size,
            sorter,
            order="DESC",
        )
        self.requests += 1
        page = self._client.search(query)
        self.requests += page.attempts.retries + page.attempts.resends
        return page


def _check_newest_first(
    records: list[dict[str, Any]], server_tz: tzinfo, last: tuple[int, Any] | None
) -> None:
    """A whole page comes newest first, after the page before it: checked before any row is
    used, since the walk stops at the first row older than what it looks for, and a gateway
    that sorts the other way shows its oldest row first.

    Raises:
        UnreliableChangeTest: an update time rises along the pages.
    """
    previous = None if last is None else last[0]
    for record in records:
        updated = update_ms(record, server_tz)
        if previous is not None and updated > previous:
            raise UnreliableChangeTest(
                f"instance {record.get('instanceId')} updated at {record.get('timestamp')!r} "
                "came after one updated earlier: the gateway does not sort by update time"
            )
        previous = updated
