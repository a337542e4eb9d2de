"""Thread-safe event counters, so tests can assert what the emulator did rather than guess."""

from __future__ import annotations

import threading

COUNTER_NAMES = (
    "requests",
    "token_gets",
    "token_refreshes",
    "token_failures",
    "auth_failures",
    "time_calls",
    "searches",
    "search_errors",
    "forced_errors",
    "body_faults",
    "faults_5xx",
    "faults_dropped",
    "faults_garbled",
    "rate_limited",
    "inserted",
    "status_changes",
    "not_found",
    "bad_requests",
    "internal_errors",
)


class Counters:
    """Named integer counters, all starting at zero."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTER_NAMES, 0)

    def add(self, name: str, amount: int = 1) -> None:
        """Increase one counter.

        Raises:
            KeyError: no counter has that name.
        """
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> dict[str, int]:
        """The current value of every counter."""
        with self._lock:
            return dict(self._values)
