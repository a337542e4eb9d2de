"""List Flow Instances: body validation as the batch service answers it, filtering, paging."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from flowinst_etl.emulator.config import EmulatorConfig
from flowinst_etl.emulator.envelope import ApiFailure
from flowinst_etl.emulator.records import Instance
from flowinst_etl.emulator.status import STATUS_NAMES

INVALID_PARAMETER = 62102
MAX_PAGE_SIZE = 1000
#: The most rows a page of a search with an ``expression`` holds under ``caps_expression``.
EXPRESSION_CAP = 3

_INTEGER = re.compile(r"^\s*-?\d+\s*$")
_SORT_KEYS = {
    "trigger_time": "trigger_ms",
    "start_time": "start_ms",
    "end_time": "end_ms",
    "create_time": "create_ms",
    "update_time": "update_ms",
}
_CAMEL_SORT_KEYS = {
    "triggerTime": "trigger_ms",
    "startTime": "start_ms",
    "endTime": "end_ms",
    "createTime": "create_ms",
    "updateTime": "update_ms",
}
_SORTER_FIELDS = {
    "snake": _SORT_KEYS,
    "camel": _CAMEL_SORT_KEYS,
    "both": {**_SORT_KEYS, **_CAMEL_SORT_KEYS},
}
_BY_TRIGGER = (("trigger_ms", False),)


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: filters, window, effective page and sort keys.

    Attributes:
        scheduling_type: 0 manual, 1 periodic, 2 temporary.
        expression: lower-cased substring to find in instanceId and/or flowName (``matches``:
            "both", "id" or "name"); "" matches all.
        owner: exact owner to keep; "" keeps all.
        from_ms / to_ms: the trigger-time window; ``from_inclusive`` and ``to_inclusive`` say
            whether its ends are in it.
        statuses: the status codes to keep; ``None`` keeps all.
        page: the page number after the server's clamping, which seeds ``by_page`` tie orders.
        offset / page_size: the slice of the ordered matches to answer.
        sorters: (instance attribute, descending) pairs, applied in order.
        blank_filtered: a field was sent blank that ``blank_filters`` reads as a filter, so
            nothing is kept.
    """

    scheduling_type: int
    expression: str
    owner: str
    from_ms: int
    to_ms: int
    to_inclusive: bool
    statuses: frozenset[int] | None
    page: int
    offset: int
    page_size: int
    sorters: tuple[tuple[str, bool], ...]
    from_inclusive: bool = True
    matches: str = "both"
    blank_filtered: bool = False

    def keep(self, window: list[Instance]) -> list[Instance]:
        """The instances of the trigger window passing the status, owner and expression filters."""
        if self.blank_filtered:
            return []
        kept = window
        if self.statuses is not None:
            kept = [item for item in kept if item.status in self.statuses]
        if self.owner:
            kept = [item for item in kept if item.flow.owner == self.owner]
        if self.expression:
            text = self.expression
            by_id, by_name = self.matches != "name", self.matches != "id"
            kept = [
                item
                for item in kept
                if (by_id and text in item.id_lower) or (by_name and text in item.name_lower)
            ]
        return kept


def parse_search(body: str, config: EmulatorConfig) -> SearchQuery:
    """Validate a search body under the emulator's behaviours.

    Raises:
        ApiFailure: 62102 naming the first offending field.
    """
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise _invalid(f"request body is not valid JSON ({exc.msg})") from exc
    except RecursionError as exc:
        raise _invalid("request body is nested too deeply") from exc
    if not isinstance(payload, dict):
        raise _invalid("request body must be a JSON object")
    scheduling_type = _integer(payload, "type")
    if scheduling_type not in (0, 1, 2):
        raise _invalid("type must be 0, 1 or 2")
    expression = payload.get("expression")
    if expression is None:
        expression = ""
    if not isinstance(expression, str):
        raise _invalid("expression must be a string")
    owner = payload.get("owner")
    if owner is None and "owner" in config.blank_filters:
        owner = ""  # left out: no filter on a server that filters on every field present
    elif not isinstance(owner, str):
        raise _invalid("owner is mandatory and must be a string")
    blank_filtered = any(payload.get(name) == "" for name in config.blank_filters)
    scale = 1000 if config.window_unit == "s" else 1
    from_ms = _integer(payload, "fromTriggerTime") * scale
    to_ms = _integer(payload, "toTriggerTime") * scale
    if from_ms > to_ms:
        raise _invalid("fromTriggerTime must not be after toTriggerTime")
    pagination = payload.get("pagination")
    if not isinstance(pagination, dict):
        raise _invalid("pagination is mandatory and must be an object")
    page_no = _integer(pagination, "pageNo")
    page_size = _integer(pagination, "pageSize")
    if not 0 < page_size <= MAX_PAGE_SIZE:
        raise _invalid(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    if config.page_size_cap is not None:
        page_size = min(page_size, config.page_size_cap)
    if config.defect == "caps_expression" and expression:
        page_size = min(page_size, EXPRESSION_CAP)
    page, first_page = _page(page_no, config.page_base)
    return SearchQuery(
        scheduling_type=scheduling_type,
        expression="" if config.defect == "ignores_expression" else expression.lower(),
        owner=owner,
        from_ms=from_ms,
        to_ms=to_ms,
        to_inclusive=config.to_bound == "inclusive",
        statuses=_statuses(payload),
        page=page,
        offset=(page - first_page) * page_size,
        page_size=page_size,
        sorters=_sorters(pagination.get("sorters"), config.sorter_names),
        from_inclusive=config.from_bound == "inclusive",
        matches=config.expression_matches,
        blank_filtered=blank_filtered,
    )


def order_page(
    matches: list[Instance], query: SearchQuery, tie_order: str, seed: int
) -> list[Instance]:
    """The requested page of ``matches`` (given in (trigger, instanceId) order).

    Records that tie on every sort key are ordered by instance id (``stable``) or, like an SQL
    database paging a non-unique ORDER BY, by a permutation seeded by the page number (``by_page``).
    Null times sort first in ascending order and last in descending order.
    """
    sorters = query.sorters or _BY_TRIGGER
    end = query.offset + query.page_size
    if tie_order == "stable" and sorters == _BY_TRIGGER:
        return matches[query.offset : end]
    getters = [(attrgetter(name), -1 if descending else 1) for name, descending in sorters]

    def sort_key(item: Instance) -> tuple[int, ...]:
        values = []
        for get, sign in getters:
            value = get(item)
            values.append(sign * (-1 if value is None else value))
        return tuple(values)

    decorated = sorted((sort_key(item), item.instance_id, item) for item in matches)
    if tie_order == "by_page" and query.offset < len(decorated):
        _permute_ties(decorated, query.offset, min(end, len(decorated)), f"{seed}:{query.page}")
    return [item for _, _, item in decorated[query.offset : end]]


def _permute_ties(
    decorated: list[tuple[Any, str, Instance]], start: int, stop: int, salt: str
) -> None:
    """Reorder, in place, each run of equal sort keys that overlaps ``[start, stop)``."""
    low = start
    while low > 0 and decorated[low - 1][0] == decorated[start][0]:
        low -= 1
    high = stop
    while high < len(decorated) and decorated[high][0] == decorated[stop - 1][0]:
        high += 1
    run_start = low
    while run_start < high:
        run_end = run_start + 1
        while run_end < high and decorated[run_end][0] == decorated[run_start][0]:
            run_end += 1
        if run_end - run_start > 1:
            decorated[run_start:run_end] = sorted(
                decorated[run_start:run_end], key=lambda entry: _rank(salt, entry[1])
            )
        run_start = run_end


def _rank(salt: str, instance_id: str) -> bytes:
    return hashlib.blake2b(f"{salt}:{instance_id}".encode(), digest_size=8).digest()


def _invalid(detail: str) -> ApiFailure:
    return ApiFailure(INVALID_PARAMETER, f"Incorrect parameter: {detail}")


def _integer(container: dict[str, Any], name: str) -> int:
    """An integer field, given as a JSON integer or a numeric string (the server coerces both)."""
    value = container.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.match(value):
        return int(value)
    if value is None:
        raise _invalid(f"{name} is mandatory")
    raise _invalid(f"{name} must be an integer")


def _page(page_no: int, page_base: str) -> tuple[int, int]:
    """The effective page and the number of the first page."""
    if page_base == "zero":
        if page_no < 0:
            raise _invalid("pageNo must be 0 or more")
        return page_no, 0
    if page_no < 0 or (page_no == 0 and page_base == "one_strict"):
        raise _invalid("pageNo must be 1 or more")
    return max(page_no, 1), 1


def _statuses(payload: dict[str, Any]) -> frozenset[int] | None:
    value = payload.get("status")
    if isinstance(value, int) and not isinstance(value, bool):
        codes = [value]
    elif isinstance(value, str):
        if not value.strip():
            return None
        parts = value.split(",")
        if not all(_INTEGER.match(part) for part in parts):
            raise _invalid('status must be comma-separated status codes such as "1,2,3"')
        codes = [int(part) for part in parts]
    elif value is None:
        raise _invalid('status is mandatory ("" for every status)')
    else:
        raise _invalid("status must be a string of comma-separated codes or an integer")
    unknown = [code for code in codes if code not in STATUS_NAMES]
    if unknown:
        raise _invalid(f"unknown status code {unknown[0]}")
    return frozenset(codes)


def _sorters(value: Any, sorter_names: str) -> tuple[tuple[str, bool], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ApiFailure(INVALID_PARAMETER, "The sorters field parameter is invalid")
    fields = _SORTER_FIELDS[sorter_names]
    sorters = []
    for sorter in value:
        field = sorter.get("field") if isinstance(sorter, dict) else None
        if not isinstance(field, str) or field not in fields:
            raise ApiFailure(INVALID_PARAMETER, "The sorters field parameter is invalid")
        order = sorter.get("order")
        if order is None:
            order = "ASC"
        if not isinstance(order, str) or order.upper() not in ("ASC", "DESC"):
            raise ApiFailure(INVALID_PARAMETER, "The sorters order parameter is invalid")
        sorters.append((fields[field], order.upper() == "DESC"))
    return tuple(sorters)
