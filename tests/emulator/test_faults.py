"""Switchable faults: latency, 5xx, drops, 429, inserts, status changes, broken graphs/bodies."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import requests

from flowinst_etl.exceptions import ConfigError

from .signed import TIME_PATH, TOKEN_GET, day_ms, search_body


def test_latency_is_added_to_every_request(emulator, client):
    # Latency is a sleep, so it is a lower bound that no machine load can shorten; the answer
    # without it only has to beat a full second.
    emu = emulator(latency_ms=1000)
    api = client(emu)
    api.token()

    began = time.perf_counter()
    api.time("getTimeZone")
    slow = time.perf_counter() - began
    emu.reconfigure(latency_ms=0)
    began = time.perf_counter()
    api.time("getTimeZone")
    fast = time.perf_counter() - began

    assert slow >= 1.0 > fast


def test_gateway_errors_hit_token_and_api_calls(emulator, client):
    emu = emulator()
    api = client(emu)
    api.token()
    emu.reconfigure(error_rate=1.0)

    replies = [api.time("getCurrentTime") for _ in range(12)] + [api.token_call()]

    assert {r.status_code for r in replies} <= {502, 503, 504}
    assert {bool(r.content) for r in replies} == {True, False}  # HTML pages and empty bodies
    assert all(r.text.startswith("<html>") for r in replies if r.content)
    assert emu.stats()["faults_5xx"] == 13
    emu.reconfigure(error_rate=0.0)
    assert api.time("getCurrentTime").status_code == 200


def test_error_rate_is_a_fraction_of_requests(emulator, client):
    emu = emulator()
    api = client(emu)
    api.token()
    emu.reconfigure(error_rate=0.3)

    statuses = [api.time("getTimeZone").status_code for _ in range(150)]

    failed = sum(status != 200 for status in statuses)
    assert 0.15 <= failed / len(statuses) <= 0.45
    assert emu.stats()["faults_5xx"] == failed


def test_dropped_connections_get_no_answer(emulator, client):
    emu = emulator()
    api = client(emu)
    api.token()
    emu.reconfigure(drop_rate=1.0)

    with pytest.raises(requests.ConnectionError):
        api.time("getTimeZone")
    with pytest.raises(requests.ConnectionError):
        api.session.post(emu.base_url + TOKEN_GET, json={}, timeout=5)

    assert emu.stats()["faults_dropped"] == 2
    emu.reconfigure(drop_rate=0.0)
    assert api.time("getTimeZone").status_code == 200


@pytest.mark.parametrize("retry_after", [0, 2])
def test_rate_limit_answers_429_with_retry_after(emulator, client, retry_after):
    # A bucket of two requests a second: the first two pass, and 30 requests in a row meet an
    # empty bucket unless each takes half a second; after a pause of 0.6 s one passes again.
    emu = emulator(rate_limit_per_s=2, retry_after_s=retry_after)
    api = client(emu)

    replies = [api.session.get(emu.base_url + TIME_PATH, timeout=5) for _ in range(30)]

    limited = [r for r in replies if r.status_code == 429]
    assert [r.status_code for r in replies[:2]] == [401] * 2  # unsigned, but let through
    assert limited
    assert all(r.headers["Retry-After"] == str(retry_after) for r in limited)
    assert emu.stats()["rate_limited"] == len(limited)
    time.sleep(0.6)
    assert api.session.get(emu.base_url + TIME_PATH, timeout=5).status_code == 401


def test_forced_error_answers_every_search(emulator, client):
    emu = emulator(forced_error=62103)
    api = client(emu)
    start, end = day_ms(emu.config.start_day)

    forced = api.search(search_body(start, end))

    assert forced.status_code == 200
    assert forced.json()["code"] == 62103
    assert forced.json()["msg"] == "User has no privilege"
    assert api.time("getTimeZone").json()["code"] == 0
    emu.reconfigure(forced_error=62109)
    assert api.search(search_body(start, end)).json()["code"] == 62109
    emu.reconfigure(forced_error=None)
    assert api.search_data(search_body(start, end))["count"] > 0


def test_body_faults(emulator, client):
    emu = emulator()
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    body = search_body(start, end, pagination={"pageNo": 1, "pageSize": 20})
    whole = api.search(body).text

    answers = {}
    for fault in ("html", "empty", "truncated"):
        emu.reconfigure(body_fault=fault)
        answers[fault] = api.search(body)

    assert all(reply.status_code == 200 for reply in answers.values())
    assert answers["html"].headers["Content-Type"].startswith("text/html")
    assert answers["html"].text.startswith("<!DOCTYPE html>")
    assert answers["empty"].content == b""
    truncated = answers["truncated"].text
    assert 0 < len(truncated) < len(whole)
    assert whole.split('"data"')[1].startswith(truncated.split('"data"')[1])
    with pytest.raises(ValueError):
        json.loads(truncated)
    assert emu.stats()["body_faults"] == 3


def test_every_nth_answer_is_labelled_gzip_over_its_plain_body(emulator, client):
    emu = emulator(gzip_label_every=3)
    api = client(emu)
    api.token()  # the first answer

    zones = []
    for _ in range(5):
        try:
            zones.append(api.time("getTimeZone").json()["data"]["timezone"])
        except requests.exceptions.ContentDecodingError:
            zones.append("undecodable")
    emu.reconfigure(gzip_label_every=1)
    raw = api.call("GET", TIME_PATH, {"action": "getTimeZone"}, stream=True)

    assert zones == ["GMT+8", "undecodable", "GMT+8", "GMT+8", "undecodable"]
    assert raw.headers["Content-Encoding"] == "gzip"
    assert json.loads(raw.raw.read(decode_content=False))["data"]["timezone"] == "GMT+8"
    assert emu.stats()["faults_mislabelled"] == 3


def test_inserts_land_after_the_latest_trigger_of_the_window(emulator, client):
    emu = emulator(insert_every=2, insert_count=3)
    api = client(emu)
    start, end = day_ms(emu.config.start_day)
    before = emu.truth(start, end, 1)
    latest = before[-1].trigger_ms
    total = len(emu.truth())

    api.search(search_body(start, end))
    assert emu.stats()["inserted"] == 0
    answer = api.search(search_body(start, end)).json()
    after = emu.truth(start, end, 1)
    assert answer["data"]["count"] == len(after), "the inserting search already sees its runs"

    new = [t for t in after if t not in before]
    assert len(after) == len(before) + 3 == len(new) + len(before)
    assert all(latest < t.trigger_ms < end and t.trigger_ms % 1000 == 0 for t in new)
    assert all(t.record["status"] in (0, 2, 5, 6) for t in new)
    assert len({t.record["instanceId"] for t in after}) == len(after)
    assert emu.stats()["inserted"] == 3
    assert len(emu.truth()) == total + 3


def test_inserts_skip_a_window_without_room(emulator, client):
    emu = emulator(insert_every=1)
    api = client(emu)
    start, _ = day_ms(emu.config.start_day)
    # A window ending one millisecond after the midnight burst: no whole second is left.
    api.search(search_body(start, start + 1))
    assert emu.stats()["inserted"] == 0


def test_status_changes_move_runs_on_without_changing_membership(emulator, client):
    emu = emulator(status_change_rate=0.2)
    api = client(emu)
    start, end = day_ms(emu.config.end_day)  # the last day, with many runs in flight
    before = {t.record["instanceId"]: t for t in emu.truth(start, end, 1)}

    for _ in range(5):
        api.search(search_body(start, end, status="0,5,6"))
    after = {t.record["instanceId"]: t for t in emu.truth(start, end, 1)}

    assert after.keys() == before.keys()
    assert all(after[i].trigger_ms == before[i].trigger_ms for i in before)
    changed = [i for i in before if after[i].record["status"] != before[i].record["status"]]
    assert 5 < len(changed) <= emu.stats()["status_changes"]  # a run may move twice
    for instance_id in changed:
        old, new = before[instance_id].record, after[instance_id].record
        assert _stage(new["status"]) > _stage(old["status"])
        assert new["startTime"] is not None
        assert (new["endTime"] is not None) == (new["status"] in (1, -1))


def _stage(status):
    """0 waiting, 1 running, 2 finished (the emulator finishes runs as SUCCESS or FAIL)."""
    return {0: 0, 5: 0, 6: 0, 2: 1, 1: 2, -1: 2}[status]


def test_malformed_graphs_are_broken_json_in_the_configured_share(emulator):
    emu = emulator(malformed_graph_rate=0.25)
    twin = emulator(malformed_graph_rate=0.25)
    clean = emulator()

    def broken(truth):
        ids = set()
        for item in truth:
            try:
                json.loads(item.record["graph"])
            except ValueError:
                ids.add(item.record["instanceId"])
        return ids

    records = emu.truth()
    bad = broken(records)
    assert 0.15 <= len(bad) / len(records) <= 0.35
    assert bad == broken(twin.truth())
    assert broken(clean.truth()) == set()


def test_reconfigure_refuses_fixed_and_unknown_settings(emulator):
    emu = emulator()
    for changes in ({"seed": 3}, {"per_day": 5}, {"colour": "red"}, {"error_rate": 2.0}):
        with pytest.raises(ConfigError):
            emu.reconfigure(**changes)
    assert emu.config.error_rate == 0.0
    assert emu.reconfigure(page_base="zero").page_base == "zero"


def test_failing_window_fails_only_searches_that_overlap_it(emulator, client):
    emu = emulator()
    first = day_ms(emu.config.start_day)
    second = day_ms(emu.config.start_day + timedelta(days=1))
    emu.reconfigure(failing_window_ms=second)
    api = client(emu)
    assert api.search(search_body(*first)).json()["code"] == 0
    assert api.search(search_body(*second)).json()["code"] == 62109
    with pytest.raises(ConfigError):
        emu.reconfigure(failing_window_ms=(5, 5))
