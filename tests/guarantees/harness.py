"""What the guarantee tests share: the command line as a subprocess, ground-truth comparisons,
checks of what readers see in a dataset, and a recording proxy in front of the emulator."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import tests
from flowinst_etl import read_manifest, read_table
from flowinst_etl.emulator import Credentials, Emulator, TruthInstance
from flowinst_etl.tables.schema import TABLES, schema_fingerprint
from tests.support import day_truth, expected_rows

#: The repository checkout: subprocesses run from it so ``tests`` modules can be imported.
REPOSITORY = Path(tests.__file__).resolve().parent.parent
CLI_TIMEOUT_S = 180

#: Every emulator behaviour switch at its non-default value (where the EnOS documentation
#: disagrees with itself, the other reading).
ALL_BEHAVIOURS: dict[str, object] = {
    "page_base": "zero",
    "count_mode": "page",
    "sorter_names": "camel",
    "to_bound": "inclusive",
    "tie_order": "by_page",
    "envelope": "v2.0",
}


def days_from(first: date, count: int) -> list[date]:
    """``count`` consecutive days starting at ``first``."""
    return [first + timedelta(days=n) for n in range(count)]


def cli_environment(
    api_url: str, credentials: Credentials, **settings: str | None
) -> dict[str, str]:
    """This process's environment without any ENOS_*, FLOWINST_* or DAGSTER_HOME value, plus the
    ENOS_* variables of a deployment pointing at ``api_url``; ``settings`` add or (``None``)
    remove variables."""
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ENOS_", "FLOWINST_")) and name != "DAGSTER_HOME"
    }
    deployment: dict[str, str | None] = {
        "ENOS_API_URL": api_url,
        "ENOS_ACCESS_KEY": credentials.access_key,
        "ENOS_SECRET_KEY": credentials.secret_key,
        "ENOS_ORG_ID": credentials.org_id,
        "ENOS_USER_ID": credentials.user_id,
        **settings,
    }
    keep.update({name: value for name, value in deployment.items() if value is not None})
    return keep


def emulator_environment(emulator: Emulator, **settings: str | None) -> dict[str, str]:
    """``cli_environment`` for a running emulator and its credentials."""
    return cli_environment(emulator.base_url, emulator.config.credentials, **settings)


def cli_command(*args: str, module: str = "flowinst_etl.cli") -> list[str]:
    """The command line of ``flowinst-etl ARGS`` run by this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_cli(
    *args: str,
    env: Mapping[str, str],
    cwd: Path,
    module: str = "flowinst_etl.cli",
    before_start: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``flowinst-etl ARGS`` in a subprocess and wait for it; ``before_start`` runs in the
    child before the command (to set limits)."""
    return subprocess.run(
        cli_command(*args, module=module),
        env={**env, "PYTHONPATH": str(REPOSITORY)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        preexec_fn=before_start,
    )


def backfill_args(first: date, last: date, root: Path | str, *options: str) -> list[str]:
    """``backfill FIRST LAST --data-dir ROOT [options]``."""
    return ["backfill", first.isoformat(), last.isoformat(), "--data-dir", str(root), *options]


def describe(done: subprocess.CompletedProcess[str]) -> str:
    """The tail of a finished command's output, for assertion messages."""
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


# --- the output against the ground truth --------------------------------------------------------


def assert_days_exact(
    emulator: Emulator,
    root: Path,
    days: list[date],
    timezone: str,
    visible: Callable[[TruthInstance], bool] = lambda _: True,
) -> dict[date, list[TruthInstance]]:
    """Each day holds exactly the emulator's instances of that day now (those ``visible`` to the
    user): the same ids once each, with their scheduling types, and as many task, relation and
    upstream-flow rows as their graphs have; the manifests count the same rows. An instance the
    emulator created after its day's read passed its second may be missing, as one created
    after the run. Returns each day's truth (as written)."""
    truths: dict[date, list[TruthInstance]] = {}
    seen: set[str] = set()
    created = emulator.changed_ids() if emulator.stats().get("inserted") else set()
    for day in days:
        frame = read_table("flow_instances", str(root), day, day)
        ids = frame["instance_id"].tolist()
        truth = [
            t
            for t in day_truth(emulator, day, timezone)
            if visible(t)
            and (t.record["instanceId"] not in created or t.record["instanceId"] in ids)
        ]
        assert truth, f"{day}: the emulator serves no instance that day; the test proves nothing"
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        assert not duplicated, f"{day}: instances written twice: {duplicated[:5]}"
        expected_ids = {t.record["instanceId"] for t in truth}
        assert set(ids) == expected_ids, (
            f"{day}: missing {sorted(expected_ids - set(ids))[:5]}, "
            f"unexpected {sorted(set(ids) - expected_ids)[:5]}"
        )
        types = dict(zip(frame["instance_id"], frame["type"], strict=True))
        assert types == {t.record["instanceId"]: t.scheduling_type for t in truth}, day
        assert not seen & expected_ids, f"{day}: instances also written on another day"
        seen |= expected_ids
        expected = expected_rows(truth)
        for table in TABLES:
            rows = len(read_table(table, str(root), day, day))
            assert rows == expected[table], (
                f"{day} {table}: {rows} rows, expected {expected[table]}"
            )
            manifest = read_manifest(str(root), table, day)
            assert manifest is not None, f"{day} {table}: not committed"
            assert manifest["rows"] == rows, f"{day} {table}: manifest counts {manifest['rows']}"
        truths[day] = truth
    return truths


def assert_days_bracket_changes(
    emulator: Emulator,
    root: Path,
    before: Mapping[date, set[str]],
    timezone: str,
    visible: Callable[[TruthInstance], bool] = lambda _: True,
) -> None:
    """Each committed day of ``before`` (its ids when the run started) is exact around what the
    emulator changed while it was read: every instance of the day that nothing changed is there,
    nothing is there that was neither in the day nor changed by the emulator, and no id is
    written twice or on two days.
    An instance inserted, moved or deleted while a day was read may be there or not, as if it
    had changed just after or just before its second was read."""
    changed = emulator.changed_ids()
    seen: set[str] = set()
    for day, ids_before in before.items():
        if read_manifest(str(root), "flow_instances", day) is None:
            continue
        now = {t.record["instanceId"] for t in day_truth(emulator, day, timezone) if visible(t)}
        written = read_table("flow_instances", str(root), day, day)["instance_id"].tolist()
        assert len(written) == len(set(written)), f"{day}: an instance written twice"
        missing = sorted((now - changed) - set(written))
        assert not missing, f"{day}: missing {missing[:5]} that nothing changed"
        foreign = sorted(set(written) - (ids_before | now | changed))
        assert not foreign, f"{day}: {foreign[:5]} were never in the day"
        assert not seen & set(written), f"{day}: instances also written on another day"
        seen |= set(written)


def failed_days(done: subprocess.CompletedProcess[str]) -> dict[date, list[str]]:
    """The ``DAY failed: REASON`` lines a backfill printed, by day."""
    found: dict[date, list[str]] = {}
    for line in done.stderr.splitlines():
        head, _, reason = line.partition(" failed: ")
        if reason and len(head) == 10 and head[4] == head[7] == "-":
            found.setdefault(date.fromisoformat(head), []).append(reason)
    return found


def assert_exact_or_refused(
    done: subprocess.CompletedProcess[str],
    emulator: Emulator,
    root: Path,
    days: list[date],
    timezone: str,
    visible: Callable[[TruthInstance], bool] = lambda _: True,
) -> dict[date, str]:
    """The backfill either committed a day exactly (``assert_days_exact``) or refused it with
    one line and left nothing of it in any table; it exits 0 only when no day was refused.
    Returns the reason of each refused day."""
    refused = failed_days(done)
    assert set(refused) <= set(days), describe(done)
    for day, reasons in refused.items():
        assert len(reasons) == 1, f"{day}: {reasons}"
        for table in TABLES:
            assert not partition(root, table, day).exists(), (
                f"{day} {table}: written though refused"
            )
    assert (done.returncode == 0) == (not refused), describe(done)
    assert done.returncode in (0, 1), describe(done)
    committed = [day for day in days if day not in refused]
    if committed:
        assert_days_exact(emulator, root, committed, timezone, visible)
    return {day: reasons[0] for day, reasons in refused.items()}


def partition(root: Path, table: str, day: date) -> Path:
    """The folder of one table's day."""
    return root / table / f"trigger_date={day.isoformat()}"


# --- what readers see ---------------------------------------------------------------------------


def visible_days(root: Path, table: str) -> set[str]:
    """The ``trigger_date`` values whose folder holds a file dataset readers read."""
    base = root / table
    if not base.exists():
        return set()
    return {folder.name.split("=", 1)[1] for folder in base.iterdir() if os.listdir(folder)}


def is_delta(root: Path) -> bool:
    """Whether ``root`` holds Delta tables."""
    return (root / "flow_instances" / "_delta_log").is_dir()


def delta_day_files(root: Path, table: str) -> dict[str, list[str]]:
    """Day -> the names of the files the newest version of ``table``'s Delta log holds for it."""
    from deltalake import DeltaTable

    if not (root / table / "_delta_log").is_dir():
        return {}
    actions = pa.table(DeltaTable(str(root / table)).get_add_actions(flatten=True))
    found: dict[str, list[str]] = {}
    paths, days = actions.column("path").to_pylist(), actions.column("partition.trigger_date")
    for path, day in zip(paths, days.to_pylist(), strict=True):
        found.setdefault(day.isoformat(), []).append(path.rsplit("/", 1)[-1])
    return {day: sorted(names) for day, names in found.items()}


def staged_manifests(root: Path, table: str, day: str) -> list[dict[str, Any]]:
    """The manifests of ``table`` in the commit records unfinished writes of ``day`` staged (a
    write killed between its table commits, finished by the next run)."""
    found = []
    for staged in sorted(root.glob(f"_flowinst/staging/{day}/*/commit.json")):
        manifest = json.loads(staged.read_text())["tables"].get(table)
        if manifest is not None and manifest["write_id"] == staged.parent.name:
            found.append(manifest)
    return found


def assert_only_complete_delta_days(root: Path) -> dict[str, set[str]]:
    """Delta readers see committed days only: each day of each Delta table is exactly one file,
    the one the day's commit record names or, after a process was killed between the table
    commits of a write, the one of that write (whole, and staged for the next run to finish),
    with the stored schema and the committed row count."""
    from flowinst_etl.storage.delta import STORED

    days = {}
    for table, schema in STORED.items():
        files = delta_day_files(root, table)
        for day, names in files.items():
            manifests = [m for m in (read_manifest(str(root), table, day),) if m is not None]
            manifests += staged_manifests(root, table, day)
            assert manifests, f"{table} {day}: Delta readers see {names}, none recorded"
            chosen = [m for m in manifests if names == [m["file"]]]
            assert chosen, f"{table} {day}: Delta readers see {names}, not one recorded write"
            manifest = chosen[0]
            written = pq.read_table(partition(root, table, date.fromisoformat(day)) / names[0])
            assert written.schema.equals(schema), f"{table} {day}: not the stored schema"
            assert manifest["rows"] == written.num_rows, f"{table} {day}"
            assert manifest["schema_fingerprint"] == schema_fingerprint(schema), f"{table} {day}"
        days[table] = set(files)
    return days


def assert_only_complete_days(root: Path) -> dict[str, set[str]]:
    """Readers see committed days only; returns the visible days of each table.

    Every partition folder holds exactly the data file its day's commit names, nothing else,
    with the pinned schema and the committed row count. In a root of Delta tables, each table's
    newest version holds exactly that file for each day.
    """
    if is_delta(root):
        return assert_only_complete_delta_days(root)
    days = {table: visible_days(root, table) for table in TABLES}
    for table, schema in TABLES.items():
        for folder in (root / table).glob("trigger_date=*"):
            day = folder.name.split("=", 1)[1]
            names = sorted(os.listdir(folder))
            manifest = read_manifest(str(root), table, day)
            assert manifest is not None, f"{folder}: readers see {names}, none committed"
            assert names == [manifest["file"]], f"{folder}: readers would open {names}"
            written = pq.read_table(folder / manifest["file"])
            assert written.schema.equals(schema), f"{folder}: not the pinned schema"
            assert manifest["rows"] == written.num_rows, folder
            assert manifest["schema_fingerprint"] == schema_fingerprint(schema), folder
    return days


def assert_whole_days(root: Path) -> set[str]:
    """``assert_only_complete_days``, and each visible day is visible in all four tables,
    committed by one write; returns the days."""
    days = assert_only_complete_days(root)
    first = days["flow_instances"]
    assert all(found == first for found in days.values()), f"days differ between tables: {days}"
    for day in first:
        write_ids = {read_manifest(str(root), t, day)["write_id"] for t in TABLES}  # type: ignore[index]
        assert len(write_ids) == 1, f"{day}: tables committed by different writes {write_ids}"
    return first


def assert_delta_readers_read(root: Path) -> dict[str, int]:
    """deltalake (its file list read by pyarrow) and Polars ``scan_delta`` read every Delta table
    of ``root`` and agree on its row count, and ``read_table`` too unless a write killed between
    its table commits is yet to be finished; returns the counts."""
    import polars as pl
    from deltalake import DeltaTable

    counts = {}
    for table in TABLES:
        if not (root / table / "_delta_log").is_dir():
            continue
        files = DeltaTable(str(root / table)).file_uris()
        in_arrow = ds.dataset(files, format="parquet").count_rows() if files else 0
        in_polars = pl.scan_delta(str(root / table)).select(pl.len()).collect().item()
        assert in_arrow == in_polars, (table, in_arrow, in_polars)
        if not list(root.glob("_flowinst/staging/*/*/commit.json")):  # no write to finish
            assert len(read_table(table, str(root))) == in_arrow, table
        counts[table] = in_arrow
    return counts


def assert_readers_read(root: Path) -> dict[str, int]:
    """pyarrow.dataset, DuckDB and ``read_table`` (in a root of Delta tables: deltalake, Polars
    and ``read_table``) read every table of ``root`` without error and agree on its row count;
    returns the counts."""
    if is_delta(root):
        return assert_delta_readers_read(root)
    counts = {}
    for table, schema in TABLES.items():
        if not visible_days(root, table):
            continue
        partitioning = ds.partitioning(pa.schema([("trigger_date", pa.date32())]), flavor="hive")
        dataset = ds.dataset(root / table, format="parquet", partitioning=partitioning)
        arrow = dataset.to_table()
        assert arrow.schema.remove_metadata().equals(
            schema.append(pa.field("trigger_date", pa.date32()))
        ), table
        glob = (root / table / "*" / "*.parquet").as_posix()
        with duckdb.connect() as connection:
            query = f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)"
            row = connection.execute(query).fetchone()
        assert row is not None
        in_pandas = len(read_table(table, str(root)))
        assert arrow.num_rows == row[0] == in_pandas, table
        counts[table] = arrow.num_rows
    return counts


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and modification time (ns), by relative path."""
    if not root.exists():
        return {}
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def file_listing(root: Path) -> list[str]:
    """Every file under ``root``, relative, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- a recording proxy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request that crossed the proxy and the answer it got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    answer: bytes


class RecordingProxy:
    """An HTTP(S) reverse proxy in front of an emulator that keeps every exchange.

    The gateway signs the path, query and body, not the host, so requests signed for the proxy are
    valid upstream. A request the upstream drops is dropped here too.

    Args:
        upstream: the emulator's ``http://host:port``.
        tls: a server-side TLS context to serve HTTPS instead of HTTP.
        rewrite: turns each answer's body and ``Content-Type`` into what the proxy sends on
            (a proxy that re-encodes answers); the exchange records the upstream's answer.
    """

    def __init__(
        self,
        upstream: str,
        tls: ssl.SSLContext | None = None,
        rewrite: Callable[[bytes, str], tuple[bytes, str]] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._tls = tls
        self.rewrite = rewrite
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` of the proxy."""
        assert self._server is not None
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def secrets_seen(self) -> dict[str, set[str]]:
        """Every access token, request signature and token-request encryption that crossed."""
        found: dict[str, set[str]] = {"token": set(), "signature": set(), "encryption": set()}
        for exchange in self.exchanges:
            headers = {name.lower(): value for name, value in exchange.headers.items()}
            if headers.get("apim-accesstoken"):
                found["token"].add(headers["apim-accesstoken"])
            if headers.get("apim-signature"):
                found["signature"].add(headers["apim-signature"])
            for text, key, kind in (
                (exchange.body, "encryption", "encryption"),
                (exchange.body, "accessToken", "token"),
                (exchange.answer, "data", "token"),
            ):
                value = _json_field(text, key)
                if kind == "token" and isinstance(value, dict):
                    value = value.get("accessToken")
                if isinstance(value, str) and value:
                    found[kind].add(value)
        return found

    def search_bodies(self) -> list[dict[str, Any]]:
        """The JSON body of every List Flow Instances request."""
        return [
            json.loads(exchange.body)
            for exchange in self.exchanges
            if "/flowInstances" in exchange.path
        ]


def _json_field(text: bytes, key: str) -> Any:
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    return payload.get(key) if isinstance(payload, dict) else None


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def _handler(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._relay("GET")

        def do_POST(self) -> None:
            self._relay("POST")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the exchanges are recorded instead."""

        def _relay(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            try:
                status, answer_headers, answer = proxy.forward(method, self.path, headers, body)
            except (OSError, http.client.HTTPException):
                self.close_connection = True
                proxy.record(Exchange(method, self.path, headers, body, 0, b""))
                return
            proxy.record(Exchange(method, self.path, headers, body, status, answer))
            kept = [
                (name, value)
                for name, value in answer_headers
                if name.lower() not in (*_HOP_BY_HOP, "server", "date")
            ]
            if proxy.rewrite is not None:
                content_type = next((v for n, v in kept if n.lower() == "content-type"), "")
                answer, content_type = proxy.rewrite(answer, content_type)
                kept = [(n, v) for n, v in kept if n.lower() != "content-type"]
                kept.append(("Content-Type", content_type))
            self.send_response(status)
            for name, value in kept:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed_tls(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, which no client
    trusts."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "gateway.crt", folder / "gateway.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def text_of_files(root: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under ``root`` with its bytes."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()
