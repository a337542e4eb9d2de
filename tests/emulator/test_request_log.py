"""The request log: one flushed JSON line per search served, with its times and HTTP status."""

from __future__ import annotations

import json
import threading
from datetime import date

from flowinst_etl.emulator import Emulator

from .signed import SignedClient, day_ms, search_body

BODY = search_body(*day_ms(date(2026, 3, 1)), pagination={"pageNo": 1, "pageSize": 10})


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_search_is_logged_while_serving_with_the_time_it_was_in_flight(emulator, tmp_path):
    log = tmp_path / "requests.jsonl"
    log.write_text('{"kept": true}\n', encoding="utf-8")
    emu: Emulator = emulator(latency_ms=150, request_log=str(log))
    clients = [SignedClient(emu.base_url) for _ in range(4)]
    for signed in clients:
        signed.token()
        assert signed.time("getTimeZone").status_code == 200
    threads = [threading.Thread(target=signed.search, args=(BODY,)) for signed in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    emu.reconfigure(error_rate=1.0, latency_ms=0)
    failed = clients[0].search(BODY)
    for signed in clients:
        signed.close()

    kept, *together, last = _lines(log)  # read while the emulator still serves
    assert kept == {"kept": True}
    assert len(together) == 4  # searches only: no token or time call
    assert all(line["status"] == 200 for line in together)
    assert all(line["answered"] - line["received"] >= 0.15 for line in together)
    # sent together, so all four were in flight at once
    assert max(line["received"] for line in together) < min(line["answered"] for line in together)
    assert last["status"] == failed.status_code in (502, 503, 504)
    assert last["received"] >= max(line["answered"] for line in together)


def test_a_dropped_search_is_logged_without_a_status(emulator, tmp_path, client):
    log = tmp_path / "requests.jsonl"
    emu: Emulator = emulator(request_log=str(log))
    api = client(emu)
    api.token()
    emu.reconfigure(drop_rate=1.0)
    try:
        api.search(BODY)
    except OSError:
        pass
    emu.stop()

    [line] = _lines(log)
    assert line["status"] is None and line["answered"] >= line["received"]
