"""Plain values passed between extraction, flattening and storage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

#: EnOS scheduling types of a flow instance: 0 manual, 1 periodic, 2 temporary.
SCHEDULING_TYPES: tuple[int, ...] = (0, 1, 2)


class FoundInstance(NamedTuple):
    """One flow-instance record as the gateway returned it, with the scheduling type of the query
    that found it (records do not carry their type)."""

    scheduling_type: int
    record: Mapping[str, Any]
