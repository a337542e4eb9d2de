"""Which committed days the gateway changed since they were read: the change test of refresh.

A day is current when no instance triggered in it was updated after its watermark (the start of
the read it holds, or the last check that found it current). The days are probed in runs of
consecutive committed days whose watermarks lie within ``SEGMENT_SPREAD_MS`` of each other, each
run newest update first down to its oldest watermark. A day is reported current only when it
was checked so; when the test is not trusted at the root, or an answer shows it cannot be, every
committed day is re-read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from flowinst_etl.changes.probe import ProbeAnswer, Updated, UpdateProbe
from flowinst_etl.changes.record import CommittedRead, iso_instant
from flowinst_etl.changes.state import (
    Check,
    committed_read,
    committed_update_times,
    read_checks,
    read_distrust,
    record_checks,
    record_distrust,
)
from flowinst_etl.changes.update_time import clock_floor_ms
from flowinst_etl.changes.verify import verify_current
from flowinst_etl.exceptions import FlowinstError, UnreliableChangeTest
from flowinst_etl.extract import Extractor
from flowinst_etl.storage.commits import read_legacy_manifest
from flowinst_etl.storage.filesystem import Store
from flowinst_etl.windows import Window, day_window

log = logging.getLogger(__name__)

UNCHANGED, CHANGED, NEW = "unchanged", "changed", "new"
#: Watermarks of one probed run of days lie within this much of each other (ms): the probe of a
#: run reads every update since its oldest watermark, so spread costs requests.
SEGMENT_SPREAD_MS = 3_600_000
_EXAMPLES = 3


@dataclass(frozen=True)
class DayCheck:
    """What the change test says of one day.

    Attributes:
        day: the partition day.
        verdict: ``unchanged`` (checked current), ``changed`` (to re-read) or ``new`` (never
            committed: to extract).
        reason: what told it.
    """

    day: date
    verdict: str
    reason: str


@dataclass(frozen=True)
class RefreshPlan:
    """The change test over a range of days.

    Attributes:
        days: one check per day, in order.
        requests: search requests the probe sent, retries included.
        checked_at: when the check began, ISO text in UTC.
        untrusted: why the change test was not relied on (every committed day is then
            re-read); ``None`` when it was.
    """

    days: list[DayCheck]
    requests: int
    checked_at: str
    untrusted: str | None = None

    def to_read(self) -> list[date]:
        """The days to extract: changed and new ones."""
        return [check.day for check in self.days if check.verdict != UNCHANGED]


@dataclass
class _Findings:
    """Per day, what the probe saw updated after the day's watermark."""

    moved: dict[date, list[Updated]] = field(default_factory=dict)
    ties: dict[date, int] = field(default_factory=dict)


@dataclass
class _Range:
    """The days asked, the check of each day judged so far, and those the probe judges."""

    days: Sequence[date]
    verdicts: dict[date, DayCheck | None]
    probed: dict[date, CommittedRead]
    checked_at: str

    def plan(self, requests: int) -> RefreshPlan:
        checks = []
        for day in self.days:
            check = self.verdicts[day]
            assert check is not None, f"{day} was not judged"
            checks.append(check)
        return RefreshPlan(checks, requests, self.checked_at)

    def all_read(self, reason: str, requests: int) -> RefreshPlan:
        """Every committed day to re-read, because the change test is not relied on."""
        for day in self.probed:
            self.verdicts[day] = DayCheck(
                day, CHANGED, f"re-read: the change test is not trusted: {reason}"
            )
        return replace(self.plan(requests), untrusted=reason)


def plan_refresh(
    extractor: Extractor,
    root: str,
    days: Sequence[date],
    partition_tz: tzinfo,
    storage_options: Mapping[str, Any] | None = None,
    *,
    verify: bool = False,
) -> RefreshPlan:
    """Find out which of ``days`` the gateway changed since they were committed.

    An instance updated after its day's watermark changes the day unless the day holds it
    with that very update time (read after the change). With ``verify``, the newest day found
    current is then read in full (not written) and compared with its write, for a caller that
    reads no unchanged day in full otherwise. Days found current are noted at the root (their
    check is their next watermark); nothing else is written, but a proof that the change test
    cannot be relied on, which is kept and said loudly.

    Raises:
        FlowinstError: the gateway or the dataset root failed.
    """
    store = Store.open(root, storage_options)
    checks = read_checks(store)
    reads = {day: committed_read(store, day, checks) for day in days}
    judged = _Range(
        days,
        {day: _unprobed(store, day, read) for day, read in reads.items()},
        {day: read for day, read in reads.items() if read and read.watermark_ms is not None},
        datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    )
    distrust = read_distrust(store)
    if distrust is not None:
        return judged.all_read(f"{distrust.reason} (found {distrust.found_at})", 0)
    if not judged.probed:
        return judged.plan(0)
    client = extractor.client
    as_of_ms = clock_floor_ms(client.clock_skew_ms())
    probe = UpdateProbe(client, client.server_timezone())
    try:
        findings = _probe(probe, judged.probed, partition_tz)
    except UnreliableChangeTest as error:
        return _distrusted(store, str(error), None, judged, probe.requests)
    for day, candidates in findings.moved.items():
        held = committed_update_times(root, day, storage_options)
        findings.moved[day] = [u for u in candidates if held.get(u.instance_id) != u.update_ms]
    for day, read in judged.probed.items():
        judged.verdicts[day] = _verdict(day, read, findings)
    current = [day for day in judged.probed if _is_current(judged.verdicts[day])]
    requests = probe.requests
    if verify and current:
        newest = max(current)
        try:
            violation, read_requests = verify_current(
                extractor, root, newest, partition_tz, storage_options
            )
        except FlowinstError as error:  # the belief goes unverified this time; the day stands
            log.warning("could not read %s in full to verify the change test: %s", newest, error)
        else:
            requests += read_requests
            if violation:
                return _distrusted(store, violation, newest, judged, requests)
            judged.verdicts[newest] = DayCheck(
                newest, UNCHANGED, f"{_reason(judged.verdicts[newest])}; read in full: the same"
            )
    at = judged.checked_at
    record_checks(store, {day: Check(judged.probed[day].write_id, as_of_ms, at) for day in current})
    return judged.plan(requests)


def _probe(
    probe: UpdateProbe, probed: Mapping[date, CommittedRead], partition_tz: tzinfo
) -> _Findings:
    """Probe each run of days down to its oldest watermark; what passed each day's watermark."""
    findings = _Findings()
    for segment in _segments(probed):
        window = Window(
            day_window(segment[0], partition_tz).start_ms,
            day_window(segment[-1], partition_tz).end_ms,
        )
        floor = min(_watermark(probed[day]) for day in segment)
        answer = probe.updated_since(window, floor)
        _note(answer, {day: probed[day] for day in segment}, partition_tz, findings)
    return findings


def _distrusted(
    store: Store, proof: str, day: date | None, judged: _Range, requests: int
) -> RefreshPlan:
    """Keep the proof against the change test and re-read every day (``untrusted`` of the
    plan says why: callers say it loudly)."""
    kept = record_distrust(store, proof, day)
    return judged.all_read(kept.reason, requests)


def _is_current(check: DayCheck | None) -> bool:
    return check is not None and check.verdict == UNCHANGED


def _reason(check: DayCheck | None) -> str:
    assert check is not None
    return check.reason


def _unprobed(store: Store, day: date, read: CommittedRead | None) -> DayCheck | None:
    """The check of a day the probe cannot judge; ``None`` for one it can."""
    if read is None:
        if read_legacy_manifest(store, "flow_instances", day) is not None:
            return DayCheck(day, CHANGED, "written by an older version, without a change record")
        return DayCheck(day, NEW, "not committed yet")
    if read.watermark_ms is None:
        return DayCheck(day, CHANGED, f"write {read.write_id} kept no change record")
    return None


def _watermark(read: CommittedRead) -> int:
    assert read.watermark_ms is not None
    return read.watermark_ms


def _segments(probed: Mapping[date, CommittedRead]) -> list[list[date]]:
    """Runs of consecutive days whose watermarks lie within ``SEGMENT_SPREAD_MS``."""
    segments: list[list[date]] = []
    low = high = 0
    for day in sorted(probed):
        mark = _watermark(probed[day])
        current = segments[-1] if segments else None
        if (
            current is not None
            and day - current[-1] == timedelta(days=1)
            and max(high, mark) - min(low, mark) <= SEGMENT_SPREAD_MS
        ):
            current.append(day)
            low, high = min(low, mark), max(high, mark)
        else:
            segments.append([day])
            low = high = mark
    return segments


def _note(
    answer: ProbeAnswer,
    reads: Mapping[date, CommittedRead],
    partition_tz: tzinfo,
    findings: _Findings,
) -> None:
    """File what the probe saw under each day whose watermark it passed."""
    for updated in answer.updated:
        for day in {_day_of(trigger, partition_tz) for trigger in updated.triggers_ms}:
            read = reads.get(day)
            if read is not None and updated.update_ms > _watermark(read):
                findings.moved.setdefault(day, []).append(updated)
    for tied in answer.tied_ms:
        for day, read in reads.items():
            if tied > _watermark(read):
                findings.ties[day] = max(tied, findings.ties.get(day, tied))


def _verdict(day: date, read: CommittedRead, findings: _Findings) -> DayCheck:
    since = iso_instant(_watermark(read))
    moved = findings.moved.get(day)
    if moved:
        examples = "; ".join(
            f"{u.instance_id} now {u.status} ({iso_instant(u.update_ms)})"
            for u in moved[:_EXAMPLES]
        )
        return DayCheck(
            day, CHANGED, f"{len(moved)} instances updated since {since}, e.g. {examples}"
        )
    if day in findings.ties:
        return DayCheck(
            day,
            CHANGED,
            f"instances updated at {iso_instant(findings.ties[day])} straddle a page boundary, "
            "so one of this day may be among them",
        )
    return DayCheck(day, UNCHANGED, f"no instance updated since {since}")


def _day_of(epoch_ms: int, partition_tz: tzinfo) -> date:
    return datetime.fromtimestamp(epoch_ms / 1000, partition_tz).date()
