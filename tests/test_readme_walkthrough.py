"""README, then docs/deployment.md, followed in order by a new user, on a copy of the project with
a fresh environment.

Quickstart command 1 (install and demo, no DAGSTER_HOME), then the UI README opens next, which
must show the demo's days materialised with their checks and columns, and yesterday fresh; the
daily-operation commands (a backfill, `dg launch`, `dg check defs`, `dg list defs`), a backfill of
a demo day from README's emulator giving the demo's rows, the reading recipes; then the
deployment guide's one machine: its dagster.yaml, the webserver and the daemon as services, the
GraphQL backfill, the tagging command, and both services stopping on SIGTERM. Commands are taken
from the pages themselves; the only changes are free ports instead of 8090 and 3000, which other
programs on the machine may hold, and the run ids the tagging command names. The install
downloads what pip has not cached, so this test takes minutes and starts first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from tests.guarantees.harness import REPOSITORY, closed_port

README = (REPOSITORY / "README.md").read_text()
DEPLOYMENT = (REPOSITORY / "docs" / "deployment.md").read_text()
STEP_TIMEOUT_S = 600
SERVICE_STOP_S = 60
TERMINAL = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")

UI_STATE = """{ assetNodes(assetKeys: [{path: ["flow_instances"]}]) {
  partitionStats { numMaterialized numPartitions }
  assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
  assetChecksOrError { ... on AssetChecks { checks {
    name executionForLatestMaterialization { status } } } }
  metadataEntries { label }
} }"""
LATEST_FRESHNESS = """{ assetCheckExecutions(
  assetKey: {path: ["flow_instances"]}, checkName: "freshness_check", limit: 1) { status } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status runs(limit: 10) { runId } } } }"""


def code_blocks(page: str, language: str) -> list[str]:
    """A page's fenced blocks of one language, in order."""
    return re.findall(rf"```{language}\n(.*?)```", page, re.DOTALL)


def command_line(starting: str, page: str = README) -> str:
    """The page's command line (in a block or inline code) that starts with ``starting``."""
    for block in [*code_blocks(page, "bash"), *re.findall(r"`([^`\n]+)`", page)]:
        for line in block.splitlines():
            if line.strip().startswith(starting):
                return line.split("  #", 1)[0].strip()
    raise AssertionError(f"no command starting with {starting!r}")


def project_copy(target: Path) -> Path:
    """The project's files (tracked and new, not ignored) as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, listed):
        source = REPOSITORY / name
        if source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).symlink_to(os.readlink(source))
        elif source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def user_environment() -> dict[str, str]:
    """A shell environment with none of the project's settings and no DAGSTER_HOME, as a new
    user has."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ENOS_", "FLOWINST_", "DAGSTER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if ".venv" not in part
    )
    return env


def shell(command: str, clone: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def exported(command: str, clone: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with what an ``export ...`` line sets, as the user's shell keeps it."""
    done = shell(f'{command} && echo "$DAGSTER_HOME"', clone, env)
    return {**env, "DAGSTER_HOME": done.stdout.split()[-1]}


@contextmanager
def background(
    command: str, clone: Path, env: dict[str, str], log: Path, stop: signal.Signals
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running command in its own process group, its output in ``log``; ``stop`` is sent
    afterwards (SIGKILL after a minute, a failure if the test has not failed already)."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=clone,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stopped = False
    try:
        yield process
        stopped = True
    finally:
        os.killpg(process.pid, stop)
        try:
            process.wait(timeout=SERVICE_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            assert not stopped, f"{command} did not stop on {stop.name}"


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``ready()``, or fail when the process ends first or the step times out."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not ready():
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(1)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def graphql(port: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the UI asks its server, and the answer's data."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        reply = json.load(answer)
    assert not reply.get("errors"), reply
    return dict(reply["data"])


def flow_instances_in_ui(port: str) -> dict[str, Any]:
    (node,) = graphql(port, UI_STATE)["assetNodes"]
    return dict(node)


def check_statuses(node: dict[str, Any]) -> dict[str, str | None]:
    checks = node["assetChecksOrError"]["checks"]
    latest = {c["name"]: c["executionForLatestMaterialization"] for c in checks}
    return {name: execution and execution["status"] for name, execution in latest.items()}


def same_rows(first: Path, second: Path, day: date) -> bool:
    """Whether two roots hold the same instances for ``day`` (ids, statuses, trigger times)."""
    columns = ["instance_id", "status", "trigger_time"]

    def rows(root: Path) -> list[tuple[Any, ...]]:
        (file,) = (root / "flow_instances" / f"trigger_date={day}").iterdir()
        table = pq.read_table(file, columns=columns)
        return sorted(zip(*(table[c].to_pylist() for c in columns), strict=True))

    return rows(first) == rows(second)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_new_user_follows_the_readme_and_the_deployment_guide(tmp_path: Path) -> None:
    clone = project_copy(tmp_path / "flowinst-etl")
    env = user_environment()
    emulator_port, web_port, service_port = (str(closed_port()) for _ in range(3))

    # Quickstart, command 1: install and run the demo, with no DAGSTER_HOME set
    quickstart = command_line("python3 -m venv .venv && .venv/bin/pip install -e . &&")
    demo = shell(quickstart, clone, env)
    assert "backfilling" in demo.stdout and "failed days" in demo.stdout
    found = re.search(r"backfilling (\S+) \.\. (\S+)", demo.stdout)
    assert found, demo.stdout
    first, last = (date.fromisoformat(day) for day in found.groups())

    # The UI on the demo's days: DAGSTER_HOME, .env, the emulator, dg dev
    env = exported(command_line("export DAGSTER_HOME="), clone, env)
    assert Path(env["DAGSTER_HOME"]) == clone / ".dagster_home"
    shell(command_line("cp .env.example .env"), clone, env)
    dotenv = clone / ".env"
    dotenv.write_text(dotenv.read_text().replace(":8090", f":{emulator_port}"))
    emulator = command_line(".venv/bin/flowinst-etl emulator --port 8090").replace(
        "8090", emulator_port
    )
    served_log, dev_log = tmp_path / "emulator.log", tmp_path / "dg-dev.log"
    with background(emulator, clone, env, served_log, signal.SIGTERM) as served:
        wait_until(lambda: "listening on" in served_log.read_text(), served, served_log)
        dev = f"{command_line('.venv/bin/dg dev')} -p {web_port}"
        # dg dev stops on Ctrl-C (docs/deployment.md)
        with background(dev, clone, env, dev_log, signal.SIGINT) as webserver:
            wait_until(
                lambda: answers(f"http://127.0.0.1:{web_port}/server_info"), webserver, dev_log
            )
            shown = flow_instances_in_ui(web_port)
            demo_days = (last - first).days + 1
            assert shown["partitionStats"]["numMaterialized"] == demo_days, shown
            assert shown["partitionStats"]["numPartitions"] == (last - date(2026, 11, 1)).days + 1
            ranges = shown["assetPartitionStatuses"]["ranges"]
            assert [(r["startKey"], r["endKey"]) for r in ranges] == [(str(first), str(last))]
            assert check_statuses(shown)["instance_ids_unique"] == "SUCCEEDED", shown
            assert "dagster/column_schema" in {e["label"] for e in shown["metadataEntries"]}

            # Daily operation: a backfill, dg launch, dg check defs, dg list defs
            backfill = shell(command_line(".venv/bin/flowinst-etl backfill "), clone, env)
            assert "failed days" in backfill.stdout
            shell(command_line(".venv/bin/dg launch "), clone, env)
            checked = shell(command_line(".venv/bin/dg check defs"), clone, env)
            assert "All definitions loaded successfully." in checked.stdout + checked.stderr
            listed = shell(command_line(".venv/bin/dg list defs"), clone, env)
            assert "flow_instances_freshness" in listed.stdout, listed.stdout

            # README's emulator serves the demo's data: a demo day backfilled from it
            shell(f".venv/bin/flowinst-etl backfill {last} {last} --data-dir again", clone, env)
            assert same_rows(clone / "data", clone / "again", last)

            # the freshness sensor of dg dev's daemon finds yesterday there (also after dg
            # launch, which planned the check and skipped it)
            def fresh() -> bool:
                latest = graphql(web_port, LATEST_FRESHNESS)["assetCheckExecutions"]
                return bool(latest and latest[0]["status"] == "SUCCEEDED")

            wait_until(fresh, webserver, dev_log)

        # Reading: every recipe returns rows (pandas with the quickstart's install, DuckDB and
        # Polars where they are installed)
        pandas_recipe, polars_recipe = code_blocks(README, "python")
        done = shell(
            f".venv/bin/python - <<'EOF'\n{pandas_recipe}print(len(frame))\nEOF", clone, env
        )
        assert int(done.stdout.split()[-1]) > 0, done.stdout
        duckdb_sql = code_blocks(README, "sql")[0]
        duckdb = f"import duckdb; print(len(duckdb.sql({duckdb_sql!r}).fetchall()))"
        polars = f"{polars_recipe}\nprint(len(tasks))"
        for recipe in (duckdb, polars):
            done = subprocess.run(
                [sys.executable, "-c", recipe],
                cwd=clone,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0 and int(done.stdout.split()[-1]) > 0, done.stderr

        # docs/deployment.md, one machine: dagster.yaml, the settings, the two services
        # (its emulator is the one running, and the services take dg dev's place)
        export, *settings, _, _ = code_blocks(DEPLOYMENT, "bash")[0].splitlines()
        env = exported(export, clone, env)
        for line in settings:
            shell(line.split("  #", 1)[0], clone, env)
        assert "FLOWINST_DAYS_PER_RUN=3" in dotenv.read_text()
        webserver_command = command_line(".venv/bin/dagster-webserver", DEPLOYMENT)
        daemon_command = command_line(".venv/bin/dagster-daemon run", DEPLOYMENT)
        web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
        with (
            background(
                webserver_command.replace("3000", service_port),
                clone,
                env,
                web_log,
                signal.SIGTERM,
            ) as service,
            background(daemon_command, clone, env, daemon_log, signal.SIGTERM),
        ):
            wait_until(
                lambda: answers(f"http://127.0.0.1:{service_port}/server_info"), service, web_log
            )
            (curl,) = (block for block in code_blocks(DEPLOYMENT, "bash") if "curl" in block)
            launched = shell(curl.replace("3000", service_port), clone, env)
            backfill_id = json.loads(launched.stdout)["data"]["launchPartitionBackfill"][
                "backfillId"
            ]

            def ended() -> bool:
                status = graphql(service_port, BACKFILL_STATUS, {"id": backfill_id})
                return bool(status["partitionBackfillOrError"]["status"] in TERMINAL)

            wait_until(ended, service, web_log)
            backfill_state = graphql(service_port, BACKFILL_STATUS, {"id": backfill_id})
            backfill_state = backfill_state["partitionBackfillOrError"]
            assert backfill_state["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill_state
            runs = [run["runId"] for run in backfill_state["runs"]]
            assert len(runs) == 2, backfill_state  # 4 days, FLOWINST_DAYS_PER_RUN=3

            # the tagging command of "A failed run left unretried", on two real runs
            tag = command_line('.venv/bin/python -c "import sys, dagster as dg;', DEPLOYMENT)
            shell(tag.replace("FAILED_RUN_ID RETRY_RUN_ID", " ".join(runs)), clone, env)

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        tagged = instance.get_run_by_id(runs[0])
        assert tagged is not None and tagged.tags["dagster/auto_retry_run_id"] == runs[1]
    assert first <= last < date.today() + timedelta(days=1)
