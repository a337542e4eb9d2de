"""A window's extraction: its instances in order, its reconciliation, and the spools its
records wait in until they are written."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from types import TracebackType

from flowinst_etl.extract import checks
from flowinst_etl.extract.answers import Figures, Row
from flowinst_etl.extract.feed import Part
from flowinst_etl.model import FoundInstance
from flowinst_etl.spool import Spool
from flowinst_etl.windows import Window


@dataclass
class Reconciliation(Figures):
    """What it took to extract a window; each figure's meaning is in docs/tables.md
    (``duplicates_dropped`` is every row received beyond one per instance)."""

    instances: int = 0

    def absorb(self, part: Figures) -> None:
        """Add one scheduling type's figures."""
        for name, value in asdict(part).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """The figures as a flat mapping."""
        return asdict(self)


@dataclass(frozen=True)
class Extraction:
    """Every instance of one window, sorted by trigger time and id, with its reconciliation.

    The records wait in spools: in memory while the run's budget lasts, beyond it in temporary
    files. Read them a chunk at a time with :meth:`chunks` (memory bounded by the chunk, for a
    day of any size), or all at once with :attr:`instances`; :meth:`close` (or leaving a
    ``with`` block) frees them.
    """

    window: Window
    reconciliation: Reconciliation
    rows: list[tuple[int, Row]] = field(repr=False)
    spools: list[Spool] = field(default_factory=list, repr=False)

    @property
    def instances(self) -> list[FoundInstance]:
        """Every record at once, in order."""
        return _found(self.rows)

    def chunks(self, size: int, max_bytes: int | None = None) -> Iterator[list[FoundInstance]]:
        """The records in order, ``size`` at a time, and records of at most ``max_bytes`` (as
        received JSON) at a time where given (a record heavier than that comes alone)."""
        chunk: list[tuple[int, Row]] = []
        weight = 0
        for row in self.rows:
            if chunk and (
                len(chunk) == size or (max_bytes is not None and weight + row[1].size > max_bytes)
            ):
                yield _found(chunk)
                chunk, weight = [], 0
            chunk.append(row)
            weight += row[1].size
        if chunk:
            yield _found(chunk)

    def close(self) -> None:
        """Free the records (memory budget and temporary files); they cannot be read after."""
        _close(self.spools)

    def __enter__(self) -> Extraction:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def assemble_or_error(
    window: Window, parts: list[Part], failure: Exception | None
) -> Extraction | Exception:
    """The window's extraction, or why it failed (its records are then freed at once)."""
    try:
        if failure is not None:
            raise failure
        return _assemble(window, parts)
    except Exception as error:  # noqa: BLE001 - any failure stays in its window
        _close([spool for *_, spool in parts])
        return error


def _assemble(window: Window, parts: list[Part]) -> Extraction:
    """One window's instances from its parts (one or more per scheduling type, each of a span
    of the window), ordered by trigger and id.

    An id read in two spans of one type moved between their reads; its later read is kept, as
    a walk keeps the later of two reads of one id.

    Raises:
        IncompleteExtractionError: an id came back under two scheduling types.
    """
    reconciliation = Reconciliation()
    found: dict[str, tuple[int, int, Row]] = {}
    for scheduling_type, rows, part, _ in sorted(parts, key=lambda p: p[0]):
        reconciliation.absorb(part)
        for instance_id, row in rows.items():
            earlier = found.get(instance_id)
            if earlier is not None:
                if earlier[1] != scheduling_type:
                    checks.types_disjoint(instance_id, earlier[1], scheduling_type)
                reconciliation.drift += 1
                if earlier[2].received_ns > row.received_ns:
                    continue
            found[instance_id] = (row.trigger_ms, scheduling_type, row)
    ordered = sorted(found, key=lambda i: (found[i][0], i))
    reconciliation.instances = len(ordered)
    reconciliation.duplicates_dropped = reconciliation.rows_received - len(ordered)
    rows_in_order = [(found[i][1], found[i][2]) for i in ordered]
    return Extraction(window, reconciliation, rows_in_order, [spool for *_, spool in parts])


def _found(rows: Iterable[tuple[int, Row]]) -> list[FoundInstance]:
    """The records of ``rows`` (read back from their spools), with their scheduling types."""
    return [FoundInstance(kind, row.record) for kind, row in rows]


def _close(spools: Iterable[Spool]) -> None:
    for spool in spools:
        spool.close()
