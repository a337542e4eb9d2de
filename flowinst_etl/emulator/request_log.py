"""The request log: one JSON line per search served, so a benchmark can tell requests in flight."""

from __future__ import annotations

import json
import threading


class RequestLog:
    """Appends one line per search request to a file, each flushed as it is written.

    A line is ``{"received": float, "answered": float, "status": int | null}``: wall-clock epoch
    seconds when the request was read and when its answer was written, and the HTTP status
    (``null`` when the connection was dropped or garbled rather than answered). Flushed per line,
    so a reader sees every request a client has had answered as soon as the client is done.
    Thread-safe; lines written after ``close`` are dropped.
    """

    def __init__(self, path: str) -> None:
        """Open ``path`` for appending.

        Raises:
            OSError: the file cannot be opened.
        """
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, received: float, answered: float, status: int | None) -> None:
        """Append the line of one request."""
        line = json.dumps({"received": received, "answered": answered, "status": status})
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        """Close the file; later requests are not logged."""
        with self._lock:
            self._file.close()
