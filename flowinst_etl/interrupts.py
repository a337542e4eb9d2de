"""Holding SIGINT and SIGTERM back while a day is committed, so an interrupt never splits one."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the block to its end even if SIGINT or SIGTERM arrives, then deliver the signal to
    whatever handler was in force before (Python's, Dagster's or the command line's).

    Signal handlers can only change on the main thread; elsewhere the block runs unchanged
    (Python delivers signals to the main thread only, so it is not interrupted anyway).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if received:
            signal.raise_signal(received[0])
