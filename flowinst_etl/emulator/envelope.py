"""The batch service's response envelope, in its v2.1 (``code``) and v2.0 (``status``) shapes."""

from __future__ import annotations

import json

INTERNAL_ERROR = 62109

_MESSAGES = {
    62101: "userId does not exist or does not match orgId",
    62102: "Incorrect parameter",
    62103: "User has no privilege",
    62104: "Workflow has no task",
    62105: "User account is locked",
    INTERNAL_ERROR: "Internal server exception",
}


class ApiFailure(Exception):
    """A business error the batch service answers inside the envelope (HTTP 200).

    Attributes:
        code: the EnOS error code.
        message: the ``msg`` text.
    """

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else message_for(code)
        super().__init__(f"{code}: {self.message}")


def message_for(code: int) -> str:
    """The documented message of an EnOS batch-service error code."""
    return _MESSAGES.get(code, f"Error {code}")


def success(data_json: bytes, envelope: str, request_id: str) -> bytes:
    """A success envelope around already serialised ``data``."""
    head = '{"code":0,"msg":"OK"' if envelope == "v2.1" else '{"status":0,"msg":"Success"'
    return f'{head},"requestId":{json.dumps(request_id)},"data":'.encode() + data_json + b"}"


def failure(code: int, message: str, envelope: str, request_id: str) -> bytes:
    """An error envelope: non-zero ``code`` (v2.1) or ``status`` (v2.0), ``data`` null."""
    key = "code" if envelope == "v2.1" else "status"
    payload = {key: code, "msg": message, "requestId": request_id, "data": None}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
