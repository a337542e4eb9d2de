"""Reading the gateway's answers: one path, one tolerance, for the token service, the time calls
and the search.

A body is JSON text (RFC 8259: UTF-8), but gateways and proxies in front of them differ in how
they say so. A byte-order mark names the encoding (UTF-8, UTF-16, UTF-32), else the pattern of
zero bytes in the first four does (RFC 4627 section 3), else it is UTF-8, whatever charset the
``Content-Type`` names (``charset=ISO-8859-1`` is a common server default over UTF-8 bodies).
Only a body that is not valid in that encoding is read in the charset its ``Content-Type`` names
(a gateway answering GBK). A body that cannot be read as text at all is undecodable: the
transport retries it like a body cut short.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

import orjson
import requests

from flowinst_etl.exceptions import ResponseFormatError


class UndecodableAnswer(ResponseFormatError):
    """An answer whose body cannot be read as text in any encoding it could be in; the
    transport retries it, so it reaches no caller."""


@dataclass(frozen=True)
class Answer:
    """One answer of the gateway, read once.

    Attributes:
        status: the HTTP status.
        headers: the answer's headers (names case-insensitive).
        body: the body's bytes, after its ``Content-Encoding`` was undone.
        payload: the body's JSON value; ``None`` when the body is not JSON.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    payload: Any

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def read_answer(response: requests.Response) -> Answer:
    """The answer of ``response``, its body read as JSON.

    Raises:
        UndecodableAnswer: the body is not text in its encoding nor in its labelled charset.
    """
    body = response.content
    return Answer(
        response.status_code,
        response.headers,
        body,
        json_value(body, response.headers.get("Content-Type", "")),
    )


def json_value(body: bytes, content_type: str = "") -> Any:
    """The JSON value of ``body``, or ``None`` when its text is not JSON.

    ``NaN`` and ``Infinity`` literals, which strict readers such as orjson refuse, are read
    (as Python's ``json`` reads them), so the records around them still load.

    Raises:
        UndecodableAnswer: the body is not text in its encoding nor in its labelled charset.
    """
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        try:
            return orjson.loads(body)  # the fast path of nearly every answer
        except orjson.JSONDecodeError:
            pass
    text = _text(body, encoding, content_type)
    try:
        return json.loads(text)
    except ValueError:
        return None


def _text(body: bytes, encoding: str, content_type: str) -> str:
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        problem = f"the body is not {encoding.upper()} text ({exc.reason} at byte {exc.start})"
    labelled = _charset(content_type)
    if labelled is None or labelled == codecs.lookup(encoding).name:
        raise UndecodableAnswer(problem)
    try:
        return body.decode(labelled)
    except UnicodeDecodeError:
        raise UndecodableAnswer(f"{problem}, nor {labelled} as labelled") from None


def _charset(content_type: str) -> str | None:
    """The codec of the ``charset`` a ``Content-Type`` names, if Python knows it."""
    message = Message()
    message["Content-Type"] = content_type
    name = message.get_content_charset()
    try:
        return codecs.lookup(name).name if name else None
    except LookupError:
        return None
