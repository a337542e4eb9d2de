"""HTTP plumbing of the emulator: keep-alive framing, faults, routing, never dying on a request."""

from __future__ import annotations

import json
import random
import socket
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flowinst_etl.emulator.routes import (
    ROUTES,
    SEARCH_PATH,
    Call,
    Reply,
    Runtime,
    internal_error,
    json_reply,
)

MAX_BODY_BYTES = 1 << 20


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that tracks open connections, so ``stop`` can cut keep-alive ones."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], runtime: Runtime) -> None:
        self.runtime = runtime
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, EmulatorRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection; their threads see end-of-stream and exit."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-answer is routine; anything else is a bug worth printing.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests: faults first, then the endpoint, 500 on any exception."""

    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "EnOS-Emulator"
    # One buffered write per answer, flushed by the base class, and no Nagle delay on it.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def version_string(self) -> str:
        """The ``Server`` header: the emulator's name without Python's version."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: tests and benchmarks read counters, not access logs."""

    def _answer(self, method: str) -> None:
        runtime = self.server.runtime
        self._received: float | None = time.time()
        self._status: int | None = None
        with runtime.counters.serving():
            self._serve(method)
        self._log_search()  # a connection dropped or garbled: no answer was sent

    def _log_search(self) -> None:
        """Log a search once, as it is answered: before its body goes out, so a client that
        has its answer finds its line in the log."""
        log, received = self.server.runtime.request_log, self._received
        if log is not None and received is not None and urlsplit(self.path).path == SEARCH_PATH:
            log.write(received, time.time(), self._status)
        self._received = None

    def _serve(self, method: str) -> None:
        runtime = self.server.runtime
        config = runtime.config
        runtime.counters.add("requests")
        body = self._read_body()
        if body is None:
            return
        url = urlsplit(self.path)
        route = ROUTES.get((method, url.path))
        if route is None:
            runtime.counters.add("not_found")
            self._send(
                json_reply(404, {"status": 404, "msg": f"no such endpoint: {method} {url.path}"})
            )
            return
        if config.latency_ms or config.latency_jitter_ms:
            jitter = random.uniform(0, config.latency_jitter_ms)  # noqa: S311 - timing only
            time.sleep((config.latency_ms + jitter) / 1000)
        fault = runtime.faults.pick(config)
        if fault is not None and fault.kind == "drop":
            runtime.counters.add("faults_dropped")
            self.close_connection = True
            return
        if fault is not None and fault.kind == "garbled":
            runtime.counters.add("faults_garbled")
            self.close_connection = True
            self.wfile.write(fault.body)
            return
        if fault is not None and fault.kind == "rate_limited":
            runtime.counters.add("rate_limited")
            header = config.retry_after_header
            retry_after = (
                ("Retry-After", header if header is not None else str(config.retry_after_s)),
            )
            self._send(Reply(fault.status, fault.body, headers=retry_after))
            return
        if fault is not None:
            runtime.counters.add("faults_5xx")
            content_type = "text/html" if fault.body else "text/plain"
            self._send(Reply(fault.status, fault.body, content_type))
            return
        call = Call(
            runtime=runtime,
            config=config,
            headers=self.headers,  # type: ignore[arg-type]
            query=parse_qsl(url.query, keep_blank_values=True),
            body=body.decode("utf-8", errors="replace"),
        )
        try:
            reply = route(call)
        except Exception:  # the emulator must keep serving whatever happens
            runtime.counters.add("internal_errors")
            reply = internal_error(config)
        if runtime.faults.mislabels(config):
            runtime.counters.add("faults_mislabelled")
            reply = replace(reply, headers=(*reply.headers, ("Content-Encoding", "gzip")))
        self._send(reply)

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` after answering a request whose framing is unusable."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send the body with a Content-Length")
            return None
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "invalid Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self._refuse(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            return None
        return self.rfile.read(length)

    def _refuse(self, status: int, message: str) -> None:
        self.server.runtime.counters.add("bad_requests")
        self.close_connection = True
        self._send(Reply(status, json.dumps({"status": status, "msg": message}).encode()))

    def _send(self, reply: Reply) -> None:
        self._status = reply.status
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._log_search()
        self.wfile.write(reply.body)
