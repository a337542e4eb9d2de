"""Request fields whose meaning no answer to the usual search shows, checked another way.

Every search sends ``owner: ""``, ``status: ""`` and ``expression: ""`` (or a flow-id part), which
the EnOS zh docs read as no filter, and its window in epoch milliseconds (docs/enos-api.md §1). A
gateway that read a blank field as a filter (``status IN ()``, ``owner = ''``) would answer every
window short or empty, and one that read the window in other units would answer every window empty;
no answer to the usual search tells either from a tenant without instances. So, per scheduling
type, a window's first page is compared with the same page asked another way: ``status`` as every
documented code, ``owner`` and ``expression`` left out (the live docs mark ``expression`` optional;
a field the gateway requires is sent blank). Every instance the other way finds within the first
page's span must be on the first page asked again right after it, unless it is gone when the other
way is asked again (deleted meanwhile). Once the other way found instances and agreed, the type is
shown: its rows also passed the window check, which a gateway reading other units fails. While both
ways find nothing, one instance found over all of time must be found in its own second, asked the
usual way.
"""

from __future__ import annotations

import logging
import time

from flowinst_etl.exceptions import FatalApiError
from flowinst_etl.extract import checks
from flowinst_etl.extract.answers import Answer, Asker, Filters, Span
from flowinst_etl.extract.checks import SECOND_MS
from flowinst_etl.extract.conventions import INVALID_PARAMETER
from flowinst_etl.gateway.client import EVERY_STATUS

log = logging.getLogger(__name__)

#: The other ways of asking, tried in order until the gateway takes one: fields left out, then
#: blank where it requires them (62102).
OTHER_WAYS = (
    Filters(owner=None, status=EVERY_STATUS, expression=None),
    Filters(owner="", status=EVERY_STATUS, expression=None),
    Filters(owner="", status=EVERY_STATUS, expression=""),
)
#: Times the two ways are compared while an instance the usual way lacks is gone when the other
#: way is asked again (deleted between the answers); still there, it refuses at once.
ATTEMPTS = 3
_DAY_MS = 86_400_000


def check_request_fields(asker: Asker, first: Answer) -> None:
    """Check, until shown for ``asker``'s scheduling type, that ``first``'s page (a window's
    first page) asked the usual way right after the other way holds every instance the other
    way finds in its span, and while both find nothing, that an instance found over all of time
    is found in its own second.

    Raises:
        IncompleteExtractionError: the other way finds an instance the usual way does not.
    """
    conventions, scheduling_type = asker.conventions, asker.scheduling_type
    with conventions.fields_locks[scheduling_type]:  # the type's other walks wait for it
        if scheduling_type in conventions.fields_shown or conventions.other_way is None:
            return
        _compare(asker, first)


def _compare(asker: Asker, first: Answer) -> None:
    for _ in range(ATTEMPTS):
        asked = _ask_other_way(asker, first.span, first.asked)
        if asked is None:
            return
        way, other = asked
        # Asked after the other way, so that instances created in between are on both.
        usual = asker.ask(first.span, page_size=first.asked)
        missing = _missing(usual, other)
        if missing is None:
            if not other.rows and not usual.rows:
                _check_found_in_its_second(asker, way)
            elif other.rows:
                _shown(asker)
            return
        again = asker.ask(first.span, page_size=first.asked, filters=OTHER_WAYS[way])
        if any(row.instance_id == missing for row in again.rows):
            checks.blanks_filter_nothing(asker.scheduling_type, missing, OTHER_WAYS[way])
    # Deleted between the answers each time: a later window of the type is compared.


def _check_found_in_its_second(asker: Asker, way: int) -> None:
    """The first instance found over all of time the other way (if any) is found in its own
    second the usual way, or is gone when all of time is asked again (deleted meanwhile, so
    the next is tried); then the type is shown."""
    everything = Span(SECOND_MS, int(time.time() * 1000) + _DAY_MS)
    found = asker.ask(everything, page_size=1, filters=OTHER_WAYS[way]).rows
    for _ in range(ATTEMPTS):
        if not found:
            break
        row = found[0]
        own = asker.ask_large(Span(row.trigger_ms, row.trigger_ms + SECOND_MS))
        if own.full or any(r.instance_id == row.instance_id for r in own.rows):
            break
        found = asker.ask(everything, page_size=1, filters=OTHER_WAYS[way]).rows
        if found and found[0].instance_id == row.instance_id:
            checks.found_in_its_second(asker.scheduling_type, row.instance_id, row.trigger_ms)
    _shown(asker)


def _shown(asker: Asker) -> None:
    conventions = asker.conventions
    with conventions.lock:
        conventions.fields_shown.add(asker.scheduling_type)


def _missing(usual: Answer, other: Answer) -> str | None:
    """An id ``other`` holds within the span ``usual`` covers that ``usual`` lacks, if any: all
    of it when ``usual`` is whole, else before its last second (ties there may be cut apart)."""
    ids = {row.instance_id for row in usual.rows}
    for row in other.rows:
        covered = usual.whole or (usual.rows and row.trigger_ms < usual.last_ms)
        if covered and row.instance_id not in ids:
            return row.instance_id
    return None


def _ask_other_way(asker: Asker, span: Span, page_size: int) -> tuple[int, Answer] | None:
    """``span``'s first page asked the first other way the gateway takes (which, and the
    answer); None when it takes none."""
    conventions = asker.conventions
    while (way := conventions.other_way) is not None:
        try:
            return way, asker.ask(span, page_size=page_size, filters=OTHER_WAYS[way])
        except FatalApiError as error:
            if error.code != INVALID_PARAMETER:
                raise
            with conventions.lock:
                if conventions.other_way == way:
                    conventions.other_way = way + 1 if way + 1 < len(OTHER_WAYS) else None
                    if conventions.other_way is None:
                        log.warning(
                            "the gateway refuses status %s (62102): blank filters cannot be "
                            "checked to filter nothing",
                            EVERY_STATUS,
                        )
    return None
