"""The emulated endpoints: token get/refresh, Get Timezone/Current Time, List Flow Instances."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowinst_etl.emulator import envelope
from flowinst_etl.emulator.config import EmulatorConfig
from flowinst_etl.emulator.counters import Counters
from flowinst_etl.emulator.envelope import INTERNAL_ERROR, ApiFailure
from flowinst_etl.emulator.faults import FaultInjector
from flowinst_etl.emulator.gateway import GatewayRejection, TokenService
from flowinst_etl.emulator.request_log import RequestLog
from flowinst_etl.emulator.search import INVALID_PARAMETER, parse_search
from flowinst_etl.emulator.store import InstanceStore

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"

TOKEN_GET_PATH = "/apim-token-service/v2.0/token/get"
TOKEN_REFRESH_PATH = "/apim-token-service/v2.0/token/refresh"
TIME_PATH = "/batch-processing-service/v2.1/time"
SEARCH_PATH = "/batch-processing-service/v2.1/flowInstances"

_HTML_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Error</title></head>"
    "<body><h1>Whitelabel Error Page</h1><p>There was an unexpected error.</p></body></html>"
)


@dataclass
class Runtime:
    """Everything the request threads share; ``config`` is swapped whole by ``reconfigure``."""

    config: EmulatorConfig
    store: InstanceStore
    tokens: TokenService
    faults: FaultInjector
    counters: Counters
    request_log: RequestLog | None = None


@dataclass(frozen=True)
class Call:
    """One request as the endpoints see it: query decoded, body as UTF-8 text."""

    runtime: Runtime
    config: EmulatorConfig
    headers: Mapping[str, str]
    query: list[tuple[str, str]]
    body: str

    def server_now_ms(self) -> int:
        """The server clock in epoch ms, skewed by ``clock_skew_ms``."""
        return int(time.time() * 1000) + self.config.clock_skew_ms


@dataclass(frozen=True)
class Reply:
    """An HTTP answer."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, payload: Any) -> Reply:
    """An answer with a JSON body."""
    return Reply(status, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())


def internal_error(config: EmulatorConfig) -> Reply:
    """The 500 answer of an unexpected failure inside an endpoint."""
    code = envelope.INTERNAL_ERROR
    return Reply(
        500, envelope.failure(code, envelope.message_for(code), config.envelope, _request_id())
    )


def token_get(call: Call) -> Reply:
    """``POST token/get``."""
    payload = call.runtime.tokens.get(call.body, call.config, call.server_now_ms())
    call.runtime.counters.add("token_gets" if payload["status"] == 0 else "token_failures")
    return json_reply(200, payload)


def token_refresh(call: Call) -> Reply:
    """``POST token/refresh``."""
    payload = call.runtime.tokens.refresh(call.body, call.config, call.server_now_ms())
    call.runtime.counters.add("token_refreshes" if payload["status"] == 0 else "token_failures")
    return json_reply(200, payload)


def time_call(call: Call) -> Reply:
    """``GET time?action=getTimeZone|getCurrentTime``."""
    rejected = _authenticate(call)
    if rejected:
        return rejected
    call.runtime.counters.add("time_calls")
    action = dict(call.query).get("action")
    if action == "getTimeZone":
        timezone = json.dumps({"timezone": call.config.server_timezone}, separators=(",", ":"))
        return _envelope_reply(call, timezone.encode())
    if action == "getCurrentTime":
        return _envelope_reply(call, str(call.server_now_ms()).encode())
    failure = ApiFailure(
        INVALID_PARAMETER, "Incorrect parameter: action must be getTimeZone or getCurrentTime"
    )
    return _failure_reply(call, failure)


def search_call(call: Call) -> Reply:
    """``POST flowInstances?action=search``: List Flow Instances, then any body fault."""
    rejected = _authenticate(call)
    if rejected:
        return rejected
    counters, config = call.runtime.counters, call.config
    counters.add("searches")
    reply = _search(call)
    if config.body_fault is not None:
        counters.add("body_faults")
        if config.body_fault == "html":
            return Reply(200, _HTML_ERROR_PAGE.encode(), HTML_TYPE)
        if config.body_fault == "empty":
            return Reply(200, b"")
        if config.body_fault == "non_finite":
            return Reply(200, _with_nan_scores(reply.body))
        return Reply(200, reply.body[: len(reply.body) // 2])
    return reply


def _with_nan_scores(body: bytes) -> bytes:
    answer = json.loads(body)
    for record in (answer.get("data") or {}).get("flowInsts") or []:
        record["score"] = float("nan")
    return json.dumps(answer).encode()


def _search(call: Call) -> Reply:
    config, counters = call.config, call.runtime.counters
    params = dict(call.query)
    credentials = config.credentials
    try:
        if params.get("action") != "search":
            raise ApiFailure(INVALID_PARAMETER, "Incorrect parameter: action must be search")
        if params.get("userId") != credentials.user_id or params.get("orgId") != credentials.org_id:
            raise ApiFailure(62101)
        if config.forced_error is not None:
            counters.add("forced_errors")
            raise ApiFailure(config.forced_error)
        query = parse_search(call.body, config)
        if config.fails(query.from_ms, query.to_ms):
            counters.add("forced_errors")
            raise ApiFailure(INTERNAL_ERROR)
        records, count = call.runtime.store.search(query, config)
    except ApiFailure as failure:
        counters.add("search_errors")
        return _failure_reply(call, failure)
    listed = b"null" if config.null_lists and not records else b"[" + b",".join(records) + b"]"
    data = b'{"flowInsts":' + listed + b',"count":' + str(count).encode() + b"}"
    return _envelope_reply(call, data)


def _authenticate(call: Call) -> Reply | None:
    """``None`` when the gateway lets the call through, else its 401 answer."""
    try:
        call.runtime.tokens.verify(
            call.headers, call.query, call.body, call.config, call.server_now_ms()
        )
    except GatewayRejection as rejection:
        call.runtime.counters.add("auth_failures")
        return json_reply(*rejection.answer(call.config.auth_error_style, call.config.envelope))
    return None


def _envelope_reply(call: Call, data_json: bytes) -> Reply:
    return Reply(200, envelope.success(data_json, call.config.envelope, _request_id()))


def _failure_reply(call: Call, failure: ApiFailure) -> Reply:
    body = envelope.failure(failure.code, failure.message, call.config.envelope, _request_id())
    return Reply(200, body)


def _request_id() -> str:
    return uuid.uuid4().hex


ROUTES: dict[tuple[str, str], Callable[[Call], Reply]] = {
    ("POST", TOKEN_GET_PATH): token_get,
    ("POST", TOKEN_REFRESH_PATH): token_refresh,
    ("GET", TIME_PATH): time_call,
    ("POST", SEARCH_PATH): search_call,
}
