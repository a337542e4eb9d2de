"""What a person sees during a backfill or a refresh: what the change test found, a bar per day,
warnings as they happen, a summary and the requests spent."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from datetime import date
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from flowinst_etl.changes import RefreshPlan
from flowinst_etl.load import DayResult

_COUNTED = [
    ("instances", "flow_instances"),
    ("tasks", "flow_instance_tasks"),
    ("relations", "flow_instance_relations"),
    ("upstream flows", "flow_instance_upstream_flows"),
]


class BackfillProgress:
    """Live progress of a backfill: one bar per day, filled when the day is committed or failed."""

    def __init__(self, days: Sequence[date], console: Console) -> None:
        self._console = console
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[date, TaskID] = {
            day: self._progress.add_task(day.isoformat(), total=1, state="extracting")
            for day in days
        }
        self.results: list[DayResult] = []

    def __enter__(self) -> BackfillProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def on_day(self, result: DayResult) -> None:
        """Mark one day done (with its instance count) or failed."""
        self.results.append(result)
        state = (
            f"[green]{result.rows.get('flow_instances', 0)} instances"
            if result.ok
            else "[red]failed"
        )
        self._progress.update(self._tasks[result.day], completed=1, state=state)


def summary_table(
    results: Sequence[DayResult], days: Sequence[date], title: str = "flowinst-etl backfill"
) -> Table:
    """Days, rows per table and failures of a run; days that never reported count as failed."""
    table = Table(title=title)
    table.add_column("days")
    for label, _ in _COUNTED:
        table.add_column(label, justify="right")
    table.add_column("failed days", justify="right")
    ok = [r for r in results if r.ok]
    failed = len(days) - len(ok)
    table.add_row(
        str(len(days)),
        *(str(sum(r.rows.get(name, 0) for r in ok)) for _, name in _COUNTED),
        f"[red]{failed}" if failed else "0",
    )
    return table


def refresh_report(plan: RefreshPlan) -> str:
    """One line per day: unchanged, changed or new, and what told it."""
    width = max(len(check.verdict) for check in plan.days)
    lines = [f"changes since each day was read, checked at {plan.checked_at}:"]
    lines += [f"{check.day}  {check.verdict:<{width}}  {check.reason}" for check in plan.days]
    return "\n".join(lines)


def requests_report(plan: RefreshPlan, results: Sequence[DayResult]) -> str:
    """The search requests a refresh spent: checking, then extracting."""
    read = sum(result.reconciliation.get("requests", 0) for result in results)
    return (
        f"requests: {plan.requests} to check {len(plan.days)} days, {read} to extract "
        f"{len(results)} days ({plan.requests + read} in all)"
    )


class StderrLines(logging.Handler):
    """Each log record as one ``flowinst-etl: LEVEL: message`` line on stderr.

    Lines are written to ``sys.stderr`` as it is when the record arrives, so while a progress
    display is live on a terminal (rich redirects stderr then) they appear above its bars.
    With ``detailed``, a record's traceback follows its line.
    """

    def __init__(self, level: int, detailed: bool = False) -> None:
        super().__init__(level)
        self._detailed = detailed

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = " ".join(record.getMessage().split())
            line = f"flowinst-etl: {record.levelname.lower()}: {text}"
            if self._detailed and record.exc_info:
                line += "\n" + logging.Formatter().formatException(record.exc_info)
            print(line, file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)
