"""Every gateway answer (token service, time calls, search) is read one way: in any encoding a
byte-order mark, the JSON text itself or its label gives, and an answer that cannot be decoded
is retried like a body cut short, with the true number of retries in every message.

Encodings are served by a proxy that re-encodes the emulator's answers; answers labelled
``Content-Encoding: gzip`` over a plain body come from the emulator's own switch, through the
command line."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from flowinst_etl.emulator import Emulator, EmulatorConfig
from flowinst_etl.exceptions import TransportError
from flowinst_etl.gateway.client import EnosClient, SearchQuery
from tests.guarantees.harness import (
    RecordingProxy,
    assert_days_exact,
    backfill_args,
    describe,
    emulator_environment,
    run_cli,
)
from tests.support import settings_for

DAY = date(2026, 11, 2)
QUERY = SearchQuery(1, 0, 4_102_444_800_000, 1, 50, "trigger_time")
JSON = "application/json"

Rewrite = Callable[[bytes, str], tuple[bytes, str]]


def encoded(codec: str, content_type: str = JSON) -> Rewrite:
    return lambda body, _: (body.decode("utf-8").encode(codec), content_type)


#: How gateways and proxies send JSON that is not plain, labelled UTF-8.
ENCODINGS: dict[str, Rewrite] = {
    "UTF-8 with a byte-order mark": lambda body, label: (codecs.BOM_UTF8 + body, label),
    "UTF-16 with a byte-order mark": encoded("utf-16"),
    "UTF-16-LE without a mark": encoded("utf-16-le"),
    "UTF-32-BE without a mark": encoded("utf-32-be"),
    "UTF-8 labelled ISO-8859-1": lambda body, _: (body, f"{JSON};charset=ISO-8859-1"),
    "GBK labelled GBK": encoded("gbk", f"{JSON};charset=GBK"),
    "UTF-8 without a label": lambda body, _: (body, ""),
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(seed=5, start_day=DAY, end_day=DAY, per_day=60)) as running:
        yield running


@pytest.mark.parametrize("rewrite", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_every_answer_reads_the_same_in_any_encoding(emulator: Emulator, rewrite: Rewrite) -> None:
    with EnosClient(settings_for(emulator)) as direct:
        expected = direct.search(QUERY)
    with (
        RecordingProxy(emulator.base_url, rewrite=rewrite) as proxy,
        EnosClient(settings_for(emulator, api_url=proxy.base_url)) as client,
    ):
        zone = client.server_timezone()
        skew = client.clock_skew_ms()
        page = client.search(QUERY)

    assert str(zone) == "UTC+08:00" and abs(skew) < 60_000
    assert page.records == expected.records and page.count == expected.count
    assert page.attempts.retries == 0
    text = str(page.records)
    assert any(ord(char) > 0x7F for char in text), "no non-ASCII text: the case proves nothing"
    paths = {exchange.path.split("?")[0] for exchange in proxy.exchanges}
    assert len(paths) == 3, paths  # the token service, the time calls and the search


def test_an_answer_that_cannot_be_decoded_once_is_retried(emulator: Emulator) -> None:
    broken = [0]

    def first_search_undecodable(body: bytes, label: str) -> tuple[bytes, str]:
        if b"flowInsts" in body and not broken[0]:
            broken[0] += 1
            return body[:-3] + b"\xff\xfe}", label
        return body, label

    with (
        RecordingProxy(emulator.base_url, rewrite=first_search_undecodable) as proxy,
        EnosClient(settings_for(emulator, api_url=proxy.base_url)) as client,
    ):
        page = client.search(QUERY)
    with EnosClient(settings_for(emulator)) as direct:
        assert page.records == direct.search(QUERY).records
    assert broken == [1] and page.attempts.retries == 1
    assert sum("flowInstances" in exchange.path for exchange in proxy.exchanges) == 2


def test_answers_that_never_decode_fail_with_the_true_number_of_retries(
    emulator: Emulator,
) -> None:
    never: Rewrite = lambda body, _: (body + b"\xff", JSON)  # noqa: E731
    with (
        RecordingProxy(emulator.base_url, rewrite=never) as proxy,
        EnosClient(settings_for(emulator, api_url=proxy.base_url, max_retries=2)) as client,
        pytest.raises(TransportError) as raised,
    ):
        client.search(QUERY)

    assert len(proxy.exchanges) == 3  # the token call, tried three times
    assert "could not be decoded after 2 retries: the body is not UTF-8 text" in str(raised.value)


# --- answers labelled gzip over a plain body, through the command line --------------------------

RETRY = re.compile(
    r"flowinst-etl: warning: (GET|POST) (/\S+) failed: answer undecodable: received response "
    r"with content-encoding: gzip, but failed to decode it; attempt (\d) of 4 in \d+\.\d\d s"
)
TIME_PATH = "/batch-processing-service/v2.1/time"
SEARCH_PATH = "/batch-processing-service/v2.1/flowInstances"


def test_answers_mislabelled_gzip_are_retried_and_the_day_is_exact(tmp_path: Path) -> None:
    config = EmulatorConfig(seed=8, start_day=DAY, end_day=DAY, per_day=40, gzip_label_every=2)
    with Emulator(config) as emulator:
        done = run_cli(
            *backfill_args(DAY, DAY, tmp_path / "out", "--workers", "1"),
            env=emulator_environment(emulator, ENOS_PAGE_SIZE="10", ENOS_MAX_RETRIES="3"),
            cwd=tmp_path,
        )
        assert done.returncode == 0, describe(done)
        assert_days_exact(emulator, tmp_path / "out", [DAY], "UTC")
        mislabelled = emulator.stats()["faults_mislabelled"]

    lines = done.stderr.splitlines()
    found = [RETRY.fullmatch(line) for line in lines]
    assert all(found) and len(found) == mislabelled, describe(done)
    paths = [match.group(2) for match in found if match]
    # the start-up probe meets it first: Get Timezone, then its first search; then the run's
    assert paths[:2] == [TIME_PATH, SEARCH_PATH], describe(done)
    assert paths.count(SEARCH_PATH) > 2, describe(done)


def test_a_start_up_probe_answered_gzip_every_time_stops_with_one_line(tmp_path: Path) -> None:
    config = EmulatorConfig(seed=8, start_day=DAY, end_day=DAY, per_day=40, gzip_label_every=1)
    with Emulator(config) as emulator:
        done = run_cli(
            *backfill_args(DAY, DAY, tmp_path / "out"),
            env=emulator_environment(emulator, ENOS_MAX_RETRIES="2"),
            cwd=tmp_path,
        )
        stats, host = emulator.stats(), emulator.base_url.split("//")[1]

    assert done.returncode == 2, describe(done)
    *retries, error = done.stderr.splitlines()
    assert [line.split(" failed:")[0] for line in retries] == [
        "flowinst-etl: warning: POST /apim-token-service/v2.0/token/get"
    ] * 2, describe(done)
    assert error == (
        f"flowinst-etl: error: the answers of {host} could not be "
        "decoded after 2 retries: received response with content-encoding: gzip, but failed to "
        "decode it"
    ), describe(done)
    assert stats["requests"] == stats["faults_mislabelled"] == 3
    assert not (tmp_path / "out").exists()
