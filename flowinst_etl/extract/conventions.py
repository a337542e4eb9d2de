"""What is learnt once per run about the gateway, where the EnOS documents are silent or disagree.

Three things, each learnt from the gateway's own answers and then checked again on later ones:
the sorter's name (``trigger_time`` or ``triggerTime``, docs/enos-api.md §1), the number of the
first page (0 or 1: the documents say both), and the most rows a page holds (no maximum is
documented; a gateway may cap ``pageSize``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flowinst_etl.exceptions import FatalApiError, FlowinstError
from flowinst_etl.gateway.client import EnosClient, SearchQuery

if TYPE_CHECKING:
    from flowinst_etl.extract.answers import Answer

log = logging.getLogger(__name__)

SORTER_FIELDS = ("trigger_time", "triggerTime")
INVALID_PARAMETER = 62102
#: The ``pageSize`` a tied second is asked with first (no maximum is documented).
TIE_PAGE_SIZE = 1000


@dataclass
class Conventions:
    """What this gateway does; shared by every walk of a run, guarded by ``lock``.

    Attributes:
        requested_page_size: ``ENOS_PAGE_SIZE``, sent as ``pageSize`` with every search.
        sorter_field: the sorter name it accepts; ``None`` until probed.
        first_page_no: the ``pageNo`` of a window's first page; ``None`` until a window with
            instances showed it.
        zero_based: whether page 1 follows page 0 (rather than repeating it); ``None`` until
            two answers told.
        page_size: the rows a full page holds: ``requested_page_size``, or the gateway's cap.
        page_size_capped: whether ``page_size`` was lowered to a cap the gateway showed.
        longest: the most rows one answer held so far (a cap is never below it).
        prefix_checked: whether a first page was checked to be a prefix of its span;
            ``prefix_failure`` what refused it, then every window's refusal.
        tie_page_size_limit: the ``pageSize`` asked for a tied second: ``TIE_PAGE_SIZE``, or
            ``requested_page_size`` once the gateway refused it with 62102.
        fields_shown: the scheduling types whose blank filters and window units were shown
            (``fields``, one check at a time per type under ``fields_locks``); ``other_way``
            the index of the way of asking compared with the usual one that the gateway
            takes, ``None`` once it took none.
    """

    requested_page_size: int
    sorter_field: str | None = None
    first_page_no: int | None = None
    zero_based: bool | None = None
    page_size: int = 0
    page_size_capped: bool = False
    longest: int = 0
    tie_page_size_limit: int = TIE_PAGE_SIZE
    prefix_checked: bool = False
    fields_shown: set[int] = field(default_factory=set)
    fields_locks: dict[int, threading.Lock] = field(
        default_factory=lambda: {kind: threading.Lock() for kind in (0, 1, 2)}, repr=False
    )
    other_way: int | None = 0
    prefix_failure: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    prefix_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.page_size = self.page_size or self.requested_page_size

    def sorter(self) -> str:
        assert self.sorter_field is not None, "learn_sorter runs before any walk"
        return self.sorter_field

    def first_page(self) -> int:
        return 1 if self.first_page_no is None else self.first_page_no

    def next_page(self, page_no: int) -> int:
        """The page after ``page_no`` by offset (page 0 read as 1 is followed by page 2)."""
        if self.first_page() == 1 or self.zero_based:
            return page_no + 1
        return max(page_no, 1) + 1

    def judge(self, rows: int, asked: int) -> tuple[bool, bool]:
        """Whether an answer of ``rows`` rows for ``pageSize`` ``asked`` is full (it may have
        been cut by the page size or the cap), and whether it is whole: empty, or short and
        shorter than an answer the gateway served before, so no cap cut it. Notes the length;
        an answer longer than a learnt cap lifts it.
        """
        with self.lock:
            longest = self.longest
            if self.page_size_capped and rows > self.page_size:
                log.warning(
                    "the gateway served %d rows to a page: it has no cap of %d",
                    rows,
                    self.page_size,
                )
                self.page_size, self.page_size_capped = self.requested_page_size, False
            cut_at = min(asked, self.page_size) if self.page_size_capped else asked
            full = rows >= cut_at
            whole = not full and (rows == 0 or rows < longest)
            self.longest = max(longest, rows)
        return full, whole

    def tie_page_size(self) -> int:
        """The ``pageSize`` a tied second is asked with: large, so that one answer holds a
        burst whole, until the gateway refuses it."""
        return max(self.requested_page_size, self.tie_page_size_limit)

    def learn_cap(self, got: int) -> bool:
        """A page of ``got`` rows had rows after it: lower the page size to it if it can be a
        cap (never below an answer served before, learnt once); False if it cannot be one."""
        with self.lock:
            if got >= self.page_size:
                return True  # another walk lowered it meanwhile
            if self.page_size_capped or got == 0 or got < self.longest:
                return False
            self.page_size, self.page_size_capped = got, True
        log.warning(
            "the gateway serves at most %d rows per page although %d were asked; paging by %d",
            got,
            self.requested_page_size,
            got,
        )
        return True


def learn_sorter(conventions: Conventions, client: EnosClient, start_ms: int) -> None:
    """Probe which sorter name the gateway takes: it answers 62102 to one it does not.

    Raises:
        FatalApiError: it takes neither (the run cannot page in trigger order).
    """
    with conventions.lock:
        if conventions.sorter_field is not None:
            return
        for sorter in SORTER_FIELDS:
            query = SearchQuery(1, start_ms, start_ms + 1, 1, 1, sorter)
            try:
                client.search(query)
            except FatalApiError as error:
                if error.code == INVALID_PARAMETER:
                    continue
                raise
            conventions.sorter_field = sorter
            return
    raise FatalApiError(
        INVALID_PARAMETER,
        "the gateway accepts none of the sorter fields " + ", ".join(SORTER_FIELDS),
        "List Flow Instances cannot be paged in trigger-time order on this gateway",
    )


def learn_first_page(conventions: Conventions, ask: Callable[[int], Answer]) -> Answer:
    """The first page of a window, learning on the way which ``pageNo`` is the first.

    Page 1 and page 0 are both asked until the answers tell. Page 0 refused or failing, empty
    where page 1 is not, or starting after page 1, is no first page: page 1 is. The same rows
    on both mean 0 is read as 1. Otherwise page 0 is a first page (0-based, where page 1
    continues it, or 1-based with 0 read as 1 under ties in another order). Whether page 1
    follows page 0 (needed only to count a tied second by offset pages) is learnt from the same
    answers, or by ``learn_zero_based``. Later answers check the first page again: each re-read
    from an instant must begin at that instant (see ``walker``).
    """
    if conventions.first_page_no is None:
        with conventions.lock:
            if conventions.first_page_no is None:
                return _learn_first_page(conventions, ask)
    return ask(conventions.first_page_no)


def _learn_first_page(conventions: Conventions, ask: Callable[[int], Answer]) -> Answer:
    one = ask(1)
    try:
        zero: Answer | None = ask(0)
    except FlowinstError:
        zero = None  # page 0 refused or failing: pages count from 1
    if zero is None:
        conventions.first_page_no, conventions.zero_based = 1, False
        return one
    if not zero.rows and not one.rows:
        return one  # an empty window shows nothing
    zero_ids, one_ids = {r.instance_id for r in zero.rows}, {r.instance_id for r in one.rows}
    if not zero.rows or (one.rows and one.rows[0].trigger_ms < zero.rows[0].trigger_ms):
        conventions.first_page_no = 1  # page 0 is no first page
    elif zero_ids == one_ids:
        conventions.first_page_no, conventions.zero_based = 1, False  # 0 read as 1
    elif not one.rows or (not zero_ids & one_ids and one.rows[0].trigger_ms >= zero.last_ms):
        conventions.first_page_no, conventions.zero_based = 0, True  # page 1 follows page 0
    else:
        conventions.first_page_no = 0  # a first page either way; ties told nothing more
    return zero if conventions.first_page_no == 0 else one


def learn_zero_based(conventions: Conventions, ask: Callable[[int], Answer]) -> None:
    """Whether page 1 follows page 0 or repeats it, from one-row pages 0 and 1 of a span with
    at least two rows: the same row, or page 0 refused, means pages count from 1. A wrong
    reading here makes an offset count disagree with the rows read, which refuses the day."""
    with conventions.lock:
        if conventions.zero_based is not None:
            return
        try:
            zero = ask(0)
        except FlowinstError:
            conventions.zero_based = False
            return
        one = ask(1)
        same = [r.instance_id for r in zero.rows] == [r.instance_id for r in one.rows]
        conventions.zero_based = not same
