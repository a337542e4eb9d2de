"""Every refusal of the extraction, one small function each, named for what it checks.

A failed check raises ``IncompleteExtractionError`` (the day cannot be proven exact) or
``ResponseFormatError`` (a record cannot be read) with one line that says what the gateway did,
and names a cause only where the evidence singles one out. docs/extraction.md lists each check
with the test that fails when it is removed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any, NoReturn

from flowinst_etl.exceptions import IncompleteExtractionError, ResponseFormatError
from flowinst_etl.windows import names_one_instant

if TYPE_CHECKING:
    from flowinst_etl.extract.answers import Filters, Seen, Span
    from flowinst_etl.extract.conventions import Conventions

SECOND_MS = 1000


def refuse(scheduling_type: int, reason: str) -> NoReturn:
    """Fail the window: ``reason`` says what the gateway did."""
    raise IncompleteExtractionError(f"type {scheduling_type}: {reason}")


def page_length(got: int, asked: int) -> None:
    """An answer never holds more rows than ``pageSize`` asked for."""
    if got > asked:
        raise ResponseFormatError(f"the gateway sent {got} rows for pageSize {asked}")


def one_instant(scheduling_type: int, record: dict[str, Any], key: str, server_tz: tzinfo) -> None:
    """A time string names one instant in the server zone: one in the hour a zone repeats when
    daylight saving time ends could be either of two, and no answer tells which was meant."""
    text = record.get(key)
    try:
        if not isinstance(text, str) or not text or names_one_instant(text, server_tz):
            return
    except ValueError:
        return  # unreadable: reported where the string is read
    refuse(
        scheduling_type,
        f"instance {record.get('instanceId')} has {key} {text!r}, in the local hour "
        f"{text[:13]}:00 that {server_tz} repeats or skips at a daylight saving change, so the "
        "string names no single instant and the day cannot be proven exact",
    )


def whole_second(scheduling_type: int, record: dict[str, Any], trigger_ms: int) -> None:
    """Trigger times are whole seconds (List Flow Instances writes ``yyyy-MM-dd HH:mm:ss``): the
    windows are asked so that either meaning of each bound reads the same only for those."""
    if trigger_ms % SECOND_MS:
        refuse(
            scheduling_type,
            f"instance {record.get('instanceId')} has triggerTime {record.get('triggerTime')!r}, "
            "a fraction of a second: windows are asked for whole seconds, so rows between them "
            "could be missed",
        )


def inside(
    scheduling_type: int,
    record: dict[str, Any],
    trigger_ms: int,
    span: Span,
    zone_advice: Callable[[], str],
) -> None:
    """Every row lies in the span asked for, read in the server zone."""
    if not span.start_ms <= trigger_ms < span.end_ms:
        refuse(
            scheduling_type,
            f"instance {record.get('instanceId')} triggered at {record.get('triggerTime')!r} "
            f"({iso(trigger_ms)}) came back for the window [{iso(span.start_ms)}, "
            f"{iso(span.end_ms)}): the gateway does not filter by trigger time as asked, or "
            f"{zone_advice()}",
        )


def ascending(scheduling_type: int, rows: Sequence[Seen]) -> None:
    """Rows come in ascending trigger time within one answer, so a first page is a prefix of
    its window."""
    for before, after in zip(rows, rows[1:], strict=False):
        if after.trigger_ms < before.trigger_ms:
            refuse(
                scheduling_type,
                f"rows of {iso(after.trigger_ms)} came after rows of {iso(before.trigger_ms)} "
                "in one answer: the gateway does not sort by trigger time",
            )


def prefix(scheduling_type: int, page: Sequence[Seen], smaller: Sequence[Seen]) -> None:
    """A smaller first page of the same span is the start of the larger one: rows cut before
    they are sorted (LIMIT applied in another order) would make every page a sample."""
    if not smaller:
        refuse(scheduling_type, "a first page asked again with fewer rows came back empty")
    bound = page[len(smaller) - 1].trigger_ms
    held = {row.instance_id for row in page}
    for row in smaller:
        if row.trigger_ms > bound or (row.trigger_ms < bound and row.instance_id not in held):
            refuse(
                scheduling_type,
                f"a first page of {len(smaller)} rows held instance {row.instance_id} at "
                f"{iso(row.trigger_ms)}, which the first page of {len(page)} rows of the same "
                "window did not hold before its row at " + iso(bound) + ": the gateway cuts "
                "pages before sorting them by trigger time",
            )


def starts_at(scheduling_type: int, at_ms: int, first_ms: int | None, still_there: bool) -> None:
    """An answer asked from an instant where rows were read begins with rows of that instant,
    unless they are gone (``still_there`` is what the second, asked alone, answered)."""
    if still_there:
        began = "held nothing" if first_ms is None else f"began at {iso(first_ms)}"
        refuse(
            scheduling_type,
            f"the first page from {iso(at_ms)} {began} although that second, asked alone, holds "
            "instances: the page number asked is not the first page",
        )


def not_cut(scheduling_type: int, got: int, asked: int, conventions: Conventions) -> None:
    """A page shorter than a page the gateway served before, with rows after it, was cut after
    LIMIT (rows dropped from it, as a privilege filter applied after paging would)."""
    served = conventions.longest
    cap = (
        f" and at most {served} per page"
        if conventions.page_size_capped
        else f"; it served {served} rows before"
    )
    refuse(
        scheduling_type,
        f"the gateway sent {got} rows for pageSize {asked} with more rows after them{cap}: it "
        "drops rows from pages after cutting them (a filter after LIMIT), so no answer can "
        "prove a window's end",
    )


def parts_cover(
    scheduling_type: int, second_ms: int, lost: str, finds_ids: bool, present: Sequence[str]
) -> None:
    """A tied second read in parts by flow id holds every instance seen in it before, except
    those gone since: asked by its whole id, a gone instance is not found, while one just found
    in a part is (else ``expression`` does not find ids, and nothing tells gone from missed)."""
    if present:
        refuse(
            scheduling_type,
            f"re-reading second {iso(second_ms)} did not find {present[0]}, which asking by its "
            "whole id still finds: the gateway's answers for that second are incomplete (a cap "
            "on filtered queries, or an expression that does not split ids by flow-id suffix)",
        )
    if not finds_ids:
        refuse(
            scheduling_type,
            f"re-reading second {iso(second_ms)} did not find {lost}, seen there before, nor "
            "any instance just read there by its id: the gateway's expression does not find an "
            "instance by its id, so a second that fills a page cannot be read whole, or every "
            "instance asked for was deleted meanwhile",
        )


def straggler_known(
    scheduling_type: int, second_ms: int, suffix: str, unread: Sequence[str], settled: bool
) -> None:
    """Paging the part of flow ids ending in ``suffix``, the same twice in a row (``settled``),
    shows no instance that reading it in parts did not (``unread``): the flow whose id is the
    whole suffix is in no finer part, so only this shows it was read or is absent."""
    if not settled:
        refuse(
            scheduling_type,
            f"second {iso(second_ms)} showed other instances with flow ids ending in {suffix} "
            "each time its offset pages were counted: it changed while it was read",
        )
    if unread:
        refuse(
            scheduling_type,
            f"second {iso(second_ms)} holds {unread[0]} by offset pages, which reading it in "
            f"parts by flow id (ending in {suffix}) did not find: the gateway drops rows from "
            "pages after cutting them (a filter after LIMIT), its expression does not find it by "
            "its id, or that second changed while it was read",
        )


def depth(scheduling_type: int, second_ms: int, suffix: str) -> None:
    """A tied second cannot be split by more digits than a flow id has."""
    refuse(
        scheduling_type,
        f"second {iso(second_ms)} holds more than a page of instances with flow ids ending in "
        f"{suffix}: it cannot be split further by expression",
    )


def blanks_filter_nothing(scheduling_type: int, instance_id: str, other_way: Filters) -> None:
    """Blank ``owner``, ``status`` and ``expression`` filter nothing: asked another way, a
    window's first page holds no instance more."""
    left_out = [name for name in ("owner", "expression") if getattr(other_way, name) is None]
    how = f"status {other_way.status!r}" + (" and no " + " or ".join(left_out) if left_out else "")
    refuse(
        scheduling_type,
        f"instance {instance_id} came back for {how} but not for owner, status and "
        "expression blank: the gateway reads a blank field as a filter, so every window "
        "would read short or empty",
    )


def found_in_its_second(scheduling_type: int, instance_id: str, trigger_ms: int) -> None:
    """An instance found over all of time is found in its own second: the window is read in
    epoch milliseconds and blank filters filter nothing."""
    refuse(
        scheduling_type,
        f"instance {instance_id}, triggered at {iso(trigger_ms)}, is found over all of time "
        "but not in its own second, asked with owner, status and expression blank: the gateway "
        "does not read fromTriggerTime and toTriggerTime as epoch milliseconds, or reads a "
        "blank field as a filter",
    )


def types_disjoint(instance_id: str, first: int, second: int) -> NoReturn:
    """An id comes back under one scheduling type only."""
    raise IncompleteExtractionError(
        f"instance {instance_id} came back for scheduling types {first} and {second}: the "
        "gateway does not filter by type, so its type cannot be told"
    )


def iso(epoch_ms: int) -> str:
    """An instant as UTC ISO text, for messages."""
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).isoformat(timespec="seconds")
