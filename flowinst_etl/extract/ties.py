"""A second that fills a page alone, read whole in parts by flow id.

Rows tied on trigger time may come in any order, on every request (SQL LIMIT/OFFSET over a
non-unique sort key), so no offset is trusted inside a second. Instance ids are
``{flowId}-{stamp}`` (docs/enos-api.md §2) and ``expression`` finds instances by a substring of
their id (List Flow Instances), so ``"7-"`` finds the flow ids ending in 7: the ten parts
``"0-"`` .. ``"9-"`` partition the second, each read as a first page and split by one more digit
while it is not whole, or while the page after it (of its own length) is not empty, for an answer
as long as any by expression before. Rows an expression matched by name only are left to their own
part. Each request asks for a large page (``TIE_PAGE_SIZE``), so a burst is usually read whole at
once.

The flow whose id is the whole suffix (flow 7 inside ``"7-"``) is in no finer part: it is kept if
an answer showed it, and otherwise the part is counted by offset pages, which must hold exactly
the instances read.
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


def read_second(asker: Asker, second_ms: int, seen: Iterable[str]) -> list[Seen]:
    """Every instance of ``[second_ms, second_ms + 1 s)``; ``seen`` are ids read there before.

    Raises:
        IncompleteExtractionError: the parts miss an id seen before, a part cannot be split
            further, or the flow whose id is a suffix cannot be accounted for.
    """
    whole = asker.ask_large(Span(second_ms, second_ms + SECOND_MS))
    if whole.whole and _not_filtered_after_limit(asker, whole):
        found = {row.instance_id: row for row in whole.rows}
    else:
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
    asker.figures.repaired_seconds += 1
    return list(found.values())


def _not_filtered_after_limit(asker: Asker, answer: Answer) -> bool:
    """Whether a whole answer of ``k`` rows holds its span: asked again with ``pageSize``
    ``k`` it comes back as long. Shorter, and still ``k`` long when asked as before, it lost
    rows after LIMIT (a privilege filter); shorter both ways, rows went meanwhile, and the
    second is read in parts (False).

    Raises:
        IncompleteExtractionError: rows are dropped after LIMIT.
    """
    if not answer.rows:
        return True
    again = asker.ask(answer.span, page_size=len(answer.rows))
    if len(again.rows) >= len(answer.rows):
        return True
    if len(asker.ask_large(answer.span).rows) < len(answer.rows):
        return False
    checks.not_cut(asker.scheduling_type, len(again.rows), len(answer.rows), asker.conventions)
    return False


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
        uncut = asker.conventions.uncut_by_expression(len(answer.rows))
        if answer.whole and (uncut or not _rows_after(asker, answer)):
            found |= rows
            continue
        deeper = _part(asker, second_ms, part)
        itself = {i: row for i, row in rows.items() if _flow_part(row) == part}
        if not itself:
            positions, paged = _paged(asker, Span(second_ms, second_ms + SECOND_MS, part + "-"))
            itself = {i: row for i, row in paged.items() if _flow_part(row) == part}
            checks.straggler_known(
                asker.scheduling_type, second_ms, part, positions, len(deeper) + len(itself)
            )
        found |= deeper | itself
    return found


def _with_page_order(asker: Asker, span: Span) -> Conventions:
    """The run's conventions, knowing which page follows the first: learnt from one-row pages
    of ``span`` when pages count from 0 and that is not known yet."""
    conventions = asker.conventions
    if conventions.first_page() == 0 and conventions.zero_based is None:
        learn_zero_based(conventions, lambda no: asker.ask(span, no, 1))
    return conventions


def _rows_after(asker: Asker, answer: Answer) -> bool:
    """Whether more rows match than a short answer of an ``expression`` held: its next page, of
    its own length, is not empty. A cap that only searches by ``expression`` meet makes an
    answer look whole beside longer answers to other searches; the page after it shows what it
    left, in whatever order ties come, since an offset past every match is empty. Asked only
    for an answer at least as long as every earlier answer by ``expression``: a shorter one was
    not cut by such a cap."""
    if not answer.rows:
        return False
    conventions = _with_page_order(asker, answer.span)
    second_page = conventions.next_page(conventions.first_page())
    return bool(asker.ask(answer.span, second_page, len(answer.rows)).rows)


def _paged(asker: Asker, span: Span) -> tuple[int, dict[str, Seen]]:
    """How many rows whose id holds the expression ``span`` has by offset pages, and those rows
    by id. Pages are as long as the first answer (a cap, if one cut it), asked until one comes
    back shorter: an offset past every match is empty whatever the tie order."""
    conventions = _with_page_order(asker, span)
    page_no = conventions.first_page()
    answer = asker.ask_large(span, page_no)
    size = len(answer.rows)
    rows: dict[str, Seen] = {}
    positions = 0
    while True:
        matching = [row for row in answer.rows if span.expression in row.instance_id.lower()]
        positions += len(matching)
        rows.update((row.instance_id, row) for row in matching)
        if not size or len(answer.rows) < size:
            return positions, rows
        page_no = conventions.next_page(page_no)
        answer = asker.ask(span, page_no, size)


def _flow_part(row: Seen) -> str:
    return row.instance_id.lower().partition("-")[0]
