"""The loop over one (window, scheduling type): a cursor on trigger time, always the first page.

Each request asks for the first page of ``[cursor, end)`` sorted by trigger time. A first page is a
prefix of its span in trigger order, so every row before the answer's last second is final whatever
the page size, the tie order or a cap; the cursor moves to that second, which the next answer reads
again and must begin with. A second that fills a page alone is read whole in parts by flow id
(``ties``). The walk ends on a whole answer (short, and not cut by a cap) whose span, asked again
from its last second in a large page, holds nothing new (or, where a cap keeps a large page from
reaching a page past the answer, whose last second read whole is followed by a span that holds
nothing new): a filter after LIMIT that shortened a page cut inside that second shows there. An
empty page ends it only when its span, asked in a large page (and by offset pages while no long
answer was served), is empty too. No ``count`` and no tie order is relied on (a page after the
first is asked only to see past an answer, where any order shows rows), and instances inserted or
deleted behind the cursor shift nothing. What blank filters and the window's units mean is checked
(``fields``).

A walk can hand the far half of what it has left to another walk between two requests
(:meth:`CursorWalk.split`): both halves are windows read like any other, so workers left idle by a
long walk share it at the cost of one more request each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flowinst_etl.exceptions import IncompleteExtractionError
from flowinst_etl.extract import checks
from flowinst_etl.extract.answers import Answer, Asker, Row, Seen, Span
from flowinst_etl.extract.checks import SECOND_MS
from flowinst_etl.extract.conventions import learn_first_page
from flowinst_etl.extract.fields import check_request_fields
from flowinst_etl.extract.ties import read_second, with_page_order


class WalkCancelled(Exception):
    """A walk stopped by :meth:`CursorWalk.cancel`."""


#: Rows past a walk's last answer seen to hold nothing new before the walk ends: a filter after
#: LIMIT that drops this many rows in a row there is not seen.
REACH = 50

#: Times a first page and its half are compared before a misfit is taken for a gateway that
#: cuts pages before it sorts them.
PREFIX_ATTEMPTS = 3


#: Where the far half of a split walk goes: its span, or ``None`` when the walk declined; it
#: returns whether the half was taken.
HandOver = Callable[[Span | None], bool]


class CursorWalk:
    """Collects one scheduling type of a span of one window, or raises why it cannot be proven
    exact.

    Args:
        asker: sends the type's searches and checks each answer.
        span: the half-open trigger span to read (a window, or part of one).
    """

    def __init__(self, asker: Asker, span: Span) -> None:
        self.asker = asker
        self.start_ms = span.start_ms
        self.end_ms = span.end_ms
        self.cursor_ms = span.start_ms
        self.held: dict[str, Row] = {}
        self.first_full: Answer | None = None
        self._hand_over: HandOver | None = None
        self._split_min_rows = 0.0
        self._split_lock = threading.Lock()
        self._cancelled = False

    def split(self, hand_over: HandOver, min_rows: float) -> None:
        """Ask the walk, from any thread, to hand the far half of its unread span to
        ``hand_over`` before its next request; it is called in the walk's thread, with ``None``
        when fewer than ``min_rows`` rows (:meth:`rows_left`) or two seconds are left, and
        returns whether it took the half. The walk then ends where the half starts."""
        with self._split_lock:
            self._hand_over = hand_over
            self._split_min_rows = min_rows

    def cancel(self) -> None:
        """Stop the walk, from any thread, before its next request: it raises
        :class:`WalkCancelled` (its window is not wanted any more)."""
        self._cancelled = True

    def rows_left(self) -> float:
        """An estimate of the rows still to read: the density read so far over the span left
        (infinite before any row, as nothing is known yet)."""
        read_ms, left_ms = self.cursor_ms - self.start_ms, self.end_ms - self.cursor_ms
        if not self.held or read_ms <= 0:
            return float("inf") if left_ms > SECOND_MS else 0.0
        return len(self.held) * left_ms / read_ms

    def collect(self) -> dict[str, Row]:
        """Every instance of the type in the span, by id.

        Raises:
            IncompleteExtractionError: exactness cannot be proven; says what the gateway did.
            FlowinstError: the gateway failed.
        """
        span = Span(self.start_ms, self.end_ms)
        answer = learn_first_page(self.asker.conventions, lambda no: self.asker.ask(span, no))
        check_request_fields(self.asker, answer)
        cursor, reread, closing = span.start_ms, False, False
        while True:
            if reread:
                self._check_begins_at(answer, cursor)
            if not answer.rows:
                if not self._rows_past(answer):
                    return self._finish()
                self._unless_grown(answer)
                cursor, reread, closing = answer.span.start_ms, False, False
                answer = self._ask(cursor)
                continue
            news = self._news(answer)
            self._hold(answer.rows)
            last = answer.last_ms
            tied = answer.rows[0].trigger_ms == last
            if answer.whole:
                if closing and not news:
                    return self._finish()  # the rest of the span holds only rows read
                # A filter after LIMIT can shorten a page cut inside its last second: the rows
                # it left show in that second, or after it.
                if self._reaches_past(answer):
                    after = self._ask(last, large=True)
                    cursor, reread, closing = last, True, True
                else:
                    self._read_second(last)
                    after = self._ask(last + SECOND_MS, large=True)
                    cursor, reread, closing = last + SECOND_MS, False, True
                if self._news(after):
                    self._unless_grown(answer)
                answer = after
                continue
            closing = False
            if tied and (answer.full or (reread and last == cursor)):
                self._read_second(last)
                cursor, reread = last + SECOND_MS, False
                answer = self._ask(cursor)
            else:
                if answer.full and self.first_full is None:
                    self.first_full = answer
                short, cursor, reread = answer, last, True
                answer = self._ask(cursor)
                if not short.full and answer.rows and answer.last_ms > last:
                    self._cut_or_grown(short)

    def _finish(self) -> dict[str, Row]:
        if self.first_full is not None:
            self._check_prefix_once(self.first_full)
        return self.held

    def _ask(self, start_ms: int, large: bool = False) -> Answer:
        """The first page of ``[start_ms, end)`` (as large as the gateway takes if ``large``),
        after handing over the far half if asked.

        Raises:
            WalkCancelled: the walk was cancelled.
        """
        if self._cancelled:
            raise WalkCancelled
        self.cursor_ms = start_ms
        with self._split_lock:
            hand_over, self._hand_over = self._hand_over, None
        if hand_over is not None:
            middle = start_ms + (self.end_ms - start_ms) // 2 // SECOND_MS * SECOND_MS
            if middle > start_ms and self.rows_left() >= self._split_min_rows:
                if hand_over(Span(middle, self.end_ms)):
                    self.end_ms = middle
            else:
                hand_over(None)
        rest = Span(start_ms, self.end_ms)
        return self.asker.ask_large(rest) if large else self.asker.ask(rest)

    def _reaches_past(self, answer: Answer) -> bool:
        """Whether a large page from a whole answer's last second reaches a page of rows past
        the answer, and ``REACH`` at least: it holds at least as many rows as the longest
        answer served (no cap is below that), from the rows before that second on. Otherwise
        (a cap, or no long answer yet) that second is read whole and the span after it asked."""
        conventions = self.asker.conventions
        before = sum(row.trigger_ms < answer.last_ms for row in answer.rows)
        reach = min(conventions.tie_page_size(), conventions.longest)
        return before + reach >= answer.asked + max(answer.asked, REACH)

    def _rows_past(self, empty: Answer) -> bool:
        """Whether rows lie in the span of an empty answer, which a filter after LIMIT empties
        when it drops every row of the page: the span asked in a large page holds some, or,
        while no answer of ``REACH`` rows was served (a cap may keep the large page that
        short), one of its pages after it does, up to ``REACH`` rows in."""
        asker = self.asker
        conventions = asker.conventions
        if empty.asked < conventions.tie_page_size() and asker.ask_large(empty.span).rows:
            return True
        size = max(1, min(conventions.tie_page_size(), conventions.longest))
        if size >= REACH:
            return False
        conventions = with_page_order(asker, empty.span)
        page_no = conventions.first_page()
        for _ in range(1, -(-REACH // size)):
            page_no = conventions.next_page(page_no)
            if asker.ask(empty.span, page_no, size).rows:
                return True
        return False

    def _news(self, answer: Answer) -> bool:
        """Whether an answer holds an id the walk has not read: rows a cut left out are such
        (a row read before that moved since is not)."""
        held = self.held
        return any(row.instance_id not in held for row in answer.rows)

    def _hold(self, rows: list[Seen]) -> None:
        """Keep rows by id; a row read again replaces the one held (its newest form)."""
        held, asker = self.held, self.asker
        for seen in rows:
            before = held.get(seen.instance_id)
            if before is not None:
                if before.trigger_ms == seen.trigger_ms and before.record == seen.record:
                    continue
                asker.figures.drift += 1
            held[seen.instance_id] = asker.keep(seen)

    def _read_second(self, second_ms: int) -> None:
        seen = [i for i, row in self.held.items() if row.trigger_ms == second_ms]
        self._hold(read_second(self.asker, second_ms, seen))

    def _check_begins_at(self, answer: Answer, cursor: int) -> None:
        """An answer asked from a second whose rows were read begins with that second, unless
        its rows are gone: asked alone, the second must then be empty."""
        if answer.rows and answer.rows[0].trigger_ms == cursor:
            return
        # Asked with the second before it too, so that bounds read coarser than asked (whole
        # seconds, say) cannot hide the second as they may have hidden it from the answer.
        around = self.asker.ask(Span(cursor - SECOND_MS, cursor + SECOND_MS))
        still_there = any(row.trigger_ms == cursor for row in around.rows)
        first = answer.rows[0].trigger_ms if answer.rows else None
        checks.starts_at(self.asker.scheduling_type, cursor, first, still_there)

    def _check_prefix_once(self, answer: Answer) -> None:
        """Once per run, before any walk that relied on it ends: a first page is a prefix of
        its span in trigger order (the gateway sorts before it cuts the page), so the first
        half of it, asked alone, is its first half. Deletions since the page was read shift
        the half, so a half that does not fit is compared again with a fresh page, asked just
        before it, ``PREFIX_ATTEMPTS`` times in all (or left to a later walk once deletions
        emptied the span); a gateway that cuts before it sorts fails every time. Once refused,
        every walk is refused."""
        conventions = self.asker.conventions
        with conventions.prefix_lock:
            if conventions.prefix_failure is not None:
                raise IncompleteExtractionError(conventions.prefix_failure)
            if conventions.prefix_checked:
                return
            page = answer.rows
            for attempt in range(1, PREFIX_ATTEMPTS + 1):
                smaller = self.asker.ask(answer.span, page_size=max(1, len(page) // 2))
                try:
                    checks.prefix(self.asker.scheduling_type, page, smaller.rows)
                    break
                except IncompleteExtractionError as failure:
                    if attempt == PREFIX_ATTEMPTS:
                        conventions.prefix_failure = str(failure)
                        raise
                page = self.asker.ask(answer.span).rows
                if len(page) < 2:
                    return  # deletions emptied the span: a later walk checks
            conventions.prefix_checked = True

    def _grew(self, short: Answer) -> bool:
        """Whether rows after a short answer are instances changed since: asked again, its
        span then holds other rows; an answer cut after LIMIT comes back the same. (A row that
        only moved on within it tells nothing: the answer may have been cut as well.)"""
        again = self.asker.ask(short.span, page_size=short.asked).rows
        return [r.instance_id for r in again] != [r.instance_id for r in short.rows]

    def _cut_or_grown(self, short: Answer) -> None:
        """Rows came after a short answer that no cap was known to cut: the window grew, or it
        was cut by a cap (learnt once); otherwise rows are dropped after LIMIT."""
        if self._grew(short) or self.asker.conventions.learn_cap(len(short.rows)):
            return
        self._refuse_cut(short)

    def _unless_grown(self, answer: Answer) -> None:
        """Rows came after an answer taken for whole: the window grew, or the answer was cut
        after LIMIT."""
        if not self._grew(answer):
            self._refuse_cut(answer)

    def _refuse_cut(self, answer: Answer) -> None:
        checks.not_cut(
            self.asker.scheduling_type, len(answer.rows), answer.asked, self.asker.conventions
        )
