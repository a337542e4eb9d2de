"""README followed in order by a new user, on a copy of the project with a fresh environment.

Quickstart command 1 (install and demo), then `.env` from `.env.example`, the emulator the
Dagster section names, a backfill of its example days, `dagster dev` answering on its port, and
the reading recipes returning rows. Commands are taken from README itself; the only changes are
free ports instead of 8090 and 3000, which other programs on the machine may hold. The install
downloads what pip has not cached, so this test takes a few minutes and starts first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.guarantees.harness import REPOSITORY, closed_port
from tests.support import stop_process_group

README = (REPOSITORY / "README.md").read_text()
STEP_TIMEOUT_S = 600


def code_blocks(language: str) -> list[str]:
    """README's fenced blocks of one language, in order."""
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def command_line(starting: str) -> str:
    """The README command line (in a block or inline code) that starts with ``starting``."""
    for block in [*code_blocks("bash"), *re.findall(r"`([^`\n]+)`", README)]:
        for line in block.splitlines():
            if line.strip().startswith(starting):
                return line.split("  #", 1)[0].strip()
    raise AssertionError(f"README has no command starting with {starting!r}")


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
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def user_environment(clone: Path) -> dict[str, str]:
    """A shell environment with none of the project's settings, as a new user has."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ENOS_", "FLOWINST_", "DAGSTER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if ".venv" not in part
    )
    env["DAGSTER_HOME"] = str(clone / ".dagster_home")
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


@contextmanager
def background(
    command: str, clone: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running README command in its own process group, its output in ``log``, stopped
    with SIGTERM afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=clone,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process, timeout_s=60)


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``ready()``, or fail when the process ends first or the step times out."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not ready():
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_new_user_follows_the_readme(tmp_path: Path) -> None:
    clone = project_copy(tmp_path / "flowinst-etl")
    env = user_environment(clone)

    # Quickstart, command 1: install and run the demo
    quickstart = command_line("python3 -m venv .venv && .venv/bin/pip install -e . &&")
    demo = shell(quickstart, clone, {k: v for k, v in env.items() if k != "DAGSTER_HOME"})
    assert "backfilling" in demo.stdout and "failed days" in demo.stdout

    # Daily operation with Dagster: .env, DAGSTER_HOME, the emulator, a backfill, dagster dev
    shell(command_line("cp .env.example .env"), clone, env)
    shell(command_line("export DAGSTER_HOME="), clone, env)
    emulator_port, web_port = str(closed_port()), str(closed_port())
    dotenv = clone / ".env"
    dotenv.write_text(dotenv.read_text().replace(":8090", f":{emulator_port}"))
    emulator = command_line(".venv/bin/flowinst-etl emulator --port 8090")
    served_log, dev_log = tmp_path / "emulator.log", tmp_path / "dagster-dev.log"
    with background(emulator.replace("8090", emulator_port), clone, env, served_log) as served:
        wait_until(lambda: "listening on" in served_log.read_text(), served, served_log)
        backfill = shell(command_line(".venv/bin/flowinst-etl backfill "), clone, env)
        assert "failed days" in backfill.stdout
        dev = f"{command_line('.venv/bin/dagster dev')} -p {web_port}"
        with background(dev, clone, env, dev_log) as webserver:
            url = f"http://127.0.0.1:{web_port}/server_info"
            wait_until(lambda: answers(url), webserver, dev_log)

    # Reading from notebooks: every recipe returns rows (pandas with the quickstart's install,
    # DuckDB and Polars where they are installed)
    pandas_recipe, polars_recipe = code_blocks("python")
    done = shell(f".venv/bin/python - <<'EOF'\n{pandas_recipe}print(len(frame))\nEOF", clone, env)
    assert int(done.stdout.split()[-1]) > 0, done.stdout
    duckdb_sql = code_blocks("sql")[0]
    duckdb = f"import duckdb; print(len(duckdb.sql({duckdb_sql!r}).fetchall()))"
    polars = f"{polars_recipe}\nprint(len(tasks))"
    for recipe in (duckdb, polars):
        done = subprocess.run(
            [sys.executable, "-c", recipe], cwd=clone, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and int(done.stdout.split()[-1]) > 0, done.stderr
