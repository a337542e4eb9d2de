"""The ``Emulator`` object: a server thread plus its ground truth, counters and switches."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from types import TracebackType

from flowinst_etl.emulator.config import STRUCTURAL_FIELDS, EmulatorConfig
from flowinst_etl.emulator.counters import Counters
from flowinst_etl.emulator.data import generate
from flowinst_etl.emulator.faults import FaultInjector
from flowinst_etl.emulator.gateway import TokenService
from flowinst_etl.emulator.handler import EmulatorHTTPServer
from flowinst_etl.emulator.history import LateChange
from flowinst_etl.emulator.request_log import RequestLog
from flowinst_etl.emulator.routes import Runtime
from flowinst_etl.emulator.store import InstanceStore, TruthInstance
from flowinst_etl.exceptions import ConfigError

_POLL_INTERVAL_S = 0.05


class Emulator:
    """An EnOS API emulator serving real HTTP on loopback.

    The dataset is generated when the object is built; ``start`` binds the socket and serves from a
    daemon thread. Use it as a context manager::

        with Emulator(EmulatorConfig(per_day=50)) as emu:
            requests.get(emu.base_url + "/batch-processing-service/v2.1/time?action=getTimeZone")
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        """Build the dataset of ``config`` (defaults when ``None``); nothing listens yet."""
        config = config if config is not None else EmulatorConfig()
        counters = Counters()
        self._runtime = Runtime(
            config=config,
            store=InstanceStore(generate(config), config, counters),
            tokens=TokenService(),
            faults=FaultInjector(config.seed),
            counters=counters,
        )
        self._lock = threading.Lock()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> EmulatorConfig:
        """The settings in force now, including switches changed by ``reconfigure``."""
        return self._runtime.config

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server.

        Raises:
            RuntimeError: the emulator is not running.
        """
        server = self._server
        if server is None:
            raise RuntimeError(
                "the emulator is not running: call start() or use it in a with block"
            )
        host, port = server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        """Bind ``config.host:config.port`` and serve from a daemon thread; returns ``self``.

        Raises:
            RuntimeError: the emulator is already running.
            OSError: the address cannot be bound or ``request_log`` cannot be opened.
        """
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            config = self._runtime.config
            server = EmulatorHTTPServer((config.host, config.port), self._runtime)
            if config.request_log is not None:
                try:
                    self._runtime.request_log = RequestLog(config.request_log)
                except OSError:
                    server.server_close()
                    raise
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_S},
                name=f"enos-emulator-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; does nothing when not running."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        if self._runtime.request_log is not None:
            self._runtime.request_log.close()
            self._runtime.request_log = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def truth(
        self,
        start_ms: int | None = None,
        end_ms: int | None = None,
        scheduling_type: int | None = None,
    ) -> list[TruthInstance]:
        """The instances as they are now, triggered in ``[start_ms, end_ms)`` (open when ``None``).

        Args:
            start_ms: first trigger instant included, epoch ms.
            end_ms: first trigger instant excluded, epoch ms.
            scheduling_type: 0, 1 or 2 to keep one type; ``None`` for all.

        Returns:
            Copies of the served records, sorted by (trigger_ms, instanceId).

        Raises:
            ConfigError: ``scheduling_type`` is not 0, 1, 2 or None.
        """
        return self._runtime.store.truth(start_ms, end_ms, scheduling_type)

    def changed_ids(self) -> set[str]:
        """Ids of the instances the emulator inserted, moved or deleted while serving
        (``insert_every``, ``move_every``, ``delete_every``): a read that overlapped the change
        may hold each of them or not, exactly as if it had changed just before or after."""
        return self._runtime.store.changed_ids()

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the current ground truth as JSON lines (scheduling_type, trigger_ms, record)."""
        with open(path, "w", encoding="utf-8") as out:
            for item in self.truth():
                out.write(json.dumps(item._asdict(), ensure_ascii=False) + "\n")

    def stats(self) -> dict[str, int]:
        """The counters: requests, searches, token_gets, auth_failures, faults_5xx, inserted, ..."""
        return self._runtime.counters.snapshot()

    def peak_requests_per_second(self) -> int:
        """The most requests of any kind received within one second (a sliding window) so far:
        the load a gateway saw at its busiest, to compare with a configured rate limit."""
        return self._runtime.counters.peak_requests_per_second()

    def peak_requests_in_flight(self) -> int:
        """The most requests of any kind served at the same time so far: how many a client kept
        in flight at its busiest."""
        return self._runtime.counters.peak_in_flight()

    def late_changes(
        self, count: int, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[LateChange]:
        """Change instances of past days now, as a console user or the scheduler would: rerun a
        failed one, end a running, suspended or rerun one, or cancel one not finished.

        Each change gives its instance a new update time (the server clock, skew included, one
        millisecond apart), unless ``update_times`` is "frozen". Which instances change and how
        is reproducible: the same config and the same calls change the same instances.

        Args:
            count: instances to change (fewer when fewer can change).
            start_ms: first trigger instant of the instances to choose from, epoch ms.
            end_ms: first trigger instant excluded, epoch ms.

        Returns:
            What changed, one entry per instance.
        """
        return self._runtime.store.late_changes(count, start_ms, end_ms, self._runtime.config)

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far; clients must fetch new ones."""
        self._runtime.tokens.revoke_all()

    def reconfigure(self, **changes: object) -> EmulatorConfig:
        """Change behaviours and faults of this emulator, running or not; returns the new config.

        Args:
            **changes: ``EmulatorConfig`` fields, e.g. ``error_rate=0.5`` or ``forced_error=None``.

        Raises:
            ConfigError: an unknown field, a field fixed at construction (address, seed, days,
                per_day, server_timezone, malformed_graph_rate) or an invalid value.
        """
        fixed = sorted(STRUCTURAL_FIELDS.intersection(changes))
        if fixed:
            raise ConfigError(
                f"cannot change {', '.join(fixed)} of an existing emulator: build a new one"
            )
        known = {item.name for item in dataclasses.fields(EmulatorConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown emulator setting(s): {', '.join(unknown)}")
        with self._lock:
            self._runtime.config = dataclasses.replace(self._runtime.config, **changes)  # type: ignore[arg-type]
            return self._runtime.config
