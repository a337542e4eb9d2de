"""The emulated API gateway: token get/refresh, their errors, and signature checks on API calls."""

from __future__ import annotations

import json
import time

import pytest

from flowinst_etl.emulator import Credentials
from flowinst_etl.emulator.signing import expected_signature
from flowinst_etl.gateway.signing import request_signature, token_encryption

from .signed import SEARCH_PATH, TIME_PATH, TOKEN_GET, TOKEN_REFRESH

# docs/enos-api.md section 6a: the documented test vector.
EXAMPLE_BODY = '{\n  "count": 20,\n  "page": 1,\n  "desc": "描述"\n}'
EXAMPLE_SECRET = "xxxappSecretxxx"
EXAMPLE_SIGNATURE = "59828328f6c1f9771015dc74e4929ae30f518a35a3d2353972c2ea46556fc981"
EXAMPLE_QUERY = [("k3", "v3"), ("k1", "v1"), ("k2", "v2")]


@pytest.mark.parametrize(
    "sign", [request_signature, expected_signature], ids=["client", "emulator"]
)
def test_signing_matches_the_documented_worked_example(sign):
    signature = sign("xxxxaaaxxxx", EXAMPLE_QUERY, EXAMPLE_BODY, 1572574909697, EXAMPLE_SECRET)
    assert signature == EXAMPLE_SIGNATURE


def test_emulator_verifies_a_request_built_like_the_worked_example(emulator, client):
    creds = Credentials("example-key", EXAMPLE_SECRET, "o1", "u1")
    api = client(emulator(credentials=creds), creds)
    params = dict(EXAMPLE_QUERY)

    accepted = api.call("POST", SEARCH_PATH, params, EXAMPLE_BODY)
    # Past the gateway: the batch service itself rejects the missing action.
    assert accepted.status_code == 200
    assert accepted.json()["code"] == 62102

    stamp = int(time.time() * 1000)
    signature = request_signature(api.token(), params.items(), EXAMPLE_BODY, stamp, EXAMPLE_SECRET)
    compact = json.dumps(json.loads(EXAMPLE_BODY), ensure_ascii=False)
    rejected = api.session.post(
        api.base_url + SEARCH_PATH,
        params=params,
        data=compact.encode(),
        headers={
            "apim-accesstoken": api.token(),
            "apim-timestamp": str(stamp),
            "apim-signature": signature,
        },
    )
    assert rejected.status_code == 401
    assert rejected.json()["status"] == 1003


def test_token_get_answers_the_documented_shape_and_reuses_a_live_token(emulator, client):
    api = client(emulator())
    first = api.token_call().json()
    second = api.token_call().json()

    assert first["status"] == 0 and first["msg"] == "SUCCESS"
    assert first["business"] == "apim-token-service"
    assert first["data"]["expire"] == 7200
    assert second["data"]["accessToken"] == first["data"]["accessToken"]
    assert 7190 <= second["data"]["expire"] <= 7200


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"appKey": "nobody"}, 1002),
        ({"encryption": "0" * 64}, 1003),
        ({"timestamp": "soon"}, 1004),
        ({"timestamp": None}, 1202),
        ({"appKey": ""}, 1202),
    ],
)
def test_token_get_errors(emulator, client, fields, status):
    emu = emulator()
    reply = client(emu).token_call(**fields)
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == status
    assert body["business"] == "apim-token-service"
    assert body["data"] is None
    assert emu.stats()["token_failures"] == 1


def test_token_get_rejects_a_missing_field_and_a_stale_timestamp(emulator, client):
    api = client(emulator())
    missing = api.session.post(api.base_url + TOKEN_GET, json={})
    nested = api.session.post(api.base_url + TOKEN_GET, data="[" * 10**5)
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    creds = api.credentials
    encryption = token_encryption(creds.access_key, stale, creds.secret_key)

    assert missing.json()["status"] == nested.json()["status"] == 1004
    assert api.token_call(timestamp=stale, encryption=encryption).json()["status"] == 1004


def test_refresh_keeps_the_old_token_alive_unless_told_otherwise(emulator, client):
    emu = emulator()
    api = client(emu)
    old = api.token()
    refreshed = api.token_call(TOKEN_REFRESH, accessToken=old).json()
    assert refreshed["status"] == 0 and refreshed["data"]["accessToken"] != old
    assert api.time("getTimeZone").status_code == 200


def test_refresh_issues_a_new_token_and_retires_the_old_one(emulator, client):
    emu = emulator(refresh_invalidates=True)
    api = client(emu)
    old = api.token()

    refreshed = api.token_call(TOKEN_REFRESH, accessToken=old).json()
    new = refreshed["data"]["accessToken"]

    assert refreshed["status"] == 0 and new != old
    assert refreshed["data"]["expire"] == 7200
    retired = api.time("getTimeZone")
    assert retired.status_code == 401
    assert retired.json() == {"status": 1203, "msg": "invalid access token", "apim_status": 4012}
    api.access_token = new
    assert api.time("getTimeZone").status_code == 200
    assert emu.stats()["token_refreshes"] == 1


def test_refresh_errors(emulator, client):
    api = client(emulator())
    assert api.token_call(TOKEN_REFRESH, accessToken="never-issued").json()["status"] == 1203
    assert api.token_call(TOKEN_REFRESH).json()["status"] == 1004
    assert api.token_call(TOKEN_REFRESH, accessToken=["a"]).json()["status"] == 1204


def test_an_expired_token_is_refused_then_replaced(emulator, client):
    emu = emulator(token_lifetime_calls=2)
    api = client(emu)
    old = api.token()
    assert api.time("getTimeZone").status_code == 200
    assert api.time("getTimeZone").status_code == 200

    expired = api.time("getTimeZone")
    renewed = api.token_call().json()["data"]["accessToken"]

    assert expired.status_code == 401
    assert expired.json() == {"status": 1203, "msg": "access token expired", "apim_status": 4011}
    assert renewed != old
    assert api.time("getTimeZone").status_code == 401
    api.access_token = renewed
    assert api.time("getTimeZone").status_code == 200
    refreshed = api.token_call(TOKEN_REFRESH, accessToken=old).json()
    assert refreshed["status"] == 0


@pytest.mark.parametrize(
    ("style", "envelope", "status", "expired", "unknown"),
    [
        (
            "http401",
            "v2.1",
            401,
            {"status": 1203, "msg": "access token expired", "apim_status": 4011},
            {"status": 1203, "msg": "invalid access token", "apim_status": 4012},
        ),
        (
            "code1203",
            "v2.1",
            200,
            {"code": 1203, "msg": "access token expired", "data": None},
            {"code": 1203, "msg": "invalid access token", "data": None},
        ),
        (
            "code1203",
            "v2.0",
            200,
            {"status": 1203, "msg": "access token expired", "data": None},
            {"status": 1203, "msg": "invalid access token", "data": None},
        ),
        (
            "apim4011",
            "v2.1",
            200,
            {"apim_status": 4011, "msg": "access token expired"},
            {"apim_status": 4012, "msg": "invalid access token"},
        ),
    ],
)
def test_auth_error_styles(emulator, client, style, envelope, status, expired, unknown):
    api = client(emulator(token_lifetime_calls=1, auth_error_style=style, envelope=envelope))
    assert api.time("getTimeZone").status_code == 200
    first, second = api.time("getTimeZone"), api.time("getCurrentTime")
    made_up = api.call("GET", TIME_PATH, {"action": "getTimeZone"}, token="made-up")

    for reply in (first, second):
        assert (reply.status_code, reply.json()) == (status, expired)
    assert (made_up.status_code, made_up.json()) == (status, unknown)


@pytest.mark.parametrize("header", ["apim-accesstoken", "apim-timestamp", "apim-signature"])
def test_a_missing_signing_header_is_1202(emulator, client, header):
    emu = emulator()
    reply = client(emu).call("GET", TIME_PATH, {"action": "getTimeZone"}, headers={header: None})
    assert reply.status_code == 401
    assert reply.json()["status"] == 1202
    assert emu.stats()["auth_failures"] == 1


def test_wrong_signatures_are_1003(emulator, client):
    api = client(emulator())
    wrong_secret = api.call("GET", TIME_PATH, {"action": "getTimeZone"}, secret="guess")
    stamp = int(time.time() * 1000)
    signature = request_signature(api.token(), [("action", "getTimeZone")], "", stamp, "guess")
    tampered_query = api.session.get(
        api.base_url + TIME_PATH,
        params={"action": "getCurrentTime"},
        headers={
            "apim-accesstoken": api.token(),
            "apim-timestamp": str(stamp),
            "apim-signature": signature,
        },
    )

    for reply in (wrong_secret, tampered_query):
        assert reply.status_code == 401
        assert reply.json() == {"status": 1003, "msg": "invalid signature", "apim_status": 4010}


def test_unknown_token_and_far_timestamp(emulator, client):
    api = client(emulator())
    unknown = api.call("GET", TIME_PATH, {"action": "getTimeZone"}, token="made-up")
    far = api.call(
        "GET", TIME_PATH, {"action": "getTimeZone"}, timestamp_ms=int(time.time() * 1000) - 400_000
    )

    assert unknown.json()["apim_status"] == 4012
    assert far.status_code == 401
    assert far.json()["status"] == 1004


def test_timestamps_are_judged_by_the_skewed_server_clock(emulator, client):
    skew = 10 * 60 * 1000
    api = client(emulator(clock_skew_ms=skew))
    creds = api.credentials
    local = int(time.time() * 1000)

    assert api.token_call().json()["status"] == 1004
    server = local + skew
    encryption = token_encryption(creds.access_key, server, creds.secret_key)
    token = api.token_call(timestamp=server, encryption=encryption).json()["data"]["accessToken"]
    api.access_token = token
    reply = api.call("GET", TIME_PATH, {"action": "getCurrentTime"}, timestamp_ms=server)
    assert reply.status_code == 200
    assert abs(reply.json()["data"] - server) < 5000
