"""An EnOS API emulator on loopback HTTP, to test the ETL against the protocol and its faults.

It serves the token service, Get Timezone / Get Current Time and List Flow Instances exactly as
``docs/enos-api.md`` describes them, over deterministic synthetic data generated from ``seed``.

Endpoints:
    ``POST /apim-token-service/v2.0/token/get`` and ``.../token/refresh``; ``GET
    /batch-processing-service/v2.1/time?action=getTimeZone|getCurrentTime``; ``POST
    /batch-processing-service/v2.1/flowInstances?action=search&userId=..&orgId=..``. Unknown
    paths answer 404 JSON; an exception inside an endpoint answers 500 with EnOS code 62109.

Gateway rejections (see ``gateway``): 1202 missing header, 1203 + ``apim_status`` 4012 unknown
    token, 1203 + 4011 expired token, 1004 timestamp unreadable or more than five minutes from the
    server clock, 1003 invalid signature (these three with 4010); answered as ``auth_error_style``
    says: HTTP 401 ``{"status", "msg", "apim_status"}`` ("http401"), HTTP 200 with the envelope's
    ``code``/``status`` ("code1203") or HTTP 200 ``{"apim_status", "msg"}`` ("apim4011").
    Signatures are checked by ``signing``, the emulator's own reading of the documented rule.

Behaviours (``EmulatorConfig`` fields, where the sources disagree):
    ``page_base`` "one" (pageNo 0 read as 1) / "one_strict" (pageNo 0 is 62102) / "zero";
    ``count_mode`` "total" / "page"; ``sorter_names`` "snake" / "camel" / "both"; ``to_bound``
    "exclusive" / "inclusive"; ``tie_order`` "stable" (ties by instance id) / "by_page" (ties
    permuted per page, like SQL LIMIT/OFFSET over a non-unique ORDER BY; no sorters means
    trigger_time ASC); ``envelope`` "v2.1" (``code``) / "v2.0" (``status``).

Faults, for token and API calls alike, in this order: ``latency_ms`` sleep, plus up to
``latency_jitter_ms`` drawn per request (answers in any order); ``drop_rate`` close
without answering; ``garbled_rate`` an unreadable status line or headers, then close;
``rate_limit_per_s`` token bucket answering 429 with ``Retry-After: retry_after_s``; ``error_rate``
502/503/504 with an HTML or empty body; last, ``gzip_label_every`` labels every N-th answer of an
endpoint ``Content-Encoding: gzip`` over its plain body (a misconfigured proxy).
Search-only switches: ``forced_error`` (every search answers that EnOS code), ``body_fault``
("html", "empty", "truncated" answers with HTTP 200, or "non_finite": records with a NaN
``score``),
``insert_every``/``insert_count`` (every N-th search appends new runs of the searched type after
the window's latest trigger), ``status_change_rate`` (each search moves runs of the searched window
on, never changing trigger time, id or membership).
``late_changes`` (a method) changes instances of past days at once, each with a new update
time (reruns of failed runs, late ends, cancellations), reproducibly; ``update_times`` "frozen"
keeps update times as they were on every change, and ``timestamp_shows`` says whether a
record's ``timestamp`` is its last update ("update", sorted by ``update_time``) or its creation.
``token_lifetime_s`` sets the life of issued tokens, ``token_lifetime_calls`` the API calls each
serves, ``refresh_invalidates`` whether a refresh retires the old token at once, and
``retry_after_header`` the verbatim ``Retry-After`` of a 429; ``malformed_graph_rate`` the share of
instances whose ``graph`` string is truncated JSON. ``reconfigure`` changes every switch of a
running emulator except those fixed at construction.

For benchmarks: ``record_weight`` makes each record's JSON heavier (1.9 times at 2, 58 at 20: the
same runs, more tasks, longer names and parameters), and ``request_log`` appends one flushed JSON
line per search served (received and answered epoch seconds, HTTP status).
"""

from __future__ import annotations

from flowinst_etl.emulator.config import DEMO_CREDENTIALS, Credentials, EmulatorConfig
from flowinst_etl.emulator.history import LateChange
from flowinst_etl.emulator.server import Emulator
from flowinst_etl.emulator.store import TruthInstance

__all__ = [
    "DEMO_CREDENTIALS",
    "Credentials",
    "Emulator",
    "EmulatorConfig",
    "LateChange",
    "TruthInstance",
]
