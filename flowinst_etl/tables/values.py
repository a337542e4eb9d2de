"""Column kinds and lenient value conversion, shared by the record and graph readers.

Nothing the gateway sends is trusted to have its documented type: each column has a
:class:`Kind` that says which values it takes as they are and how to convert the rest; a value
that cannot be converted becomes null and the reason is kept.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_SURROGATE = re.compile("[\ud800-\udfff]")
#: From 2**53 on, a float no longer tells neighbouring integers apart: such an id sent as a
#: float cannot be trusted.
_EXACT_FLOAT_INTEGER = 1 << 53
Errors = defaultdict[int, list[str]]  # record position -> reasons


class Invalid(ValueError):
    """A value that does not fit its column; the message says why, and ``replacement`` is what
    the column holds instead (null unless a part of the value could be kept)."""

    def __init__(self, message: str, replacement: Any = None) -> None:
        super().__init__(message)
        self.replacement = replacement


class Refused(Exception):
    """A vectorised reader cannot vouch for its input; read it value by value instead."""


def brief(value: Any) -> str:
    """``repr`` of a value, cut short so one odd value cannot swamp an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise Invalid(f"{brief(value)} is not text")


def finite(value: Any) -> tuple[Any, int]:
    """``value`` (parsed JSON) with every NaN and infinity replaced by ``None``, and how many.

    Python's ``json`` reads and writes the bare ``NaN``/``Infinity`` the gateway may send, and
    reads a number too large for a float (``1e999``) as infinity; strict JSON parsers (Polars,
    DuckDB, browsers) refuse all of them.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None, 1
    if isinstance(value, dict):
        pairs = [(key, finite(item)) for key, item in value.items()]
        return {key: item for key, (item, _) in pairs}, sum(count for _, (_, count) in pairs)
    if isinstance(value, list):
        items = [finite(item) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    return value, 0


def standard_json(value: Any, *, sort_keys: bool = False) -> str:
    """``value`` (parsed JSON) as standard JSON text.

    Raises:
        Invalid: it cannot be written as JSON; or it held NaN or infinities, then the text with
            those as ``null`` is the ``replacement``.
    """
    try:
        cleaned, replaced = finite(value)
        text = json.dumps(cleaned, ensure_ascii=False, allow_nan=False, sort_keys=sort_keys)
    except (TypeError, ValueError, RecursionError) as exc:
        raise Invalid(f"{brief(value)} cannot be written as JSON") from exc
    if replaced:
        raise Invalid(f"{replaced} NaN or Infinity written as null", replacement=text)
    return text


#: Where a JSON text may hold a number too large for a float, which Python's json reads as
#: infinity: an exponent of three digits or more, or a run of 200 digits (with an exponent of
#: at most 99, overflowing takes at least 210 digits before the point).
_HUGE_NUMBER = re.compile(r"[0-9][eE]\+?[0-9]{3}|[0-9]{200}")
_NON_STANDARD = "NaN|Infinity|" + _HUGE_NUMBER.pattern


def _json_text(value: Any) -> str:
    if not isinstance(value, str):
        return standard_json(value)
    # Text as sent, unless it is JSON holding the NaN or Infinity of Python's json, or a number
    # it reads as infinity; a cheap look for those spares parsing every graph.
    if "NaN" not in value and "Infinity" not in value and not _HUGE_NUMBER.search(value):
        return value
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return value
    standard_json(parsed)
    return value


def may_be_non_standard_json(texts: pa.Array) -> pa.BooleanArray:
    """Whether each JSON text may not be standard JSON as sent: it holds NaN, Infinity or a
    number too large for a float (false for null).

    Screened by Arrow's RE2 (linear time, ~3 ms per 1,000 graphs); Python's ``re`` takes ~80 µs
    per graph on this pattern, which made screening most of a day's flattening.
    """
    return pc.match_substring_regex(texts, _NON_STANDARD).fill_null(False)


def _json_texts_to_convert(values: list[Any]) -> list[int]:
    """Positions whose value may not be standard JSON text as sent: values that are not text,
    and texts :func:`may_be_non_standard_json` flags."""
    texts = [value if isinstance(value, str) else None for value in values]
    rows = [row for row, value in enumerate(values) if value is not None and texts[row] is None]
    try:
        suspect = may_be_non_standard_json(pa.array(texts, pa.string()))
    except UnicodeEncodeError:  # a lone surrogate: Arrow takes no such text, look at all
        return [row for row, value in enumerate(values) if value is not None]
    rows += pc.indices_nonzero(suspect).to_pylist()
    return sorted(rows)


def _present(values: list[Any]) -> list[int]:
    return [row for row, value in enumerate(values) if value is not None]


def _integer(bits: int) -> Callable[[Any], int]:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(value: Any) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            if abs(value) >= _EXACT_FLOAT_INTEGER:
                raise Invalid(f"{brief(value)} came as a float too large to be exact")
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                number = None
        if number is None:
            raise Invalid(f"{brief(value)} is not an integer")
        if not low <= number <= high:
            raise Invalid(f"{brief(value)} is out of range for int{bits}")
        return number

    return convert


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"{brief(value)} is not a number")
    try:
        return float(value)
    except (ValueError, OverflowError) as exc:
        raise Invalid(f"{brief(value)} is not a number") from exc


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Invalid(f"{brief(value)} is not a boolean")


@dataclass(frozen=True)
class Kind:
    """How the values of one column are checked, converted and typed."""

    arrow: pa.DataType
    exact: frozenset[type]
    convert: Callable[[Any], Any]
    bits: int = 0
    #: the positions of a column's values that ``convert`` must see (the rest are kept)
    to_convert: Callable[[list[Any]], list[int]] = _present

    def fits_as_is(self, values: list[Any]) -> bool:
        """Whether every value already has a type and range the column takes unchanged."""
        if not set(map(type, values)) <= self.exact:
            return False
        present = [value for value in values if value is not None] if self.bits else ()
        if not present:
            return True
        limit = 1 << (self.bits - 1)
        return -limit <= min(present) and max(present) < limit


def _int_kind(bits: int) -> Kind:
    arrow = {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[bits]
    return Kind(arrow, frozenset({int, type(None)}), _integer(bits), bits)


TEXT = Kind(pa.string(), frozenset({str, type(None)}), _text)
JSON_TEXT = Kind(
    pa.string(), frozenset({type(None)}), _json_text, to_convert=_json_texts_to_convert
)
FLOAT = Kind(pa.float64(), frozenset({float, type(None)}), _float)
BOOL = Kind(pa.bool_(), frozenset({bool, type(None)}), _boolean)
INT8, INT16, INT64 = _int_kind(8), _int_kind(16), _int_kind(64)


def converted(values: list[Any], kind: Kind, label: str, errors: Errors) -> list[Any]:
    """The values converted to ``kind``; misfits become ``None`` and are noted in ``errors``."""
    if kind.fits_as_is(values):
        return values
    out = list(values)
    for row in kind.to_convert(values):
        try:
            out[row] = kind.convert(values[row])
        except Invalid as exc:
            out[row] = exc.replacement
            errors[row].append(f"{label}: {exc}")
    return out


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_valid_text(item) for item in value]
    return value


def to_array(values: Sequence[Any], arrow: pa.DataType) -> pa.Array:
    """An Arrow array of converted values; text that is not valid Unicode gets U+FFFD."""
    try:
        return pa.array(values, arrow)
    except UnicodeEncodeError:
        return pa.array([_valid_text(value) for value in values], arrow)
