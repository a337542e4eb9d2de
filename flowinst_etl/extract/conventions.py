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

from flowinst_etl.exceptions import FatalApiError
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
        tie_page_size_limit: the ``pageSize`` asked for a tied second: ``TIE_PAGE_SIZE``, or
            ``requested_page_size`` once the gateway refused it with 62102.
    """

    requested_page_size: int
    sorter_field: str | None = None
    first_page_no: int | None = None
    zero_based: bool | None = None
    page_size: int = 0
    page_size_capped: bool = False
    longest: int = 0
    tie_page_size_limit: int = TIE_PAGE_SIZE
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self.page_size = self.page_size or self.requested_page_size

    def sorter(self) -> str:
        assert self.sorter_field is not None, "learn_sorter runs before any walk"
        return self.sorter_field

    def first_page(self) -> int:
        return 1 if self.first_page_no is None else self.first_page_no

    def next_page(self, page_no: int) -> int | None:
        """The page after ``page_no`` by offset, or ``None`` while unknown."""
        if self.first_page_no == 1 or self.zero_based:
            return page_no + 1
        if self.zero_based is False:
            return max(page_no, 1) + 1
        return None

    def judge(self, rows: int, asked: int) -> tuple[bool, bool]:
        """Whether an answer of ``rows`` rows for ``pageSize`` ``asked`` is full (it may have
        been cut by the page size or the cap), and whether it is whole: short, and shorter than
        a page the gateway served before or than its known cap, so no cap cut it. Notes the
        length."""
        with self.lock:
            cut_at = min(asked, self.page_size) if self.page_size_capped else asked
            full = rows >= cut_at
            whole = not full and (self.page_size_capped or rows < self.longest)
            self.longest = max(self.longest, rows)
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

    Page 1 and page 0 are both asked. Page 0 is the first page where it is accepted and starts
    no later than page 1 (0-based, or 0 read as 1); otherwise page 1 is. Whether page 1 follows
    page 0 or repeats it (needed only to count a tied second by offset pages) is learnt from the
    same two answers where they tell: the same ids, or page 1 starting after page 0 ends. Until
    both are known every walk asks both. Later answers check the first page again: each re-read
    from an instant must begin at that instant (see ``walker``).
    """
    if conventions.first_page_no is None or conventions.zero_based is None:
        with conventions.lock:
            if conventions.first_page_no is None or conventions.zero_based is None:
                return _learn_first_page(conventions, ask)
    assert conventions.first_page_no is not None
    return ask(conventions.first_page_no)


def _learn_first_page(conventions: Conventions, ask: Callable[[int], Answer]) -> Answer:
    one = ask(1)
    try:
        zero = ask(0)
    except FatalApiError as error:
        if error.code != INVALID_PARAMETER:
            raise
        conventions.first_page_no, conventions.zero_based = 1, False
        return one
    if not zero.rows and not one.rows:
        return one  # an empty window shows nothing
    first = bool(zero.rows) and (not one.rows or one.rows[0].trigger_ms >= zero.rows[0].trigger_ms)
    if conventions.first_page_no is None:
        conventions.first_page_no = 0 if first else 1
    if not first:
        conventions.zero_based = False  # page 0 is not a first page: pages count from 1
    elif {r.instance_id for r in zero.rows} == {r.instance_id for r in one.rows}:
        conventions.zero_based = False
    elif one.rows and zero.full and one.rows[0].trigger_ms > zero.last_ms:
        conventions.zero_based = True
    return zero if conventions.first_page_no == 0 else one
