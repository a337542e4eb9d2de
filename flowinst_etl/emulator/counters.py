"""Thread-safe event counters, so tests can assert what the emulator did rather than guess."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator

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
    "faults_mislabelled",
    "rate_limited",
    "inserted",
    "moved",
    "deleted",
    "status_changes",
    "late_changes",
    "not_found",
    "bad_requests",
    "internal_errors",
)


class Counters:
    """Named integer counters, all starting at zero."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTER_NAMES, 0)
        self._request_times: deque[float] = deque()
        self._peak_requests_per_s = 0
        self._in_flight = 0
        self._peak_in_flight = 0

    def add(self, name: str, amount: int = 1) -> None:
        """Increase one counter.

        Raises:
            KeyError: no counter has that name.
        """
        with self._lock:
            self._values[name] += amount
            if name == "requests":
                self._note_request(time.monotonic(), amount)

    def _note_request(self, now: float, amount: int) -> None:
        """Keep the requests of the last second and the most ever seen within one second."""
        self._request_times.extend([now] * amount)
        while self._request_times[0] <= now - 1.0:
            self._request_times.popleft()
        self._peak_requests_per_s = max(self._peak_requests_per_s, len(self._request_times))

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Count a request as in flight while it is served."""
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def peak_in_flight(self) -> int:
        """The most requests ever served at the same time."""
        with self._lock:
            return self._peak_in_flight

    def peak_requests_per_second(self) -> int:
        """The most requests received within any one second (a sliding window) so far."""
        with self._lock:
            return self._peak_requests_per_s

    def snapshot(self) -> dict[str, int]:
        """The current value of every counter."""
        with self._lock:
            return dict(self._values)
