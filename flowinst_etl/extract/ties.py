"""A second that fills a page alone, read whole in parts by flow id.

Rows tied on trigger time may come in any order, on every request (SQL LIMIT/OFFSET over a
non-unique sort key), so no offset pages through a second; only an offset past every match is
trusted, being empty in any order. The second is first asked whole in a large page
(``TIE_PAGE_SIZE``), so a burst is usually read at once. An answer is whole when it is short and
the page after it, of its own length, is empty (a cap, or a filter after LIMIT, makes an answer
short without holding its span), and no cap of its length is possible: a longer answer was served
before, or, for the second asked whole, asking again finds no other id. Otherwise, as instance ids
are ``{flowId}-{stamp}`` (docs/enos-api.md §2) and ``expression`` finds instances by a substring of
their id (List Flow Instances), ``"7-"`` finds the flow ids ending in 7: the ten parts ``"0-"`` ..
``"9-"`` partition the second, each read the same way and split by one more digit while it is not
whole. Rows an expression matched by name only are left to their own part.

The flow whose id is the whole suffix (flow 7 inside ``"7-"``) is in no finer part: it is kept if
an answer showed it, and otherwise the part is counted by offset pages until two countings agree,
which must hold exactly the instances read.
"""

from __future__ import annotations

from collections.abc import Iterable

from flowinst_etl.extract import checks
from flowinst_etl.extract.answers import Answer, Asker, Seen, Span
from flowinst_etl.extract.checks import SECOND_MS
from flowinst_etl.extract.conventions import Conventions, learn_zero_based

#: The longest flow-id suffix a tied second is split by.
SPLIT_DEPTH = 6
DIGITS = "0123456789"
#: Instances just found that are asked for by id, one after another until one is found, when
#: one seen before is missing: each may have been deleted meanwhile too.
WITNESSES = 10
#: Offset countings of a flow-id part, at most, for two in a row to agree.
COUNTS = 3


def read_second(asker: Asker, second_ms: int, seen: Iterable[str]) -> list[Seen]:
    """Every instance of ``[second_ms, second_ms + 1 s)``; ``seen`` are ids read there before.

    Raises:
        IncompleteExtractionError: the parts miss an id seen before, a part cannot be split
            further, or the flow whose id is a suffix cannot be accounted for.
    """
    asker.figures.repaired_seconds += 1
    whole = asker.ask_large(Span(second_ms, second_ms + SECOND_MS))
    if not whole.full and not _rows_after(asker, whole) and _uncapped(asker, whole):
        return whole.rows  # the second whole: an id seen before and not in it is gone
    found = _part(asker, second_ms, "")
    lost = sorted(set(seen) - set(found))
    if lost:
        # Deleted or moved since it was read, or the parts do not cover the second: asked by
        # its whole id, an instance still there is found (and one of those just found must be:
        # any of them may be gone meanwhile too).
        present = [i for i in lost if _finds(asker, second_ms, i)]
        witnesses = list(found)[:WITNESSES]
        finds_ids = any(_finds(asker, second_ms, i) for i in witnesses)
        checks.parts_cover(asker.scheduling_type, second_ms, lost[0], finds_ids, present)
    return list(found.values())


def _uncapped(asker: Asker, answer: Answer) -> bool:
    """Whether a short answer with an empty page after it holds its span. A cap of exactly its
    length can hide one more row when a deletion in between shifted that row back out of the
    page after; either no cap is possible (a longer answer was served before), or the span,
    asked again, holds no other id (a cap of that length would show the hidden row there once
    a row was deleted)."""
    if answer.whole:
        return True
    again = asker.ask_large(answer.span)
    return {row.instance_id for row in again.rows} <= {row.instance_id for row in answer.rows}


def _finds(asker: Asker, second_ms: int, instance_id: str) -> bool:
    answer = asker.ask(Span(second_ms, second_ms + SECOND_MS, instance_id.lower()))
    return any(row.instance_id == instance_id for row in answer.rows)


def _part(asker: Asker, second_ms: int, suffix: str) -> dict[str, Seen]:
    """The instances of the second whose flow id ends in ``suffix``, by id."""
    if len(suffix) >= SPLIT_DEPTH:
        checks.depth(asker.scheduling_type, second_ms, suffix)
    found: dict[str, Seen] = {}
    for digit in DIGITS:
        part = digit + suffix
        answer = asker.ask_large(Span(second_ms, second_ms + SECOND_MS, part + "-"))
        rows = {row.instance_id: row for row in answer.rows if _flow_part(row).endswith(part)}
        if answer.whole and not _rows_after(asker, answer):
            found |= rows
            continue
        deeper = _part(asker, second_ms, part)
        itself = {i: row for i, row in rows.items() if _flow_part(row) == part}
        found |= deeper | (itself or _straggler(asker, second_ms, part, deeper))
    return found


def _straggler(asker: Asker, second_ms: int, part: str, deeper: dict[str, Seen]) -> dict[str, Seen]:
    """The instance of flow ``part`` itself in the second, if any, when no answer showed it:
    its part counted by offset pages must hold no instance but it and the ``deeper`` ones read
    (those deleted since are gone from it). A deletion while the pages are asked shifts a row
    past the offsets, so the count is taken until two in a row see the same ids (``COUNTS`` at
    most)."""
    span = Span(second_ms, second_ms + SECOND_MS, part + "-")
    before: set[str] | None = None
    for _ in range(COUNTS):
        paged = _paged(asker, span)
        settled = before == set(paged)
        if settled:
            break
        before = set(paged)
    itself = {i: row for i, row in paged.items() if _flow_part(row) == part}
    unread = sorted(set(paged) - set(deeper) - set(itself))
    checks.straggler_known(asker.scheduling_type, second_ms, part, unread, settled)
    return itself


def with_page_order(asker: Asker, span: Span) -> Conventions:
    """The run's conventions, knowing which page follows the first: learnt from one-row pages
    of ``span`` when pages count from 0 and that is not known yet."""
    conventions = asker.conventions
    if conventions.first_page() == 0 and conventions.zero_based is None:
        learn_zero_based(conventions, lambda no: asker.ask(span, no, 1))
    return conventions


def _rows_after(asker: Asker, answer: Answer) -> bool:
    """Whether more rows match than a short answer held: its next page, of its own length, is
    not empty. A cap, or a filter after LIMIT (rows dropped from a page after it is cut), makes
    an answer short without holding its span whole; the page after it shows what it left, in
    whatever order ties come, since an offset past every match is empty."""
    if not answer.rows:
        return False
    conventions = with_page_order(asker, answer.span)
    second_page = conventions.next_page(conventions.first_page())
    return bool(asker.ask(answer.span, second_page, len(answer.rows)).rows)


def _paged(asker: Asker, span: Span) -> dict[str, Seen]:
    """The rows whose id holds the expression ``span`` has, by offset pages, by id. Pages are
    as long as the first answer (a cap, if one cut it), asked until one comes back shorter: an
    offset past every match is empty whatever the tie order."""
    conventions = with_page_order(asker, span)
    page_no = conventions.first_page()
    answer = asker.ask_large(span, page_no)
    size = len(answer.rows)
    rows: dict[str, Seen] = {}
    while True:
        rows.update(
            (row.instance_id, row)
            for row in answer.rows
            if span.expression in row.instance_id.lower()
        )
        if not size or len(answer.rows) < size:
            return rows
        page_no = conventions.next_page(page_no)
        answer = asker.ask(span, page_no, size)


def _flow_part(row: Seen) -> str:
    return row.instance_id.lower().partition("-")[0]
