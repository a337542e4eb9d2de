"""Time endpoints, envelopes, routing, HTTP framing, and a server that survives bad requests."""

from __future__ import annotations

import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from flowinst_etl.emulator.store import InstanceStore

from .signed import SEARCH_PATH, TIME_PATH, day_ms, search_body


def _address(emu):
    url = urlsplit(emu.base_url)
    return url.hostname, url.port


def test_get_timezone(emulator, client):
    reply = client(emulator(server_timezone="GMT-3:30")).time("getTimeZone")
    payload = reply.json()
    assert reply.headers["Content-Type"].startswith("application/json")
    assert payload["code"] == 0 and payload["msg"] == "OK"
    assert isinstance(payload["requestId"], str) and payload["requestId"]
    assert payload["data"] == {"timezone": "GMT-3:30"}


def test_get_current_time_follows_the_clock_and_its_skew(emulator, client):
    plain = client(emulator()).time("getCurrentTime").json()["data"]
    skewed = client(emulator(clock_skew_ms=90_000)).time("getCurrentTime").json()["data"]
    now = int(time.time() * 1000)
    assert abs(plain - now) < 2000
    assert abs(skewed - (now + 90_000)) < 2000


def test_an_unknown_time_action_is_62102(emulator, client):
    payload = client(emulator()).time("getWeather").json()
    assert payload["code"] == 62102 and payload["data"] is None


def test_v20_envelope(emulator, client):
    emu = emulator(envelope="v2.0")
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    ok = api.time("getTimeZone").json()
    found = api.search(search_body(start, end)).json()
    failed = api.search(search_body(start, end, type=7)).json()

    assert set(ok) == {"status", "msg", "requestId", "data"}
    assert ok["status"] == 0 and ok["msg"] == "Success"
    assert found["status"] == 0 and found["data"]["flowInsts"]
    assert failed["status"] == 62102 and failed["data"] is None and "code" not in failed


def test_search_checks_action_and_user_org_pair(emulator, client):
    emu = emulator()
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    body = search_body(start, end)

    assert api.search(body, action="list").json()["code"] == 62102
    mismatch = api.search(body, orgId="o-other").json()
    assert mismatch["code"] == 62101
    assert mismatch["msg"] == "userId does not exist or does not match orgId"
    assert api.search(body, userId="u-other").json()["code"] == 62101


def test_unknown_paths_are_404_json(emulator, client):
    emu = emulator()
    api = client(emu)
    wrong_path = api.session.get(emu.base_url + "/nothing/here")
    wrong_method = api.call("GET", SEARCH_PATH, {"action": "search"})

    for reply in (wrong_path, wrong_method):
        assert reply.status_code == 404
        assert reply.json()["status"] == 404
    assert emu.stats()["not_found"] == 2


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ("[" * 100_000, "nested too deeply"),
        ({"type": "x"}, "type"),
        ({"pagination": [1]}, "pagination"),
        ({"pagination": {"pageNo": 1, "pageSize": 100_000}}, "pageSize"),
        ({"pagination": {"pageNo": 1, "pageSize": 0}}, "pageSize"),
        ({"pagination": {"pageNo": 1.5, "pageSize": 10}}, "pageNo"),
        ({"owner": None}, "owner"),
        ({"fromTriggerTime": "yesterday"}, "fromTriggerTime"),
        ({"toTriggerTime": 0}, "fromTriggerTime must not be after toTriggerTime"),
        ({"expression": 5}, "expression"),
    ],
)
def test_malformed_search_bodies_are_62102_and_the_server_keeps_serving(
    emulator, client, body, detail
):
    emu = emulator()
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    sent = body if isinstance(body, str) else search_body(start, end, **body)

    payload = api.search(sent).json()

    assert payload["code"] == 62102
    assert detail in payload["msg"]
    assert api.search_data(search_body(start, end))["count"] > 0


def test_broken_http_framing_is_refused_and_the_server_keeps_serving(emulator, client):
    emu = emulator()
    host, port = _address(emu)
    requests_sent = [
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
    statuses = []
    for raw in requests_sent:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(raw)
            statuses.append(sock.recv(4096).split(b" ")[1])

    assert statuses == [b"400", b"413", b"411"]
    assert client(emu).time("getTimeZone").status_code == 200


def test_an_exception_inside_an_endpoint_is_a_500_with_62109(emulator, client, monkeypatch):
    emu = emulator()
    api = client(emu)
    start, end = day_ms(emu.config.start_day)

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(InstanceStore, "search", explode)
        broken = api.search(search_body(start, end))

    assert broken.status_code == 500
    assert broken.json()["code"] == 62109
    assert emu.stats()["internal_errors"] == 1
    assert api.search_data(search_body(start, end))["count"] > 0


def test_connections_are_kept_alive(emulator):
    emu = emulator()
    host, port = _address(emu)
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", "/nothing")
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        connection.request("GET", "/nothing")
        second = connection.getresponse()
        second.read()
        assert first.status == second.status == 404
        assert first.getheader("Content-Length") is not None
        assert connection.sock is sock
    finally:
        connection.close()


def test_stop_closes_kept_alive_connections(emulator, client):
    emu = emulator()
    api = client(emu)
    assert api.time("getTimeZone").status_code == 200
    url = emu.base_url

    emu.stop()

    with pytest.raises(requests.ConnectionError):
        api.session.get(url + TIME_PATH, timeout=2)
